//! Executions: validating the input, admitting it, recording each run
//! (PENDING → RUNNING → COMPLETED or FAILED) and handing the user's code to the
//! runtime. A failure of the user's code is a FAILED execution, never an API
//! error; platform failures also end the execution FAILED so nothing stays
//! RUNNING.
//!
//! PENDING means accepted and waiting: a synchronous execution for a wasm thread
//! of this process (one per thread plus `queue_capacity` are taken; beyond that
//! the call is refused before anything is recorded), a background one in `execution_jobs`
//! for any process ([`jobs`]). RUNNING is written when a wasm thread is free to
//! start it; when one is free at once, the call starts before anything is
//! written, and PENDING, RUNNING and (for a call that is over by then) the
//! final status are one statement and one commit ([`Executor::run_at_once`]).
//! Every status write is guarded ([`store`]), every run holds a lease
//! ([`lease`]), and recovery reclaims only lapsed leases ([`recovery`]).

mod deployed;
mod jobs;
mod lease;
mod recovery;
mod retry;
mod store;
mod warmup;

use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;
use uuid::Uuid;

use entity::execution::{self, ExecutionErrorKind, ExecutionStatus};
use entity::function::{self, FunctionStatus};
pub use recovery::{INTERRUPTED_MESSAGE, recover_interrupted, spawn_sweeper};
pub use store::COLUMNS as EXECUTION_COLUMNS;
pub use warmup::spawn_cache_warmer;

use crate::events::EventBus;
use crate::pagination::{Page, PageRequest, page_statement};
use crate::queue::QueueError;
use crate::runtime::{
    CallStart, LoadedModule, ModuleKey, Runtime, RuntimeError, Slot, UserCodeError,
};
use deployed::DeployedRevisions;
use lease::{Held, HeldRuns};
use store::{Enqueued, Outcome, RunnerId};

/// The message of an execution ended by `cancelExecution`.
pub const CANCELLED_MESSAGE: &str = "cancelled: cancelExecution was called before it finished";

#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    #[error("input must be a JSON object (or null for {{}}), got {0}")]
    InputNotObject(&'static str),
    #[error("input is {size} bytes; the limit is {limit} bytes")]
    InputTooLarge { size: usize, limit: usize },
    #[error("input must not contain the character U+0000 (NUL): it cannot be stored; remove it")]
    InputHasNul,
    #[error("no function with id {0}")]
    FunctionNotFound(Uuid),
    #[error(
        "function {id} has no READY revision yet (its latest is {status}); it can run once one compiles"
    )]
    FunctionNotReady { id: Uuid, status: String },
    #[error("no execution with id {0}")]
    NotFound(Uuid),
    #[error(
        "the platform is at capacity: {waiting} executions are already waiting for a free wasm thread \
         on this server (PROJECTNIL_EXEC_QUEUE); nothing was recorded, try again shortly or use startExecution"
    )]
    QueueFull { waiting: usize },
    #[error(
        "the platform is at capacity: {waiting} background executions are already waiting \
         (PROJECTNIL_EXEC_BACKLOG); nothing was recorded, try again later"
    )]
    BacklogFull { waiting: i64 },
    #[error("execution {0} was deleted with its function while it ran")]
    Vanished(Uuid),
    #[error("the execution task failed: {0}")]
    Task(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl From<QueueError> for ExecutionError {
    fn from(error: QueueError) -> Self {
        Self::Db(into_db_error(error))
    }
}

fn into_db_error(error: QueueError) -> DbErr {
    match error {
        QueueError::Db(db) => db,
        other => DbErr::Custom(other.to_string()),
    }
}

/// Whether the caller waits for the execution to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    UntilFinished,
    /// Return once recorded; any process that runs executions runs it.
    No,
}

/// Filters of the executions list.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecutionFilter {
    pub function_id: Option<Uuid>,
    pub status: Option<ExecutionStatus>,
    pub error_kind: Option<ExecutionErrorKind>,
}

