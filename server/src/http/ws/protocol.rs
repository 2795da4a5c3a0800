//! The protocol state machine of one connection: which client messages are
//! valid, which operations are live, and what the client gets of each
//! operation's results.
//!
//! Operations run as async-graphql response streams
//! ([`Executor::execute_stream`]) owned here, one per operation id; a result
//! is serialised once, straight into the protocol's message. Nothing of the
//! library's own WebSocket protocol is involved, so what the client may see
//! is decided in one place.

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::http::ClientMessage;
use async_graphql::{Data, Executor, Request, Response};
use futures::StreamExt;
use futures::stream::BoxStream;
use poem::web::websocket::Message;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio_stream::StreamMap;

use super::Protocol;
use super::outbox::Deliver;
use super::session::{Stop, close};
use super::shared::{SharedResult, SharedStreams};
use crate::graphql::error::{ApiError, ErrorCode};
use crate::graphql::operation::Operation;
use crate::graphql::subscription::FELL_BEHIND;

/// What an operation produces.
pub(super) enum Event {
    /// A result of the operation's own stream.
    Response(Box<Response>),
    /// What a stream it shares with other subscribers (which writes its
    /// results to the socket itself) says about it.
    Shared(Arc<SharedResult>),
    /// It ended (a `StreamMap` drops finished streams silently, so the end
    /// is an event of its own).
    End,
}

type Results = BoxStream<'static, Event>;

/// The protocol state of one connection.
pub(super) struct State<E> {
    protocol: Protocol,
    executor: E,
    /// The shared streams, and this connection's socket they write to.
    shared: Option<(SharedStreams, Arc<dyn Deliver>)>,
    max_operations: usize,
    pub(super) init_received: bool,
    /// The connection's data once connection_init was accepted.
    data: Option<Arc<Data>>,
    /// The live operations: removed when they end on the wire (our
    /// `complete` or `error`, or the client's `complete`).
    pub(super) operations: StreamMap<String, Results>,
    /// Live operations that already sent a result; request errors can only
    /// be the first.
    answered: HashSet<String>,
}

/// What a client message asks of the session.
#[derive(Debug)]
pub(super) enum Step {
    /// Send these, and go on.
    Reply(Vec<Message>),
    /// Decide on connection_init with this payload (`{}` when it had none),
    /// then hand the answer to [`State::on_auth`].
    Authenticate(Value),
}

/// A server message with an id.
#[derive(Serialize)]
struct Addressed<'a, P> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    payload: P,
}

fn text(value: &impl Serialize) -> Message {
    // Serialising plain data (strings, maps and async-graphql values) to a
    // string cannot fail.
    Message::text(serde_json::to_string(value).unwrap_or_default())
}

