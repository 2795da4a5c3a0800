//! How a queue is consumed without polling it. Every insert into a queue is
//! announced on the queue's channel by a trigger (migration
//! `m20261129_000006_queue_notifications`), so a consumer reads batches while
//! there are messages and, when a read comes back short of its batch (it has
//! emptied the queue as far as it could see), sleeps on a LISTEN connection
//! until a notification arrives. Nothing announces a message that becomes
//! visible again (its visibility timeout ran out after a crash, or
//! [`super::make_visible_in`]), so a sleeping consumer also reads again after
//! [`FALLBACK_POLL`]. While the LISTEN connection is down (the database went
//! away) it reads at that pace and reopens the connection.

use std::collections::VecDeque;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{FutureExt as _, StreamExt as _};
use sea_orm::DatabaseConnection;
use sqlx::postgres::{PgListener, PgPool};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Delivery, read};

/// The longest an idle consumer goes without reading its queue: the delay of a
/// message that becomes visible again without a notification, and the polling
/// interval while the LISTEN connection is down.
pub const FALLBACK_POLL: Duration = Duration::from_secs(1);

/// Reads `queue` until `shutdown` and hands every delivery to `handle`, up to
/// `at_once` of them at the same time (1: one after the other, in the order
/// read). It holds at most `batch` deliveries read and not yet handled, and
/// reads again as soon as one is handled and none is waiting, so one slow
/// delivery holds up only its own slot, never the ones read after it. After a
/// read that finds fewer than it asked for, it reads again when a notification
/// arrives (or after [`FALLBACK_POLL`]); a failed read is retried after
/// [`FALLBACK_POLL`]. At `shutdown` it stops reading; what it has read is
/// still handled, none of it interrupted.
pub async fn consume<F, Fut>(
    db: &DatabaseConnection,
    queue: &str,
    visibility_timeout: Duration,
    batch: i32,
    at_once: usize,
    shutdown: &CancellationToken,
    mut handle: F,
) where
    F: FnMut(Delivery) -> Fut,
    Fut: Future<Output = ()>,
{
    // Listening before the first read: a message sent after that read is
    // announced to this connection.
    let mut arrivals = tokio::select! {
        _ = shutdown.cancelled() => return,
        arrivals = QueueListener::start(db.get_postgres_connection_pool().clone(), queue) => arrivals,
    };
    let batch = usize::try_from(batch).unwrap_or(0).max(1);
    let at_once = at_once.clamp(1, batch);
    let mut waiting = VecDeque::with_capacity(batch);
    let mut handling = FuturesUnordered::new();
    // False after a read that came back short (it emptied the queue as far
    // as it could see) until a notification or the fallback interval.
    let mut may_have_more = true;
    loop {
        while handling.len() < at_once {
            let Some(delivery) = waiting.pop_front() else {
                break;
            };
            handling.push(handle(delivery));
        }
        if may_have_more && waiting.is_empty() && handling.len() < at_once {
            let limit = batch - handling.len();
            let read = tokio::select! {
                _ = shutdown.cancelled() => break,
                read = beside(&mut handling, read(db, queue, visibility_timeout, limit as i32)) => read,
            };
            match read {
                Ok(deliveries) => {
                    may_have_more = deliveries.len() == limit;
                    waiting.extend(deliveries);
                }
                Err(error) => {
                    tracing::warn!(queue, %error, "queue.read_failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        () = beside(&mut handling, tokio::time::sleep(FALLBACK_POLL)) => {}
                    }
                }
            }
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(()) = handling.next(), if !handling.is_empty() => {}
            _ = arrivals.wait(FALLBACK_POLL), if !may_have_more => may_have_more = true,
        }
    }
    // Nothing read is left for its visibility timeout to give back.
    while handling.next().await.is_some() {}
    for delivery in waiting {
        handle(delivery).await;
    }
}

