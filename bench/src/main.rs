//! `loadgen`: the benchmark driver behind `scripts/bench` (see BENCHMARKS.md).
//!
//! - `loadgen prepare --dir D` compiles the echo fixture with the AssemblyScript
//!   CLI and the platform's flags into `D/echo.wasm` (the module the criterion
//!   bench and its V8 peer both run).
//! - `loadgen run --dir D --db-name N [--quick] [--only a,b]` starts
//!   `projectnil serve` on a fresh database `N` (dropped afterwards), measures
//!   each figure and its floor or peer in the same run, and merges the numbers
//!   into `D/results.json`.
//! - `loadgen fanout-floor --shape tasks|direct` is the fan-out's floor, a
//!   bare WebSocket server that `run` starts as a child process
//!   (`fanout_floor.rs`).
//! - `loadgen report --dir D --markdown BENCHMARKS.md` rewrites the tables
//!   between the markers in BENCHMARKS.md from `D/results.json`.
//!
//! All traffic goes to 127.0.0.1; every loop is bounded in time and count.

mod background;
mod callcost;
mod compile;
mod env;
mod execute;
mod fanout;
mod fanout_floor;
mod gql;
mod growth;
mod list;
mod load;
mod pgbench;
mod postgraphile;
mod raw_ws;
mod report;
mod results;
mod soak;
mod stats;
mod ws_frame;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::results::Results;

#[derive(Parser)]
#[command(about = "ProjectNIL benchmarks (run through scripts/bench)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile the echo fixture into DIR/echo.wasm with the asc CLI.
    Prepare {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Run the benchmarks and merge their numbers into DIR/results.json.
    Run {
        #[arg(long)]
        dir: PathBuf,
        /// Database to create for the server (dropped at the end).
        #[arg(long)]
        db_name: String,
        /// Small counts and short durations (a CI smoke run).
        #[arg(long)]
        quick: bool,
        /// Comma-separated subset of: callcost, execute, compile, fanout, list, background, growth.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// The `projectnil` binary (default: next to this one).
        #[arg(long)]
        server_bin: Option<PathBuf>,
        /// The fan-out's subscribers (default 10,000; 1,000 with --quick).
        #[arg(long)]
        subscribers: Option<usize>,
    },
    /// Minutes of mixed load with live subscribers (see `soak.rs`); writes
    /// DIR/soak.json and DIR/soak.md.
    Soak {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        db_name: String,
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
        #[arg(long, default_value_t = 8)]
        clients: usize,
        #[arg(long, default_value_t = 200)]
        subscribers: usize,
        #[arg(long)]
        server_bin: Option<PathBuf>,
    },
    /// The fan-out's floor, a bare WebSocket server (see `fanout_floor.rs`);
    /// started by `run` itself.
    #[command(hide = true)]
    FanoutFloor {
        #[arg(long, value_enum, default_value = "tasks")]
        shape: fanout_floor::Shape,
    },
    /// Rewrite the generated tables of a markdown file from DIR/results.json;
    /// when it lacks some figures, of a copy in DIR instead.
    Report {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        markdown: PathBuf,
    },
}

pub const FIGURES: &[&str] = &[
    "callcost",
    "execute",
    "compile",
    "fanout",
    "list",
    "background",
    "growth",
];

/// Durations and counts of one mode.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub quick: bool,
    /// Measured seconds per load level (execute, list), and its warm-up.
    pub level_secs: u64,
    pub warmup_secs: u64,
    /// Fresh compiles and cache hits measured, and runs of the asc CLI.
    pub compiles: usize,
    pub cache_hits: usize,
    pub asc_runs: usize,
    /// Subscription fan-out: subscribers, executions per second and for how
    /// long.
    pub subscribers: usize,
    pub create_rate: f64,
    pub fanout_secs: u64,
    /// Functions in the database for the list query, and its clients.
    pub list_functions: i64,
    pub list_clients: usize,
}

