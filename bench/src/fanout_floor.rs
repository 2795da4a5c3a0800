//! The fan-out's floors: bare WebSocket servers that send the fan-out's
//! messages to the same subscribers as the real one, with no database, no
//! GraphQL and no protocol checks beyond the handshake the subscribers need
//! (`connection_init`, `subscribe`, `ping`). Two shapes ([`Shape`]):
//! - *a task per socket*, the way a tokio service would be written:
//!   tokio-tungstenite (the library under poem's WebSockets, with the same
//!   read buffer), a tokio broadcast channel per filter, results that are
//!   ready together written together;
//! - *direct writes* ([`direct`]), as cheap as the machine allows.
//!
//! It runs as a child process of the load generator (`loadgen fanout-floor`),
//! so its CPU is its own. It prints its port on stdout, then each line on
//! its stdin is one execution of the function whose id the line holds: three
//! events (PENDING, RUNNING, COMPLETED) stamped `at` when the line is read,
//! each serialised once and sent to the subscribers of every function and
//! to those of that function.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use chrono::{SecondsFormat, Utc};
use clap::ValueEnum as _;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// As many results as the server's event bus holds.
const BUFFER: usize = server::events::BUS_CAPACITY;
/// As the server's sessions: at most this many ready results per write.
const COALESCE: usize = 64;

/// Subscribers by filter: every function (`None`) or one function's id.
#[derive(Default)]
struct Routes {
    channels: Mutex<HashMap<Option<String>, broadcast::Sender<Arc<str>>>>,
}

impl Routes {
    fn sender(&self, filter: Option<String>) -> broadcast::Sender<Arc<str>> {
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(filter)
            .or_insert_with(|| broadcast::channel(BUFFER).0)
            .clone()
    }

    fn publish(&self, function: &str, payload: &Arc<str>) {
        let channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        for filter in [None, Some(function.to_string())] {
            if let Some(sender) = channels.get(&filter) {
                let _ = sender.send(Arc::clone(payload));
            }
        }
    }
}

/// How the floor writes to its sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// One task per socket, woken by a broadcast channel (as the server).
    Tasks,
    /// No task per socket: the publisher writes each socket's frames itself,
    /// one non-blocking write per socket and execution.
    Direct,
}

impl Shape {
    /// Its `--shape` argument.
    pub fn name(self) -> String {
        self.to_possible_value()
            .map(|value| value.get_name().to_owned())
            .unwrap_or_default()
    }

    /// What the report calls it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Tasks => "a task per socket",
            Self::Direct => "direct writes",
        }
    }
}

/// A floor's subscribers, by shape.
enum Floor {
    Tasks(Routes),
    Direct(direct::Routes),
}

impl Floor {
    async fn connection(&self, stream: TcpStream) -> anyhow::Result<()> {
        match self {
            Self::Tasks(routes) => connection(stream, routes).await,
            Self::Direct(routes) => direct::connection(stream, routes).await,
        }
    }

    async fn publish(&self, function: &str, payloads: &[Arc<str>]) {
        match self {
            Self::Tasks(routes) => {
                for payload in payloads {
                    routes.publish(function, payload);
                }
            }
            Self::Direct(routes) => routes.publish(function, payloads).await,
        }
    }
}

/// `loadgen fanout-floor`: serves until stdin closes.
pub async fn serve(shape: Shape) -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?.port());
    let floor = Arc::new(match shape {
        Shape::Tasks => Floor::Tasks(Routes::default()),
        Shape::Direct => Floor::Direct(direct::Routes::default()),
    });
    let accepting = {
        let floor = Arc::clone(&floor);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let floor = Arc::clone(&floor);
                tokio::spawn(async move {
                    if let Err(error) = floor.connection(stream).await {
                        eprintln!("fanout-floor: {error:#}");
                    }
                });
            }
        })
    };
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(function) = lines.next_line().await? {
        floor.publish(&function, &execution_events(&function)).await;
    }
    accepting.abort();
    Ok(())
}

/// One execution's three events, stamped now, each serialised once.
fn execution_events(function: &str) -> Vec<Arc<str>> {
    let at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let execution = uuid::Uuid::new_v4().to_string();
    [
        ("PENDING", Value::Null),
        ("RUNNING", json!("PENDING")),
        ("COMPLETED", json!("RUNNING")),
    ]
    .into_iter()
    .map(|(status, previous)| {
        json!({ "data": { "executionStatusChanged": {
            "status": status,
            "previousStatus": previous,
            "at": at,
            "execution": { "id": execution, "functionId": function, "status": status },
        } } })
        .to_string()
        .into()
    })
    .collect()
}

