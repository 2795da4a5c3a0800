//! Resource limits for one execution and the store limiter that enforces them.

use std::time::Duration;

use wasmtime::ResourceLimiter;

/// WebAssembly page size; memory limits are enforced in whole pages.
pub(crate) const WASM_PAGE_BYTES: u64 = 64 * 1024;

const MIB: u64 = 1024 * 1024;

/// Limits applied to every execution (and to module pre-initialisation).
///
/// They are fixed when the [`Runtime`](super::Runtime) is created because
/// several of them size engine-wide structures (the instance pool, the wasm
/// stack limit, the worker threads).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionLimits {
    /// CPU time the execution's own thread may spend on instantiation plus the
    /// `handle` call. Time spent waiting for a wasm thread or for a CPU core
    /// does not count, so a busy machine never times out a function that needs
    /// less than this by more than its first epoch tick, which is measured by
    /// the wall clock (see `invoke::CpuClock`).
    pub timeout: Duration,
    /// Cap on the linear memory of one instance.
    pub memory_bytes: u64,
    /// Cap on the UTF-8 size of the JSON text `handle` returns.
    pub max_output_bytes: usize,
    /// Native stack that wasm code may use before it traps with a stack
    /// overflow. Worker threads get this plus headroom for host frames.
    pub max_stack_bytes: usize,
    /// Cap on the elements of any table (AssemblyScript's function table).
    pub max_table_elements: usize,
    /// Instances, tables and memories one execution may create.
    pub max_instances: usize,
    pub max_tables: usize,
    pub max_memories: usize,
    /// Executions that run at the same time (wasm threads); further calls
    /// wait for a [`Slot`](super::Slot). This also sizes the pooling allocator
    /// (one slot per concurrent execution).
    pub max_concurrency: usize,
    /// Total size of captured log lines per execution.
    pub max_log_bytes: usize,
    /// Number of captured log lines per execution.
    pub max_log_lines: usize,
}

impl Default for ExecutionLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            timeout: Duration::from_secs(10),
            memory_bytes: 64 * MIB,
            max_output_bytes: MIB as usize,
            max_stack_bytes: 512 * 1024,
            max_table_elements: 10_000,
            max_instances: 1,
            max_tables: 1,
            max_memories: 1,
            // Wasm is CPU bound: more threads than cores only stretch every
            // execution's wall time.
            max_concurrency: cores,
            max_log_bytes: 64 * 1024,
            max_log_lines: 1_000,
        }
    }
}

impl ExecutionLimits {
    /// Memory limit rounded down to whole wasm pages, as enforced.
    pub(crate) fn memory_limit_pages_bytes(&self) -> u64 {
        (self.memory_bytes / WASM_PAGE_BYTES).max(1) * WASM_PAGE_BYTES
    }

    /// The limit as reported to users.
    pub(crate) fn memory_limit_mib(&self) -> u64 {
        self.memory_bytes / MIB
    }
}

/// Per-store limiter. It remembers that it refused to grow memory: AssemblyScript
/// reacts to a failed `memory.grow` with `unreachable` (or an abort), and that
/// trap must be reported as the memory limit, not as a bug in the user's code.
pub(crate) struct Limiter {
    memory_bytes: usize,
    table_elements: usize,
    instances: usize,
    tables: usize,
    memories: usize,
    memory_denied: bool,
}

impl Limiter {
    pub(crate) fn new(limits: &ExecutionLimits) -> Self {
        Self {
            memory_bytes: usize::try_from(limits.memory_limit_pages_bytes()).unwrap_or(usize::MAX),
            table_elements: limits.max_table_elements,
            instances: limits.max_instances,
            tables: limits.max_tables,
            memories: limits.max_memories,
            memory_denied: false,
        }
    }

    pub(crate) fn memory_denied(&self) -> bool {
        self.memory_denied
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Growing past the module's own declared maximum is the module's
        // business (wasmtime refuses it anyway); only our cap counts as OOM.
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        if desired > self.memory_bytes {
            self.memory_denied = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements && maximum.is_none_or(|max| desired <= max))
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.memories
    }
}
