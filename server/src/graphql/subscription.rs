//! Live status and change streams. The subscriber registers on the process's event bus
//! before reading the current state, so no transition between a mutation's
//! response and the subscribe is lost; with an id, the first event is that
//! current state (previousStatus null). Afterwards an event is passed on only if
//! it continues from the last status sent, so an announcement that was already
//! buffered before the snapshot never makes a subscriber see a stale state last.
//! A lagging subscriber, a reconnected listener, or a stream that could not
//! load a transition's entity gets the current state again.

mod status;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_graphql::{Context, Result, Subscription};
use chrono::Utc;
use futures::stream::BoxStream;
use futures::{FutureExt as _, Stream, StreamExt as _};
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ErrorCode};
use super::types::{
    Execution, ExecutionStatusEvent, Function, FunctionChangeEvent, FunctionChangeKind,
    FunctionStatusEvent,
};
use crate::events::{self, Announcement, BusMessage, ExecutionAnnouncement, StatusChange};
use crate::executions;
use crate::functions::{self, FunctionRecord};
use status::{ExecutionStatusFollowed, Followed, FunctionStatusFollowed, follow_one};

pub struct SubscriptionRoot;

/// Whether subscribers of `request` may share one stream of its results
/// (`http::ws`'s shared fan-out): a subscription whose every root field is
/// called without an `id`. Those streams pass on the events of all
/// functions or executions (or of one function's executions) as they come,
/// the same whenever one joins and whoever asks: access is all or nothing
/// (an API key), so no result depends on the connection. With an `id`, a
/// stream starts with the current state and follows on from it, which is
/// each subscriber's own.
pub fn shares_results(request: &async_graphql::Request) -> bool {
    use async_graphql::parser::types::{OperationType, Selection};
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return false;
    };
    let operation = match &request.operation_name {
        Some(name) => document
            .operations
            .iter()
            .find(|(n, _)| n.is_some_and(|n| n.as_str() == name)),
        None => document.operations.iter().next(),
    };
    let Some((_, operation)) = operation else {
        return false;
    };
    let operation = &operation.node;
    if operation.ty != OperationType::Subscription {
        return false;
    }
    operation.selection_set.node.items.iter().all(|selection| {
        let Selection::Field(field) = &selection.node else {
            return false;
        };
        field.node.arguments.iter().all(|(name, value)| {
            name.node.as_str() != "id"
                || value
                    .node
                    .clone()
                    .into_const_with(|variable| {
                        Ok::<_, ()>(
                            request
                                .variables
                                .get(&variable)
                                .cloned()
                                .unwrap_or(async_graphql::Value::Null),
                        )
                    })
                    .is_ok_and(|value| value == async_graphql::Value::Null)
        })
    })
}

/// How many events a stream without an `id` has taken from the bus and is
/// still loading. The shared fan-out (`http::ws::shared`) puts one in the
/// request: while some are on their way it holds a result back to write it
/// with the next ones (one write per socket instead of one per result), and
/// when none are it writes at once instead of waiting to see whether more
/// come. `functionChanged` loads one event at a time and counts none, so each
/// of its results goes out as it comes.
#[derive(Debug, Clone, Default)]
pub struct Arriving(Arc<AtomicUsize>);

impl Arriving {
    /// Whether the stream's next result is already being loaded.
    pub fn any(&self) -> bool {
        self.0.load(Ordering::Acquire) > 0
    }

    fn taken(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }

    fn handed_on(&self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a subscriber that fell behind the events gets before its stream ends.
pub const FELL_BEHIND: &str =
    "this subscription fell too far behind the event stream and was closed; subscribe again";

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Transitions of one function (id given; its current state is sent first) or of every function (id omitted).
    async fn function_status_changed(
        &self,
        ctx: &Context<'_>,
        id: Option<Uuid>,
    ) -> BoxStream<'static, Result<FunctionStatusEvent>> {
        let state = ctx.data_unchecked::<AppState>().clone();
        let bus = state.events.subscribe();
        let Some(id) = id else {
            return follow_all(bus, ctx.data_opt().cloned(), move |message| {
                let announcement = FunctionStatusFollowed::announcement(message)?;
                event_of::<FunctionStatusFollowed>(&state, announcement)
            });
        };
        follow_one::<FunctionStatusFollowed>(state, bus, id, |_| true)
    }

