//! Engine configuration and the epoch ticker that drives timeouts.

use std::thread;
use std::time::Duration;

use wasmtime::{
    Config, Enabled, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig,
};

use super::error::RuntimeError;
use super::limits::ExecutionLimits;
use super::pool::HOST_STACK_HEADROOM;

/// Epoch granularity: timeouts fire at most one tick late.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Epoch ticks that make up `timeout`, rounded up so a deadline is never early.
pub(crate) fn deadline_ticks(timeout: Duration) -> u64 {
    let tick = EPOCH_TICK.as_nanos();
    let ticks = timeout.as_nanos().div_ceil(tick).max(1);
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// Settings shared by both engines so a module behaves the same during
/// pre-initialisation and execution.
fn base_config(limits: &ExecutionLimits) -> Config {
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .max_wasm_stack(limits.max_stack_bytes)
        // Backtraces are never shown to users, and capturing one for a
        // stack overflow walks every frame.
        .wasm_backtrace_max_frames(None)
        .generate_address_map(false)
        .memory_init_cow(true)
        .parallel_compilation(true)
        .cranelift_opt_level(wasmtime::OptLevel::Speed);
    config
}

/// How the pooling allocator recycles linear memory between executions.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolTuning {
    /// Bytes at the start of each memory slot that are restored in place on
    /// reuse instead of being handed back to the kernel (which costs a page
    /// fault per touched page on the next execution).
    pub(crate) keep_resident: usize,
    /// Use Linux's PAGEMAP_SCAN (6.7+) to restore only the pages an execution
    /// dirtied, which makes a large `keep_resident` cheap.
    pub(crate) pagemap_scan: bool,
}

impl Default for PoolTuning {
    /// Measured with `tests/bench.rs`: with PAGEMAP_SCAN, keeping 2 MiB
    /// resident costs nothing extra for pre-initialised modules and cuts a
    /// non-pre-initialised json-as module from ~440 to ~80 µs. Without it
    /// the whole resident region is rewritten on every reuse, so only a
    /// small one pays off.
    fn default() -> Self {
        let pagemap_scan = PoolingAllocationConfig::is_pagemap_scan_available();
        Self {
            keep_resident: if pagemap_scan { 2 << 20 } else { 128 << 10 },
            pagemap_scan,
        }
    }
}

/// The engine executions run on: a pooling allocator with one slot (memory,
/// table, fiber stack) per concurrent execution, so instantiation reuses
/// warm, pre-mapped memory.
pub(crate) fn execution_engine(
    limits: &ExecutionLimits,
    tuning: PoolTuning,
) -> Result<Engine, RuntimeError> {
    let mut config = base_config(limits);
    // Calls run on fibers (see `invoke`): room for wasm's own stack limit
    // plus host frames.
    config.async_stack_size(limits.max_stack_bytes + HOST_STACK_HEADROOM);
    let slots = u32::try_from(limits.max_concurrency.max(1)).unwrap_or(u32::MAX);
    let memory_size = usize::try_from(limits.memory_limit_pages_bytes())
        .map_err(|_| RuntimeError::Engine("memory limit does not fit in usize".into()))?;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(slots)
        .total_memories(slots)
        .total_tables(slots)
        .total_stacks(slots)
        .total_component_instances(0)
        .max_memories_per_module(u32::try_from(limits.max_memories).unwrap_or(1))
        .max_tables_per_module(u32::try_from(limits.max_tables).unwrap_or(1))
        .table_elements(limits.max_table_elements)
        .max_memory_size(memory_size)
        .linear_memory_keep_resident(tuning.keep_resident)
        .pagemap_scan(if tuning.pagemap_scan {
            Enabled::Auto
        } else {
            Enabled::No
        })
        .table_keep_resident(64 * 1024);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(|e| RuntimeError::Engine(super::error::describe(&e)))
}

/// The engine used once per module to run its start function before
/// snapshotting. It allocates on demand so it never competes with executions
/// for pool slots.
pub(crate) fn init_engine(limits: &ExecutionLimits) -> Result<Engine, RuntimeError> {
    Engine::new(&base_config(limits)).map_err(|e| RuntimeError::Engine(super::error::describe(&e)))
}

/// One thread for the whole runtime advancing every engine's epoch. It holds
/// only weak references and exits once the engines are gone.
pub(crate) fn spawn_epoch_ticker(engines: &[&Engine]) -> Result<(), RuntimeError> {
    let weak: Vec<EngineWeak> = engines.iter().map(|e| e.weak()).collect();
    thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            loop {
                thread::sleep(EPOCH_TICK);
                let mut alive = false;
                for engine in weak.iter().filter_map(EngineWeak::upgrade) {
                    engine.increment_epoch();
                    alive = true;
                }
                if !alive {
                    break;
                }
            }
        })
        .map(drop)
        .map_err(|e| RuntimeError::Engine(format!("cannot start epoch ticker: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up() {
        assert_eq!(deadline_ticks(Duration::from_millis(10)), 2);
        assert_eq!(deadline_ticks(Duration::from_millis(11)), 3);
        assert_eq!(deadline_ticks(Duration::ZERO), 1);
    }
}
