//! The compiler worker: takes jobs from `compilation_jobs`, compiles the ones
//! still current, publishes a `compilation_results` message and archives the job
//! in one transaction. A worker that dies mid-job loses nothing: the job becomes
//! visible again after its visibility timeout and another worker takes it; one
//! that keeps dying on the same job gives it up as poison after a few tries.
//! Only failures that may be the job's doing count toward that: when the
//! platform fails (the database, a compiler that cannot start), the job is
//! given back uncounted and the worker backs off. While a job is compiling,
//! its worker keeps it invisible, so a slow compile is not taken twice.
//! An idle worker sleeps until a job is announced by NOTIFY ([`queue::consume`]).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder as _, ExponentialBackoff, ExponentialBuilder};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::asc::{self, AscCompiler, CompileError};
use super::{ASC_FLAGS, content_cache, validate};
use crate::config::CompilerSettings;
use crate::functions::{self, CompileOutcome};
use crate::metrics::CompilationOutcome;
use crate::queue::{self, CompilationJob, CompilationResult, Delivery, QueueError};

/// A job whose failure may be its own doing (`WorkerError::may_be_the_jobs`)
/// is retried this soon; each such delivery counts toward
/// `compile_max_attempts`.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// After a platform failure, the job is given back and the worker waits
/// this long, doubled with each further one in a row up to
/// [`PLATFORM_BACKOFF_MAX`].
const PLATFORM_BACKOFF_MIN: Duration = Duration::from_secs(2);
const PLATFORM_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Jobs a worker handles at the same time; it reads the next as soon as one
/// ends, so a slow compile holds up only its own slot. Compiles still take
/// turns on the one compiler process (`AscCompiler` queues them), but a
/// content-cache hit is only database round trips: one at a time, a worker
/// managed about 70 of them a second under the soak's load, fewer than its
/// clients asked for, and the backlog reached its bound (BENCHMARKS.md,
/// session 33). Handling a job is safe beside another of the same function:
/// every write names the revision it is for, as with several workers.
const JOBS_AT_ONCE: usize = 8;

pub struct CompilerWorker {
    db: DatabaseConnection,
    compiler: AscCompiler,
    settings: CompilerSettings,
    platform_pause: Mutex<PlatformPause>,
}

/// The waits after platform failures in a row; reset by a job handled. Jobs
/// handled side by side that fail during the same pause share it, so one
/// outage takes one step of the backoff, not one per job of the read.
struct PlatformPause {
    backoff: ExponentialBackoff,
    until: Option<Instant>,
}

impl PlatformPause {
    fn new() -> Self {
        Self {
            backoff: ExponentialBuilder::default()
                .with_min_delay(PLATFORM_BACKOFF_MIN)
                .with_max_delay(PLATFORM_BACKOFF_MAX)
                .without_max_times()
                .build(),
            until: None,
        }
    }

    /// How long to wait after a platform failure: what is left of the
    /// current pause, or the next step of the backoff when none is running.
    fn wait(&mut self) -> Duration {
        let now = Instant::now();
        if let Some(left) = self
            .until
            .and_then(|until| until.checked_duration_since(now))
            .filter(|left| !left.is_zero())
        {
            return left;
        }
        let step = self.backoff.next().unwrap_or(PLATFORM_BACKOFF_MAX);
        self.until = Some(now + step);
        step
    }
}

/// How one job ended, before it is published.
enum JobOutcome {
    Compiled(Vec<u8>),
    Rejected(String),
}

/// Counts and logs a job that ended with a module (`cache_hit`: from the
/// content cache), `took` after it was taken.
fn record_compiled(bytes: usize, cache_hit: bool, took: Duration) {
    crate::metrics::compilation_finished(CompilationOutcome::Compiled, cache_hit, took);
    let ms = took.as_millis() as u64;
    tracing::info!(bytes, cache_hit, ms, "job.compiled");
}

impl JobOutcome {
    /// Counts and logs how the job ended, `took` after it was taken.
    fn record(&self, took: Duration) {
        match self {
            JobOutcome::Compiled(wasm) => record_compiled(wasm.len(), false, took),
            JobOutcome::Rejected(error) => {
                crate::metrics::compilation_finished(CompilationOutcome::Rejected, false, took);
                tracing::info!(error = error.as_str(), "job.rejected")
            }
        }
    }
}

