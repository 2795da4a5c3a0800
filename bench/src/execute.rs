//! Execute over HTTP: `executeFunction` on the echo function (100-byte input)
//! at 1, 8 and 64 clients, against pgbench replaying the three statements of
//! `Executor::execute` (bench/sql/execute.sql) with as many clients.

use std::time::Duration;

use anyhow::bail;
use serde_json::{Value, json};

use crate::results::{Execute, ExecuteLevel, Taken};
use crate::stats::Throughput;
use crate::{ECHO_INPUT, Paths, Plan, gql, load, pgbench};

pub const CLIENTS: [usize; 3] = [1, 8, 64];

/// `executeFunction` of `id` on the echo input from `clients` closed-loop
/// clients; every answer must be COMPLETED.
pub async fn closed_loop(
    client: &gql::Client,
    id: &str,
    clients: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Throughput> {
    let input: Value = serde_json::from_str(ECHO_INPUT)?;
    let variables = json!({ "id": id, "input": input });
    load::closed_loop(client, clients, warmup, duration, move |c| {
        let variables = variables.clone();
        async move {
            let data = c.data(gql::EXECUTE, variables).await?;
            if data["executeFunction"]["status"] != "COMPLETED" {
                bail!("execution did not complete: {}", data["executeFunction"]);
            }
            Ok(())
        }
    })
    .await
}

pub async fn run(
    paths: &Paths,
    plan: &Plan,
    client: &gql::Client,
    db_url: &str,
) -> anyhow::Result<Execute> {
    let taken = Taken::start();
    let source = std::fs::read_to_string(paths.fixture("echo"))?;
    let id = client.create_function("bench-echo", &source).await?;
    client.wait_ready(&id, Duration::from_secs(120)).await?;
    let input: Value = serde_json::from_str(ECHO_INPUT)?;
    let output = input.to_string();
    let warmup = Duration::from_secs(plan.warmup_secs);
    let duration = Duration::from_secs(plan.level_secs);
    let script = paths.repo.join("bench/sql/execute.sql");

    let mut levels = Vec::new();
    for clients in CLIENTS {
        let http = closed_loop(client, &id, clients, warmup, duration).await?;
        eprintln!(
            "bench:   http    c={clients:<3} {:8.1} req/s p50 {:6.2} ms p99 {:6.2} ms ({} errors)",
            http.per_second, http.latency.p50_ms, http.latency.p99_ms, http.errors
        );
        let defines = [
            ("fid", id.as_str()),
            ("input", ECHO_INPUT),
            ("output", output.as_str()),
        ];
        // A short unrecorded run first, as the HTTP side has its warm-up.
        pgbench::run(db_url, &script, clients, warmup, &defines, &paths.dir).await?;
        let pgbench =
            pgbench::run(db_url, &script, clients, duration, &defines, &paths.dir).await?;
        eprintln!(
            "bench:   pgbench c={clients:<3} {:8.1} tx/s  p50 {:6.2} ms p99 {:6.2} ms",
            pgbench.per_second, pgbench.latency.p50_ms, pgbench.latency.p99_ms
        );
        levels.push(ExecuteLevel {
            clients,
            http,
            pgbench,
        });
    }
    Ok(Execute {
        taken: taken.finish(),
        levels,
    })
}
