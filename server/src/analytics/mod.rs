//! Execution statistics: how many executions of a function (or of the whole
//! platform) finished in a window, how many failed and why, and how long they
//! took — at a cost that does not grow with the number of executions.
//!
//! A trigger stages every execution that reaches a final status in
//! `execution_finishes`, in the transaction that writes the status
//! (migration `m20261201_000010`). Every process folds staged rows into
//! `execution_rollups` ([`rollup`]): one row per function and one for the
//! platform, per minute and per hour, with counts by status and kind and a
//! [`DurationHistogram`]. A query reads the hour rows inside its window, the
//! minute rows at its edges and whatever is still staged, in one statement
//! ([`stats`]), so it is exact the moment an execution finishes. Windows are
//! widened to whole minutes.

mod histogram;
pub mod rollup;
mod stats;
mod tally;
mod window;

pub use histogram::DurationHistogram;
pub use stats::WindowTallies;
pub use tally::Tally;
pub use window::{Resolution, Scope, SeriesBuckets, Window};

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("{0}")]
    BadArgument(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}