    /// Transitions of one execution (id given; its current state is sent first), of one function's executions, or of all.
    async fn execution_status_changed(
        &self,
        ctx: &Context<'_>,
        id: Option<Uuid>,
        function_id: Option<Uuid>,
    ) -> BoxStream<'static, Result<ExecutionStatusEvent>> {
        let state = ctx.data_unchecked::<AppState>().clone();
        let bus = state.events.subscribe();
        let Some(id) = id else {
            return follow_all(bus, ctx.data_opt().cloned(), move |message| {
                let announcement = ExecutionStatusFollowed::announcement(message)?;
                if function_id.is_some_and(|f| f != announcement.change.function_id) {
                    return None;
                }
                event_of::<ExecutionStatusFollowed>(&state, announcement)
            });
        };
        follow_one::<ExecutionStatusFollowed>(state, bus, id, move |event| {
            function_id.is_none_or(|f| f == event.execution.function_id)
        })
    }

    /// Every change of one function (id given; its current state first) or of every function.
    async fn function_changed(
        &self,
        ctx: &Context<'_>,
        id: Option<Uuid>,
    ) -> impl Stream<Item = Result<FunctionChangeEvent>> {
        let state = ctx.data_unchecked::<AppState>().clone();
        let mut bus = state.events.subscribe();
        async_stream::stream! {
            if let Some(id) = id {
                match current_function(&state, id).await {
                    Ok(Some(event)) => yield Ok(event),
                    Ok(None) => { yield Err(not_found("function", id)); return; }
                    Err(error) => { yield Err(error.into()); return; }
                }
            }
            loop {
                let (kind, function_id, at, loaded) = match bus.recv().await {
                    Ok(BusMessage::Function(announcement)) => {
                        let change = &announcement.change;
                        if id.is_some_and(|id| id != change.id) {
                            continue;
                        }
                        let kind = match change.previous_status {
                            None => FunctionChangeKind::Created,
                            Some(_) => FunctionChangeKind::StatusChanged,
                        };
                        (kind, change.id, change.at, load_function(&state, &announcement, change.id).await)
                    }
                    Ok(BusMessage::FunctionChanged(announcement)) => {
                        let change = &announcement.change;
                        if id.is_some_and(|id| id != change.id) {
                            continue;
                        }
                        let loaded = match change.change {
                            events::FunctionChangeKind::Deleted => Ok(None),
                            _ => load_function(&state, &announcement, change.id).await,
                        };
                        (change.change.into(), change.id, change.at, loaded)
                    }
                    Ok(BusMessage::Execution(_)) => continue,
                    Ok(BusMessage::Resync) | Err(RecvError::Lagged(_)) if id.is_some() => {
                        let Some(id) = id else { continue };
                        match current_function(&state, id).await {
                            Ok(Some(event)) => { yield Ok(event); continue; }
                            // Deleted while the stream was not listening.
                            Ok(None) => (FunctionChangeKind::Deleted, id, Utc::now(), Ok(None)),
                            Err(error) => { yield Err(error.into()); continue; }
                        }
                    }
                    Ok(BusMessage::Resync) => continue,
                    Err(RecvError::Lagged(_)) => { yield Err(ApiError::new(ErrorCode::InternalServerError, FELL_BEHIND).into()); return; }
                    Err(RecvError::Closed) => return,
                };
                match loaded {
                    Ok(function) if function.is_some() || kind == FunctionChangeKind::Deleted => {
                        let deleted = function.is_none();
                        yield Ok(FunctionChangeEvent { kind, function_id, function, at });
                        if deleted && id.is_some() {
                            return;
                        }
                    }
                    // Gone before it could be loaded: its DELETED follows.
                    Ok(_) => {}
                    Err(error) => yield Err(error.into()),
                }
            }
        }
    }
}

