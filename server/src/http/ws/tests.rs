//! A session against a WebSocket client in the same process, over an
//! in-memory pipe or a loopback socket: the protocol's checks, timers, close
//! codes and shared streams, on a small schema of its own, without the
//! server or a database (`tests/tests/ws_protocol.rs` drives the real one).

use async_graphql::{EmptyMutation, Object, Schema, Subscription};
use futures::StreamExt;
use futures::channel::mpsc as channel;
use poem::web::websocket::Message;
use serde_json::json;

use super::protocol::{Event, State, Step, TransportMessage, is_request_error};
use super::session::{Connection, Stop, truncate};
use super::shared::SharedStreams;
use crate::http::accepted::SharedTcp;

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

    /// Every pulse sent on the schema's [`Pulses`]; counts its streams.
    async fn pulses(&self, ctx: &async_graphql::Context<'_>) -> impl futures::Stream<Item = i32> {
        let pulses = ctx.data_unchecked::<Pulses>();
        pulses
            .streams
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio_stream::wrappers::BroadcastStream::new(pulses.sender.subscribe())
            .filter_map(|pulse| ready(pulse.ok()))
    }

    /// `pulse:xxx…` (`size` x's) for every pulse.
    async fn blobs(
        &self,
        ctx: &async_graphql::Context<'_>,
        size: usize,
    ) -> impl futures::Stream<Item = String> {
        let pulses = ctx.data_unchecked::<Pulses>();
        tokio_stream::wrappers::BroadcastStream::new(pulses.sender.subscribe())
            .filter_map(move |pulse| ready(pulse.ok().map(|p| format!("{p}:{}", "x".repeat(size)))))
    }
}

/// What the `pulses` subscription follows.
#[derive(Clone)]
struct Pulses {
    sender: tokio::sync::broadcast::Sender<i32>,
    streams: Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Clone)]
struct User(String);

type TestSchema = Schema<Query, EmptyMutation, SubscriptionRoot>;

fn schema() -> TestSchema {
    schema_with(Pulses {
        sender: tokio::sync::broadcast::channel(16).0,
        streams: Arc::default(),
    })
}

fn schema_with(pulses: Pulses) -> TestSchema {
    TestSchema::build(Query, EmptyMutation, SubscriptionRoot)
        .data(pulses)
        .finish()
}

/// The replies of a client message that asks nothing of the session.
fn replies(step: Result<Step, Stop>) -> Vec<Message> {
    match step {
        Ok(Step::Reply(replies)) => replies,
        other => panic!("expected replies, got {other:?}"),
    }
}

/// A WebSocket client on `io` that does nothing by itself (it answers no
/// ping), driven through channels: what is sent to the first goes to the
/// server as masked frames (the client's side closes when the channel
/// does), the frames the server sends arrive on the second.
fn websocket_client(
    io: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    start_reading: Option<tokio::sync::oneshot::Receiver<()>>,
) -> (
    channel::UnboundedSender<std::io::Result<Message>>,
    channel::UnboundedReceiver<Message>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (to_server, mut outgoing) = channel::unbounded::<std::io::Result<Message>>();
    let (received, replies) = channel::unbounded();
    let (mut read, mut write) = tokio::io::split(io);
    tokio::spawn(async move {
        let reading = async {
            if let Some(start) = start_reading {
                let _ = start.await;
            }
            let mut buffer = Vec::new();
            loop {
                while let Some((message, used)) = server_frame(&buffer) {
                    buffer.drain(..used);
                    if received.unbounded_send(message).is_err() {
                        return;
                    }
                }
                let mut chunk = [0u8; 4096];
                match read.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                }
            }
        };
        let writing = async {
            while let Some(Ok(message)) = outgoing.next().await {
                if write.write_all(&client_frame(message)).await.is_err() {
                    break;
                }
            }
        };
        // Either side ending ends the client, and the socket with it.
        tokio::select! {
            () = reading => {}
            () = writing => {}
        }
    });
    (to_server, replies)
}

