//! Pre-initialisation of AssemblyScript modules with `wasmtime-wizer`.
//!
//! Why: AssemblyScript runs its top-level code in the module's start function
//! on every instantiation. For json-as modules that code initialises the GC
//! and TLSF allocator and allocates (and zero-fills) a 1 MiB scratch arena plus
//! a dozen arrays — it dominated instantiation. Since the start function is
//! deterministic as long as it calls no import, we run it once, then have
//! Wizer rewrite the module so that the resulting memory and globals are its
//! *initial* state (static data segments, which wasmtime maps copy-on-write,
//! and constant global initialisers) without the start function. Each
//! execution still gets a fresh instance; it just starts from the
//! already-initialised image.
//!
//! Wizer only instruments and rewrites here: the start function runs in a
//! Store of ours, under the execution limits (memory limiter, epoch deadline,
//! a stack sized like an execution's), with every import trapping. Anything
//! Wizer cannot capture (imported memories, tables or globals, table
//! mutations, reference-typed globals), a start function that calls an
//! import (`Math.random`, `Date.now`, `abort`) or traps, makes
//! [`preinitialize`] decline, and the caller uses the original module.

use wasmparser::{Operator, Parser, Payload, ValType};
use wasmtime::{Engine, Instance, Linker, Module, Store, Val};
use wasmtime_wizer::{InstanceState, SnapshotVal, Wizer};

use super::engine::deadline_ticks;
use super::limits::{ExecutionLimits, Limiter};
use super::pool::HOST_STACK_HEADROOM;

/// Facts about a module that the runtime needs with or without a snapshot.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ModuleFacts {
    /// End of the highest active data segment: where static data stops.
    /// AssemblyScript strings at or above it are never static.
    pub(crate) static_data_end: u32,
}

/// Why a module was not pre-initialised (logged, never shown to users).
pub(crate) type Declined = String;

/// Static facts from the original module. Malformed input yields defaults;
/// compiling it reports the real problem.
pub(crate) fn module_facts(wasm: &[u8]) -> ModuleFacts {
    let mut facts = ModuleFacts::default();
    for payload in Parser::new(0).parse_all(wasm) {
        let Ok(Payload::DataSection(reader)) = payload else {
            continue;
        };
        for data in reader.into_iter().flatten() {
            if let wasmparser::DataKind::Active { offset_expr, .. } = data.kind {
                let mut ops = offset_expr.get_operators_reader();
                if let Ok(Operator::I32Const { value }) = ops.read() {
                    let end = (value as u32).saturating_add(data.data.len() as u32);
                    facts.static_data_end = facts.static_data_end.max(end);
                }
            }
        }
    }
    facts
}

/// Run the start function once and return an equivalent module without one.
///
/// The start function runs on its own thread with a stack sized for
/// `max_stack_bytes`, so deep recursion in top-level code traps cleanly
/// whatever thread `prepare` was called on; a panic inside Wizer's rewrite
/// is a decline too.
pub(crate) fn preinitialize(
    engine: &Engine,
    limits: &ExecutionLimits,
    wasm: &[u8],
) -> Result<Vec<u8>, Declined> {
    if !has_start_function(wasm) {
        return Err("has no start function".into());
    }
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("wasm-preinit".into())
            .stack_size(limits.max_stack_bytes + HOST_STACK_HEADROOM)
            .spawn_scoped(scope, || snapshot(engine, limits, wasm))
            .map_err(|e| e.to_string())?
            .join()
            .map_err(|_| "pre-initialisation panicked".to_owned())?
    })
}

fn has_start_function(wasm: &[u8]) -> bool {
    Parser::new(0)
        .parse_all(wasm)
        .any(|payload| matches!(payload, Ok(Payload::StartSection { .. })))
}

fn snapshot(engine: &Engine, limits: &ExecutionLimits, wasm: &[u8]) -> Result<Vec<u8>, Declined> {
    let wizer = Wizer::new();
    let (context, instrumented) = wizer.instrument(wasm).map_err(|e| format!("{e:#}"))?;
    let module = Module::new(engine, &instrumented).map_err(|e| format!("{e:#}"))?;
    let mut store = Store::new(engine, Limiter::new(limits));
    store.limiter(|limiter| limiter);
    store.set_epoch_deadline(deadline_ticks(limits.timeout));
    store.epoch_deadline_trap();
    let mut linker = Linker::new(engine);
    linker
        .define_unknown_imports_as_traps(&module)
        .map_err(|e| format!("{e:#}"))?;
    // Instantiation runs the start function.
    let instance = linker
        .instantiate(&mut store, &module)
        .map_err(|e| format!("start function failed or called an import: {e:#}"))?;
    let mut state = Initialised {
        store: &mut store,
        instance,
        missing: None,
    };
    // Nothing in `Initialised` awaits: the future is ready on first poll.
    let rewritten = futures::executor::block_on(wizer.snapshot(&context, &mut state))
        .map_err(|e| format!("{e:#}"))?;
    match state.missing {
        Some(missing) => Err(missing),
        None => Ok(rewritten),
    }
}

/// The initialised instance, as Wizer reads it. Wizer asks only for the
/// memories and numeric globals its instrumentation exported (it refuses
/// reference-typed ones up front); should it ask for anything else, the
/// answer is recorded in `missing` and the snapshot declined.
struct Initialised<'a> {
    store: &'a mut Store<Limiter>,
    instance: Instance,
    missing: Option<Declined>,
}

impl InstanceState for Initialised<'_> {
    async fn global_get(&mut self, name: &str, _: ValType) -> SnapshotVal {
        let value = self
            .instance
            .get_global(&mut *self.store, name)
            .map(|global| global.get(&mut *self.store));
        match value {
            Some(Val::I32(x)) => SnapshotVal::I32(x),
            Some(Val::I64(x)) => SnapshotVal::I64(x),
            Some(Val::F32(x)) => SnapshotVal::F32(x),
            Some(Val::F64(x)) => SnapshotVal::F64(x),
            Some(Val::V128(x)) => SnapshotVal::V128(x.as_u128()),
            _ => {
                self.missing = Some(format!("global `{name}` is not a numeric export"));
                SnapshotVal::I32(0)
            }
        }
    }

    async fn memory_contents(&mut self, name: &str, contents: impl FnOnce(&[u8]) + Send) {
        match self.instance.get_memory(&mut *self.store, name) {
            Some(memory) => contents(memory.data(&*self.store)),
            None => {
                self.missing = Some(format!("memory `{name}` is not exported"));
                contents(&[]);
            }
        }
    }
}
