//! Applies `compilation_results` to the functions' revisions, idempotently
//! (see [`functions::record_outcome`]): a result only moves a revision that is
//! still PENDING or COMPILING, so a duplicate delivery or a result for a
//! deleted function changes nothing, and one for an older revision deploys it
//! only if nothing newer is deployed. The message is deleted in the
//! transaction of the update, so it is gone exactly when the update committed.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::validate;
use crate::functions::{self, CompileOutcome};
use crate::queue::{self, CompilationResult, Delivery};

const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);
const BATCH: i32 = 16;

pub struct ResultConsumer {
    db: DatabaseConnection,
}

impl ResultConsumer {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Applies results until `shutdown`; idle, it sleeps until a result is
    /// announced (see [`queue::consume`]).
    pub async fn run(self, shutdown: CancellationToken) {
        let this = &self;
        queue::consume(
            &self.db,
            queue::COMPILATION_RESULTS_QUEUE,
            VISIBILITY_TIMEOUT,
            BATCH,
            1,
            &shutdown,
            |delivery| async move {
                if let Err(error) = this.apply(&delivery).await {
                    // Left in the queue: it is retried after its visibility timeout.
                    tracing::error!(msg_id = delivery.msg_id, %error, "compilation.result.apply_failed");
                }
            },
        )
        .await;
    }

    async fn apply(&self, delivery: &Delivery) -> Result<(), ResultError> {
        let result: CompilationResult = match delivery.decode() {
            Ok(result) => result,
            Err(error) => {
                tracing::warn!(msg_id = delivery.msg_id, %error, "compilation.result.malformed");
                queue::archive(&self.db, queue::COMPILATION_RESULTS_QUEUE, delivery.msg_id).await?;
                return Ok(());
            }
        };
        let function_id = result.function_id;
        let span = tracing::info_span!("compilation", function_id = %function_id, revision = result.revision);
        self.apply_result(delivery, result).instrument(span).await
    }

    async fn apply_result(
        &self,
        delivery: &Delivery,
        result: CompilationResult,
    ) -> Result<(), ResultError> {
        let verdict = verdict(&result);
        let txn = self.db.begin().await?;
        let applied =
            functions::record_outcome(&txn, result.function_id, result.revision, &verdict).await?;
        queue::delete(&txn, queue::COMPILATION_RESULTS_QUEUE, delivery.msg_id).await?;
        txn.commit().await?;
        log_applied(applied, &verdict);
        Ok(())
    }
}

/// Logs whether a committed outcome moved its revision (a duplicate, or one
/// for a revision that moved on, changes nothing).
pub(super) fn log_applied(applied: bool, outcome: &CompileOutcome) {
    if applied {
        let ready = matches!(outcome, CompileOutcome::Ready(_));
        tracing::info!(ready, "compilation.result.applied");
    } else {
        tracing::info!("compilation.result.dropped");
    }
}

/// Checks a result as if it came from any compiler: a success must carry a valid
/// module that honours the function ABI.
pub fn verdict(result: &CompilationResult) -> CompileOutcome {
    if !result.success {
        let error = result
            .error
            .clone()
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| "compilation failed without a message".into());
        return CompileOutcome::Failed(error);
    }
    let Some(encoded) = result.wasm_binary.as_deref() else {
        return CompileOutcome::Failed("the compiler reported success but sent no module".into());
    };
    let wasm = match BASE64.decode(encoded) {
        Ok(wasm) => wasm,
        Err(_) => {
            return CompileOutcome::Failed(
                "the compiler sent a module that is not valid base64".into(),
            );
        }
    };
    match validate::validate_module(&wasm) {
        Ok(_) => CompileOutcome::Ready(wasm),
        Err(violation) => CompileOutcome::Failed(violation.to_string()),
    }
}

#[derive(Debug, thiserror::Error)]
enum ResultError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
}
