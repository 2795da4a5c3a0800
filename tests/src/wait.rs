//! The one way a test waits for something: [`eventually!`](crate::eventually)
//! polls a check until it holds, and fails the test, naming what it waited
//! for, once a limit passes. No test synchronises with a fixed sleep.

use std::time::Duration;

/// How long a wait may take before the test fails: a hang guard, far above
/// what any wait needs on a loaded CI machine.
pub const WAIT_LIMIT: Duration = Duration::from_secs(120);

/// How often a check runs.
pub const POLL: Duration = Duration::from_millis(50);

/// Polls the async `check` until it gives `Some(value)` and returns the value;
/// fails the test after `within` (default [`WAIT_LIMIT`]).
///
/// ```ignore
/// let row = eventually!("the execution to finish", async { finished(&db).await });
/// eventually!("the worker to listen", Duration::from_secs(30), async { listening().await.then_some(()) });
/// ```
#[macro_export]
macro_rules! eventually {
    ($what:expr, $within:expr, $check:expr) => {{
        let deadline = tokio::time::Instant::now() + $within;
        loop {
            if let Some(value) = $check.await {
                break value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "gave up waiting: {}",
                $what
            );
            tokio::time::sleep($crate::wait::POLL).await;
        }
    }};
    ($what:expr, $check:expr) => {
        $crate::eventually!($what, $crate::wait::WAIT_LIMIT, $check)
    };
}
