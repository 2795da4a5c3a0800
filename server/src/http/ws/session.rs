//! One socket's session: the loop between the client, async-graphql and
//! the timers (init deadline, keep-alives, a client too slow to read), and
//! how it closes. tungstenite reads the client's frames; everything the
//! server sends goes through the socket's [`Outbox`], which this loop drains
//! whenever the socket did not take a write at once.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::Executor;
use futures::{FutureExt as _, Stream, StreamExt};
use poem::http::HeaderMap;
use poem::web::websocket::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::sync::CancellationToken;

use super::outbox::{CONGESTED, Deliver, Outbox, Reading, frame};
use super::protocol::{Event, State, Step};
use super::shared::SharedStreams;
use super::{
    CLOSE_HANDSHAKE, ConnectionAuth, ConnectionInit, MAX_CLOSE_REASON, Protocol, WsSettings,
};
use crate::http::accepted::SharedTcp;

/// One socket's settings, before it starts.
pub(super) struct Connection<E> {
    pub(super) executor: E,
    pub(super) auth: Arc<dyn ConnectionAuth>,
    pub(super) settings: WsSettings,
    pub(super) config: WebSocketConfig,
    pub(super) protocol: Protocol,
    pub(super) headers: HeaderMap,
    pub(super) shared: Option<SharedStreams>,
}

/// Why the connection loop stops.
#[derive(Debug)]
pub(super) enum Stop {
    /// The client went away, or does not read: nothing more to send.
    Gone,
    /// The client closed: its close frame is answered.
    ClosedByClient,
    /// We close with this code and reason.
    Close(u16, String),
    /// The legacy protocol refused the connection: this `connection_error`,
    /// then a close with 1011.
    Refused(Message),
}

pub(super) fn close(code: u16, reason: impl Into<String>) -> Stop {
    Stop::Close(code, reason.into())
}

/// At most this many results that are ready at once go out in one write.
const COALESCE: usize = 64;
/// Writes of ready results in a row before the session polls the client's
/// side and its timers again.
const READY_ROUNDS: usize = 16;

/// 1009 Message Too Big, naming the limit.
fn too_big(limit: usize) -> Stop {
    close(1009, format!("Message too big: the limit is {limit} bytes"))
}

impl<E: Executor> Connection<E> {
    /// Serves the WebSocket on `socket` (after the handshake) until either
    /// side closes it or `shutdown` is cancelled. With `writer`, the
    /// connection's own TCP socket, every frame is written there and
    /// `socket` is only read.
    pub(super) async fn serve<S>(
        self,
        socket: S,
        writer: Option<SharedTcp>,
        shutdown: CancellationToken,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        match writer {
            Some(writer) => self.serve_on(socket, writer, shutdown).await,
            None => {
                let (read, write) = tokio::io::split(socket);
                self.serve_on(read, write, shutdown).await;
            }
        }
    }

    async fn serve_on<R, W>(self, read: R, write: W, shutdown: CancellationToken)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let outbox = Arc::new(Outbox::new(write));
        let reading = Reading {
            read,
            outbox: Arc::clone(&outbox),
        };
        let frames = WebSocketStream::from_raw_socket(reading, Role::Server, Some(self.config))
            .await
            .map(|frame| {
                frame.map(Message::from).map_err(|error| match error {
                    tokio_tungstenite::tungstenite::Error::Io(error) => error,
                    other => std::io::Error::other(other),
                })
            });
        let (mut rx, _reader) = read_ahead(frames);
        let socket: Arc<dyn Deliver> = outbox.clone();
        let mut state = State::new(
            self.protocol,
            self.executor.clone(),
            self.shared.clone().map(|shared| (shared, socket)),
            self.settings.max_operations,
        );

        let init_deadline = tokio::time::sleep(self.settings.init_timeout);
        tokio::pin!(init_deadline);
        // Made once: a new `cancelled()` each time round the loop would join
        // and leave the token's waiter list (a lock every socket shares)
        // twice for every message sent.
        let shutting_down = shutdown.cancelled();
        tokio::pin!(shutting_down);
        let mut keepalive: Option<tokio::time::Interval> = None;
        // Whether anything came from the peer since the last keep-alive.
        let mut heard = true;
        // Rounds in a row that took ready results without the full wait.
        let mut ready_rounds = 0;

