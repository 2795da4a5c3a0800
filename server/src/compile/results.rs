//! Applies `compilation_results` to the functions, idempotently: a result only
//! moves a function that is still PENDING or COMPILING at the result's revision,
//! so a duplicate delivery, a result for an outdated revision or for a deleted
//! function changes nothing. The message is deleted in the transaction of the
//! update, so it is gone exactly when the update committed.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveEnum, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, TransactionTrait,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use entity::function::{self, FunctionStatus};

use super::validate;
use crate::queue::{self, CompilationResult, Delivery};

const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);
const BATCH: i32 = 16;

pub struct ResultConsumer {
    db: DatabaseConnection,
}

/// What a result does to its function.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Ready(Vec<u8>),
    Failed(String),
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
        let function_id = result.function_id;
        let verdict = verdict(&result);
        let txn = self.db.begin().await?;
        let mut update = function::Entity::update_many()
            .col_expr(function::Column::UpdatedAt, Expr::value(chrono::Utc::now()))
            .filter(function::Column::Id.eq(function_id))
            .filter(
                function::Column::Status
                    .is_in([FunctionStatus::Pending, FunctionStatus::Compiling]),
            );
        if let Some(revision) = result.revision {
            update = update.filter(function::Column::Revision.eq(revision));
        }
        update = match &verdict {
            Verdict::Ready(wasm) => update
                .col_expr(function::Column::Status, FunctionStatus::Ready.as_enum())
                .col_expr(function::Column::WasmBinary, Expr::value(wasm.clone()))
                .col_expr(
                    function::Column::CompileError,
                    Expr::value(Option::<String>::None),
                ),
            Verdict::Failed(error) => update
                .col_expr(function::Column::Status, FunctionStatus::Failed.as_enum())
                .col_expr(function::Column::CompileError, Expr::value(error.clone()))
                .col_expr(
                    function::Column::WasmBinary,
                    Expr::value(Option::<Vec<u8>>::None),
                ),
        };
        let applied = update.exec(&txn).await?.rows_affected == 1;
        queue::delete(&txn, queue::COMPILATION_RESULTS_QUEUE, delivery.msg_id).await?;
        txn.commit().await?;
        let ready = matches!(verdict, Verdict::Ready(_));
        if applied {
            tracing::info!(ready, "compilation.result.applied");
        } else {
            tracing::info!("compilation.result.dropped");
        }
        Ok(())
    }
}

/// Checks a result as if it came from any compiler: a success must carry a valid
/// module that honours the function ABI.
pub fn verdict(result: &CompilationResult) -> Verdict {
    if !result.success {
        let error = result
            .error
            .clone()
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| "compilation failed without a message".into());
        return Verdict::Failed(error);
    }
    let Some(encoded) = result.wasm_binary.as_deref() else {
        return Verdict::Failed("the compiler reported success but sent no module".into());
    };
    let wasm = match BASE64.decode(encoded) {
        Ok(wasm) => wasm,
        Err(_) => {
            return Verdict::Failed("the compiler sent a module that is not valid base64".into());
        }
    };
    match validate::validate_module(&wasm) {
        Ok(_) => Verdict::Ready(wasm),
        Err(violation) => Verdict::Failed(violation.to_string()),
    }
}

#[derive(Debug, thiserror::Error)]
enum ResultError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
}
