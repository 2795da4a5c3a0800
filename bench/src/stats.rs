//! Latency histograms (HDR, microseconds) and their summaries.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// 1 µs to 10 minutes at 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(d.as_micros().clamp(1, u64::MAX as u128) as u64);
}

/// A latency distribution in milliseconds.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// Requests (or transactions) per second and their latency.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Throughput {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub latency: Latency,
    /// The latencies themselves, to combine the turns of one figure.
    #[serde(skip)]
    pub histogram: Option<Histogram<u64>>,
}

impl Throughput {
    /// The turns of one load as if measured in one window: the rate over
    /// their combined time, the latency over all their requests.
    pub fn combined(turns: &[Throughput]) -> Self {
        let mut histogram = histogram();
        for turn in turns {
            if let Some(h) = &turn.histogram {
                histogram.add(h).expect("same bounds");
            }
        }
        let seconds: f64 = turns.iter().map(|s| s.seconds).sum();
        let done: f64 = turns.iter().map(|s| s.per_second * s.seconds).sum();
        Self {
            requests: turns.iter().map(|s| s.requests).sum(),
            errors: turns.iter().map(|s| s.errors).sum(),
            seconds,
            per_second: done / seconds.max(f64::MIN_POSITIVE),
            latency: Latency::of(&histogram),
            histogram: Some(histogram),
        }
    }
}
