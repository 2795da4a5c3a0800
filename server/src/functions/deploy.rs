//! The writes that move a revision through compilation and deploy it. A
//! revision's outcome is written once (only while it is PENDING or
//! COMPILING), the function's status follows it only if it is still the
//! latest revision, and a READY outcome deploys it only if it is newer than
//! the deployed one: so a stale, duplicate or out-of-order result never
//! moves the function backwards. A rollback deploys an old module as a new
//! revision without compiling anything.

use sea_orm::{
    ActiveEnum, ActiveModelTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QuerySelect, Set, Statement, TransactionTrait, Value,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use entity::function::{self, FunctionStatus};
use entity::function_version;

use super::{FunctionError, FunctionRecord};

/// How the compilation of one revision ended, as checked by the platform.
#[derive(Debug, PartialEq, Eq)]
pub enum CompileOutcome {
    Ready(Vec<u8>),
    Failed(String),
}

fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(sea_orm::DatabaseBackend::Postgres, sql, values)
}

/// PENDING → COMPILING for this revision (and for the function, if it is
/// still the latest). False when there is nothing to compile: the revision
/// is gone (function deleted) or already has its outcome.
pub async fn mark_compiling<C: ConnectionTrait>(
    db: &C,
    function_id: Uuid,
    revision: i64,
) -> Result<bool, DbErr> {
    let row = db
        .query_one(statement(
            "WITH v AS (
                 UPDATE function_versions SET status = 'COMPILING'
                  WHERE function_id = $1 AND revision = $2 AND status IN ('PENDING', 'COMPILING')
                  RETURNING function_id),
             f AS (
                 UPDATE functions SET status = 'COMPILING', updated_at = now()
                  WHERE id IN (SELECT function_id FROM v) AND revision = $2
                    AND status IN ('PENDING', 'COMPILING'))
             SELECT count(*) AS moved FROM v",
            vec![function_id.into(), revision.into()],
        ))
        .await?;
    let moved: i64 = match row {
        Some(row) => row.try_get("", "moved")?,
        None => 0,
    };
    Ok(moved == 1)
}

/// Writes the outcome of `revision` (the function's latest when `None`, for
/// a compiler that does not track revisions) in the caller's transaction.
/// Returns whether it applied: false for a revision that is gone or already
/// has its outcome.
pub async fn record_outcome<C: ConnectionTrait>(
    txn: &C,
    function_id: Uuid,
    revision: Option<i64>,
    outcome: &CompileOutcome,
) -> Result<bool, DbErr> {
    let revision = match revision {
        Some(revision) => Some(revision),
        None => {
            function::Entity::find_by_id(function_id)
                .select_only()
                .column(function::Column::Revision)
                .into_tuple::<i64>()
                .one(txn)
                .await?
        }
    };
    let Some(revision) = revision else {
        return Ok(false);
    };
    let unfinished = txn
        .query_one(statement(
            "SELECT 1 AS unfinished FROM function_versions
              WHERE function_id = $1 AND revision = $2 AND status IN ('PENDING', 'COMPILING')
              FOR UPDATE",
            vec![function_id.into(), revision.into()],
        ))
        .await?
        .is_some();
    if !unfinished {
        return Ok(false);
    }
    let (status, error, digest, size) = match outcome {
        CompileOutcome::Ready(wasm) => {
            let digest = store_module(txn, wasm).await?;
            (
                FunctionStatus::Ready,
                None,
                Some(digest),
                Some(wasm.len() as i32),
            )
        }
        CompileOutcome::Failed(error) => (FunctionStatus::Failed, Some(error.clone()), None, None),
    };
    let status = status.to_value();
    txn.execute(statement(
        "UPDATE function_versions
            SET status = $3::function_status, compile_error = $4, module_digest = $5,
                wasm_size = $6, compiled_at = now()
          WHERE function_id = $1 AND revision = $2 AND status IN ('PENDING', 'COMPILING')",
        vec![
            function_id.into(),
            revision.into(),
            status.clone().into(),
            error.clone().into(),
            digest.into(),
            size.into(),
        ],
    ))
    .await?;
    let ready = matches!(outcome, CompileOutcome::Ready(_));
    txn.execute(statement(
        "UPDATE functions
            SET status = CASE WHEN latest THEN $3::function_status ELSE status END,
                compile_error = CASE WHEN latest THEN $4 ELSE compile_error END,
                deployed_revision = CASE WHEN newer THEN $2 ELSE deployed_revision END,
                updated_at = now()
           FROM (SELECT revision = $2 AND status IN ('PENDING', 'COMPILING') AS latest,
                        $5 AND (deployed_revision IS NULL OR deployed_revision < $2) AS newer
                   FROM functions WHERE id = $1) AS change
          WHERE id = $1 AND (change.latest OR change.newer)",
        vec![
            function_id.into(),
            revision.into(),
            status.into(),
            error.into(),
            ready.into(),
        ],
    ))
    .await?;
    Ok(true)
}

/// Stores a module once per content; returns its digest.
async fn store_module<C: ConnectionTrait>(txn: &C, wasm: &[u8]) -> Result<String, DbErr> {
    let digest: String = Sha256::digest(wasm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    txn.execute(statement(
        "INSERT INTO modules (digest, wasm_binary) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING",
        vec![digest.clone().into(), wasm.to_vec().into()],
    ))
    .await?;
    Ok(digest)
}

/// Makes READY revision `revision` live again at once: records it as
/// revision N+1 (its source and module) and walks the function PENDING →
/// READY with N+1 deployed, in one transaction, so subscribers see both
/// transitions. Needs no compiler.
pub async fn rollback(
    db: &DatabaseConnection,
    id: Uuid,
    revision: i64,
) -> Result<FunctionRecord, FunctionError> {
    let txn = db.begin().await?;
    let current = function::Entity::find_by_id(id)
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or(FunctionError::NotFound(id))?;
    let target = function_version::Entity::find_by_id((id, revision))
        .one(&txn)
        .await?
        .ok_or(FunctionError::VersionNotFound { id, revision })?;
    if target.status != FunctionStatus::Ready {
        return Err(FunctionError::NotDeployable {
            revision,
            status: target.status.to_value(),
        });
    }
    let new_revision = current.revision + 1;
    function_version::ActiveModel {
        function_id: Set(id),
        revision: Set(new_revision),
        language: Set(target.language.clone()),
        source: Set(target.source.clone()),
        status: Set(FunctionStatus::Ready),
        compile_error: Set(None),
        module_digest: Set(target.module_digest.clone()),
        wasm_size: Set(target.wasm_size),
        compiled_at: Set(Some(chrono::Utc::now())),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let mut pending: function::ActiveModel = current.into();
    pending.language = Set(target.language);
    pending.source = Set(target.source);
    pending.revision = Set(new_revision);
    pending.status = Set(FunctionStatus::Pending);
    pending.compile_error = Set(None);
    pending.updated_at = Set(chrono::Utc::now());
    let pending = pending.update(&txn).await?;
    let mut deployed: function::ActiveModel = pending.into();
    deployed.status = Set(FunctionStatus::Ready);
    deployed.deployed_revision = Set(Some(new_revision));
    let model = deployed.update(&txn).await?;
    txn.commit().await?;
    tracing::info!(function_id = %id, from = revision, revision = new_revision, "function.rolled_back");
    Ok(FunctionRecord::from_model(model, target.wasm_size))
}
