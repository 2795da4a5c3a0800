//! Shared subscription results: subscribers of the same operation (query,
//! operation name, variables) share one async-graphql response stream, so an
//! event is resolved and serialised once however many sockets follow it.
//!
//! The stream's task delivers each result itself: it frames the result once
//! for each (operation id, protocol) among its subscribers and writes the
//! frame to their sockets' [`Outbox`](super::outbox::Outbox)es, instead of
//! waking a task per subscriber to do the same. Subscribers are split into
//! parts written concurrently, one per runtime worker. What the session of
//! each subscriber must still decide (a request error, falling behind, the
//! end) reaches it on a small channel of its own.
//!
//! Only operations the application's [`SharePolicy`] allows are shared: their
//! results must not depend on who asks (the connection's data) or on when one
//! joins (no first snapshot of current state). A shared stream runs with the
//! data of the connection that started it and ends when its last subscriber
//! leaves. A subscriber whose socket has [`CAPACITY`](super::outbox::CAPACITY)
//! bytes waiting falls behind: it gets an error and its operation ends,
//! never an unbounded queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use async_graphql::{Data, Executor, Request};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;
use tokio::task::coop::unconstrained;

use super::Protocol;
use super::outbox::{Deliver, Delivery, frame};
use super::protocol::{addressed_json, is_request_error};
use crate::graphql::operation::Operation;
use crate::graphql::subscription::Arriving;

/// Subscribers one task writes to, at least: below this, a part is not
/// worth a task of its own.
const PART: usize = 512;
/// How long a result waits at most for the next ones of its stream that are
/// already on their way ([`Arriving`]), so that they reach each socket in one
/// write: an `executeFunction`'s PENDING, RUNNING and COMPLETED are announced
/// together, and a write (and the reader's wake-up) per result cost most of a
/// delivery (BENCHMARKS.md).
const GATHER: std::time::Duration = std::time::Duration::from_millis(4);
/// Results gathered into one write at most.
const BATCH: usize = 64;

/// Decides which operations may share one stream (see the module docs).
pub type SharePolicy = Arc<dyn Fn(&Request) -> bool + Send + Sync>;

/// What a subscriber's session hears from a shared stream: results are
/// written to its socket directly, so never a `next`.
#[derive(Debug)]
pub(super) enum SharedResult {
    /// The first result was a request error: the `errors` array, and the
    /// whole response (the legacy protocol sends it as `data`).
    RequestError {
        errors: Arc<str>,
        response: Arc<str>,
    },
    /// The subscriber fell too far behind; the operation ends.
    FellBehind,
}

/// A shared stream's notice to one subscriber's session.
#[derive(Debug)]
enum Notice {
    Result(Arc<SharedResult>),
    End,
}

/// What identifies an operation's results.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    query: String,
    operation_name: Option<String>,
    variables: String,
}

/// One subscriber: where its results go, and what it is told.
struct Route {
    id: Arc<str>,
    protocol: Protocol,
    socket: Arc<dyn Deliver>,
    /// Cleared (under the socket's lock) when the operation ends, after
    /// which nothing more is written for it.
    open: AtomicBool,
    notices: mpsc::Sender<Notice>,
}

impl Route {
    fn notify(&self, notice: Notice) {
        // Each route hears at most a request error and an end, or that it
        // fell behind; the channel holds two.
        if self.notices.try_send(notice).is_err() {
            tracing::debug!(id = &*self.id, "ws.shared_notice_dropped");
        }
    }
}

/// The subscribers of one stream.
#[derive(Default)]
struct Routes {
    by_serial: HashMap<u64, Arc<Route>>,
    next_serial: u64,
    /// The routes as the publisher last took them; `None` after a change.
    snapshot: Option<Arc<[Arc<Route>]>>,
}

/// A running shared stream; dropping the last handle stops it.
struct Shared {
    /// Tells it apart from a later stream of the same operation.
    generation: u64,
    routes: Arc<Mutex<Routes>>,
    task: tokio::task::AbortHandle,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.task.abort();
        crate::metrics::shared_stream(-1);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One subscriber of a shared stream; dropping it (the operation ended)
/// closes its route and leaves the stream.
struct Subscriber {
    stream: Arc<Shared>,
    serial: u64,
    route: Arc<Route>,
}

impl Subscriber {
    fn new(stream: Arc<Shared>, serial: u64, route: Arc<Route>) -> Self {
        crate::metrics::shared_subscriber(1);
        Self {
            stream,
            serial,
            route,
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.route.socket.close(&self.route.open);
        let mut routes = lock(&self.stream.routes);
        routes.by_serial.remove(&self.serial);
        routes.snapshot = None;
        drop(routes);
        crate::metrics::shared_subscriber(-1);
    }
}

/// The shared streams of one endpoint (every connection of a process).
#[derive(Clone)]
pub(super) struct SharedStreams {
    policy: SharePolicy,
    live: Arc<Mutex<HashMap<Key, Weak<Shared>>>>,
    generations: Arc<AtomicU64>,
}

impl SharedStreams {
    pub(super) fn new(policy: SharePolicy) -> Self {
        Self {
            policy,
            live: Arc::default(),
            generations: Arc::default(),
        }
    }

