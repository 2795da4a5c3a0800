//! Execution runtime: runs users' compiled AssemblyScript functions
//! (`export function handle(input: string): string`, JSON text in and out)
//! inside wasmtime. It owns the shared engine and its epoch ticker, the
//! compiled-module cache, the pre-initialisation (snapshot) of modules, the
//! host imports AssemblyScript needs, the string ABI, the resource limits
//! (time, memory, stack, tables, output and log size), the threads wasm runs
//! on, and the mapping of every failure to either a platform
//! [`RuntimeError`] or a user-facing [`UserCodeError`]. Every execution gets
//! a fresh instance, so executions never see each other's state.
//!
//! ```ignore
//! let runtime = Runtime::new(ExecutionLimits::default(), 256 << 20)?;
//! runtime.prepare(key, &wasm).await?;                        // when a function turns READY
//! let run = runtime.execute(key, || load_wasm(id), r#"{"a":5,"b":3}"#).await?;
//! assert_eq!(run.outcome?, serde_json::json!({"sum": 8}));
//! ```

mod abi;
mod cache;
mod engine;
mod error;
mod host;
mod invoke;
mod limits;
mod module;
mod pool;
mod snapshot;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;

use wasmtime::Linker;

pub use cache::CacheStats;
pub use error::{RuntimeError, UserCodeError};
pub use invoke::Invocation;
pub use limits::ExecutionLimits;

use cache::ModuleCache;
use host::HostState;
use module::{Engines, PreparedModule};
use pool::WorkerPool;

/// Identifies one compiled revision of a function.
#[derive(Clone, Copy, Hash, Eq, PartialEq, Debug)]
pub struct ModuleKey {
    pub function_id: uuid::Uuid,
    pub revision: i64,
}

/// Handle to the runtime; cheap to clone. All clones share one execution
/// engine (plus a small on-demand engine used only to pre-initialise
/// modules, so that never takes a pool slot from an execution), the module
/// cache and the worker threads, which stop once the last clone is dropped.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engines: Engines,
    linker: Linker<HostState>,
    limits: ExecutionLimits,
    cache: ModuleCache,
    pool: WorkerPool,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("limits", &self.inner.limits)
            .field("cache", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Build the engines, start the epoch ticker and the wasm worker threads.
    /// `cache_bytes` bounds the compiled-module cache.
    pub fn new(limits: ExecutionLimits, cache_bytes: usize) -> Result<Runtime, RuntimeError> {
        if limits.timeout.is_zero() || limits.max_concurrency == 0 || limits.max_stack_bytes == 0 {
            return Err(RuntimeError::Engine(
                "timeout, max_concurrency and max_stack_bytes must be non-zero".into(),
            ));
        }
        let engines = Engines {
            execution: engine::execution_engine(&limits, engine::PoolTuning::default())?,
            init: engine::init_engine(&limits)?,
        };
        engine::spawn_epoch_ticker(&[&engines.execution, &engines.init])?;
        let linker = host::linker(&engines.execution)
            .map_err(|e| RuntimeError::Engine(error::describe(&e)))?;
        let pool = WorkerPool::new(limits.max_concurrency, limits.max_stack_bytes)?;
        Ok(Runtime {
            inner: Arc::new(Inner {
                engines,
                linker,
                limits,
                cache: ModuleCache::new(cache_bytes),
                pool,
            }),
        })
    }

    pub fn limits(&self) -> &ExecutionLimits {
        &self.inner.limits
    }

    /// Compile and cache `wasm` under `key` (pre-initialising it when
    /// possible); a no-op when already cached. The server calls this when a
    /// function turns READY, so the first execution finds it warm. Compiling
    /// runs on tokio's blocking pool.
    pub async fn prepare(&self, key: ModuleKey, wasm: &[u8]) -> Result<(), RuntimeError> {
        self.module(key, || async { Ok::<_, RuntimeError>(wasm.to_vec()) })
            .await
            .map(drop)
    }

    /// Whether `key` is compiled and cached (does not count as a hit).
    pub fn is_cached(&self, key: ModuleKey) -> bool {
        self.inner.cache.peek(key).is_some()
    }

    /// Run `handle(input)` on a fresh instance of the module for `key`.
    ///
    /// `load` fetches the module's wasm bytes and is awaited only on a cache
    /// miss (at most once across concurrent misses for the same key). Its
    /// error becomes [`RuntimeError::Load`].
    ///
    /// `Ok` means the function ran; whether *it* succeeded is in
    /// [`Invocation::outcome`]. `Err` is reserved for platform failures.
    /// The call waits for a free worker when `max_concurrency` executions are
    /// already running. Dropping the future does not stop a running
    /// execution; its timeout does.
    pub async fn execute<F, Fut, E>(
        &self,
        key: ModuleKey,
        load: F,
        input: &str,
    ) -> Result<Invocation, RuntimeError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let module = self.module(key, load).await?;
        let engine = self.inner.engines.execution.clone();
        let limits = self.inner.limits.clone();
        let input = input.to_owned();
        self.inner
            .pool
            .run(move || invoke::invoke(&engine, &limits, &module, &input))
            .await?
    }

    /// Whether the cached module for `key` had its start function
    /// snapshotted away (see the `snapshot` module); `None` when not cached.
    pub fn is_preinitialized(&self, key: ModuleKey) -> Option<bool> {
        self.inner
            .cache
            .peek(key)
            .map(|module| module.preinitialized)
    }

    /// Drop every cached revision of `function_id`; a compile of it that is
    /// in flight will not be cached either.
    pub fn invalidate(&self, function_id: uuid::Uuid) {
        self.inner.cache.remove_function(function_id);
    }

    pub fn stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }

    /// The cached module for `key`, loading and compiling it on a miss.
    async fn module<F, Fut, E>(
        &self,
        key: ModuleKey,
        load: F,
    ) -> Result<Arc<PreparedModule>, RuntimeError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let cache = &self.inner.cache;
        if let Some(module) = cache.get(key) {
            return Ok(module);
        }
        let key_lock = cache.key_lock(key);
        let _compiling = key_lock.mutex().lock().await;
        if let Some(module) = cache.peek(key) {
            return Ok(module);
        }
        let generation = cache.generation();
        let wasm = load().await.map_err(|e| RuntimeError::Load(e.into()))?;
        let inner = Arc::clone(&self.inner);
        // Caching inside the task keeps the compile even if this future is
        // dropped before it finishes.
        tokio::task::spawn_blocking(move || {
            let prepared = Arc::new(module::prepare(
                &inner.engines,
                &inner.linker,
                &inner.limits,
                &wasm,
                true,
            )?);
            inner.cache.insert(key, Arc::clone(&prepared), generation);
            Ok(prepared)
        })
        .await
        .map_err(|e| RuntimeError::Worker(format!("compile task failed: {e}")))?
    }
}
