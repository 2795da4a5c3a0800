//! Status streams of one function or one execution, followed by id. Such a
//! stream starts with the entity's current state and passes on only the
//! transitions that continue from the status it sent last; a lag, a
//! reconnected listener or a failed load makes it read the current state
//! again ([`Reread`]). One loop ([`follow_one`]) serves both kinds of
//! entity; [`Followed`] is what differs between them, and also builds the
//! events of the id-less streams.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::Result;
use chrono::Utc;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use uuid::Uuid;

use super::{load_execution, load_function, not_found};
use crate::events::{
    self, Announcement, BusMessage, ExecutionAnnouncement, FunctionStatusAnnouncement, StatusChange,
};
use crate::executions;
use crate::functions::{self, FunctionRecord};
use crate::graphql::AppState;
use crate::graphql::error::ApiError;
use crate::graphql::types::{
    Execution, ExecutionStatus, ExecutionStatusEvent, Function, FunctionStatus, FunctionStatusEvent,
};

/// What differs between following a function's status and an execution's.
pub(super) trait Followed: Send + 'static {
    type Entity: Clone + Send + Sync + 'static;
    type Status: Copy + PartialEq + Send + Sync + 'static;
    type Event: Send + 'static;
    /// The entity's name in "no … with id": `function`, `execution`.
    const WHAT: &'static str;

    /// The status transition `message` announces, if it is one of this kind.
    fn announcement(message: BusMessage) -> Option<Arc<Announcement<StatusChange, Self::Entity>>>;

    fn parse(status: &str) -> Option<Self::Status>;

    /// The status `change` moved to and the one it left; `None` when the new
    /// one is not a status this API knows.
    fn transition(change: &StatusChange) -> Option<(Self::Status, Option<Self::Status>)> {
        let status = Self::parse(&change.status)?;
        Some((
            status,
            change.previous_status.as_deref().and_then(Self::parse),
        ))
    }

    /// The event of `announcement`, its entity loaded once for every
    /// subscriber; `None` when the entity is gone.
    fn event(
        state: &AppState,
        announcement: &Arc<Announcement<StatusChange, Self::Entity>>,
        status: Self::Status,
        previous: Option<Self::Status>,
    ) -> impl Future<Output = Result<Option<Self::Event>, ApiError>> + Send;

    /// The current state as an event (`previous`: the status the subscriber
    /// saw last); `None` when there is no such entity.
    fn snapshot(
        state: &AppState,
        id: Uuid,
        previous: Option<Self::Status>,
    ) -> impl Future<Output = Result<Option<Self::Event>, ApiError>> + Send;

    /// How far the subscriber has seen the entity: its status, and what
    /// else a whole round of transitions during a gap can change.
    fn position(event: &Self::Event) -> Position<Self::Status>;

    /// Nothing follows this status.
    fn is_final(status: Self::Status) -> bool;
}

/// What a stream with an id has sent last: the status, and the function's
/// revision (a whole recompile, READY → … → READY, can happen during a gap,
/// and the revision tells it from "nothing happened"). `None` for an
/// execution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Position<S> {
    status: S,
    revision: Option<i64>,
}

/// A function's status.
pub(super) struct FunctionStatusFollowed;

impl Followed for FunctionStatusFollowed {
    type Entity = FunctionRecord;
    type Status = FunctionStatus;
    type Event = FunctionStatusEvent;
    const WHAT: &'static str = "function";

    fn announcement(message: BusMessage) -> Option<Arc<FunctionStatusAnnouncement>> {
        match message {
            BusMessage::Function(announcement) => Some(announcement),
            _ => None,
        }
    }

    fn parse(status: &str) -> Option<FunctionStatus> {
        FunctionStatus::parse(status)
    }

    async fn event(
        state: &AppState,
        announcement: &Arc<FunctionStatusAnnouncement>,
        status: FunctionStatus,
        previous: Option<FunctionStatus>,
    ) -> Result<Option<FunctionStatusEvent>, ApiError> {
        let change = &announcement.change;
        let function = load_function(state, announcement, change.id).await?;
        Ok(function.map(|function| FunctionStatusEvent {
            function,
            previous_status: previous,
            status,
            at: change.at,
        }))
    }

    async fn snapshot(
        state: &AppState,
        id: Uuid,
        previous: Option<FunctionStatus>,
    ) -> Result<Option<FunctionStatusEvent>, ApiError> {
        let record = functions::get(&state.reads, id).await?;
        Ok(record.map(|record| {
            let function = Function::from(record);
            FunctionStatusEvent {
                status: function.status,
                function,
                previous_status: previous,
                at: Utc::now(),
            }
        }))
    }

    fn position(event: &FunctionStatusEvent) -> Position<FunctionStatus> {
        Position {
            status: event.status,
            revision: Some(event.function.revision),
        }
    }

    fn is_final(_: FunctionStatus) -> bool {
        false
    }
}

/// An execution's status.
pub(super) struct ExecutionStatusFollowed;

impl Followed for ExecutionStatusFollowed {
    type Entity = entity::execution::Model;
    type Status = ExecutionStatus;
    type Event = ExecutionStatusEvent;
    const WHAT: &'static str = "execution";

    fn announcement(message: BusMessage) -> Option<Arc<ExecutionAnnouncement>> {
        match message {
            BusMessage::Execution(announcement) => Some(announcement),
            _ => None,
        }
    }

    fn parse(status: &str) -> Option<ExecutionStatus> {
        ExecutionStatus::parse(status)
    }

    async fn event(
        state: &AppState,
        announcement: &Arc<ExecutionAnnouncement>,
        status: ExecutionStatus,
        previous: Option<ExecutionStatus>,
    ) -> Result<Option<ExecutionStatusEvent>, ApiError> {
        let execution = load_execution(state, announcement).await?;
        Ok(execution.map(|execution| ExecutionStatusEvent {
            execution,
            previous_status: previous,
            status,
            at: announcement.change.at,
        }))
    }

