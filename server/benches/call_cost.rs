//! Call cost: one execution of the echo function with a 100-byte input through
//! the runtime's public API (`Runtime::execute` on a cached module: hand-off to
//! a wasm worker thread, a fresh instance from the pre-initialised snapshot,
//! `__new` + write the input, `handle`, read and parse the output). Its peer,
//! V8 running the same module, is `bench/node/call_cost.mjs`; `scripts/bench`
//! runs both and writes the ratio into BENCHMARKS.md.
//!
//! ```text
//! PROJECTNIL_BENCH_WASM=echo.wasm cargo bench -p server --bench call_cost
//! ```
//!
//! Without `PROJECTNIL_BENCH_WASM` the fixture `tests/fixtures/functions/echo.ts`
//! is compiled with the AssemblyScript CLI and the platform's flags.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{Criterion, criterion_group, criterion_main};
use server::runtime::{ExecutionLimits, ModuleKey, Runtime, RuntimeError};

const INPUT: &str = include_str!("../../bench/echo-input.json");

fn echo_wasm() -> Vec<u8> {
    if let Ok(path) = std::env::var("PROJECTNIL_BENCH_WASM") {
        return std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    }
    let server = Path::new(env!("CARGO_MANIFEST_DIR"));
    let modules = server.join("compiler/node_modules");
    let work = std::env::temp_dir().join(format!("projectnil-call-cost-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("scratch dir");
    std::fs::copy(
        server.join("../tests/fixtures/functions/echo.ts"),
        work.join("index.ts"),
    )
    .expect("copy echo.ts");
    let link = work.join("node_modules");
    if !link.exists() {
        std::os::unix::fs::symlink(&modules, &link).expect("link node_modules");
    }
    let status = Command::new(PathBuf::from(&modules).join(".bin/asc"))
        .arg("index.ts")
        .args(server::compile::ASC_FLAGS.split_whitespace())
        .args(["-o", "out.wasm"])
        .current_dir(&work)
        .status()
        .expect("run asc (npm ci --prefix server/compiler)");
    assert!(status.success(), "asc failed on echo.ts");
    let wasm = std::fs::read(work.join("out.wasm")).expect("read out.wasm");
    let _ = std::fs::remove_dir_all(&work);
    wasm
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

    let mut group = c.benchmark_group("call_cost");
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

criterion_group!(benches, call_cost);
criterion_main!(benches);
