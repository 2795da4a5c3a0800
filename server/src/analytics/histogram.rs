//! A mergeable histogram of durations with logarithmic buckets (the DDSketch
//! construction): every bucket spans a factor of γ = (1 + α) / (1 − α), and a
//! quantile read from it is within α relative error of the exact one. The
//! rollups store it as `{"<bucket index>": count}`; this module is the one
//! place that knows the boundaries.

use std::collections::BTreeMap;

/// The relative error of every quantile: 2 %.
pub const RELATIVE_ERROR: f64 = 0.02;
/// The smallest duration told apart from zero: 1 µs.
const BASE_MS: f64 = 0.001;

fn gamma() -> f64 {
    (1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR)
}

/// Durations in milliseconds, counted per bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DurationHistogram {
    counts: BTreeMap<u32, u64>,
    count: u64,
    sum_ms: f64,
    min_ms: Option<f64>,
    max_ms: Option<f64>,
}

/// Bucket 0 holds everything up to [`BASE_MS`]; bucket i ≥ 1 holds
/// (BASE·γ^(i−1), BASE·γ^i].
fn bucket_of(ms: f64) -> u32 {
    if ms <= BASE_MS || !ms.is_finite() {
        return 0;
    }
    ((ms / BASE_MS).ln() / gamma().ln()).ceil().max(1.0) as u32
}

/// The value that stands for bucket `i`: within α of anything in it.
fn representative(i: u32) -> f64 {
    if i == 0 {
        return BASE_MS;
    }
    let g = gamma();
    BASE_MS * 2.0 * g.powi(i as i32) / (g + 1.0)
}

impl DurationHistogram {
    pub fn record(&mut self, ms: f64) {
        let ms = ms.max(0.0);
        *self.counts.entry(bucket_of(ms)).or_default() += 1;
        self.count += 1;
        self.sum_ms += ms;
        self.min_ms = Some(self.min_ms.map_or(ms, |min| min.min(ms)));
        self.max_ms = Some(self.max_ms.map_or(ms, |max| max.max(ms)));
    }

    /// A histogram as a rollup stores it.
    pub fn from_parts(
        counts: BTreeMap<u32, u64>,
        sum_ms: f64,
        min_ms: Option<f64>,
        max_ms: Option<f64>,
    ) -> Self {
        let count = counts.values().sum();
        Self {
            counts,
            count,
            sum_ms,
            min_ms,
            max_ms,
        }
    }

    pub fn merge(&mut self, other: &Self) {
        for (bucket, n) in &other.counts {
            *self.counts.entry(*bucket).or_default() += n;
        }
        self.count += other.count;
        self.sum_ms += other.sum_ms;
        self.min_ms = match (self.min_ms, other.min_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max_ms = match (self.max_ms, other.max_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum_ms(&self) -> f64 {
        self.sum_ms
    }

    pub fn min_ms(&self) -> Option<f64> {
        self.min_ms
    }

    pub fn max_ms(&self) -> Option<f64> {
        self.max_ms
    }

    pub fn mean_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_ms / self.count as f64)
    }

    /// `{"<bucket>": count}`, as the rollups store it.
    pub fn counts_json(&self) -> serde_json::Value {
        self.counts
            .iter()
            .map(|(bucket, n)| (bucket.to_string(), serde_json::Value::from(*n)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    /// Reads [`counts_json`](Self::counts_json) back; entries that are not
    /// a bucket and a count are ignored.
    pub fn parse_counts(json: &serde_json::Value) -> BTreeMap<u32, u64> {
        json.as_object()
            .into_iter()
            .flatten()
            .filter_map(|(bucket, n)| Some((bucket.parse().ok()?, n.as_u64()?)))
            .collect()
    }

    /// The nearest-rank `q` quantile (0 < q ≤ 1), within [`RELATIVE_ERROR`]
    /// of the exact one; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        // The ends are known exactly.
        if rank == self.count {
            return self.max_ms;
        }
        if rank == 1 {
            return self.min_ms;
        }
        let mut seen = 0;
        let bucket = self.counts.iter().find_map(|(bucket, n)| {
            seen += n;
            (seen >= rank).then_some(*bucket)
        })?;
        let estimate = representative(bucket);
        // The exact value lies within [min, max]; clamping only gets closer.
        Some(estimate.clamp(self.min_ms?, self.max_ms?))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    proptest! {
        #[test]
        fn quantiles_are_within_the_relative_error(
            durations in prop::collection::vec(0.0005f64..200_000.0, 1..400),
            q in 0.01f64..=1.0,
        ) {
            let mut histogram = DurationHistogram::default();
            for d in &durations {
                histogram.record(*d);
            }
            let mut sorted = durations.clone();
            sorted.sort_by(f64::total_cmp);
            let exact = exact_quantile(&sorted, q);
            let estimate = histogram.quantile(q).unwrap();
            if exact > BASE_MS {
                prop_assert!((estimate - exact).abs() <= RELATIVE_ERROR * exact * (1.0 + 1e-9),
                    "q={q} exact={exact} estimate={estimate}");
            } else {
                prop_assert!(estimate <= BASE_MS);
            }
        }

        #[test]
        fn merging_equals_recording_everything(
            a in prop::collection::vec(0.0f64..10_000.0, 0..100),
            b in prop::collection::vec(0.0f64..10_000.0, 0..100),
        ) {
            let (mut left, mut right, mut all) = Default::default();
            for d in &a { DurationHistogram::record(&mut left, *d); DurationHistogram::record(&mut all, *d); }
            for d in &b { DurationHistogram::record(&mut right, *d); DurationHistogram::record(&mut all, *d); }
            let mut merged: DurationHistogram = left;
            merged.merge(&right);
            prop_assert_eq!(&merged.counts, &all.counts);
            prop_assert_eq!(merged.count(), all.count());
            prop_assert_eq!(merged.min_ms(), all.min_ms());
            prop_assert_eq!(merged.max_ms(), all.max_ms());
        }
    }

    #[test]
    fn stored_counts_round_trip() {
        let mut histogram = DurationHistogram::default();
        for d in [0.0, 0.5, 1.0, 1.0, 250.0, 9_999.0] {
            histogram.record(d);
        }
        let counts = DurationHistogram::parse_counts(&histogram.counts_json());
        let back = DurationHistogram::from_parts(
            counts,
            histogram.sum_ms(),
            histogram.min_ms(),
            histogram.max_ms(),
        );
        assert_eq!(back, histogram);
        assert_eq!(back.quantile(1.0), Some(9_999.0));
        assert_eq!(DurationHistogram::default().quantile(0.5), None);
    }
}
