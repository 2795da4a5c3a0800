//! Recovery of executions whose process vanished, judged by their lease, never
//! by their age: a long queue is not a crash. A synchronous execution whose
//! holder's lease lapsed ends FAILED "interrupted" (its caller went with the
//! process). A background one is not touched here: its `execution_jobs`
//! message becomes visible again and another runner takes it over
//! ([`super::jobs`]). Every process sweeps; the writes are guarded, so
//! sweeping twice changes nothing.

use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr};
use tokio_util::sync::CancellationToken;

use super::store;

pub const INTERRUPTED_MESSAGE: &str =
    "interrupted: the server stopped or lost its database during execution; run it again";

/// Ends FAILED every synchronous execution whose holder's lease lapsed.
pub async fn recover_interrupted(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let count = store::fail_abandoned(db, INTERRUPTED_MESSAGE).await?;
    if count > 0 {
        crate::metrics::executions_recovered(count);
        tracing::warn!(count, "execution.recovered_interrupted");
    }
    Ok(count)
}

/// Sweeps every half `lease` until `shutdown`, so an execution orphaned by
/// another replica's crash is ended soon after its lease lapses. The first
/// sweep is half a lease from now: start-up has just swept.
pub fn spawn_sweeper(db: DatabaseConnection, lease: Duration, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let period = lease / 2;
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            if let Err(error) = recover_interrupted(&db).await {
                tracing::warn!(%error, "execution.sweep_failed");
            }
        }
    });
}