/// How a process admits, holds and re-runs executions.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    pub max_input_bytes: usize,
    /// Synchronous executions that may wait for a wasm thread in this process.
    pub queue_capacity: usize,
    /// Background executions that may wait in `execution_jobs` (all processes).
    pub backlog_capacity: usize,
    /// Runs of a background execution before one interrupted by a crash is given up.
    pub max_attempts: i32,
    /// How long a run stays this process's without a renewal.
    pub lease: Duration,
}

#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    runtime: Runtime,
    settings: ExecutorSettings,
    runner: RunnerId,
    /// One permit per synchronous execution in flight in this process
    /// (running or waiting): wasm threads + `queue_capacity`.
    admitted: Arc<Semaphore>,
    held: Arc<HeldRuns>,
    /// The revision to run without reading it first (a hint; see [`deployed`]).
    deployed: DeployedRevisions,
    /// Every run in flight, awaited on shutdown so none is left behind.
    tasks: TaskTracker,
    keeper_stop: CancellationToken,
}

/// Why the function could not be run; recorded as the execution's failure.
type PlatformFailure = String;

impl Executor {
    /// An executor with a fresh runner id; its lease keeper runs until [`drain`](Self::drain).
    pub fn start(
        db: DatabaseConnection,
        runtime: Runtime,
        settings: ExecutorSettings,
        events: &EventBus,
    ) -> Self {
        let runner = Uuid::new_v4();
        let held = Arc::new(HeldRuns::default());
        let keeper_stop = CancellationToken::new();
        lease::spawn_keeper(
            db.clone(),
            runner,
            settings.lease,
            Arc::clone(&held),
            events.subscribe(),
            keeper_stop.clone(),
        );
        tracing::info!(runner = %runner, "executions.runner");
        let admitted = runtime.limits().max_concurrency + settings.queue_capacity;
        Self {
            inner: Arc::new(Inner {
                db,
                runtime,
                admitted: Arc::new(Semaphore::new(admitted)),
                settings,
                runner,
                held,
                deployed: DeployedRevisions::default(),
                tasks: TaskTracker::new(),
                keeper_stop,
            }),
        }
    }

    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// Consumes `execution_jobs` until `shutdown` (see [`jobs`]).
    pub fn spawn_job_consumer(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(jobs::consume(self.clone(), shutdown))
    }

    /// Runs `function_id` on `input` (a JSON object; `None` or null means `{}`).
    pub async fn execute(
        &self,
        function_id: Uuid,
        input: Option<Value>,
        wait: Wait,
    ) -> Result<execution::Model, ExecutionError> {
        let input = validate_input(input, self.inner.settings.max_input_bytes)?;
        match wait {
            Wait::UntilFinished => self.execute_now(function_id, input).await,
            Wait::No => self.start_background(function_id, input).await,
        }
    }

    async fn execute_now(
        &self,
        function_id: Uuid,
        input: Value,
    ) -> Result<execution::Model, ExecutionError> {
        // Checked before anything is recorded; held until the execution ends.
        let Ok(admitted) = Arc::clone(&self.inner.admitted).try_acquire_owned() else {
            crate::metrics::execution_refused("queue");
            return Err(ExecutionError::QueueFull {
                waiting: self.inner.settings.queue_capacity,
            });
        };
        let this = self.clone();
        // In a task of its own, so a caller who hangs up abandons nothing.
        let run = match self.inner.runtime.try_reserve() {
            Some(slot) => self
                .inner
                .tasks
                .spawn(async move { this.run_at_once(function_id, input, admitted, slot).await }),
            None => self
                .inner
                .tasks
                .spawn(async move { this.accept_and_run(function_id, input, admitted).await }),
        };
        run.await
            .map_err(|error| ExecutionError::Task(error.to_string()))?
    }

    /// A synchronous execution that waits for a wasm thread: recorded
    /// PENDING first, then run by [`run_held`](Self::run_held).
    async fn accept_and_run(
        &self,
        function_id: Uuid,
        input: Value,
        admitted: OwnedSemaphorePermit,
    ) -> Result<execution::Model, ExecutionError> {
        let (owner, lease) = (self.inner.runner, self.inner.settings.lease);
        let accepted = store::accept(&self.inner.db, function_id, &input, owner, lease).await?;
        let Some(execution) = accepted else {
            return Err(self.not_runnable(function_id).await);
        };
        let held = self.inner.held.hold(&execution);
        let key = ModuleKey {
            function_id,
            revision: execution.revision,
        };
        let span = execution_span(&execution);
        span.in_scope(|| tracing::info!("execution.accepted"));
        self.run_held(execution, key, admitted, held)
            .instrument(span)
            .await
    }

