//! The protocol state machine of one connection: which client messages are
//! valid, which operations are live, and what of async-graphql's output the
//! client gets.

use std::collections::HashMap;

use async_graphql::http::ClientMessage;
use poem::web::websocket::Message;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::session::{Stop, close};
use super::{INNER_CAPACITY, MAX_OPERATIONS_ENV, Protocol};

/// The protocol state of one connection, between the client and async-graphql.
///
/// `live` are the operation ids the client may still get messages for: added
/// on subscribe, removed when the operation ends on the wire (our `complete` or
/// `error`, or the client's `complete`). async-graphql keeps its own map, which
/// lags behind ours in one way only: when an operation ends on the wire before
/// async-graphql has dropped it (the client's `complete`, or a request error we
/// sent as `error`), we forward a stop, and async-graphql answers that stop
/// with a `complete` the client must not see. `owed` counts those per id; as
/// async-graphql handles its input in order, an owed `complete` always comes
/// before anything of a later operation that reuses the id.
pub(super) struct State {
    pub(super) protocol: Protocol,
    pub(super) to_inner: mpsc::Sender<serde_json::Result<ClientMessage>>,
    pub(super) max_operations: usize,
    pub(super) init_received: bool,
    pub(super) acknowledged: bool,
    /// Legacy only: async-graphql refused the init with `connection_error`.
    pub(super) refused: bool,
    pub(super) live: HashMap<String, Operation>,
    pub(super) owed: HashMap<String, usize>,
}

#[derive(Default)]
pub(super) struct Operation {
    /// A result was sent; request errors can only be the first.
    pub(super) answered: bool,
}

/// The parts of a server message we route by.
#[derive(Deserialize)]
pub(super) struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
}

impl State {
    pub(super) fn new(
        protocol: Protocol,
        to_inner: mpsc::Sender<serde_json::Result<ClientMessage>>,
        max_operations: usize,
    ) -> Self {
        Self {
            protocol,
            to_inner,
            max_operations,
            init_received: false,
            acknowledged: false,
            refused: false,
            live: HashMap::new(),
            owed: HashMap::new(),
        }
    }

    /// Hands a checked message to async-graphql; a client that sends faster
    /// than it takes them is closed (1008) rather than queued without bound.
    fn forward(&self, message: ClientMessage) -> Result<(), Stop> {
        match self.to_inner.try_send(Ok(message)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(close(
                1008,
                format!(
                    "Too many messages: more than {INNER_CAPACITY} are waiting to be processed"
                ),
            )),
            // The receiver lives as long as the connection loop that owns `self`.
            Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
        }
    }

    /// Stops an operation that ended on the wire; if async-graphql cannot
    /// take it now, the operation's later messages are dropped anyway.
    fn stop(&self, id: String) {
        if self.forward(ClientMessage::Stop { id }).is_err() {
            tracing::debug!("ws.stop_deferred");
        }
    }

    /// The refusal of an operation beyond [`WsSettings::max_operations`].
    fn too_many_operations(&self, id: &str) -> Message {
        let error = json!({
            "message": format!(
                "too many operations on this connection: {} are live and the limit is {} \
                 ({MAX_OPERATIONS_ENV}); complete one first or open another connection",
                self.live.len(),
                self.max_operations
            ),
            "extensions": { "code": crate::graphql::error::ErrorCode::TooManyRequests.as_str() },
        });
        let payload = match self.protocol {
            Protocol::TransportWs => json!([error]),
            Protocol::Legacy => error,
        };
        Message::text(json!({ "id": id, "type": "error", "payload": payload }).to_string())
    }

    pub(super) fn keepalive(&self) -> String {
        match self.protocol {
            Protocol::TransportWs => json!({ "type": "ping" }).to_string(),
            Protocol::Legacy => json!({ "type": "ka" }).to_string(),
        }
    }

    /// A message from the client: checked, then handed to async-graphql;
    /// returns what to answer at once.
    pub(super) fn on_client(&mut self, bytes: &[u8]) -> Result<Vec<Message>, Stop> {
        match self.protocol {
            Protocol::TransportWs => self.transport_ws_client(bytes),
            Protocol::Legacy => self.legacy_client(bytes),
        }
    }

