//! Instantiate + call timings, with and without pre-initialisation. Not a
//! pass/fail test; run it in release mode to see the numbers:
//!
//! ```text
//! cargo test --release -p server runtime::tests::bench -- --ignored --nocapture
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::Store;

use super::super::engine::{self, PoolTuning, deadline_ticks};
use super::super::host::{self, HostState};
use super::super::invoke::invoke_here;
use super::super::module::{self, Engines};
use super::fixtures;
use super::limits;

const WARMUP: usize = 200;
const ROUNDS: usize = 3000;

fn summarize(samples: &mut [Duration]) -> String {
    samples.sort();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = samples.iter().map(|d| micros(*d)).sum::<f64>() / samples.len() as f64;
    format!(
        "median {:6.1} µs p90 {:6.1} µs mean {:6.1} µs",
        micros(samples[samples.len() / 2]),
        micros(samples[samples.len() * 9 / 10]),
        mean
    )
}

#[test]
#[ignore = "prints timings; run with --release -- --ignored --nocapture"]
fn instantiate_and_call_timings() {
    let limits = limits();
    let tunings = [
        (
            "wasmtime defaults",
            PoolTuning {
                keep_resident: 0,
                pagemap_scan: false,
            },
        ),
        (
            "keep 128K",
            PoolTuning {
                keep_resident: 128 << 10,
                pagemap_scan: false,
            },
        ),
        (
            "keep 128K+pagemap",
            PoolTuning {
                keep_resident: 128 << 10,
                pagemap_scan: true,
            },
        ),
        (
            "keep 2M+pagemap",
            PoolTuning {
                keep_resident: 2 << 20,
                pagemap_scan: true,
            },
        ),
        (
            "keep 16M+pagemap",
            PoolTuning {
                keep_resident: 16 << 20,
                pagemap_scan: true,
            },
        ),
        ("runtime default", PoolTuning::default()),
    ];
    let cases = [
        ("add", r#"{"a": 5, "b": 3}"#),
        ("echo", r#"{"a": 5}"#),
        ("strings", r#"{"text":"héllo 😀"}"#),
    ];
    for (label, tuning) in tunings {
        let engines = Engines {
            execution: engine::execution_engine(&limits, tuning).unwrap(),
            init: engine::init_engine(&limits).unwrap(),
        };
        engine::spawn_epoch_ticker(&[&engines.execution, &engines.init]).unwrap();
        let linker = host::linker(&engines.execution).unwrap();
        println!("== pool: {label} {tuning:?}");
        for (fixture, input) in cases {
            let wasm = fixtures::wasm(fixture);
            for preinitialize in [false, true] {
                let started = Instant::now();
                let prepared = Arc::new(
                    module::prepare(&engines, &linker, &limits, &wasm, preinitialize).unwrap(),
                );
                let prepare_time = started.elapsed();
                assert_eq!(prepared.preinitialized, preinitialize);

                let mut instantiate = Vec::with_capacity(ROUNDS);
                let mut full = Vec::with_capacity(ROUNDS);
                for round in 0..WARMUP + ROUNDS {
                    let started = Instant::now();
                    let mut store = Store::new(&engines.execution, HostState::new(&limits));
                    store.limiter(|state| &mut state.limiter);
                    store.set_epoch_deadline(deadline_ticks(limits.timeout));
                    store.epoch_deadline_trap();
                    prepared.pre.instantiate(&mut store).unwrap();
                    drop(store);
                    let elapsed = started.elapsed();

                    let started = Instant::now();
                    let out = invoke_here(&engines.execution, &limits, &prepared, input).unwrap();
                    let total = started.elapsed();
                    assert!(out.outcome.is_ok());
                    if round >= WARMUP {
                        instantiate.push(elapsed);
                        full.push(total);
                    }
                }
                println!(
                    "{fixture:8} preinit={preinitialize:5} prepare {:5.1} ms | instantiate only: {} | instantiate+call: {}",
                    prepare_time.as_secs_f64() * 1e3,
                    summarize(&mut instantiate),
                    summarize(&mut full),
                );
            }
        }
    }
}