/// `{"id", "type", "payload"}` around a payload already serialised.
pub(super) fn addressed_json(id: &str, kind: &str, payload: &str) -> String {
    let id = serde_json::to_string(id).unwrap_or_default();
    format!(r#"{{"id":{id},"type":"{kind}","payload":{payload}}}"#)
}

fn addressed_raw(id: &str, kind: &str, payload: &str) -> Message {
    Message::text(addressed_json(id, kind, payload))
}

fn complete(id: &str) -> Message {
    text(&json!({ "id": id, "type": "complete" }))
}

impl<E: Executor> State<E> {
    pub(super) fn new(
        protocol: Protocol,
        executor: E,
        shared: Option<(SharedStreams, Arc<dyn Deliver>)>,
        max_operations: usize,
    ) -> Self {
        Self {
            protocol,
            executor,
            shared,
            max_operations,
            init_received: false,
            data: None,
            operations: StreamMap::new(),
            answered: HashSet::new(),
        }
    }

    pub(super) fn acknowledged(&self) -> bool {
        self.data.is_some()
    }

    pub(super) fn keepalive(&self) -> String {
        match self.protocol {
            Protocol::TransportWs => json!({ "type": "ping" }).to_string(),
            Protocol::Legacy => json!({ "type": "ka" }).to_string(),
        }
    }

    /// A message from the client.
    pub(super) fn on_client(&mut self, bytes: &[u8]) -> Result<Step, Stop> {
        match self.protocol {
            Protocol::TransportWs => self.transport_ws_client(bytes),
            Protocol::Legacy => self.legacy_client(bytes),
        }
    }

    /// The [`super::ConnectionAuth`]'s answer to connection_init.
    pub(super) fn on_auth(
        &mut self,
        answer: async_graphql::Result<Data>,
    ) -> Result<Vec<Message>, Stop> {
        match (answer, self.protocol) {
            (Ok(data), protocol) => {
                self.data = Some(Arc::new(data));
                let ack = text(&json!({ "type": "connection_ack" }));
                Ok(match protocol {
                    // subscriptions-transport-ws servers send a first `ka` at once.
                    Protocol::Legacy => vec![ack, Message::text(self.keepalive())],
                    Protocol::TransportWs => vec![ack],
                })
            }
            (Err(error), Protocol::TransportWs) => {
                // The protocol prescribes 4403 and no reason beyond it.
                tracing::info!(
                    reason = error.message.as_str(),
                    "ws.connection_init_refused"
                );
                Err(close(4403, "Forbidden"))
            }
            (Err(error), Protocol::Legacy) => Err(legacy_refusal(&error.message)),
        }
    }

    /// The next event of operation `id`.
    pub(super) fn on_operation(&mut self, id: String, event: Event) -> Vec<Message> {
        match event {
            Event::End => {
                self.end(&id);
                vec![complete(&id)]
            }
            Event::Response(response) => self.on_response(id, *response),
            Event::Shared(result) => self.on_shared(id, &result),
        }
    }

    fn on_response(&mut self, id: String, response: Response) -> Vec<Message> {
        let first = self.answered.insert(id.clone());
        if self.protocol == Protocol::TransportWs && first && is_request_error(&response) {
            // The protocol's `error` message: the operation never ran, and no
            // `complete` follows it.
            self.end(&id);
            return vec![text(&Addressed {
                id: &id,
                kind: "error",
                payload: &response.errors,
            })];
        }
        vec![text(&Addressed {
            id: &id,
            kind: self.result_kind(),
            payload: &response,
        })]
    }

    /// What a shared stream says of this connection's operation `id`.
    fn on_shared(&mut self, id: String, result: &SharedResult) -> Vec<Message> {
        match (result, self.protocol) {
            (SharedResult::RequestError { response, .. }, Protocol::Legacy) => {
                vec![addressed_raw(&id, self.result_kind(), response)]
            }
            (SharedResult::RequestError { errors, .. }, Protocol::TransportWs) => {
                self.end(&id);
                vec![addressed_raw(&id, "error", errors)]
            }
            (SharedResult::FellBehind, _) => {
                // Results went out before it: the error is a `next`, not
                // the protocol's `error` for a request that never ran.
                self.answered.insert(id.clone());
                let error: async_graphql::Error =
                    ApiError::new(ErrorCode::InternalServerError, FELL_BEHIND).into();
                let response = Response::from_errors(vec![
                    error.into_server_error(async_graphql::Pos::default()),
                ]);
                self.on_response(id, response)
            }
        }
    }

    fn result_kind(&self) -> &'static str {
        self.protocol.result_kind()
    }

    fn end(&mut self, id: &str) -> bool {
        self.answered.remove(id);
        self.operations.remove(id).is_some()
    }

    /// Starts operation `id`, unless that would pass the limit.
    fn start(&mut self, id: String, request: Request, data: Arc<Data>) -> Vec<Message> {
        if self.operations.len() >= self.max_operations {
            return vec![self.too_many_operations(&id)];
        }
        let shared = match &self.shared {
            Some((shared, socket)) => {
                shared.subscribe(&self.executor, request, &data, socket, &id, self.protocol)
            }
            None => Err(Box::new(request)),
        };
        let results = match shared {
            Ok(results) => results.map(Event::Shared).boxed(),
            Err(mut request) => {
                let operation = Operation::start(&mut request);
                operation
                    .follow(self.executor.execute_stream(*request, Some(data)))
                    .map(|response| Event::Response(Box::new(response)))
                    .boxed()
            }
        }
        .chain(futures::stream::once(std::future::ready(Event::End)))
        .boxed();
        self.answered.remove(&id);
        self.operations.insert(id, results);
        Vec::new()
    }

    /// The refusal of an operation beyond [`super::WsSettings::max_operations`].
    fn too_many_operations(&self, id: &str) -> Message {
        let error = json!({
            "message": format!(
                "too many operations on this connection: {} are live and the limit is {} \
                 ({}); complete one first or open another connection",
                self.operations.len(),
                self.max_operations,
                super::MAX_OPERATIONS_ENV,
            ),
            "extensions": { "code": ErrorCode::TooManyRequests.as_str() },
        });
        let payload = match self.protocol {
            Protocol::TransportWs => json!([error]),
            Protocol::Legacy => error,
        };
        text(&Addressed {
            id,
            kind: "error",
            payload,
        })
    }

    fn legacy_client(&mut self, bytes: &[u8]) -> Result<Step, Stop> {
        let message =
            ClientMessage::from_bytes(bytes).map_err(|error| close(1002, error.to_string()))?;
        let replies = match message {
            ClientMessage::ConnectionInit { payload } => {
                if std::mem::replace(&mut self.init_received, true) {
                    return Err(legacy_refusal("Too many initialisation requests."));
                }
                return Ok(Step::Authenticate(init_payload(payload)));
            }
            ClientMessage::Start { id, payload } => {
                let Some(data) = self.data.clone() else {
                    return Err(close(1011, "The handshake is not completed."));
                };
                // A start for a live id replaces that operation.
                self.end(&id);
                self.start(id, payload, data)
            }
            ClientMessage::Stop { id } => {
                if self.end(&id) {
                    vec![complete(&id)]
                } else {
                    Vec::new()
                }
            }
            ClientMessage::ConnectionTerminate => return Err(close(1000, "Normal Closure")),
            ClientMessage::Ping { payload } => vec![pong(payload)],
            ClientMessage::Pong { .. } => Vec::new(),
        };
        Ok(Step::Reply(replies))
    }

    fn transport_ws_client(&mut self, bytes: &[u8]) -> Result<Step, Stop> {
        let message = TransportMessage::parse(bytes)
            .map_err(|error| close(4400, format!("Invalid message received: {error}")))?;
        let replies = match message {
            TransportMessage::ConnectionInit(payload) => {
                if std::mem::replace(&mut self.init_received, true) {
                    return Err(close(4429, "Too many initialisation requests"));
                }
                return Ok(Step::Authenticate(init_payload(payload)));
            }
            TransportMessage::Ping(payload) => vec![pong(payload)],
            // An answer to our keep-alive: nothing to do.
            TransportMessage::Pong => Vec::new(),
            TransportMessage::Subscribe { id, payload } => {
                let Some(data) = self.data.clone() else {
                    return Err(close(4401, "Unauthorized"));
                };
                if self.operations.contains_key(&id) {
                    return Err(close(4409, format!("Subscriber for {id} already exists")));
                }
                let request = serde_json::from_value::<Request>(payload)
                    .map_err(|error| close(4400, format!("Invalid message received: {error}")))?;
                self.start(id, request, data)
            }
            TransportMessage::Complete { id } => {
                // Completing an operation that already ended is allowed and
                // moot; either way the client gets nothing more for it.
                self.end(&id);
                Vec::new()
            }
        };
        Ok(Step::Reply(replies))
    }
}

