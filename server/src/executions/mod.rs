//! Executions: validating the input, recording each run (PENDING → RUNNING →
//! COMPLETED or FAILED) and handing the user's code to the runtime. A failure of
//! the user's code is a FAILED execution, never an API error; platform failures
//! also end the execution FAILED so nothing stays RUNNING.

mod recovery;
mod warmup;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    Statement,
};
use serde_json::Value;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;
use uuid::Uuid;

use entity::execution::{self, ExecutionStatus};
use entity::function::{self, FunctionStatus};
pub use recovery::{INTERRUPTED_MESSAGE, recover_interrupted, spawn_sweeper};
pub use warmup::spawn_cache_warmer;

use crate::pagination::{Page, PageRequest};
use crate::runtime::{ModuleKey, Runtime, RuntimeError};

#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    #[error("input must be a JSON object (or null for {{}}), got {0}")]
    InputNotObject(&'static str),
    #[error("input is {size} bytes; the limit is {limit} bytes")]
    InputTooLarge { size: usize, limit: usize },
    #[error("no function with id {0}")]
    FunctionNotFound(Uuid),
    #[error("function {id} is {status} and cannot run until it is READY")]
    FunctionNotReady { id: Uuid, status: &'static str },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Whether the caller waits for the execution to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    UntilFinished,
    /// Return once recorded; it finishes in the background.
    No,
}

/// Filters of the executions list.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecutionFilter {
    pub function_id: Option<Uuid>,
    pub status: Option<ExecutionStatus>,
}

#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    runtime: Runtime,
    max_input_bytes: usize,
    /// Background executions, awaited on shutdown so none is left RUNNING.
    background: TaskTracker,
}

#[derive(FromQueryResult)]
struct Accepted {
    id: Uuid,
    function_id: Uuid,
    input: Option<Value>,
    status: ExecutionStatus,
    created_at: chrono::DateTime<Utc>,
    revision: i64,
}