/// A client frame: final, masked.
fn client_frame(message: Message) -> Vec<u8> {
    let (opcode, payload) = match message {
        Message::Text(text) => (0x1, text.into_bytes()),
        Message::Binary(bytes) => (0x2, bytes),
        Message::Ping(bytes) => (0x9, bytes),
        Message::Pong(bytes) => (0xA, bytes),
        Message::Close(None) => (0x8, Vec::new()),
        Message::Close(Some((code, reason))) => {
            let mut payload = u16::from(code).to_be_bytes().to_vec();
            payload.extend_from_slice(reason.as_bytes());
            (0x8, payload)
        }
    };
    let mask = [0x5a, 0x17, 0xc3, 0x81];
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// The server frame at the start of `buffer`, and the bytes it took.
fn server_frame(buffer: &[u8]) -> Option<(Message, usize)> {
    let (&first, &second) = (buffer.first()?, buffer.get(1)?);
    assert_eq!(first & 0x80, 0x80, "the server fragments nothing");
    assert_eq!(second & 0x80, 0, "the server masks nothing");
    let (len, at) = match second & 0x7f {
        126 => (
            usize::from(u16::from_be_bytes([*buffer.get(2)?, *buffer.get(3)?])),
            4,
        ),
        127 => {
            let bytes: [u8; 8] = buffer.get(2..10)?.try_into().ok()?;
            (usize::try_from(u64::from_be_bytes(bytes)).ok()?, 10)
        }
        n => (usize::from(n), 2),
    };
    let payload = buffer.get(at..at + len)?.to_vec();
    let message = match first & 0x0f {
        0x1 => Message::Text(String::from_utf8(payload).expect("UTF-8 text")),
        0x2 => Message::Binary(payload),
        0x9 => Message::Ping(payload),
        0xA => Message::Pong(payload),
        0x8 if payload.len() >= 2 => Message::Close(Some((
            u16::from_be_bytes([payload[0], payload[1]]).into(),
            String::from_utf8(payload[2..].to_vec()).expect("UTF-8 reason"),
        ))),
        0x8 => Message::Close(None),
        other => panic!("opcode {other}"),
    };
    Some((message, at + len))
}

/// A session's settings as the endpoint would make them.
fn connection(
    executor: TestSchema,
    shared: Option<SharedStreams>,
    protocol: Protocol,
    auth: Arc<dyn ConnectionAuth>,
    settings: WsSettings,
) -> Connection<TestSchema> {
    Connection {
        executor,
        auth,
        settings,
        config: WebSocketConfig::default(),
        protocol,
        headers: HeaderMap::new(),
        shared,
    }
}

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
        Self::connect(schema(), None, protocol, auth, shutdown, settings)
    }

    fn connect(
        executor: TestSchema,
        shared: Option<SharedStreams>,
        protocol: Protocol,
        auth: Arc<dyn ConnectionAuth>,
        shutdown: CancellationToken,
        settings: WsSettings,
    ) -> Self {
        Self::connect_reading(executor, shared, protocol, auth, shutdown, settings, None)
    }

    /// As [`Self::connect`]; with `start_reading`, the client reads nothing
    /// until it is told to.
    fn connect_reading(
        executor: TestSchema,
        shared: Option<SharedStreams>,
        protocol: Protocol,
        auth: Arc<dyn ConnectionAuth>,
        shutdown: CancellationToken,
        settings: WsSettings,
        start_reading: Option<tokio::sync::oneshot::Receiver<()>>,
    ) -> Self {
        let (client_side, server_side) = tokio::io::duplex(64 * 1024);
        let connection = connection(executor, shared, protocol, auth, settings);
        let task = tokio::spawn(connection.serve(server_side, None, shutdown));
        let (to_server, replies) = websocket_client(client_side, start_reading);
        Self {
            to_server,
            replies,
            task,
        }
    }

    /// As [`Self::connect_reading`] with `graphql-transport-ws`, over a real
    /// loopback TCP connection whose socket the session writes itself, as
    /// the endpoint does with the connections it accepted.
    fn connect_over_tcp(
        executor: TestSchema,
        shared: Option<SharedStreams>,
        settings: WsSettings,
        start_reading: Option<tokio::sync::oneshot::Receiver<()>>,
    ) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client_side = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_side, _) = listener.accept().unwrap();
        let [client_side, server_side] = [client_side, server_side].map(|stream| {
            stream.set_nonblocking(true).unwrap();
            tokio::net::TcpStream::from_std(stream).unwrap()
        });
        let server_side = SharedTcp::new(server_side);
        let connection = connection(
            executor,
            shared,
            Protocol::TransportWs,
            Arc::new(AcceptAll),
            settings,
        );
        let task = tokio::spawn(connection.serve(
            server_side.writer(),
            Some(server_side),
            CancellationToken::new(),
        ));
        let (to_server, replies) = websocket_client(client_side, start_reading);
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
    let mut client = Client::start(Protocol::Legacy, Arc::new(refuse), CancellationToken::new());
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
async fn a_flow_of_results_does_not_starve_the_clients_messages() {
    let mut client = Client::transport();
    client.init().await;
    let flood = 200_000;
    client.send(json!({ "id": "f", "type": "subscribe", "payload": {
        "query": format!("subscription {{ count(to: {flood}) }}")
    } }));
    assert_eq!(client.json().await["type"], "next");
    client.send(json!({ "type": "ping" }));
    let mut results_before_pong = 0;
    loop {
        let message = client.json().await;
        match message["type"].as_str() {
            Some("pong") => break,
            Some("next") => results_before_pong += 1,
            _ => panic!("the pong came after every result: {message}"),
        }
    }
    assert!(
        results_before_pong < flood - 1,
        "the pong waited for every result"
    );
}

