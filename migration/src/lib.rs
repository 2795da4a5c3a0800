//! Database schema of ProjectNIL: the pgmq installation, the `functions` and
//! `executions` tables with their invariants, the status-change notifications,
//! the compilation queues and the notifications of their inserts, and the
//! leases and job queue of dependable executions, versions, and the daily
//! partitions and statistics rollups of executions, and the one-statement
//! record of a synchronous run (one insert of its row), and execution ids
//! that tell when they were made.
//!
//! Always apply migrations through [`apply`] (what `projectnil migrate` and
//! `projectnil serve` call): sea-orm runs every PostgreSQL migration inside one
//! transaction, while pgmq's embedded installer needs a connection pool of its own,
//! so [`apply`] installs pgmq first and then runs the migrator.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};

mod m20261129_000001_pgmq;
mod m20261129_000002_functions_executions;
mod m20261129_000003_status_notifications;
mod m20261129_000004_compilation_queues;
mod m20261129_000005_compiled_modules;
mod m20261129_000006_queue_notifications;
mod m20261201_000007_dependable_executions;
mod m20261201_000008_function_versions;
mod m20261201_000009_unique_function_names;
mod m20261201_000010_execution_analytics;
mod m20261202_000011_synchronous_runs;
mod m20261206_000012_runs_inserted_whole;
mod m20261206_000013_time_ordered_execution_ids;

pub use m20261201_000009_unique_function_names::FUNCTION_NAME_INDEX;
pub use sea_orm_migration::MigratorTrait;

/// The channel on which every status transition is announced (see
/// `m20261129_000003_status_notifications`).
pub const STATUS_CHANNEL: &str = "projectnil_status";
/// API → compiler queue.
pub const COMPILATION_JOBS_QUEUE: &str = "compilation_jobs";
/// Compiler → API queue.
pub const COMPILATION_RESULTS_QUEUE: &str = "compilation_results";
/// API → every process that runs background executions.
pub const EXECUTION_JOBS_QUEUE: &str = "execution_jobs";
/// Every queue, in the order operators see them (`queueStats`, `/metrics`).
pub const QUEUES: [&str; 3] = [
    COMPILATION_JOBS_QUEUE,
    COMPILATION_RESULTS_QUEUE,
    EXECUTION_JOBS_QUEUE,
];

/// The channel on which every insert into `queue` is announced, with an empty
/// payload (see `m20261129_000006_queue_notifications`):
/// `projectnil_queue_<queue>`.
pub fn queue_channel(queue: &str) -> String {
    format!("projectnil_queue_{queue}")
}

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261129_000001_pgmq::Migration),
            Box::new(m20261129_000002_functions_executions::Migration),
            Box::new(m20261129_000003_status_notifications::Migration),
            Box::new(m20261129_000004_compilation_queues::Migration),
            Box::new(m20261129_000005_compiled_modules::Migration),
            Box::new(m20261129_000006_queue_notifications::Migration),
            Box::new(m20261201_000007_dependable_executions::Migration),
            Box::new(m20261201_000008_function_versions::Migration),
            Box::new(m20261201_000009_unique_function_names::Migration),
            Box::new(m20261201_000010_execution_analytics::Migration),
            Box::new(m20261202_000011_synchronous_runs::Migration),
            Box::new(m20261206_000012_runs_inserted_whole::Migration),
            Box::new(m20261206_000013_time_ordered_execution_ids::Migration),
        ]
    }
}

/// Installs pgmq when it is missing, then applies every pending migration.
/// Safe to run concurrently from several processes and any number of times.
pub async fn apply(db: &DatabaseConnection) -> Result<(), DbErr> {
    install_pgmq(db).await?;
    Migrator::up(db, None).await
}

/// Installs (or upgrades) pgmq from the SQL scripts embedded in the pgmq crate,
/// unless the pgmq extension is installed, which then is used as it is.
pub async fn install_pgmq(db: &DatabaseConnection) -> Result<(), DbErr> {
    if pgmq_extension_installed(db).await? {
        return Ok(());
    }
    pgmq::install::install_sql_from_embedded(db.get_postgres_connection_pool())
        .await
        .map_err(|e| DbErr::Custom(format!("installing pgmq failed: {e}")))
}

pub(crate) async fn pgmq_extension_installed<C: ConnectionTrait>(db: &C) -> Result<bool, DbErr> {
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgmq') AS installed",
        ))
        .await?;
    match row {
        Some(row) => row.try_get("", "installed"),
        None => Ok(false),
    }
}
