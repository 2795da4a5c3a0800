//! What a process holds: the executions it runs or keeps waiting for a wasm
//! thread, each under a lease (owner id + expiry) in PostgreSQL. The keeper
//! renews every lease the process holds in one statement, a few times per
//! lease period, so recovery on any process reclaims only executions whose
//! process is gone or cut off ([`super::recovery`]). A run that is no longer
//! this process's (cancelled, ended by recovery, taken over by another
//! process) is stopped: at once when its final status is announced on the
//! event bus, at the latest at the next renewal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::execution::{self, ExecutionStatus};
use sea_orm::{ActiveEnum as _, DatabaseConnection};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::store::{self, RunnerId};
use crate::events::{BusMessage, BusReceiver};

/// One run: an execution and its attempt.
type RunKey = (Uuid, i32);

/// What a held run's renewal needs besides its key, and what stops it.
struct HeldRun {
    /// Names the execution's daily partition, so a renewal probes one.
    created_at: DateTime<Utc>,
    token: CancellationToken,
}

/// The runs this process holds, each with the token that stops it.
#[derive(Default)]
pub struct HeldRuns {
    runs: Mutex<HashMap<RunKey, HeldRun>>,
}

/// Holding one keeps the run's lease renewed; dropped when the run is over.
pub struct Held {
    runs: Arc<HeldRuns>,
    key: RunKey,
    token: CancellationToken,
}

impl Held {
    /// Fires when the run must stop: it is no longer this process's.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.runs.lock().remove(&self.key);
    }
}

impl HeldRuns {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RunKey, HeldRun>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds the run `execution` names (its id and attempt).
    pub fn hold(self: &Arc<Self>, execution: &execution::Model) -> Held {
        self.hold_with(execution, CancellationToken::new())
    }

    /// Holds a run that is already under way, stopped by `token`.
    pub fn hold_with(
        self: &Arc<Self>,
        execution: &execution::Model,
        token: CancellationToken,
    ) -> Held {
        let key = (execution.id, execution.attempt);
        let run = HeldRun {
            created_at: execution.created_at,
            token: token.clone(),
        };
        self.lock().insert(key, run);
        Held {
            runs: Arc::clone(self),
            key,
            token,
        }
    }

    /// Stops every run of `id` held here.
    pub fn stop(&self, id: Uuid) {
        for ((held, _), run) in self.lock().iter() {
            if *held == id {
                run.token.cancel();
            }
        }
    }

    fn leases(&self) -> Vec<store::Lease> {
        self.lock()
            .iter()
            .map(|(&(id, attempt), run)| store::Lease {
                id,
                attempt,
                created_at: run.created_at,
            })
            .collect()
    }

    fn stop_run(&self, key: RunKey) {
        if let Some(run) = self.lock().get(&key) {
            run.token.cancel();
        }
    }
}

/// Renews the leases of `runs` every third of `lease` and stops the runs this
/// process lost, until `stop`; with `events`, also stops a run as soon as its
/// final status is announced.
pub fn spawn_keeper(
    db: DatabaseConnection,
    owner: RunnerId,
    lease: Duration,
    runs: Arc<HeldRuns>,
    events: BusReceiver,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let watcher = tokio::spawn(watch_finals(Arc::clone(&runs), events, stop.clone()));
        let mut every = tokio::time::interval(lease / 3);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = every.tick() => {}
            }
            let held = runs.leases();
            if held.is_empty() {
                continue;
            }
            match store::renew(&db, owner, &held, lease).await {
                Ok(still) => {
                    let lost = held.iter().map(|run| (run.id, run.attempt));
                    for key in lost.filter(|key| !still.contains(key)) {
                        tracing::warn!(execution_id = %key.0, attempt = key.1, "execution.lease_lost");
                        runs.stop_run(key);
                    }
                }
                // Kept running: its outcome is written once the database is
                // back, unless recovery reclaimed it meanwhile.
                Err(error) => tracing::warn!(%error, "execution.lease_renew_failed"),
            }
        }
        watcher.abort();
    })
}

async fn watch_finals(runs: Arc<HeldRuns>, mut events: BusReceiver, stop: CancellationToken) {
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return,
            message = events.recv() => message,
        };
        match message {
            Ok(BusMessage::Execution(announcement))
                if ExecutionStatus::try_from_value(&announcement.change.status)
                    .is_ok_and(ExecutionStatus::is_final) =>
            {
                runs.stop(announcement.change.id);
            }
            // A missed announcement is caught by the next renewal.
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}
