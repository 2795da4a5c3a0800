//! Functions: validation of what users submit, and the writes that must happen
//! together with an enqueued compilation (create, recompiling update) or with
//! their executions (cascading delete). Reads never load the wasm unless asked.

mod record;
mod validate;

use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use uuid::Uuid;

use entity::function::{self, FunctionStatus};
pub use record::FunctionRecord;
pub use validate::{FunctionLimits, SUPPORTED_LANGUAGES};

use crate::pagination::{Page, PageRequest};
use crate::queue::{self, CompilationJob, QueueError};

#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error("{0}")]
    Invalid(String),
    #[error("language {0:?} is not supported; supported: {langs}", langs = SUPPORTED_LANGUAGES.join(", "))]
    UnsupportedLanguage(String),
    #[error("source is {size} bytes; the limit is {limit} bytes")]
    SourceTooLarge { size: usize, limit: usize },
    #[error("no function with id {0}")]
    NotFound(Uuid),
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What `createFunction` submits.
#[derive(Debug, Clone)]
pub struct NewFunction {
    pub name: String,
    pub description: Option<String>,
    pub language: String,
    pub source: String,
}

/// What `updateFunction` submits; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct FunctionChanges {
    pub name: Option<String>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    pub language: Option<String>,
    pub source: Option<String>,
}

/// Filters of the functions list.
#[derive(Debug, Clone, Default)]
pub struct FunctionFilter {
    pub status: Option<FunctionStatus>,
    pub name_contains: Option<String>,
}

/// Stores a new function as PENDING and enqueues its compilation in the same
/// transaction: either both happen or neither.
pub async fn create(
    db: &DatabaseConnection,
    limits: &FunctionLimits,
    new: NewFunction,
) -> Result<FunctionRecord, FunctionError> {
    let name = limits.name(&new.name)?;
    limits.language(&new.language)?;
    limits.source(&new.source)?;
    let txn = db.begin().await?;
    let model = function::ActiveModel {
        id: Set(Uuid::new_v4()),
        name: Set(name),
        description: Set(new.description),
        language: Set(new.language),
        source: Set(new.source),
        status: Set(FunctionStatus::Pending),
        revision: Set(1),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let job = CompilationJob {
        function_id: model.id,
        language: model.language.clone(),
        source: model.source.clone(),
        revision: model.revision,
    };
    queue::send(&txn, queue::COMPILATION_JOBS_QUEUE, &job).await?;
    txn.commit().await?;
    tracing::info!(function_id = %model.id, revision = model.revision, "function.created");
    tracing::info!(function_id = %model.id, revision = model.revision, "compilation.job.published");
    Ok(FunctionRecord::from(model))
}

/// Applies changes. A changed source or language sends the function back to
/// PENDING with a new revision and enqueues its compilation, in one transaction.
/// Returns the function and whether it is being recompiled.
pub async fn update(
    db: &DatabaseConnection,
    limits: &FunctionLimits,
    id: Uuid,
    changes: FunctionChanges,
) -> Result<(FunctionRecord, bool), FunctionError> {
    let name = changes
        .name
        .as_deref()
        .map(|n| limits.name(n))
        .transpose()?;
    if let Some(language) = &changes.language {
        limits.language(language)?;
    }
    if let Some(source) = &changes.source {
        limits.source(source)?;
    }
    let txn = db.begin().await?;
    let current = function::Entity::find_by_id(id)
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or(FunctionError::NotFound(id))?;
    let recompile = changes
        .source
        .as_ref()
        .is_some_and(|s| *s != current.source)
        || changes
            .language
            .as_ref()
            .is_some_and(|l| *l != current.language);
    let mut active: function::ActiveModel = current.clone().into();
    if let Some(name) = name {
        active.name = Set(name);
    }
    if let Some(description) = changes.description {
        active.description = Set(description);
    }
    if let Some(language) = changes.language {
        active.language = Set(language);
    }
    if let Some(source) = changes.source {
        active.source = Set(source);
    }
    if recompile {
        active.status = Set(FunctionStatus::Pending);
        active.compile_error = Set(None);
        active.wasm_binary = Set(None);
        active.revision = Set(current.revision + 1);
    }
    active.updated_at = Set(chrono::Utc::now());
    let model = active.update(&txn).await?;
    if recompile {
        let job = CompilationJob {
            function_id: id,
            language: model.language.clone(),
            source: model.source.clone(),
            revision: model.revision,
        };
        queue::send(&txn, queue::COMPILATION_JOBS_QUEUE, &job).await?;
    }
    txn.commit().await?;
    tracing::info!(function_id = %id, revision = model.revision, recompile, "function.updated");
    if recompile {
        tracing::info!(function_id = %id, revision = model.revision, "compilation.job.published");
    }
    Ok((FunctionRecord::from(model), recompile))
}

/// Deletes the function; its executions go with it (ON DELETE CASCADE).
pub async fn delete(db: &DatabaseConnection, id: Uuid) -> Result<(), FunctionError> {
    let result = function::Entity::delete_by_id(id).exec(db).await?;
    if result.rows_affected == 0 {
        return Err(FunctionError::NotFound(id));
    }
    tracing::info!(function_id = %id, "function.deleted");
    Ok(())
}

pub async fn get(db: &DatabaseConnection, id: Uuid) -> Result<Option<FunctionRecord>, DbErr> {
    FunctionRecord::select()
        .filter(function::Column::Id.eq(id))
        .into_model()
        .one(db)
        .await
}

pub async fn get_many(db: &DatabaseConnection, ids: &[Uuid]) -> Result<Vec<FunctionRecord>, DbErr> {
    FunctionRecord::select()
        .filter(function::Column::Id.is_in(ids.iter().copied()))
        .into_model()
        .all(db)
        .await
}

/// The compiled module of a READY function, with the revision it belongs to.
pub async fn wasm(db: &DatabaseConnection, id: Uuid) -> Result<Option<(i64, Vec<u8>)>, DbErr> {
    let row: Option<(i64, Option<Vec<u8>>)> = function::Entity::find_by_id(id)
        .select_only()
        .column(function::Column::Revision)
        .column(function::Column::WasmBinary)
        .into_tuple()
        .one(db)
        .await?;
    Ok(row.and_then(|(revision, wasm)| wasm.map(|w| (revision, w))))
}

pub async fn list(
    db: &DatabaseConnection,
    filter: &FunctionFilter,
    page: &PageRequest,
) -> Result<Page<FunctionRecord>, DbErr> {
    let mut condition = Condition::all();
    if let Some(status) = filter.status {
        condition = condition.add(function::Column::Status.eq(status));
    }
    if let Some(needle) = filter.name_contains.as_deref().filter(|n| !n.is_empty()) {
        let pattern = format!("%{}%", escape_like(&needle.to_lowercase()));
        condition =
            condition.add(Expr::expr(Func::lower(Expr::col(function::Column::Name))).like(pattern));
    }
    let total = function::Entity::find()
        .filter(condition.clone())
        .count(db)
        .await? as i64;
    if let Some(after) = page.after {
        condition =
            condition.add(after.rows_after(function::Column::CreatedAt, function::Column::Id));
    }
    let rows = FunctionRecord::select()
        .filter(condition)
        .order_by_desc(function::Column::CreatedAt)
        .order_by_desc(function::Column::Id)
        .limit(page.fetch_limit())
        .into_model()
        .all(db)
        .await?;
    Ok(Page::from_rows(rows, page, total))
}

/// Escapes LIKE wildcards so `nameContains: "50%"` means the text "50%".
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
