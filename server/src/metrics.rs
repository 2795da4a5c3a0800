//! Prometheus metrics, served at `GET /metrics` in the text format. Counters and
//! histograms are recorded where things happen (executions, the compiler worker,
//! the HTTP middleware in `http::metrics`, the GraphQL operation counter in
//! `graphql::metrics`, called from `graphql::operation`) through the `metrics`
//! facade. Gauges that mirror state owned elsewhere (queue backlogs, live
//! subscriptions, the module cache) are read at scrape time instead, so they
//! are never stale and need no bookkeeping.
//! The recorder is installed once per process at start-up; where it is not (the
//! `worker` subcommand, unit tests), every recording is a cheap no-op.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::Duration;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use entity::ExecutionStatus;
use sea_orm::ActiveEnum as _;

use crate::events::EventBus;
use crate::queue;
use crate::runtime::Runtime;

/// The series' names, each written once.
const EXECUTIONS_TOTAL: &str = "projectnil_executions_total";
const EXECUTION_DURATION_SECONDS: &str = "projectnil_execution_duration_seconds";
const EXECUTIONS_RECOVERED_TOTAL: &str = "projectnil_executions_recovered_total";
const EXECUTIONS_REFUSED_TOTAL: &str = "projectnil_executions_refused_total";
const EXECUTIONS_RETRIED_TOTAL: &str = "projectnil_executions_retried_total";
const EXECUTION_WRITES_LOST_TOTAL: &str = "projectnil_execution_writes_lost_total";
const COMPILATIONS_REFUSED_TOTAL: &str = "projectnil_compilations_refused_total";
const COMPILATIONS_TOTAL: &str = "projectnil_compilations_total";
const COMPILE_DURATION_SECONDS: &str = "projectnil_compile_duration_seconds";
const QUEUE_LENGTH: &str = "projectnil_queue_length";
const QUEUE_OLDEST_MESSAGE_AGE_SECONDS: &str = "projectnil_queue_oldest_message_age_seconds";
const ACTIVE_SUBSCRIPTIONS: &str = "projectnil_active_subscriptions";
const MODULE_CACHE_HITS_TOTAL: &str = "projectnil_module_cache_hits_total";
const MODULE_CACHE_MISSES_TOTAL: &str = "projectnil_module_cache_misses_total";
const MODULE_CACHE_EVICTIONS_TOTAL: &str = "projectnil_module_cache_evictions_total";
const MODULE_CACHE_BYTES: &str = "projectnil_module_cache_bytes";
const MODULE_CACHE_CAPACITY_BYTES: &str = "projectnil_module_cache_capacity_bytes";
const MODULE_CACHE_ENTRIES: &str = "projectnil_module_cache_entries";
const HTTP_REQUESTS_TOTAL: &str = "projectnil_http_requests_total";
const HTTP_REQUEST_DURATION_SECONDS: &str = "projectnil_http_request_duration_seconds";
const GRAPHQL_OPERATIONS_TOTAL: &str = "projectnil_graphql_operations_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
/// Event-bus receivers the process holds for itself (the cache warmer), which
/// are not client subscriptions.
static INTERNAL_RECEIVERS: AtomicUsize = AtomicUsize::new(0);
/// Subscribers of shared subscription streams minus the streams: each
/// stream holds one bus receiver for all of its subscribers.
static SHARED_SUBSCRIBERS_BEYOND_STREAMS: AtomicIsize = AtomicIsize::new(0);

/// Latency buckets in seconds: from a cached query (~1 ms) to a long compile.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// A scrape must answer even while the database does not.
const QUEUE_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// Installs the process-wide recorder (idempotent) and keeps its histograms
/// drained until `shutdown`.
pub fn install(shutdown: CancellationToken) -> anyhow::Result<()> {
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)?
        .install_recorder()?;
    describe();
    register_known_series();
    let upkeep = handle.clone();
    // Another thread may have won the race; its handle serves the same recorder.
    let _ = HANDLE.set(handle);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => upkeep.run_upkeep(),
            }
        }
    });
    Ok(())
}