#[tokio::test]
async fn shutdown_closes_with_1001() {
    let shutdown = CancellationToken::new();
    let mut client = Client::start(Protocol::TransportWs, Arc::new(AcceptAll), shutdown.clone());
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
    client.send(
        json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { nope }" } }),
    );
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
    let field_error: async_graphql::Response = serde_json::from_value(
        json!({ "data": null, "errors": [{ "message": "x", "path": ["f"] }] }),
    )
    .unwrap();
    assert!(!is_request_error(&field_error));
    let data: async_graphql::Response =
        serde_json::from_value(json!({ "data": { "f": 1 } })).unwrap();
    assert!(!is_request_error(&data));
    let request_error: async_graphql::Response =
        serde_json::from_value(json!({ "data": null, "errors": [{ "message": "x" }] })).unwrap();
    assert!(is_request_error(&request_error));
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
        let mut state = State::new(protocol, schema(), None, 2);
        state.acknowledge();
        let start = |id: &str| {
            let kind = match protocol {
                Protocol::TransportWs => "subscribe",
                Protocol::Legacy => "start",
            };
            json!({ "id": id, "type": kind, "payload": { "query": "{ a }" } }).to_string()
        };
        for id in ["1", "2"] {
            assert!(replies(state.on_client(start(id).as_bytes())).is_empty());
        }
        let refused = replies(state.on_client(start("3").as_bytes()));
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
        assert_eq!(
            state.on_operation("1".into(), Event::End),
            [Message::text(
                json!({ "id": "1", "type": "complete" }).to_string()
            )]
        );
        assert!(replies(state.on_client(start("3").as_bytes())).is_empty());
        assert_eq!(state.live_ids(), ["2".to_string(), "3".to_string()].into());
    }
}

/// A graphql-transport-ws client whose server sends a keep-alive every 50 ms.
async fn initialised_with_fast_keepalives() -> Client {
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
    client
}

#[tokio::test]
async fn a_peer_that_stops_answering_is_closed() {
    let mut client = initialised_with_fast_keepalives().await;
    // It reads, but never answers: no pong, no message.
    let (code, reason) = client.close_code().await;
    assert_eq!(code, 1008);
    assert!(reason.contains("keep-alive"), "{reason}");
}

