//! Call cost: one execution of the echo function with a 100-byte input through
//! the runtime's public API (`Runtime::execute` on a cached module: on a fiber
//! polled by the calling thread, a fresh instance from the pre-initialised
//! snapshot, `__new` + write the input, `__pin`, `handle`, read and parse the
//! output). Its peer, V8 running the same module, is
//! `bench/node/call_cost.mjs`; `scripts/bench` runs both and writes the ratio
//! into BENCHMARKS.md.
//!
//! `call_cost/bare_wasmtime` is the floor, in the same run: the same
//! pre-initialised module instantiated from an `InstancePre` of a pooling
//! engine that recycles memory as the runtime's does, the same three calls
//! and the same reading and parsing of the output, on the calling thread,
//! without limits, epoch checks, deadline or CPU clock.
//!
//! Criterion measures the two one after the other, so on a machine whose pace
//! swings within minutes their ratio takes in the swing. The ratio is
//! therefore also taken in paired rounds: batches of the floor and of the
//! runtime alternate (the order flips every round) and each round's ratio is
//! kept; their median is the ratio `scripts/bench` reports. The rounds are
//! written as JSON to `PROJECTNIL_BENCH_PAIRED` when it names a file
//! (`PROJECTNIL_BENCH_PAIRED_ROUNDS` of them, 400 by default).
//!
//! ```text
//! PROJECTNIL_BENCH_WASM=echo.wasm cargo bench -p server --bench call_cost
//! ```
//!
//! Without `PROJECTNIL_BENCH_WASM` the fixture `tests/fixtures/functions/echo.ts`
//! is compiled with the AssemblyScript CLI and the platform's flags.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use server::runtime::{ExecutionLimits, ModuleKey, Runtime, RuntimeError};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module, ModuleExport,
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

    // `cargo bench` passes `--bench`; without it (`cargo test --benches`,
    // `--list`) criterion only checks that each benchmark runs.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let paired = PairedRounds::measure(
        || {
            black_box(bare.call(black_box(INPUT)));
        },
        || {
            let run = tokio
                .block_on(runtime.execute(key, never_loaded, black_box(INPUT)))
                .expect("execute");
            black_box(run.outcome.expect("echo ran"));
        },
    );
    paired.report();
}

/// The floor and the runtime measured in alternating batches, so both see
/// the same machine.
#[derive(serde::Serialize)]
struct PairedRounds {
    rounds: usize,
    calls_per_batch: usize,
    /// Medians over the rounds of each batch's mean call time.
    bare_median_ns: f64,
    runtime_median_ns: f64,
    /// Each round's runtime ÷ floor: the median, the 10th and 90th percentile.
    ratio_median: f64,
    ratio_p10: f64,
    ratio_p90: f64,
}

impl PairedRounds {
    /// A batch lasts about this long: long enough for the clock, short
    /// enough that the machine's pace barely moves between the two halves
    /// of a round.
    const BATCH: Duration = Duration::from_millis(5);

