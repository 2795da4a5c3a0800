//! One execution: a fresh store and instance, the string ABI around
//! `handle`, and the translation of every failure into a user-facing error.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wasmtime::{
    AsContextMut, Engine, Extern, Instance, ModuleExport, Store, Trap, TypedFunc, UpdateDeadline,
    WasmParams, WasmResults,
};

use super::abi::{self, STRING_CLASS_ID, StringError};
use super::error::{RuntimeError, UserCodeError, describe, trap_message};
use super::host::{AbortInfo, HostState, Stop};
use super::limits::ExecutionLimits;
use super::module::PreparedModule;
use super::snapshot::ModuleFacts;

/// How much of a non-JSON result is quoted back to the user.
const PREVIEW_CHARS: usize = 100;

/// The result of running a function once.
#[derive(Debug)]
pub struct Invocation {
    /// The parsed JSON the function returned, or why it failed.
    pub outcome: Result<serde_json::Value, UserCodeError>,
    /// Lines captured from `trace` and `console.*`, also on failure.
    pub logs: Vec<String>,
    /// Wall time of instantiation plus the call (not time spent queued).
    pub duration: Duration,
}

enum Failure {
    Wasm(wasmtime::Error),
    User(UserCodeError),
    Platform(RuntimeError),
}

impl From<wasmtime::Error> for Failure {
    fn from(err: wasmtime::Error) -> Self {
        Failure::Wasm(err)
    }
}

/// CPU time consumed so far by the calling thread (user and system).
fn thread_cpu_time() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

/// The CPU time one call has used, across the (at most two) threads it runs
/// on: the caller's, until its first epoch tick, and a wasm thread's after
/// that ([`super::Runtime::run`]). A wasm thread's share is read from its own
/// CPU clock, so time it waits for a core is not the function's. The
/// caller's share, at most one tick, is measured by the wall clock instead,
/// an upper bound of its CPU time: reading a thread's CPU clock is a system
/// call (it took 6 % of a short call, BENCHMARKS.md), and most calls are over
/// within that tick, so they never read it.
#[derive(Debug)]
pub(crate) struct CpuClock {
    /// When the call started, on the caller's thread.
    started: Instant,
    /// Nanoseconds used on threads the call has left.
    earlier: AtomicU64,
    /// The current thread's CPU clock when the call arrived on it;
    /// [`ON_CALLER`] while it is still on the thread it started on.
    arrived: AtomicU64,
}

/// [`CpuClock::arrived`] before the call has left the caller's thread.
const ON_CALLER: u64 = u64::MAX;

impl CpuClock {
    pub(crate) fn start() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            earlier: AtomicU64::new(0),
            arrived: AtomicU64::new(ON_CALLER),
        })
    }

    /// Call on the thread the call runs on.
    fn spent(&self) -> Duration {
        let here = match self.arrived.load(Ordering::Relaxed) {
            ON_CALLER => nanos(self.started.elapsed()),
            arrived => nanos(thread_cpu_time()).saturating_sub(arrived),
        };
        Duration::from_nanos(self.earlier.load(Ordering::Relaxed).saturating_add(here))
    }

    /// The call moves on from this thread: bank what it used here.
    fn leave(&self) {
        let spent = nanos(self.spent());
        self.earlier.store(spent, Ordering::Relaxed);
        // Should it be resumed here after all, it goes on from now.
        self.arrive();
    }

    /// The call continues on this thread.
    pub(crate) fn arrive(&self) {
        self.arrived
            .store(nanos(thread_cpu_time()), Ordering::Relaxed);
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// What one call needs, owned, so the call can move between threads.
pub(crate) struct Call {
    pub(crate) engine: Engine,
    pub(crate) limits: ExecutionLimits,
    pub(crate) module: Arc<PreparedModule>,
    pub(crate) input: String,
    pub(crate) cancel: CancellationToken,
    pub(crate) clock: Arc<CpuClock>,
}

/// Runs `handle(input)` on a fresh instance of the module. Wasm runs on a
/// fiber (its own stack, sized for the wasm stack limit), so the call can
/// start on whatever thread polls it. At its first epoch tick the call
/// yields once, so a caller can move a call that is not over by then to a
/// thread of its own; it never yields again. At every tick it is stopped
/// when `cancel` fired or when it has used `limits.timeout` of CPU time.
pub(crate) async fn invoke(call: Call) -> Result<Invocation, RuntimeError> {
    let Call {
        engine,
        limits,
        module,
        input,
        cancel,
        clock,
    } = call;
    let started = Instant::now();
    let mut store = Store::new(&engine, HostState::new(&limits));
    store.limiter(|state| &mut state.limiter);
    let budget = limits.timeout;
    let mut yielded = false;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |mut context| {
        let stop = if cancel.is_cancelled() {
            Stop::Cancelled
        } else if clock.spent() >= budget {
            Stop::Timeout
        } else if !yielded && context.data().on_fiber {
            yielded = true;
            clock.leave();
            return Ok(UpdateDeadline::Yield(1));
        } else {
            return Ok(UpdateDeadline::Continue(1));
        };
        context.data_mut().stopped = Some(stop);
        Ok(UpdateDeadline::Interrupt)
    });

    let result = run(&mut store, &module, &limits, &input).await;
    let outcome = match result {
        Ok(value) => Ok(value),
        Err(Failure::User(err)) => Err(err),
        Err(Failure::Platform(err)) => return Err(err),
        Err(Failure::Wasm(err)) => Err(classify(&err, store.data(), &limits, &module.facts)?),
    };
    let logs = store.data_mut().logs.take();
    let duration = started.elapsed();
    drop(store);
    Ok(Invocation {
        outcome,
        logs,
        duration,
    })
}

