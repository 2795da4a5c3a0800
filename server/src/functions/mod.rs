//! Functions: validation of what users submit, and the writes that must happen
//! together: a new revision with its enqueued compilation (create, an update
//! of the source), a compile outcome with its deploy ([`deploy`]), a delete
//! with its versions and executions. Every revision is kept ([`versions`]).
//! Reads never load the wasm unless asked.

mod deploy;
mod record;
mod validate;
mod versions;

use std::sync::LazyLock;

use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    Statement, TransactionTrait, Value,
};
use uuid::Uuid;

pub use deploy::{CompileOutcome, mark_compiling, record_outcome, rollback};
use entity::function::{self, FunctionStatus};
use entity::function_version;
use entity::module as stored_module;
pub use record::{FunctionRecord, OptionalColumns, VersionRecord};
pub use validate::{FunctionLimits, SUPPORTED_LANGUAGES, check_language};
pub use versions::{list_versions, module, version};

use crate::pagination::{Page, PageRequest, StatementTexts, page_statement};
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
    #[error(
        "a function named {0:?} already exists (names are compared ignoring case); choose another name"
    )]
    NameTaken(String),
    #[error("function {id} has no revision {revision}")]
    VersionNotFound { id: Uuid, revision: i64 },
    #[error(
        "function {id} is at revision {current}, not {expected}: it was changed since you loaded it; load revision {current} and apply your change again"
    )]
    Conflict {
        id: Uuid,
        current: i64,
        expected: i64,
    },
    #[error(
        "revision {revision} is {status} and cannot be deployed: only a READY revision can be rolled back to"
    )]
    NotDeployable { revision: i64, status: String },
    #[error(
        "the platform is at capacity: {waiting} compilations are already waiting \
         (PROJECTNIL_COMPILE_BACKLOG); nothing was recorded, try again later"
    )]
    BacklogFull { waiting: i64 },
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
    if let Some(description) = &new.description {
        limits.description(description)?;
    }
    let txn = db.begin().await?;
    let model = function::ActiveModel {
        id: Set(Uuid::new_v4()),
        name: Set(name.clone()),
        description: Set(new.description),
        language: Set(new.language),
        source: Set(new.source),
        status: Set(FunctionStatus::Pending),
        revision: Set(1),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .map_err(|e| name_taken(e, &name))?;
    publish_revision(&txn, limits, &model).await?;
    txn.commit().await?;
    tracing::info!(function_id = %model.id, revision = model.revision, "function.created");
    tracing::info!(function_id = %model.id, revision = model.revision, "compilation.job.published");
    Ok(FunctionRecord::from_model(model, None))
}

