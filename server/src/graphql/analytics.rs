//! The statistics types of the GraphQL API (`Function.stats`,
//! `Query.executionStats`): thin views of [`crate::analytics`].

use async_graphql::{Context, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use sea_orm::ActiveEnum as _;

use super::error::ResultExt;
use super::types::ExecutionErrorKind;
use super::{AppState, DB_FIELD_COST};
use tokio::sync::OnceCell;

use crate::analytics::{Resolution, Scope, SeriesBuckets, Tally, Window, WindowTallies};
use crate::db::KeptConnections;

/// What finished in a window. Nothing is read until a field asks, and
/// then once per [`Resolution`]: the summary and every series of whole
/// hours share one read.
pub struct ExecutionStats {
    scope: Scope,
    window: Window,
    reads: KeptConnections,
    hours: OnceCell<WindowTallies>,
    minutes: OnceCell<WindowTallies>,
}

impl ExecutionStats {
    /// The statistics of `scope` between `since` and `until` (default: the
    /// last 24 hours).
    pub fn new(
        ctx: &Context<'_>,
        scope: Scope,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Self> {
        let window = Window::new(since, until, Utc::now()).api()?;
        Ok(Self {
            scope,
            window,
            reads: ctx.data_unchecked::<AppState>().reads.clone(),
            hours: OnceCell::new(),
            minutes: OnceCell::new(),
        })
    }

    async fn tallies(&self, resolution: Resolution) -> Result<&WindowTallies> {
        let cell = match resolution {
            Resolution::Hours => &self.hours,
            Resolution::Minutes => &self.minutes,
        };
        cell.get_or_try_init(|| {
            WindowTallies::read(&self.reads, self.scope, &self.window, resolution)
        })
        .await
        .api()
    }

    /// Everything that finished in the window.
    async fn total_tally(&self) -> Result<&Tally> {
        Ok(self.tallies(Resolution::Hours).await?.total())
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
    async fn total(&self) -> Result<i32> {
        Ok(count(self.total_tally().await?.total()))
    }

    async fn completed(&self) -> Result<i32> {
        Ok(count(self.total_tally().await?.completed))
    }

    async fn failed(&self) -> Result<i32> {
        Ok(count(self.total_tally().await?.failed))
    }

    /// completed / (completed + failed); null when nothing finished.
    async fn success_rate(&self) -> Result<Option<f64>> {
        Ok(self.total_tally().await?.success_rate())
    }

    /// null when nothing finished.
    async fn duration_ms(&self) -> Result<Option<DurationStats>> {
        Ok(duration_stats(self.total_tally().await?))
    }

    /// Most frequent first.
    async fn errors_by_kind(&self) -> Result<Vec<ErrorKindCount>> {
        let mut counts: Vec<ErrorKindCount> = self
            .total_tally()
            .await?
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
        Ok(counts)
    }

    /// Oldest first; bucketSeconds a multiple of 60 from 60 to 86400; at most 1000 points.
    #[graphql(complexity = "DB_FIELD_COST + child_complexity")]
    async fn series(&self, bucket_seconds: i32) -> Result<Vec<StatsPoint>> {
        let buckets = SeriesBuckets::new(&self.window, bucket_seconds).api()?;
        let points = self.tallies(buckets.resolution()).await?.series(&buckets);
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
