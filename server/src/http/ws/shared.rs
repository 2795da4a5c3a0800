//! Shared subscription results: subscribers of the same operation (query,
//! operation name, variables) share one async-graphql response stream, so an
//! event is resolved and serialised once however many sockets follow it, and
//! each socket only wraps the shared bytes in its own message.
//!
//! Only operations the application's [`SharePolicy`] allows are shared: their
//! results must not depend on who asks (the connection's data) or on when one
//! joins (no first snapshot of current state). A shared stream runs with the
//! data of the connection that started it, ends when its last subscriber
//! leaves, and hands results over a bounded channel: a subscriber that falls
//! [`SHARED_BUFFER`] results behind gets an error and the operation ends,
//! never an unbounded queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use async_graphql::{Data, Executor, Request, Response};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::protocol::is_request_error;
use crate::graphql::operation::Operation;

/// Results a shared stream holds for its slowest subscriber: the slack the
/// event bus gives every stream. The buffer is the stream's, not each
/// subscriber's, so its size does not grow with them.
pub(super) const SHARED_BUFFER: usize = crate::events::BUS_CAPACITY;

/// Decides which operations may share one stream (see the module docs).
pub type SharePolicy = Arc<dyn Fn(&Request) -> bool + Send + Sync>;

/// One result of a shared stream, serialised once.
#[derive(Debug)]
pub(super) enum SharedResult {
    /// A result: the `payload` of `next` (`data` on the legacy protocol).
    Next(Arc<str>),
    /// The first result was a request error: the `errors` array, and the
    /// whole response (the legacy protocol sends it as `data`).
    RequestError {
        errors: Arc<str>,
        response: Arc<str>,
    },
    /// The subscriber fell too far behind; the operation ends.
    FellBehind,
    /// The stream ended.
    End,
}

/// What identifies an operation's results.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    query: String,
    operation_name: Option<String>,
    variables: String,
}

/// A running shared stream; dropping the last handle stops it.
struct Shared {
    /// Tells it apart from a later stream of the same operation.
    generation: u64,
    sender: broadcast::Sender<Arc<SharedResult>>,
    task: tokio::task::AbortHandle,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.task.abort();
        crate::metrics::shared_stream(-1);
    }
}

/// One subscriber of a shared stream, as the subscription gauge counts it.
struct Subscriber {
    _stream: Arc<Shared>,
}

impl Subscriber {
    fn new(stream: Arc<Shared>) -> Self {
        crate::metrics::shared_subscriber(1);
        Self { _stream: stream }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
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

    /// The results of `request` as shared by every subscriber of the same
    /// operation, or the request back when the policy does not share it.
    pub(super) fn subscribe<E: Executor>(
        &self,
        executor: &E,
        request: Request,
        data: &Arc<Data>,
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
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        let shared = match live.get(&key).and_then(Weak::upgrade) {
            Some(shared) => shared,
            None => {
                live.retain(|_, shared| shared.strong_count() > 0);
                let shared = self.start(executor, key.clone(), request, data);
                live.insert(key, Arc::downgrade(&shared));
                shared
            }
        };
        // Subscribed under the lock: the stream's end (sent under it too)
        // cannot pass a subscriber by.
        let receiver = shared.sender.subscribe();
        drop(live);
        let subscriber = Subscriber::new(shared);
        Ok(BroadcastStream::new(receiver)
            .map(move |result| {
                // Holding the handle keeps the stream running.
                let _running = &subscriber;
                match result {
                    Ok(result) => result,
                    Err(BroadcastStreamRecvError::Lagged(_)) => Arc::new(SharedResult::FellBehind),
                }
            })
            .scan(false, |ended, result| {
                // Nothing after the end, or after falling behind.
                let item = match *result {
                    _ if *ended => None,
                    SharedResult::End => None,
                    SharedResult::FellBehind => {
                        *ended = true;
                        Some(result)
                    }
                    _ => Some(result),
                };
                std::future::ready(item)
            })
            .boxed())
    }

    fn start<E: Executor>(
        &self,
        executor: &E,
        key: Key,
        mut request: Request,
        data: &Arc<Data>,
    ) -> Arc<Shared> {
        let (sender, _) = broadcast::channel(SHARED_BUFFER);
        let operation = Operation::start(&mut request);
        let mut results = operation.follow(executor.execute_stream(request, Some(data.clone())));
        let live = Arc::downgrade(&self.live);
        let publish = sender.clone();
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let task = tokio::spawn(async move {
            let mut first = true;
            while let Some(response) = results.next().await {
                let result = serialise(&response, std::mem::take(&mut first));
                // No receiver left: the last handle is being dropped, which
                // aborts this task.
                let _ = publish.send(Arc::new(result));
            }
            // Ended: forget it and say so under the lock, so that a later
            // subscriber starts afresh instead of joining a finished stream.
            if let Some(live) = live.upgrade() {
                let mut live = live.lock().unwrap_or_else(PoisonError::into_inner);
                let ours = live
                    .get(&key)
                    .and_then(Weak::upgrade)
                    .is_some_and(|shared| shared.generation == generation);
                if ours {
                    live.remove(&key);
                }
                let _ = publish.send(Arc::new(SharedResult::End));
            }
        });
        crate::metrics::shared_stream(1);
        Arc::new(Shared {
            generation,
            sender,
            task: task.abort_handle(),
        })
    }

    /// Operations currently shared (tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|shared| shared.strong_count() > 0)
            .count()
    }

    /// Subscribers of every shared stream (tests).
    #[cfg(test)]
    pub(super) fn subscribers(&self) -> usize {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter_map(Weak::upgrade)
            .map(|shared| shared.sender.receiver_count())
            .sum()
    }
}

fn serialise(response: &Response, first: bool) -> SharedResult {
    if first && is_request_error(response) {
        return SharedResult::RequestError {
            errors: json(&response.errors),
            response: json(response),
        };
    }
    SharedResult::Next(json(response))
}

/// Responses and errors are plain data: serialising them cannot fail.
fn json(value: &impl serde::Serialize) -> Arc<str> {
    serde_json::to_string(value).unwrap_or_default().into()
}