/// Announcements whose entities may be loading at once on an id-less stream.
const LOAD_AHEAD: usize = 32;

/// What one bus message becomes on an id-less stream.
enum Step<T> {
    Event(Option<Result<T>>),
    FellBehind,
}

/// An id-less stream: every announcement `event` picks, its entity loaded up
/// to [`LOAD_AHEAD`] announcements ahead and handed on in order, each
/// counted in `arriving` from when it is taken until it is handed on. Such a
/// stream is shared by all its subscribers, so it must keep up with the bus
/// although each load is a database round trip. No snapshot, no `last`
/// status: it passes changes on as they come, and ends with an error when it
/// falls behind the bus.
fn follow_all<T, F, Fut>(
    bus: events::BusReceiver,
    arriving: Option<Arriving>,
    event: F,
) -> BoxStream<'static, Result<T>>
where
    T: Send + 'static,
    F: Fn(BusMessage) -> Option<Fut> + Send + 'static,
    Fut: Future<Output = Option<Result<T>>> + Send + 'static,
{
    let arriving = arriving.unwrap_or_default();
    let taking = arriving.clone();
    BroadcastStream::new(bus)
        .filter_map(move |message| {
            std::future::ready(match message {
                Ok(message) => event(message).map(|load| {
                    taking.taken();
                    load.map(Step::Event).left_future()
                }),
                Err(BroadcastStreamRecvError::Lagged(_)) => {
                    Some(std::future::ready(Step::FellBehind).right_future())
                }
            })
        })
        .buffered(LOAD_AHEAD)
        .scan(false, move |ended, step| {
            let item = match step {
                Step::Event(event) => {
                    arriving.handed_on();
                    (!*ended).then_some(event)
                }
                _ if *ended => None,
                Step::FellBehind => {
                    *ended = true;
                    Some(Some(Err(ApiError::new(
                        ErrorCode::InternalServerError,
                        FELL_BEHIND,
                    )
                    .into())))
                }
            };
            std::future::ready(item)
        })
        .filter_map(std::future::ready)
        .boxed()
}

fn not_found(what: &str, id: Uuid) -> async_graphql::Error {
    ApiError::new(ErrorCode::NotFound, format!("no {what} with id {id}")).into()
}

/// The event of a status announcement on an id-less stream, to be loaded;
/// `None` when its status is not one this API knows.
fn event_of<F: Followed>(
    state: &AppState,
    announcement: Arc<Announcement<StatusChange, F::Entity>>,
) -> Option<impl Future<Output = Option<Result<F::Event>>> + Send + use<F>> {
    let (status, previous) = F::transition(&announcement.change)?;
    let state = state.clone();
    Some(async move {
        F::event(&state, &announcement, status, previous)
            .await
            .map_err(Into::into)
            .transpose()
    })
}

/// The function as it is now, as the first event of `functionChanged`.
async fn current_function(
    state: &AppState,
    id: Uuid,
) -> Result<Option<FunctionChangeEvent>, ApiError> {
    let record = functions::get(&state.reads, id).await?;
    Ok(record.map(|record| FunctionChangeEvent {
        kind: FunctionChangeKind::Current,
        function_id: id,
        function: Some(record.into()),
        at: Utc::now(),
    }))
}

/// Loads the function once per announcement, however many subscribers want it.
async fn load_function<C>(
    state: &AppState,
    announcement: &Arc<Announcement<C, FunctionRecord>>,
    id: Uuid,
) -> Result<Option<Function>, ApiError> {
    let record = retry_once(|| announcement.entity(|| functions::get(&state.reads, id))).await?;
    Ok(record.map(Function::from))
}

async fn load_execution(
    state: &AppState,
    announcement: &Arc<ExecutionAnnouncement>,
) -> Result<Option<Execution>, ApiError> {
    let id = announcement.change.id;
    let model = retry_once(|| announcement.entity(|| executions::get(&state.reads, id))).await?;
    Ok(model.map(Execution::from))
}

