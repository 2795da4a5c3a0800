//! Growth: the statistics query, a page of one function's executions and
//! `executeFunction` at 10 thousand, 1 million and 10 million executions,
//! each as a ratio to the same figure at 10 thousand executions.
//!
//! The 10 thousand are a baseline measured beside every size (since
//! session 24): a second server on a database of its own, kept at
//! [`BASELINE`] executions, takes turns of [`load::TURN`] with the server whose
//! database grows, as the list takes turns with pgbench. Measured once at
//! the start and compared with sizes measured 5 and 20 minutes later, the
//! same query at the same size had differed by up to 2× between runs on
//! this shared machine; in turns both sides see the same drift, and the
//! spread of the turns' ratios is reported beside each figure. The first
//! size is the baseline's own, a check of the method: its ratios should be
//! about 1.
//!
//! Executions are seeded with SQL, spread over the last ten days (so they sit
//! in ten daily partitions, as under retention), 95 % COMPLETED and 5 %
//! FAILED, with triggers off. Their rollups are then rebuilt with SQL from
//! the seeded rows (per minute and per hour, for the function and the
//! platform), with every duration in one histogram bucket: the number of
//! rollup rows, not their histograms, is what a statistics query's cost
//! depends on. A checkpoint after seeding keeps the writing of millions of
//! fresh rows out of the measurements.

use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;

use crate::results::{Growth, GrowthBaseline, GrowthLevel, Taken};
use crate::stats::Throughput;
use crate::{Paths, Plan, env, execute, gql, load};

const CLIENTS: usize = 8;
const DAYS: i64 = 10;
/// Executions the baseline's database is brought back to at every size.
const BASELINE: i64 = 10_000;

const STATS: &str = "query($f: UUID) { executionStats(functionId: $f) { total successRate durationMs { p50 p95 } errorsByKind { kind count } series(bucketSeconds: 3600) { total p95Ms } } }";
const PAGE: &str = "query($f: UUID) { executions(functionId: $f, first: 20) { pageInfo { hasNextPage endCursor } nodes { id status durationMs createdAt } } }";

