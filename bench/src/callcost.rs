//! Call cost: reads criterion's estimate of `server/benches/call_cost.rs`
//! (run by scripts/bench just before) and runs its V8 peer,
//! `bench/node/call_cost.mjs`, on the same module and input.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::results::{CallCost, PairedCallCost, Taken};
use crate::{Paths, Plan};

fn criterion_estimates(bench: &str) -> anyhow::Result<PathBuf> {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::current_exe()?
            .parent()
            .and_then(|p| p.parent())
            .context("target directory")?
            .to_path_buf(),
    };
    Ok(target.join(format!("criterion/call_cost/{bench}/new/estimates.json")))
}

pub async fn run(paths: &Paths, plan: &Plan) -> anyhow::Result<CallCost> {
    let taken = Taken::start();
    let read = |bench: &str| -> anyhow::Result<Value> {
        let path = criterion_estimates(bench)?;
        let estimates = serde_json::from_slice(
            &std::fs::read(&path)
                .with_context(|| format!("{} (run cargo bench first)", path.display()))?,
        )?;
        let age = std::fs::metadata(&path)?
            .modified()?
            .elapsed()
            .unwrap_or_default();
        if age > Duration::from_secs(3600) {
            eprintln!(
                "bench:   warning: {} is {} minutes old",
                path.display(),
                age.as_secs() / 60
            );
        }
        Ok(estimates)
    };
    let estimate = |estimates: &Value, name: &str| -> anyhow::Result<f64> {
        estimates[name]["point_estimate"]
            .as_f64()
            .with_context(|| format!("no {name} in criterion's estimates"))
    };
    let runtime = read("echo_100b")?;
    let runtime_median_ns = estimate(&runtime, "median")?;
    let runtime_mean_ns = estimate(&runtime, "mean")?;
    let bare_median_ns = estimate(&read("bare_wasmtime")?, "median")?;
    let paired: PairedCallCost =
        serde_json::from_slice(&std::fs::read(paths.call_cost_paired()).with_context(|| {
            format!(
                "{} (written by the call_cost bench with PROJECTNIL_BENCH_PAIRED set)",
                paths.call_cost_paired().display()
            )
        })?)?;

    let wasm = paths.echo_wasm();
    let output = tokio::process::Command::new("node")
        .arg(paths.repo.join("bench/node/call_cost.mjs"))
        .arg(&wasm)
        .arg(paths.repo.join("bench/echo-input.json"))
        .arg(if plan.quick { "quick" } else { "full" })
        .kill_on_drop(true)
        .output()
        .await
        .context("running node")?;
    if !output.status.success() {
        bail!(
            "call_cost.mjs failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let v8: Value = serde_json::from_slice(&output.stdout)?;
    let number = |path: &[&str]| -> anyhow::Result<f64> {
        let mut v = &v8;
        for key in path {
            v = &v[*key];
        }
        v.as_f64()
            .with_context(|| format!("no {path:?} from call_cost.mjs"))
    };
    let paired_ratio = paired.ratio_median;
    let result = CallCost {
        taken: taken.finish(),
        runtime_median_ns,
        runtime_mean_ns,
        bare_median_ns,
        v8_fresh_median_ns: number(&["fresh", "median_ns"])?,
        v8_fresh_mean_ns: number(&["fresh", "mean_ns"])?,
        v8_reuse_median_ns: number(&["reuse", "median_ns"])?,
        v8_version: format!(
            "node {} (V8 {})",
            v8["node"].as_str().unwrap_or("?"),
            v8["v8"].as_str().unwrap_or("?")
        ),
        wasm_bytes: std::fs::metadata(&wasm)?.len() as usize,
        paired: Some(paired),
    };
    eprintln!(
        "bench:   runtime {:.1} µs (bare wasmtime {:.1} µs; {:.2}× in paired rounds); V8 fresh instance {:.1} µs, reused {:.2} µs",
        result.runtime_median_ns / 1e3,
        result.bare_median_ns / 1e3,
        paired_ratio,
        result.v8_fresh_median_ns / 1e3,
        result.v8_reuse_median_ns / 1e3
    );
    Ok(result)
}
