//! Background executions, each figure against its floor in the same run:
//!
//! - latency: `startExecution` of the echo function → its COMPLETED event on an
//!   `executionStatusChanged(functionId)` subscription, one at a time, against
//!   the floor of the same hand-off through pgmq: a `pgmq.send` committed with a
//!   NOTIFY, heard by a LISTEN connection that then `pgmq.read`s it; and where
//!   the time went, from the row's own timestamps (the database and the load
//!   generator read the same clock);
//! - overload: bursts of 2× and 10× the synchronous capacity of one server
//!   (wasm threads + `PROJECTNIL_EXEC_QUEUE`) of `executeFunction` on a
//!   CPU-bound function at once: accepted, refused (TOO_MANY_REQUESTS) and the
//!   latency of the accepted;
//! - beside a backlog: `function(id)` from 4 clients on the idle server, then
//!   while the same process drains a backlog of CPU-bound background
//!   executions (what its other users feel while background work runs);
//! - throughput: a backlog of CPU-bound background executions drained by 1 and
//!   then 2 `projectnil worker --only executions` processes (on a database of
//!   its own, behind a `serve --no-execution-worker`), against the machine's
//!   ceiling: cores / the CPU time of one execution, measured the same run.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt as _;
use futures::future::join_all;
use serde_json::{Value, json};
use sqlx::Connection as _;
use sqlx::postgres::PgListener;

use crate::results::{
    Background, BackgroundStages, BesideBacklog, Overload, Taken, WorkerThroughput,
};
use crate::stats::{self, Latency};
use crate::{Paths, Plan, env, gql, load};

/// `burn.ts` rounds of about 10 ms of CPU.
const BURN_ROUNDS: i32 = 3_000_000;
/// The default `PROJECTNIL_EXEC_QUEUE` (the bench server runs on defaults).
const DEFAULT_QUEUE: usize = 64;
const SUBSCRIPTION: &str =
    "subscription($f: UUID) { executionStatusChanged(functionId: $f) { status execution { id } } }";

pub async fn run(
    paths: &Paths,
    plan: &Plan,
    client: &gql::Client,
    server: &env::Server,
    server_bin: &Path,
    db_name: &str,
) -> anyhow::Result<Background> {
    let taken = Taken::start();
    let db_url = env::database_url(db_name);
    let echo = ready(
        client,
        "bench-bg-echo",
        &std::fs::read_to_string(paths.fixture("echo"))?,
    )
    .await?;
    let burn = ready(
        client,
        "bench-bg-burn",
        &std::fs::read_to_string(paths.fixture("burn"))?,
    )
    .await?;

    let samples = if plan.quick { 30 } else { 300 };
    let (latency, stages) = start_to_completed(client, server, &db_url, &echo, samples).await?;
    let floor = pgmq_floor(&db_url, samples).await?;
    eprintln!(
        "bench:   start → COMPLETED p50 {:.2} ms p99 {:.2} ms; pgmq send → read p50 {:.2} ms p99 {:.2} ms",
        latency.p50_ms, latency.p99_ms, floor.p50_ms, floor.p99_ms
    );
    eprintln!("bench:   where, p50: {}", stages.describe());

    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let capacity = cores + DEFAULT_QUEUE;
    let mut overload = Vec::new();
    for factor in [2, 10] {
        let level = burst(client, &burn, factor, capacity).await?;
        eprintln!(
            "bench:   overload {factor}×: {} calls, {} accepted, {} refused, {} errors; accepted p50 {:.1} ms p99 {:.1} ms",
            level.calls,
            level.accepted,
            level.refused,
            level.errors,
            level.latency.p50_ms,
            level.latency.p99_ms
        );
        overload.push(level);
    }

    let beside_backlog = beside_backlog(plan, client, &db_url, &echo, &burn).await?;
    eprintln!(
        "bench:   function(id) beside {} queued burn executions: {:.0} req/s, p50 {:.2} ms p99 {:.2} ms; idle {:.0} req/s, p50 {:.2} ms p99 {:.2} ms",
        beside_backlog.backlog,
        beside_backlog.draining.per_second,
        beside_backlog.draining.latency.p50_ms,
        beside_backlog.draining.latency.p99_ms,
        beside_backlog.idle.per_second,
        beside_backlog.idle.latency.p50_ms,
        beside_backlog.idle.latency.p99_ms
    );

    let execution_ms = execution_cpu_ms(client, &burn).await?;
    let ideal_per_second = cores as f64 * 1000.0 / execution_ms;
    let backlog = if plan.quick { 60 } else { 600 };
    let throughput = drain_with_workers(paths, server_bin, db_name, backlog).await?;
    for level in &throughput {
        eprintln!(
            "bench:   {} worker(s): {} executions in {:.2} s = {:.1}/s (ceiling {:.1}/s)",
            level.workers, level.executions, level.seconds, level.per_second, ideal_per_second
        );
    }
    Ok(Background {
        taken: taken.finish(),
        latency,
        floor,
        stages: Some(stages),
        capacity,
        overload,
        burn_ms: execution_ms,
        ideal_per_second,
        throughput,
        beside_backlog: Some(beside_backlog),
    })
}