    fn legacy_client(&mut self, bytes: &[u8]) -> Result<Vec<Message>, Stop> {
        // As async-graphql always did on this protocol.
        let message =
            ClientMessage::from_bytes(bytes).map_err(|error| close(1002, error.to_string()))?;
        match &message {
            ClientMessage::Start { id, .. } if !self.live.contains_key(id.as_str()) => {
                if self.live.len() >= self.max_operations {
                    return Ok(vec![self.too_many_operations(id)]);
                }
                self.live.insert(id.to_string(), Operation::default());
            }
            ClientMessage::Stop { id } => {
                self.live.remove(id.as_str());
            }
            _ => {}
        }
        self.forward(message)?;
        Ok(Vec::new())
    }

    fn transport_ws_client(&mut self, bytes: &[u8]) -> Result<Vec<Message>, Stop> {
        let message = TransportMessage::parse(bytes)
            .map_err(|error| close(4400, format!("Invalid message received: {error}")))?;
        match message {
            TransportMessage::ConnectionInit(value) => {
                if self.init_received {
                    return Err(close(4429, "Too many initialisation requests"));
                }
                self.init_received = true;
                self.forward(into_client_message(value)?)?;
            }
            TransportMessage::Ping(value) => self.forward(into_client_message(value)?)?,
            // An answer to our keep-alive: nothing to do.
            TransportMessage::Pong => {}
            TransportMessage::Subscribe { id, message } => {
                if !self.acknowledged {
                    return Err(close(4401, "Unauthorized"));
                }
                if self.live.contains_key(&id) {
                    return Err(close(4409, format!("Subscriber for {id} already exists")));
                }
                let message = into_client_message(message)?;
                if self.live.len() >= self.max_operations {
                    return Ok(vec![self.too_many_operations(&id)]);
                }
                self.live.insert(id, Operation::default());
                self.forward(message)?;
            }
            TransportMessage::Complete { id } => {
                // Completing an operation that already ended is allowed and moot.
                if self.live.remove(&id).is_some() {
                    *self.owed.entry(id.clone()).or_default() += 1;
                    self.forward(ClientMessage::Stop { id })?;
                }
            }
        }
        Ok(Vec::new())
    }

    /// A text message from async-graphql: what to send to the client.
    pub(super) fn on_server(&mut self, text: String) -> Vec<Message> {
        let Ok(envelope) = serde_json::from_str::<Envelope>(&text) else {
            return vec![Message::text(text)];
        };
        match (self.protocol, envelope.kind.as_str(), envelope.id) {
            (_, "connection_ack", _) => {
                self.acknowledged = true;
                match self.protocol {
                    // subscriptions-transport-ws servers send a first `ka` at once.
                    Protocol::Legacy => vec![Message::text(text), Message::text(self.keepalive())],
                    Protocol::TransportWs => vec![Message::text(text)],
                }
            }
            (Protocol::Legacy, "connection_error", _) => {
                self.refused = true;
                vec![Message::text(text)]
            }
            (Protocol::TransportWs, "next", Some(id)) => self.next(id, text),
            (Protocol::Legacy, "complete" | "error", Some(id)) => {
                self.live.remove(&id);
                vec![Message::text(text)]
            }
            (Protocol::TransportWs, "complete", Some(id)) => {
                if self.take_owed(&id) {
                    return Vec::new();
                }
                self.live.remove(&id);
                vec![Message::text(text)]
            }
            _ => vec![Message::text(text)],
        }
    }

    fn take_owed(&mut self, id: &str) -> bool {
        let Some(count) = self.owed.get_mut(id) else {
            return false;
        };
        *count -= 1;
        if *count == 0 {
            self.owed.remove(id);
        }
        true
    }

