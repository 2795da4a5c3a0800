//! A closed-loop load: N clients, each with its own keep-alive connection,
//! sending one request after another for a bounded time.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::gql;
use crate::stats::{self, Latency, Throughput};

/// No client sends more than this many requests in one level.
const MAX_REQUESTS_PER_CLIENT: u64 = 2_000_000;

/// Runs `request` from `clients` tasks for `warmup` (not recorded) then
/// `duration`; a request counts when it both starts and ends in the measured
/// window.
pub async fn closed_loop<F, Fut>(
    base: &gql::Client,
    clients: usize,
    warmup: Duration,
    duration: Duration,
    request: F,
) -> anyhow::Result<Throughput>
where
    F: Fn(gql::Client) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let start = Instant::now() + warmup;
    let end = start + duration;
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let client = base.fresh();
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut histogram = stats::histogram();
            let mut errors = 0u64;
            let mut first_error = None;
            for _ in 0..MAX_REQUESTS_PER_CLIENT {
                let began = Instant::now();
                if began >= end {
                    break;
                }
                let outcome = request(client.clone()).await;
                let finished = Instant::now();
                let counted = began >= start && finished <= end;
                match outcome {
                    Ok(()) if counted => stats::record(&mut histogram, finished - began),
                    Ok(()) => {}
                    Err(error) => {
                        if counted {
                            errors += 1;
                        }
                        first_error.get_or_insert(error.to_string());
                        // Do not spin on a broken server.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (histogram, errors, first_error)
        }));
    }
    let mut histogram = stats::histogram();
    let mut errors = 0;
    for task in tasks {
        let (h, e, first_error) = task.await?;
        histogram.add(&h).expect("same bounds");
        errors += e;
        if let Some(error) = first_error {
            eprintln!("bench:   error from a client: {error}");
        }
    }
    let seconds = duration.as_secs_f64();
    Ok(Throughput {
        requests: histogram.len(),
        errors,
        seconds,
        per_second: histogram.len() as f64 / seconds,
        latency: Latency::of(&histogram),
        histogram: Some(histogram),
    })
}
