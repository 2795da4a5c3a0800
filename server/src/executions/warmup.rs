//! Compiles a function's module into the runtime's cache as soon as the function
//! turns READY (announced by any worker, seen by every replica), so its first
//! execution does not pay for the compile.

use sea_orm::DatabaseConnection;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::events::{BusMessage, EventBus};
use crate::runtime::{ModuleKey, Runtime};

pub fn spawn_cache_warmer(
    db: DatabaseConnection,
    runtime: Runtime,
    events: &EventBus,
    shutdown: CancellationToken,
) {
    let mut receiver = events.subscribe();
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return,
                message = receiver.recv() => message,
            };
            let change = match message {
                Ok(BusMessage::Function(announcement)) if announcement.change.status == "READY" => {
                    announcement.change.clone()
                }
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            match crate::functions::wasm(&db, change.id).await {
                Ok(Some((revision, wasm))) => {
                    let key = ModuleKey {
                        function_id: change.id,
                        revision,
                    };
                    if let Err(error) = runtime.prepare(key, &wasm).await {
                        tracing::warn!(function_id = %change.id, %error, "runtime.warmup_failed");
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(function_id = %change.id, %error, "runtime.warmup_failed")
                }
            }
        }
    });
}