/// Runs one call to its end on the calling thread (tests and measurements).
#[cfg(test)]
pub(crate) fn invoke_here(
    engine: &Engine,
    limits: &ExecutionLimits,
    module: &Arc<PreparedModule>,
    input: &str,
) -> Result<Invocation, RuntimeError> {
    futures::executor::block_on(invoke(Call {
        engine: engine.clone(),
        limits: limits.clone(),
        module: Arc::clone(module),
        input: input.to_owned(),
        cancel: CancellationToken::new(),
        clock: CpuClock::start(),
    }))
}

fn typed<P: WasmParams, R: WasmResults>(
    store: &mut Store<HostState>,
    instance: &Instance,
    export: &ModuleExport,
) -> Result<TypedFunc<P, R>, Failure> {
    instance
        .get_module_export(store.as_context_mut(), export)
        .and_then(Extern::into_func)
        .ok_or_else(|| Failure::Platform(RuntimeError::Instantiate("export vanished".into())))?
        .typed::<P, R>(&*store)
        .map_err(|e| Failure::Platform(RuntimeError::Instantiate(describe(&e))))
}

async fn run(
    store: &mut Store<HostState>,
    module: &PreparedModule,
    limits: &ExecutionLimits,
    input: &str,
) -> Result<serde_json::Value, Failure> {
    let exports = &module.exports;
    let instance = module.pre.instantiate_async(&mut *store).await?;
    let memory = instance
        .get_module_export(store.as_context_mut(), &exports.memory)
        .and_then(Extern::into_memory)
        .ok_or_else(|| {
            Failure::Platform(RuntimeError::Instantiate("memory export vanished".into()))
        })?;
    let new = typed::<(i32, i32), i32>(store, &instance, &exports.new)?;
    let pin = typed::<i32, i32>(store, &instance, &exports.pin)?;
    let handle = typed::<i32, i32>(store, &instance, &exports.handle)?;

    let byte_len = abi::utf16_byte_len(input);
    // An input too large to even address can only end in the memory limit.
    let byte_len_i32 = i32::try_from(byte_len).map_err(|_| {
        Failure::User(UserCodeError::MemoryLimit {
            mb: limits.memory_limit_mib(),
        })
    })?;
    let ptr = new
        .call_async(&mut *store, (byte_len_i32, STRING_CLASS_ID))
        .await?;
    abi::write_utf16(memory.data_mut(&mut *store), ptr as u32, input, byte_len).ok_or_else(
        || {
            Failure::User(UserCodeError::Trap(
                "__new returned memory outside the module's memory".into(),
            ))
        },
    )?;
    // `__pin` only links the object into the pinned set (it cannot run user
    // code, unlike `__new`, whose GC step may run a `__finalize`): called
    // directly, it saves setting up a fiber.
    store.data_mut().on_fiber = false;
    pin.call(&mut *store, ptr)?;
    store.data_mut().on_fiber = true;
    let out = handle.call_async(&mut *store, ptr).await?;
    let (text, lone_surrogate) =
        read_output(memory.data(&*store), out as u32, limits.max_output_bytes)
            .map_err(Failure::User)?;
    // No `__unpin`: the instance is dropped with the store right after.

    let output: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
        Failure::User(match lone_surrogate {
            Some(index) => UserCodeError::InvalidUtf16 { index },
            None => UserCodeError::InvalidJson {
                preview: preview(&text),
            },
        })
    })?;
    if crate::storable::contains_nul(&output) {
        return Err(Failure::User(UserCodeError::OutputHasNul));
    }
    Ok(output)
}

