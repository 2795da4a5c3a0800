//! Background executions from `execution_jobs`, in every process that runs
//! executions. The consumer reads no more messages than it has free wasm
//! threads, so the backlog waits in PostgreSQL (visible in `queueStats`) and
//! spreads over every process that consumes it; after a read that found fewer
//! than it had threads for, it sleeps on the queue's NOTIFY
//! ([`queue::QueueListener`]).
//!
//! A message stays in the queue, invisible, until the run that claimed its
//! execution writes the outcome, which deletes it in the same statement. If
//! that process dies, the message becomes visible again when its visibility
//! timeout (one lease) runs out, and whoever reads it takes the execution over
//! once its lease has lapsed, as attempt + 1, up to `max_attempts`; then it
//! ends FAILED naming the attempts. Functions are pure JSON → JSON, so running
//! one again is safe.

use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use entity::execution::ExecutionStatus;

use super::{Executor, ModuleKey, retry, store};
use crate::queue::{self, Delivery, ExecutionJob, FALLBACK_POLL, QueueListener};
use crate::runtime::{CallStart, Slot};

/// Reads `execution_jobs` whenever this process has a free wasm thread, until
/// `shutdown`; runs already started finish (awaited by [`Executor::drain`]).
pub(super) async fn consume(executor: Executor, shutdown: CancellationToken) {
    let db = executor.inner.db.clone();
    let runtime = executor.inner.runtime.clone();
    let visibility = visibility_timeout(executor.inner.settings.lease);
    let mut arrivals = tokio::select! {
        _ = shutdown.cancelled() => return,
        arrivals = QueueListener::start(db.get_postgres_connection_pool().clone(), queue::EXECUTION_JOBS_QUEUE) => arrivals,
    };
    tracing::info!("executions.consumer.started");
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = runtime.reserve() => slot,
        };
        let mut slots = vec![first];
        slots.extend(std::iter::from_fn(|| runtime.try_reserve()));
        let read = tokio::select! {
            _ = shutdown.cancelled() => break,
            read = queue::read(&db, queue::EXECUTION_JOBS_QUEUE, visibility, slots.len() as i32) => read,
        };
        match read {
            Ok(deliveries) => {
                // A short read has emptied the queue as far as it could see:
                // what is sent after it is announced. (Reading again at once
                // cost an empty `pgmq.read` beside every claim.)
                let drained = deliveries.len() < slots.len();
                // The slots beyond the messages read are freed here.
                for (delivery, slot) in deliveries.into_iter().zip(slots.drain(..)) {
                    let executor = executor.clone();
                    executor
                        .inner
                        .tasks
                        .clone()
                        .spawn(async move { executor.run_job(delivery, slot).await });
                }
                if drained {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = arrivals.wait(FALLBACK_POLL) => {}
                    }
                }
            }
            Err(error) => {
                drop(slots);
                tracing::warn!(%error, "executions.consumer.read_failed");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(FALLBACK_POLL) => {}
                }
            }
        }
    }
    tracing::info!("executions.consumer.stopped");
}

/// pgmq counts visibility in whole seconds: at least one lease, rounded up.
fn visibility_timeout(lease: Duration) -> Duration {
    Duration::from_secs(lease.as_millis().div_ceil(1000).max(1) as u64)
}

impl Executor {
    /// One message: claim its execution, run it on `slot`, write the outcome.
    async fn run_job(&self, delivery: Delivery, slot: Slot) {
        let job: ExecutionJob = match delivery.decode() {
            Ok(job) => job,
            Err(error) => {
                tracing::warn!(msg_id = delivery.msg_id, %error, "execution_job.malformed");
                delete_message(&self.inner.db, delivery.msg_id).await;
                return;
            }
        };
        // The function and attempt are known once the execution is claimed.
        let span = tracing::info_span!(
            "execution",
            execution_id = %job.execution_id,
            function_id = tracing::field::Empty,
            attempt = tracing::field::Empty
        );
        async {
            if let Err(error) = self.run_claimed(&delivery, &job, slot).await {
                // The message comes back after its visibility timeout.
                tracing::error!(%error, "execution_job.failed");
            }
        }
        .instrument(span)
        .await
    }

