//! `/graphql/ws`: GraphQL over WebSocket with the subprotocols
//! `graphql-transport-ws` (the graphql-ws library's protocol, enforced to the
//! letter) and the legacy `graphql-ws` (Apollo's subscriptions-transport-ws).
//! async-graphql's `http::WebSocket` executes operations underneath; this module
//! owns everything around it where async-graphql departs from the protocol: it
//! checks every client message before passing it on (4400, 4401, 4409, 4429),
//! times out connections that never initialise (4408), hands connection_init to
//! a pluggable [`ConnectionAuth`] (4403 when it refuses), tracks which operation
//! ids are live from both directions, turns request errors into `error`
//! messages, sends keep-alives and closes peers that stop answering them (1008),
//! limits the live operations of a connection, bounds what waits in either
//! direction, and closes every socket cleanly (1001) when the process shuts
//! down ([`Sockets`]).

use std::collections::HashMap;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::http::{
    ClientMessage, WebSocket as GraphQLSocket, WebSocketProtocols, WsMessage,
};
use async_graphql::{Data, Executor};
use futures::{Sink, SinkExt, Stream, StreamExt};
use poem::http::{HeaderMap, StatusCode, header};
use poem::web::websocket::{Message, WebSocket, WebSocketConfig};
use poem::{Endpoint, FromRequest, IntoResponse, Request, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A `graphql-transport-ws` client that has not sent connection_init this long
/// after the socket opened is closed with 4408.
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Overrides [`DEFAULT_INIT_TIMEOUT`] (milliseconds).
pub const INIT_TIMEOUT_ENV: &str = "PROJECTNIL_WS_INIT_TIMEOUT_MS";
/// How often an acknowledged connection gets a `ping` (`ka` on the legacy
/// protocol), so proxies do not cut idle sockets and a dead peer shows up as
/// a failed send.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);
/// Overrides [`DEFAULT_KEEPALIVE`] (milliseconds).
pub const KEEPALIVE_ENV: &str = "PROJECTNIL_WS_KEEPALIVE_MS";
/// Operations (subscriptions, queries) live at once on one connection; one
/// more is refused with an `error` for it, and the others stay live.
pub const DEFAULT_MAX_OPERATIONS: usize = 100;
/// Overrides [`DEFAULT_MAX_OPERATIONS`].
pub const MAX_OPERATIONS_ENV: &str = "PROJECTNIL_WS_MAX_OPERATIONS";
/// A client that takes longer than this to accept a message (it stopped
/// reading, and the socket's buffers are full) is disconnected: what waits
/// for it is one message, never an unbounded queue.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Overrides [`DEFAULT_SEND_TIMEOUT`] (milliseconds).
pub const SEND_TIMEOUT_ENV: &str = "PROJECTNIL_WS_SEND_TIMEOUT_MS";
/// Client messages checked but not yet taken by async-graphql; a client that
/// outruns it is closed with 1008.
const INNER_CAPACITY: usize = 64;
/// After sending a close frame, how long to wait for the client's own close
/// frame before dropping the connection.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(2);
/// A close frame's reason may hold at most 123 bytes.
const MAX_CLOSE_REASON: usize = 123;

const TRANSPORT_WS: &str = "graphql-transport-ws";
const LEGACY_WS: &str = "graphql-ws";

/// Timings of the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsSettings {
    pub init_timeout: Duration,
    /// Also how long a peer may stay silent: one that answers neither the
    /// WebSocket ping nor anything else sent with each keep-alive by the
    /// next one is closed (1008).
    pub keepalive: Duration,
    /// A client message larger than this closes the socket with 1009.
    pub max_message_bytes: usize,
    pub max_operations: usize,
    pub send_timeout: Duration,
}

/// The default of [`WsSettings::max_message_bytes`], as for a request body.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

impl Default for WsSettings {
    fn default() -> Self {
        Self {
            init_timeout: DEFAULT_INIT_TIMEOUT,
            keepalive: DEFAULT_KEEPALIVE,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_operations: DEFAULT_MAX_OPERATIONS,
            send_timeout: DEFAULT_SEND_TIMEOUT,
        }
    }
}

