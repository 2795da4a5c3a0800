//! List query: `functions(first: 50)` with 10,000 functions in the database,
//! against pgbench running the statement `functions::list` sends (the page
//! with its count; bench/sql/list.sql) with as many clients, and
//! against PostGraphile v4 answering the same page from the same database.
//!
//! The server and pgbench take turns of [`load::TURN`] (since session 15): on a
//! shared 2-core machine whose pace drifts by a third within minutes, one
//! window each, one after the other, let the drift between them decide the
//! ratio. Taking turns, both see the same drift; the spread of the turns'
//! ratios is reported beside the figure.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::results::{List, Peer, Taken};
use crate::{Paths, Plan, gql, load, pgbench, postgraphile};

const QUERY: &str = "{ functions(first: 50) { totalCount pageInfo { hasNextPage endCursor } nodes { id name status revision wasmSize createdAt updatedAt } } }";

/// Tops the functions table up to `total` rows (READY echo functions with
/// spread creation times). Triggers are off for the insert
/// (`session_replication_role = replica`), so no status event is announced
/// and the server's cache warmer does not compile 10,000 modules.
async fn seed(paths: &Paths, db_url: &str, total: i64) -> anyhow::Result<i64> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(db_url)
        .await?;
    let (present,): (i64,) = sqlx::query_as("SELECT count(*) FROM functions")
        .fetch_one(&pool)
        .await?;
    let missing = total - present;
    if missing > 0 {
        let source = std::fs::read_to_string(paths.fixture("echo"))?;
        let wasm = std::fs::read(paths.echo_wasm())
            .with_context(|| format!("{} (run `loadgen prepare`)", paths.echo_wasm().display()))?;
        let mut tx = pool.begin().await?;
        sqlx::query("SET LOCAL session_replication_role = replica")
            .execute(&mut *tx)
            .await?;
        // Each function READY at revision 1, deployed, sharing one module.
        sqlx::query(
            "WITH m AS (INSERT INTO modules (digest, wasm_binary)
                        VALUES (encode(sha256($2), 'hex'), $2)
                        ON CONFLICT (digest) DO UPDATE SET digest = EXCLUDED.digest
                        RETURNING digest),
                  f AS (INSERT INTO functions (name, language, source, status, revision,
                                               deployed_revision, created_at, updated_at)
                        SELECT 'bench-list-' || g, 'assemblyscript', $1, 'READY', 1, 1,
                               now() - make_interval(secs => g), now()
                        FROM generate_series(1, $3::bigint) g
                        RETURNING id, language, source)
             INSERT INTO function_versions (function_id, revision, language, source, status,
                                            module_digest, wasm_size, compiled_at)
             SELECT f.id, 1, f.language, f.source, 'READY', m.digest, octet_length($2), now()
               FROM f, m",
        )
        .bind(&source)
        .bind(&wasm)
        .bind(missing)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    // Settle the database before anything is measured: the fresh rows get
    // their hint bits and visibility map now, and no autovacuum (of these
    // rows, or of the executions an earlier figure wrote) runs under the
    // first side measured. The server went first, and paid for it.
    sqlx::query("VACUUM (ANALYZE)").execute(&pool).await?;
    sqlx::query("CHECKPOINT").execute(&pool).await?;
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM functions")
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    Ok(count)
}

pub async fn run(
    paths: &Paths,
    plan: &Plan,
    client: &gql::Client,
    db_url: &str,
) -> anyhow::Result<List> {
    let taken = Taken::start();
    let functions = seed(paths, db_url, plan.list_functions).await?;
    let warmup = Duration::from_secs(plan.warmup_secs);
    let duration = Duration::from_secs(plan.level_secs);
    let clients = plan.list_clients;
    let pages = |client, query, field, warmup, duration| {
        load::closed_loop(client, clients, warmup, duration, move |c| async move {
            let nodes = c.page_len(query, field).await?;
            if nodes != 50 {
                bail!("expected 50 functions, got {nodes}");
            }
            Ok(())
        })
    };
    let script = paths.repo.join("bench/sql/list.sql");
    let floor = |duration| pgbench::run(db_url, &script, clients, duration, &[], &paths.dir);
    pages(client, QUERY, "functions", warmup, Duration::ZERO).await?;
    floor(warmup).await?;
    let load::Turns {
        first: http,
        second: pgbench,
        ratios: turn_ratios,
    } = load::in_turns(
        duration,
        ["http", "pgbench"],
        async |length| pages(client, QUERY, "functions", load::TURN_WARMUP, length).await,
        async |length| floor(length).await,
    )
    .await?;
    eprintln!(
        "bench:   http    c={clients:<3} {:8.1} req/s p50 {:6.2} ms p99 {:6.2} ms ({} errors)",
        http.per_second, http.latency.p50_ms, http.latency.p99_ms, http.errors
    );
    eprintln!(
        "bench:   pgbench c={clients:<3} {:8.1} tx/s  p50 {:6.2} ms p99 {:6.2} ms",
        pgbench.per_second, pgbench.latency.p50_ms, pgbench.latency.p99_ms
    );
    let peer = postgraphile::start(paths, db_url).await?;
    let peer_client = gql::Client::new(&peer.base_url);
    let peer_http = pages(
        &peer_client,
        postgraphile::LIST_QUERY,
        "allFunctions",
        warmup,
        duration,
    )
    .await?;
    eprintln!(
        "bench:   postgraphile {} c={clients:<3} {:8.1} req/s p50 {:6.2} ms p99 {:6.2} ms ({} errors)",
        peer.version,
        peer_http.per_second,
        peer_http.latency.p50_ms,
        peer_http.latency.p99_ms,
        peer_http.errors
    );
    Ok(List {
        taken: taken.finish(),
        functions,
        clients,
        http,
        pgbench,
        turn_ratios,
        peer: Some(Peer {
            name: format!("PostGraphile {}", peer.version),
            throughput: peer_http,
        }),
    })
}
