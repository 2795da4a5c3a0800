//! The numbers of a run, kept in `results.json` so a figure can be re-run
//! alone (`--only`) and the report rewritten from the rest.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::Paths;
use crate::stats::{Latency, Throughput};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Results {
    pub machine: Machine,
    pub call_cost: Option<CallCost>,
    pub execute: Option<Execute>,
    pub compile: Option<Compile>,
    pub fanout: Option<Fanout>,
    pub list: Option<List>,
    pub background: Option<Background>,
    pub growth: Option<Growth>,
}

impl Results {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// The figures (as named by `--only`) these results have no numbers of.
    pub fn missing(&self) -> Vec<&'static str> {
        let measured = [
            ("callcost", self.call_cost.is_some()),
            ("execute", self.execute.is_some()),
            ("compile", self.compile.is_some()),
            ("fanout", self.fanout.is_some()),
            ("list", self.list.is_some()),
            ("background", self.background.is_some()),
            ("growth", self.growth.is_some()),
        ];
        measured
            .into_iter()
            .filter(|(_, has)| !has)
            .map(|(figure, _)| figure)
            .collect()
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }
}

/// When each figure was taken and how busy the machine was (the 1-minute
/// load average before and after: the machine is shared).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Taken {
    pub at: String,
    pub load_before: f64,
    pub load_after: f64,
}

impl Taken {
    pub fn start() -> Self {
        Self {
            at: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            load_before: load_average(),
            load_after: 0.0,
        }
    }

    pub fn finish(mut self) -> Self {
        self.load_after = load_average();
        self
    }
}

pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub date: String,
    pub commit: String,
    pub mode: String,
    pub rustc: String,
    pub node: String,
    pub postgres: String,
}

impl Machine {
    pub fn describe(paths: &Paths, quick: bool) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|x| x.1))
            .unwrap_or("unknown")
            .trim()
            .to_string();
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                let kb: f64 = m
                    .lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()?;
                Some((kb / 1024.0 / 1024.0 * 10.0).round() / 10.0)
            })
            .unwrap_or(0.0);
        let output = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .current_dir(&paths.repo)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_else(|| "unknown".into())
        };
        let mut commit = output("git", &["rev-parse", "--short", "HEAD"]);
        let dirty = Command::new("git")
            .args(["diff", "--quiet", "HEAD"])
            .current_dir(&paths.repo)
            .status()
            .map(|s| !s.success())
            .unwrap_or(false);
        if dirty {
            commit.push_str(" + uncommitted changes");
        }
        Self {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            memory_gib,
            date: chrono::Utc::now().format("%Y-%m-%d").to_string(),
            commit,
            mode: if quick { "quick" } else { "full" }.into(),
            rustc: output("rustc", &["--version"]),
            node: output("node", &["--version"]),
            postgres: output("psql", &["--version"]),
        }
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct CallCost {
    pub taken: Taken,
    /// criterion's median and mean of `Runtime::execute` (ns per call).
    pub runtime_median_ns: f64,
    pub runtime_mean_ns: f64,
    /// criterion's median of the bare-wasmtime floor (`call_cost/bare_wasmtime`).
    #[serde(default)]
    pub bare_median_ns: f64,
    /// V8 with a fresh `WebAssembly.Instance` per call, and with one reused.
    pub v8_fresh_median_ns: f64,
    /// V8's fresh-instance batches are bimodal (garbage collection of the
    /// instances' memories), so the mean is kept too.
    #[serde(default)]
    pub v8_fresh_mean_ns: f64,
    pub v8_reuse_median_ns: f64,
    pub v8_version: String,
    pub wasm_bytes: usize,
    /// The runtime and the floor in alternating batches (absent from runs
    /// before session 33).
    #[serde(default)]
    pub paired: Option<PairedCallCost>,
}

