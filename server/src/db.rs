//! Database connection: creates the database named in the URL when it does not
//! exist yet, opens the pool and applies migrations; opens LISTEN connections.

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, Statement};
use sqlx::postgres::{PgListener, PgPool};

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

/// Connects to the database, creating it first if needed.
pub async fn connect(settings: &DatabaseSettings) -> Result<DatabaseConnection, DbSetupError> {
    create_database_if_missing(&settings.database_url).await?;
    let mut options = ConnectOptions::new(settings.database_url.clone());
    options
        .max_connections(settings.db_pool_size)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    Database::connect(options)
        .await
        .map_err(|source| DbSetupError::Unreachable {
            url: redact(&settings.database_url),
            source,
        })
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
    let (server_url, name) = split_database_name(url)?;
    let admin = Database::connect(
        ConnectOptions::new(format!("{server_url}/postgres"))
            .sqlx_logging(false)
            .to_owned(),
    )
    .await
    .map_err(|source| DbSetupError::Unreachable {
        url: redact(url),
        source,
    })?;
    let exists = admin
        .query_one(Statement::from_sql_and_values(
            admin.get_database_backend(),
            "SELECT 1 AS one FROM pg_database WHERE datname = $1",
            [name.clone().into()],
        ))
        .await
        .map_err(|source| DbSetupError::Unreachable {
            url: redact(url),
            source,
        })?
        .is_some();
    if !exists {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        if let Err(source) = admin.execute_unprepared(&sql).await {
            // Another process may have created it in the meantime.
            if !source.to_string().contains("already exists") {
                return Err(DbSetupError::Create { name, source });
            }
        }
        tracing::info!(database = %name, "database.created");
    }
    admin.close().await.ok();
    Ok(())
}

/// Splits `postgres://user@host:port/name?opts` into the server part and `name`.
fn split_database_name(url: &str) -> Result<(String, String), DbSetupError> {
    let without_query = url.split(['?', '#']).next().unwrap_or(url);
    let scheme_end = without_query
        .find("://")
        .ok_or_else(|| DbSetupError::BadUrl(redact(url)))?
        + 3;
    let path_start = without_query[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .ok_or_else(|| DbSetupError::BadUrl(redact(url)))?;
    let name = &without_query[path_start + 1..];
    if name.is_empty() {
        return Err(DbSetupError::BadUrl(redact(url)));
    }
    Ok((without_query[..path_start].to_string(), name.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_database_name() {
        let (server, name) =
            split_database_name("postgres://postgres@127.0.0.1:5432/projectnil?sslmode=disable")
                .unwrap();
        assert_eq!(server, "postgres://postgres@127.0.0.1:5432");
        assert_eq!(name, "projectnil");
        assert!(split_database_name("postgres://h:5432").is_err());
        assert!(split_database_name("postgres://h:5432/").is_err());
    }

    #[test]
    fn redacts_password() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
