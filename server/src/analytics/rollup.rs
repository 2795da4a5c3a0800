//! Folding staged finishes into rollups (their retention is maintenance's).
//!
//! Any number of processes fold at once: each takes staged rows with `FOR
//! UPDATE SKIP LOCKED`, deletes them and adds them to the rollups in one
//! transaction, so every finish is counted exactly once.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, DurationRound as _, TimeDelta, Utc};
use entity::execution::ExecutionStatus;
use sea_orm::{
    ActiveEnum as _, ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult, Statement,
    TransactionTrait,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Tally;

/// Staged finishes taken per transaction.
const BATCH: i64 = 5_000;
/// How often each process folds.
const FOLD_EVERY: Duration = Duration::from_secs(1);
/// Rollup widths, in seconds: per minute and per hour.
const WIDTHS: [i64; 2] = [60, 3600];

#[derive(Debug, FromQueryResult)]
struct StagedFinish {
    function_id: Uuid,
    finished_at: DateTime<Utc>,
    status: String,
    error_kind: Option<String>,
    duration_ms: Option<f64>,
}

/// One rollup row's increment.
type RollupKey = (Option<Uuid>, i64, DateTime<Utc>);

/// Folds one batch of staged finishes into the rollups; returns how many.
pub async fn fold_staged(db: &DatabaseConnection) -> Result<usize, DbErr> {
    let txn = db.begin().await?;
    let staged = StagedFinish::find_by_statement(Statement::from_sql_and_values(
        sea_orm::DatabaseBackend::Postgres,
        "DELETE FROM execution_finishes WHERE id IN (
             SELECT id FROM execution_finishes ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING function_id, finished_at, status::text AS status,
                   error_kind::text AS error_kind, duration_ms",
        vec![BATCH.into()],
    ))
    .all(&txn)
    .await?;
    if staged.is_empty() {
        return Ok(0);
    }
    let mut increments: BTreeMap<RollupKey, Tally> = BTreeMap::new();
    for finish in &staged {
        let mut one = Tally::default();
        if finish.status == ExecutionStatus::Completed.to_value() {
            one.completed = 1;
        } else {
            one.failed = 1;
        }
        if let Some(kind) = &finish.error_kind {
            one.failed_by_kind.insert(kind.clone(), 1);
        }
        if let Some(ms) = finish.duration_ms {
            one.durations.record(ms);
        }
        for width in WIDTHS {
            let bucket = finish
                .finished_at
                .duration_trunc(TimeDelta::seconds(width))
                .unwrap_or(finish.finished_at);
            for scope in [Some(finish.function_id), None] {
                increments
                    .entry((scope, width, bucket))
                    .or_default()
                    .add(&one);
            }
        }
    }
    // In key order, so concurrent folds lock shared rows in the same order.
    let rows: Vec<serde_json::Value> = increments
        .iter()
        .map(|((function_id, width, bucket), tally)| {
            json!({
                "function_id": function_id,
                "width": width,
                "bucket": bucket,
                "completed": tally.completed,
                "failed": tally.failed,
                "failed_by_kind": tally.kinds_json(),
                "timed": tally.durations.count(),
                "duration_sum_ms": tally.durations.sum_ms(),
                "duration_min_ms": tally.durations.min_ms(),
                "duration_max_ms": tally.durations.max_ms(),
                "duration_histogram": tally.durations.counts_json(),
            })
        })
        .collect();
    txn.execute(Statement::from_sql_and_values(
        sea_orm::DatabaseBackend::Postgres,
        "INSERT INTO execution_rollups AS r
             (function_id, width, bucket, completed, failed, failed_by_kind, timed,
              duration_sum_ms, duration_min_ms, duration_max_ms, duration_histogram)
         SELECT t.function_id, t.width, t.bucket, t.completed, t.failed, t.failed_by_kind, t.timed,
                t.duration_sum_ms, t.duration_min_ms, t.duration_max_ms, t.duration_histogram
           FROM jsonb_to_recordset($1) AS t(
                function_id uuid, width integer, bucket timestamptz, completed bigint, failed bigint,
                failed_by_kind jsonb, timed bigint, duration_sum_ms double precision,
                duration_min_ms double precision, duration_max_ms double precision,
                duration_histogram jsonb)
          -- A deleted function's finishes still count for the platform.
          WHERE t.function_id IS NULL OR EXISTS (SELECT 1 FROM functions f WHERE f.id = t.function_id)
         ON CONFLICT ON CONSTRAINT execution_rollups_key DO UPDATE SET
             completed = r.completed + EXCLUDED.completed,
             failed = r.failed + EXCLUDED.failed,
             failed_by_kind = projectnil_add_counts(r.failed_by_kind, EXCLUDED.failed_by_kind),
             timed = r.timed + EXCLUDED.timed,
             duration_sum_ms = r.duration_sum_ms + EXCLUDED.duration_sum_ms,
             duration_min_ms = least(r.duration_min_ms, EXCLUDED.duration_min_ms),
             duration_max_ms = greatest(r.duration_max_ms, EXCLUDED.duration_max_ms),
             duration_histogram = projectnil_add_counts(r.duration_histogram, EXCLUDED.duration_histogram)",
        vec![serde_json::Value::from(rows).into()],
    ))
    .await?;
    txn.commit().await?;
    Ok(staged.len())
}

/// Folds every second until `shutdown`, in every process (see the module
/// comment); a failed fold is logged and retried on the next tick.
pub fn spawn_folder(db: DatabaseConnection, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FOLD_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            loop {
                match fold_staged(&db).await {
                    Ok(n) if n as i64 == BATCH => continue,
                    Ok(_) => break,
                    Err(error) => {
                        tracing::warn!(%error, "stats.fold_failed");
                        break;
                    }
                }
            }
        }
    });
}