/// Tops the executions of `function` up to `total`, then rebuilds rollups.
async fn seed(db_url: &str, function: &str, total: i64) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(db_url)
        .await?;
    sqlx::query(&format!(
        "SELECT projectnil_ensure_execution_partitions((now() AT TIME ZONE 'UTC')::date - {DAYS}, (now() AT TIME ZONE 'UTC')::date)"
    ))
    .execute(&pool)
    .await?;
    let (present,): (i64,) = sqlx::query_as("SELECT count(*) FROM executions")
        .fetch_one(&pool)
        .await?;
    if present > total {
        bail!("{present} executions are already there, more than the {total} wanted");
    }
    let mut missing = total - present;
    while missing > 0 {
        let chunk = missing.min(1_000_000);
        let mut tx = pool.begin().await?;
        sqlx::query("SET LOCAL session_replication_role = replica")
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "INSERT INTO executions (function_id, revision, input, output, status, error_message, error_kind,
                                     started_at, completed_at, created_at, owner)
             SELECT $1::uuid, 1, '{{\"a\": 1}}', CASE WHEN failed THEN NULL ELSE '{{\"sum\": 2}}'::jsonb END,
                    CASE WHEN failed THEN 'FAILED' ELSE 'COMPLETED' END::execution_status,
                    CASE WHEN failed THEN 'unreachable executed' END,
                    CASE WHEN failed THEN 'TRAP'::execution_error_kind END,
                    at, at + make_interval(secs => random() * 0.005), at, gen_random_uuid()
               FROM (SELECT random() < 0.05 AS failed,
                            now() - interval '1 minute' - make_interval(secs => random() * {DAYS} * 86400) AS at
                       FROM generate_series(1, $2::bigint)) s"
        ))
        .bind(function)
        .bind(chunk)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        missing -= chunk;
        eprintln!("bench:   seeded {} executions", total - missing);
    }
    // Rebuilt from every execution, while the server's folder waits: what it
    // has staged is in `executions` already.
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE execution_rollups, execution_finishes IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM execution_finishes")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM execution_rollups")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO execution_rollups (function_id, width, bucket, completed, failed, failed_by_kind,
                                        timed, duration_sum_ms, duration_min_ms, duration_max_ms, duration_histogram)
         SELECT function_id, 60, date_trunc('minute', completed_at),
                count(*) FILTER (WHERE status = 'COMPLETED'), count(*) FILTER (WHERE status = 'FAILED'),
                jsonb_build_object('TRAP', count(*) FILTER (WHERE status = 'FAILED')), count(*),
                sum(ms), min(ms), max(ms), jsonb_build_object('195', count(*))
           FROM (SELECT function_id, status, completed_at,
                        extract(epoch FROM completed_at - started_at) * 1000 AS ms FROM executions) e
          GROUP BY function_id, date_trunc('minute', completed_at)",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO execution_rollups (function_id, width, bucket, completed, failed, failed_by_kind,
                                        timed, duration_sum_ms, duration_min_ms, duration_max_ms, duration_histogram)
         SELECT function_id, 3600, date_trunc('hour', bucket), sum(completed), sum(failed),
                jsonb_build_object('TRAP', sum(failed)), sum(timed), sum(duration_sum_ms),
                min(duration_min_ms), max(duration_max_ms), jsonb_build_object('195', sum(timed))
           FROM execution_rollups WHERE width = 60 GROUP BY function_id, date_trunc('hour', bucket)",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO execution_rollups (function_id, width, bucket, completed, failed, failed_by_kind,
                                        timed, duration_sum_ms, duration_min_ms, duration_max_ms, duration_histogram)
         SELECT NULL, width, bucket, completed, failed, failed_by_kind, timed, duration_sum_ms,
                duration_min_ms, duration_max_ms, duration_histogram FROM execution_rollups",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    sqlx::query("VACUUM ANALYZE executions")
        .execute(&pool)
        .await?;
    sqlx::query("VACUUM ANALYZE execution_rollups, execution_finishes")
        .execute(&pool)
        .await?;
    // Write the seeded pages out now, not while the next figures are measured.
    sqlx::query("CHECKPOINT").execute(&pool).await?;
    pool.close().await;
    Ok(())
}

/// Empties the executions and their statistics.
async fn truncate(db_url: &str) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(db_url)
        .await?;
    sqlx::query("TRUNCATE executions, execution_finishes, execution_rollups")
        .execute(&pool)
        .await?;
    pool.close().await;
    Ok(())
}

/// A server, its database and the function measured there.
struct Side {
    client: gql::Client,
    db_url: String,
    function: String,
}