    /// Joins the shared stream of `request` (starting it if none runs):
    /// its results are written to `socket` as operation `id`'s, and the
    /// returned stream carries what the session must act on. The request
    /// comes back when the policy does not share it.
    pub(super) fn subscribe<E: Executor>(
        &self,
        executor: &E,
        request: Request,
        data: &Arc<Data>,
        socket: &Arc<dyn Deliver>,
        id: &str,
        protocol: Protocol,
    ) -> Result<BoxStream<'static, Arc<SharedResult>>, Box<Request>> {
        if !(self.policy)(&request) {
            return Err(Box::new(request));
        }
        let Ok(variables) = serde_json::to_string(&request.variables) else {
            return Err(Box::new(request));
        };
        let key = Key {
            query: request.query.clone(),
            operation_name: request.operation_name.clone(),
            variables,
        };
        let (notices, notified) = mpsc::channel(2);
        let route = Arc::new(Route {
            id: id.into(),
            protocol,
            socket: Arc::clone(socket),
            open: AtomicBool::new(true),
            notices,
        });
        let mut live = lock(&self.live);
        let shared = match live.get(&key).and_then(Weak::upgrade) {
            Some(shared) => shared,
            None => {
                live.retain(|_, shared| shared.strong_count() > 0);
                let shared = self.start(executor, key.clone(), request, data);
                live.insert(key, Arc::downgrade(&shared));
                shared
            }
        };
        // Routed under the lock: the stream's end (announced under it too)
        // cannot pass a subscriber by.
        let serial = {
            let mut routes = lock(&shared.routes);
            let serial = routes.next_serial;
            routes.next_serial += 1;
            routes.by_serial.insert(serial, Arc::clone(&route));
            routes.snapshot = None;
            serial
        };
        drop(live);
        let subscriber = Subscriber::new(shared, serial, route);
        // Holding the handle keeps the route and the stream; nothing comes
        // after the end, or after falling behind.
        let notices = futures::stream::unfold(
            (notified, subscriber, false),
            |(mut notified, subscriber, ended)| async move {
                if ended {
                    return None;
                }
                match notified.recv().await? {
                    Notice::End => None,
                    Notice::Result(result) => {
                        let ended = matches!(*result, SharedResult::FellBehind);
                        Some((result, (notified, subscriber, ended)))
                    }
                }
            },
        );
        Ok(notices.boxed())
    }

    fn start<E: Executor>(
        &self,
        executor: &E,
        key: Key,
        request: Request,
        data: &Arc<Data>,
    ) -> Arc<Shared> {
        let arriving = Arriving::default();
        let mut request = request.data(arriving.clone());
        let operation = Operation::start(&mut request);
        let mut results = operation.follow(executor.execute_stream(request, Some(data.clone())));
        let live = Arc::downgrade(&self.live);
        let routes: Arc<Mutex<Routes>> = Arc::default();
        let publish = Arc::clone(&routes);
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let task = tokio::spawn(async move {
            let mut first = true;
            let mut ended = false;
            while let Some(response) = results.next().await {
                if std::mem::take(&mut first) && is_request_error(&response) {
                    let targets = snapshot(&publish);
                    let result = Arc::new(SharedResult::RequestError {
                        errors: json(&response.errors),
                        response: json(&response),
                    });
                    for route in targets.iter() {
                        route.notify(Notice::Result(Arc::clone(&result)));
                    }
                    continue;
                }
                // Results already on their way go out with this one, within
                // GATHER: one write per socket instead of one per result.
                // With none on their way it goes out at once; a look at the
                // stream first takes in what the bus holds, which then counts.
                let mut batch = vec![json(&response)];
                let gathered = tokio::time::Instant::now() + GATHER;
                while batch.len() < BATCH {
                    let next = if arriving.any() {
                        match tokio::time::timeout_at(gathered, results.next()).await {
                            Ok(next) => Some(next),
                            Err(_) => break,
                        }
                    } else {
                        ready_now(&mut results).await
                    };
                    match next {
                        Some(Some(response)) => batch.push(json(&response)),
                        Some(None) => {
                            ended = true;
                            break;
                        }
                        None if arriving.any() => {}
                        None => break,
                    }
                }
                deliver(snapshot(&publish), batch.into()).await;
                if ended {
                    break;
                }
            }
            // Ended: forget it and say so under the lock, so that a later
            // subscriber starts afresh instead of joining a finished stream.
            if let Some(live) = live.upgrade() {
                let mut live = lock(&live);
                let ours = live
                    .get(&key)
                    .and_then(Weak::upgrade)
                    .is_some_and(|shared| shared.generation == generation);
                if ours {
                    live.remove(&key);
                }
                for route in lock(&publish).by_serial.values() {
                    route.notify(Notice::End);
                }
            }
        });
        crate::metrics::shared_stream(1);
        Arc::new(Shared {
            generation,
            routes,
            task: task.abort_handle(),
        })
    }