impl CompilerWorker {
    pub fn new(db: DatabaseConnection, compiler: AscCompiler, settings: CompilerSettings) -> Self {
        Self {
            db,
            compiler,
            settings,
            platform_pause: Mutex::new(PlatformPause::new()),
        }
    }

    /// Takes up to [`JOBS_AT_ONCE`] jobs at a time until `shutdown`; idle, it
    /// sleeps until a job is announced (see [`queue::consume`]).
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!("compiler.worker.started");
        queue::consume(
            &self.db,
            queue::COMPILATION_JOBS_QUEUE,
            self.settings.visibility_timeout(),
            JOBS_AT_ONCE as i32,
            JOBS_AT_ONCE,
            &shutdown,
            |delivery| self.handle(delivery, &shutdown),
        )
        .await;
        tracing::info!("compiler.worker.stopped");
    }

    async fn handle(&self, delivery: Delivery, shutdown: &CancellationToken) {
        let job: CompilationJob = match delivery.decode() {
            Ok(job) => job,
            Err(error) => {
                tracing::warn!(msg_id = delivery.msg_id, %error, "job.malformed");
                self.archive_logged(delivery.msg_id).await;
                return;
            }
        };
        // Every log line of this job carries the function's id through the span.
        let span = tracing::info_span!("compilation", function_id = %job.function_id, revision = job.revision);
        async {
            tracing::info!(attempt = delivery.read_count, "job.received");
            let started = Instant::now();
            let handled = tokio::select! {
                handled = self.handle_job(&delivery, &job) => handled,
                never = self.keep_invisible(delivery.msg_id) => match never {},
            };
            let Err(error) = handled else {
                *self.platform_pause() = PlatformPause::new();
                return;
            };
            crate::metrics::compilation_finished(
                CompilationOutcome::Error,
                false,
                started.elapsed(),
            );
            if error.may_be_the_jobs() {
                tracing::error!(%error, "job.failed");
                // Let it come back soon rather than after the whole visibility timeout.
                self.retry_soon(delivery.msg_id).await;
                return;
            }
            let wait = self.platform_pause().wait();
            tracing::error!(%error, retry_in_ms = wait.as_millis() as u64, "job.platform_failed");
            self.give_back(&delivery, wait).await;
            // Other jobs would most likely fail the same way meanwhile.
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        .instrument(span)
        .await
    }

    async fn handle_job(
        &self,
        delivery: &Delivery,
        job: &CompilationJob,
    ) -> Result<(), WorkerError> {
        if delivery.read_count > self.settings.compile_max_attempts {
            let message = format!(
                "compilation was given up after {} attempts: the compiler crashed or was stopped each time; \
                 simplify the source or contact the operator",
                delivery.read_count - 1
            );
            tracing::warn!(attempts = delivery.read_count - 1, "job.poisoned");
            crate::metrics::compilation_finished(
                CompilationOutcome::Poisoned,
                false,
                Duration::ZERO,
            );
            return self
                .publish(delivery, job, JobOutcome::Rejected(message), Duration::ZERO)
                .await;
        }
        let started = Instant::now();
        let key = self.cache_key(job).await?;
        if let Some(wasm) = self.cached(key.as_deref()).await? {
            return self.publish_cached(delivery, job, wasm, started).await;
        }
        if !functions::mark_compiling(&self.db, job.function_id, job.revision).await? {
            tracing::info!("job.stale");
            queue::archive(&self.db, queue::COMPILATION_JOBS_QUEUE, delivery.msg_id).await?;
            return Ok(());
        }
        let outcome = self.compile(job, key.as_deref()).await?;
        let took = started.elapsed();
        outcome.record(took);
        self.publish(delivery, job, outcome, took).await
    }

    /// The content-cache key of `job`'s source with this compiler; `None`
    /// for a language this compiler does not take.
    async fn cache_key(&self, job: &CompilationJob) -> Result<Option<String>, WorkerError> {
        if functions::check_language(&job.language).is_err() {
            return Ok(None);
        }
        let version = self
            .compiler
            .compiler_version()
            .await
            .map_err(WorkerError::Compiler)?;
        Ok(Some(content_cache::cache_key(
            &job.language,
            &job.source,
            &version,
            ASC_FLAGS,
        )))
    }

    /// The module compiled earlier from the same source, if any.
    async fn cached(&self, key: Option<&str>) -> Result<Option<Vec<u8>>, WorkerError> {
        match key {
            Some(key) => Ok(content_cache::lookup(&self.db, key).await?),
            None => Ok(None),
        }
    }

    /// A cache hit has nothing to wait for, and nothing to send: its module
    /// was compiled by this compiler and passed the API's own check
    /// ([`validate::validate_module`], as in [`super::results::verdict`])
    /// before it was cached. So COMPILING, READY and the job's archive are
    /// one transaction, without a trip through `compilation_results`
    /// (listeners still hear COMPILING before READY).
    async fn publish_cached(
        &self,
        delivery: &Delivery,
        job: &CompilationJob,
        wasm: Vec<u8>,
        started: Instant,
    ) -> Result<(), WorkerError> {
        let txn = self.db.begin().await?;
        if !functions::mark_compiling(&txn, job.function_id, job.revision).await? {
            tracing::info!("job.stale");
            queue::archive(&txn, queue::COMPILATION_JOBS_QUEUE, delivery.msg_id).await?;
            txn.commit().await?;
            return Ok(());
        }
        let took = started.elapsed();
        let bytes = wasm.len();
        let ready = CompileOutcome::Ready(wasm);
        let applied =
            functions::record_outcome(&txn, job.function_id, Some(job.revision), &ready).await?;
        queue::archive(&txn, queue::COMPILATION_JOBS_QUEUE, delivery.msg_id).await?;
        txn.commit().await?;
        record_compiled(bytes, true, took);
        super::results::log_applied(applied, &ready);
        Ok(())
    }

    /// Compiles `job` after a cache miss, and caches the module under `key`
    /// (`None`: a language this compiler does not take).
    async fn compile(
        &self,
        job: &CompilationJob,
        key: Option<&str>,
    ) -> Result<JobOutcome, WorkerError> {
        let Some(key) = key else {
            return Ok(JobOutcome::Rejected(format!(
                "language {:?} is not supported by this compiler",
                job.language
            )));
        };
        let wasm = match self.compiler.compile(&job.source).await {
            Ok(wasm) => wasm,
            Err(error) if error.is_user_error() => {
                return Ok(JobOutcome::Rejected(error.to_string()));
            }
            Err(error) => return Err(WorkerError::Compiler(error)),
        };
        if let Err(violation) = validate::validate_module(&wasm) {
            return Ok(JobOutcome::Rejected(violation.to_string()));
        }
        content_cache::store(&self.db, key, &wasm).await?;
        Ok(JobOutcome::Compiled(wasm))
    }

    /// Publishes the result and archives the job in one transaction, so a
    /// crash between the two can neither lose the result nor publish it twice.
    async fn publish(
        &self,
        delivery: &Delivery,
        job: &CompilationJob,
        outcome: JobOutcome,
        took: Duration,
    ) -> Result<(), WorkerError> {
        let txn = self.db.begin().await?;
        let success = self.publish_in(&txn, delivery, job, outcome, took).await?;
        txn.commit().await?;
        tracing::info!(success, "result.published");
        Ok(())
    }

    /// Sends the result and archives the job in `txn`; returns whether the
    /// compile succeeded.
    async fn publish_in(
        &self,
        txn: &DatabaseTransaction,
        delivery: &Delivery,
        job: &CompilationJob,
        outcome: JobOutcome,
        took: Duration,
    ) -> Result<bool, WorkerError> {
        let version = self.compiler.compiler_version().await.ok();
        let (success, wasm_binary, error) = match outcome {
            JobOutcome::Compiled(wasm) => (true, Some(BASE64.encode(wasm)), None),
            JobOutcome::Rejected(error) => (false, None, Some(error)),
        };
        let result = CompilationResult {
            function_id: job.function_id,
            revision: Some(job.revision),
            success,
            wasm_binary,
            error,
            compiler_version: version,
            duration_ms: Some(took.as_millis() as u64),
        };
        queue::send(txn, queue::COMPILATION_RESULTS_QUEUE, &result).await?;
        queue::archive(txn, queue::COMPILATION_JOBS_QUEUE, delivery.msg_id).await?;
        Ok(success)
    }

    async fn archive_logged(&self, msg_id: i64) {
        if let Err(error) = queue::archive(&self.db, queue::COMPILATION_JOBS_QUEUE, msg_id).await {
            tracing::warn!(msg_id, %error, "job.archive_failed");
        }
    }

    fn platform_pause(&self) -> std::sync::MutexGuard<'_, PlatformPause> {
        self.platform_pause
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Renews the job's invisibility, halfway through each visibility
    /// timeout, until dropped: a compile and one restart of the compiler
    /// process (each start may take [`asc::STARTUP_TIMEOUT`]) can outlast one
    /// timeout, and only a worker that died should let its job be taken
    /// again. A job held past what that can take is let go: the worker is
    /// stuck (on a database call that never returns, say), and another may
    /// compile the job.
    async fn keep_invisible(&self, msg_id: i64) -> std::convert::Infallible {
        let visibility = self.settings.visibility_timeout();
        let longest = 2 * (self.settings.timeout() + asc::STARTUP_TIMEOUT) + visibility;
        let started = Instant::now();
        loop {
            tokio::time::sleep(visibility / 2).await;
            if started.elapsed() > longest {
                tracing::warn!(msg_id, "job.held_too_long_let_go");
                return std::future::pending().await;
            }
            let renewed =
                queue::make_visible_in(&self.db, queue::COMPILATION_JOBS_QUEUE, msg_id, visibility);
            if let Err(error) = renewed.await {
                tracing::warn!(msg_id, %error, "job.keep_invisible_failed");
            }
        }
    }

    async fn give_back(&self, delivery: &Delivery, wait: Duration) {
        let given = queue::give_back(
            &self.db,
            queue::COMPILATION_JOBS_QUEUE,
            delivery.msg_id,
            delivery.read_count,
            wait,
        );
        match given.await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(msg_id = delivery.msg_id, "job.taken_by_another_worker"),
            // Counted after all: the database is away, and this delivery's
            // visibility timeout brings the job back.
            Err(error) => tracing::warn!(msg_id = delivery.msg_id, %error, "job.give_back_failed"),
        }
    }

    async fn retry_soon(&self, msg_id: i64) {
        let visible =
            queue::make_visible_in(&self.db, queue::COMPILATION_JOBS_QUEUE, msg_id, RETRY_AFTER);
        if let Err(error) = visible.await {
            tracing::warn!(msg_id, %error, "job.retry_schedule_failed");
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum WorkerError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("compiler unavailable: {0}")]
    Compiler(CompileError),
}

impl WorkerError {
    /// Whether the failure may be the job's own doing: the compiler process
    /// crashed or stopped answering on its source, or the database refused
    /// something of it. A database that is away, or a compiler that cannot
    /// start, says nothing about the job.
    fn may_be_the_jobs(&self) -> bool {
        match self {
            WorkerError::Db(error) | WorkerError::Queue(QueueError::Db(error)) => {
                !crate::db::is_transient(error)
            }
            WorkerError::Queue(QueueError::Encode(_)) => true,
            WorkerError::Compiler(error) => !matches!(
                error,
                CompileError::NodeNotFound { .. }
                    | CompileError::NotInstalled { .. }
                    | CompileError::Startup(_)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_during_one_pause_share_its_step() {
        let mut pause = PlatformPause::new();
        assert_eq!(pause.wait(), PLATFORM_BACKOFF_MIN);
        // A job beside it fails while the pause runs: it waits out the same
        // pause instead of taking the next step.
        assert!(pause.wait() <= PLATFORM_BACKOFF_MIN);
        // A failure after the pause is the next step.
        pause.until = Instant::now().checked_sub(Duration::from_millis(1));
        assert_eq!(pause.wait(), PLATFORM_BACKOFF_MIN * 2);
    }
}
