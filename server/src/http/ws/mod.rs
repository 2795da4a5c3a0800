//! `/graphql/ws`: GraphQL over WebSocket with the subprotocols
//! `graphql-transport-ws` (the graphql-ws library's protocol, enforced to the
//! letter) and the legacy `graphql-ws` (Apollo's subscriptions-transport-ws).
//! Each operation is an async-graphql response stream
//! (`Executor::execute_stream`); this module owns the protocol around them: it
//! checks every client message (4400, 4401, 4409, 4429), times out connections
//! that never initialise (4408), hands connection_init to a pluggable
//! [`ConnectionAuth`] (4403 when it refuses), tracks which operation ids are
//! live, turns request errors into `error` messages, sends keep-alives and
//! closes peers that stop answering them (1008), limits the live operations of
//! a connection, bounds what waits for a slow client, and closes every socket
//! cleanly (1001) when the process shuts down ([`Sockets`]).
//!
//! This file is the endpoint (settings, upgrade, subprotocol negotiation);
//! [`session`] runs one socket's loop and its timers, [`protocol`] is the
//! state machine that checks and routes every message, [`outbox`] holds what
//! is sent until the socket takes it, and [`shared`] runs the streams that
//! subscribers of the same operation share.

mod outbox;
mod protocol;
mod session;
mod shared;
#[cfg(test)]
mod tests;

use std::future::{Future, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::http::WebSocketProtocols;
use async_graphql::{Data, Executor};
use async_graphql_poem::GraphQLProtocol;
use poem::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use poem::{Body, Endpoint, FromRequest as _, Request, Response};
use serde_json::Value;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::accepted::AcceptedSockets;
use session::Connection;
pub use shared::SharePolicy;
use shared::SharedStreams;

/// A `graphql-transport-ws` client that has not sent connection_init this long
/// after the socket opened is closed with 4408.
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// The setting of [`DEFAULT_INIT_TIMEOUT`] (milliseconds; `config.rs`).
pub const INIT_TIMEOUT_ENV: &str = "PROJECTNIL_WS_INIT_TIMEOUT_MS";
/// How often an acknowledged connection gets a `ping` (`ka` on the legacy
/// protocol), so proxies do not cut idle sockets and a dead peer shows up as
/// a failed send.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);
/// The setting of [`DEFAULT_KEEPALIVE`] (milliseconds; `config.rs`).
pub const KEEPALIVE_ENV: &str = "PROJECTNIL_WS_KEEPALIVE_MS";
/// Operations (subscriptions, queries) live at once on one connection; one
/// more is refused with an `error` for it, and the others stay live.
pub const DEFAULT_MAX_OPERATIONS: usize = 100;
/// The setting of [`DEFAULT_MAX_OPERATIONS`] (`config.rs`).
pub const MAX_OPERATIONS_ENV: &str = "PROJECTNIL_WS_MAX_OPERATIONS";
/// A client that takes longer than this to accept a message (it stopped
/// reading, and the socket's buffers are full) is disconnected: what waits
/// for it is one message, never an unbounded queue.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The setting of [`DEFAULT_SEND_TIMEOUT`] (milliseconds; `config.rs`).
pub const SEND_TIMEOUT_ENV: &str = "PROJECTNIL_WS_SEND_TIMEOUT_MS";
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
///
/// It also knows the process's accepted TCP connections, so that an upgraded
/// one's socket is written directly ([`super::accepted`]).
#[derive(Clone, Default)]
pub struct Sockets {
    shutdown: CancellationToken,
    tracker: TaskTracker,
    accepted: AcceptedSockets,
}

impl Sockets {
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            shutdown,
            tracker: TaskTracker::new(),
            accepted: AcceptedSockets::default(),
        }
    }

    /// The registry the process's acceptor keeps its connections in.
    pub fn accepted(&self) -> AcceptedSockets {
        self.accepted.clone()
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
    shared: Option<SharedStreams>,
}

impl<E: Executor> GraphQLWs<E> {
    /// Accepts every connection, with the default [`WsSettings`] and no
    /// shutdown signal (see [`Self::sockets`]).
    pub fn new(executor: E) -> Self {
        Self {
            executor,
            auth: Arc::new(AcceptAll),
            settings: WsSettings::default(),
            sockets: Sockets::default(),
            shared: None,
        }
    }