    /// Operations currently shared (tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        lock(&self.live)
            .values()
            .filter(|shared| shared.strong_count() > 0)
            .count()
    }

    /// Subscribers of every shared stream (tests).
    #[cfg(test)]
    pub(super) fn subscribers(&self) -> usize {
        lock(&self.live)
            .values()
            .filter_map(Weak::upgrade)
            .map(|shared| lock(&shared.routes).by_serial.len())
            .sum()
    }
}

/// The routes as they are now, taken again only after a change.
fn snapshot(routes: &Mutex<Routes>) -> Arc<[Arc<Route>]> {
    let mut routes = lock(routes);
    let routes = &mut *routes;
    Arc::clone(
        routes
            .snapshot
            .get_or_insert_with(|| routes.by_serial.values().cloned().collect()),
    )
}

/// The stream's next item if it is ready without waiting. The poll also
/// takes in whatever the bus holds, so those events count as arriving.
async fn ready_now<S: futures::Stream + Unpin>(stream: &mut S) -> Option<Option<S::Item>> {
    use std::task::Poll;
    std::future::poll_fn(|cx| match stream.poll_next_unpin(cx) {
        Poll::Ready(item) => Poll::Ready(Some(item)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// Writes one result to every route, in parts on the runtime's workers,
/// and returns when all are written (so results never overtake each other).
/// The writes run outside tokio's task budget: each socket write spends a
/// unit of it, and once it is spent (after 128) every write would return
/// `Pending` and queue in the backlog, waking each socket's session to do
/// what a write here does at once. They do not wait on anything, so opting
/// out cannot starve other tasks for longer than the part takes.
async fn deliver(targets: Arc<[Arc<Route>]>, payloads: Arc<[Arc<str>]>) {
    let parts = tokio::runtime::Handle::current()
        .metrics()
        .num_workers()
        .min(targets.len().div_ceil(PART))
        .max(1);
    let size = targets.len().div_ceil(parts);
    let mut writers = Vec::with_capacity(parts - 1);
    for part in 1..parts {
        let (targets, payloads) = (Arc::clone(&targets), Arc::clone(&payloads));
        writers.push(tokio::spawn(unconstrained(async move {
            let end = (part * size + size).min(targets.len());
            deliver_part(&targets[part * size..end], &payloads);
        })));
    }
    unconstrained(async { deliver_part(&targets[..size.min(targets.len())], &payloads) }).await;
    for writer in writers {
        // A part only panics if a write does; the others are written.
        let _ = writer.await;
    }
}

/// Frames kept per batch of results: one per (operation id, protocol)
/// seen, for the first few; subscribers past them (each with ids of their
/// own) get theirs framed one at a time.
const FRAMES_KEPT: usize = 16;

fn deliver_part(routes: &[Arc<Route>], payloads: &[Arc<str>]) {
    let mut frames: Vec<(&str, Protocol, Vec<u8>)> = Vec::new();
    let mut scratch = Vec::new();
    for route in routes {
        let kept = frames
            .iter()
            .position(|(id, protocol, _)| *id == &*route.id && *protocol == route.protocol);
        let kept = match kept {
            Some(at) => Some(at),
            None if frames.len() < FRAMES_KEPT => {
                let mut bytes = Vec::new();
                for payload in payloads {
                    result_frame(&mut bytes, &route.id, route.protocol, payload);
                }
                frames.push((&route.id, route.protocol, bytes));
                Some(frames.len() - 1)
            }
            None => {
                scratch.clear();
                for payload in payloads {
                    result_frame(&mut scratch, &route.id, route.protocol, payload);
                }
                None
            }
        };
        let bytes = kept.map_or(&scratch, |at| &frames[at].2);
        if route.socket.deliver(&route.open, bytes) == Delivery::Full {
            // Nothing more for it: a gap would be worse than the end.
            route.open.store(false, Ordering::Release);
            route.notify(Notice::Result(Arc::new(SharedResult::FellBehind)));
        }
    }
}

/// The WebSocket frame of a result: the protocol's message around the
/// shared payload.
fn result_frame(out: &mut Vec<u8>, id: &str, protocol: Protocol, payload: &str) {
    let message = addressed_json(id, protocol.result_kind(), payload);
    frame(out, 0x1, &[message.as_bytes()]);
}

/// Responses and errors are plain data: serialising them cannot fail.
fn json(value: &impl serde::Serialize) -> Arc<str> {
    serde_json::to_string(value).unwrap_or_default().into()
}