fn describe() {
    describe_counter!(EXECUTIONS_TOTAL, "Executions that ended, by final status");
    describe_histogram!(
        EXECUTION_DURATION_SECONDS,
        Unit::Seconds,
        "Wall-clock time of an execution from RUNNING to its final status"
    );
    describe_counter!(
        EXECUTIONS_RECOVERED_TOTAL,
        "Executions ended FAILED because the process running them stopped"
    );
    describe_counter!(
        EXECUTIONS_REFUSED_TOTAL,
        "Executions refused with TOO_MANY_REQUESTS before anything was recorded, by which bound was full (queue: synchronous waiters of this process; backlog: background executions waiting in PostgreSQL)"
    );
    describe_counter!(
        EXECUTIONS_RETRIED_TOTAL,
        "Background executions run again because the process running them vanished (its lease lapsed)"
    );
    describe_counter!(
        EXECUTION_WRITES_LOST_TOTAL,
        "Status writes of this process that found the execution no longer theirs (finished, cancelled or taken over) and changed nothing"
    );
    describe_counter!(
        COMPILATIONS_REFUSED_TOTAL,
        "Creates and recompiling updates refused with TOO_MANY_REQUESTS because PROJECTNIL_COMPILE_BACKLOG compilation jobs were waiting"
    );
    describe_counter!(
        COMPILATIONS_TOTAL,
        "Compilation jobs handled, by outcome and whether the content cache answered"
    );
    describe_histogram!(
        COMPILE_DURATION_SECONDS,
        Unit::Seconds,
        "Time to compile and check one job"
    );
    describe_gauge!(
        QUEUE_LENGTH,
        "Messages waiting or in flight in a pgmq queue"
    );
    describe_gauge!(
        QUEUE_OLDEST_MESSAGE_AGE_SECONDS,
        Unit::Seconds,
        "Age of the oldest message in a pgmq queue (0 when empty)"
    );
    describe_gauge!(
        ACTIVE_SUBSCRIPTIONS,
        "GraphQL subscriptions open in this process"
    );
    describe_counter!(
        MODULE_CACHE_HITS_TOTAL,
        "Executions that found their compiled module cached"
    );
    describe_counter!(
        MODULE_CACHE_MISSES_TOTAL,
        "Executions that had to compile their module"
    );
    describe_counter!(
        MODULE_CACHE_EVICTIONS_TOTAL,
        "Modules evicted from the cache to stay within its budget"
    );
    describe_gauge!(
        MODULE_CACHE_BYTES,
        Unit::Bytes,
        "Estimated bytes held by cached modules"
    );
    describe_gauge!(
        MODULE_CACHE_CAPACITY_BYTES,
        Unit::Bytes,
        "Budget of the module cache"
    );
    describe_gauge!(MODULE_CACHE_ENTRIES, "Cached modules");
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests, by method, route and status"
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "HTTP request latency until the response head, by method, route and status"
    );
    describe_counter!(
        GRAPHQL_OPERATIONS_TOTAL,
        "GraphQL operations, by type and outcome (ok or the error code)"
    );
}

/// Remembers how many event-bus receivers the process holds for itself, so
/// they are not counted as client subscriptions.
pub fn set_internal_subscribers(count: usize) {
    INTERNAL_RECEIVERS.store(count, Ordering::Relaxed);
}

/// A subscriber joined (+1) or left (-1) a shared subscription stream.
pub fn shared_subscriber(delta: isize) {
    SHARED_SUBSCRIBERS_BEYOND_STREAMS.fetch_add(delta, Ordering::Relaxed);
}

/// A shared subscription stream started (+1) or stopped (-1).
pub fn shared_stream(delta: isize) {
    SHARED_SUBSCRIBERS_BEYOND_STREAMS.fetch_sub(delta, Ordering::Relaxed);
}

/// How a compilation job ended, as the `outcome` label says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompilationOutcome {
    Compiled,
    Rejected,
    /// The compiler could not be run (it is retried).
    Error,
    /// Given up after too many attempts.
    Poisoned,
}

impl CompilationOutcome {
    const ALL: [Self; 4] = [Self::Compiled, Self::Rejected, Self::Error, Self::Poisoned];

    fn as_str(self) -> &'static str {
        match self {
            Self::Compiled => "compiled",
            Self::Rejected => "rejected",
            Self::Error => "error",
            Self::Poisoned => "poisoned",
        }
    }
}

/// The statuses a finished execution can have (its `status` label).
const FINAL_STATUSES: [ExecutionStatus; 2] = [ExecutionStatus::Completed, ExecutionStatus::Failed];

/// Every counter and histogram with its known label values, at zero, so
/// rate() and dashboards have a series from start-up.
fn register_known_series() {
    for status in FINAL_STATUSES.map(|s| s.to_value()) {
        counter!(EXECUTIONS_TOTAL, "status" => status.clone()).increment(0);
        let _ = histogram!(EXECUTION_DURATION_SECONDS, "status" => status);
    }
    for outcome in CompilationOutcome::ALL {
        for cache_hit in [false, true] {
            if cache_hit && outcome != CompilationOutcome::Compiled {
                continue;
            }
            counter!(COMPILATIONS_TOTAL, "outcome" => outcome.as_str(), "cache_hit" => cache_hit.to_string())
                .increment(0);
        }
        let _ = histogram!(COMPILE_DURATION_SECONDS, "outcome" => outcome.as_str());
    }
    for kind in crate::graphql::metrics::OPERATION_KINDS {
        for outcome in crate::graphql::metrics::outcomes() {
            counter!(GRAPHQL_OPERATIONS_TOTAL, "type" => kind, "outcome" => outcome).increment(0);
        }
    }
    for bound in ["queue", "backlog"] {
        counter!(EXECUTIONS_REFUSED_TOTAL, "bound" => bound).increment(0);
    }
    counter!(COMPILATIONS_REFUSED_TOTAL).increment(0);
    counter!(EXECUTIONS_RETRIED_TOTAL).increment(0);
    counter!(EXECUTION_WRITES_LOST_TOTAL).increment(0);
    counter!(EXECUTIONS_RECOVERED_TOTAL).increment(0);
}