    /// A synchronous execution with a wasm thread free for it now. The
    /// deployed revision is known from an earlier run or read (no write; see
    /// [`deployed`]), and the user's code starts at
    /// once (it has no side effects, so running it before anything is
    /// recorded is safe; nobody else can see or cancel the execution until
    /// then). A call that is over within its first poll, the usual case, is
    /// then recorded with all three of its transitions in one statement and
    /// one commit ([`store::record_run`]); a longer one, which has moved to a
    /// wasm thread by the end of that poll (see `Runtime::run`), is recorded
    /// RUNNING the same way while it goes on, and finished as any other.
    /// Should a new revision be deployed meanwhile, nothing is recorded and
    /// the execution starts over on the queued path.
    async fn run_at_once(
        &self,
        function_id: Uuid,
        input: Value,
        admitted: OwnedSemaphorePermit,
        slot: Slot,
    ) -> Result<execution::Model, ExecutionError> {
        match self.run_recorded_after(function_id, &input, slot).await? {
            Some(finished) => Ok(finished),
            // Nothing was recorded; the call is stopped (its slot frees once it is).
            None => self.accept_and_run(function_id, input, admitted).await,
        }
    }

    /// The body of [`run_at_once`](Self::run_at_once); `None` when the
    /// revision that ran is no longer deployed and nothing was recorded.
    async fn run_recorded_after(
        &self,
        function_id: Uuid,
        input: &Value,
        slot: Slot,
    ) -> Result<Option<execution::Model>, ExecutionError> {
        let accepted = Instant::now();
        let db = &self.inner.db;
        let deployed = &self.inner.deployed;
        let revision = match deployed.get(function_id) {
            Some(revision) => revision,
            None => {
                let Some(revision) = store::deployed_revision(db, function_id).await? else {
                    return Err(self.not_runnable(function_id).await);
                };
                deployed.remember(function_id, revision);
                revision
            }
        };
        let mut run = store::StartedRun {
            // Time-ordered like the ids PostgreSQL makes, so a lookup by id
            // finds its partition (`store::by_id`).
            id: Uuid::now_v7(),
            function_id,
            revision,
            input,
            owner: self.inner.runner,
            lease: self.inner.settings.lease,
            accepted_ago: Duration::ZERO,
            started_ago: Duration::ZERO,
        };
        // A new execution's first attempt.
        let span = run_span(run.id, function_id, 1);
        let stop = CancellationToken::new();
        // Stops the call if this ends early (an error, a revision that
        // changed, or the task dropped).
        let stop_guard = stop.clone().drop_guard();
        let key = ModuleKey {
            function_id,
            revision,
        };
        let started = Instant::now();
        let call = async {
            let module = self.load(key).await;
            self.invoke(slot, module, Some(input), &stop, CallStart::CallingThread)
                .await
        };
        let mut call = std::pin::pin!(call.instrument(span.clone()));
        let outcome = futures::poll!(call.as_mut());
        let ran = started.elapsed();
        (run.accepted_ago, run.started_ago) = (accepted.elapsed(), ran);
        let revision_changed = || {
            deployed.forget(function_id);
            span.in_scope(|| tracing::info!(revision, "execution.revision_changed"));
        };
        // Accepted and started are recorded by the same statement.
        let recorded = || {
            tracing::info!("execution.accepted");
            tracing::info!("execution.started");
        };
        if let Poll::Ready(outcome) = outcome {
            let outcome = Outcome::from(outcome);
            let Some(finished) = store::record_run(db, &run, Some((&outcome, ran))).await? else {
                revision_changed();
                return Ok(None);
            };
            stop_guard.disarm();
            span.in_scope(|| {
                recorded();
                record_finished(&finished, ran);
            });
            return Ok(Some(finished));
        }
        let Some(running) = store::record_run(db, &run, None).await? else {
            revision_changed();
            return Ok(None);
        };
        span.in_scope(recorded);
        // Held only now that the lease keeper can see the row to renew it.
        let held = self.inner.held.hold_with(&running, stop_guard.disarm());
        let outcome = call.await;
        let finished = self.finish(&running, outcome, None).instrument(span).await;
        drop(held);
        finished.map(Some)
    }