impl WsSettings {
    /// The defaults, overridden by [`INIT_TIMEOUT_ENV`], [`KEEPALIVE_ENV`],
    /// [`SEND_TIMEOUT_ENV`] and [`MAX_OPERATIONS_ENV`] (tests use small
    /// ones). An unparsable or zero value keeps the default.
    pub fn from_env() -> Self {
        let number = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|n| *n > 0)
        };
        let millis =
            |name: &str, default: Duration| number(name).map_or(default, Duration::from_millis);
        Self {
            init_timeout: millis(INIT_TIMEOUT_ENV, DEFAULT_INIT_TIMEOUT),
            keepalive: millis(KEEPALIVE_ENV, DEFAULT_KEEPALIVE),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_operations: number(MAX_OPERATIONS_ENV)
                .map_or(DEFAULT_MAX_OPERATIONS, |n| n as usize),
            send_timeout: millis(SEND_TIMEOUT_ENV, DEFAULT_SEND_TIMEOUT),
        }
    }
}

/// What a [`ConnectionAuth`] gets to decide on.
#[derive(Debug, Clone)]
pub struct ConnectionInit {
    /// The connection_init message's payload (`{}` when it had none).
    pub payload: Value,
    /// Headers of the HTTP upgrade request (cookies, `Authorization`, `Origin`):
    /// browsers cannot set headers on a WebSocket, so either may carry credentials.
    pub headers: HeaderMap,
}

/// The future a [`ConnectionAuth`] returns.
pub type AuthFuture = Pin<Box<dyn Future<Output = async_graphql::Result<Data>> + Send>>;

/// Decides on each connection_init. `Ok(data)` acknowledges the connection and
/// makes `data` visible to every operation on it (`ctx.data::<T>()`); `Err`
/// refuses it: `graphql-transport-ws` closes with 4403 Forbidden (the message
/// is logged, not sent, as the protocol prescribes), the legacy protocol sends
/// `connection_error` with the message. Any `Fn(ConnectionInit) -> impl Future`
/// closure is one.
pub trait ConnectionAuth: Send + Sync + 'static {
    fn on_connection_init(&self, init: ConnectionInit) -> AuthFuture;
}

impl<F, Fut> ConnectionAuth for F
where
    F: Fn(ConnectionInit) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = async_graphql::Result<Data>> + Send + 'static,
{
    fn on_connection_init(&self, init: ConnectionInit) -> AuthFuture {
        Box::pin(self(init))
    }
}

/// The default: every connection is accepted with no extra data.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAll;

impl ConnectionAuth for AcceptAll {
    fn on_connection_init(&self, _: ConnectionInit) -> AuthFuture {
        Box::pin(ready(Ok(Data::default())))
    }
}

/// The open sockets of a process. poem's graceful shutdown does not wait for
/// upgraded connections and the runtime would later drop them without a close
/// frame; this closes each with 1001 when `shutdown` is cancelled and lets the
/// process wait until they have said goodbye.
#[derive(Clone, Default)]
pub struct Sockets {
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Sockets {
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            shutdown,
            tracker: TaskTracker::new(),
        }
    }

    /// Sockets currently open.
    pub fn open(&self) -> usize {
        self.tracker.len()
    }

    /// Waits (at most `timeout`) until every socket is closed; call it after
    /// cancelling the token given to [`Sockets::new`]. False on timeout.
    pub async fn closed(&self, timeout: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(timeout, self.tracker.wait())
            .await
            .is_ok()
    }
}

/// The endpoint: `get(GraphQLWs::new(schema).sockets(sockets))`.
pub struct GraphQLWs<E> {
    executor: E,
    auth: Arc<dyn ConnectionAuth>,
    settings: WsSettings,
    sockets: Sockets,
}

impl<E: Executor> GraphQLWs<E> {
    /// Accepts every connection, with timings from the environment
    /// ([`WsSettings::from_env`]) and no shutdown signal (see [`Self::sockets`]).
    pub fn new(executor: E) -> Self {
        Self {
            executor,
            auth: Arc::new(AcceptAll),
            settings: WsSettings::from_env(),
            sockets: Sockets::default(),
        }
    }

    /// Decides on connection_init (access control).
    #[must_use]
    pub fn auth(self, auth: impl ConnectionAuth) -> Self {
        Self {
            auth: Arc::new(auth),
            ..self
        }
    }

    /// Timings other than the environment's.
    #[must_use]
    pub fn settings(self, settings: WsSettings) -> Self {
        Self { settings, ..self }
    }

    /// Closes the sockets on shutdown and counts them.
    #[must_use]
    pub fn sockets(self, sockets: Sockets) -> Self {
        Self { sockets, ..self }
    }

