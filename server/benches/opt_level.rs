//! What Binaryen's optimisation level costs at execution time: fixtures
//! compiled with `-O3`, `-O1`, `-O0` with only the inlining pass (the
//! platform's, [`ASC_OPTIMIZE`]) and plain `-O0`, everything else as the
//! platform compiles, each run through `Runtime::execute` on a cached,
//! pre-initialised module; the time to prepare each module (pre-initialise
//! and compile with Cranelift) is printed too. The lower the level, the faster
//! the compile (BENCHMARKS.md, "Compile"); this is the other side of that
//! trade.
//!
//! ```text
//! cargo bench -p server --bench opt_level
//! ```

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use server::compile::{ASC_FLAGS, ASC_OPTIMIZE};
use server::runtime::{ExecutionLimits, ModuleKey, Runtime, RuntimeError};

mod support;

const LEVELS: &[(&str, &str)] = &[
    ("O3", "--optimizeLevel 3 --shrinkLevel 0"),
    ("O1", "--optimizeLevel 1 --shrinkLevel 0"),
    ("O0+inlining", ASC_OPTIMIZE),
    ("O0", "--optimizeLevel 0 --shrinkLevel 0"),
];
/// Fixture, input: JSON in and out (the example and echo) and CPU-bound work.
const CASES: &[(&str, &str)] = &[
    ("add", r#"{"a":5,"b":3}"#),
    ("echo", include_str!("../../bench/echo-input.json")),
    ("burn", r#"{"rounds":200000}"#),
];

async fn never_loaded() -> Result<Vec<u8>, RuntimeError> {
    Err(RuntimeError::Worker("the module should be cached".into()))
}

fn opt_level(c: &mut Criterion) {
    assert!(ASC_FLAGS.contains(ASC_OPTIMIZE));
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let runtime = Runtime::new(ExecutionLimits::default(), 64 << 20).expect("runtime");
    let mut group = c.benchmark_group("opt_level");
    for (fixture, input) in CASES {
        let mut outputs = Vec::new();
        for (level, flags) in LEVELS {
            let wasm = support::compile_fixture(fixture, &ASC_FLAGS.replace(ASC_OPTIMIZE, flags));
            let key = ModuleKey {
                function_id: uuid::Uuid::new_v4(),
                revision: 1,
            };
            let preparing = std::time::Instant::now();
            tokio
                .block_on(runtime.prepare(key, &wasm))
                .expect("prepare");
            let prepared_in = preparing.elapsed();
            let run = tokio
                .block_on(runtime.execute(key, never_loaded, input))
                .expect("execute");
            outputs.push(run.outcome.expect("the fixture runs"));
            println!(
                "{fixture} {level}: {} bytes of wasm, prepared (pre-initialised and compiled) in {prepared_in:.1?}",
                wasm.len()
            );
            group.bench_function(format!("{fixture}/{level}"), |b| {
                b.iter(|| {
                    let run = tokio
                        .block_on(runtime.execute(key, never_loaded, black_box(input)))
                        .expect("execute");
                    black_box(run.outcome.expect("the fixture runs"))
                })
            });
        }
        assert!(
            outputs.windows(2).all(|pair| pair[0] == pair[1]),
            "{fixture}: every level gives the same output"
        );
    }
    group.finish();
}

criterion_group!(benches, opt_level);
criterion_main!(benches);