#[tokio::test]
async fn a_peer_that_answers_stays_connected() {
    let mut client = initialised_with_fast_keepalives().await;
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
    // A pipe that holds 1 KiB: the flood below fills it at once.
    let (client_side, server_side) = tokio::io::duplex(1024);
    let settings = WsSettings {
        send_timeout: Duration::from_millis(100),
        ..WsSettings::default()
    };
    let connection = connection(
        schema(),
        None,
        Protocol::TransportWs,
        Arc::new(AcceptAll),
        settings,
    );
    let task = tokio::spawn(connection.serve(server_side, None, CancellationToken::new()));
    let mut client = tokio_tungstenite::WebSocketStream::from_raw_socket(
        client_side,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    for message in [
        json!({ "type": "connection_init" }),
        json!({ "id": "f", "type": "subscribe", "payload": { "query": "subscription { count(to: 1000000) }" } }),
    ] {
        use futures::SinkExt;
        client
            .send(tokio_tungstenite::tungstenite::Message::text(
                message.to_string(),
            ))
            .await
            .unwrap();
    }
    // The client keeps its socket open and reads nothing.
    // The connection ends by itself instead of holding what it owes.
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the connection to give up on the client")
        .unwrap();
}

#[tokio::test]
async fn live_ids_follow_both_directions() {
    let mut state = State::new(
        Protocol::TransportWs,
        schema(),
        None,
        DEFAULT_MAX_OPERATIONS,
    );
    state.acknowledge();
    let subscribe = |id: &str| {
        json!({ "id": id, "type": "subscribe", "payload": { "query": "{ a }" } }).to_string()
    };
    assert!(state.on_client(subscribe("1").as_bytes()).is_ok());
    assert!(
        matches!(state.on_client(subscribe("1").as_bytes()), Err(Stop::Close(4409, reason)) if reason == "Subscriber for 1 already exists")
    );
    let sent = state.on_operation("1".into(), Event::End);
    assert_eq!(sent.len(), 1);
    assert!(state.live_ids().is_empty());
    assert!(state.on_client(subscribe("1").as_bytes()).is_ok());
    assert_eq!(state.live_ids(), ["1".to_string()].into());
}

#[tokio::test]
async fn the_legacy_protocol_starts_stops_and_terminates() {
    let mut client = Client::start(
        Protocol::Legacy,
        Arc::new(AcceptAll),
        CancellationToken::new(),
    );
    client.send(json!({ "type": "connection_init" }));
    assert_eq!(client.json().await["type"], "connection_ack");
    assert_eq!(client.json().await["type"], "ka");
    client.send(
        json!({ "id": "1", "type": "start", "payload": { "query": "subscription { forever }" } }),
    );
    assert_eq!(
        client.json().await,
        json!({ "id": "1", "type": "data", "payload": { "data": { "forever": 1 } } })
    );
    // A stop is answered with a complete; a request error stays in `data`.
    client.send(json!({ "id": "1", "type": "stop" }));
    assert_eq!(
        client.json().await,
        json!({ "id": "1", "type": "complete" })
    );
    client.send(json!({ "id": "2", "type": "start", "payload": { "query": "{ nope }" } }));
    let data = client.json().await;
    assert_eq!(
        (data["type"].as_str(), data["payload"]["data"].is_null()),
        (Some("data"), true)
    );
    assert_eq!(
        client.json().await,
        json!({ "id": "2", "type": "complete" })
    );
    client.send(json!({ "type": "connection_terminate" }));
    assert_eq!(client.close_code().await.0, 1000);

    let mut early = Client::start(
        Protocol::Legacy,
        Arc::new(AcceptAll),
        CancellationToken::new(),
    );
    early.send(json!({ "id": "1", "type": "start", "payload": { "query": "{ hello }" } }));
    assert_eq!(
        early.close_code().await,
        (1011, "The handshake is not completed.".to_string())
    );
}

/// Pulses holding `capacity`, a schema following them, and shared streams
/// for every operation.
fn sharing_everything(capacity: usize) -> (Pulses, TestSchema, SharedStreams) {
    let pulses = Pulses {
        sender: tokio::sync::broadcast::channel(capacity).0,
        streams: Arc::default(),
    };
    let schema = schema_with(pulses.clone());
    let shared = SharedStreams::new(Arc::new(|_: &async_graphql::Request| true));
    (pulses, schema, shared)
}

#[tokio::test]
async fn subscribers_of_one_operation_share_one_stream() {
    let (pulses, schema, shared) = sharing_everything(16);
    let client = |protocol| {
        Client::connect(
            schema.clone(),
            Some(shared.clone()),
            protocol,
            Arc::new(AcceptAll),
            CancellationToken::new(),
            WsSettings::default(),
        )
    };
    let (mut a, mut b, mut legacy) = (
        client(Protocol::TransportWs),
        client(Protocol::TransportWs),
        client(Protocol::Legacy),
    );
    a.init().await;
    b.init().await;
    legacy.send(json!({ "type": "connection_init" }));
    assert_eq!(legacy.json().await["type"], "connection_ack");
    assert_eq!(legacy.json().await["type"], "ka");
    let pulses_query = json!({ "query": "subscription { pulses }" });
    a.send(json!({ "id": "a", "type": "subscribe", "payload": pulses_query }));
    b.send(json!({ "id": "b", "type": "subscribe", "payload": pulses_query }));
    legacy.send(json!({ "id": "l", "type": "start", "payload": pulses_query }));
    // Everyone joined when the one stream has three receivers behind it.
    let started = tokio::time::Instant::now();
    while pulses.sender.receiver_count() < 1 || shared.len() != 1 || shared.subscribers() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the stream never started"
        );
        tokio::task::yield_now().await;
    }
    pulses.sender.send(7).unwrap();
    let expected = |id: &str, kind: &str| json!({ "id": id, "type": kind, "payload": { "data": { "pulses": 7 } } });
    assert_eq!(a.json().await, expected("a", "next"));
    assert_eq!(b.json().await, expected("b", "next"));
    assert_eq!(legacy.json().await, expected("l", "data"));
    assert_eq!(pulses.streams.load(std::sync::atomic::Ordering::SeqCst), 1);

    // One leaving does not stop the others; the last one stops the stream.
    a.send(json!({ "id": "a", "type": "complete" }));
    legacy.send(json!({ "id": "l", "type": "stop" }));
    assert_eq!(
        legacy.json().await,
        json!({ "id": "l", "type": "complete" })
    );
    a.send(json!({ "type": "ping" }));
    assert_eq!(a.json().await, json!({ "type": "pong" }));
    pulses.sender.send(8).unwrap();
    assert_eq!(b.json().await["payload"]["data"]["pulses"], 8);
    b.send(json!({ "id": "b", "type": "complete" }));
    let started = tokio::time::Instant::now();
    while pulses.sender.receiver_count() > 0 || shared.len() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the stream kept running"
        );
        tokio::task::yield_now().await;
    }

    // A request error reaches each subscriber as its own `error`.
    let nope = json!({ "query": "subscription { nope }" });
    a.send(json!({ "id": "x", "type": "subscribe", "payload": nope }));
    let error = a.json().await;
    assert_eq!(
        (error["type"].as_str(), error["id"].as_str()),
        (Some("error"), Some("x"))
    );
    assert!(
        error["payload"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nope"),
        "{error}"
    );
    // A finished stream is not joined: the next subscriber starts afresh.
    a.send(json!({ "id": "c", "type": "subscribe", "payload": { "query": "subscription { count(to: 2) }" } }));
    b.send(json!({ "id": "d", "type": "subscribe", "payload": { "query": "subscription { count(to: 2) }" } }));
    for (client, id) in [(&mut a, "c"), (&mut b, "d")] {
        let mut got = Vec::new();
        loop {
            let message = client.json().await;
            if message["type"] == "complete" {
                break;
            }
            got.push(message["payload"]["data"]["count"].clone());
        }
        assert!(!got.is_empty() && got.len() <= 2, "{id}: {got:?}");
        assert_eq!(got.last(), Some(&json!(1)), "{id}: {got:?}");
    }
}