    fn next(&mut self, id: String, text: String) -> Vec<Message> {
        if self.owed.contains_key(&id) {
            // A result of an operation that already ended on the wire.
            return Vec::new();
        }
        let Some(operation) = self.live.get_mut(&id) else {
            return Vec::new();
        };
        let first = !std::mem::replace(&mut operation.answered, true);
        if first && let Some(errors) = request_errors(&text) {
            // The protocol's `error` message: the operation never ran, and no
            // `complete` follows it. async-graphql will still complete the
            // operation; stop it and drop that complete.
            self.live.remove(&id);
            *self.owed.entry(id.clone()).or_default() += 1;
            self.stop(id.clone());
            let error = json!({ "id": id, "type": "error", "payload": errors });
            return vec![Message::text(error.to_string())];
        }
        vec![Message::text(text)]
    }

    /// async-graphql closes: on graphql-transport-ws, with the protocol's codes.
    pub(super) fn server_close(&self, code: u16, reason: String) -> Stop {
        match (self.protocol, code) {
            // Only an init refusal reaches this while the init is pending; any
            // other 1002 is a message async-graphql could not read.
            (Protocol::TransportWs, 1002) if self.init_received && !self.acknowledged => {
                tracing::info!(reason = reason.as_str(), "ws.connection_init_refused");
                close(4403, "Forbidden")
            }
            (Protocol::TransportWs, 1002) => close(4400, reason),
            (Protocol::TransportWs, 1011) => close(4401, "Unauthorized"),
            (Protocol::TransportWs, 4429) => close(4429, "Too many initialisation requests"),
            _ => close(code, reason),
        }
    }

    /// async-graphql finished without a close frame: after the legacy
    /// `connection_terminate` or `connection_error`.
    pub(super) fn server_ended(&self) -> Stop {
        if self.refused {
            close(1011, "Connection refused")
        } else {
            close(1000, "Normal Closure")
        }
    }
}

/// The errors of a first result that is a request error (the operation could
/// not be parsed, validated or started: no data and no error with a path), as
/// graphql-transport-ws's `error` payload.
pub(super) fn request_errors(text: &str) -> Option<Value> {
    let message: Value = serde_json::from_str(text).ok()?;
    let payload = message.get("payload")?;
    if !payload.get("data").is_none_or(Value::is_null) {
        return None;
    }
    let errors = payload.get("errors")?.as_array()?;
    let before_execution = !errors.is_empty()
        && errors.iter().all(|e| {
            e.get("path")
                .is_none_or(|p| p.as_array().is_none_or(Vec::is_empty))
        });
    before_execution.then(|| Value::Array(errors.clone()))
}

/// A valid graphql-transport-ws client message.
pub(super) enum TransportMessage {
    ConnectionInit(Value),
    Ping(Value),
    Pong,
    Subscribe { id: String, message: Value },
    Complete { id: String },
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
                Ok(match kind.as_str() {
                    "connection_init" => Self::ConnectionInit(Value::Object(object)),
                    "ping" => Self::Ping(Value::Object(object)),
                    _ => Self::Pong,
                })
            }
            "subscribe" => {
                let id = required_id(&object, &kind)?;
                let Some(Value::Object(payload)) = object.get_mut("payload") else {
                    return Err(format!(
                        "\"{kind}\" message expects the \"payload\" property to be an object"
                    ));
                };
                if !matches!(payload.get("query"), Some(Value::String(_))) {
                    return Err(format!(
                        "\"{kind}\" message payload expects the \"query\" property to be a string"
                    ));
                }
                optional_object(payload, "variables", &kind)?;
                optional_object(payload, "extensions", &kind)?;
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
                    message: Value::Object(object),
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

/// A checked message in async-graphql's terms.
fn into_client_message(mut value: Value) -> Result<ClientMessage, Stop> {
    if let Some(object) = value.as_object_mut()
        && object.get("payload").is_some_and(Value::is_null)
    {
        object.remove("payload");
    }
    serde_json::from_value(value)
        .map_err(|error| close(4400, format!("Invalid message received: {error}")))
}

/// Ids of the operations live on the connection (tests).
#[cfg(test)]
impl State {
    pub(super) fn live_ids(&self) -> std::collections::HashSet<String> {
        self.live.keys().cloned().collect()
    }
}