/// Records the function's latest revision as a PENDING version and enqueues
/// its compilation (in the caller's transaction), unless
/// `limits.compile_backlog` jobs or more already wait: then the caller
/// rolls its transaction back, and nothing is recorded.
async fn publish_revision(
    txn: &DatabaseTransaction,
    limits: &FunctionLimits,
    function: &function::Model,
) -> Result<(), FunctionError> {
    function_version::ActiveModel {
        function_id: Set(function.id),
        revision: Set(function.revision),
        language: Set(function.language.clone()),
        source: Set(function.source.clone()),
        status: Set(FunctionStatus::Pending),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    let job = CompilationJob {
        function_id: function.id,
        language: function.language.clone(),
        source: function.source.clone(),
        revision: function.revision,
    };
    let backlog = i64::try_from(limits.compile_backlog).unwrap_or(i64::MAX);
    if let Err(waiting) =
        queue::send_unless_full(txn, queue::COMPILATION_JOBS_QUEUE, &job, backlog).await?
    {
        crate::metrics::compilation_refused();
        return Err(FunctionError::BacklogFull { waiting });
    }
    Ok(())
}

/// Applies changes. A changed source or language records a new revision,
/// PENDING, and enqueues its compilation, in one transaction; the deployed
/// revision keeps serving meanwhile. With `expected_revision`, the update is
/// refused (nothing changes) unless the function is still at that revision.
pub async fn update(
    db: &DatabaseConnection,
    limits: &FunctionLimits,
    id: Uuid,
    changes: FunctionChanges,
    expected_revision: Option<i64>,
) -> Result<FunctionRecord, FunctionError> {
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
    if let Some(Some(description)) = &changes.description {
        limits.description(description)?;
    }
    let txn = db.begin().await?;
    let current = function::Entity::find_by_id(id)
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or(FunctionError::NotFound(id))?;
    if let Some(expected) = expected_revision.filter(|e| *e != current.revision) {
        return Err(FunctionError::Conflict {
            id,
            current: current.revision,
            expected,
        });
    }
    let recompile = changes
        .source
        .as_ref()
        .is_some_and(|s| *s != current.source)
        || changes
            .language
            .as_ref()
            .is_some_and(|l| *l != current.language);
    let mut active: function::ActiveModel = current.clone().into();
    if let Some(name) = &name {
        active.name = Set(name.clone());
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
        active.revision = Set(current.revision + 1);
    }
    active.updated_at = Set(chrono::Utc::now());
    let model = active
        .update(&txn)
        .await
        .map_err(|e| name_taken(e, name.as_deref().unwrap_or_default()))?;
    let wasm_size = if recompile {
        publish_revision(&txn, limits, &model).await?;
        None
    } else {
        versions::wasm_size(&txn, id, model.revision).await?
    };
    txn.commit().await?;
    tracing::info!(function_id = %id, revision = model.revision, recompile, "function.updated");
    if recompile {
        tracing::info!(function_id = %id, revision = model.revision, "compilation.job.published");
    }
    Ok(FunctionRecord::from_model(model, wasm_size))
}

/// Deletes the function; its versions and executions go with it (ON DELETE
/// CASCADE), and so do the modules no other function's revision uses.
pub async fn delete(db: &DatabaseConnection, id: Uuid) -> Result<(), FunctionError> {
    let txn = db.begin().await?;
    let digests: Vec<String> = function_version::Entity::find()
        .select_only()
        .column(function_version::Column::ModuleDigest)
        .distinct()
        .filter(function_version::Column::FunctionId.eq(id))
        .filter(function_version::Column::ModuleDigest.is_not_null())
        .into_tuple()
        .all(&txn)
        .await?;
    let result = function::Entity::delete_by_id(id).exec(&txn).await?;
    if result.rows_affected == 0 {
        return Err(FunctionError::NotFound(id));
    }
    let unused = Expr::exists(
        sea_orm::sea_query::Query::select()
            .expr(Expr::val(1))
            .from(function_version::Entity)
            .and_where(
                Expr::col((
                    function_version::Entity,
                    function_version::Column::ModuleDigest,
                ))
                .equals((stored_module::Entity, stored_module::Column::Digest)),
            )
            .to_owned(),
    )
    .not();
    stored_module::Entity::delete_many()
        .filter(stored_module::Column::Digest.is_in(digests))
        .filter(unused)
        .exec(&txn)
        .await?;
    txn.commit().await?;
    tracing::info!(function_id = %id, "function.deleted");
    Ok(())
}

pub async fn get(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<FunctionRecord>, DbErr> {
    FunctionRecord::select()
        .filter(function::Column::Id.eq(id))
        .into_model()
        .one(db)
        .await
}

/// Whether the function exists: its id from the primary key's index, where
/// [`get`] would read the whole record (source included) only to drop it.
pub async fn exists(db: &impl ConnectionTrait, id: Uuid) -> Result<bool, DbErr> {
    let found: Option<Uuid> = function::Entity::find_by_id(id)
        .select_only()
        .column(function::Column::Id)
        .into_tuple()
        .one(db)
        .await?;
    Ok(found.is_some())
}

pub async fn get_many(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<Vec<FunctionRecord>, DbErr> {
    FunctionRecord::select()
        .filter(function::Column::Id.is_in(ids.iter().copied()))
        .into_model()
        .all(db)
        .await
}

/// Newest first, optionally by status and part of the name. The total is
/// counted only `with_total` (otherwise the page's `total_count` is 0): the
/// count reads every matching row, the page only `first` of them. Of the
/// [`OptionalColumns`], the records hold only `columns`.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &FunctionFilter,
    page: &PageRequest,
    with_total: bool,
    columns: OptionalColumns,
) -> Result<Page<FunctionRecord>, DbErr> {
    static STATEMENTS: LazyLock<StatementTexts<ListShape>> = LazyLock::new(StatementTexts::new);
    let filter = ListFilter::of(filter);
    let shape = ListShape {
        columns,
        status: filter.status.is_some(),
        name: filter.name_pattern.is_some(),
        after: page.after.is_some(),
        with_total,
        limit: page.fetch_limit(),
    };
    let statement = STATEMENTS.statement(shape, list_parameters(&filter, page, with_total), || {
        list_statement(&filter, page, with_total, columns)
    });
    let count = with_total.then(|| list_condition(&filter));
    crate::pagination::fetch_page::<_, function::Entity, _, _>(db, statement, page, count).await
}

/// What the text of [`list`]'s statement depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ListShape {
    columns: OptionalColumns,
    status: bool,
    name: bool,
    after: bool,
    with_total: bool,
    limit: u64,
}

/// A [`FunctionFilter`] as [`list`]'s statement uses it, its LIKE pattern
/// made once.
struct ListFilter {
    status: Option<FunctionStatus>,
    /// `nameContains`, escaped, matched against the lower-cased name.
    name_pattern: Option<String>,
}

impl ListFilter {
    fn of(filter: &FunctionFilter) -> Self {
        let needle = filter.name_contains.as_deref().filter(|n| !n.is_empty());
        Self {
            status: filter.status,
            name_pattern: needle.map(|n| format!("%{}%", escape_like(&n.to_lowercase()))),
        }
    }
}

fn list_statement(
    filter: &ListFilter,
    page: &PageRequest,
    with_total: bool,
    columns: OptionalColumns,
) -> Statement {
    let condition = list_condition(filter);
    let count = with_total.then(|| condition.clone());
    let rows_condition = match page.after {
        Some(after) => {
            condition.add(after.rows_after(function::Column::CreatedAt, function::Column::Id))
        }
        None => condition,
    };
    let rows = FunctionRecord::select_columns(columns)
        .filter(rows_condition)
        .order_by_desc(function::Column::CreatedAt)
        .order_by_desc(function::Column::Id);
    page_statement(DbBackend::Postgres, rows, page, count.as_ref())
}

/// The filter, without the cursor.
fn list_condition(filter: &ListFilter) -> Condition {
    let mut condition = Condition::all();
    if let Some(status) = filter.status {
        condition = condition.add(function::Column::Status.eq(status));
    }
    if let Some(pattern) = &filter.name_pattern {
        condition = condition
            .add(Expr::expr(Func::lower(Expr::col(function::Column::Name))).like(pattern.as_str()));
    }
    condition
}

/// The parameters of [`list_statement`], in its order: the count's filter (in
/// the selected columns), then the rows' filter and cursor.
fn list_parameters(filter: &ListFilter, page: &PageRequest, with_total: bool) -> Vec<Value> {
    let condition = [
        filter.status.map(Into::<Value>::into),
        filter.name_pattern.as_deref().map(Value::from),
    ];
    let cursor = page
        .after
        .map(|after| [Value::from(after.created_at), Value::from(after.id)]);
    let count = with_total.then_some(condition.clone());
    count
        .into_iter()
        .flatten()
        .chain(condition)
        .flatten()
        .chain(cursor.into_iter().flatten())
        .collect()
}

/// A write refused because another function has the name: a CONFLICT the
/// user can fix, not an outage.
fn name_taken(error: DbErr, name: &str) -> FunctionError {
    let constraint = crate::db::refusal(&error).and_then(|(_, constraint)| constraint);
    if constraint.as_deref() == Some(migration::FUNCTION_NAME_INDEX) {
        FunctionError::NameTaken(name.to_string())
    } else {
        FunctionError::Db(error)
    }
}

/// The function called `name` (compared ignoring case, as names are unique).
pub async fn find_by_name(
    db: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<FunctionRecord>, DbErr> {
    FunctionRecord::select()
        .filter(
            Expr::expr(Func::lower(Expr::col(function::Column::Name)))
                .eq(Func::lower(Expr::val(name.trim()))),
        )
        .into_model()
        .one(db)
        .await
}

/// Escapes LIKE wildcards so `nameContains: "50%"` means the text "50%".
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pagination::PageCursor;

    /// Every shape's parameters are the rendered statement's, so every
    /// shape's text is reused.
    #[test]
    fn list_parameters_are_in_the_statements_order() {
        let cursor = PageCursor {
            created_at: chrono::Utc::now(),
            id: Uuid::new_v4(),
        };
        for status in [None, Some(FunctionStatus::Ready)] {
            for name_contains in [None, Some(String::new()), Some("50%_\\".to_string())] {
                for after in [None, Some(cursor)] {
                    for with_total in [false, true] {
                        for columns in [OptionalColumns::ALL, OptionalColumns::NONE] {
                            let filter = ListFilter::of(&FunctionFilter {
                                status,
                                name_contains: name_contains.clone(),
                            });
                            let page = PageRequest { first: 7, after };
                            let statement = list_statement(&filter, &page, with_total, columns);
                            let rendered = statement.values.map(|v| v.0).unwrap_or_default();
                            assert_eq!(
                                rendered,
                                list_parameters(&filter, &page, with_total),
                                "{status:?} {name_contains:?} {after:?} with_total={with_total} {columns:?}"
                            );
                            assert!(statement.sql.ends_with(" LIMIT 8"), "{}", statement.sql);
                        }
                    }
                }
            }
        }
    }
}