    /// The largest client message (the request-body limit of HTTP).
    #[must_use]
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_message_bytes = bytes;
        self
    }
}

/// Which subprotocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    TransportWs,
    Legacy,
}

impl Protocol {
    /// The first protocol the client offers that we speak (poem answers the
    /// handshake with the same choice).
    fn requested(headers: &HeaderMap) -> Option<Self> {
        headers
            .get(header::SEC_WEBSOCKET_PROTOCOL)?
            .to_str()
            .ok()?
            .split(',')
            .find_map(|offered| match offered.trim() {
                TRANSPORT_WS => Some(Self::TransportWs),
                LEGACY_WS => Some(Self::Legacy),
                _ => None,
            })
    }

    fn async_graphql(self) -> WebSocketProtocols {
        match self {
            Self::TransportWs => WebSocketProtocols::GraphQLWS,
            Self::Legacy => WebSocketProtocols::SubscriptionsTransportWS,
        }
    }
}

impl<E: Executor> Endpoint for GraphQLWs<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let (req, mut body) = req.split();
        let websocket = WebSocket::from_request(&req, &mut body).await?;
        let Some(protocol) = Protocol::requested(req.headers()) else {
            return Err(poem::Error::from_string(
                format!("Sec-WebSocket-Protocol must offer {TRANSPORT_WS} or {LEGACY_WS}"),
                StatusCode::BAD_REQUEST,
            ));
        };
        let connection = Connection {
            executor: self.executor.clone(),
            auth: self.auth.clone(),
            settings: self.settings,
            protocol,
            headers: req.headers().clone(),
        };
        let shutdown = self.sockets.shutdown.clone();
        let open = self.sockets.tracker.token();
        let max_read = self
            .settings
            .max_message_bytes
            .saturating_mul(2)
            .max(64 * 1024);
        Ok(websocket
            .protocols([TRANSPORT_WS, LEGACY_WS])
            // Clients send small messages; tungstenite's default 128 KiB read
            // buffer, zero-filled on every wake-up, cost a fifth of the CPU and
            // most of the memory at 1,000 subscribers (BENCHMARKS.md).
            .config(
                WebSocketConfig::default()
                    .read_buffer_size(4096)
                    // Read a little past the limit, so an oversized message
                    // gets its 1009 instead of a dropped connection, and no
                    // further.
                    .max_message_size(Some(max_read))
                    .max_frame_size(Some(max_read)),
            )
            .on_upgrade(move |socket| async move {
                let _open = open;
                let (tx, rx) = socket.split();
                connection.serve(tx, rx, shutdown).await;
            })
            .into_response())
    }
}

/// One socket's settings, before it starts.
struct Connection<E> {
    executor: E,
    auth: Arc<dyn ConnectionAuth>,
    settings: WsSettings,
    protocol: Protocol,
    headers: HeaderMap,
}

/// Why the connection loop stops.
#[derive(Debug)]
enum Stop {
    /// The client closed or went away: nothing more to send.
    Gone,
    /// We close with this code and reason.
    Close(u16, String),
}

fn close(code: u16, reason: impl Into<String>) -> Stop {
    Stop::Close(code, reason.into())
}

/// 1009 Message Too Big, naming the limit.
fn too_big(limit: usize) -> Stop {
    close(1009, format!("Message too big: the limit is {limit} bytes"))
}

/// The async-graphql pong: echo the ping's payload, as graphql-ws does.
fn echo_ping(
    _: Option<&Data>,
    payload: Option<Value>,
) -> Ready<async_graphql::Result<Option<Value>>> {
    ready(Ok(payload))
}