        let stop = loop {
            // A flow of ready results never makes this task wait; this lets
            // the runtime run others (the reader among them) once its
            // budget is spent.
            tokio::task::consume_budget().await;
            let waiting = outbox.waiting();
            // While the client has this much to read, its operations wait:
            // their pace is the client's.
            let congested = waiting >= CONGESTED;
            // Results that are ready go out without polling the client's
            // side and the timers, whose wake-ups stay registered from the
            // last full wait below. After a few rounds the full wait comes
            // anyway, so that a flow of results cannot starve the client's
            // messages or the keep-alive.
            let ready = if !congested && ready_rounds < READY_ROUNDS && !state.operations.is_empty()
            {
                state.operations.next().now_or_never().flatten()
            } else {
                None
            };
            if ready.is_none() {
                ready_rounds = 0;
            }
            let outgoing: Vec<Message> = if let Some((id, event)) = ready {
                ready_rounds += 1;
                coalesce(&mut state, id, event)
            } else {
                // A client that takes nothing for this long is not reading.
                // (Only polled while something waits.)
                let stalled = async {
                    tokio::time::sleep_until(
                        (outbox.progress() + self.settings.send_timeout).into(),
                    )
                    .await;
                };
                tokio::select! {
                    _ = &mut shutting_down => break close(1001, "Server shutting down"),
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
                    frame = rx.recv() => match frame.inspect(|_| heard = true) {
                        Some(Ok(Message::Text(text))) if text.len() > self.settings.max_message_bytes => {
                            break too_big(self.settings.max_message_bytes)
                        }
                        Some(Ok(Message::Binary(bytes))) if bytes.len() > self.settings.max_message_bytes => {
                            break too_big(self.settings.max_message_bytes)
                        }
                        Some(Ok(Message::Text(text))) => match self.on_client(&mut state, text.as_bytes()).await {
                            Ok(replies) => replies,
                            Err(stop) => break stop,
                        },
                        Some(Ok(Message::Binary(bytes))) => match self.on_client(&mut state, &bytes).await {
                            Ok(replies) => replies,
                            Err(stop) => break stop,
                        },
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Vec::new(),
                        Some(Ok(Message::Close(_))) => break Stop::ClosedByClient,
                        Some(Err(_)) | None => break Stop::Gone,
                    },
                    Some((id, event)) = state.operations.next(), if !congested && !state.operations.is_empty() => {
                        coalesce(&mut state, id, event)
                    }
                    // Returns only when the socket failed.
                    _ = outbox.drained() => break Stop::Gone,
                    _ = stalled, if waiting > 0 => {
                        if outbox.waiting() > 0 && outbox.progress().elapsed() >= self.settings.send_timeout {
                            tracing::info!(
                                timeout_ms = self.settings.send_timeout.as_millis() as u64,
                                "ws.client_too_slow"
                            );
                            break Stop::Gone;
                        }
                        Vec::new()
                    }
                }
            };
            if state.acknowledged() && keepalive.is_none() {
                keepalive = Some(keepalive_timer(self.settings.keepalive));
            }
            if send_all(&outbox, &outgoing).is_err() {
                tracing::info!("ws.client_not_reading");
                break Stop::Gone;
            }
        };