/// What `server/benches/call_cost.rs` writes of its paired rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairedCallCost {
    pub rounds: usize,
    pub calls_per_batch: usize,
    pub bare_median_ns: f64,
    pub runtime_median_ns: f64,
    pub ratio_median: f64,
    pub ratio_p10: f64,
    pub ratio_p90: f64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ExecuteLevel {
    pub clients: usize,
    pub http: Throughput,
    pub pgbench: Throughput,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Execute {
    pub taken: Taken,
    pub levels: Vec<ExecuteLevel>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Compile {
    pub taken: Taken,
    pub source: String,
    /// createFunction → READY (seen on `functionStatusChanged(id)`), new source.
    pub fresh: Latency,
    /// The same, for a source compiled before (content-cache hit).
    pub cache_hit: Latency,
    /// Wall time of one `asc` CLI run on the same file (several runs).
    pub asc_cli: Latency,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Fanout {
    pub taken: Taken,
    /// Four in ten follow every function, four the executed one, two
    /// another function.
    pub subscribers: usize,
    /// `executeFunction` calls while measuring, and their rate.
    #[serde(alias = "functions_created")]
    pub executions: usize,
    #[serde(alias = "create_rate_per_s")]
    pub rate_per_s: f64,
    /// Execution events the bare LISTEN client saw while measuring.
    pub events: u64,
    /// Event messages received by the subscribers that follow all or the
    /// executed function, and how many would be `events × those subscribers`.
    pub delivered: u64,
    pub expected: u64,
    /// Events that reached subscribers of another function (must be 0).
    #[serde(default)]
    pub misrouted: u64,
    pub websocket: Latency,
    pub listen: Latency,
    pub rss_idle_mb: f64,
    pub rss_subscribed_mb: f64,
    pub rss_peak_mb: f64,
    /// Length of the measured window, and the CPU seconds the server and the
    /// load generator used in it (2 cores: at most 2 s per second together).
    #[serde(default)]
    pub measured_s: f64,
    #[serde(default)]
    pub server_cpu_s: f64,
    #[serde(default)]
    pub loadgen_cpu_s: f64,
    /// The same subscribers and pace against bare WebSocket servers, one
    /// per shape.
    #[serde(default)]
    pub floors: Vec<FanoutFloor>,
}

/// The fan-out's floor (see `fanout_floor.rs`): three events per execution.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct FanoutFloor {
    /// How it writes (`fanout_floor::Shape::describe`).
    pub shape: String,
    pub websocket: Latency,
    pub delivered: u64,
    pub expected: u64,
    pub misrouted: u64,
    pub rss_peak_mb: f64,
    pub measured_s: f64,
    /// CPU seconds of the floor's process and of the load generator.
    pub cpu_s: f64,
    pub loadgen_cpu_s: f64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct List {
    pub taken: Taken,
    pub functions: i64,
    pub clients: usize,
    pub http: Throughput,
    pub pgbench: Throughput,
    /// Server ÷ pgbench in each pair of turns (empty before session 15,
    /// when each ran once, one after the other).
    #[serde(default)]
    pub turn_ratios: Vec<f64>,
    /// The same page from a GraphQL server users might pick instead.
    #[serde(default)]
    pub peer: Option<Peer>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Peer {
    pub name: String,
    pub throughput: Throughput,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Background {
    pub taken: Taken,
    /// startExecution → COMPLETED event, one at a time.
    pub latency: Latency,
    /// pgmq send + NOTIFY → LISTEN wake → read.
    pub floor: Latency,
    /// Where the latency's time went (absent from results of before
    /// session 28).
    #[serde(default)]
    pub stages: Option<BackgroundStages>,
    /// Wasm threads + the synchronous queue of one server.
    pub capacity: usize,
    pub overload: Vec<Overload>,
    /// Median run time of one burn execution, idle server.
    pub burn_ms: f64,
    /// cores / burn_ms: what the machine could do with no overhead at all.
    pub ideal_per_second: f64,
    pub throughput: Vec<WorkerThroughput>,
    /// A read on the same server, idle and while it drains a backlog of
    /// burn executions (absent from results of before session 25).
    #[serde(default)]
    pub beside_backlog: Option<BesideBacklog>,
}

/// The medians of a background execution's stages, from its row's
/// timestamps and the load generator's clock.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct BackgroundStages {
    /// startExecution sent → its transaction began (`created_at`).
    pub accepted_ms: f64,
    /// → RUNNING written (`started_at`): the accepting transaction, the
    /// NOTIFY, the worker's read and claim.
    pub claimed_ms: f64,
    /// → the outcome written (`completed_at`): the claim's commit, the run,
    /// the finishing statement.
    pub finished_ms: f64,
    /// → the COMPLETED event read: the commit, the NOTIFY, the server's load
    /// and fan-out.
    pub heard_ms: f64,
}

impl BackgroundStages {
    pub fn describe(&self) -> String {
        format!(
            "asked → accepted {:.2} ms, → RUNNING {:.2} ms, → finished {:.2} ms, → COMPLETED heard {:.2} ms",
            self.accepted_ms, self.claimed_ms, self.finished_ms, self.heard_ms
        )
    }
}

/// A one-statement read from a few clients, on the idle server and then
/// while the same process runs a backlog of CPU-bound background executions.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct BesideBacklog {
    pub clients: usize,
    /// Background executions queued before the read began.
    pub backlog: usize,
    pub idle: Throughput,
    pub draining: Throughput,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Overload {
    pub factor: usize,
    pub calls: usize,
    pub accepted: usize,
    pub refused: usize,
    pub errors: usize,
    pub latency: Latency,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct WorkerThroughput {
    pub workers: usize,
    pub executions: usize,
    pub seconds: f64,
    pub per_second: f64,
}

/// One table size of the growth figure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrowthLevel {
    pub executions: i64,
    pub stats: Throughput,
    pub page: Throughput,
    pub execute: Throughput,
    /// The baseline's server, in turns with this size's (since session 24;
    /// before, the first size was the baseline, measured once).
    #[serde(default)]
    pub baseline: Option<GrowthBaseline>,
}

/// The growth figures of a database kept at `executions`, each measured in
/// turns with a size's, and the ratio of each pair of turns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrowthBaseline {
    pub executions: i64,
    pub stats: Throughput,
    pub page: Throughput,
    pub execute: Throughput,
    pub stats_turns: Vec<f64>,
    pub page_turns: Vec<f64>,
    pub execute_turns: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Growth {
    pub taken: Taken,
    pub clients: usize,
    pub levels: Vec<GrowthLevel>,
}