/// The legacy protocol's refusal: `connection_error`, then the socket closes.
fn legacy_refusal(message: &str) -> Stop {
    Stop::Refused(text(&json!({
        "type": "connection_error",
        "payload": { "message": message },
    })))
}

/// The pong echoes the ping's payload, as graphql-ws does.
fn pong(payload: Option<Value>) -> Message {
    match payload {
        Some(payload) => text(&json!({ "type": "pong", "payload": payload })),
        None => text(&json!({ "type": "pong" })),
    }
}

fn init_payload(payload: Option<Value>) -> Value {
    match payload {
        None | Some(Value::Null) => json!({}),
        Some(payload) => payload,
    }
}

/// A first result that is a request error: the operation could not be
/// parsed, validated or started (no data, and no error with a path).
pub(super) fn is_request_error(response: &Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty())
}

/// A valid graphql-transport-ws client message.
pub(super) enum TransportMessage {
    ConnectionInit(Option<Value>),
    Ping(Option<Value>),
    Pong,
    /// `payload` is a checked request: `query` a string, the optional fields
    /// of the right types, nulls removed.
    Subscribe {
        id: String,
        payload: Value,
    },
    Complete {
        id: String,
    },
}

impl TransportMessage {
    /// Checks a message the way graphql-ws's `validateMessage` does; anything
    /// else (including server-to-client types) is a 4400.
    pub(super) fn parse(bytes: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let Value::Object(mut object) = value else {
            return Err("a message must be a JSON object".into());
        };
        let kind = match object.get("type") {
            Some(Value::String(kind)) => kind.clone(),
            _ => return Err("a message must have a string \"type\"".into()),
        };
        match kind.as_str() {
            "connection_init" | "ping" | "pong" => {
                optional_object(&object, "payload", &kind)?;
                let payload = object.remove("payload").filter(|p| !p.is_null());
                Ok(match kind.as_str() {
                    "connection_init" => Self::ConnectionInit(payload),
                    "ping" => Self::Ping(payload),
                    _ => Self::Pong,
                })
            }
            "subscribe" => {
                let id = required_id(&object, &kind)?;
                let Some(Value::Object(mut payload)) = object.remove("payload") else {
                    return Err(format!(
                        "\"{kind}\" message expects the \"payload\" property to be an object"
                    ));
                };
                if !matches!(payload.get("query"), Some(Value::String(_))) {
                    return Err(format!(
                        "\"{kind}\" message payload expects the \"query\" property to be a string"
                    ));
                }
                optional_object(&payload, "variables", &kind)?;
                optional_object(&payload, "extensions", &kind)?;
                if !matches!(
                    payload.get("operationName"),
                    None | Some(Value::Null | Value::String(_))
                ) {
                    return Err(format!(
                        "\"{kind}\" message payload expects the \"operationName\" property to be a string or null"
                    ));
                }
                // async-graphql reads an absent field as empty but rejects null.
                payload.retain(|_, v| !v.is_null());
                Ok(Self::Subscribe {
                    id,
                    payload: Value::Object(payload),
                })
            }
            "complete" => Ok(Self::Complete {
                id: required_id(&object, &kind)?,
            }),
            other => Err(format!("unexpected message of type \"{other}\"")),
        }
    }
}

fn optional_object(object: &Map<String, Value>, field: &str, kind: &str) -> Result<(), String> {
    match object.get(field) {
        None | Some(Value::Null | Value::Object(_)) => Ok(()),
        Some(_) => Err(format!(
            "\"{kind}\" message expects the \"{field}\" property to be an object or null"
        )),
    }
}

fn required_id(object: &Map<String, Value>, kind: &str) -> Result<String, String> {
    match object.get("id") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
        _ => Err(format!(
            "\"{kind}\" message requires a non-empty string \"id\""
        )),
    }
}

/// Ids of the operations live on the connection (tests).
#[cfg(test)]
impl<E> State<E> {
    pub(super) fn live_ids(&self) -> HashSet<String> {
        self.operations.keys().cloned().collect()
    }

    pub(super) fn acknowledge(&mut self) {
        self.data = Some(Arc::new(Data::default()));
    }
}
