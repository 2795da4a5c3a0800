//! Statistics queries: the rollup rows of a window and whatever is still
//! staged, read in one statement (so in one snapshot: a finish is either
//! staged or rolled up, never both or neither), added up here.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Statement, Value};

use super::{DurationHistogram, Resolution, Scope, SeriesBuckets, Tally, Window};

/// A rollup row, or a staged finish shaped like one (its `duration_ms` set
/// and no histogram).
#[derive(Debug, FromQueryResult)]
struct TallyRow {
    bucket: DateTime<Utc>,
    completed: i64,
    failed: i64,
    failed_by_kind: serde_json::Value,
    duration_sum_ms: f64,
    duration_min_ms: Option<f64>,
    duration_max_ms: Option<f64>,
    duration_histogram: Option<serde_json::Value>,
    duration_ms: Option<f64>,
}

impl TallyRow {
    fn tally(&self) -> Tally {
        let durations = match (&self.duration_histogram, self.duration_ms) {
            (Some(histogram), _) => DurationHistogram::from_parts(
                DurationHistogram::parse_counts(histogram),
                self.duration_sum_ms,
                self.duration_min_ms,
                self.duration_max_ms,
            ),
            (None, Some(ms)) => {
                let mut one = DurationHistogram::default();
                one.record(ms);
                one
            }
            (None, None) => DurationHistogram::default(),
        };
        Tally {
            completed: self.completed.max(0) as u64,
            failed: self.failed.max(0) as u64,
            failed_by_kind: Tally::parse_kinds(&self.failed_by_kind),
            durations,
        }
    }
}

/// What finished in a window, read once at one [`Resolution`]: a tally per
/// rollup row or staged finish, and their sum. A statistics request's
/// summary and its series (any number, when their points are whole hours)
/// are answered from one read; each read was a statement and about 80 rows.
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
            .iter()
            .map(|row| {
                let tally = row.tally();
                total.add(&tally);
                (row.bucket, tally)
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
