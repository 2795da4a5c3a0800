//! Change fan-out. Every status transition of a function or an execution, and
//! every other change of a function (edit, deploy, delete), is announced by a
//! database trigger with `pg_notify` when its transaction commits (see
//! migrations `m20261129_000003_status_notifications` and
//! `m20261201_000008_function_versions`). This module keeps one
//! LISTEN connection per process and fans the announcements out to every
//! subscriber in the process through a bounded broadcast channel, so a transition
//! made by any replica or worker reaches every subscriber on every replica.

mod listener;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::sync::{OnceCell, broadcast};
use uuid::Uuid;

pub use listener::{BUS_CAPACITY, EventBus};

/// One announcement as the database sends it, told apart by its `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub(crate) enum Notification {
    Function(StatusChange),
    Execution(StatusChange),
    FunctionChange(FunctionChange),
}

/// One committed status transition, as announced by the database.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    pub id: Uuid,
    pub function_id: Uuid,
    /// `None` when the row was inserted.
    pub previous_status: Option<String>,
    pub status: String,
    pub at: DateTime<Utc>,
}

/// A change of a function other than its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FunctionChangeKind {
    /// Name, description, source or language changed.
    Updated,
    /// Another revision is deployed.
    Deployed,
    Deleted,
}

/// One committed change of a function other than its status.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionChange {
    pub change: FunctionChangeKind,
    pub id: Uuid,
    /// The latest revision; for `Deployed`, the deployed one.
    pub revision: i64,
    pub at: DateTime<Utc>,
}

/// A change as handed to subscribers. The entity it is about is loaded at
/// most once per change and shared by every subscriber that needs it.
#[derive(Debug)]
pub struct Announcement<C, T> {
    pub change: C,
    loaded: OnceCell<Option<T>>,
}

impl<C, T: Clone> Announcement<C, T> {
    pub fn new(change: C) -> Self {
        Self {
            change,
            loaded: OnceCell::new(),
        }
    }

    /// The entity after this change, loaded by the first subscriber to ask.
    pub async fn entity<E, F, Fut>(&self, load: F) -> Result<Option<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        self.loaded.get_or_try_init(load).await.cloned()
    }
}

pub type FunctionStatusAnnouncement = Announcement<StatusChange, crate::functions::FunctionRecord>;
pub type FunctionChangeAnnouncement =
    Announcement<FunctionChange, crate::functions::FunctionRecord>;
pub type ExecutionAnnouncement = Announcement<StatusChange, entity::execution::Model>;

/// What the bus carries.
#[derive(Debug, Clone)]
pub enum BusMessage {
    Function(Arc<FunctionStatusAnnouncement>),
    FunctionChanged(Arc<FunctionChangeAnnouncement>),
    Execution(Arc<ExecutionAnnouncement>),
    /// The LISTEN connection was lost and is back: announcements may have been
    /// missed, so subscribers re-send the current state of what they follow.
    Resync,
}

pub type BusReceiver = broadcast::Receiver<BusMessage>;