impl<E: Executor> Connection<E> {
    async fn serve<Tx, Rx>(self, mut tx: Tx, mut rx: Rx, shutdown: CancellationToken)
    where
        Tx: Sink<Message> + Unpin,
        Rx: Stream<Item = std::io::Result<Message>> + Unpin,
    {
        let (to_inner, inner_rx) = mpsc::channel(INNER_CAPACITY);
        let auth = self.auth.clone();
        let headers = self.headers.clone();
        let mut inner = GraphQLSocket::from_message_stream(
            self.executor.clone(),
            ReceiverStream::new(inner_rx),
            self.protocol.async_graphql(),
        )
        .on_connection_init(move |payload| {
            // async-graphql passes null for a missing payload.
            let payload = if payload.is_null() {
                json!({})
            } else {
                payload
            };
            auth.on_connection_init(ConnectionInit { payload, headers })
        })
        .on_ping(echo_ping);
        let mut state = State::new(self.protocol, to_inner, self.settings.max_operations);

        let init_deadline = tokio::time::sleep(self.settings.init_timeout);
        tokio::pin!(init_deadline);
        let mut keepalive: Option<tokio::time::Interval> = None;
        // Whether anything came from the peer since the last keep-alive.
        let mut heard = true;

        let stop = loop {
            let outgoing: Vec<Message> = tokio::select! {
                _ = shutdown.cancelled() => break close(1001, "Server shutting down"),
                _ = &mut init_deadline, if self.protocol == Protocol::TransportWs && !state.init_received => {
                    break close(4408, "Connection initialisation timeout")
                }
                _ = tick(&mut keepalive) => {
                    if !std::mem::replace(&mut heard, false) {
                        break close(1008, format!(
                            "No answer to the keep-alive within {} ms", self.settings.keepalive.as_millis()
                        ));
                    }
                    // A WebSocket ping, which every peer answers by itself,
                    // and the protocol's own keep-alive.
                    vec![Message::Ping(Vec::new()), Message::text(state.keepalive())]
                }
                frame = rx.next() => match frame.inspect(|_| heard = true) {
                    Some(Ok(Message::Text(text))) if text.len() > self.settings.max_message_bytes => {
                        break too_big(self.settings.max_message_bytes)
                    }
                    Some(Ok(Message::Binary(bytes))) if bytes.len() > self.settings.max_message_bytes => {
                        break too_big(self.settings.max_message_bytes)
                    }
                    Some(Ok(Message::Text(text))) => match state.on_client(text.as_bytes()) {
                        Ok(replies) => replies,
                        Err(stop) => break stop,
                    },
                    Some(Ok(Message::Binary(bytes))) => match state.on_client(&bytes) {
                        Ok(replies) => replies,
                        Err(stop) => break stop,
                    },
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Vec::new(),
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break Stop::Gone,
                },
                message = inner.next() => match message {
                    Some(WsMessage::Text(text)) => state.on_server(text),
                    Some(WsMessage::Close(code, reason)) => break state.server_close(code, reason),
                    None => break state.server_ended(),
                },
            };
            if state.acknowledged && keepalive.is_none() {
                keepalive = Some(keepalive_timer(self.settings.keepalive));
            }
            match tokio::time::timeout(self.settings.send_timeout, send_all(&mut tx, outgoing))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break Stop::Gone,
                Err(_) => {
                    // It does not read; a close frame would wait the same way.
                    tracing::info!(
                        timeout_ms = self.settings.send_timeout.as_millis() as u64,
                        "ws.client_too_slow"
                    );
                    break Stop::Gone;
                }
            }
        };

        if let Stop::Close(code, reason) = stop {
            tracing::debug!(code, reason = reason.as_str(), "ws.closing");
            let frame = Message::close_with(code, truncate(reason, MAX_CLOSE_REASON));
            let sent = tokio::time::timeout(self.settings.send_timeout, tx.send(frame)).await;
            if matches!(sent, Ok(Ok(()))) {
                // Read until the client answers with its close frame, so the TCP
                // connection ends cleanly rather than being reset under a close
                // frame the client has not read yet.
                let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
                    while let Some(Ok(_)) = rx.next().await {}
                })
                .await;
            }
        }
        let _ = tokio::time::timeout(CLOSE_HANDSHAKE, tx.close()).await;
    }
}

async fn send_all<Tx: Sink<Message> + Unpin>(
    tx: &mut Tx,
    messages: Vec<Message>,
) -> Result<(), Tx::Error> {
    for message in messages {
        tx.send(message).await?;
    }
    Ok(())
}