    async fn snapshot(
        state: &AppState,
        id: Uuid,
        previous: Option<ExecutionStatus>,
    ) -> Result<Option<ExecutionStatusEvent>, ApiError> {
        let model = executions::get(&state.reads, id).await?;
        Ok(model.map(|model| {
            let execution = Execution::from(model);
            ExecutionStatusEvent {
                status: execution.status,
                execution,
                previous_status: previous,
                at: Utc::now(),
            }
        }))
    }

    fn position(event: &ExecutionStatusEvent) -> Position<ExecutionStatus> {
        Position {
            status: event.status,
            revision: None,
        }
    }

    fn is_final(status: ExecutionStatus) -> bool {
        status.is_final()
    }
}

/// The status stream of entity `id`: its current state first (if `belongs`
/// to what was asked for, else NOT_FOUND), then each transition that
/// continues from the status sent last, until a final status or the
/// entity's deletion.
pub(super) fn follow_one<F: Followed>(
    state: AppState,
    mut bus: events::BusReceiver,
    id: Uuid,
    belongs: impl FnOnce(&F::Event) -> bool + Send + 'static,
) -> BoxStream<'static, Result<F::Event>> {
    async_stream::stream! {
        let event = match F::snapshot(&state, id, None).await {
            Ok(Some(event)) if belongs(&event) => event,
            Ok(_) => { yield Err(not_found(F::WHAT, id)); return; }
            Err(error) => { yield Err(error.into()); return; }
        };
        let mut last = F::position(&event);
        yield Ok(event);
        // Already over when it was subscribed: nothing more will happen.
        if F::is_final(last.status) {
            return;
        }
        let mut reread = Reread::default();
        loop {
            let resync = match reread.next_message(&mut bus).await {
                Ok(BusMessage::Resync) | Err(RecvError::Lagged(_)) => true,
                Err(RecvError::Closed) => return,
                Ok(message) => {
                    let Some(announcement) = F::announcement(message) else { continue };
                    let change = &announcement.change;
                    if change.id != id {
                        continue;
                    }
                    let Some((status, previous)) = F::transition(change) else { continue };
                    if reread.pending() {
                        true
                    } else if previous != Some(last.status) {
                        continue;
                    } else {
                        match F::event(&state, &announcement, status, previous).await {
                            Ok(Some(event)) => {
                                last = F::position(&event);
                                yield Ok(event);
                                if F::is_final(status) {
                                    return;
                                }
                                false
                            }
                            Ok(None) => return, // deleted: nothing more will happen
                            Err(error) => {
                                yield Err(error.into());
                                reread.failed();
                                true
                            }
                        }
                    }
                }
            };
            if !resync {
                continue;
            }
            match F::snapshot(&state, id, Some(last.status)).await {
                Ok(Some(event)) => {
                    reread.succeeded();
                    let now = F::position(&event);
                    if now != last {
                        last = now;
                        yield Ok(event);
                        if F::is_final(now.status) {
                            return;
                        }
                    }
                }
                Ok(None) => return,
                Err(error) => {
                    if let Some(error) = reread.failed_with(error) {
                        yield Err(error.into());
                    }
                }
            }
        }
    }
    .boxed()
}

/// After a failed read, how long a stream with an id waits for its next
/// announcement before it reads the current state again by itself; doubled
/// after each further failure, up to [`REREAD_AFTER_MAX`], so that an outage
/// does not have every such stream read every second.
const REREAD_AFTER: Duration = Duration::from_secs(1);
const REREAD_AFTER_MAX: Duration = Duration::from_secs(30);

/// Whether a stream with an id must read its entity's current state again.
///
/// Such a stream passes on an announcement only if it continues from the
/// status it sent last. When the entity of a transition could not be loaded,
/// that status is behind, so every later announcement would be skipped as
/// out of order and the subscriber would never learn the final state.
/// Instead the stream reads the current state at once, and again at its
/// next announcement or after [`REREAD_AFTER`] (whichever comes first) until
/// a read succeeds. The subscriber is told of the failure once, not of every
/// retry.
#[derive(Debug)]
struct Reread {
    due: Option<Instant>,
    wait: Duration,
}

impl Default for Reread {
    fn default() -> Self {
        Self {
            due: None,
            wait: REREAD_AFTER,
        }
    }
}

impl Reread {
    fn pending(&self) -> bool {
        self.due.is_some()
    }

    /// The next bus message; a `Resync` of its own when a reread is due.
    async fn next_message(&self, bus: &mut events::BusReceiver) -> Result<BusMessage, RecvError> {
        let Some(due) = self.due else {
            return bus.recv().await;
        };
        tokio::select! {
            message = bus.recv() => message,
            () = tokio::time::sleep_until(due) => Ok(BusMessage::Resync),
        }
    }

    /// A load failed and the subscriber has been told; the reread follows
    /// at once.
    fn failed(&mut self) {
        self.due = Some(Instant::now());
    }

    /// A reread failed: the next one is due after the current wait, which
    /// doubles. The error, if the subscriber has not been told of this
    /// failure yet.
    fn failed_with(&mut self, error: ApiError) -> Option<ApiError> {
        let told = self.pending();
        self.due = Some(Instant::now() + self.wait);
        self.wait = (self.wait * 2).min(REREAD_AFTER_MAX);
        if told {
            tracing::debug!(reason = %error.message, "subscription.reread_failed");
            None
        } else {
            Some(error)
        }
    }

    fn succeeded(&mut self) {
        *self = Self::default();
    }
}