#[tokio::test]
async fn a_shared_subscriber_that_falls_behind_ends_alone() {
    let (pulses, schema, shared) = sharing_everything(1024);
    let (start_reading, reading_starts) = tokio::sync::oneshot::channel();
    let client = |start| {
        Client::connect_reading(
            schema.clone(),
            Some(shared.clone()),
            Protocol::TransportWs,
            Arc::new(AcceptAll),
            CancellationToken::new(),
            WsSettings::default(),
            start,
        )
    };
    let (mut reader, mut stalled) = (client(None), client(Some(reading_starts)));
    reader.init().await;
    stalled.send(json!({ "type": "connection_init" }));
    let blobs = json!({ "query": "subscription { blobs(size: 4096) }" });
    reader.send(json!({ "id": "r", "type": "subscribe", "payload": blobs }));
    stalled.send(json!({ "id": "s", "type": "subscribe", "payload": blobs }));
    let started = tokio::time::Instant::now();
    while shared.subscribers() < 2 || pulses.sender.receiver_count() < 1 {
        assert!(started.elapsed() < Duration::from_secs(5), "not subscribed");
        tokio::task::yield_now().await;
    }
    // 1.2 MB for each: more than the pipe and the outbox hold together,
    // at the pace of the one that reads.
    let sent = 300;
    for pulse in 0..sent {
        pulses.sender.send(pulse).unwrap();
        let next = reader.json().await;
        assert_eq!(next["id"], "r");
        let blob = next["payload"]["data"]["blobs"].as_str().unwrap();
        assert!(blob.starts_with(&format!("{pulse}:")), "{pulse}");
    }

    // The stalled one reads now: the results its socket took, in order and
    // without a gap, then why it ended; its connection stays usable.
    start_reading.send(()).unwrap();
    assert_eq!(stalled.json().await["type"], "connection_ack");
    let mut received = 0;
    let error = loop {
        let next = stalled.json().await;
        assert_eq!(
            (next["id"].as_str(), next["type"].as_str()),
            (Some("s"), Some("next"))
        );
        match next["payload"]["data"]["blobs"].as_str() {
            Some(blob) => assert!(blob.starts_with(&format!("{received}:"))),
            None => break next,
        }
        received += 1;
    };
    assert!(0 < received && received < sent, "{received} of {sent}");
    assert_eq!(
        error["payload"]["errors"][0]["message"],
        crate::graphql::subscription::FELL_BEHIND
    );
    assert_eq!(
        stalled.json().await,
        json!({ "id": "s", "type": "complete" })
    );
    stalled.send(json!({ "type": "ping" }));
    assert_eq!(stalled.json().await, json!({ "type": "pong" }));
    assert_eq!(shared.subscribers(), 1);
}

