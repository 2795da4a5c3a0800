//! Statistics queries: the rollup rows of a window and whatever is still
//! staged, read in one statement (so in one snapshot: a finish is either
//! staged or rolled up, never both or neither), added up here.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryResult, Statement, Value};
use serde::de::DeserializeOwned;
use sqlx::Row as _;
use sqlx::postgres::PgRow;
use sqlx::types::Json;

use super::{DurationHistogram, Resolution, Scope, SeriesBuckets, Tally, Window};

/// A rollup row, or a staged finish shaped like one (its `duration_ms` set
/// and no histogram), decoded into its tally as it is read.
struct TallyRow {
    bucket: DateTime<Utc>,
    tally: Tally,
}

/// Read by position, in the order [`rows`] selects: `bucket`, `completed`,
/// `failed`, `failed_by_kind`, `duration_sum_ms`, `duration_min_ms`,
/// `duration_max_ms`, `duration_histogram`, `duration_ms`. A day's window
/// is up to about 85 rollup rows, besides what is staged; read by name
/// (sea-orm's derive), each of their values cost a formatted column name
/// and a lookup, and each JSON object a `serde_json::Value` before the map
/// it becomes.
impl FromQueryResult for TallyRow {
    fn from_query_result(row: &QueryResult, _pre: &str) -> Result<Self, DbErr> {
        let row = row
            .try_as_pg_row()
            .ok_or_else(|| DbErr::Type("statistics are read from PostgreSQL rows".into()))?;
        let sum_ms: f64 = row.try_get(4).map_err(undecodable)?;
        let (min_ms, max_ms): (Option<f64>, Option<f64>) = (
            row.try_get(5).map_err(undecodable)?,
            row.try_get(6).map_err(undecodable)?,
        );
        let durations = match counts::<u32>(row, 7, DurationHistogram::parse_counts)? {
            Some(counts) => DurationHistogram::from_parts(counts, sum_ms, min_ms, max_ms),
            // A staged finish: one duration, or none (it never started).
            None => {
                let mut one = DurationHistogram::default();
                if let Some(ms) = row.try_get::<Option<f64>, _>(8).map_err(undecodable)? {
                    one.record(ms);
                }
                one
            }
        };
        let completed: i64 = row.try_get(1).map_err(undecodable)?;
        let failed: i64 = row.try_get(2).map_err(undecodable)?;
        Ok(Self {
            bucket: row.try_get(0).map_err(undecodable)?,
            tally: Tally {
                completed: completed.max(0) as u64,
                failed: failed.max(0) as u64,
                failed_by_kind: counts::<String>(row, 3, Tally::parse_kinds)?.unwrap_or_default(),
                durations,
            },
        })
    }
}

fn undecodable(e: sqlx::Error) -> DbErr {
    DbErr::Type(format!("a statistics row: {e}"))
}

/// A `{"key": count}` object of column `index` (`None` when NULL): parsed
/// straight into its map, or, should it hold anything but counts, through
/// `lenient`, which skips what is not a key and a count.
fn counts<K: DeserializeOwned + Ord>(
    row: &PgRow,
    index: usize,
    lenient: fn(&serde_json::Value) -> BTreeMap<K, u64>,
) -> Result<Option<BTreeMap<K, u64>>, DbErr> {
    if let Ok(counts) = row.try_get::<Option<Json<BTreeMap<K, u64>>>, _>(index) {
        return Ok(counts.map(|Json(counts)| counts));
    }
    let value: Option<serde_json::Value> = row.try_get(index).map_err(undecodable)?;
    Ok(value.as_ref().map(lenient))
}

/// What finished in a window, read once at one [`Resolution`]: a tally per
/// rollup row or staged finish, and their sum. A statistics request's
/// summary and its series (any number, when their points are whole hours)
/// are answered from one read, one statement, where each used to read the
/// window again.
#[derive(Debug)]
pub struct WindowTallies {
    resolution: Resolution,
    /// Each at the start of its row's minute or hour.
    parts: Vec<(DateTime<Utc>, Tally)>,
    total: Tally,
}

