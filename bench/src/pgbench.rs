//! The SQL floor: pgbench replaying the statements a server path sends, with
//! prepared statements planned as the server's are (as sqlx does, with the
//! server's `plan_cache_mode`) and the same number of clients.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::stats::{self, Latency, Throughput};

fn binary() -> PathBuf {
    let in_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join("pgbench").is_file()))
        .unwrap_or(false);
    if in_path {
        return PathBuf::from("pgbench");
    }
    for version in ["17", "16", "15", "14"] {
        let path = PathBuf::from(format!("/usr/lib/postgresql/{version}/bin/pgbench"));
        if path.is_file() {
            return path;
        }
    }
    PathBuf::from("pgbench")
}

/// Runs `script` for `duration` with `clients` connections; `defines` become
/// pgbench variables (`-D name=value`). Latencies come from pgbench's
/// per-transaction log.
pub async fn run(
    db_url: &str,
    script: &Path,
    clients: usize,
    duration: Duration,
    defines: &[(&str, &str)],
    work: &Path,
) -> anyhow::Result<Throughput> {
    let logs = work.join(format!(
        "pgbench-{}-{clients}",
        script.file_stem().unwrap_or_default().to_string_lossy()
    ));
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs)?;
    let threads = clients.min(2);
    let mut command = tokio::process::Command::new(binary());
    command
        .args(["-n", "-M", "prepared", "--no-vacuum"])
        .args(["-c", &clients.to_string(), "-j", &threads.to_string()])
        .args(["-T", &duration.as_secs().max(1).to_string()])
        .arg("-f")
        .arg(script)
        .arg("-l")
        .arg(format!("--log-prefix={}", logs.join("tx").display()))
        .env(
            "PGOPTIONS",
            format!("-c plan_cache_mode={}", server::db::PLAN_CACHE_MODE),
        )
        .kill_on_drop(true);
    for (name, value) in defines {
        command.arg("-D").arg(format!("{name}={value}"));
    }
    // libpq takes the URL itself as the database name: host, port, user and
    // `sslmode` as the server and PostGraphile read them.
    command.arg(db_url);
    let output = command.output().await.context("running pgbench")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed: {}{}",
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let tps: f64 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no tps in pgbench output:\n{stdout}"))?;
    let failed: u64 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("number of failed transactions: "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    // Per-transaction log lines: client_id transaction_no time_us script_no epoch epoch_us
    let mut histogram = stats::histogram();
    for entry in std::fs::read_dir(&logs)? {
        let text = std::fs::read_to_string(entry?.path())?;
        for line in text.lines() {
            if let Some(us) = line
                .split_whitespace()
                .nth(2)
                .and_then(|t| t.parse::<u64>().ok())
            {
                histogram.saturating_record(us.max(1));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&logs);
    Ok(Throughput {
        requests: histogram.len(),
        errors: failed,
        seconds: duration.as_secs_f64(),
        per_second: tps,
        latency: Latency::of(&histogram),
        histogram: Some(histogram),
    })
}
