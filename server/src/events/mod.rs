//! Status-change fan-out. Every transition of a function or an execution is
//! announced by a database trigger with `pg_notify` when its transaction commits
//! (see migration `m20261129_000003_status_notifications`). This module keeps one
//! LISTEN connection per process and fans the announcements out to every
//! subscriber in the process through a bounded broadcast channel, so a transition
//! made by any replica or worker reaches every subscriber on every replica.

mod listener;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::sync::{OnceCell, broadcast};
use uuid::Uuid;

pub use listener::EventBus;

/// What a transition is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntityKind {
    Function,
    Execution,
}

/// One committed status transition, as announced by the database.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    pub kind: EntityKind,
    pub id: Uuid,
    pub function_id: Uuid,
    /// `None` when the row was inserted.
    pub previous_status: Option<String>,
    pub status: String,
    pub at: DateTime<Utc>,
}

/// A transition as handed to subscribers. The entity it is about is loaded at
/// most once per transition and shared by every subscriber that needs it.
#[derive(Debug)]
pub struct Announcement<T> {
    pub change: StatusChange,
    loaded: OnceCell<Option<T>>,
}

impl<T: Clone> Announcement<T> {
    pub fn new(change: StatusChange) -> Self {
        Self {
            change,
            loaded: OnceCell::new(),
        }
    }

    /// The entity after this transition, loaded by the first subscriber to ask.
    pub async fn entity<E, F, Fut>(&self, load: F) -> Result<Option<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        self.loaded.get_or_try_init(load).await.cloned()
    }
}

/// What the bus carries.
#[derive(Debug, Clone)]
pub enum BusMessage {
    Function(Arc<Announcement<crate::functions::FunctionRecord>>),
    Execution(Arc<Announcement<entity::execution::Model>>),
    /// The LISTEN connection was lost and is back: announcements may have been
    /// missed, so subscribers re-send the current state of what they follow.
    Resync,
}

pub type BusReceiver = broadcast::Receiver<BusMessage>;