impl Executor {
    pub fn new(db: DatabaseConnection, runtime: Runtime, max_input_bytes: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                runtime,
                max_input_bytes,
                background: TaskTracker::new(),
            }),
        }
    }

    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// Runs `function_id` on `input` (a JSON object; `None` or null means `{}`).
    pub async fn execute(
        &self,
        function_id: Uuid,
        input: Option<Value>,
        wait: Wait,
    ) -> Result<execution::Model, ExecutionError> {
        let input = self.validate_input(input)?;
        let accepted = self.accept(function_id, &input).await?;
        let key = ModuleKey {
            function_id,
            revision: accepted.revision,
        };
        let pending = execution::Model {
            id: accepted.id,
            function_id: accepted.function_id,
            input: accepted.input,
            output: None,
            status: accepted.status,
            error_message: None,
            logs: None,
            started_at: None,
            completed_at: None,
            created_at: accepted.created_at,
        };
        // Every log line of this execution's flow carries its ids through the span.
        let span = tracing::info_span!("execution", execution_id = %pending.id, function_id = %function_id);
        span.in_scope(|| tracing::info!("execution.accepted"));
        match wait {
            Wait::UntilFinished => Ok(self.run(pending, key, input).instrument(span).await?),
            Wait::No => {
                let this = self.clone();
                let returned = pending.clone();
                self.inner.background.spawn(
                    async move {
                        if let Err(error) = this.run(pending, key, input).await {
                            tracing::error!(%error, "execution.record_failed");
                        }
                    }
                    .instrument(span),
                );
                Ok(returned)
            }
        }
    }

    /// Waits for background executions (used on shutdown).
    pub async fn drain(&self) {
        self.inner.background.close();
        self.inner.background.wait().await;
    }

    fn validate_input(&self, input: Option<Value>) -> Result<Value, ExecutionError> {
        validate_input(input, self.inner.max_input_bytes)
    }

    /// Records the execution as PENDING if the function is READY, in one round
    /// trip (the entity API cannot insert-from-select with a join back).
    async fn accept(&self, function_id: Uuid, input: &Value) -> Result<Accepted, ExecutionError> {
        let db = &self.inner.db;
        let accepted = Accepted::find_by_statement(Statement::from_sql_and_values(
            db.get_database_backend(),
            "WITH f AS (SELECT id, revision FROM functions WHERE id = $1 AND status = 'READY'),
                  e AS (INSERT INTO executions (function_id, input, status)
                        SELECT id, $2::jsonb, 'PENDING' FROM f
                        RETURNING id, function_id, input, status, created_at)
             SELECT e.id, e.function_id, e.input, e.status::text AS status, e.created_at, f.revision FROM e, f",
            [function_id.into(), input.clone().into()],
        ))
        .one(db)
        .await?;
        if let Some(accepted) = accepted {
            return Ok(accepted);
        }
        let status: Option<FunctionStatus> = function::Entity::find_by_id(function_id)
            .select_only()
            .column(function::Column::Status)
            .into_tuple()
            .one(db)
            .await?;
        Err(match status {
            None => ExecutionError::FunctionNotFound(function_id),
            Some(status) => ExecutionError::FunctionNotReady {
                id: function_id,
                status: function_status_name(status),
            },
        })
    }

    async fn run(
        &self,
        pending: execution::Model,
        key: ModuleKey,
        input: Value,
    ) -> Result<execution::Model, DbErr> {
        let db = &self.inner.db;
        let mut running: execution::ActiveModel = pending.into();
        running.status = Set(ExecutionStatus::Running);
        running.started_at = Set(Some(Utc::now()));
        let running = persist(db, running).await?;
        tracing::info!("execution.started");

        let started = std::time::Instant::now();
        let outcome = self.invoke(key, &input).await;
        let took = started.elapsed();
        let mut finished: execution::ActiveModel = running.into();
        finished.completed_at = Set(Some(Utc::now()));
        match outcome {
            Ok(invocation) => {
                finished.logs =
                    Set((!invocation.logs.is_empty()).then(|| Value::from(invocation.logs)));
                match invocation.outcome {
                    Ok(output) => {
                        finished.status = Set(ExecutionStatus::Completed);
                        finished.output = Set(Some(output));
                    }
                    Err(user_error) => {
                        finished.status = Set(ExecutionStatus::Failed);
                        finished.error_message = Set(Some(user_error.to_string()));
                    }
                }
            }
            Err(message) => {
                finished.status = Set(ExecutionStatus::Failed);
                finished.error_message = Set(Some(message));
            }
        }
        let finished = persist(db, finished).await?;
        let ms = took.as_millis() as u64;
        match finished.status {
            ExecutionStatus::Completed => {
                crate::metrics::execution_finished("COMPLETED", took);
                tracing::info!(ms, "execution.completed")
            }
            _ => {
                crate::metrics::execution_finished("FAILED", took);
                tracing::info!(
                    ms,
                    error = finished.error_message.as_deref().unwrap_or(""),
                    "execution.failed"
                )
            }
        }
        Ok(finished)
    }

    /// Runs the user's code; `Err` is a platform failure, already logged, as the
    /// message to record.
    async fn invoke(
        &self,
        key: ModuleKey,
        input: &Value,
    ) -> Result<crate::runtime::Invocation, String> {
        let db = &self.inner.db;
        // Read from the database only when the module is not cached yet.
        let load = || async move {
            match crate::functions::wasm(db, key.function_id).await {
                Ok(Some((revision, wasm))) if revision == key.revision => Ok(wasm),
                Ok(_) => Err(ModuleUnavailable::Changed),
                Err(error) => Err(ModuleUnavailable::Db(error)),
            }
        };
        self.inner
            .runtime
            .execute(key, load, &input.to_string())
            .await
            .map_err(|error| match error {
                RuntimeError::Load(cause)
                    if matches!(
                        cause.downcast_ref::<ModuleUnavailable>(),
                        Some(ModuleUnavailable::Changed)
                    ) =>
                {
                    ModuleUnavailable::Changed.to_string()
                }
                error => {
                    tracing::error!(%error, "execution.runtime_failed");
                    "internal error: the platform could not run this function; try again"
                        .to_string()
                }
            })
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<execution::Model>, DbErr> {
        execution::Entity::find_by_id(id).one(&self.inner.db).await
    }
}

/// How long a status write keeps being retried while the database is away.
const WRITE_PATIENCE: Duration = Duration::from_secs(30);

