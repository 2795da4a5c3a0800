//! Compiled modules, least-recently-used first out, bounded by bytes.
//!
//! Entries are per function revision, but the compiled module is shared by
//! content: functions deployed from the same source (a content-cache hit of
//! the compiler, a template, a rollback) get the module compiled for the
//! first of them instead of compiling it again, which cost a core for tens
//! of milliseconds per deploy (BENCHMARKS.md). A shared module counts
//! against the budget once per entry, so the budget stays an upper bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use lru::LruCache;

use super::ModuleKey;
use super::module::PreparedModule;

/// Counters and sizes of the module cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Estimated bytes held by cached modules (see [`PreparedModule::size_bytes`]).
    pub bytes: usize,
    pub entries: usize,
    pub capacity_bytes: usize,
    pub evictions: u64,
}

pub(crate) struct ModuleCache {
    inner: Mutex<Inner>,
    /// One lock per key being compiled, so concurrent misses on the same
    /// function load and compile it once.
    in_flight: Mutex<HashMap<ModuleKey, Arc<tokio::sync::Mutex<()>>>>,
}

/// Digest of a module's wasm bytes.
pub(crate) type ContentDigest = [u8; 32];

struct Inner {
    entries: LruCache<ModuleKey, Arc<PreparedModule>>,
    /// Modules by the digest of the wasm they were compiled from, while any
    /// entry (or a running execution) still holds them.
    by_content: HashMap<ContentDigest, Weak<PreparedModule>>,
    bytes: usize,
    capacity: usize,
    hits: u64,
    misses: u64,
    evictions: u64,
    /// Bumped by every invalidation; a compile that started before one must
    /// not put its (possibly stale) result into the cache.
    generation: u64,
}

/// Poisoning only means another thread panicked mid-update of plain
/// counters and an LRU; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ModuleCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                entries: LruCache::unbounded(),
                by_content: HashMap::new(),
                bytes: 0,
                capacity,
                hits: 0,
                misses: 0,
                evictions: 0,
                generation: 0,
            }),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// Look up and count a hit or a miss.
    pub(crate) fn get(&self, key: ModuleKey) -> Option<Arc<PreparedModule>> {
        let mut inner = lock(&self.inner);
        let found = inner.entries.get(&key).cloned();
        if found.is_some() {
            inner.hits += 1;
        } else {
            inner.misses += 1;
        }
        found
    }

    /// Look up without counting or touching recency (after waiting for
    /// another task's compile, and for `is_cached`).
    pub(crate) fn peek(&self, key: ModuleKey) -> Option<Arc<PreparedModule>> {
        lock(&self.inner).entries.peek(&key).cloned()
    }

    pub(crate) fn generation(&self) -> u64 {
        lock(&self.inner).generation
    }

    /// The module compiled from the wasm with this digest, if one is alive.
    pub(crate) fn by_content(&self, digest: &ContentDigest) -> Option<Arc<PreparedModule>> {
        lock(&self.inner)
            .by_content
            .get(digest)
            .and_then(Weak::upgrade)
    }

    /// Remembers `module` as compiled from the wasm with `digest`.
    pub(crate) fn remember_content(&self, digest: ContentDigest, module: &Arc<PreparedModule>) {
        let mut inner = lock(&self.inner);
        // Forget modules nobody holds any more, so the index stays about as
        // large as the cache.
        if inner.by_content.len() > 2 * inner.entries.len() + 16 {
            inner
                .by_content
                .retain(|_, module| module.strong_count() > 0);
        }
        inner.by_content.insert(digest, Arc::downgrade(module));
    }

    /// Insert unless an invalidation happened since `generation`. A module
    /// larger than the whole cache is used once and not kept.
    pub(crate) fn insert(&self, key: ModuleKey, module: Arc<PreparedModule>, generation: u64) {
        let mut inner = lock(&self.inner);
        if inner.generation != generation || module.size_bytes > inner.capacity {
            return;
        }
        let size = module.size_bytes;
        if let Some(old) = inner.entries.put(key, module) {
            inner.bytes -= old.size_bytes;
        }
        inner.bytes += size;
        while inner.bytes > inner.capacity {
            let Some((_, evicted)) = inner.entries.pop_lru() else {
                break;
            };
            inner.bytes -= evicted.size_bytes;
            inner.evictions += 1;
        }
    }

    pub(crate) fn remove_function(&self, function_id: uuid::Uuid) {
        let mut inner = lock(&self.inner);
        inner.generation += 1;
        let doomed: Vec<ModuleKey> = inner
            .entries
            .iter()
            .map(|(key, _)| *key)
            .filter(|key| key.function_id == function_id)
            .collect();
        for key in doomed {
            if let Some(module) = inner.entries.pop(&key) {
                inner.bytes -= module.size_bytes;
            }
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let inner = lock(&self.inner);
        CacheStats {
            hits: inner.hits,
            misses: inner.misses,
            bytes: inner.bytes,
            entries: inner.entries.len(),
            capacity_bytes: inner.capacity,
            evictions: inner.evictions,
        }
    }

    /// The lock serialising loads/compiles of `key`; forgotten again when
    /// the last holder drops it.
    pub(crate) fn key_lock(&self, key: ModuleKey) -> KeyLock<'_> {
        let mutex = lock(&self.in_flight).entry(key).or_default().clone();
        KeyLock {
            cache: self,
            key,
            mutex,
        }
    }
}

pub(crate) struct KeyLock<'a> {
    cache: &'a ModuleCache,
    key: ModuleKey,
    mutex: Arc<tokio::sync::Mutex<()>>,
}

impl KeyLock<'_> {
    pub(crate) fn mutex(&self) -> &tokio::sync::Mutex<()> {
        &self.mutex
    }
}

impl Drop for KeyLock<'_> {
    fn drop(&mut self) {
        let mut in_flight = lock(&self.cache.in_flight);
        // Only the map and this handle left: nobody is waiting on it.
        if let Some(current) = in_flight.get(&self.key)
            && Arc::ptr_eq(current, &self.mutex)
            && Arc::strong_count(&self.mutex) <= 2
        {
            in_flight.remove(&self.key);
        }
    }
}