impl WindowTallies {
    pub async fn read(
        db: &impl ConnectionTrait,
        scope: Scope,
        window: &Window,
        resolution: Resolution,
    ) -> Result<Self, DbErr> {
        let rows = rows(db, scope, window, resolution).await?;
        let mut total = Tally::default();
        let parts = rows
            .into_iter()
            .map(|row| {
                total.add(&row.tally);
                (row.bucket, row.tally)
            })
            .collect();
        Ok(Self {
            resolution,
            parts,
            total,
        })
    }

    /// Everything that finished in the window.
    pub fn total(&self) -> &Tally {
        &self.total
    }

    /// What finished in each point of `buckets`, oldest first; every point
    /// is there, empty ones too. Read at `buckets.resolution()` or finer:
    /// an hour row cannot be split between points of minutes.
    pub fn series(&self, buckets: &SeriesBuckets) -> Vec<(DateTime<Utc>, Tally)> {
        debug_assert!(
            self.resolution == Resolution::Minutes || buckets.resolution() == Resolution::Hours,
            "hour rows read for points of minutes"
        );
        let mut points = vec![Tally::default(); buckets.points];
        for (bucket, tally) in &self.parts {
            if let Some(index) = buckets.index_of(*bucket) {
                points[index].add(tally);
            }
        }
        points
            .into_iter()
            .enumerate()
            .map(|(i, tally)| (buckets.start_of(i), tally))
            .collect()
    }
}

/// Hour rows for the window's whole hours (at [`Resolution::Hours`]),
/// minute rows for the rest, and staged finishes, of `scope`.
async fn rows(
    db: &impl ConnectionTrait,
    scope: Scope,
    window: &Window,
    resolution: Resolution,
) -> Result<Vec<TallyRow>, DbErr> {
    let (hours_start, hours_end) = match resolution {
        Resolution::Hours => window.whole_hours(),
        Resolution::Minutes => (window.end, window.end),
    };
    // Separate texts, so each scope's query uses the rollup key's index.
    let (rollup_scope, staged_scope, function_id) = match scope {
        Scope::Function(id) => ("function_id = $5", "function_id = $5", Some(id)),
        Scope::Platform => (
            "function_id IS NULL AND $5::uuid IS NULL",
            "$5::uuid IS NULL",
            None,
        ),
    };
    // One range of the rollup key per part, so each reads only its rows.
    let rollups = |width: u32, from: &str, to: &str| {
        format!(
            "SELECT bucket, completed, failed, failed_by_kind, duration_sum_ms, duration_min_ms,
                    duration_max_ms, duration_histogram, NULL::double precision AS duration_ms
               FROM execution_rollups
              WHERE {rollup_scope} AND width = {width} AND bucket >= {from} AND bucket < {to}"
        )
    };
    let (hours, head, tail) = (
        rollups(3600, "$3", "$4"),
        rollups(60, "$1", "$3"),
        rollups(60, "$4", "$2"),
    );
    let sql = format!(
        "{hours}
         UNION ALL {head}
         UNION ALL {tail}
         UNION ALL
         SELECT date_trunc('minute', finished_at), (status = 'COMPLETED')::int::bigint,
                (status = 'FAILED')::int::bigint,
                CASE WHEN error_kind IS NULL THEN '{{}}'::jsonb
                     ELSE jsonb_build_object(error_kind::text, 1) END,
                coalesce(duration_ms, 0), duration_ms, duration_ms, NULL::jsonb, duration_ms
           FROM execution_finishes
          WHERE {staged_scope} AND finished_at >= $1 AND finished_at < $2"
    );
    TallyRow::find_by_statement(Statement::from_sql_and_values(
        sea_orm::DatabaseBackend::Postgres,
        sql,
        vec![
            window.start.into(),
            window.end.into(),
            hours_start.into(),
            hours_end.into(),
            Value::from(function_id),
        ],
    ))
    .all(db)
    .await
}
