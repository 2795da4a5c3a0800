//! The soak run (`scripts/soak`): minutes of mixed load against one server —
//! creates, renames and recompiles, executions (a share of them failing on
//! purpose), list queries — while live subscribers follow every function and
//! execution. It reports requests, errors (anything but the intended FAILED
//! executions counts), p99 per operation, the server's RSS over time and the
//! executions left unfinished at the end (must be 0).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

use crate::env::Server;
use crate::gql::{self, Client};
use crate::stats::{self, Latency};

const ADD: &str = server::compile::EXAMPLE_SOURCE;
const FAILING: &str = "export function handle(input: string): string {\n  throw new Error(\"intended failure\");\n}\n";

/// How the load is mixed: (operation, weight out of 100).
const MIX: [(Operation, u32); 6] = [
    (Operation::Execute, 55),
    (Operation::ExecuteFailing, 15),
    (Operation::List, 12),
    (Operation::Create, 8),
    (Operation::Rename, 5),
    (Operation::Recompile, 5),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
enum Operation {
    Execute,
    ExecuteFailing,
    List,
    Create,
    Rename,
    Recompile,
}

#[derive(Debug, Serialize)]
pub struct SoakReport {
    pub minutes: f64,
    pub clients: usize,
    pub subscribers: usize,
    pub requests: u64,
    pub errors: u64,
    pub intended_failed_executions: u64,
    pub operations: BTreeMap<String, OperationReport>,
    pub subscription_events: u64,
    pub subscriber_errors: u64,
    /// Subscriptions the server closed because they fell behind (and that
    /// subscribed again).
    pub subscriptions_lagged: u64,
    pub rss_start_mb: f64,
    pub rss_end_mb: f64,
    pub rss_max_mb: f64,
    pub executions_left_unfinished: i64,
    pub first_errors: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct OperationReport {
    pub requests: u64,
    pub errors: u64,
    pub latency: Latency,
}

#[derive(Default)]
struct Tally {
    histograms: BTreeMap<Operation, Histogram<u64>>,
    errors: BTreeMap<Operation, u64>,
    intended_failures: u64,
    first_errors: Vec<String>,
}

impl Tally {
    fn record(&mut self, op: Operation, took: Duration, outcome: anyhow::Result<bool>) {
        stats::record(
            self.histograms.entry(op).or_insert_with(stats::histogram),
            took,
        );
        match outcome {
            Ok(true) => {}
            Ok(false) => self.intended_failures += 1,
            Err(error) => {
                *self.errors.entry(op).or_default() += 1;
                if self.first_errors.len() < 10 {
                    self.first_errors.push(format!("{op:?}: {error:#}"));
                }
            }
        }
    }
}

/// Runs the soak against `server` for `duration`.
pub async fn run(
    server: &Server,
    duration: Duration,
    clients: usize,
    subscribers: usize,
) -> anyhow::Result<SoakReport> {
    let client = Client::new(&server.base_url);
    let add = client.create_function("soak-add", ADD).await?;
    let failing = client.create_function("soak-failing", FAILING).await?;
    for id in [&add, &failing] {
        client.wait_ready(id, Duration::from_secs(120)).await?;
    }

    let events = Arc::new(AtomicU64::new(0));
    let subscriber_errors = Arc::new(AtomicU64::new(0));
    let lagged = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + duration;
    let mut subscriber_tasks = Vec::new();
    for i in 0..subscribers {
        // Most dashboards watch functions; some watch every execution too.
        let query = if i % 4 == 0 {
            "subscription { executionStatusChanged { status execution { id } } }"
        } else {
            "subscription { functionStatusChanged { status function { id name } } }"
        };
        let mut socket = gql::ws_connect(&server.ws_url())
            .await
            .context("opening a subscriber")?;
        gql::subscribe(&mut socket, "soak", query, json!({})).await?;
        let (events, errors, lagged) = (events.clone(), subscriber_errors.clone(), lagged.clone());
        subscriber_tasks.push(tokio::spawn(async move {
            while Instant::now() < stop_at {
                match tokio::time::timeout(Duration::from_secs(1), socket.next()).await {
                    Err(_) => continue,
                    Ok(Some(Ok(Message::Text(text)))) => {
                        let message: Value = serde_json::from_str(&text).unwrap_or_default();
                        match message["type"].as_str() {
                            Some("next") if message["payload"].get("errors").is_none() => {
                                events.fetch_add(1, Ordering::Relaxed);
                            }
                            Some("ping") => {
                                let _ = gql::pong(&mut socket).await;
                            }
                            // The server closes a subscription that fell behind
                            // (it says so first); a dashboard subscribes again.
                            Some("next") if text.contains("fell too far behind") => {
                                lagged.fetch_add(1, Ordering::Relaxed);
                            }
                            Some("complete")
                                if gql::subscribe(&mut socket, "soak", query, json!({}))
                                    .await
                                    .is_err() =>
                            {
                                errors.fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                            Some("complete") => {}
                            Some("next" | "error") => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {}
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    Ok(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        }));
    }

    let rss_start = server.rss_mb().unwrap_or_default();
    let rss_max = Arc::new(Mutex::new(rss_start));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let own_functions: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let mut load_tasks = Vec::new();
    for worker in 0..clients {
        let client = client.fresh();
        let (tally, own, add, failing) = (
            tally.clone(),
            own_functions.clone(),
            add.clone(),
            failing.clone(),
        );
        load_tasks.push(tokio::spawn(async move {
            let mut n: u64 = worker as u64;
            while Instant::now() < stop_at {
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let op = pick((n >> 33) as u32 % 100);
                let started = Instant::now();
                let outcome = perform(&client, op, n, &add, &failing, &own).await;
                tally.lock().await.record(op, started.elapsed(), outcome);
            }
        }));
    }
    let sampler = {
        let rss_max = rss_max.clone();
        let pid = server.pid;
        tokio::spawn(async move {
            while Instant::now() < stop_at {
                tokio::time::sleep(Duration::from_secs(5)).await;
                if let Some(rss) = crate::env::rss_mb_of(pid) {
                    let mut max = rss_max.lock().await;
                    *max = max.max(rss);
                }
            }
        })
    };
    for task in load_tasks {
        task.await?;
    }
    sampler.await?;
    for task in subscriber_tasks {
        task.await?;
    }

    // Background work (recompiles, results) settles; nothing may stay unfinished.
    let mut left = i64::MAX;
    for _ in 0..60 {
        let data = client
            .data("{ running: executions(status: RUNNING, first: 1) { totalCount } pending: executions(status: PENDING, first: 1) { totalCount } }", json!({}))
            .await?;
        left = data["running"]["totalCount"].as_i64().unwrap_or(0)
            + data["pending"]["totalCount"].as_i64().unwrap_or(0);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let tally = Arc::try_unwrap(tally)
        .ok()
        .context("load tasks still hold the tally")?
        .into_inner();
    let mut operations = BTreeMap::new();
    let (mut requests, mut errors) = (0, 0);
    for (op, histogram) in &tally.histograms {
        let op_errors = tally.errors.get(op).copied().unwrap_or(0);
        requests += histogram.len();
        errors += op_errors;
        operations.insert(
            serde_json::to_value(op)?
                .as_str()
                .unwrap_or_default()
                .to_string(),
            OperationReport {
                requests: histogram.len(),
                errors: op_errors,
                latency: Latency::of(histogram),
            },
        );
    }
    let rss_end = server.rss_mb().unwrap_or_default();
    let rss_max = rss_max.lock().await.max(rss_end);
    Ok(SoakReport {
        minutes: duration.as_secs_f64() / 60.0,
        clients,
        subscribers,
        requests,
        errors,
        intended_failed_executions: tally.intended_failures,
        operations,
        subscription_events: events.load(Ordering::Relaxed),
        subscriber_errors: subscriber_errors.load(Ordering::Relaxed),
        subscriptions_lagged: lagged.load(Ordering::Relaxed),
        rss_start_mb: rss_start,
        rss_end_mb: rss_end,
        rss_max_mb: rss_max,
        executions_left_unfinished: left,
        first_errors: tally.first_errors,
    })
}

fn pick(roll: u32) -> Operation {
    let mut acc = 0;
    for (op, weight) in MIX {
        acc += weight;
        if roll < acc {
            return op;
        }
    }
    Operation::Execute
}

/// One operation; `Ok(false)` is an intended failure (a FAILED execution of the
/// failing function), `Err` anything unintended.
async fn perform(
    client: &Client,
    op: Operation,
    n: u64,
    add: &str,
    failing: &str,
    own: &Mutex<Vec<String>>,
) -> anyhow::Result<bool> {
    match op {
        Operation::Execute => {
            let (a, b) = ((n % 1000) as i64, (n % 7) as i64);
            let data = client
                .data(
                    gql::EXECUTE,
                    json!({ "id": add, "input": { "a": a, "b": b } }),
                )
                .await?;
            let execution = &data["executeFunction"];
            anyhow::ensure!(
                execution["status"] == "COMPLETED" && execution["output"]["sum"] == a + b,
                "unexpected execution: {execution}"
            );
            Ok(true)
        }
        Operation::ExecuteFailing => {
            let data = client
                .data(gql::EXECUTE, json!({ "id": failing, "input": {} }))
                .await?;
            let execution = &data["executeFunction"];
            anyhow::ensure!(
                execution["status"] == "FAILED",
                "expected FAILED: {execution}"
            );
            anyhow::ensure!(
                execution["errorMessage"]
                    .as_str()
                    .is_some_and(|m| m.contains("intended failure")),
                "unexpected message: {execution}"
            );
            Ok(false)
        }
        Operation::List => {
            let data = client
                .data(
                    "{ functions(first: 20) { totalCount nodes { id name status } } }",
                    json!({}),
                )
                .await?;
            anyhow::ensure!(
                data["functions"]["totalCount"].as_i64().unwrap_or(0) >= 2,
                "list lost functions"
            );
            Ok(true)
        }
        Operation::Create => {
            // A handful of distinct sources: mostly content-cache hits, some compiles.
            let source = format!("{ADD}// variant {}\n", n % 5);
            let id = client
                .create_function(&format!("soak-{n:x}"), &source)
                .await?;
            own.lock().await.push(id);
            Ok(true)
        }
        Operation::Rename | Operation::Recompile => {
            let target = {
                let own = own.lock().await;
                if own.is_empty() {
                    return Ok(true);
                }
                own[(n as usize / 7) % own.len()].clone()
            };
            let input = if op == Operation::Rename {
                json!({ "name": format!("soak-renamed-{n:x}") })
            } else {
                json!({ "source": format!("{ADD}// recompiled {}\n", n % 5) })
            };
            let data = client
                .data("mutation($id: UUID!, $input: UpdateFunctionInput!) { updateFunction(id: $id, input: $input) { id } }", json!({ "id": target, "input": input }))
                .await?;
            anyhow::ensure!(
                data["updateFunction"]["id"] == target.as_str(),
                "update answered {data}"
            );
            Ok(true)
        }
    }
}

/// The report as Markdown, for BENCHMARKS.md.
pub fn markdown(report: &SoakReport) -> String {
    let mut out = String::from(
        "| operation | requests | errors | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for (op, r) in &report.operations {
        out.push_str(&format!(
            "| {op} | {} | {} | {:.1} | {:.1} | {:.1} |\n",
            r.requests, r.errors, r.latency.p50_ms, r.latency.p99_ms, r.latency.max_ms
        ));
    }
    out.push_str(&format!(
        "\n{:.1} minutes, {} clients, {} live subscribers: {} requests, **{} errors** \
         (besides {} intended FAILED executions), {} subscription events received, \
         {} subscriber errors, {} subscriptions closed for falling behind (and resubscribed). Server RSS {:.0} MB at start, {:.0} MB at the end, {:.0} MB at most. \
         Executions left PENDING or RUNNING at the end: **{}**.\n",
        report.minutes,
        report.clients,
        report.subscribers,
        report.requests,
        report.errors,
        report.intended_failed_executions,
        report.subscription_events,
        report.subscriber_errors,
        report.subscriptions_lagged,
        report.rss_start_mb,
        report.rss_end_mb,
        report.rss_max_mb,
        report.executions_left_unfinished
    ));
    out
}