    fn measure(mut bare: impl FnMut(), mut runtime: impl FnMut()) -> Self {
        let rounds = match std::env::var("PROJECTNIL_BENCH_PAIRED_ROUNDS") {
            Ok(n) => n
                .parse()
                .unwrap_or_else(|_| panic!("PROJECTNIL_BENCH_PAIRED_ROUNDS={n}: not a count")),
            Err(_) => 400,
        };
        assert!(
            rounds > 0,
            "PROJECTNIL_BENCH_PAIRED_ROUNDS must be at least 1"
        );
        let per_call = {
            let start = Instant::now();
            for _ in 0..200 {
                runtime();
            }
            start.elapsed() / 200
        };
        let calls_per_batch =
            (Self::BATCH.as_nanos() / per_call.as_nanos().max(1)).max(10) as usize;
        let batch = |call: &mut dyn FnMut()| {
            let start = Instant::now();
            for _ in 0..calls_per_batch {
                call();
            }
            start.elapsed().as_nanos() as f64 / calls_per_batch as f64
        };
        let mut bare_ns = Vec::with_capacity(rounds);
        let mut runtime_ns = Vec::with_capacity(rounds);
        let mut ratios = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let (b, r) = if round % 2 == 0 {
                let b = batch(&mut bare);
                (b, batch(&mut runtime))
            } else {
                let r = batch(&mut runtime);
                (batch(&mut bare), r)
            };
            bare_ns.push(b);
            runtime_ns.push(r);
            ratios.push(r / b);
        }
        Self {
            rounds,
            calls_per_batch,
            bare_median_ns: quantile(&mut bare_ns, 0.5),
            runtime_median_ns: quantile(&mut runtime_ns, 0.5),
            ratio_median: quantile(&mut ratios, 0.5),
            ratio_p10: quantile(&mut ratios, 0.1),
            ratio_p90: quantile(&mut ratios, 0.9),
        }
    }

    fn report(&self) {
        eprintln!(
            "call_cost/paired: {} rounds of {} calls: runtime {:.2} µs, bare wasmtime {:.2} µs; \
             ratio median {:.3}× (p10 {:.3}×, p90 {:.3}×)",
            self.rounds,
            self.calls_per_batch,
            self.runtime_median_ns / 1e3,
            self.bare_median_ns / 1e3,
            self.ratio_median,
            self.ratio_p10,
            self.ratio_p90
        );
        if let Ok(path) = std::env::var("PROJECTNIL_BENCH_PAIRED") {
            let json = serde_json::to_vec_pretty(self).expect("paired rounds as JSON");
            std::fs::write(&path, json).unwrap_or_else(|e| panic!("writing {path}: {e}"));
        }
    }
}

/// The `q` quantile of `values` by nearest rank.
fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() - 1) as f64 * q).round() as usize;
    values[rank]
}

/// The floor: wasmtime at its fastest for this work, with nothing of the
/// platform around it. It makes the calls the runtime makes (`__new`,
/// `__pin`, `handle`; no `__unpin`, since the instance is dropped right
/// after) and finds the exports by index, as the runtime does.
struct BareWasmtime {
    engine: Engine,
    pre: InstancePre<()>,
    exports: [ModuleExport; 4],
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
        let exports = ["memory", "__new", "__pin", "handle"]
            .map(|name| module.get_export_index(name).expect("an ABI export"));
        Self {
            engine,
            pre,
            exports,
        }
    }

    fn call(&self, input: &str) -> serde_json::Value {
        let mut store = Store::new(&self.engine, ());
        let instance = self.pre.instantiate(&mut store).expect("instantiate");
        let [memory, new, pin, handle] = &self.exports;
        let export = |store: &mut Store<()>, export| {
            instance
                .get_module_export(store, export)
                .expect("an ABI export")
        };
        let memory = export(&mut store, memory).into_memory().expect("memory");
        let new = export(&mut store, new)
            .into_func()
            .expect("__new")
            .typed::<(i32, i32), i32>(&store)
            .expect("__new");
        let pin = export(&mut store, pin)
            .into_func()
            .expect("__pin")
            .typed::<i32, i32>(&store)
            .expect("__pin");
        let handle = export(&mut store, handle)
            .into_func()
            .expect("handle")
            .typed::<i32, i32>(&store)
            .expect("handle");
        let byte_len = input.encode_utf16().count() * 2;
        let ptr = new
            .call(&mut store, (byte_len as i32, STRING_CLASS))
            .expect("__new") as usize;
        let target = &mut memory.data_mut(&mut store)[ptr..ptr + byte_len];
        for (unit, slot) in input.encode_utf16().zip(target.chunks_exact_mut(2)) {
            slot.copy_from_slice(&unit.to_le_bytes());
        }
        pin.call(&mut store, ptr as i32).expect("__pin");
        let out = handle.call(&mut store, ptr as i32).expect("handle") as usize;
        let data = memory.data(&store);
        let len = u32::from_le_bytes(data[out - 4..out].try_into().expect("length")) as usize;
        let bytes = &data[out..out + len];
        // ASCII (the echo's output is) is read without going through `char`,
        // as the runtime reads it.
        let text = if bytes
            .chunks_exact(2)
            .all(|pair| pair[1] == 0 && pair[0].is_ascii())
        {
            String::from_utf8(bytes.iter().step_by(2).copied().collect()).expect("ASCII")
        } else {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16(&units).expect("UTF-16")
        };
        serde_json::from_str(&text).expect("JSON output")
    }
}

criterion_group!(benches, call_cost);
criterion_main!(benches);
