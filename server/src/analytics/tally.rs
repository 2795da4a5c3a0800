//! What finished in one bucket, or in a whole window once buckets are added up.

use std::collections::BTreeMap;

use super::DurationHistogram;

/// Finished executions: counts by status and by error kind, and durations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub completed: u64,
    pub failed: u64,
    /// Keyed by the kind's name (`TIMEOUT`, …), as the rollups store it.
    pub failed_by_kind: BTreeMap<String, u64>,
    /// Of the executions that ran (one cancelled while pending has no duration).
    pub durations: DurationHistogram,
}

impl Tally {
    pub fn total(&self) -> u64 {
        self.completed + self.failed
    }

    /// completed / (completed + failed); `None` when nothing finished.
    pub fn success_rate(&self) -> Option<f64> {
        let total = self.total();
        (total > 0).then(|| self.completed as f64 / total as f64)
    }

    pub fn add(&mut self, other: &Tally) {
        self.completed += other.completed;
        self.failed += other.failed;
        for (kind, n) in &other.failed_by_kind {
            *self.failed_by_kind.entry(kind.clone()).or_default() += n;
        }
        self.durations.merge(&other.durations);
    }

    /// `{"KIND": count}`, as the rollups store it.
    pub fn kinds_json(&self) -> serde_json::Value {
        self.failed_by_kind
            .iter()
            .map(|(kind, n)| (kind.clone(), serde_json::Value::from(*n)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    pub fn parse_kinds(json: &serde_json::Value) -> BTreeMap<String, u64> {
        json.as_object()
            .into_iter()
            .flatten()
            .filter_map(|(kind, n)| Some((kind.clone(), n.as_u64()?)))
            .collect()
    }
}