impl Side {
    async fn new(client: gql::Client, db_url: String, source: &str) -> anyhow::Result<Self> {
        let function = client.create_function("bench-growth", source).await?;
        client
            .wait_ready(&function, Duration::from_secs(120))
            .await?;
        // The table's size is this figure's: what other figures ran goes.
        truncate(&db_url).await?;
        Ok(Self {
            client,
            db_url,
            function,
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Figure {
    Stats,
    Page,
    Execute,
}

impl Figure {
    async fn measure(
        self,
        side: &Side,
        warmup: Duration,
        duration: Duration,
    ) -> anyhow::Result<Throughput> {
        let f = json!({ "f": side.function });
        match self {
            Self::Stats => {
                load::closed_loop(&side.client, CLIENTS, warmup, duration, move |c| {
                    let f = f.clone();
                    async move {
                        let data = c.data(STATS, f).await?;
                        if data["executionStats"]["series"]
                            .as_array()
                            .map_or(0, Vec::len)
                            < 24
                        {
                            bail!("unexpected statistics: {data}");
                        }
                        Ok(())
                    }
                })
                .await
            }
            Self::Page => {
                load::closed_loop(&side.client, CLIENTS, warmup, duration, move |c| {
                    let f = f.clone();
                    async move {
                        let data = c.data(PAGE, f).await?;
                        if data["executions"]["nodes"].as_array().map_or(0, Vec::len) != 20 {
                            bail!("expected 20 executions: {data}");
                        }
                        Ok(())
                    }
                })
                .await
            }
            Self::Execute => {
                execute::closed_loop(&side.client, &side.function, CLIENTS, warmup, duration).await
            }
        }
    }
}

/// `figure` from the grown side and the baseline in turns: each side
/// combined over its turns, and the ratio of each pair of turns.
async fn in_turns(
    figure: Figure,
    grown: &Side,
    baseline: &Side,
    (warmup, duration): (Duration, Duration),
) -> anyhow::Result<(Throughput, Throughput, Vec<f64>)> {
    figure.measure(grown, warmup, Duration::ZERO).await?;
    figure.measure(baseline, warmup, Duration::ZERO).await?;
    let load::Turns {
        first: now,
        second: then,
        ratios,
    } = load::in_turns(
        duration,
        ["grown", "baseline"],
        async |length| figure.measure(grown, load::TURN_WARMUP, length).await,
        async |length| figure.measure(baseline, load::TURN_WARMUP, length).await,
    )
    .await?;
    eprintln!(
        "bench:     {figure:?}: {:8.1}/s p50 {:.2} ms; baseline {:8.1}/s p50 {:.2} ms ({:.2}×, turns {})",
        now.per_second,
        now.latency.p50_ms,
        then.per_second,
        then.latency.p50_ms,
        now.per_second / then.per_second.max(f64::MIN_POSITIVE),
        ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok((now, then, ratios))
}

pub async fn run(
    paths: &Paths,
    plan: &Plan,
    client: &gql::Client,
    db_url: &str,
    server_bin: &Path,
    db_name: &str,
) -> anyhow::Result<Growth> {
    let taken = Taken::start();
    let baseline_db = format!("{db_name}_baseline");
    env::create_database(&baseline_db).await?;
    let baseline_url = env::database_url(&baseline_db);
    let outcome = async {
        let baseline_server = env::Server::start_with(
            server_bin,
            &baseline_url,
            paths,
            &[],
            "server-growth-baseline.log",
        )
        .await?;
        let measured = async {
            let source = std::fs::read_to_string(paths.fixture("echo"))?;
            let grown = Side::new(client.clone(), db_url.to_string(), &source).await?;
            let baseline = Side::new(
                gql::Client::new(&baseline_server.base_url),
                baseline_url.clone(),
                &source,
            )
            .await?;
            levels(plan, &grown, &baseline).await
        }
        .await;
        baseline_server.stop().await;
        measured
    }
    .await;
    env::drop_database(&baseline_db).await.ok();
    Ok(Growth {
        taken: taken.finish(),
        clients: CLIENTS,
        levels: outcome?,
    })
}

async fn levels(plan: &Plan, grown: &Side, baseline: &Side) -> anyhow::Result<Vec<GrowthLevel>> {
    let scales: &[i64] = if plan.quick {
        &[BASELINE, 50_000]
    } else {
        &[BASELINE, 1_000_000, 10_000_000]
    };
    let warmup = Duration::from_secs(plan.warmup_secs);
    let duration = Duration::from_secs(plan.level_secs);
    let mut levels = Vec::new();
    for &executions in scales {
        seed(&grown.db_url, &grown.function, executions).await?;
        // What the baseline's executions added at the last size goes.
        truncate(&baseline.db_url).await?;
        seed(&baseline.db_url, &baseline.function, BASELINE).await?;
        eprintln!("bench:   {executions} executions, the baseline {BASELINE}:");
        let times = (warmup, duration);
        let (stats, base_stats, stats_turns) =
            in_turns(Figure::Stats, grown, baseline, times).await?;
        let (page, base_page, page_turns) = in_turns(Figure::Page, grown, baseline, times).await?;
        let (execute, base_execute, execute_turns) =
            in_turns(Figure::Execute, grown, baseline, times).await?;
        levels.push(GrowthLevel {
            executions,
            stats,
            page,
            execute,
            baseline: Some(GrowthBaseline {
                executions: BASELINE,
                stats: base_stats,
                page: base_page,
                execute: base_execute,
                stats_turns,
                page_turns,
                execute_turns,
            }),
        });
    }
    Ok(levels)
}
