//! Executions left PENDING or RUNNING by a process that died are ended FAILED,
//! once they are older than any execution can legitimately take.

use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveEnum, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use tokio_util::sync::CancellationToken;

use entity::execution::{self, ExecutionStatus};

pub const INTERRUPTED_MESSAGE: &str =
    "interrupted: the server stopped or lost its database during execution; run it again";

/// Ends FAILED every unfinished execution created more than `older_than` ago.
pub async fn recover_interrupted(
    db: &DatabaseConnection,
    older_than: Duration,
) -> Result<u64, DbErr> {
    let cutoff =
        Utc::now() - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
    let result = execution::Entity::update_many()
        .col_expr(execution::Column::Status, ExecutionStatus::Failed.as_enum())
        .col_expr(
            execution::Column::ErrorMessage,
            Expr::value(INTERRUPTED_MESSAGE),
        )
        .col_expr(
            execution::Column::Output,
            Expr::value(Option::<serde_json::Value>::None),
        )
        .col_expr(execution::Column::CompletedAt, Expr::value(Utc::now()))
        .filter(
            execution::Column::Status.is_in([ExecutionStatus::Pending, ExecutionStatus::Running]),
        )
        .filter(execution::Column::CreatedAt.lt(cutoff))
        .exec(db)
        .await?;
    if result.rows_affected > 0 {
        crate::metrics::executions_recovered(result.rows_affected);
        tracing::warn!(
            count = result.rows_affected,
            "execution.recovered_interrupted"
        );
    }
    Ok(result.rows_affected)
}

/// Sweeps periodically too, so an execution orphaned by another replica's crash
/// (or a database outage mid-run) does not wait for the next restart.
pub fn spawn_sweeper(db: DatabaseConnection, older_than: Duration, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(30));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            if let Err(error) = recover_interrupted(&db, older_than).await {
                tracing::warn!(%error, "execution.sweep_failed");
            }
        }
    });
}