/// Waits for the next keep-alive, or forever when there is none yet.
async fn tick(timer: &mut Option<tokio::time::Interval>) {
    match timer {
        Some(timer) => {
            timer.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn keepalive_timer(period: Duration) -> tokio::time::Interval {
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    timer
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

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
struct State {
    protocol: Protocol,
    to_inner: mpsc::Sender<serde_json::Result<ClientMessage>>,
    max_operations: usize,
    init_received: bool,
    acknowledged: bool,
    /// Legacy only: async-graphql refused the init with `connection_error`.
    refused: bool,
    live: HashMap<String, Operation>,
    owed: HashMap<String, usize>,
}

#[derive(Default)]
struct Operation {
    /// A result was sent; request errors can only be the first.
    answered: bool,
}

/// The parts of a server message we route by.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
}

impl State {
    fn new(
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

    fn keepalive(&self) -> String {
        match self.protocol {
            Protocol::TransportWs => json!({ "type": "ping" }).to_string(),
            Protocol::Legacy => json!({ "type": "ka" }).to_string(),
        }
    }

    /// A message from the client: checked, then handed to async-graphql;
    /// returns what to answer at once.
    fn on_client(&mut self, bytes: &[u8]) -> Result<Vec<Message>, Stop> {
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
    fn on_server(&mut self, text: String) -> Vec<Message> {
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
    fn server_close(&self, code: u16, reason: String) -> Stop {
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
    fn server_ended(&self) -> Stop {
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
fn request_errors(text: &str) -> Option<Value> {
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
enum TransportMessage {
    ConnectionInit(Value),
    Ping(Value),
    Pong,
    Subscribe { id: String, message: Value },
    Complete { id: String },
}

impl TransportMessage {
    /// Checks a message the way graphql-ws's `validateMessage` does; anything
    /// else (including server-to-client types) is a 4400.
    fn parse(bytes: &[u8]) -> Result<Self, String> {
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
    fn live_ids(&self) -> std::collections::HashSet<String> {
        self.live.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, Object, Schema, Subscription};
    use futures::channel::mpsc as channel;

    use super::*;

    struct Query;

    #[Object]
    impl Query {
        async fn hello(&self) -> &str {
            "hi"
        }

        /// The `user` a ConnectionAuth put in the connection's data.
        async fn user(&self, ctx: &async_graphql::Context<'_>) -> Option<String> {
            ctx.data_opt::<User>().map(|u| u.0.clone())
        }
    }

    struct SubscriptionRoot;

    #[Subscription]
    impl SubscriptionRoot {
        async fn count(&self, to: i32) -> impl futures::Stream<Item = i32> {
            futures::stream::iter(0..to)
        }

        async fn forever(&self) -> impl futures::Stream<Item = i32> {
            futures::stream::once(ready(1)).chain(futures::stream::pending())
        }
    }

    #[derive(Clone)]
    struct User(String);

    type TestSchema = Schema<Query, EmptyMutation, SubscriptionRoot>;

    struct Client {
        to_server: channel::UnboundedSender<std::io::Result<Message>>,
        replies: channel::UnboundedReceiver<Message>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Client {
        fn start(
            protocol: Protocol,
            auth: Arc<dyn ConnectionAuth>,
            shutdown: CancellationToken,
        ) -> Self {
            Self::start_with(protocol, auth, shutdown, WsSettings::default())
        }

        fn start_with(
            protocol: Protocol,
            auth: Arc<dyn ConnectionAuth>,
            shutdown: CancellationToken,
            settings: WsSettings,
        ) -> Self {
            let schema = TestSchema::new(Query, EmptyMutation, SubscriptionRoot);
            let (to_server, rx) = channel::unbounded();
            let (tx, replies) = channel::unbounded();
            let connection = Connection {
                executor: schema,
                auth,
                settings,
                protocol,
                headers: HeaderMap::new(),
            };
            let task = tokio::spawn(connection.serve(tx, rx, shutdown));
            Self {
                to_server,
                replies,
                task,
            }
        }

        fn transport() -> Self {
            Self::start(
                Protocol::TransportWs,
                Arc::new(AcceptAll),
                CancellationToken::new(),
            )
        }

        fn send(&self, message: Value) {
            self.to_server
                .unbounded_send(Ok(Message::text(message.to_string())))
                .expect("server gone");
        }

        async fn receive(&mut self) -> Message {
            tokio::time::timeout(Duration::from_secs(5), self.replies.next())
                .await
                .expect("nothing received in time")
                .expect("server hung up without a close frame")
        }

        async fn json(&mut self) -> Value {
            match self.receive().await {
                Message::Text(text) => serde_json::from_str(&text).expect("JSON"),
                other => panic!("expected a text message, got {other:?}"),
            }
        }

        async fn close_code(&mut self) -> (u16, String) {
            loop {
                match self.receive().await {
                    Message::Close(Some((code, reason))) => {
                        // Answer it, as a client does, so the server stops at once.
                        let _ = self.to_server.unbounded_send(Ok(Message::close()));
                        self.to_server.close_channel();
                        return (code.into(), reason);
                    }
                    Message::Close(None) => panic!("closed without a code"),
                    _ => continue,
                }
            }
        }

        async fn init(&mut self) {
            self.send(json!({ "type": "connection_init" }));
            assert_eq!(self.json().await["type"], "connection_ack");
        }
    }

    #[tokio::test]
    async fn a_refused_init_closes_4403_forbidden() {
        let refuse =
            |_: ConnectionInit| async { Err::<Data, _>(async_graphql::Error::new("no token")) };
        let mut client = Client::start(
            Protocol::TransportWs,
            Arc::new(refuse),
            CancellationToken::new(),
        );
        client.send(json!({ "type": "connection_init", "payload": { "token": "bad" } }));
        assert_eq!(client.close_code().await, (4403, "Forbidden".to_string()));
        client.task.await.expect("connection task");
    }

    #[tokio::test]
    async fn the_legacy_protocol_reports_a_refused_init_as_connection_error() {
        let refuse =
            |_: ConnectionInit| async { Err::<Data, _>(async_graphql::Error::new("no token")) };
        let mut client =
            Client::start(Protocol::Legacy, Arc::new(refuse), CancellationToken::new());
        client.send(json!({ "type": "connection_init" }));
        let error = client.json().await;
        assert_eq!(error["type"], "connection_error");
        assert_eq!(error["payload"]["message"], "no token");
        assert_eq!(client.close_code().await.0, 1011);
    }

    #[tokio::test]
    async fn accepted_init_data_reaches_operations() {
        let auth = |init: ConnectionInit| async move {
            let name = init.payload["user"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let mut data = Data::default();
            data.insert(User(name));
            Ok(data)
        };
        let mut client = Client::start(
            Protocol::TransportWs,
            Arc::new(auth),
            CancellationToken::new(),
        );
        client.send(json!({ "type": "connection_init", "payload": { "user": "ada" } }));
        assert_eq!(client.json().await["type"], "connection_ack");
        client.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "{ user }" } }));
        let next = client.json().await;
        assert_eq!(next["payload"]["data"]["user"], "ada");
        assert_eq!(
            client.json().await,
            json!({ "id": "1", "type": "complete" })
        );
    }

    #[tokio::test]
    async fn shutdown_closes_with_1001() {
        let shutdown = CancellationToken::new();
        let mut client =
            Client::start(Protocol::TransportWs, Arc::new(AcceptAll), shutdown.clone());
        client.init().await;
        client.send(json!({ "id": "s", "type": "subscribe", "payload": { "query": "subscription { forever }" } }));
        assert_eq!(client.json().await["type"], "next");
        shutdown.cancel();
        assert_eq!(client.close_code().await.0, 1001);
        client.task.await.expect("connection task");
    }

    #[tokio::test]
    async fn request_errors_are_error_messages_and_the_id_is_free_again() {
        let mut client = Client::transport();
        client.init().await;
        client.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { nope }" } }));
        let error = client.json().await;
        assert_eq!(error["type"], "error");
        assert_eq!(error["id"], "1");
        assert!(
            error["payload"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("nope")),
            "{error}"
        );
        // No complete follows an error; the id may be used again at once.
        client.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { count(to: 1) }" } }));
        assert_eq!(
            client.json().await,
            json!({ "id": "1", "type": "next", "payload": { "data": { "count": 0 } } })
        );
        assert_eq!(
            client.json().await,
            json!({ "id": "1", "type": "complete" })
        );
    }

    #[tokio::test]
    async fn a_client_complete_is_not_echoed_and_frees_the_id() {
        let mut client = Client::transport();
        client.init().await;
        client.send(json!({ "id": "a", "type": "subscribe", "payload": { "query": "subscription { forever }" } }));
        assert_eq!(client.json().await["type"], "next");
        client.send(json!({ "id": "a", "type": "complete" }));
        client.send(json!({ "id": "a", "type": "subscribe", "payload": { "query": "{ hello }" } }));
        // The first thing about "a" is the new operation's result, not a complete
        // for the old one.
        assert_eq!(
            client.json().await,
            json!({ "id": "a", "type": "next", "payload": { "data": { "hello": "hi" } } })
        );
        assert_eq!(
            client.json().await,
            json!({ "id": "a", "type": "complete" })
        );
        // Completing an operation that already finished is harmless.
        client.send(json!({ "id": "a", "type": "complete" }));
        client.send(json!({ "type": "ping" }));
        assert_eq!(client.json().await, json!({ "type": "pong" }));
    }

    #[tokio::test]
    async fn field_errors_stay_in_next() {
        let mut client = Client::transport();
        client.init().await;
        client.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "query($n: Int!) { hello }", "variables": null } }));
        // A missing required variable is a request error.
        assert_eq!(client.json().await["type"], "error");
        assert!(request_errors(r#"{"type":"next","id":"1","payload":{"data":null,"errors":[{"message":"x","path":["f"]}]}}"#).is_none());
        assert!(request_errors(r#"{"type":"next","id":"1","payload":{"data":{"f":1}}}"#).is_none());
    }

    #[test]
    fn validation_follows_graphql_ws() {
        let bad = [
            "",
            "[]",
            r#"{"type":1}"#,
            r#"{"type":"next","id":"1","payload":{}}"#,
            r#"{"type":"start","id":"1","payload":{"query":"{ a }"}}"#,
            r#"{"type":"connection_init","payload":"x"}"#,
            r#"{"type":"subscribe","payload":{"query":"{ a }"}}"#,
            r#"{"type":"subscribe","id":"","payload":{"query":"{ a }"}}"#,
            r#"{"type":"subscribe","id":"1"}"#,
            r#"{"type":"subscribe","id":"1","payload":{}}"#,
            r#"{"type":"subscribe","id":"1","payload":{"query":"{ a }","variables":[]}}"#,
            r#"{"type":"subscribe","id":"1","payload":{"query":"{ a }","operationName":1}}"#,
            r#"{"type":"complete"}"#,
        ];
        for text in bad {
            assert!(
                TransportMessage::parse(text.as_bytes()).is_err(),
                "{text} must be refused"
            );
        }
        let good = [
            r#"{"type":"connection_init"}"#,
            r#"{"type":"connection_init","payload":null}"#,
            r#"{"type":"ping","payload":{"a":1}}"#,
            r#"{"type":"pong"}"#,
            r#"{"type":"subscribe","id":"1","payload":{"query":"{ a }","variables":null,"operationName":null,"extensions":null}}"#,
            r#"{"type":"complete","id":"1"}"#,
        ];
        for text in good {
            assert!(
                TransportMessage::parse(text.as_bytes()).is_ok(),
                "{text} must be accepted"
            );
        }
    }

    #[test]
    fn close_reasons_fit_a_frame() {
        let long = "é".repeat(100);
        let cut = truncate(long, MAX_CLOSE_REASON);
        assert!(cut.len() <= MAX_CLOSE_REASON);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    #[tokio::test]
    async fn operations_beyond_the_limit_are_refused_and_the_others_stay_live() {
        for protocol in [Protocol::TransportWs, Protocol::Legacy] {
            let (to_inner, _inner) = mpsc::channel(INNER_CAPACITY);
            let mut state = State::new(protocol, to_inner, 2);
            state.acknowledged = true;
            let start = |id: &str| {
                let kind = match protocol {
                    Protocol::TransportWs => "subscribe",
                    Protocol::Legacy => "start",
                };
                json!({ "id": id, "type": kind, "payload": { "query": "{ a }" } }).to_string()
            };
            for id in ["1", "2"] {
                assert!(state.on_client(start(id).as_bytes()).unwrap().is_empty());
            }
            let refused = state.on_client(start("3").as_bytes()).unwrap();
            let [Message::Text(text)] = refused.as_slice() else {
                panic!("expected one error message, got {refused:?}");
            };
            let error: Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                (error["type"].as_str(), error["id"].as_str()),
                (Some("error"), Some("3"))
            );
            let payload = match protocol {
                Protocol::TransportWs => error["payload"][0].clone(),
                Protocol::Legacy => error["payload"].clone(),
            };
            assert_eq!(payload["extensions"]["code"], "TOO_MANY_REQUESTS");
            assert!(
                payload["message"]
                    .as_str()
                    .unwrap()
                    .contains("the limit is 2"),
                "{payload}"
            );
            assert_eq!(state.live_ids(), ["1".to_string(), "2".to_string()].into());
            // Once one ends, there is room again.
            state.on_server(json!({ "id": "1", "type": "complete" }).to_string());
            assert!(state.on_client(start("3").as_bytes()).unwrap().is_empty());
            assert_eq!(state.live_ids(), ["2".to_string(), "3".to_string()].into());
        }
    }

    #[tokio::test]
    async fn a_client_that_outruns_the_server_is_closed() {
        let (to_inner, _inner) = mpsc::channel(INNER_CAPACITY);
        let mut state = State::new(Protocol::TransportWs, to_inner, usize::MAX);
        let ping = json!({ "type": "ping" }).to_string();
        for _ in 0..INNER_CAPACITY {
            assert!(state.on_client(ping.as_bytes()).is_ok());
        }
        assert!(matches!(
            state.on_client(ping.as_bytes()),
            Err(Stop::Close(1008, reason)) if reason.starts_with("Too many messages")
        ));
    }

    #[tokio::test]
    async fn a_peer_that_stops_answering_is_closed() {
        let settings = WsSettings {
            keepalive: Duration::from_millis(50),
            ..WsSettings::default()
        };
        let mut client = Client::start_with(
            Protocol::TransportWs,
            Arc::new(AcceptAll),
            CancellationToken::new(),
            settings,
        );
        client.init().await;
        // It reads, but never answers: no pong, no message.
        let (code, reason) = client.close_code().await;
        assert_eq!(code, 1008);
        assert!(reason.contains("keep-alive"), "{reason}");
    }

    #[tokio::test]
    async fn a_peer_that_answers_stays_connected() {
        let settings = WsSettings {
            keepalive: Duration::from_millis(50),
            ..WsSettings::default()
        };
        let mut client = Client::start_with(
            Protocol::TransportWs,
            Arc::new(AcceptAll),
            CancellationToken::new(),
            settings,
        );
        client.init().await;
        for _ in 0..6 {
            match client.receive().await {
                Message::Ping(_) => client
                    .to_server
                    .unbounded_send(Ok(Message::Pong(Vec::new())))
                    .unwrap(),
                Message::Text(text) => assert!(text.contains("ping"), "{text}"),
                other => panic!("unexpected {other:?}"),
            }
        }
        client.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "{ hello }" } }));
        assert_eq!(client.json().await["payload"]["data"]["hello"], "hi");
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_disconnected() {
        let schema = TestSchema::new(Query, EmptyMutation, SubscriptionRoot);
        let (to_server, rx) = channel::unbounded::<std::io::Result<Message>>();
        // A socket whose buffers are full: no send ever completes.
        let stuck = futures::sink::unfold((), |(), _: Message| {
            futures::future::pending::<Result<(), std::io::Error>>()
        });
        let connection = Connection {
            executor: schema,
            auth: Arc::new(AcceptAll),
            settings: WsSettings {
                send_timeout: Duration::from_millis(100),
                ..WsSettings::default()
            },
            protocol: Protocol::TransportWs,
            headers: HeaderMap::new(),
        };
        let task = tokio::spawn(connection.serve(Box::pin(stuck), rx, CancellationToken::new()));
        to_server
            .unbounded_send(Ok(Message::text(
                json!({ "type": "connection_init" }).to_string(),
            )))
            .unwrap();
        // The connection ends by itself instead of holding what it owes.
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the connection to give up on the client")
            .unwrap();
    }

    #[tokio::test]
    async fn live_ids_follow_both_directions() {
        let (to_inner, _inner) = mpsc::channel(INNER_CAPACITY);
        let mut state = State::new(Protocol::TransportWs, to_inner, DEFAULT_MAX_OPERATIONS);
        state.acknowledged = true;
        let subscribe = |id: &str| {
            json!({ "id": id, "type": "subscribe", "payload": { "query": "{ a }" } }).to_string()
        };
        assert!(state.on_client(subscribe("1").as_bytes()).is_ok());
        assert!(
            matches!(state.on_client(subscribe("1").as_bytes()), Err(Stop::Close(4409, reason)) if reason == "Subscriber for 1 already exists")
        );
        let sent = state.on_server(json!({ "id": "1", "type": "complete" }).to_string());
        assert_eq!(sent.len(), 1);
        assert!(state.live_ids().is_empty());
        assert!(state.on_client(subscribe("1").as_bytes()).is_ok());
        assert_eq!(state.live_ids(), ["1".to_string()].into());
    }
}