        let farewell = match stop {
            Stop::Refused(notice) => vec![notice, close_frame(1011, "Connection refused".into())],
            Stop::Close(code, reason) => {
                tracing::debug!(code, reason = reason.as_str(), "ws.closing");
                vec![close_frame(code, reason)]
            }
            Stop::ClosedByClient => vec![Message::Close(None)],
            Stop::Gone => Vec::new(),
        };
        let closing = !farewell.is_empty();
        if send_all(&outbox, &farewell).is_ok() && closing {
            let sent = tokio::time::timeout(self.settings.send_timeout, outbox.flush()).await;
            if matches!(sent, Ok(Ok(()))) {
                // Read until the client answers with its close frame (or
                // goes), so the TCP connection ends cleanly rather than being
                // reset under a close frame the client has not read yet.
                let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
                    while let Some(Ok(frame)) = rx.recv().await {
                        if matches!(frame, Message::Close(_)) {
                            break;
                        }
                    }
                })
                .await;
            }
        }
        let _ = tokio::time::timeout(CLOSE_HANDSHAKE, outbox.finish()).await;
    }
}

fn close_frame(code: u16, reason: String) -> Message {
    Message::close_with(code, truncate(reason, MAX_CLOSE_REASON))
}

impl<E: Executor> Connection<E> {
    /// A client message; connection_init waits for the [`ConnectionAuth`].
    async fn on_client(&self, state: &mut State<E>, bytes: &[u8]) -> Result<Vec<Message>, Stop> {
        match state.on_client(bytes)? {
            Step::Reply(replies) => Ok(replies),
            Step::Authenticate(payload) => {
                let answer = self
                    .auth
                    .on_connection_init(ConnectionInit {
                        payload,
                        headers: self.headers.clone(),
                    })
                    .await;
                state.on_auth(answer)
            }
        }
    }
}

/// `event` and whatever else is ready, for one write: under load a socket's
/// messages coalesce instead of costing a system call each.
fn coalesce<E: Executor>(state: &mut State<E>, id: String, event: Event) -> Vec<Message> {
    let mut outgoing = state.on_operation(id, event);
    while outgoing.len() < COALESCE {
        let Some(Some((id, event))) = state.operations.next().now_or_never() else {
            break;
        };
        outgoing.extend(state.on_operation(id, event));
    }
    outgoing
}

/// Reads the client's frames in a task of its own and hands them over one
/// at a time. The session's loop then waits on a channel instead of the
/// socket's read stack (tungstenite, poem's upgraded stream), which every
/// wake-up for a result polled: about 5 % of the server's samples at 10,000
/// subscribers (BENCHMARKS.md, with the split's lock then in it too). A
/// client that sends faster than the session takes waits on its own socket,
/// as before; at most two frames wait read (one in the channel, one being
/// handed over). The reader stops after the client's close frame, an error
/// or the end, and is aborted when the returned guard is dropped.
fn read_ahead<Rx>(mut rx: Rx) -> (mpsc::Receiver<std::io::Result<Message>>, AbortOnDrop)
where
    Rx: Stream<Item = std::io::Result<Message>> + Unpin + Send + 'static,
{
    let (frames, received) = mpsc::channel(1);
    let reader = tokio::spawn(async move {
        while let Some(frame) = rx.next().await {
            let last = matches!(frame, Ok(Message::Close(_)) | Err(_));
            if frames.send(frame).await.is_err() || last {
                break;
            }
        }
    });
    (received, AbortOnDrop(reader.abort_handle()))
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Frames `messages` and hands them to the socket in one write.
fn send_all<W: AsyncWrite + Unpin>(
    outbox: &Outbox<W>,
    messages: &[Message],
) -> std::io::Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let mut bytes = Vec::new();
    for message in messages {
        encode(&mut bytes, message);
    }
    outbox.send(&bytes)
}

/// A message's WebSocket frame.
fn encode(out: &mut Vec<u8>, message: &Message) {
    match message {
        Message::Text(text) => frame(out, 0x1, &[text.as_bytes()]),
        Message::Binary(bytes) => frame(out, 0x2, &[bytes]),
        Message::Ping(bytes) => frame(out, 0x9, &[bytes]),
        Message::Pong(bytes) => frame(out, 0xA, &[bytes]),
        Message::Close(None) => frame(out, 0x8, &[]),
        Message::Close(Some((code, reason))) => {
            let code = u16::from(*code).to_be_bytes();
            frame(out, 0x8, &[&code, reason.as_bytes()])
        }
    }
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

pub(super) fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
