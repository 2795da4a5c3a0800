//! Behaviour of the runtime against real compiled AssemblyScript fixtures.

mod bench;
mod fixtures;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::{
    CallStart, ExecutionLimits, Invocation, ModuleKey, Runtime, RuntimeError, UserCodeError,
};

const MIB: u64 = 1024 * 1024;

fn key() -> ModuleKey {
    ModuleKey {
        function_id: uuid::Uuid::new_v4(),
        revision: 1,
    }
}

fn limits() -> ExecutionLimits {
    ExecutionLimits {
        max_concurrency: 4,
        ..ExecutionLimits::default()
    }
}

fn runtime_with(limits: ExecutionLimits) -> Runtime {
    Runtime::new(limits, 64 * MIB as usize).expect("runtime")
}

fn runtime() -> Runtime {
    runtime_with(limits())
}

async fn run_key(runtime: &Runtime, key: ModuleKey, fixture: &str, input: &str) -> Invocation {
    let wasm = fixtures::wasm(fixture);
    runtime
        .execute(key, || async move { Ok::<_, RuntimeError>(wasm) }, input)
        .await
        .unwrap_or_else(|e| panic!("{fixture}: platform error: {e}"))
}

async fn run(runtime: &Runtime, fixture: &str, input: &str) -> Invocation {
    run_key(runtime, key(), fixture, input).await
}

async fn ok(runtime: &Runtime, fixture: &str, input: &str) -> Value {
    let invocation = run(runtime, fixture, input).await;
    invocation
        .outcome
        .unwrap_or_else(|e| panic!("{fixture}({input}) failed: {e}"))
}

