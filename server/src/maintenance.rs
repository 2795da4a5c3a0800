//! Housekeeping of the tables that grow with use, done by one process at a
//! time however many run: it creates the daily partitions of `executions`
//! ahead of time, removes finished executions past
//! `PROJECTNIL_EXECUTION_RETENTION` (whole partitions are dropped; the old
//! rows of the one partition that straddles the cutoff, of a partition kept
//! for an unfinished execution, and any in the default partition, are
//! deleted in small batches) and statistics rollups past
//! `PROJECTNIL_STATS_RETENTION`. An execution that has not finished is never
//! removed, however old: what was accepted is not dropped.
//!
//! Every `serve` and `worker` offers each round; a session advisory lock on
//! a connection of the round's own lets one through, and is released when
//! that connection closes, even if the process dies mid-round. Waits for
//! table locks are capped (`lock_timeout`) so that maintenance never holds
//! up executions for long; a round that cannot get a lock tries next time.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use sea_orm::DatabaseConnection;
use sqlx::{Connection as _, PgConnection};
use tokio_util::sync::CancellationToken;

use crate::config::{Retention, RetentionSettings};

/// The advisory lock key of maintenance ("nilmaint").
const LOCK_KEY: i64 = 0x6e69_6c6d_6169_6e74;
/// Partitions created ahead of today.
const DAYS_AHEAD: i64 = 3;
/// Rows deleted per statement, so no statement holds locks for long.
const DELETE_BATCH: i64 = 10_000;
const PARTITION_PREFIX: &str = "executions_p";

/// What one round changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub partitions_created: i32,
    pub partitions_dropped: Vec<String>,
    pub executions_deleted: u64,
    pub rollups_deleted: u64,
}

impl Report {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Offers a round every `maintenance_interval_ms` (the first at once) until
/// `shutdown`.
pub fn spawn(db: DatabaseConnection, settings: RetentionSettings, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick =
            tokio::time::interval(Duration::from_millis(settings.maintenance_interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match round(&db, &settings).await {
                Ok(Some(report)) if !report.is_empty() => tracing::info!(
                    partitions_created = report.partitions_created,
                    partitions_dropped = ?report.partitions_dropped,
                    executions_deleted = report.executions_deleted,
                    rollups_deleted = report.rollups_deleted,
                    "maintenance.done"
                ),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "maintenance.failed"),
            }
        }
    });
}

/// One round, if no other process is doing one; `None` if one is.
pub async fn round(
    db: &DatabaseConnection,
    settings: &RetentionSettings,
) -> Result<Option<Report>, sqlx::Error> {
    // Detached from the pool: closing it releases the lock whatever happens.
    let mut conn = db.get_postgres_connection_pool().acquire().await?.detach();
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LOCK_KEY)
        .fetch_one(&mut conn)
        .await?;
    if !locked {
        conn.close().await.ok();
        return Ok(None);
    }
    let report = steps(&mut conn, settings).await;
    conn.close().await.ok();
    report.map(Some)
}

async fn steps(
    conn: &mut PgConnection,
    settings: &RetentionSettings,
) -> Result<Report, sqlx::Error> {
    sqlx::query("SET lock_timeout = '2s'")
        .execute(&mut *conn)
        .await?;
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *conn)
        .await?;
    let today = now.date_naive();
    let mut report = Report {
        partitions_created: sqlx::query_scalar(
            "SELECT projectnil_ensure_execution_partitions($1, $2)",
        )
        .bind(today)
        .bind(today + TimeDelta::days(DAYS_AHEAD))
        .fetch_one(&mut *conn)
        .await?,
        ..Report::default()
    };
    if let Some(cutoff) = cutoff(now, settings.execution_retention) {
        report.partitions_dropped = drop_expired_partitions(conn, cutoff).await?;
        report.executions_deleted = delete_in_batches(
            conn,
            "DELETE FROM executions WHERE (id, created_at) IN (
                 SELECT id, created_at FROM executions
                  WHERE created_at < $1 AND status IN ('COMPLETED', 'FAILED') LIMIT $2)",
            cutoff,
        )
        .await?;
    }
    if let Some(cutoff) = cutoff(now, settings.stats_retention) {
        report.rollups_deleted = delete_in_batches(
            conn,
            "DELETE FROM execution_rollups WHERE ctid IN (
                 SELECT ctid FROM execution_rollups WHERE bucket < $1 LIMIT $2)",
            cutoff,
        )
        .await?;
    }
    Ok(report)
}

/// What is older than this goes; `None` keeps everything (also a retention
/// longer than the calendar reaches back).
fn cutoff(now: DateTime<Utc>, retention: Retention) -> Option<DateTime<Utc>> {
    match retention {
        Retention::Forever => None,
        Retention::For(keep) => now.checked_sub_signed(TimeDelta::from_std(keep).ok()?),
    }
}

/// The day a daily partition holds, from its name.
fn partition_day(name: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(name.strip_prefix(PARTITION_PREFIX)?, "%Y%m%d").ok()
}

/// Drops every daily partition that ends at or before `cutoff`, unless it
/// still holds an execution that has not finished (a background run queued
/// for longer than the retention, say): that one is kept until its runs
/// end, and its finished rows go in batches meanwhile.
async fn drop_expired_partitions(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
) -> Result<Vec<String>, sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'executions'::regclass ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut dropped = Vec::new();
    for name in names {
        let Some(day) = partition_day(&name) else {
            continue;
        };
        let Some(end) = day.succ_opt().and_then(|d| d.and_hms_opt(0, 0, 0)) else {
            continue;
        };
        if end.and_utc() > cutoff {
            continue;
        }
        // The name comes from the catalog and matched the pattern above.
        // No new row lands in a past day's partition and a finished
        // execution never changes, so nothing unfinished can appear there
        // between the count and the drop.
        let unfinished: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM \"{name}\" WHERE status NOT IN ('COMPLETED', 'FAILED')"
        ))
        .fetch_one(&mut *conn)
        .await?;
        if unfinished > 0 {
            tracing::info!(partition = %name, unfinished, "maintenance.partition_kept");
            continue;
        }
        sqlx::query(&format!("DROP TABLE IF EXISTS \"{name}\""))
            .execute(&mut *conn)
            .await?;
        dropped.push(name);
    }
    Ok(dropped)
}

/// Runs `sql` (which deletes up to `$2` rows older than `$1`) until it
/// deletes fewer than a batch; returns how many.
async fn delete_in_batches(
    conn: &mut PgConnection,
    sql: &str,
    cutoff: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let mut deleted = 0;
    loop {
        let batch = sqlx::query(sql)
            .bind(cutoff)
            .bind(DELETE_BATCH)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        deleted += batch;
        if batch < DELETE_BATCH as u64 {
            return Ok(deleted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_give_their_day() {
        assert_eq!(
            partition_day("executions_p20261201"),
            NaiveDate::from_ymd_opt(2026, 12, 1)
        );
        assert_eq!(partition_day("executions_default"), None);
        assert_eq!(partition_day("executions_p2026"), None);
    }

    #[test]
    fn retention_off_has_no_cutoff() {
        let now = Utc::now();
        assert_eq!(cutoff(now, Retention::Forever), None);
        assert_eq!(
            cutoff(now, Retention::For(Duration::from_secs(3600))),
            Some(now - TimeDelta::hours(1))
        );
        // A retention beyond the calendar keeps everything rather than overflowing.
        assert_eq!(cutoff(now, Retention::For(Duration::MAX)), None);
        let eons = "1000000y".parse().unwrap();
        assert_eq!(cutoff(now, eons), None);
    }
}
