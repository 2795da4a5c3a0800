//! Compile latency: createFunction → READY as seen on the
//! `functionStatusChanged(id)` subscription, for new sources (each with a
//! unique comment, so the content cache misses) and for a source compiled
//! before (a content-cache hit); against one run of the `asc` CLI on the same
//! file with the platform's flags.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use crate::env::Server;
use crate::results::{Compile, Taken};
use crate::stats::{self, Latency};
use crate::{Paths, Plan, gql};

const SOURCE_FIXTURE: &str = "add";
const STATUS: &str = "subscription($id: UUID!) { functionStatusChanged(id: $id) { status function { compileError } } }";

/// Compiles `source` with the asc CLI the way the platform's flags say
/// (`server::compile::ASC_FLAGS`) into `out`; returns the wall time.
pub fn asc_cli(paths: &Paths, source: &Path, out: &Path) -> anyhow::Result<Duration> {
    let work = paths
        .dir
        .join(format!("asc-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&work)?;
    std::fs::copy(source, work.join("index.ts"))
        .with_context(|| format!("copying {}", source.display()))?;
    let modules = paths.compiler_dir().join("node_modules");
    std::os::unix::fs::symlink(&modules, work.join("node_modules"))?;
    let started = Instant::now();
    let output = std::process::Command::new(modules.join(".bin/asc"))
        .arg("index.ts")
        .args(server::compile::ASC_FLAGS.split_whitespace())
        .args(["-o", "out.wasm"])
        .current_dir(&work)
        .output()
        .context("running asc (npm ci --prefix server/compiler)")?;
    let took = started.elapsed();
    if !output.status.success() {
        bail!(
            "asc failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::copy(work.join("out.wasm"), out)?;
    std::fs::remove_dir_all(&work)?;
    Ok(took)
}

/// createFunction, then follow it until READY.
async fn create_until_ready(
    client: &gql::Client,
    socket: &mut gql::Socket,
    name: &str,
    source: &str,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let id = client.create_function(name, source).await?;
    let sub = uuid::Uuid::new_v4().to_string();
    gql::subscribe(socket, &sub, STATUS, json!({ "id": id })).await?;
    loop {
        let payload = gql::next_payload(socket, &sub, Duration::from_secs(120)).await?;
        let event = &payload["data"]["functionStatusChanged"];
        match event["status"].as_str() {
            Some("READY") => break,
            Some("FAILED") => bail!(
                "{name} failed to compile: {}",
                event["function"]["compileError"]
            ),
            Some(_) => continue,
            None => bail!("unexpected payload {payload}"),
        }
    }
    let took = started.elapsed();
    gql::complete(socket, &sub).await?;
    Ok(took)
}

pub async fn run(
    paths: &Paths,
    plan: &Plan,
    client: &gql::Client,
    server: &Server,
) -> anyhow::Result<Compile> {
    let taken = Taken::start();
    let base = std::fs::read_to_string(paths.fixture(SOURCE_FIXTURE))?;
    let unique = || format!("{base}\n// bench {}\n", uuid::Uuid::new_v4().simple());
    let mut socket = gql::ws_connect(&server.ws_url()).await?;

    // One unrecorded compile first: the worker's compiler is warm from start-up,
    // but this also warms the server's own paths.
    let first = unique();
    create_until_ready(client, &mut socket, "bench-compile-warmup", &first).await?;

    let mut fresh = stats::histogram();
    for i in 0..plan.compiles {
        let took = create_until_ready(
            client,
            &mut socket,
            &format!("bench-compile-{i}"),
            &unique(),
        )
        .await?;
        stats::record(&mut fresh, took);
    }
    let mut hits = stats::histogram();
    for i in 0..plan.cache_hits {
        let took = create_until_ready(client, &mut socket, &format!("bench-cache-hit-{i}"), &first)
            .await?;
        stats::record(&mut hits, took);
    }
    let fresh = Latency::of(&fresh);
    let cache_hit = Latency::of(&hits);
    eprintln!(
        "bench:   compile   p50 {:7.1} ms p95 {:7.1} ms; cache hit p50 {:6.1} ms p95 {:6.1} ms",
        fresh.p50_ms, fresh.p95_ms, cache_hit.p50_ms, cache_hit.p95_ms
    );

    let file = paths.dir.join("compile-source.ts");
    std::fs::write(&file, &first)?;
    let mut cli = stats::histogram();
    for _ in 0..plan.asc_runs {
        let took = asc_cli(paths, &file, &paths.dir.join("compile-source.wasm"))?;
        stats::record(&mut cli, took);
    }
    let asc_cli = Latency::of(&cli);
    eprintln!("bench:   asc CLI   p50 {:7.1} ms", asc_cli.p50_ms);
    Ok(Compile {
        taken: taken.finish(),
        source: format!("tests/fixtures/functions/{SOURCE_FIXTURE}.ts"),
        fresh,
        cache_hit,
        asc_cli,
    })
}