/// Writes an execution's new status, retrying while the database is briefly
/// unreachable (a restart, a failover): giving up at once would leave the
/// execution RUNNING until the sweeper ends it as "interrupted", losing the
/// real outcome. The write is idempotent, so a retry after a lost reply is
/// harmless.
async fn persist(
    db: &DatabaseConnection,
    model: execution::ActiveModel,
) -> Result<execution::Model, DbErr> {
    let give_up = tokio::time::Instant::now() + WRITE_PATIENCE;
    let mut delay = Duration::from_millis(100);
    loop {
        match model.clone().update(db).await {
            Ok(written) => return Ok(written),
            Err(error @ DbErr::RecordNotUpdated) => return Err(error),
            Err(error) if tokio::time::Instant::now() + delay < give_up => {
                tracing::warn!(%error, "execution.write_retry");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(error) => return Err(error),
        }
    }
}

/// The input as the function receives it: an object (`None` or null mean `{}`)
/// no larger than `max_bytes` once serialized.
fn validate_input(input: Option<Value>, max_bytes: usize) -> Result<Value, ExecutionError> {
    let input = match input {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(Value::Object(map)) => Value::Object(map),
        Some(Value::Array(_)) => return Err(ExecutionError::InputNotObject("an array")),
        Some(Value::String(_)) => return Err(ExecutionError::InputNotObject("a string")),
        Some(Value::Number(_)) => return Err(ExecutionError::InputNotObject("a number")),
        Some(Value::Bool(_)) => return Err(ExecutionError::InputNotObject("a boolean")),
    };
    let size = input.to_string().len();
    if size > max_bytes {
        return Err(ExecutionError::InputTooLarge {
            size,
            limit: max_bytes,
        });
    }
    Ok(input)
}

/// Why the module of an accepted execution could not be loaded.
#[derive(Debug, thiserror::Error)]
enum ModuleUnavailable {
    #[error("the function was changed or deleted while this execution started; run it again")]
    Changed,
    #[error(transparent)]
    Db(DbErr),
}

pub fn function_status_name(status: FunctionStatus) -> &'static str {
    match status {
        FunctionStatus::Pending => "PENDING",
        FunctionStatus::Compiling => "COMPILING",
        FunctionStatus::Ready => "READY",
        FunctionStatus::Failed => "FAILED",
    }
}

/// Newest first, optionally of one function and/or one status.
pub async fn list(
    db: &DatabaseConnection,
    filter: &ExecutionFilter,
    page: &PageRequest,
) -> Result<Page<execution::Model>, DbErr> {
    let mut condition = Condition::all();
    if let Some(function_id) = filter.function_id {
        condition = condition.add(execution::Column::FunctionId.eq(function_id));
    }
    if let Some(status) = filter.status {
        condition = condition.add(execution::Column::Status.eq(status));
    }
    let total = execution::Entity::find()
        .filter(condition.clone())
        .count(db)
        .await? as i64;
    if let Some(after) = page.after {
        condition =
            condition.add(after.rows_after(execution::Column::CreatedAt, execution::Column::Id));
    }
    let rows = execution::Entity::find()
        .filter(condition)
        .order_by_desc(execution::Column::CreatedAt)
        .order_by_desc(execution::Column::Id)
        .limit(page.fetch_limit())
        .all(db)
        .await?;
    Ok(Page::from_rows(rows, page, total))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::{ExecutionError, validate_input};

    /// Any JSON value, nested a few levels.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,20}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(".{0,8}", inner, 0..8)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn only_objects_and_null_are_accepted(value in json_value(), limit in 0usize..4096) {
            let is_object_or_null = value.is_object() || value.is_null();
            let size = if value.is_null() { 2 } else { value.to_string().len() };
            match validate_input(Some(value.clone()), limit) {
                Ok(accepted) => {
                    prop_assert!(is_object_or_null);
                    prop_assert!(accepted.is_object());
                    prop_assert!(size <= limit);
                    if value.is_object() {
                        prop_assert_eq!(accepted, value);
                    }
                }
                Err(ExecutionError::InputNotObject(_)) => prop_assert!(!is_object_or_null),
                Err(ExecutionError::InputTooLarge { size: reported, limit: l }) => {
                    prop_assert!(is_object_or_null);
                    prop_assert_eq!((reported, l), (size, limit));
                    prop_assert!(size > limit);
                }
                Err(other) => prop_assert!(false, "unexpected {other}"),
            }
        }
    }

    #[test]
    fn missing_input_is_an_empty_object() {
        assert_eq!(validate_input(None, 10).unwrap(), json!({}));
        assert_eq!(validate_input(Some(Value::Null), 10).unwrap(), json!({}));
    }
}
