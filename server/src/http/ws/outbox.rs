//! A socket's outgoing bytes. Every frame the server sends on a WebSocket
//! goes through its [`Outbox`], in order: the session's own messages, the
//! pongs and close replies tungstenite makes while reading, and the results
//! of shared streams, which their publisher writes here itself instead of
//! waking a task per subscriber ([`Deliver`]).
//!
//! A write goes straight to the socket when nothing waits before it and the
//! socket takes it (a non-blocking write); what the socket does not take
//! waits in a bounded backlog, which only the session's task drains
//! ([`Outbox::drained`]): one task ever waits for the socket to become
//! writable, so its wake-up is never lost to another's. At capacity a
//! shared result is refused ([`Delivery::Full`], the subscriber fell behind)
//! rather than queued without end.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// Bytes a socket's backlog holds for shared results: a subscriber further
/// behind than this (about a thousand status events, beyond what the
/// kernel's socket buffer took) falls behind and its operation ends.
pub(super) const CAPACITY: usize = 256 * 1024;
/// The session's own messages (replies, errors, `complete`) are still taken
/// while the backlog is below this, so that a subscriber that fell behind
/// hears why; past it the client is not reading and the connection ends.
const SESSION_CAPACITY: usize = CAPACITY + 64 * 1024;
/// While the backlog holds this much, the session takes no further results
/// of its own operations: their pace follows the client's.
pub(super) const CONGESTED: usize = 64 * 1024;
/// A drained backlog keeps at most this much of its allocation.
const KEEP_ALLOCATED: usize = 16 * 1024;

/// What became of a frame handed to [`Deliver::deliver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    /// Written, or queued behind what waits.
    Sent,
    /// The route was closed: nothing was written.
    Closed,
    /// The backlog is at capacity: nothing was written.
    Full,
    /// The socket failed or the session ended.
    Gone,
}

/// How a shared stream's publisher reaches a subscriber's socket, whatever
/// the socket's type.
pub(super) trait Deliver: Send + Sync {
    /// Writes (or queues) `frame` if `open` still holds.
    fn deliver(&self, open: &AtomicBool, frame: &[u8]) -> Delivery;
    /// Closes a route: once this returns, no [`Self::deliver`] with `open`
    /// writes anything.
    fn close(&self, open: &AtomicBool);
}

/// The outgoing side of one socket (see the module docs).
pub(super) struct Outbox<W> {
    state: Mutex<State<W>>,
    /// Told when a backlog begins, so that the session drains it.
    backlogged: Notify,
}

struct State<W> {
    writer: W,
    /// Bytes waiting, from `start` on (a drained prefix is skipped, not moved).
    backlog: Vec<u8>,
    start: usize,
    /// When the backlog last began or shrank.
    progress: Instant,
    failed: bool,
}

impl<W> State<W> {
    fn waiting(&self) -> usize {
        self.backlog.len() - self.start
    }
}