    /// Records a background execution and sends its `execution_jobs` message
    /// in one statement, unless the backlog is full.
    async fn start_background(
        &self,
        function_id: Uuid,
        input: Value,
    ) -> Result<execution::Model, ExecutionError> {
        let capacity = self.inner.settings.backlog_capacity as i64;
        match store::enqueue(&self.inner.db, function_id, &input, capacity).await? {
            Enqueued::Accepted(accepted) => {
                execution_span(&accepted).in_scope(|| tracing::info!("execution.accepted"));
                Ok(*accepted)
            }
            Enqueued::BacklogFull(waiting) => {
                crate::metrics::execution_refused("backlog");
                Err(ExecutionError::BacklogFull { waiting })
            }
            Enqueued::NotRunnable => Err(self.not_runnable(function_id).await),
        }
    }

    /// Ends a PENDING or RUNNING execution FAILED "cancelled", wherever it
    /// runs: a run in this process stops at once, one elsewhere when its
    /// process hears of the change (NOTIFY) or at its next lease renewal.
    pub async fn cancel(&self, id: Uuid) -> Result<execution::Model, ExecutionError> {
        let db = &self.inner.db;
        if let Some(cancelled) = store::cancel(db, id, CANCELLED_MESSAGE).await? {
            self.inner.held.stop(id);
            execution_span(&cancelled).in_scope(|| tracing::info!("execution.cancelled"));
            return Ok(cancelled);
        }
        store::get(db, id)
            .await?
            .ok_or(ExecutionError::NotFound(id))
    }

    /// Stops taking work and waits for every run in flight; then stops
    /// renewing leases (used on shutdown).
    pub async fn drain(&self) {
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        self.inner.keeper_stop.cancel();
    }

    /// Why `function_id` could not be run: missing, or no revision deployed.
    async fn not_runnable(&self, function_id: Uuid) -> ExecutionError {
        let status: Result<Option<FunctionStatus>, DbErr> =
            function::Entity::find_by_id(function_id)
                .select_only()
                .column(function::Column::Status)
                .into_tuple()
                .one(&self.inner.db)
                .await;
        match status {
            Err(error) => ExecutionError::Db(error),
            Ok(None) => ExecutionError::FunctionNotFound(function_id),
            Ok(Some(status)) => ExecutionError::FunctionNotReady {
                id: function_id,
                status: sea_orm::ActiveEnum::to_value(&status),
            },
        }
    }

    /// A synchronous execution this process holds: waits for its wasm thread
    /// (or its cancellation), then records RUNNING while the thread starts
    /// it, so the thread never idles through that round trip; the outcome is
    /// written only once RUNNING is, and only if RUNNING was.
    async fn run_held(
        &self,
        pending: execution::Model,
        key: ModuleKey,
        admitted: OwnedSemaphorePermit,
        held: Held,
    ) -> Result<execution::Model, ExecutionError> {
        let db = &self.inner.db;
        let slot = tokio::select! {
            slot = self.inner.runtime.reserve() => slot,
            _ = held.token().cancelled() => return self.current(pending.id).await,
        };
        let module = self.load(key).await;
        let (runner, lease) = (self.inner.runner, self.inner.settings.lease);
        let start = async {
            let started =
                retry::transient("RUNNING", || store::start_held(db, &pending, runner, lease))
                    .await;
            match &started {
                Ok(Some(_)) => tracing::info!("execution.started"),
                // Not ours to run after all: stop the run already under way.
                _ => held.token().cancel(),
            }
            started
        };
        let (started, outcome) = tokio::join!(
            start,
            self.invoke(
                slot,
                module,
                pending.input.as_ref(),
                held.token(),
                CallStart::CallingThread,
            )
        );
        drop(admitted);
        let Some(running) = started? else {
            // Cancelled or ended by recovery while it waited.
            crate::metrics::execution_write_lost();
            tracing::warn!("execution.start_lost");
            return self.current(pending.id).await;
        };
        self.finish(&running, outcome, None).await
    }