/// A load that fails (the database blinked) is tried once more before the
/// subscriber is told, so one transient error does not cost it the event.
async fn retry_once<T, F, Fut>(load: F) -> Result<T, sea_orm::DbErr>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, sea_orm::DbErr>>,
{
    match load().await {
        Ok(value) => Ok(value),
        Err(_) => {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            load().await
        }
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{Request, Variables};
    use serde_json::json;

    use super::{Arriving, follow_all, shares_results};
    use crate::events::{Announcement, BusMessage, StatusChange};

    fn request(query: &str, variables: serde_json::Value) -> Request {
        Request::new(query).variables(Variables::from_json(variables))
    }

    #[test]
    fn only_subscriptions_without_an_id_are_shared() {
        let shared = [
            (
                "subscription { functionStatusChanged { status } }",
                json!({}),
            ),
            (
                "subscription($f: UUID) { executionStatusChanged(functionId: $f) { status } }",
                json!({ "f": "00000000-0000-0000-0000-000000000001" }),
            ),
            (
                "subscription($id: UUID) { functionChanged(id: $id) { kind } }",
                json!({}),
            ),
            (
                "subscription { functionChanged(id: null) { kind } }",
                json!({}),
            ),
            (
                "query Q { languages } subscription S { functionChanged { kind } }",
                json!({}),
            ),
        ];
        for (query, variables) in shared {
            let mut request = request(query, variables);
            if query.starts_with("query Q") {
                request = request.operation_name("S");
            }
            assert!(shares_results(&request), "{query}");
        }
        let own = [
            (
                "subscription { functionStatusChanged(id: \"00000000-0000-0000-0000-000000000001\") { status } }",
                json!({}),
            ),
            (
                "subscription($id: UUID) { executionStatusChanged(id: $id) { status } }",
                json!({ "id": "00000000-0000-0000-0000-000000000001" }),
            ),
            ("{ languages }", json!({})),
            (
                "subscription { ...F } fragment F on Subscription { functionChanged { kind } }",
                json!({}),
            ),
            ("subscription {", json!({})),
        ];
        for (query, variables) in own {
            assert!(!shares_results(&request(query, variables)), "{query}");
        }
    }

    #[tokio::test]
    async fn an_id_less_stream_counts_the_events_it_is_still_loading() {
        use futures::{FutureExt as _, StreamExt as _};
        let (bus, receiver) = tokio::sync::broadcast::channel(8);
        let (release, released) = tokio::sync::watch::channel(false);
        let arriving = Arriving::default();
        // Resyncs are this stream's events, loaded once released; executions
        // are not its business.
        let mut stream = follow_all(receiver, Some(arriving.clone()), move |message| {
            let mut released = released.clone();
            matches!(message, BusMessage::Resync).then(|| async move {
                let _ = released.wait_for(|go| *go).await;
                Some(Ok(7))
            })
        });
        let ignored = Announcement::new(StatusChange {
            id: uuid::Uuid::now_v7(),
            function_id: uuid::Uuid::now_v7(),
            previous_status: None,
            status: "PENDING".into(),
            at: chrono::Utc::now(),
        });
        bus.send(BusMessage::Execution(std::sync::Arc::new(ignored)))
            .unwrap();
        assert!(stream.next().now_or_never().is_none());
        assert!(
            !arriving.any(),
            "an event the stream ignores is not arriving"
        );

        bus.send(BusMessage::Resync).unwrap();
        bus.send(BusMessage::Resync).unwrap();
        assert!(stream.next().now_or_never().is_none(), "nothing loaded yet");
        assert!(arriving.any(), "both are on their way");
        release.send(true).unwrap();
        assert_eq!(stream.next().await.unwrap().unwrap(), 7);
        assert!(arriving.any(), "the second is still to be handed on");
        assert_eq!(stream.next().await.unwrap().unwrap(), 7);
        assert!(!arriving.any(), "both handed on");
    }
}
