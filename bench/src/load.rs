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

/// One turn of a figure measured in turns; its window is split into as
/// many as fit (at least one).
pub const TURN: Duration = Duration::from_secs(3);

/// Unrecorded requests at the start of a server's turn, on its clients'
/// fresh keep-alive connections.
pub const TURN_WARMUP: Duration = Duration::from_millis(250);

/// Two sides measured in turns: each side's turns combined, and the ratio
/// of each pair of turns (first ÷ second).
pub struct Turns {
    pub first: Throughput,
    pub second: Throughput,
    pub ratios: Vec<f64>,
}

/// `first` and `second` take turns of about [`TURN`] over `duration`, so
/// that the drift of a shared machine falls on both alike; each is called
/// with its turn's length. `names` label the per-turn log lines.
pub async fn in_turns(
    duration: Duration,
    names: [&str; 2],
    mut first: impl AsyncFnMut(Duration) -> anyhow::Result<Throughput>,
    mut second: impl AsyncFnMut(Duration) -> anyhow::Result<Throughput>,
) -> anyhow::Result<Turns> {
    let turns = (duration.as_secs() / TURN.as_secs()).max(1);
    let turn_length = duration / turns as u32;
    let (mut firsts, mut seconds, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for turn in 1..=turns {
        let (a, b) = (first(turn_length).await?, second(turn_length).await?);
        let ratio = a.per_second / b.per_second.max(f64::MIN_POSITIVE);
        eprintln!(
            "bench:   turn {turn}/{turns}: {} {:8.1}/s, {} {:8.1}/s ({ratio:.2}×)",
            names[0], a.per_second, names[1], b.per_second
        );
        firsts.push(a);
        seconds.push(b);
        ratios.push(ratio);
    }
    Ok(Turns {
        first: Throughput::combined(&firsts),
        second: Throughput::combined(&seconds),
        ratios,
    })
}
