//! Keeps the runtime's module cache in step with deploys, whoever made them
//! (announced by any worker or replica, seen by every replica): compiles a
//! function's module as soon as a revision of it is deployed, so its first
//! execution does not pay for the compile, and drops a deleted function's.

use sea_orm::DatabaseConnection;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::events::{BusMessage, EventBus, FunctionChangeKind};
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
                Ok(BusMessage::FunctionChanged(announcement)) => announcement.change.clone(),
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            match change.change {
                FunctionChangeKind::Deployed => {}
                FunctionChangeKind::Deleted => {
                    runtime.invalidate(change.id);
                    continue;
                }
                FunctionChangeKind::Updated => continue,
            }
            let key = ModuleKey {
                function_id: change.id,
                revision: change.revision,
            };
            match crate::functions::module(&db, key.function_id, key.revision).await {
                Ok(Some(wasm)) => {
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