    async fn run_claimed(
        &self,
        delivery: &Delivery,
        job: &ExecutionJob,
        slot: Slot,
    ) -> Result<(), super::ExecutionError> {
        let db = &self.inner.db;
        let settings = &self.inner.settings;
        // The module first, so RUNNING is written only once the thread can start.
        let named = job
            .function_id
            .zip(job.revision)
            .map(|(function_id, revision)| ModuleKey {
                function_id,
                revision,
            });
        let preloaded = match named {
            Some(key) => Some(self.load(key).await),
            None => None,
        };
        let (runner, lease, max) = (self.inner.runner, settings.lease, settings.max_attempts);
        let claimed = retry::transient("RUNNING", || {
            store::claim(db, job.execution_id, runner, lease, max)
        })
        .await?;
        let Some(running) = claimed else {
            return self.settle_unclaimed(delivery, job).await;
        };
        let span = tracing::Span::current();
        span.record("function_id", tracing::field::display(running.function_id));
        span.record("attempt", running.attempt);
        if running.attempt > 1 {
            crate::metrics::execution_retried();
            tracing::warn!("execution.taken_over");
        }
        tracing::info!("execution.started");
        let held = self.inner.held.hold(&running);
        // The revision recorded at acceptance is the one to run, whatever
        // the message named.
        let key = ModuleKey {
            function_id: running.function_id,
            revision: running.revision,
        };
        let module = match preloaded {
            Some(module) if named == Some(key) => module,
            _ => self.load(key).await,
        };
        // Nobody waits on a background run's first microseconds, and this
        // process's executor threads are busy with the other runs' writes.
        let outcome = self
            .invoke(
                slot,
                module,
                running.input.as_ref(),
                held.token(),
                CallStart::WasmThread,
            )
            .await;
        self.finish(&running, outcome, Some(delivery.msg_id))
            .await
            .map(drop)
    }

    /// The message's execution could not be claimed: it is gone or finished
    /// (drop the message), still owned by a live run (look again when its
    /// lease would lapse), or it used up its attempts (end it FAILED).
    async fn settle_unclaimed(
        &self,
        delivery: &Delivery,
        job: &ExecutionJob,
    ) -> Result<(), super::ExecutionError> {
        let db = &self.inner.db;
        let Some(execution) = store::get(db, job.execution_id).await? else {
            tracing::info!("execution_job.execution_gone");
            delete_message(db, delivery.msg_id).await;
            return Ok(());
        };
        if execution.status.is_final() || !execution.background {
            tracing::info!(status = ?execution.status, "execution_job.settled");
            delete_message(db, delivery.msg_id).await;
            return Ok(());
        }
        let max = self.inner.settings.max_attempts;
        if execution.status == ExecutionStatus::Running && execution.attempt >= max {
            let message = gave_up_message(execution.attempt);
            if store::give_up(db, &execution, &message, delivery.msg_id)
                .await?
                .is_some()
            {
                tracing::warn!(attempts = execution.attempt, "execution.given_up");
                return Ok(());
            }
            // Its lease was renewed, or another consumer ended it first.
            crate::metrics::execution_write_lost();
            tracing::warn!(attempt = execution.attempt, "execution.give_up_lost");
        }
        // Still someone's: look again about when the lease would lapse.
        let remaining = execution
            .lease_expires_at
            .map(|at| (at - chrono::Utc::now()).to_std().unwrap_or_default())
            .unwrap_or(self.inner.settings.lease);
        let delay = visibility_timeout(remaining + Duration::from_millis(100));
        queue::make_visible_in(db, queue::EXECUTION_JOBS_QUEUE, delivery.msg_id, delay).await?;
        Ok(())
    }
}

/// The failure of a background execution whose every run was interrupted.
fn gave_up_message(attempts: i32) -> String {
    let (times, runs) = if attempts == 1 {
        ("time", "run")
    } else {
        ("times", "runs")
    };
    format!(
        "interrupted {attempts} {times}: gave up after {attempts} {runs} (PROJECTNIL_EXEC_MAX_ATTEMPTS), \
         each stopped because the process running it stopped or lost its database; run it again"
    )
}

/// Deletes a handled message; a failure only means it comes back and is
/// settled again.
pub(super) async fn delete_message(db: &DatabaseConnection, msg_id: i64) {
    if let Err(error) = queue::delete(db, queue::EXECUTION_JOBS_QUEUE, msg_id).await {
        tracing::warn!(msg_id, %error, "execution_job.delete_failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_is_whole_seconds_of_at_least_a_lease() {
        assert_eq!(
            visibility_timeout(Duration::from_millis(300)),
            Duration::from_secs(1)
        );
        assert_eq!(
            visibility_timeout(Duration::from_millis(1000)),
            Duration::from_secs(1)
        );
        assert_eq!(
            visibility_timeout(Duration::from_millis(1001)),
            Duration::from_secs(2)
        );
        assert_eq!(visibility_timeout(Duration::ZERO), Duration::from_secs(1));
    }

    #[test]
    fn the_give_up_message_names_the_attempts() {
        assert!(gave_up_message(3).starts_with("interrupted 3 times: gave up after 3 runs"));
        assert!(gave_up_message(1).starts_with("interrupted 1 time: gave up after 1 run "));
    }
}