    /// Loads the module of `key`; `Err` is the failure to record.
    async fn load(&self, key: ModuleKey) -> Result<LoadedModule, PlatformFailure> {
        let db = &self.inner.db;
        // Read from the database only when the module is not cached yet.
        let load = || async move {
            match crate::functions::module(db, key.function_id, key.revision).await {
                Ok(Some(wasm)) => Ok(wasm),
                Ok(None) => Err(ModuleUnavailable::Deleted),
                Err(error) => Err(ModuleUnavailable::Db(error)),
            }
        };
        self.inner
            .runtime
            .load(key, load)
            .await
            .map_err(platform_failure)
    }

    /// Runs the user's code on the reserved thread, started as `start` says.
    async fn invoke(
        &self,
        slot: Slot,
        module: Result<LoadedModule, PlatformFailure>,
        input: Option<&Value>,
        stop: &CancellationToken,
        start: CallStart,
    ) -> Result<crate::runtime::Invocation, PlatformFailure> {
        let module = module?;
        let input = input.map_or_else(|| "{}".to_owned(), Value::to_string);
        self.inner
            .runtime
            .run(slot, &module, &input, stop, start)
            .await
            .map_err(platform_failure)
    }

    /// Writes the outcome of `running` if the run still owns it (retrying while
    /// the database is away) and, for a background run, deletes its message in
    /// the same statement. A run that lost its execution changes nothing.
    async fn finish(
        &self,
        running: &execution::Model,
        outcome: Result<crate::runtime::Invocation, PlatformFailure>,
        message: Option<i64>,
    ) -> Result<execution::Model, ExecutionError> {
        let took = run_time(running);
        let outcome = Outcome::from(outcome);
        let db = &self.inner.db;
        let written = retry::transient("final status", || {
            store::finish(db, running, &outcome, message)
        })
        .await?;
        let Some(finished) = written else {
            crate::metrics::execution_write_lost();
            let current = self.current(running.id).await;
            if let Ok(now) = &current {
                tracing::warn!(
                    status = ?now.status,
                    owner = ?now.owner,
                    attempt = now.attempt,
                    our_attempt = running.attempt,
                    "execution.final_write_lost"
                );
                if let (true, Some(msg_id)) = (now.status.is_final(), message) {
                    jobs::delete_message(db, msg_id).await;
                }
            }
            return current;
        };
        record_finished(&finished, took);
        Ok(finished)
    }

    async fn current(&self, id: Uuid) -> Result<execution::Model, ExecutionError> {
        store::get(&self.inner.db, id)
            .await?
            .ok_or(ExecutionError::Vanished(id))
    }
}

/// How long `running` has been RUNNING.
fn run_time(running: &execution::Model) -> Duration {
    running
        .started_at
        .map(|at| (chrono::Utc::now() - at).to_std().unwrap_or_default())
        .unwrap_or_default()
}

/// Counts and logs a final status this process wrote.
fn record_finished(finished: &execution::Model, took: Duration) {
    let ms = took.as_millis() as u64;
    crate::metrics::execution_finished(finished.status, took);
    match finished.status {
        ExecutionStatus::Completed => tracing::info!(ms, "execution.completed"),
        _ => {
            tracing::info!(
                ms,
                error = finished.error_message.as_deref().unwrap_or(""),
                "execution.failed"
            )
        }
    }
}

