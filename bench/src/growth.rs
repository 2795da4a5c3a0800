//! Growth: the statistics query, a page of one function's executions and
//! `executeFunction` at 10 thousand, 1 million and 10 million executions,
//! each as a ratio to its figure at 10 thousand in the same run.
//!
//! Executions are seeded with SQL, spread over the last ten days (so they sit
//! in ten daily partitions, as under retention), 95 % COMPLETED and 5 %
//! FAILED, with triggers off. Their rollups are then rebuilt with SQL from
//! the seeded rows (per minute and per hour, for the function and the
//! platform), with every duration in one histogram bucket: the number of
//! rollup rows, not their histograms, is what a statistics query's cost
//! depends on. A checkpoint after seeding keeps the writing of millions of
//! fresh rows out of the measurements.

use std::time::Duration;

use anyhow::bail;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;

use crate::results::{Growth, GrowthLevel, Taken};
use crate::{Paths, Plan, execute, gql, load};

const CLIENTS: usize = 8;
const DAYS: i64 = 10;

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

pub async fn run(
    paths: &Paths,
    plan: &Plan,
    client: &gql::Client,
    db_url: &str,
) -> anyhow::Result<Growth> {
    let taken = Taken::start();
    let source = std::fs::read_to_string(paths.fixture("echo"))?;
    let id = client.create_function("bench-growth", &source).await?;
    client.wait_ready(&id, Duration::from_secs(120)).await?;
    // The table's size is this figure's: what other figures ran goes.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(db_url)
        .await?;
    sqlx::query("TRUNCATE executions, execution_finishes, execution_rollups")
        .execute(&pool)
        .await?;
    pool.close().await;
    let scales: &[i64] = if plan.quick {
        &[10_000, 50_000]
    } else {
        &[10_000, 1_000_000, 10_000_000]
    };
    let warmup = Duration::from_secs(plan.warmup_secs);
    let duration = Duration::from_secs(plan.level_secs);
    let mut levels = Vec::new();
    for &executions in scales {
        seed(db_url, &id, executions).await?;
        let f = json!({ "f": id });
        let stats = {
            let f = f.clone();
            load::closed_loop(client, CLIENTS, warmup, duration, move |c| {
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
            .await?
        };
        let page = {
            let f = f.clone();
            load::closed_loop(client, CLIENTS, warmup, duration, move |c| {
                let f = f.clone();
                async move {
                    let data = c.data(PAGE, f).await?;
                    if data["executions"]["nodes"].as_array().map_or(0, Vec::len) != 20 {
                        bail!("expected 20 executions: {data}");
                    }
                    Ok(())
                }
            })
            .await?
        };
        let execute = execute::closed_loop(client, &id, CLIENTS, warmup, duration).await?;
        eprintln!(
            "bench:   {executions:>10} executions: stats {:8.1}/s p50 {:.2} ms, page {:8.1}/s p50 {:.2} ms, execute {:8.1}/s p50 {:.2} ms",
            stats.per_second,
            stats.latency.p50_ms,
            page.per_second,
            page.latency.p50_ms,
            execute.per_second,
            execute.latency.p50_ms
        );
        levels.push(GrowthLevel {
            executions,
            stats,
            page,
            execute,
        });
    }
    Ok(Growth {
        taken: taken.finish(),
        clients: CLIENTS,
        levels,
    })
}
