//! Which revision of a function this process last found deployed: a hint
//! that saves the read before a synchronous run. It is never trusted on its
//! own: the write that records the run checks that the revision is still
//! the deployed one ([`super::store::record_run`]), and a stale hint is
//! forgotten when that check fails, so a deploy (on any replica) costs at
//! most one call that is run again on the queued path.

use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError};

use lru::LruCache;
use uuid::Uuid;

/// Functions remembered; the least recently run is forgotten first.
const CAPACITY: NonZeroUsize = NonZeroUsize::new(16_384).expect("non-zero");

pub(super) struct DeployedRevisions {
    revisions: Mutex<LruCache<Uuid, i64>>,
}

impl Default for DeployedRevisions {
    fn default() -> Self {
        Self {
            revisions: Mutex::new(LruCache::new(CAPACITY)),
        }
    }
}

impl DeployedRevisions {
    pub(super) fn get(&self, function_id: Uuid) -> Option<i64> {
        self.lock().get(&function_id).copied()
    }

    pub(super) fn remember(&self, function_id: Uuid, revision: i64) {
        self.lock().put(function_id, revision);
    }

    pub(super) fn forget(&self, function_id: Uuid) {
        self.lock().pop(&function_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<Uuid, i64>> {
        self.revisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_replaces_and_forgets() {
        let deployed = DeployedRevisions::default();
        let id = Uuid::new_v4();
        assert_eq!(deployed.get(id), None);
        deployed.remember(id, 1);
        deployed.remember(id, 3);
        assert_eq!(deployed.get(id), Some(3));
        deployed.forget(id);
        assert_eq!(deployed.get(id), None);
    }

    #[test]
    fn is_bounded() {
        let deployed = DeployedRevisions::default();
        let first = Uuid::new_v4();
        deployed.remember(first, 1);
        for _ in 0..CAPACITY.get() {
            deployed.remember(Uuid::new_v4(), 1);
        }
        assert_eq!(deployed.get(first), None);
        assert_eq!(deployed.lock().len(), CAPACITY.get());
    }
}