async fn failure(runtime: &Runtime, fixture: &str, input: &str) -> String {
    match run(runtime, fixture, input).await.outcome {
        Ok(value) => panic!("{fixture}({input}) unexpectedly returned {value}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn echo_returns_its_input() {
    let rt = runtime();
    let input = r#"{"x":[1,2.5,"é😀",null,true],"nested":{"k":"v"}}"#;
    assert_eq!(
        ok(&rt, "echo", input).await,
        serde_json::from_str::<Value>(input).unwrap()
    );
}

#[tokio::test]
async fn add_follows_the_contract_example() {
    let rt = runtime();
    assert_eq!(
        ok(&rt, "add", r#"{"a": 5, "b": 3}"#).await,
        json!({"sum": 8})
    );
}

#[tokio::test]
async fn non_ascii_and_emoji_round_trip_exactly() {
    let rt = runtime();
    let text = "héllo wörld ✓ 😀👍🏽 𝄞 日本語 \u{7f}";
    let input = json!({ "text": text }).to_string();
    let out = ok(&rt, "strings", &input).await;
    assert_eq!(out["text"], text);
    assert_eq!(out["upper"], text.to_uppercase());
    let reversed: String = text.chars().rev().collect();
    assert_eq!(out["reversed"], reversed);
    assert_eq!(out["length"], text.encode_utf16().count());
}

#[tokio::test]
async fn surrogate_pairs_split_by_json_as_still_round_trip() {
    let rt = runtime();
    let k = key();
    // Every alignment of the pair against json-as's 4-unit chunks.
    for prefix in ["", "a", "ab", "abc", "abcd", "abcdefg"] {
        let text = format!("{prefix}😀 and 👍🏽");
        let input = Value::String(text.clone()).to_string();
        let out = run_key(&rt, k, "json_string", &input).await;
        assert_eq!(out.outcome.unwrap(), Value::String(text));
    }
    // A surrogate that pairs with nothing is still an error, not a panic.
    assert_eq!(
        failure(&rt, "lone_surrogate", "1").await,
        "function returned a string with an unpaired UTF-16 surrogate at code unit 2"
    );
}

#[tokio::test]
async fn throw_and_assert_report_abort_with_location() {
    let rt = runtime();
    assert_eq!(
        failure(&rt, "throw", "\"x\"").await,
        "abort: boom at index.ts:4:5"
    );
    assert_eq!(
        failure(&rt, "assert", "5").await,
        "abort: n must be greater than 10 at index.ts:4:3"
    );
    assert_eq!(ok(&rt, "assert", "11").await, json!(11));
    assert_eq!(
        failure(&rt, "assert_plain", "1").await,
        "abort: (no message) at index.ts:3:3"
    );
}

#[tokio::test]
async fn traps_have_short_messages() {
    let rt = runtime();
    assert_eq!(
        failure(&rt, "unreachable", "1").await,
        "unreachable executed"
    );
    assert_eq!(failure(&rt, "divide", "0").await, "integer divide by zero");
    assert_eq!(ok(&rt, "divide", "4").await, json!(25));
    assert_eq!(failure(&rt, "overflow", "-1").await, "integer overflow");
}

/// Loader for keys the test has already prepared: a miss is a bug.
async fn must_be_cached() -> Result<Vec<u8>, RuntimeError> {
    Err(RuntimeError::Worker(
        "module should have been cached".into(),
    ))
}

// A single-threaded executor: were wasm run on it, nothing else could make
// progress while the loop spins.
#[tokio::test]
async fn timeout_stops_a_loop_while_other_executions_complete() {
    let rt = runtime_with(ExecutionLimits {
        timeout: Duration::from_secs(2),
        ..limits()
    });
    let (echo, spin) = (key(), key());
    rt.prepare(echo, &fixtures::wasm("echo")).await.unwrap();
    rt.prepare(spin, &fixtures::wasm("loop")).await.unwrap();
    let looping = {
        let rt = rt.clone();
        tokio::spawn(async move { rt.execute(spin, must_be_cached, "1").await })
    };
    // The loop starts on this (only) thread and moves to a wasm thread at
    // its first epoch tick; it holds one slot from the start.
    let all = rt.free_slots();
    while rt.free_slots() == all {
        tokio::task::yield_now().await;
    }
    // The loop holds one slot; the others keep serving.
    for i in 0..30 {
        let out = rt
            .execute(echo, must_be_cached, &i.to_string())
            .await
            .unwrap();
        assert_eq!(out.outcome.unwrap(), json!(i));
    }
    assert!(
        !looping.is_finished(),
        "echoes should finish while the loop still spins"
    );
    let looped = looping.await.unwrap().unwrap();
    assert_eq!(
        looped.outcome.unwrap_err(),
        UserCodeError::Timeout { ms: 2000 }
    );
    // Its CPU time is counted on both threads it ran on: not one tick early.
    assert!(looped.duration >= Duration::from_secs(2));
}

// Started on its wasm thread, a call never ran on the caller's: its CPU time
// is that thread's alone, and the limits hold as they do for a call that
// moved there at its first tick.
#[tokio::test]
async fn a_call_started_on_its_wasm_thread_answers_and_is_limited_the_same() {
    let rt = runtime_with(ExecutionLimits {
        timeout: Duration::from_millis(500),
        ..limits()
    });
    let (echo, spin) = (key(), key());
    rt.prepare(echo, &fixtures::wasm("echo")).await.unwrap();
    rt.prepare(spin, &fixtures::wasm("loop")).await.unwrap();
    let start = |module: ModuleKey, input: &'static str| {
        let rt = rt.clone();
        async move {
            let slot = rt.reserve().await;
            let module = rt.load(module, must_be_cached).await.unwrap();
            let cancel = tokio_util::sync::CancellationToken::new();
            rt.run(slot, &module, input, &cancel, CallStart::WasmThread)
                .await
                .unwrap()
        }
    };
    let echoed = start(echo, r#"{"a":1}"#).await;
    assert_eq!(echoed.outcome.unwrap(), json!({ "a": 1 }));
    let looped = start(spin, "1").await;
    assert_eq!(
        looped.outcome.unwrap_err(),
        UserCodeError::Timeout { ms: 500 }
    );
    assert!(looped.duration >= Duration::from_millis(500));
    assert_eq!(rt.free_slots(), limits().max_concurrency);
}

// A caller that stops waiting for a call on a wasm thread does not free the
// thread's slot: the call still runs there until its cancel (or timeout)
// stops it, and only then may another execution take the slot.
#[tokio::test]
async fn a_dropped_call_holds_its_slot_until_its_thread_is_done() {
    let rt = runtime();
    let spin = key();
    rt.prepare(spin, &fixtures::wasm("loop")).await.unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let slot = rt.reserve().await;
    let module = rt.load(spin, must_be_cached).await.unwrap();
    let all = limits().max_concurrency;
    assert_eq!(rt.free_slots(), all - 1);
    let call = rt.run(slot, &module, "1", &cancel, CallStart::WasmThread);
    let gave_up = tokio::time::timeout(Duration::from_millis(50), call).await;
    assert!(gave_up.is_err(), "the loop is still running");
    assert_eq!(rt.free_slots(), all - 1, "the loop's thread keeps its slot");
    cancel.cancel();
    let freed = tokio::time::timeout(Duration::from_secs(10), async {
        while rt.free_slots() < all {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(freed.is_ok(), "the slot came back once the call stopped");
}

#[tokio::test]
async fn memory_growth_beyond_the_cap_is_reported_as_such() {
    let rt = runtime_with(ExecutionLimits {
        memory_bytes: 16 * MIB,
        ..limits()
    });
    assert_eq!(
        failure(&rt, "memory_bomb", "1").await,
        "memory limit of 16 MiB exceeded"
    );
    // The default cap, too.
    assert_eq!(
        failure(&runtime(), "memory_bomb", "1").await,
        "memory limit of 64 MiB exceeded"
    );
    // And the runtime is fine afterwards.
    assert_eq!(ok(&rt, "add", r#"{"a":1,"b":2}"#).await, json!({"sum": 3}));
}

#[tokio::test]
async fn deep_recursion_is_a_stack_overflow_not_a_crash() {
    let rt = runtime();
    // Integer recursion exhausts the wasm stack (max_wasm_stack) ...
    assert_eq!(
        failure(&rt, "recursion", "\"native\"").await,
        "stack overflow"
    );
    // ... recursion through managed strings exhausts AssemblyScript's shadow stack.
    assert_eq!(
        failure(&rt, "recursion", "\"strings\"").await,
        "stack overflow"
    );
    assert_eq!(ok(&rt, "echo", "[1]").await, json!([1]));
}

#[tokio::test]
async fn invalid_json_output_is_quoted() {
    let rt = runtime();
    assert_eq!(
        failure(&rt, "bad_json", "1").await,
        "function returned invalid JSON: this is not json: 1"
    );
    let long = format!("\"{}\"", "y".repeat(300));
    let message = failure(&rt, "bad_json", &long).await;
    let preview = message
        .strip_prefix("function returned invalid JSON: ")
        .unwrap();
    assert_eq!(preview.chars().count(), 101, "100 chars and an ellipsis");
    assert!(preview.ends_with('…'));
}

#[tokio::test]
async fn output_size_is_capped() {
    let rt = runtime_with(ExecutionLimits {
        max_output_bytes: 1000,
        ..limits()
    });
    assert_eq!(ok(&rt, "big_output", "998").await, json!("x".repeat(998)));
    assert_eq!(
        failure(&rt, "big_output", "999").await,
        "output of 1001 bytes exceeds the limit of 1000 bytes"
    );
    assert_eq!(
        failure(&rt, "big_output", "100000").await,
        "output of 100002 bytes exceeds the limit of 1000 bytes"
    );
}

#[tokio::test]
async fn console_and_trace_are_captured() {
    let rt = runtime();
    let out = run(&rt, "logging", "{}").await;
    assert_eq!(out.outcome.unwrap(), json!({"ok": true}));
    assert_eq!(
        out.logs,
        vec![
            "hello from console.log",
            "[info] info ✓",
            "[warn] careful",
            "[error] bad things",
            "[debug] details",
            "trace: trace with values 1.5, 42",
            "trace: plain trace",
        ]
    );
}

#[tokio::test]
async fn logs_survive_a_failure_and_are_bounded() {
    let rt = runtime_with(ExecutionLimits {
        max_log_lines: 3,
        ..limits()
    });
    let out = run(&rt, "logging", "{}").await;
    assert_eq!(out.logs.len(), 4);
    assert!(out.logs[3].starts_with("[logs truncated"));

    let out = run(&runtime(), "logging", "\"fail\"").await;
    assert_eq!(
        out.outcome.unwrap_err().to_string(),
        "abort: after logging at index.ts:12:5"
    );
    assert_eq!(out.logs.len(), 7);
}

#[tokio::test]
async fn every_execution_sees_fresh_state() {
    let rt = runtime();
    let k = key();
    for _ in 0..3 {
        let out = run_key(&rt, k, "counter", "\"x\"").await;
        assert_eq!(out.outcome.unwrap(), json!({"calls": 1, "seen": 1}));
    }
    assert_eq!(rt.is_preinitialized(k), Some(true));
}

#[tokio::test]
async fn clock_and_randomness_are_live() {
    let rt = runtime();
    let k = key();
    let a = run_key(&rt, k, "env", "{}").await.outcome.unwrap();
    let b = run_key(&rt, k, "env", "{}").await.outcome.unwrap();
    assert_ne!(a["random"], b["random"]);
    let r = a["random"].as_f64().unwrap();
    assert!((0.0..1.0).contains(&r));
    assert!(
        a["now"].as_f64().unwrap() > 1.6e12,
        "milliseconds since the epoch"
    );

    // Top-level code that calls an import cannot be snapshotted; it still
    // works, running per execution.
    let k = key();
    let a = run_key(&rt, k, "toplevel_random", "{}")
        .await
        .outcome
        .unwrap();
    let b = run_key(&rt, k, "toplevel_random", "{}")
        .await
        .outcome
        .unwrap();
    assert_ne!(a, b);
    assert_eq!(rt.is_preinitialized(k), Some(false));
}

#[tokio::test]
async fn cache_prepare_hit_and_invalidate() {
    let rt = runtime();
    let k = key();
    let other_revision = ModuleKey { revision: 2, ..k };
    let unrelated = key();
    let wasm = fixtures::wasm("add");
    assert!(!rt.is_cached(k));
    rt.prepare(k, &wasm).await.unwrap();
    rt.prepare(other_revision, &wasm).await.unwrap();
    rt.prepare(unrelated, &wasm).await.unwrap();
    assert!(rt.is_cached(k));
    assert_eq!(rt.is_preinitialized(k), Some(true));
    let stats = rt.stats();
    assert_eq!(stats.entries, 3);
    assert!(stats.bytes > wasm.len());

    let loads = Arc::new(AtomicUsize::new(0));
    let load = |loads: Arc<AtomicUsize>, wasm: Vec<u8>| {
        move || async move {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, RuntimeError>(wasm)
        }
    };
    let before = rt.stats();
    let out = rt
        .execute(k, load(loads.clone(), wasm.clone()), r#"{"a":2,"b":2}"#)
        .await
        .unwrap();
    assert_eq!(out.outcome.unwrap(), json!({"sum": 4}));
    assert_eq!(loads.load(Ordering::SeqCst), 0, "warm: loader not called");
    assert_eq!(rt.stats().hits, before.hits + 1);

    rt.invalidate(k.function_id);
    assert!(!rt.is_cached(k));
    assert!(!rt.is_cached(other_revision));
    assert!(rt.is_cached(unrelated));
    assert_eq!(rt.stats().entries, 1);

    let out = rt
        .execute(k, load(loads.clone(), wasm.clone()), r#"{"a":2,"b":3}"#)
        .await
        .unwrap();
    assert_eq!(out.outcome.unwrap(), json!({"sum": 5}));
    assert_eq!(loads.load(Ordering::SeqCst), 1, "cold: loader called once");
    assert!(rt.is_cached(k));
}

#[tokio::test]
async fn revisions_with_the_same_wasm_share_one_compiled_module() {
    let rt = runtime();
    let (a, b, other) = (key(), key(), key());
    let add = fixtures::wasm("add");
    rt.prepare(a, &add).await.unwrap();
    rt.prepare(b, &add).await.unwrap();
    rt.prepare(other, &fixtures::wasm("echo")).await.unwrap();
    let loaded = |k| rt.load(k, must_be_cached);
    let (la, lb, lo) = (
        loaded(a).await.unwrap(),
        loaded(b).await.unwrap(),
        loaded(other).await.unwrap(),
    );
    assert!(Arc::ptr_eq(&la.0, &lb.0), "compiled once for both");
    assert!(!Arc::ptr_eq(&la.0, &lo.0));
    assert_eq!(rt.stats().entries, 3);

    // Dropping one function keeps the other's module working.
    rt.invalidate(a.function_id);
    drop((la, lb));
    assert!(!rt.is_cached(a));
    assert_eq!(
        run_key(&rt, b, "add", r#"{"a":1,"b":2}"#)
            .await
            .outcome
            .unwrap(),
        json!({"sum": 3})
    );
}

#[tokio::test]
async fn cache_evicts_least_recently_used_by_bytes() {
    let wasm = fixtures::wasm("echo");
    let probe = runtime();
    let k = key();
    probe.prepare(k, &wasm).await.unwrap();
    let one = probe.stats().bytes;

    // Room for two modules of this size.
    let rt = Runtime::new(limits(), one * 2 + one / 2).unwrap();
    let (a, b, c) = (key(), key(), key());
    rt.prepare(a, &wasm).await.unwrap();
    rt.prepare(b, &wasm).await.unwrap();
    run_key(&rt, a, "echo", "1").await; // a is now the most recent
    rt.prepare(c, &wasm).await.unwrap();
    assert!(rt.is_cached(a) && rt.is_cached(c));
    assert!(!rt.is_cached(b));
    assert_eq!(rt.stats().evictions, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_executions_of_one_module() {
    let rt = runtime();
    let k = key();
    let loads = Arc::new(AtomicUsize::new(0));
    let wasm = fixtures::wasm("add");
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let rt = rt.clone();
            let loads = loads.clone();
            let wasm = wasm.clone();
            tokio::spawn(async move {
                let load = move || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, RuntimeError>(wasm)
                };
                let input = json!({"a": i, "b": 1000}).to_string();
                rt.execute(k, load, &input).await.unwrap()
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let out = task.await.unwrap();
        assert_eq!(out.outcome.unwrap(), json!({"sum": i + 1000}));
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "concurrent misses load and compile once"
    );
}

#[tokio::test]
async fn platform_errors_are_runtime_errors() {
    let rt = runtime();
    let err = rt.prepare(key(), b"not wasm").await.unwrap_err();
    assert!(matches!(err, RuntimeError::Compile(_)), "{err}");

    let err = rt
        .prepare(key(), &fixtures::wasm("unsupported_import"))
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::InvalidModule(_)), "{err}");
    assert!(err.to_string().contains("`env.fetch`"), "{err}");

    let err = rt
        .execute(
            key(),
            || async { Err::<Vec<u8>, _>("database unavailable") },
            "{}",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Load(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "could not load module bytes: database unavailable"
    );
}

/// Inputs for the differential test, per fixture. Every fixture must be
/// here: a new one is covered or the test fails.
const DIFFERENTIAL_CASES: &[(&str, &[&str])] = &[
    ("add", &[r#"{"a":-7,"b":3}"#, r#"{"a":1}"#, "[]"]),
    ("assert", &["11", "3"]),
    ("assert_plain", &["\"short\""]),
    ("bad_json", &["1"]),
    ("big_output", &["10", "100000"]),
    ("burn", &[r#"{"rounds":1000}"#]),
    ("counter", &["\"a\"", "\"b\""]),
    ("divide", &["4", "0"]),
    ("echo", &[r#"{"x":[1,2.5,"é😀",null,true]}"#]),
    ("env", &["{}"]),
    ("json_string", &[r#""Grüße 🌍 \u0001""#]),
    ("logging", &["{}", "\"fail\""]),
    ("lone_surrogate", &["{}"]),
    ("loop", &["{}"]),
    ("memory_bomb", &["{}"]),
    ("overflow", &["-1", "2"]),
    ("recursion", &["\"native\"", "\"managed\""]),
    ("strings", &[r#"{"text":"Grüße 🌍"}"#]),
    ("throw", &["\"x\"", "\"\""]),
    ("toplevel_random", &["{}"]),
    ("unreachable", &["{}"]),
    ("unsupported_import", &["{}"]),
];

/// Outputs that depend on the clock or the random seed: compared by shape.
const NONDETERMINISTIC: &[&str] = &["env", "toplevel_random"];

#[tokio::test]
async fn preinitialised_modules_behave_like_running_the_start_function() {
    // Differential test of the Wizer snapshot: every fixture, every input,
    // through a pre-initialised and a plain module gives the same outcome and
    // the same logs.
    use super::module;
    let mut fixtures_on_disk: Vec<String> = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/functions"),
    )
    .unwrap()
    .map(|entry| entry.unwrap().file_name().into_string().unwrap())
    .filter_map(|name| name.strip_suffix(".ts").map(str::to_owned))
    .chain(["add".to_owned()])
    .collect();
    fixtures_on_disk.sort();
    let mut covered: Vec<String> = DIFFERENTIAL_CASES
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect();
    covered.sort();
    assert_eq!(
        covered, fixtures_on_disk,
        "every fixture has differential inputs"
    );

    let limits = ExecutionLimits {
        timeout: Duration::from_millis(300),
        ..limits()
    };
    let engines = module::Engines {
        execution: super::engine::execution_engine(&limits, super::engine::PoolTuning::default())
            .unwrap(),
        init: super::engine::init_engine(&limits).unwrap(),
    };
    super::engine::spawn_epoch_ticker(&[&engines.execution, &engines.init]).unwrap();
    let linker = super::host::linker(&engines.execution).unwrap();
    for (fixture, inputs) in DIFFERENTIAL_CASES {
        let wasm = fixtures::wasm(fixture);
        let snap = module::prepare(&engines, &linker, &limits, &wasm, true);
        let plain = module::prepare(&engines, &linker, &limits, &wasm, false);
        let (snap, plain) = match (snap, plain) {
            (Ok(snap), Ok(plain)) => (Arc::new(snap), Arc::new(plain)),
            (Err(a), Err(b)) => {
                assert_eq!(a.to_string(), b.to_string(), "{fixture}");
                continue;
            }
            (a, b) => panic!(
                "{fixture}: prepared {} with the snapshot, {} without",
                a.is_ok(),
                b.is_ok()
            ),
        };
        assert!(!plain.preinitialized, "{fixture}");
        // Top-level code that calls an import is the one thing declined.
        assert_eq!(
            snap.preinitialized,
            *fixture != "toplevel_random",
            "{fixture}"
        );
        for input in *inputs {
            let invoke = |prepared| {
                super::invoke::invoke_here(&engines.execution, &limits, prepared, input).unwrap()
            };
            let (a, b) = (invoke(&snap), invoke(&plain));
            if NONDETERMINISTIC.contains(fixture) {
                let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
                assert_eq!(
                    a.outcome.as_ref().map(keys).ok(),
                    b.outcome.as_ref().map(keys).ok(),
                    "{fixture}({input})"
                );
            } else {
                assert_eq!(a.outcome, b.outcome, "{fixture}({input})");
            }
            assert_eq!(a.logs, b.logs, "{fixture}({input})");
        }
    }
}
