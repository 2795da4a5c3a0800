//! Retries of status writes while the database is briefly unreachable (a
//! restart, a failover): giving up at once would leave the execution to
//! recovery, losing its real outcome. Only errors that say the database or the
//! connection is away are retried; a constraint violation or any other answer
//! of the database is final.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use sea_orm::DbErr;

use crate::db::is_transient;

/// How long a write keeps being retried, tries included (each may wait for a
/// connection up to the pool's acquire timeout): 100 ms doubling to 2 s
/// between tries.
const PATIENCE: Duration = Duration::from_secs(30);

/// Runs `write` until it succeeds, fails for good, or [`PATIENCE`] runs out.
pub async fn transient<T, F, Fut>(what: &'static str, write: F) -> Result<T, DbErr>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DbErr>>,
{
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .without_max_times();
    let give_up = tokio::time::Instant::now() + PATIENCE;
    write
        .retry(backoff)
        .when(|error| is_transient(error) && tokio::time::Instant::now() < give_up)
        .notify(|error, delay| tracing::warn!(%error, ?delay, what, "execution.write_retry"))
        .await
}

#[cfg(test)]
mod tests {
    use sea_orm::RuntimeErr;

    use super::*;

    #[tokio::test]
    async fn a_refusal_is_not_retried_and_an_outage_is() {
        let mut calls = 0;
        let refused: Result<(), DbErr> = transient("test", || {
            calls += 1;
            async { Err(DbErr::Custom("check violation".into())) }
        })
        .await;
        assert!(refused.is_err());
        assert_eq!(calls, 1);

        let mut calls = 0;
        let recovered = transient("test", || {
            calls += 1;
            let attempt = calls;
            async move {
                if attempt < 3 {
                    Err(DbErr::Conn(RuntimeErr::Internal("connection reset".into())))
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;
        assert_eq!(recovered.unwrap(), 3);
    }
}