/// The returned JSON text (see [`abi::decode_json_text`]) and the index of
/// its first lone surrogate, if any.
fn read_output(
    memory: &[u8],
    ptr: u32,
    limit: usize,
) -> Result<(String, Option<usize>), UserCodeError> {
    let bytes = abi::string_bytes(memory, ptr).map_err(|e| {
        UserCodeError::InvalidReturn(match e {
            StringError::Null => "null".into(),
            StringError::OutOfBounds | StringError::OddLength => "pointer outside of memory".into(),
        })
    })?;
    if abi::class_id(memory, ptr) != Some(STRING_CLASS_ID as u32) {
        return Err(UserCodeError::InvalidReturn("not a string".into()));
    }
    // Every UTF-16 unit is at least one UTF-8 byte: too many units is too
    // large without decoding anything.
    if bytes.len() / 2 > limit {
        return Err(UserCodeError::OutputTooLarge {
            bytes: abi::utf8_len(bytes),
            limit,
        });
    }
    let (text, lone_surrogate) = abi::decode_json_text(bytes);
    if text.len() > limit {
        return Err(UserCodeError::OutputTooLarge {
            bytes: text.len(),
            limit,
        });
    }
    Ok((text, lone_surrogate))
}

fn preview(text: &str) -> String {
    let mut chars = text.chars();
    let mut head: String = chars.by_ref().take(PREVIEW_CHARS).collect();
    if chars.next().is_some() {
        head.push('…');
    }
    head
}

/// Map a wasmtime failure (trap, abort, refused instantiation) to the user's
/// error, or to a platform error when the user's code is not to blame.
fn classify(
    err: &wasmtime::Error,
    state: &HostState,
    limits: &ExecutionLimits,
    facts: &ModuleFacts,
) -> Result<UserCodeError, RuntimeError> {
    let denied = state.limiter.memory_denied();
    let memory_limit = UserCodeError::MemoryLimit {
        mb: limits.memory_limit_mib(),
    };
    if let Some(trap) = err.downcast_ref::<Trap>() {
        return Ok(match trap {
            Trap::Interrupt if state.stopped == Some(Stop::Cancelled) => UserCodeError::Cancelled,
            Trap::Interrupt => UserCodeError::Timeout {
                ms: u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX),
            },
            Trap::StackOverflow => UserCodeError::StackOverflow,
            // AssemblyScript answers a refused memory.grow with
            // `unreachable` (or a failed bounds check further on).
            _ if denied => memory_limit,
            other => trap_message(*other),
        });
    }
    if let Some(info) = &state.abort {
        return Ok(abort_error(info, facts, denied, memory_limit));
    }
    if denied {
        // The initial memory alone exceeds the limit.
        return Ok(memory_limit);
    }
    Err(RuntimeError::Instantiate(describe(err)))
}

fn abort_error(
    info: &AbortInfo,
    facts: &ModuleFacts,
    denied: bool,
    memory_limit: UserCodeError,
) -> UserCodeError {
    let file = info.file.as_deref().unwrap_or("");
    let message = info.message.as_deref();
    // AssemblyScript's shadow-stack check aborts with a "stack overflow"
    // string that 0.28 never emits into the data segments: its pointers land
    // past the static data. Accept the intended text too, for newer versions.
    let shadow_stack = (facts.static_data_end > 0 && info.file_ptr >= facts.static_data_end)
        || (message == Some("stack overflow") && (file.is_empty() || file.starts_with("~lib/")));
    if shadow_stack {
        return UserCodeError::StackOverflow;
    }
    let in_runtime = file.starts_with("~lib/rt/");
    if (denied && file.starts_with("~lib/"))
        || (in_runtime && message == Some("Allocation too large"))
    {
        return memory_limit;
    }
    UserCodeError::Abort {
        message: message.unwrap_or("(no message)").to_owned(),
        file: if file.is_empty() {
            "(unknown)".to_owned()
        } else {
            abi::file_name(file).to_owned()
        },
        line: info.line,
        column: info.column,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_cut_at_a_hundred_chars() {
        assert_eq!(preview("short"), "short");
        let long = "é".repeat(150);
        let cut = preview(&long);
        assert_eq!(cut.chars().count(), PREVIEW_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
