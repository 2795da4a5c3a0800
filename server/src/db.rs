//! Database connection: creates the database named in the URL when it does not
//! exist yet, opens the pool and applies migrations; opens LISTEN connections.

mod kept;

use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr, RuntimeErr, SqlxPostgresConnector};
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

pub use kept::KeptConnections;

use crate::config::DatabaseSettings;

#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(String),
    #[error("cannot reach PostgreSQL at {url}: {source}")]
    Unreachable { url: String, source: DbErr },
    #[error("creating database {name:?} failed: {source}")]
    Create { name: String, source: DbErr },
    #[error("applying migrations failed: {0}")]
    Migrate(DbErr),
}

/// How the pool's connections plan prepared statements (see [`connect`]).
pub const PLAN_CACHE_MODE: &str = "force_generic_plan";

/// A pooled connection idle for this long is pinged before it is handed out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Connects to the database, creating it first if needed.
///
/// The pool is sqlx's, built here rather than by sea-orm's `ConnectOptions`
/// for one setting: by default sqlx pings every connection it hands out, a
/// round trip (and a wake-up of the PostgreSQL backend) before every
/// statement, which was a third of a list request's round trips. A
/// connection in use every second does not need it; one that sat idle longer
/// (maybe through a database restart) is still checked, and a connection
/// that fails a statement is closed when it is released.
///
/// Its connections plan each prepared statement once (`plan_cache_mode =
/// force_generic_plan`). `executions` is partitioned by day, and PostgreSQL
/// costs a generic plan over every partition, so left to choose it planned
/// each lookup by id afresh, which cost more than running it (0.19 against
/// 0.12 ms a lookup with pgbench; BENCHMARKS.md, session 28). The generic
/// plan prunes the partitions when it runs.
pub async fn connect(settings: &DatabaseSettings) -> Result<DatabaseConnection, DbSetupError> {
    use sqlx::ConnectOptions as _;
    create_database_if_missing(&settings.database_url).await?;
    let unreachable = |e: sqlx::Error| DbSetupError::Unreachable {
        url: redact(&settings.database_url),
        source: DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e)),
    };
    let (options, _) = database_name(&settings.database_url)?;
    let pool = PgPoolOptions::new()
        .max_connections(settings.db_pool_size)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(
            options
                .disable_statement_logging()
                .options([("plan_cache_mode", PLAN_CACHE_MODE)]),
        )
        .await
        .map_err(unreachable)?;
    Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(pool))
}

/// Connects (creating the database when missing) and applies every migration.
pub async fn connect_and_migrate(
    settings: &DatabaseSettings,
) -> Result<DatabaseConnection, DbSetupError> {
    let db = connect(settings).await?;
    migration::apply(&db).await.map_err(DbSetupError::Migrate)?;
    Ok(db)
}

/// Opens a LISTEN connection on `channels`. It is taken from the pool (so it
/// counts against `PROJECTNIL_DB_POOL_SIZE` while it lives) and uses the pool's
/// URL and options.
pub async fn listen(pool: &PgPool, channels: &[&str]) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all(channels.iter().copied()).await?;
    Ok(listener)
}

async fn create_database_if_missing(url: &str) -> Result<(), DbSetupError> {
    use sqlx::ConnectOptions as _;
    let (options, name) = database_name(url)?;
    let unreachable = |e: sqlx::Error| DbSetupError::Unreachable {
        url: redact(url),
        source: DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e)),
    };
    // The same host, port, user, password and TLS settings, on the server's
    // own database.
    let mut admin = options
        .database("postgres")
        .disable_statement_logging()
        .connect()
        .await
        .map_err(unreachable)?;
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut admin)
        .await
        .map_err(unreachable)?;
    if exists.is_none() {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        if let Err(error) = sqlx::query(&sql).execute(&mut admin).await {
            // Another process may have created it in the meantime:
            // duplicate_database, or the catalog's unique index.
            let code = error
                .as_database_error()
                .and_then(|e| e.code())
                .map(|c| c.into_owned());
            if !matches!(code.as_deref(), Some("42P04" | "23505")) {
                return Err(DbSetupError::Create {
                    name,
                    source: DbErr::Exec(sea_orm::RuntimeErr::SqlxError(error)),
                });
            }
        }
        tracing::info!(database = %name, "database.created");
    }
    admin.close().await.ok();
    Ok(())
}

/// The URL's connection options (as sqlx reads them: host, port, sslmode…)
/// and the database it names.
fn database_name(url: &str) -> Result<(PgConnectOptions, String), DbSetupError> {
    let options: PgConnectOptions = url.parse().map_err(|_| DbSetupError::BadUrl(redact(url)))?;
    let name = options
        .get_database()
        .filter(|name| !name.is_empty())
        .ok_or_else(|| DbSetupError::BadUrl(redact(url)))?
        .to_string();
    Ok((options, name))
}

/// The URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..s + 3], &userinfo[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// What PostgreSQL said when it refused a statement: its SQLSTATE and, for
/// a constraint, the constraint's name. `None` for errors that are not the
/// database's answer (a lost connection, a pool timeout).
pub fn refusal(error: &DbErr) -> Option<(String, Option<String>)> {
    use sea_orm::RuntimeErr;
    match error {
        DbErr::Exec(RuntimeErr::SqlxError(sqlx::Error::Database(e)))
        | DbErr::Query(RuntimeErr::SqlxError(sqlx::Error::Database(e))) => Some((
            e.code().map(|c| c.into_owned()).unwrap_or_default(),
            e.constraint().map(str::to_owned),
        )),
        _ => None,
    }
}

/// SQLSTATE class of a value the database cannot store or convert (a NUL in
/// text, an invalid escape in JSON): the request's fault, never an outage.
const DATA_EXCEPTION: &str = "22";

/// Whether the database refused a value of the statement (see [`DATA_EXCEPTION`]).
pub fn refused_value(error: &DbErr) -> bool {
    refusal(error).is_some_and(|(code, _)| code.starts_with(DATA_EXCEPTION))
}

/// Whether `error` says the database was away rather than that it refused.
pub fn is_transient(error: &DbErr) -> bool {
    let sqlx_error = match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    match sqlx_error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| transient_sqlstate(&code)),
        _ => false,
    }
}

/// Connection exceptions (class 08), an administrator or crash shutdown
/// (57P01-57P03), too many connections, and serialization failures and
/// deadlocks (which succeed when tried again).
fn transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_database_name_and_keeps_the_options() {
        let (options, name) =
            database_name("postgres://postgres@db.internal:6543/projectnil?sslmode=require")
                .unwrap();
        assert_eq!(name, "projectnil");
        assert_eq!(options.get_host(), "db.internal");
        assert_eq!(options.get_port(), 6543);
        assert!(matches!(
            options.get_ssl_mode(),
            sqlx::postgres::PgSslMode::Require
        ));
        assert!(database_name("postgres://h:5432").is_err());
        assert!(database_name("not a url").is_err());
    }

    #[test]
    fn redacts_password() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn only_outages_are_transient() {
        assert!(transient_sqlstate("08006"));
        assert!(transient_sqlstate("57P01"));
        assert!(transient_sqlstate("40001"));
        // check_violation, unique_violation, invalid text: the database answered.
        assert!(!transient_sqlstate("23514"));
        assert!(!transient_sqlstate("23505"));
        assert!(!transient_sqlstate("22P02"));
        assert!(is_transient(&DbErr::Conn(RuntimeErr::Internal(
            "gone".into()
        ))));
        assert!(!is_transient(&DbErr::RecordNotUpdated));
        assert!(!is_transient(&DbErr::Custom("refused".into())));
    }
}
