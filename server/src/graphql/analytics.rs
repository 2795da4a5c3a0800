//! The statistics types of the GraphQL API (`Function.stats`,
//! `Query.executionStats`): thin views of [`crate::analytics`].

use async_graphql::{Context, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use sea_orm::ActiveEnum as _;

use super::error::ResultExt;
use super::types::ExecutionErrorKind;
use super::{AppState, DB_FIELD_COST};
use crate::analytics::{self, Scope, SeriesBuckets, Tally, Window};

/// What finished in a window, with the window, for `series`.
pub struct ExecutionStats {
    scope: Scope,
    window: Window,
    tally: Tally,
}

impl ExecutionStats {
    /// The statistics of `scope` between `since` and `until` (default: the
    /// last 24 hours).
    pub async fn load(
        ctx: &Context<'_>,
        scope: Scope,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Self> {
        let window = Window::new(since, until, Utc::now()).api()?;
        let state = ctx.data_unchecked::<AppState>();
        let tally = analytics::summary(&state.reads, scope, &window)
            .await
            .api()?;
        Ok(Self {
            scope,
            window,
            tally,
        })
    }
}

fn count(n: u64) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

/// Durations of finished executions, in milliseconds.
#[derive(SimpleObject)]
pub struct DurationStats {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub mean: f64,
    pub max: f64,
}

#[derive(SimpleObject)]
pub struct ErrorKindCount {
    pub kind: ExecutionErrorKind,
    pub count: i32,
}

#[derive(SimpleObject)]
pub struct StatsPoint {
    pub at: DateTime<Utc>,
    pub total: i32,
    pub completed: i32,
    pub failed: i32,
    pub p95_ms: Option<f64>,
}

fn duration_stats(tally: &Tally) -> Option<DurationStats> {
    let durations = &tally.durations;
    Some(DurationStats {
        p50: durations.quantile(0.50)?,
        p95: durations.quantile(0.95)?,
        p99: durations.quantile(0.99)?,
        mean: durations.mean_ms()?,
        max: durations.max_ms()?,
    })
}

/// Executions that finished in a window (widened to whole minutes), by
/// status and kind, and how long they took; percentiles are within 2 % of
/// the exact ones.
#[Object]
impl ExecutionStats {
    async fn total(&self) -> i32 {
        count(self.tally.total())
    }

    async fn completed(&self) -> i32 {
        count(self.tally.completed)
    }

    async fn failed(&self) -> i32 {
        count(self.tally.failed)
    }

    /// completed / (completed + failed); null when nothing finished.
    async fn success_rate(&self) -> Option<f64> {
        self.tally.success_rate()
    }

    /// null when nothing finished.
    async fn duration_ms(&self) -> Option<DurationStats> {
        duration_stats(&self.tally)
    }

    /// Most frequent first.
    async fn errors_by_kind(&self) -> Vec<ErrorKindCount> {
        let mut counts: Vec<ErrorKindCount> = self
            .tally
            .failed_by_kind
            .iter()
            .filter_map(|(name, n)| {
                let kind = entity::ExecutionErrorKind::try_from_value(name).ok()?;
                Some(ErrorKindCount {
                    kind: kind.into(),
                    count: count(*n),
                })
            })
            .collect();
        counts.sort_by_key(|c| std::cmp::Reverse(c.count));
        counts
    }

    /// Oldest first; bucketSeconds a multiple of 60 from 60 to 86400; at most 1000 points.
    #[graphql(complexity = "DB_FIELD_COST + child_complexity")]
    async fn series(&self, ctx: &Context<'_>, bucket_seconds: i32) -> Result<Vec<StatsPoint>> {
        let buckets = SeriesBuckets::new(&self.window, bucket_seconds).api()?;
        let state = ctx.data_unchecked::<AppState>();
        let points = analytics::series(&state.reads, self.scope, &self.window, &buckets)
            .await
            .api()?;
        Ok(points
            .into_iter()
            .map(|(at, tally)| StatsPoint {
                at,
                total: count(tally.total()),
                completed: count(tally.completed),
                failed: count(tally.failed),
                p95_ms: tally.durations.quantile(0.95),
            })
            .collect())
    }
}
