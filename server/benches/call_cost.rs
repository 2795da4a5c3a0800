//! Call cost: one execution of the echo function with a 100-byte input through
//! the runtime's public API (`Runtime::execute` on a cached module: hand-off to
//! a wasm worker thread, a fresh instance from the pre-initialised snapshot,
//! `__new` + write the input, `handle`, read and parse the output). Its peer,
//! V8 running the same module, is `bench/node/call_cost.mjs`; `scripts/bench`
//! runs both and writes the ratio into BENCHMARKS.md.
//!
//! `call_cost/bare_wasmtime` is the floor, in the same run: the same
//! pre-initialised module instantiated from an `InstancePre` of a pooling
//! engine that recycles memory as the runtime's does, the same four calls and
//! the same reading and parsing of the output, on the calling thread, without
//! limits, epoch checks, deadline or CPU clock.
//!
//! ```text
//! PROJECTNIL_BENCH_WASM=echo.wasm cargo bench -p server --bench call_cost
//! ```
//!
//! Without `PROJECTNIL_BENCH_WASM` the fixture `tests/fixtures/functions/echo.ts`
//! is compiled with the AssemblyScript CLI and the platform's flags.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use server::runtime::{ExecutionLimits, ModuleKey, Runtime, RuntimeError};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig, Store,
};

/// AssemblyScript's class id of `String` (the first argument of `__new`).
const STRING_CLASS: i32 = 2;

const INPUT: &str = include_str!("../../bench/echo-input.json");

mod support;

// What the `projectnil` binary runs with (main.rs): a call's allocations
// (the store, the instance, the input and output strings) are the server's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn echo_wasm() -> Vec<u8> {
    if let Ok(path) = std::env::var("PROJECTNIL_BENCH_WASM") {
        return std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    }
    support::compile_fixture("echo", server::compile::ASC_FLAGS)
}

async fn never_loaded() -> Result<Vec<u8>, RuntimeError> {
    Err(RuntimeError::Worker("the module should be cached".into()))
}

fn call_cost(c: &mut Criterion) {
    assert_eq!(INPUT.len(), 100, "the input is 100 bytes");
    let wasm = echo_wasm();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let runtime = Runtime::new(ExecutionLimits::default(), 64 << 20).expect("runtime");
    let key = ModuleKey {
        function_id: uuid::Uuid::new_v4(),
        revision: 1,
    };
    tokio
        .block_on(runtime.prepare(key, &wasm))
        .expect("prepare echo");
    assert_eq!(runtime.is_preinitialized(key), Some(true));
    let expected: serde_json::Value = serde_json::from_str(INPUT).unwrap();
    let run = tokio
        .block_on(runtime.execute(key, never_loaded, INPUT))
        .expect("execute");
    assert_eq!(run.outcome.expect("echo ran"), expected);

    let preinitialized = server::runtime::preinitialized_wasm(&wasm, &ExecutionLimits::default())
        .expect("echo pre-initialises");
    let bare = BareWasmtime::new(&preinitialized);
    assert_eq!(bare.call(INPUT), expected);

    let mut group = c.benchmark_group("call_cost");
    group.bench_function("bare_wasmtime", |b| {
        b.iter(|| black_box(bare.call(black_box(INPUT))))
    });
    group.bench_function("echo_100b", |b| {
        b.iter(|| {
            let run = tokio
                .block_on(runtime.execute(key, never_loaded, black_box(INPUT)))
                .expect("execute");
            black_box(run.outcome.expect("echo ran"))
        })
    });
    group.finish();
}

/// The floor: wasmtime at its fastest for this work, with nothing of the
/// platform around it.
struct BareWasmtime {
    engine: Engine,
    pre: InstancePre<()>,
}

impl BareWasmtime {
    fn new(wasm: &[u8]) -> Self {
        // The runtime's own memory recycling (runtime/engine.rs, PoolTuning):
        // without it every instantiation pays page faults, which is not the
        // floor of this work.
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(1)
            .total_memories(1)
            .total_tables(1)
            .total_stacks(0)
            .total_component_instances(0)
            .max_memory_size(64 << 20)
            .linear_memory_keep_resident(2 << 20)
            .pagemap_scan(Enabled::Auto);
        let mut config = Config::new();
        config
            .memory_init_cow(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).expect("engine");
        let module = Module::new(&engine, wasm).expect("compile");
        let mut linker = Linker::new(&engine);
        linker
            .define_unknown_imports_as_traps(&module)
            .expect("imports");
        let pre = linker.instantiate_pre(&module).expect("link");
        Self { engine, pre }
    }

    fn call(&self, input: &str) -> serde_json::Value {
        let mut store = Store::new(&self.engine, ());
        let instance = self.pre.instantiate(&mut store).expect("instantiate");
        let memory = instance.get_memory(&mut store, "memory").expect("memory");
        let new = instance
            .get_typed_func::<(i32, i32), i32>(&mut store, "__new")
            .expect("__new");
        let pin = instance
            .get_typed_func::<i32, i32>(&mut store, "__pin")
            .expect("__pin");
        let unpin = instance
            .get_typed_func::<i32, ()>(&mut store, "__unpin")
            .expect("__unpin");
        let handle = instance
            .get_typed_func::<i32, i32>(&mut store, "handle")
            .expect("handle");
        let units: Vec<u16> = input.encode_utf16().collect();
        let ptr = new
            .call(&mut store, (units.len() as i32 * 2, STRING_CLASS))
            .expect("__new");
        let bytes: Vec<u8> = units.iter().flat_map(|unit| unit.to_le_bytes()).collect();
        memory
            .write(&mut store, ptr as usize, &bytes)
            .expect("write input");
        pin.call(&mut store, ptr).expect("__pin");
        let out = handle.call(&mut store, ptr).expect("handle") as usize;
        unpin.call(&mut store, ptr).expect("__unpin");
        let data = memory.data(&store);
        let len = u32::from_le_bytes(data[out - 4..out].try_into().expect("length")) as usize;
        let units: Vec<u16> = data[out..out + len]
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
            .collect();
        serde_json::from_str(&String::from_utf16(&units).expect("UTF-16")).expect("JSON output")
    }
}

criterion_group!(benches, call_cost);
criterion_main!(benches);