/// Awaits `work` while the deliveries in `handling` go on.
async fn beside<Fut: Future<Output = ()>, T>(
    handling: &mut FuturesUnordered<Fut>,
    work: impl Future<Output = T>,
) -> T {
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            biased;
            done = &mut work => return done,
            Some(()) = handling.next(), if !handling.is_empty() => {}
        }
    }
}

/// Why [`QueueListener::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// An insert into the queue was announced (any number of them: the ones
    /// already received are consumed too).
    Notified,
    /// Nothing was announced within the fallback interval.
    TimedOut,
    /// The LISTEN connection was lost: announcements may have been missed.
    Disconnected,
    /// The LISTEN connection is back: announcements may have been missed.
    Reconnected,
}

/// A LISTEN connection on one queue's channel, reopened when it is lost.
pub struct QueueListener {
    pool: PgPool,
    channel: String,
    /// `None` while the connection is down.
    listener: Option<PgListener>,
}

impl QueueListener {
    /// Starts listening. When the database cannot be reached, starts without a
    /// connection and opens it in a later [`wait`](Self::wait).
    pub async fn start(pool: PgPool, queue: &str) -> Self {
        let mut this = Self {
            pool,
            channel: migration::queue_channel(queue),
            listener: None,
        };
        match this.connect().await {
            Ok(listener) => this.listener = Some(listener),
            Err(error) => {
                tracing::warn!(channel = this.channel, %error, "queue.listener.disconnected")
            }
        }
        this
    }

    pub fn is_connected(&self) -> bool {
        self.listener.is_some()
    }

    /// Returns when a message may have arrived: on a notification, or after
    /// `fallback`; at once when the connection was just lost or reopened. While
    /// the connection is down, each wait tries once to reopen it. Cancel-safe.
    pub async fn wait(&mut self, fallback: Duration) -> Wake {
        let deadline = Instant::now() + fallback;
        let Some(listener) = self.listener.as_mut() else {
            match tokio::time::timeout_at(deadline, self.connect()).await {
                Ok(Ok(listener)) => {
                    tracing::info!(channel = self.channel, "queue.listener.reconnected");
                    self.listener = Some(listener);
                    return Wake::Reconnected;
                }
                Ok(Err(error)) => {
                    tracing::debug!(channel = self.channel, %error, "queue.listener.reconnect_failed")
                }
                Err(_) => {}
            }
            tokio::time::sleep_until(deadline).await;
            return Wake::TimedOut;
        };
        let received = match tokio::time::timeout_at(deadline, listener.try_recv()).await {
            Err(_) => return Wake::TimedOut,
            Ok(received) => received,
        };
        if let Ok(Some(_)) = received {
            // One read answers every announcement already received: take them
            // all without waiting (a burst of sends would otherwise cost one
            // empty read each).
            loop {
                match listener.try_recv().now_or_never() {
                    None => return Wake::Notified,
                    Some(Ok(Some(_))) => {}
                    Some(lost) => {
                        self.lost(lost.err());
                        return Wake::Notified;
                    }
                }
            }
        }
        // `Ok(None)`: the connection was lost (it is not reopened inside
        // `try_recv`, see `connect`).
        self.lost(received.err());
        Wake::Disconnected
    }

    fn lost(&mut self, error: Option<sqlx::Error>) {
        match error {
            Some(error) => {
                tracing::warn!(channel = self.channel, %error, "queue.listener.disconnected")
            }
            None => tracing::warn!(channel = self.channel, "queue.listener.disconnected"),
        }
        self.listener = None;
    }

    async fn connect(&self) -> Result<PgListener, sqlx::Error> {
        let mut listener = crate::db::listen(&self.pool, &[&self.channel]).await?;
        // Reopened by `wait` instead, from scratch: `try_recv` is cancelled by
        // every fallback timeout, and reconnecting inside it is not cancel-safe.
        listener.eager_reconnect(false);
        Ok(listener)
    }
}
