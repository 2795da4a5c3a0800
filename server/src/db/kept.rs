//! Connections kept out of sqlx's pool between single statements, for the
//! API's reads.
//!
//! sqlx takes a connection back into its pool in a spawned task that first
//! pings it (a `Sync` round trip that wakes the PostgreSQL backend a second
//! time); sqlx 0.8 has no setting for that. A page of a list is one statement,
//! so the ping was a second round trip per request. [`KeptConnections`] runs
//! each statement on a connection it keeps after a statement that completed,
//! and hands it to the next statement instead. What sqlx's release is there
//! for still happens where it matters: a statement that failed, or whose
//! request was dropped half-way (its connection may hold half a reply), lets
//! its connection go back through sqlx's own release, which pings it and
//! closes it when broken. A kept connection unused for [`KEEP_IDLE`] goes
//! back to the pool, so that it holds no slot that other work waits for and
//! still gets the ping a connection idle for a second gets before its next
//! use (`db::PING_AFTER_IDLE`).

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use sea_orm::sea_query::Values;
use sea_orm::{
    ConnAcquireErr, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult,
    RuntimeErr, Statement,
};
use sea_query_binder::SqlxValues;
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use tokio::sync::Notify;

/// A kept connection unused for this long goes back to sqlx's pool.
const KEEP_IDLE: Duration = Duration::from_millis(100);

/// A handle for single statements outside a transaction (it has no
/// `begin`): reads run on kept connections, writes on the pool as before.
/// Cheap to clone; the connections are shared by every clone.
#[derive(Clone)]
pub struct KeptConnections {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    /// Oldest first: a statement takes the newest, the sweeper releases
    /// from the front. Never locked across an `.await`.
    kept: Mutex<Vec<Kept>>,
    capacity: usize,
    /// Wakes the sweeper when the first connection is kept.
    wake_sweeper: Arc<Notify>,
}

struct Kept {
    connection: PoolConnection<Postgres>,
    since: Instant,
}

impl KeptConnections {
    /// Keeps at most half of `db`'s pool. Spawns the task that returns idle
    /// connections; it ends when the last clone is dropped.
    pub fn new(db: DatabaseConnection) -> Self {
        let pool_size = db
            .get_postgres_connection_pool()
            .options()
            .get_max_connections();
        let capacity = (pool_size as usize / 2).max(1);
        let wake_sweeper = Arc::new(Notify::new());
        let inner = Arc::new(Inner {
            db,
            kept: Mutex::new(Vec::with_capacity(capacity)),
            capacity,
            wake_sweeper: wake_sweeper.clone(),
        });
        tokio::spawn(sweep(Arc::downgrade(&inner), wake_sweeper));
        Self { inner }
    }

    /// How many connections are kept right now.
    pub fn kept(&self) -> usize {
        self.inner.lock().len()
    }

    /// A kept connection, or one from the pool.
    async fn connection(&self) -> Result<PoolConnection<Postgres>, DbErr> {
        match self.inner.take() {
            Some(connection) => Ok(connection),
            None => self.inner.pool().acquire().await.map_err(acquire_error),
        }
    }
}

impl Inner {
    fn pool(&self) -> &PgPool {
        self.db.get_postgres_connection_pool()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Kept>> {
        // A panic while locked cannot leave the list half-changed: every
        // change is one push, pop or drain.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self) -> Option<PoolConnection<Postgres>> {
        self.lock().pop().map(|kept| kept.connection)
    }

    fn keep(&self, connection: PoolConnection<Postgres>) {
        // With every connection of the pool out and none idle, another
        // task may be waiting for one: it goes back.
        let pool = self.pool();
        let pool_exhausted =
            pool.num_idle() == 0 && pool.size() >= pool.options().get_max_connections();
        if pool.is_closed() || pool_exhausted {
            return;
        }
        let mut kept = self.lock();
        if kept.len() >= self.capacity {
            return;
        }
        let first = kept.is_empty();
        kept.push(Kept {
            connection,
            since: Instant::now(),
        });
        drop(kept);
        if first {
            self.wake_sweeper.notify_one();
        }
    }

    /// Takes out the connections unused for [`KEEP_IDLE`]; returns them and
    /// how many stay kept.
    fn idle(&self) -> (Vec<Kept>, usize) {
        let mut kept = self.lock();
        let now = Instant::now();
        let idle = kept.partition_point(|k| now.duration_since(k.since) >= KEEP_IDLE);
        let released = kept.drain(..idle).collect();
        (released, kept.len())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.wake_sweeper.notify_one();
    }
}

/// Returns idle kept connections to the pool (dropping a `PoolConnection`
/// is sqlx's release), and sleeps while nothing is kept.
async fn sweep(inner: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        loop {
            tokio::time::sleep(KEEP_IDLE).await;
            let Some(keeper) = inner.upgrade() else {
                return;
            };
            let (released, left) = keeper.idle();
            drop(keeper);
            drop(released);
            if left == 0 {
                break;
            }
        }
        if inner.strong_count() == 0 {
            return;
        }
    }
}

fn query(statement: &Statement) -> sqlx::query::Query<'_, Postgres, SqlxValues> {
    let values = statement.values.clone().unwrap_or(Values(Vec::new()));
    sqlx::query_with(&statement.sql, SqlxValues(values))
}

fn query_error(error: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(error))
}

fn acquire_error(error: sqlx::Error) -> DbErr {
    match error {
        sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        sqlx::Error::PoolClosed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
        error => DbErr::Conn(RuntimeErr::SqlxError(error)),
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for KeptConnections {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn execute(&self, statement: Statement) -> Result<ExecResult, DbErr> {
        self.inner.db.execute(statement).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.inner.db.execute_unprepared(sql).await
    }

    // On an error, or when the request is dropped during the statement, the
    // connection is dropped instead of kept: sqlx's release.

    async fn query_one(&self, statement: Statement) -> Result<Option<QueryResult>, DbErr> {
        let mut connection = self.connection().await?;
        let row = query(&statement)
            .fetch_optional(&mut *connection)
            .await
            .map_err(query_error)?;
        self.inner.keep(connection);
        Ok(row.map(QueryResult::from))
    }

    async fn query_all(&self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let mut connection = self.connection().await?;
        let rows = query(&statement)
            .fetch_all(&mut *connection)
            .await
            .map_err(query_error)?;
        self.inner.keep(connection);
        Ok(rows.into_iter().map(QueryResult::from).collect())
    }
}
