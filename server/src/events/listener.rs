//! The one LISTEN connection of a process and its reconnect loop.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{Announcement, BusMessage, BusReceiver, Notification};

/// Subscribers that fall further behind than this are told they lagged (they
/// then re-read current state instead of replaying a stale backlog).
pub const BUS_CAPACITY: usize = 4096;

#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<BusMessage>,
}

impl EventBus {
    /// Connects the listener (failing fast when the database is unreachable at
    /// start-up) and keeps it connected in the background until `shutdown`.
    pub async fn start(pool: PgPool, shutdown: CancellationToken) -> Result<Self, sqlx::Error> {
        let (sender, _) = broadcast::channel(BUS_CAPACITY);
        let listener = connect(&pool).await?;
        tokio::spawn(run(pool, listener, sender.clone(), shutdown));
        Ok(Self { sender })
    }

    pub fn subscribe(&self) -> BusReceiver {
        self.sender.subscribe()
    }

    pub fn subscriber_count(&self) -> usize {
        self.sender.receiver_count()
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    crate::db::listen(pool, &[migration::STATUS_CHANNEL]).await
}

async fn run(
    pool: PgPool,
    mut listener: PgListener,
    sender: broadcast::Sender<BusMessage>,
    shutdown: CancellationToken,
) {
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => return,
            received = listener.try_recv() => received,
        };
        match received {
            Ok(Some(notification)) => {
                match serde_json::from_str::<Notification>(notification.payload()) {
                    Ok(change) => {
                        let message = match change {
                            Notification::Function(change) => {
                                BusMessage::Function(Arc::new(Announcement::new(change)))
                            }
                            Notification::FunctionChange(change) => {
                                BusMessage::FunctionChanged(Arc::new(Announcement::new(change)))
                            }
                            Notification::Execution(change) => {
                                BusMessage::Execution(Arc::new(Announcement::new(change)))
                            }
                        };
                        // No receivers is fine: nobody is subscribed right now.
                        let _ = sender.send(message);
                    }
                    Err(error) => {
                        tracing::warn!(%error, payload = notification.payload(), "events.bad_payload")
                    }
                }
            }
            // `None`: the connection was lost and sqlx has already reconnected
            // and listens again (eager reconnect), so nothing committed from now
            // on is missed; what was committed during the gap may have been.
            Ok(None) => {
                tracing::warn!("events.listener.reconnected");
                let _ = sender.send(BusMessage::Resync);
            }
            // sqlx could not reconnect by itself: keep trying with a backoff.
            Err(error) => {
                tracing::warn!(%error, "events.listener.disconnected");
                listener = match reconnect(&pool, &shutdown).await {
                    Some(listener) => listener,
                    None => return,
                };
                tracing::info!("events.listener.reconnected");
                let _ = sender.send(BusMessage::Resync);
            }
        }
    }
}

async fn reconnect(pool: &PgPool, shutdown: &CancellationToken) -> Option<PgListener> {
    let mut delay = Duration::from_millis(100);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        match connect(pool).await {
            Ok(listener) => return Some(listener),
            Err(error) => {
                tracing::debug!(%error, "events.listener.reconnect_failed");
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}