#[tokio::test]
async fn a_session_over_tcp_writes_its_socket_itself() {
    let mut client = Client::connect_over_tcp(schema(), None, WsSettings::default(), None);
    client.init().await;
    client.send(json!({ "id": "c", "type": "subscribe", "payload": { "query": "subscription { count(to: 3) }" } }));
    for n in 0..3 {
        assert_eq!(
            client.json().await,
            json!({ "id": "c", "type": "next", "payload": { "data": { "count": n } } })
        );
    }
    assert_eq!(
        client.json().await,
        json!({ "id": "c", "type": "complete" })
    );
    client.send(json!({ "type": "ping" }));
    assert_eq!(client.json().await, json!({ "type": "pong" }));
    client.to_server.close_channel();
    tokio::time::timeout(Duration::from_secs(5), client.task)
        .await
        .expect("the session to end with the client")
        .unwrap();
}

#[tokio::test]
async fn shared_results_reach_tcp_sockets() {
    let (pulses, schema, shared) = sharing_everything(16);
    let mut clients: Vec<Client> = (0..3)
        .map(|_| {
            Client::connect_over_tcp(
                schema.clone(),
                Some(shared.clone()),
                WsSettings::default(),
                None,
            )
        })
        .collect();
    for (n, client) in clients.iter_mut().enumerate() {
        client.init().await;
        client.send(json!({ "id": format!("p{n}"), "type": "subscribe", "payload": { "query": "subscription { pulses }" } }));
    }
    let started = tokio::time::Instant::now();
    while shared.subscribers() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not every subscriber joined"
        );
        tokio::task::yield_now().await;
    }
    pulses.sender.send(5).unwrap();
    for (n, client) in clients.iter_mut().enumerate() {
        assert_eq!(
            client.json().await,
            json!({ "id": format!("p{n}"), "type": "next", "payload": { "data": { "pulses": 5 } } })
        );
    }
    assert_eq!(pulses.streams.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_client_over_tcp_that_stops_reading_is_disconnected() {
    // Never told to read: the kernel's buffers fill, then the backlog.
    let (_never, reading_starts) = tokio::sync::oneshot::channel();
    let settings = WsSettings {
        send_timeout: Duration::from_millis(100),
        ..WsSettings::default()
    };
    let client = Client::connect_over_tcp(schema(), None, settings, Some(reading_starts));
    client.send(json!({ "type": "connection_init" }));
    client.send(json!({ "id": "f", "type": "subscribe", "payload": { "query": "subscription { count(to: 100000000) }" } }));
    tokio::time::timeout(Duration::from_secs(20), client.task)
        .await
        .expect("the connection to give up on the client")
        .unwrap();
}