    /// Subscribers of an operation `policy` allows share one stream of its
    /// results, resolved and serialised once (see [`shared`]).
    #[must_use]
    pub fn share_results(self, policy: SharePolicy) -> Self {
        Self {
            shared: Some(SharedStreams::new(policy)),
            ..self
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

    /// Timings and limits other than the defaults.
    #[must_use]
    pub fn settings(self, settings: WsSettings) -> Self {
        Self { settings, ..self }
    }

    /// Closes the sockets on shutdown and counts them.
    #[must_use]
    pub fn sockets(self, sockets: Sockets) -> Self {
        Self { sockets, ..self }
    }
}

/// Which subprotocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    TransportWs,
    Legacy,
}

impl Protocol {
    /// The first protocol the client offers that we speak, read from
    /// `Sec-WebSocket-Protocol` by async-graphql-poem (the handshake answers
    /// with the same choice).
    async fn requested(req: &Request) -> Option<Self> {
        let GraphQLProtocol(offered) =
            GraphQLProtocol::from_request_without_body(req).await.ok()?;
        Some(match offered {
            WebSocketProtocols::GraphQLWS => Self::TransportWs,
            WebSocketProtocols::SubscriptionsTransportWS => Self::Legacy,
        })
    }

    /// Its name in `Sec-WebSocket-Protocol`.
    fn name(self) -> &'static str {
        match self {
            Self::TransportWs => TRANSPORT_WS,
            Self::Legacy => LEGACY_WS,
        }
    }

    /// The type of the message that carries a result.
    fn result_kind(self) -> &'static str {
        match self {
            Self::TransportWs => "next",
            Self::Legacy => "data",
        }
    }
}

/// The request's `Sec-WebSocket-Key` if it is a WebSocket upgrade (RFC 6455,
/// section 4.2.1).
fn upgrade_key(req: &Request) -> Option<&HeaderValue> {
    let headers = req.headers();
    let has = |name, wanted: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case(wanted))
    };
    let upgrade = req.method() == Method::GET
        && has(header::UPGRADE, "websocket")
        && has(header::CONNECTION, "upgrade")
        && headers.get(header::SEC_WEBSOCKET_VERSION) == Some(&HeaderValue::from_static("13"));
    upgrade
        .then(|| headers.get(header::SEC_WEBSOCKET_KEY))
        .flatten()
}

impl<E: Executor> Endpoint for GraphQLWs<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let Some(key) = upgrade_key(&req) else {
            return Err(poem::Error::from_string(
                "expected a WebSocket upgrade (GET with Upgrade: websocket, Connection: upgrade, \
                 Sec-WebSocket-Version: 13 and a Sec-WebSocket-Key)",
                StatusCode::BAD_REQUEST,
            ));
        };
        let Some(protocol) = Protocol::requested(&req).await else {
            return Err(poem::Error::from_string(
                format!("Sec-WebSocket-Protocol must offer {TRANSPORT_WS} or {LEGACY_WS}"),
                StatusCode::BAD_REQUEST,
            ));
        };
        let accept = derive_accept_key(key.as_bytes());
        let on_upgrade = req.take_upgrade()?;
        let max_read = self
            .settings
            .max_message_bytes
            .saturating_mul(2)
            .max(64 * 1024);
        let connection = Connection {
            executor: self.executor.clone(),
            auth: self.auth.clone(),
            settings: self.settings,
            // Clients send small messages, and tungstenite zero-fills its
            // read buffer before every read, that is on every wake-up of the
            // reader: the default 128 KiB cost a fifth of the CPU and most
            // of the memory at 1,000 subscribers, 4 KiB still 3 % at 10,000
            // (BENCHMARKS.md). A larger message takes a few more reads.
            config: WebSocketConfig::default()
                .read_buffer_size(512)
                // Read a little past the limit, so an oversized message
                // gets its 1009 instead of a dropped connection, and no
                // further.
                .max_message_size(Some(max_read))
                .max_frame_size(Some(max_read)),
            protocol,
            headers: req.headers().clone(),
            shared: self.shared.clone(),
        };
        let shutdown = self.sockets.shutdown.clone();
        let open = self.sockets.tracker.token();
        let writer = self
            .sockets
            .accepted
            .writer(req.local_addr(), req.remote_addr());
        tokio::spawn(async move {
            let _open = open;
            if let Ok(socket) = on_upgrade.await {
                connection.serve(socket, writer, shutdown).await;
            }
        });
        Ok(Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_ACCEPT, accept)
            .header(header::SEC_WEBSOCKET_PROTOCOL, protocol.name())
            .body(Body::empty()))
    }
}