#[expect(
    clippy::result_large_err,
    reason = "the handshake callback's error type is tungstenite's"
)]
async fn connection(stream: TcpStream, routes: &Routes) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let agree = |_: &Request, mut response: Response| {
        response.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        Ok(response)
    };
    let config = WebSocketConfig::default().read_buffer_size(512);
    let mut socket =
        tokio_tungstenite::accept_hdr_async_with_config(stream, agree, Some(config)).await?;
    let mut subscription: Option<(String, broadcast::Receiver<Arc<str>>)> = None;
    loop {
        let outgoing = tokio::select! {
            frame = socket.next() => match frame {
                Some(Ok(Message::Text(text))) => on_client(&text, routes, &mut subscription)?,
                Some(Ok(Message::Close(_)) | Err(_)) | None => return Ok(()),
                Some(Ok(_)) => continue,
            },
            Some(result) = next(&mut subscription) => {
                let (id, receiver) = subscription.as_mut().context("no subscription")?;
                let mut outgoing = vec![addressed(id, &result?)];
                while outgoing.len() < COALESCE {
                    let Ok(payload) = receiver.try_recv() else { break };
                    outgoing.push(addressed(id, &payload));
                }
                outgoing
            }
        };
        for message in outgoing {
            socket.feed(message).await?;
        }
        socket.flush().await?;
    }
}

/// The next result of the subscription; pending while there is none.
async fn next(
    subscription: &mut Option<(String, broadcast::Receiver<Arc<str>>)>,
) -> Option<anyhow::Result<Arc<str>>> {
    match subscription {
        Some((_, receiver)) => Some(receiver.recv().await.context("fell behind")),
        None => std::future::pending().await,
    }
}

fn addressed(id: &str, payload: &str) -> Message {
    Message::text(next_message(id, payload))
}

fn next_message(id: &str, payload: &str) -> String {
    format!(
        r#"{{"id":{},"type":"next","payload":{payload}}}"#,
        json!(id)
    )
}

fn on_client(
    text: &str,
    routes: &Routes,
    subscription: &mut Option<(String, broadcast::Receiver<Arc<str>>)>,
) -> anyhow::Result<Vec<Message>> {
    Ok(match ClientMessage::parse(text)? {
        ClientMessage::Reply(kind) => vec![Message::text(reply(kind))],
        ClientMessage::Subscribe { id, filter } => {
            *subscription = Some((id, routes.sender(filter).subscribe()));
            Vec::new()
        }
        ClientMessage::Complete => {
            *subscription = None;
            Vec::new()
        }
        ClientMessage::Other => Vec::new(),
    })
}

/// What the floor understands of a client message.
enum ClientMessage {
    /// Answer with a message of this type.
    Reply(&'static str),
    /// Subscribe `id` to every function (`None`) or one.
    Subscribe {
        id: String,
        filter: Option<String>,
    },
    Complete,
    Other,
}

impl ClientMessage {
    fn parse(text: &str) -> anyhow::Result<Self> {
        let message: Value = serde_json::from_str(text)?;
        Ok(match message["type"].as_str() {
            Some("connection_init") => Self::Reply("connection_ack"),
            Some("ping") => Self::Reply("pong"),
            Some("subscribe") => Self::Subscribe {
                id: message["id"]
                    .as_str()
                    .context("subscribe without id")?
                    .to_string(),
                filter: message["payload"]["variables"]["f"]
                    .as_str()
                    .map(str::to_string),
            },
            Some("complete") => Self::Complete,
            _ => Self::Other,
        })
    }
}

fn reply(kind: &str) -> String {
    json!({ "type": kind }).to_string()
}

/// The direct shape: the WebSocket handshake and framing by hand over the
/// raw socket, a reader task per socket that only wakes when its client
/// writes, and the publisher writing every subscriber's frames itself. A
/// subscriber stays routed until the process ends (a floor lives for one
/// measurement).
mod direct {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, PoisonError};

    use anyhow::{Context, bail};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

    use super::{ClientMessage, next_message, reply};
    use crate::ws_frame;

    /// A subscribed socket; `backlog` holds what a full socket buffer did not
    /// take, written by a task that waits for the socket to drain.
    struct Subscriber {
        id: String,
        socket: Arc<TcpStream>,
        backlog: Mutex<Option<Vec<u8>>>,
    }

    #[derive(Default)]
    pub(super) struct Routes {
        subscribers: Mutex<HashMap<Option<String>, Vec<Arc<Subscriber>>>>,
    }

