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
//!
//! // The same in steps, as the executions module does it: wait for a free
//! // wasm thread, load the module, record RUNNING, then run (cancellable).
//! let slot = runtime.reserve().await;
//! let module = runtime.load(key, || load_wasm(id)).await?;
//! let run = runtime.run(slot, &module, input, &cancel, CallStart::CallingThread).await?;
//! ```

mod abi;
mod cache;
mod engine;
mod error;
mod host;
pub mod imports;
mod invoke;
mod limits;
mod module;
mod pool;
mod snapshot;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;

use futures::FutureExt as _;
use sha2::{Digest as _, Sha256};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use wasmtime::Linker;

pub use cache::CacheStats;
pub use error::{RuntimeError, UserCodeError};
pub use invoke::Invocation;
pub use limits::ExecutionLimits;

use cache::ModuleCache;
use host::HostState;
use module::{Engines, PreparedModule};
use pool::WorkerPool;

/// The module `wasm` becomes once its start function has run, as executions
/// instantiate it (Wizer's snapshot, taken under `limits`); `Err` says why it
/// cannot be pre-initialised. For tools that measure or inspect what the
/// runtime runs; the runtime itself does this in [`Runtime::prepare`].
pub fn preinitialized_wasm(wasm: &[u8], limits: &ExecutionLimits) -> Result<Vec<u8>, String> {
    let engine = engine::init_engine(limits).map_err(|e| e.to_string())?;
    snapshot::preinitialize(&engine, limits, wasm)
}

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
    /// One permit per wasm thread: holding one means a thread is free for you.
    slots: Arc<Semaphore>,
}

/// Where a call starts ([`Runtime::run`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallStart {
    /// On the calling (async executor's) thread, until its first epoch
    /// tick: a short call, the usual one, costs no hand-off. For a caller
    /// that waits for the result.
    CallingThread,
    /// On the reserved wasm thread from the start: the executor's thread
    /// stays free for other work, at the price of one hand-off. For runs
    /// nobody waits on, such as background executions, where up to a tick
    /// of wasm on the executor's thread would hold up the database work of
    /// the runs beside it.
    WasmThread,
}

/// A wasm thread reserved for one execution ([`Runtime::reserve`]); it is free
/// again when the run ends, or when the slot is dropped unused.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

/// A compiled module ready to run ([`Runtime::load`]).
#[derive(Clone)]
pub struct LoadedModule(Arc<PreparedModule>);

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
        let limits_threads = limits.max_concurrency;
        Ok(Runtime {
            inner: Arc::new(Inner {
                engines,
                linker,
                limits,
                cache: ModuleCache::new(cache_bytes),
                pool,
                slots: Arc::new(Semaphore::new(limits_threads)),
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

    /// Run `handle(input)` on a fresh instance of the module for `key`:
    /// [`reserve`](Self::reserve), [`load`](Self::load) and [`run`](Self::run)
    /// in one call, not cancellable.
    ///
    /// `Ok` means the function ran; whether *it* succeeded is in
    /// [`Invocation::outcome`]. `Err` is reserved for platform failures.
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
        let slot = self.reserve().await;
        let module = self.load(key, load).await?;
        self.run(
            slot,
            &module,
            input,
            &CancellationToken::new(),
            CallStart::CallingThread,
        )
        .await
    }

    /// Waits until a wasm thread is free and reserves it. Waiters are served
    /// in order.
    pub async fn reserve(&self) -> Slot {
        let permit = Arc::clone(&self.inner.slots)
            .acquire_owned()
            .await
            .unwrap_or_else(|_| unreachable!("the slots semaphore is never closed"));
        Slot { _permit: permit }
    }

    /// Reserves a free wasm thread, if there is one now.
    pub fn try_reserve(&self) -> Option<Slot> {
        Arc::clone(&self.inner.slots)
            .try_acquire_owned()
            .ok()
            .map(|permit| Slot { _permit: permit })
    }

    /// Wasm threads not reserved right now.
    pub fn free_slots(&self) -> usize {
        self.inner.slots.available_permits()
    }

    /// The compiled module for `key`, from the cache or compiled now.
    ///
    /// `load` fetches the module's wasm bytes and is awaited only on a cache
    /// miss (at most once across concurrent misses for the same key). Its
    /// error becomes [`RuntimeError::Load`].
    pub async fn load<F, Fut, E>(
        &self,
        key: ModuleKey,
        load: F,
    ) -> Result<LoadedModule, RuntimeError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.module(key, load).await.map(LoadedModule)
    }

    /// Runs `handle(input)` on a fresh instance of `module` and frees `slot`
    /// when the call ends. With [`CallStart::CallingThread`] the call starts
    /// on the calling thread, so a short one (most are) costs no hand-off
    /// between threads; one still running at its first epoch tick (within
    /// [`EPOCH_TICK`](engine::EPOCH_TICK)) moves to the wasm thread `slot`
    /// reserved, so it never holds up the async executor for longer. With
    /// [`CallStart::WasmThread`] it runs there from the start. `cancel`
    /// stops the call within an epoch tick (a few ms); it then fails with
    /// [`UserCodeError::Cancelled`]. Dropping the future does not stop a call
    /// that moved; its timeout or `cancel` does, and its slot is free only
    /// then.
    pub async fn run(
        &self,
        slot: Slot,
        module: &LoadedModule,
        input: &str,
        cancel: &CancellationToken,
        start: CallStart,
    ) -> Result<Invocation, RuntimeError> {
        let clock = invoke::CpuClock::start();
        let call = invoke::Call {
            engine: self.inner.engines.execution.clone(),
            limits: self.inner.limits.clone(),
            module: Arc::clone(&module.0),
            input: input.to_owned(),
            cancel: cancel.clone(),
            clock: Arc::clone(&clock),
        };
        // A panic fails this call only, as on a wasm thread.
        let mut call = Box::pin(AssertUnwindSafe(invoke::invoke(call)).catch_unwind());
        let first = match start {
            CallStart::CallingThread => futures::poll!(call.as_mut()),
            CallStart::WasmThread => Poll::Pending,
        };
        let invocation = match first {
            Poll::Ready(invocation) => {
                drop(slot);
                invocation
            }
            // Not started here, or it yielded at its first tick: continue it
            // on its own thread, which holds the slot until the call ends,
            // even if this future is dropped before.
            Poll::Pending => {
                self.inner
                    .pool
                    .run(move || {
                        let _slot = slot;
                        clock.arrive();
                        futures::executor::block_on(call)
                    })
                    .await?
            }
        };
        invocation.map_err(|_| RuntimeError::Worker("the execution panicked".into()))?
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
        let digest: cache::ContentDigest = Sha256::digest(&wasm).into();
        if let Some(prepared) = cache.by_content(&digest) {
            cache.insert(key, Arc::clone(&prepared), generation);
            return Ok(prepared);
        }
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
            inner.cache.remember_content(digest, &prepared);
            inner.cache.insert(key, Arc::clone(&prepared), generation);
            Ok(prepared)
        })
        .await
        .map_err(|e| RuntimeError::Worker(format!("compile task failed: {e}")))?
    }
}