impl Plan {
    pub fn new(quick: bool) -> Self {
        if quick {
            Plan {
                quick,
                level_secs: 3,
                warmup_secs: 1,
                compiles: 3,
                cache_hits: 5,
                asc_runs: 1,
                subscribers: 1000,
                create_rate: 5.0,
                fanout_secs: 5,
                list_functions: 10_000,
                list_clients: 8,
            }
        } else {
            Plan {
                quick,
                level_secs: 15,
                warmup_secs: 2,
                compiles: 15,
                cache_hits: 20,
                asc_runs: 3,
                subscribers: 10_000,
                create_rate: 5.0,
                fanout_secs: 30,
                list_functions: 10_000,
                list_clients: 8,
            }
        }
    }
}

/// Where things are: the repository root (the current directory when run by
/// `scripts/bench`) and the work directory of this run.
#[derive(Debug, Clone)]
pub struct Paths {
    pub repo: PathBuf,
    pub dir: PathBuf,
}

impl Paths {
    pub fn compiler_dir(&self) -> PathBuf {
        self.repo.join("server/compiler")
    }
    pub fn echo_wasm(&self) -> PathBuf {
        self.dir.join("echo.wasm")
    }
    /// A test function's source; `add` is the contract's example, kept once
    /// beside the compiler.
    pub fn fixture(&self, name: &str) -> PathBuf {
        if name == "add" {
            return self.repo.join(server::compile::EXAMPLE_PATH);
        }
        self.repo
            .join(format!("tests/fixtures/functions/{name}.ts"))
    }
    /// The call cost's paired rounds, written by `server/benches/call_cost.rs`.
    pub fn call_cost_paired(&self) -> PathBuf {
        self.dir.join("call_cost_paired.json")
    }
    pub fn results(&self) -> PathBuf {
        self.dir.join("results.json")
    }
}

/// `--server-bin`, or the `projectnil` built beside this binary.
fn server_bin_or_beside_me(server_bin: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match server_bin {
        Some(bin) => Ok(bin),
        None => Ok(std::env::current_exe()?
            .parent()
            .context("binary directory")?
            .join("projectnil")),
    }
}

