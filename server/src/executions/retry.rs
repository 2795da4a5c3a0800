//! Retries of status writes while the database is briefly unreachable (a
//! restart, a failover): giving up at once would leave the execution to
//! recovery, losing its real outcome. Only errors that say the database or the
//! connection is away are retried; a constraint violation or any other answer
//! of the database is final.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use sea_orm::{DbErr, RuntimeErr};

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

/// Whether `error` says the database was away rather than that it refused.
pub fn is_transient(error: &DbErr) -> bool {
    let sqlx_error = match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    match sqlx_error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| transient_sqlstate(&code)),
        _ => false,
    }
}

/// Connection exceptions (class 08), an administrator or crash shutdown
/// (57P01-57P03), too many connections, and serialization failures and
/// deadlocks (which succeed when tried again).
fn transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_outages_are_transient() {
        assert!(transient_sqlstate("08006"));
        assert!(transient_sqlstate("57P01"));
        assert!(transient_sqlstate("40001"));
        // check_violation, unique_violation, invalid text: the database answered.
        assert!(!transient_sqlstate("23514"));
        assert!(!transient_sqlstate("23505"));
        assert!(!transient_sqlstate("22P02"));
        assert!(is_transient(&DbErr::Conn(RuntimeErr::Internal(
            "gone".into()
        ))));
        assert!(!is_transient(&DbErr::RecordNotUpdated));
        assert!(!is_transient(&DbErr::Custom("refused".into())));
    }

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