impl<W: AsyncWrite + Unpin> State<W> {
    /// Writes what the socket takes now without waiting, then queues the
    /// rest. False when the socket failed.
    fn write(&mut self, bytes: &[u8]) -> bool {
        if self.failed {
            return false;
        }
        let mut written = 0;
        if self.waiting() == 0 {
            let mut cx = Context::from_waker(Waker::noop());
            while written < bytes.len() {
                match Pin::new(&mut self.writer).poll_write(&mut cx, &bytes[written..]) {
                    Poll::Ready(Ok(n)) if n > 0 => written += n,
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                    Poll::Ready(_) => {
                        self.failed = true;
                        return false;
                    }
                    Poll::Pending => break,
                }
            }
            if written == bytes.len() {
                return true;
            }
            self.backlog.clear();
            self.start = 0;
            self.progress = Instant::now();
        }
        self.backlog.extend_from_slice(&bytes[written..]);
        true
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.failed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        while self.waiting() > 0 {
            let result = Pin::new(&mut self.writer).poll_write(cx, &self.backlog[self.start..]);
            match result {
                Poll::Ready(Ok(n)) if n > 0 => {
                    self.start += n;
                    self.progress = Instant::now();
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(result) => {
                    self.failed = true;
                    return Poll::Ready(Err(result
                        .err()
                        .unwrap_or_else(|| io::ErrorKind::WriteZero.into())));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        self.backlog.clear();
        self.start = 0;
        if self.backlog.capacity() > KEEP_ALLOCATED {
            self.backlog = Vec::new();
        }
        Pin::new(&mut self.writer).poll_flush(cx)
    }
}

impl<W: AsyncWrite + Unpin> Outbox<W> {
    pub(super) fn new(writer: W) -> Self {
        Self {
            state: Mutex::new(State {
                writer,
                backlog: Vec::new(),
                start: 0,
                progress: Instant::now(),
                failed: false,
            }),
            backlogged: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<W>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes or queues `bytes` unless `capacity` bytes already wait.
    fn push(state: &mut State<W>, bytes: &[u8], capacity: usize) -> Delivery {
        if state.failed {
            return Delivery::Gone;
        }
        if state.waiting() >= capacity {
            return Delivery::Full;
        }
        if state.write(bytes) {
            Delivery::Sent
        } else {
            Delivery::Gone
        }
    }

    /// Wakes the session when a write began a backlog or found the socket
    /// failed.
    fn backlog_began(&self, before: usize, state: &State<W>) {
        if (before == 0 && state.waiting() > 0) || state.failed {
            self.backlogged.notify_one();
        }
    }

    /// A frame of the session's own: taken unless the client stopped
    /// reading long ago ([`SESSION_CAPACITY`]).
    pub(super) fn send(&self, frame: &[u8]) -> io::Result<()> {
        let mut state = self.lock();
        let before = state.waiting();
        let delivery = Self::push(&mut state, frame, SESSION_CAPACITY);
        self.backlog_began(before, &state);
        match delivery {
            Delivery::Sent => Ok(()),
            Delivery::Full => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "the client does not read what it is sent",
            )),
            Delivery::Closed | Delivery::Gone => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// Bytes waiting for the socket.
    pub(super) fn waiting(&self) -> usize {
        self.lock().waiting()
    }

    /// When the backlog last began or shrank (meaningful while it waits).
    pub(super) fn progress(&self) -> Instant {
        self.lock().progress
    }

    /// Drains every backlog as it begins; returns only when the socket
    /// failed (here or in another's write). Only the session's task runs it
    /// (see the module docs).
    pub(super) async fn drained(&self) -> io::Result<()> {
        loop {
            let (failed, waiting) = {
                let state = self.lock();
                (state.failed, state.waiting())
            };
            if failed {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            if waiting > 0 {
                self.flush().await?;
            } else {
                self.backlogged.notified().await;
            }
        }
    }

    /// Writes what waits.
    pub(super) async fn flush(&self) -> io::Result<()> {
        poll_fn(|cx| self.lock().poll_drain(cx)).await
    }

    /// Writes what waits, then shuts the socket's sending side.
    pub(super) async fn finish(&self) -> io::Result<()> {
        self.flush().await?;
        poll_fn(|cx| Pin::new(&mut self.lock().writer).poll_shutdown(cx)).await
    }
}

impl<W: AsyncWrite + Unpin + Send> Deliver for Outbox<W> {
    fn deliver(&self, open: &AtomicBool, frame: &[u8]) -> Delivery {
        let mut state = self.lock();
        if !open.load(Ordering::Acquire) {
            return Delivery::Closed;
        }
        let before = state.waiting();
        let delivery = Self::push(&mut state, frame, CAPACITY);
        self.backlog_began(before, &state);
        delivery
    }

    fn close(&self, open: &AtomicBool) {
        let _state = self.lock();
        open.store(false, Ordering::Release);
    }
}

/// The socket as tungstenite reads it: its reading side, and writes (its
/// pongs and close replies) that go through the [`Outbox`] and never wait.
pub(super) struct Reading<R, W> {
    pub(super) read: R,
    pub(super) outbox: std::sync::Arc<Outbox<W>>,
}

impl<R: AsyncRead + Unpin, W> AsyncRead for Reading<R, W> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl<R, W: AsyncWrite + Unpin> AsyncWrite for Reading<R, W> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.outbox.send(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Appends a server frame (final, unmasked) to `out`.
pub(super) fn frame(out: &mut Vec<u8>, opcode: u8, payload: &[&[u8]]) {
    let len: usize = payload.iter().map(|part| part.len()).sum();
    out.reserve(len + 10);
    out.push(0x80 | opcode);
    match len {
        n if n < 126 => out.push(n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    for part in payload {
        out.extend_from_slice(part);
    }
}