/// The 100-byte input of the call-cost and execute benchmarks.
pub const ECHO_INPUT: &str = include_str!("../echo-input.json");

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let repo = std::env::current_dir()?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Prepare { dir } => {
            std::fs::create_dir_all(&dir)?;
            let paths = Paths { repo, dir };
            let took = compile::asc_cli(&paths, &paths.fixture("echo"), &paths.echo_wasm())?;
            eprintln!(
                "bench: compiled echo.ts in {:.1} s -> {}",
                took.as_secs_f64(),
                paths.echo_wasm().display()
            );
            Ok(())
        }
        Command::Run {
            dir,
            db_name,
            quick,
            only,
            server_bin,
            subscribers,
        } => {
            for name in &only {
                anyhow::ensure!(
                    FIGURES.contains(&name.as_str()),
                    "unknown figure {name:?}; one of {FIGURES:?}"
                );
            }
            let figures: Vec<&str> = FIGURES
                .iter()
                .copied()
                .filter(|f| only.is_empty() || only.iter().any(|o| o == f))
                .collect();
            std::fs::create_dir_all(&dir)?;
            let paths = Paths { repo, dir };
            let server_bin = server_bin_or_beside_me(server_bin)?;
            let mut plan = Plan::new(quick);
            if let Some(subscribers) = subscribers {
                anyhow::ensure!(
                    subscribers >= 10,
                    "--subscribers: at least 10 (one of each group)"
                );
                plan.subscribers = subscribers;
            }
            let mut results = Results::load(&paths.results())?;
            let outcome = tokio.block_on(async {
                tokio::select! {
                    outcome = run(&paths, &plan, &db_name, &server_bin, &figures, &mut results) => outcome,
                    _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
                }
            });
            // Whatever happened, the database goes.
            tokio.block_on(env::drop_database(&db_name)).ok();
            outcome
        }
        Command::FanoutFloor { shape } => tokio.block_on(fanout_floor::serve(shape)),
        Command::Soak {
            dir,
            db_name,
            minutes,
            clients,
            subscribers,
            server_bin,
        } => {
            std::fs::create_dir_all(&dir)?;
            let paths = Paths { repo, dir };
            let server_bin = server_bin_or_beside_me(server_bin)?;
            let outcome = tokio.block_on(async {
                env::create_database(&db_name).await?;
                let server =
                    env::Server::start(&server_bin, &env::database_url(&db_name), &paths).await?;
                eprintln!(
                    "soak: server pid {} at {}, {minutes} minutes",
                    server.pid, server.base_url
                );
                let duration = std::time::Duration::from_secs_f64(minutes * 60.0);
                let report = soak::run(&server, duration, clients, subscribers).await;
                server.stop().await;
                report
            });
            tokio.block_on(env::drop_database(&db_name)).ok();
            let report = outcome?;
            std::fs::write(
                paths.dir.join("soak.json"),
                serde_json::to_string_pretty(&report)?,
            )?;
            let markdown = soak::markdown(&report);
            std::fs::write(paths.dir.join("soak.md"), &markdown)?;
            println!("{markdown}");
            anyhow::ensure!(
                report.errors == 0 && report.executions_left_unfinished == 0,
                "the soak saw errors or unfinished executions"
            );
            Ok(())
        }
        Command::Report { dir, markdown } => {
            let paths = Paths { repo, dir };
            let results = Results::load(&paths.results())?;
            let missing = results.missing();
            // Tables rewritten from part of the figures would drop the
            // others' rows, measured in an earlier run on another machine.
            let markdown = if missing.is_empty() {
                markdown
            } else {
                let partial = paths.dir.join("BENCHMARKS.md");
                if partial != markdown {
                    std::fs::copy(&markdown, &partial)
                        .with_context(|| format!("copying {}", markdown.display()))?;
                }
                eprintln!(
                    "bench: {} has no numbers of {} (a full `scripts/bench` run on this \
                     machine measures them); {} is left as it is",
                    paths.results().display(),
                    missing.join(", "),
                    markdown.display()
                );
                partial
            };
            report::rewrite(&markdown, &results)?;
            eprintln!("bench: tables in {} rewritten", markdown.display());
            Ok(())
        }
    }
}

async fn run(
    paths: &Paths,
    plan: &Plan,
    db_name: &str,
    server_bin: &std::path::Path,
    figures: &[&str],
    results: &mut Results,
) -> anyhow::Result<()> {
    results.machine = results::Machine::describe(paths, plan.quick);
    if figures.contains(&"callcost") {
        results.call_cost = Some(callcost::run(paths, plan).await?);
        results.save(&paths.results())?;
    }
    let server_figures: Vec<&str> = figures
        .iter()
        .copied()
        .filter(|f| *f != "callcost")
        .collect();
    if server_figures.is_empty() {
        return Ok(());
    }
    env::create_database(db_name).await?;
    let db_url = env::database_url(db_name);
    let server = env::Server::start(server_bin, &db_url, paths).await?;
    eprintln!("bench: server pid {} at {}", server.pid, server.base_url);
    let outcome = async {
        let client = gql::Client::new(&server.base_url);
        for figure in server_figures {
            eprintln!("bench: == {figure}");
            match figure {
                "execute" => {
                    results.execute = Some(execute::run(paths, plan, &client, &db_url).await?)
                }
                "compile" => {
                    results.compile = Some(compile::run(paths, plan, &client, &server).await?)
                }
                "fanout" => {
                    results.fanout =
                        Some(fanout::run(paths, plan, &client, &server, &db_url).await?)
                }
                "list" => results.list = Some(list::run(paths, plan, &client, &db_url).await?),
                "growth" => {
                    results.growth =
                        Some(growth::run(paths, plan, &client, &db_url, server_bin, db_name).await?)
                }
                "background" => {
                    results.background = Some(
                        background::run(paths, plan, &client, &server, server_bin, db_name).await?,
                    )
                }
                _ => unreachable!(),
            }
            results.save(&paths.results())?;
        }
        anyhow::Ok(())
    }
    .await;
    server.stop().await;
    outcome
}