    impl Routes {
        /// Writes the execution's events to the subscribers of every
        /// function and of `function`, split over the runtime's workers.
        pub(super) async fn publish(&self, function: &str, payloads: &[Arc<str>]) {
            let targets: Vec<Arc<Subscriber>> = {
                let subscribers = self
                    .subscribers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                [None, Some(function.to_string())]
                    .iter()
                    .filter_map(|filter| subscribers.get(filter))
                    .flatten()
                    .cloned()
                    .collect()
            };
            let payloads: Arc<[Arc<str>]> = payloads.into();
            let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
            let chunk = targets.len().div_ceil(workers).max(1);
            let mut writers = Vec::new();
            for part in targets.chunks(chunk) {
                let part = part.to_vec();
                let payloads = Arc::clone(&payloads);
                writers.push(tokio::spawn(async move {
                    for subscriber in part {
                        let mut frames = Vec::with_capacity(1024);
                        for payload in payloads.iter() {
                            frame(
                                &mut frames,
                                0x1,
                                next_message(&subscriber.id, payload).as_bytes(),
                            );
                        }
                        write(&subscriber, frames);
                    }
                }));
            }
            for writer in writers {
                let _ = writer.await;
            }
        }
    }

    /// Writes what the socket takes now; the rest waits in the backlog.
    fn write(subscriber: &Arc<Subscriber>, mut bytes: Vec<u8>) {
        let mut backlog = subscriber
            .backlog
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(waiting) = backlog.as_mut() {
            waiting.extend_from_slice(&bytes);
            return;
        }
        let mut written = 0;
        while written < bytes.len() {
            match subscriber.socket.try_write(&bytes[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return,
            }
        }
        if written == bytes.len() {
            return;
        }
        bytes.drain(..written);
        *backlog = Some(bytes);
        let subscriber = Arc::clone(subscriber);
        tokio::spawn(async move {
            loop {
                if subscriber.socket.writable().await.is_err() {
                    return;
                }
                let mut backlog = subscriber
                    .backlog
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let Some(waiting) = backlog.as_mut() else {
                    return;
                };
                match subscriber.socket.try_write(waiting) {
                    Ok(n) => {
                        waiting.drain(..n);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(_) => return,
                }
                if waiting.is_empty() {
                    *backlog = None;
                    return;
                }
            }
        });
    }

    /// Appends a server frame (unmasked, final) to `out`.
    fn frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
        ws_frame::write(out, opcode, payload, None);
    }

    pub(super) async fn connection(mut stream: TcpStream, routes: &Routes) -> anyhow::Result<()> {
        stream.set_nodelay(true)?;
        let mut buffer = Vec::with_capacity(4096);
        // The upgrade request.
        let key = loop {
            let mut chunk = [0u8; 1024];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..n]);
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_string();
                buffer.drain(..end + 4);
                break head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("sec-websocket-key")
                            .then(|| value.trim().to_string())
                    })
                    .context("no Sec-WebSocket-Key")?;
            }
        };
        stream
            .write_all(
                format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n",
                    derive_accept_key(key.as_bytes())
                )
                .as_bytes(),
            )
            .await?;
        let socket = Arc::new(stream);
        let subscriber = |id: String| {
            Arc::new(Subscriber {
                id,
                socket: Arc::clone(&socket),
                backlog: Mutex::new(None),
            })
        };
        // Replies before a subscribe go out through one without an id.
        let mut this = subscriber(String::new());
        loop {
            while let Some((opcode, payload, used)) = client_frame(&buffer)? {
                buffer.drain(..used);
                let mut out = Vec::new();
                match opcode {
                    0x1 => match ClientMessage::parse(std::str::from_utf8(&payload)?)? {
                        ClientMessage::Reply(kind) => frame(&mut out, 0x1, reply(kind).as_bytes()),
                        ClientMessage::Subscribe { id, filter } => {
                            this = subscriber(id);
                            routes
                                .subscribers
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .entry(filter)
                                .or_default()
                                .push(Arc::clone(&this));
                            continue;
                        }
                        ClientMessage::Complete | ClientMessage::Other => continue,
                    },
                    0x8 => return Ok(()),
                    0x9 => frame(&mut out, 0xA, &payload),
                    _ => continue,
                }
                write(&this, out);
            }
            socket.readable().await?;
            let mut chunk = [0u8; 512];
            match socket.try_read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A complete client frame at the start of `buffer`: opcode, unmasked
    /// payload and the bytes it took.
    fn client_frame(buffer: &[u8]) -> anyhow::Result<Option<(u8, Vec<u8>, usize)>> {
        let Some(head) = ws_frame::head(buffer)? else {
            return Ok(None);
        };
        let Some(mask) = head.mask else {
            bail!("an unmasked client frame");
        };
        let payload = buffer[head.header..head.end()]
            .iter()
            .zip(mask.iter().cycle())
            .map(|(b, m)| b ^ m)
            .collect();
        Ok(Some((head.opcode, payload, head.end())))
    }
}