/// Queues `count` background executions of the burn function `burn`
/// (`startExecution`, 8 at a time) and returns their ids.
async fn queue_burns(
    client: &gql::Client,
    burn: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let variables = json!({ "id": burn, "input": { "rounds": BURN_ROUNDS } });
    futures::stream::iter(0..count)
        .map(|_| {
            let (client, variables) = (client.clone(), variables.clone());
            async move {
                let data = client.data(gql::START_EXECUTION, variables).await?;
                data["startExecution"]["id"]
                    .as_str()
                    .map(str::to_owned)
                    .context("startExecution answered without an id")
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Executions of `function` not finished yet.
async fn unfinished(db: &mut sqlx::PgConnection, function: &str) -> anyhow::Result<i64> {
    let (left,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM executions WHERE function_id = $1::uuid AND status IN ('PENDING', 'RUNNING')",
    )
    .bind(function)
    .fetch_one(db)
    .await?;
    Ok(left)
}

/// Waits, looking every 10 ms, until no execution of `function` is
/// unfinished; fails after `limit`.
async fn until_finished(
    db: &mut sqlx::PgConnection,
    function: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let left = unfinished(db, function).await?;
        if left == 0 {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!("{left} background executions still not finished after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Clients of the read beside the backlog.
const BESIDE_CLIENTS: usize = 4;

/// `function(id) { id status }` of `function` from [`BESIDE_CLIENTS`]
/// clients: on the idle server, then while it drains a backlog of `burn`
/// executions queued just before; returns once the backlog is drained.
async fn beside_backlog(
    plan: &Plan,
    client: &gql::Client,
    db_url: &str,
    function: &str,
    burn: &str,
) -> anyhow::Result<BesideBacklog> {
    const READ: &str = "query($id: UUID!) { function(id: $id) { id status } }";
    let (warmup, duration) = if plan.quick {
        (Duration::from_millis(300), Duration::from_secs(1))
    } else {
        (Duration::from_secs(1), Duration::from_secs(5))
    };
    // More than the server drains while the read is measured, with room
    // for a machine twice as fast as the 2 cores here (about 160/s of burn
    // executions): the figure fails rather than measure an idle end.
    let backlog = if plan.quick { 1_500 } else { 4_000 };
    let variables = json!({ "id": function });
    let read = move |c: gql::Client| {
        let variables = variables.clone();
        async move {
            let data = c.data(READ, variables).await?;
            if data["function"]["status"] != "READY" {
                bail!("unexpected answer: {data}");
            }
            Ok(())
        }
    };
    let idle = load::closed_loop(client, BESIDE_CLIENTS, warmup, duration, read.clone()).await?;

    let mut db = sqlx::PgConnection::connect(db_url).await?;
    queue_burns(client, burn, backlog).await?;
    let draining = load::closed_loop(client, BESIDE_CLIENTS, warmup, duration, read).await?;
    anyhow::ensure!(
        unfinished(&mut db, burn).await? > 0,
        "the backlog of {backlog} ran out before the read ended: queue more"
    );
    until_finished(&mut db, burn, Duration::from_secs(300)).await?;
    Ok(BesideBacklog {
        clients: BESIDE_CLIENTS,
        backlog,
        idle,
        draining,
    })
}

async fn ready(client: &gql::Client, name: &str, source: &str) -> anyhow::Result<String> {
    let id = client.create_function(name, source).await?;
    client.wait_ready(&id, Duration::from_secs(120)).await?;
    Ok(id)
}

/// Subscribes to `function`'s executions and starts probes until one is heard
/// of (nothing else says when a subscription without an id is live).
async fn live_subscription(
    client: &gql::Client,
    server: &env::Server,
    function: &str,
) -> anyhow::Result<gql::Socket> {
    let mut socket = gql::ws_connect(&server.ws_url()).await?;
    gql::subscribe(&mut socket, "1", SUBSCRIPTION, json!({ "f": function })).await?;
    for _ in 0..60 {
        client
            .data(gql::START_EXECUTION, json!({ "id": function, "input": {} }))
            .await?;
        if gql::next_payload(&mut socket, "1", Duration::from_secs(1))
            .await
            .is_ok()
        {
            // Let the probes finish, and drop what they announced.
            while gql::next_payload(&mut socket, "1", Duration::from_millis(300))
                .await
                .is_ok()
            {}
            return Ok(socket);
        }
    }
    bail!("the executions subscription never delivered an event")
}

async fn start_to_completed(
    client: &gql::Client,
    server: &env::Server,
    db_url: &str,
    function: &str,
    samples: usize,
) -> anyhow::Result<(Latency, BackgroundStages)> {
    let mut socket = live_subscription(client, server, function).await?;
    let mut histogram = stats::histogram();
    let input: Value = serde_json::from_str(crate::ECHO_INPUT)?;
    // Each sample's execution, when it was asked for and when its COMPLETED
    // arrived, on the wall clock the database's timestamps use.
    let mut timeline = Vec::with_capacity(samples);
    for _ in 0..samples {
        let (started, asked) = (Instant::now(), epoch_now());
        let accepted = client
            .data(
                gql::START_EXECUTION,
                json!({ "id": function, "input": input }),
            )
            .await?;
        let id = accepted["startExecution"]["id"].clone();
        loop {
            let payload = gql::next_payload(&mut socket, "1", Duration::from_secs(30)).await?;
            let event = &payload["data"]["executionStatusChanged"];
            if event["execution"]["id"] == id && event["status"] == "COMPLETED" {
                break;
            }
            if event["execution"]["id"] == id && event["status"] == "FAILED" {
                bail!("a background echo failed: {payload}");
            }
        }
        stats::record(&mut histogram, started.elapsed());
        let id: uuid::Uuid = serde_json::from_value(id)?;
        timeline.push((id, asked, epoch_now()));
    }
    gql::complete(&mut socket, "1").await.ok();
    let stages = stages(db_url, &timeline).await?;
    Ok((Latency::of(&histogram), stages))
}

fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// The median of each stage of the sampled executions: asked → accepted
/// (`created_at`, the accepting transaction's start), → RUNNING
/// (`started_at`), → finished (`completed_at`), → the COMPLETED event read.
async fn stages(
    db_url: &str,
    timeline: &[(uuid::Uuid, f64, f64)],
) -> anyhow::Result<BackgroundStages> {
    let mut db = sqlx::PgConnection::connect(db_url).await?;
    let ids: Vec<uuid::Uuid> = timeline.iter().map(|(id, ..)| *id).collect();
    let rows: Vec<(uuid::Uuid, f64, f64, f64)> = sqlx::query_as(
        "SELECT id, extract(epoch FROM created_at)::float8, extract(epoch FROM started_at)::float8,
                extract(epoch FROM completed_at)::float8
           FROM executions WHERE id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut db)
    .await?;
    let rows: std::collections::HashMap<_, _> = rows
        .into_iter()
        .map(|(id, created, started, completed)| (id, (created, started, completed)))
        .collect();
    let mut spans: [Vec<f64>; 4] = Default::default();
    for (id, asked, heard) in timeline {
        let &(created, started, completed) =
            rows.get(id).context("a sampled execution is missing")?;
        for (span, (from, to)) in spans.iter_mut().zip([
            (*asked, created),
            (created, started),
            (started, completed),
            (completed, *heard),
        ]) {
            span.push((to - from) * 1000.0);
        }
    }
    let [accepted, claimed, finished, heard] = spans.map(median);
    Ok(BackgroundStages {
        accepted_ms: accepted,
        claimed_ms: claimed,
        finished_ms: finished,
        heard_ms: heard,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// The same hand-off with nothing else: send + NOTIFY committed, the LISTEN
/// connection wakes, reads the message, deletes it.
async fn pgmq_floor(db_url: &str, samples: usize) -> anyhow::Result<Latency> {
    const QUEUE: &str = "bench_floor";
    let mut sender = sqlx::PgConnection::connect(db_url).await?;
    let mut reader = sqlx::PgConnection::connect(db_url).await?;
    sqlx::query("SELECT pgmq.create($1)")
        .bind(QUEUE)
        .execute(&mut sender)
        .await?;
    let mut listener = PgListener::connect(db_url).await?;
    listener.listen(QUEUE).await?;
    let mut histogram = stats::histogram();
    for _ in 0..samples {
        let started = Instant::now();
        let mut txn = sqlx::Connection::begin(&mut sender).await?;
        sqlx::query("SELECT pgmq.send($1, $2::jsonb)")
            .bind(QUEUE)
            .bind(json!({ "executionId": uuid::Uuid::new_v4() }))
            .execute(&mut *txn)
            .await?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(QUEUE)
            .execute(&mut *txn)
            .await?;
        txn.commit().await?;
        tokio::time::timeout(Duration::from_secs(10), listener.recv())
            .await
            .context("no NOTIFY within 10 s")??;
        let (msg_id,): (i64,) = sqlx::query_as("SELECT msg_id FROM pgmq.read($1, 30, 1)")
            .bind(QUEUE)
            .fetch_one(&mut reader)
            .await?;
        stats::record(&mut histogram, started.elapsed());
        sqlx::query("SELECT pgmq.delete($1, $2)")
            .bind(QUEUE)
            .bind(msg_id)
            .execute(&mut reader)
            .await?;
    }
    sqlx::query("SELECT pgmq.drop_queue($1)")
        .bind(QUEUE)
        .execute(&mut sender)
        .await?;
    Ok(Latency::of(&histogram))
}

/// `factor × capacity` synchronous executions at once, each on a connection
/// of its own.
async fn burst(
    client: &gql::Client,
    function: &str,
    factor: usize,
    capacity: usize,
) -> anyhow::Result<Overload> {
    let calls = factor * capacity;
    let variables = json!({ "id": function, "input": { "rounds": BURN_ROUNDS } });
    let answers = join_all((0..calls).map(|_| {
        let client = client.fresh();
        let variables = variables.clone();
        async move {
            let started = Instant::now();
            let answer = client.raw(gql::EXECUTE, variables).await;
            (answer, started.elapsed())
        }
    }))
    .await;
    let mut histogram = stats::histogram();
    let (mut accepted, mut refused, mut errors) = (0, 0, 0);
    for (answer, took) in answers {
        match answer {
            Ok(body) if body["data"]["executeFunction"]["status"] == "COMPLETED" => {
                accepted += 1;
                stats::record(&mut histogram, took);
            }
            Ok(body) if body["errors"][0]["extensions"]["code"] == "TOO_MANY_REQUESTS" => {
                refused += 1
            }
            _ => errors += 1,
        }
    }
    Ok(Overload {
        factor,
        calls,
        accepted,
        refused,
        errors,
        latency: Latency::of(&histogram),
    })
}

/// The median run time of one burn execution on an otherwise idle server.
async fn execution_cpu_ms(client: &gql::Client, function: &str) -> anyhow::Result<f64> {
    let mut durations = Vec::new();
    for _ in 0..15 {
        let data = client
            .data(
                gql::EXECUTE,
                json!({ "id": function, "input": { "rounds": BURN_ROUNDS } }),
            )
            .await?;
        let ms = data["executeFunction"]["durationMs"]
            .as_f64()
            .context("no durationMs")?;
        durations.push(ms);
    }
    Ok(median(durations))
}

/// A backlog of `count` burn executions waiting in PostgreSQL, then drained
/// by 1 and by 2 worker processes; timed from the workers being ready to the
/// last COMPLETED.
async fn drain_with_workers(
    paths: &Paths,
    server_bin: &Path,
    db_name: &str,
    count: usize,
) -> anyhow::Result<Vec<WorkerThroughput>> {
    let workers_db = format!("{db_name}_workers");
    env::create_database(&workers_db).await?;
    let outcome = async {
        let db_url = env::database_url(&workers_db);
        let api = env::Server::start_with(
            server_bin,
            &db_url,
            paths,
            &["--no-execution-worker"],
            "server-workers.log",
        )
        .await?;
        let client = gql::Client::new(&api.base_url);
        let burn = ready(
            &client,
            "bench-burn",
            &std::fs::read_to_string(paths.fixture("burn"))?,
        )
        .await?;
        let mut levels = Vec::new();
        for workers in [1, 2] {
            let ids: HashSet<String> = queue_burns(&client, &burn, count)
                .await?
                .into_iter()
                .collect();
            let mut running = Vec::new();
            for n in 0..workers {
                running.push(
                    env::Worker::start(
                        server_bin,
                        &db_url,
                        paths,
                        &format!("worker-{workers}-{n}.log"),
                    )
                    .await?,
                );
            }
            let started = Instant::now();
            let mut db = sqlx::PgConnection::connect(&db_url).await?;
            let ids: Vec<uuid::Uuid> = ids.iter().filter_map(|id| id.parse().ok()).collect();
            // The previous level's executions are finished: what is left is this one's.
            until_finished(&mut db, &burn, Duration::from_secs(600))
                .await
                .with_context(|| format!("{workers} workers draining {count} executions"))?;
            let seconds = started.elapsed().as_secs_f64();
            let (failed,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM executions WHERE id = ANY($1) AND status <> 'COMPLETED'",
            )
            .bind(&ids)
            .fetch_one(&mut db)
            .await?;
            anyhow::ensure!(
                failed == 0,
                "{failed} background executions did not complete"
            );
            for worker in running {
                worker.stop().await;
            }
            levels.push(WorkerThroughput {
                workers,
                executions: count,
                seconds,
                per_second: count as f64 / seconds,
            });
        }
        api.stop().await;
        anyhow::Ok(levels)
    }
    .await;
    env::drop_database(&workers_db).await.ok();
    outcome
}