impl From<Result<crate::runtime::Invocation, PlatformFailure>> for Outcome {
    fn from(result: Result<crate::runtime::Invocation, PlatformFailure>) -> Self {
        match result {
            Ok(invocation) => {
                let logs = (!invocation.logs.is_empty()).then(|| {
                    let lines: Vec<String> = invocation
                        .logs
                        .into_iter()
                        .map(crate::storable::text)
                        .collect();
                    Value::from(lines)
                });
                match invocation.outcome {
                    Ok(output) => Outcome {
                        status: ExecutionStatus::Completed,
                        output: Some(output),
                        error_message: None,
                        error_kind: None,
                        logs,
                    },
                    Err(UserCodeError::Cancelled) => Outcome {
                        status: ExecutionStatus::Failed,
                        output: None,
                        error_message: Some(CANCELLED_MESSAGE.to_owned()),
                        error_kind: Some(ExecutionErrorKind::Cancelled),
                        logs,
                    },
                    Err(user_error) => Outcome {
                        status: ExecutionStatus::Failed,
                        output: None,
                        error_message: Some(crate::storable::text(user_error.to_string())),
                        error_kind: Some(user_error.kind()),
                        logs,
                    },
                }
            }
            Err(message) => Outcome {
                status: ExecutionStatus::Failed,
                output: None,
                error_message: Some(message),
                error_kind: Some(ExecutionErrorKind::Platform),
                logs: None,
            },
        }
    }
}

/// The message to record for a platform failure (logged here with its cause).
fn platform_failure(error: RuntimeError) -> PlatformFailure {
    match error {
        RuntimeError::Load(cause)
            if matches!(
                cause.downcast_ref::<ModuleUnavailable>(),
                Some(ModuleUnavailable::Deleted)
            ) =>
        {
            ModuleUnavailable::Deleted.to_string()
        }
        error => {
            tracing::error!(%error, "execution.runtime_failed");
            "internal error: the platform could not run this function; try again".to_string()
        }
    }
}

/// Every log line of an execution's flow carries its ids through this span.
fn execution_span(execution: &execution::Model) -> tracing::Span {
    run_span(execution.id, execution.function_id, execution.attempt)
}

/// [`execution_span`] of a run not recorded yet.
fn run_span(execution_id: Uuid, function_id: Uuid, attempt: i32) -> tracing::Span {
    tracing::info_span!(
        "execution",
        execution_id = %execution_id,
        function_id = %function_id,
        attempt
    )
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
    if crate::storable::contains_nul(&input) {
        return Err(ExecutionError::InputHasNul);
    }
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
    #[error("the function was deleted while this execution started")]
    Deleted,
    #[error(transparent)]
    Db(DbErr),
}

/// The execution with this id, if any.
pub async fn get(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<execution::Model>, DbErr> {
    store::get(db, id).await
}

/// Newest first, optionally of one function, status and/or error kind. The
/// total is counted only `with_total` (otherwise the page's `total_count` is
/// 0): it is the one part whose cost grows with the table.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &ExecutionFilter,
    page: &PageRequest,
    with_total: bool,
) -> Result<Page<execution::Model>, DbErr> {
    let mut condition = Condition::all();
    if let Some(function_id) = filter.function_id {
        condition = condition.add(execution::Column::FunctionId.eq(function_id));
    }
    if let Some(status) = filter.status {
        condition = condition.add(execution::Column::Status.eq(status));
    }
    if let Some(kind) = filter.error_kind {
        condition = condition.add(execution::Column::ErrorKind.eq(kind));
    }
    let count = with_total.then(|| condition.clone());
    if let Some(after) = page.after {
        condition =
            condition.add(after.rows_after(execution::Column::CreatedAt, execution::Column::Id));
    }
    let rows = execution::Entity::find()
        .filter(condition)
        .order_by_desc(execution::Column::CreatedAt)
        .order_by_desc(execution::Column::Id);
    let statement = page_statement(db.get_database_backend(), rows, page, count.as_ref());
    crate::pagination::fetch_page::<_, execution::Entity, _, _>(db, statement, page, count).await
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
                    prop_assert!(!crate::storable::contains_nul(&accepted));
                    prop_assert!(accepted.is_object());
                    prop_assert!(size <= limit);
                    if value.is_object() {
                        prop_assert_eq!(accepted, value);
                    }
                }
                Err(ExecutionError::InputNotObject(_)) => prop_assert!(!is_object_or_null),
                Err(ExecutionError::InputHasNul) => {
                    prop_assert!(is_object_or_null && crate::storable::contains_nul(&value))
                }
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