/// An execution reached its final status (`COMPLETED` or `FAILED`).
pub fn execution_finished(status: ExecutionStatus, took: Duration) {
    let status = status.to_value();
    counter!(EXECUTIONS_TOTAL, "status" => status.clone()).increment(1);
    histogram!(EXECUTION_DURATION_SECONDS, "status" => status).record(took.as_secs_f64());
}

/// `bound` is `queue` or `backlog`.
pub fn execution_refused(bound: &'static str) {
    counter!(EXECUTIONS_REFUSED_TOTAL, "bound" => bound).increment(1);
}

pub fn compilation_refused() {
    counter!(COMPILATIONS_REFUSED_TOTAL).increment(1);
}

pub fn execution_retried() {
    counter!(EXECUTIONS_RETRIED_TOTAL).increment(1);
}

pub fn execution_write_lost() {
    counter!(EXECUTION_WRITES_LOST_TOTAL).increment(1);
}

pub fn executions_recovered(count: u64) {
    counter!(EXECUTIONS_RECOVERED_TOTAL).increment(count);
}

/// A compilation job ended: `outcome` is `compiled`, `rejected` (the user's
/// source), `poisoned` (given up) or `error` (platform failure, retried).
pub fn compilation_finished(outcome: CompilationOutcome, cache_hit: bool, took: Duration) {
    let outcome = outcome.as_str();
    let cache_hit = if cache_hit { "true" } else { "false" };
    counter!(COMPILATIONS_TOTAL, "outcome" => outcome, "cache_hit" => cache_hit).increment(1);
    histogram!(COMPILE_DURATION_SECONDS, "outcome" => outcome).record(took.as_secs_f64());
}

pub fn http_request(method: &'static str, route: &'static str, status: u16, took: Duration) {
    let status = status.to_string();
    counter!(HTTP_REQUESTS_TOTAL, "method" => method, "route" => route, "status" => status.clone())
        .increment(1);
    histogram!(HTTP_REQUEST_DURATION_SECONDS, "method" => method, "route" => route, "status" => status)
        .record(took.as_secs_f64());
}

/// `kind` is `query`, `mutation`, `subscription` or `unknown` (unparsable);
/// `outcome` is `ok` or the first error's code.
pub fn graphql_operation(kind: &'static str, outcome: &'static str) {
    counter!(GRAPHQL_OPERATIONS_TOTAL, "type" => kind, "outcome" => outcome).increment(1);
}

/// What a scrape reads from the rest of the process.
#[derive(Clone)]
pub struct ScrapeSources {
    pub db: DatabaseConnection,
    pub events: EventBus,
    pub runtime: Runtime,
}

/// Refreshes the scrape-time gauges and renders every metric; `None` when no
/// recorder is installed in this process.
pub async fn render(sources: &ScrapeSources) -> Option<String> {
    let handle = HANDLE.get()?;
    refresh_queues(&sources.db).await;
    let subscriptions = sources
        .events
        .subscriber_count()
        .saturating_sub(INTERNAL_RECEIVERS.load(Ordering::Relaxed))
        .saturating_add_signed(SHARED_SUBSCRIBERS_BEYOND_STREAMS.load(Ordering::Relaxed));
    gauge!(ACTIVE_SUBSCRIPTIONS).set(subscriptions as f64);
    let cache = sources.runtime.stats();
    counter!(MODULE_CACHE_HITS_TOTAL).absolute(cache.hits);
    counter!(MODULE_CACHE_MISSES_TOTAL).absolute(cache.misses);
    counter!(MODULE_CACHE_EVICTIONS_TOTAL).absolute(cache.evictions);
    gauge!(MODULE_CACHE_BYTES).set(cache.bytes as f64);
    gauge!(MODULE_CACHE_CAPACITY_BYTES).set(cache.capacity_bytes as f64);
    gauge!(MODULE_CACHE_ENTRIES).set(cache.entries as f64);
    Some(handle.render())
}

/// Reads every queue's backlog; on failure the gauges keep their last value
/// (the outage shows on `/ready` and in the logs, not as a fake empty queue).
async fn refresh_queues(db: &DatabaseConnection) {
    for name in queue::QUEUES {
        match tokio::time::timeout(QUEUE_READ_TIMEOUT, queue::metrics(db, name)).await {
            Ok(Ok(metrics)) => {
                gauge!(QUEUE_LENGTH, "queue" => name).set(metrics.queue_length as f64);
                gauge!(QUEUE_OLDEST_MESSAGE_AGE_SECONDS, "queue" => name)
                    .set(f64::from(metrics.oldest_msg_age_sec.unwrap_or(0)));
            }
            Ok(Err(error)) => tracing::warn!(queue = name, %error, "metrics.queue_read_failed"),
            Err(_) => tracing::warn!(queue = name, "metrics.queue_read_timed_out"),
        }
    }
}
