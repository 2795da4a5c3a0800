//! Command line and settings: every flag has an environment fallback, and the
//! names and defaults are the ones in the contract (`shared/contract/README.md`).
//! The compiler and playground directories default to the ones of the checkout
//! found at run time ([`SourceDir`]), never to where the binary was compiled: a
//! shared target dir may hold a binary built from another checkout.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::http::ws;

#[derive(Debug, Parser)]
#[command(
    name = "projectnil",
    version,
    about = "WebAssembly functions with a live GraphQL API"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    #[command(flatten)]
    pub database: DatabaseSettings,

    /// Log format on stderr.
    #[arg(
        long,
        env = "PROJECTNIL_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply migrations, serve HTTP + WebSocket, run a compiler worker unless
    /// --no-worker and background executions unless --no-execution-worker.
    Serve(ServeSettings),
    /// Compile functions and run background executions (scale out by running
    /// several, on any host that reaches the database); --only picks one.
    Worker(WorkerSettings),
    /// Apply migrations and exit.
    Migrate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseSettings {
    /// PostgreSQL URL; the database is created when it does not exist yet.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/projectnil",
        global = true
    )]
    pub database_url: String,

    /// Connections in this process's pool.
    #[arg(
        long,
        env = "PROJECTNIL_DB_POOL_SIZE",
        default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..=10_000),
        global = true
    )]
    pub db_pool_size: u32,
}

#[derive(Debug, Clone, Args)]
pub struct ServeSettings {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "PROJECTNIL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Do not run the in-process compiler worker.
    #[arg(long, env = "PROJECTNIL_NO_WORKER")]
    pub no_worker: bool,

    /// Do not take background executions from `execution_jobs` (this server
    /// still runs the synchronous ones its clients wait for).
    #[arg(long, env = "PROJECTNIL_NO_EXECUTION_WORKER")]
    pub no_execution_worker: bool,

    #[command(flatten)]
    pub api: ApiSettings,

    #[command(flatten)]
    pub execution: ExecutionSettings,

    #[command(flatten)]
    pub compiler: CompilerSettings,

    #[command(flatten)]
    pub retention: RetentionSettings,
}

#[derive(Debug, Clone, Args)]
pub struct WorkerSettings {
    /// Do only one kind of work (default: both).
    #[arg(long, env = "PROJECTNIL_WORKER_ONLY")]
    pub only: Option<WorkKind>,

    #[command(flatten)]
    pub compiler: CompilerSettings,

    #[command(flatten)]
    pub execution: ExecutionSettings,

    #[command(flatten)]
    pub retention: RetentionSettings,
}

/// How long executions and their statistics are kept.
#[derive(Debug, Clone, Args)]
pub struct RetentionSettings {
    /// Executions older than this are removed (`30d`, `12h`, …; `off` keeps them all).
    #[arg(long, env = "PROJECTNIL_EXECUTION_RETENTION", default_value = "30d")]
    pub execution_retention: Retention,

    /// Statistics rollups older than this are removed (`off` keeps them all).
    #[arg(long, env = "PROJECTNIL_STATS_RETENTION", default_value = "400d")]
    pub stats_retention: Retention,

    /// How often each process offers to do the maintenance (partitions ahead,
    /// retention), in milliseconds; one process at a time does it.
    #[arg(long, env = "PROJECTNIL_MAINTENANCE_INTERVAL_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub maintenance_interval_ms: u64,
}

/// How long something is kept: `off` (for ever) or a duration such as `30d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    Forever,
    For(Duration),
}

impl std::str::FromStr for Retention {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(Self::Forever);
        }
        match humantime::parse_duration(text) {
            Ok(duration) if !duration.is_zero() => Ok(Self::For(duration)),
            _ => Err(format!(
                "expected `off` or a duration such as `30d`, `12h` or `90m`, got `{text}`"
            )),
        }
    }
}

/// What a `projectnil worker` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorkKind {
    /// Compile functions (`compilation_jobs`).
    Compilations,
    /// Run background executions (`execution_jobs`).
    Executions,
}

impl WorkerSettings {
    pub fn compiles(&self) -> bool {
        self.only != Some(WorkKind::Executions)
    }

    pub fn executes(&self) -> bool {
        self.only != Some(WorkKind::Compilations)
    }
}

/// Limits of the GraphQL API.
#[derive(Debug, Clone, Args)]
pub struct ApiSettings {
    /// Largest accepted function source, in bytes.
    #[arg(long, env = "PROJECTNIL_MAX_SOURCE_BYTES", default_value_t = 256 * 1024)]
    pub max_source_bytes: usize,

    /// Compilation jobs that may wait in `compilation_jobs`, over every
    /// process; beyond that, createFunction and a recompiling updateFunction
    /// answer TOO_MANY_REQUESTS.
    #[arg(long, env = "PROJECTNIL_COMPILE_BACKLOG", default_value_t = 10_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub compile_backlog: usize,

    /// Largest accepted execution input (serialized JSON), in bytes.
    #[arg(long, env = "PROJECTNIL_MAX_INPUT_BYTES", default_value_t = 1024 * 1024)]
    pub max_input_bytes: usize,

    /// Largest accepted HTTP request body, in bytes.
    #[arg(long, env = "PROJECTNIL_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Deepest accepted GraphQL query.
    #[arg(long, env = "PROJECTNIL_MAX_QUERY_DEPTH", default_value_t = 16)]
    pub max_query_depth: usize,

    /// Highest accepted GraphQL query complexity.
    #[arg(long, env = "PROJECTNIL_MAX_QUERY_COMPLEXITY", default_value_t = 5000)]
    pub max_query_complexity: usize,

    /// Most operations in one batched GraphQL request (a JSON array).
    #[arg(long, env = "PROJECTNIL_MAX_BATCH", default_value_t = 10)]
    pub max_batch: usize,

    /// Comma-separated API keys. When set, every GraphQL operation needs
    /// `Authorization: Bearer <key>` (WebSocket: in the connection_init payload).
    #[arg(long, env = "PROJECTNIL_API_KEYS", hide_env_values = true)]
    pub api_keys: Option<crate::auth::ApiKeys>,

    /// Origins whose pages may call the API from a browser (CORS): a
    /// comma-separated list such as `https://dash.example.com,http://localhost:5173`,
    /// or `*` for any. Unset: only pages served by this server.
    #[arg(long, env = "PROJECTNIL_CORS_ORIGINS")]
    pub cors_origins: Option<CorsOrigins>,

    /// Directory of the built playground and GraphiQL assets. Default:
    /// `playground/dist` in the current directory or the nearest of its parents
    /// that has one, else in the nearest parent of the executable's directory that
    /// has one (target/debug/projectnil → the checkout); when there is none, the
    /// pages say how to build it.
    #[arg(long, env = "PROJECTNIL_PLAYGROUND_DIR")]
    pub playground_dir: Option<PathBuf>,

    /// A `graphql-transport-ws` connection that has not sent connection_init
    /// this long after opening is closed with 4408, in milliseconds.
    #[arg(long, env = ws::INIT_TIMEOUT_ENV, default_value_t = millis(ws::DEFAULT_INIT_TIMEOUT), value_parser = clap::value_parser!(u64).range(1..))]
    pub ws_init_timeout_ms: u64,

    /// How often an acknowledged WebSocket gets a keep-alive, in
    /// milliseconds; a peer that answers nothing by the next one is closed.
    #[arg(long, env = ws::KEEPALIVE_ENV, default_value_t = millis(ws::DEFAULT_KEEPALIVE), value_parser = clap::value_parser!(u64).range(1..))]
    pub ws_keepalive_ms: u64,

    /// Operations live at once on one WebSocket; one more is refused with
    /// TOO_MANY_REQUESTS.
    #[arg(long, env = ws::MAX_OPERATIONS_ENV, default_value_t = ws::DEFAULT_MAX_OPERATIONS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub ws_max_operations: usize,

    /// A WebSocket client that takes nothing of what waits for it this long
    /// is disconnected, in milliseconds.
    #[arg(long, env = ws::SEND_TIMEOUT_ENV, default_value_t = millis(ws::DEFAULT_SEND_TIMEOUT), value_parser = clap::value_parser!(u64).range(1..))]
    pub ws_send_timeout_ms: u64,
}

/// The origins of `PROJECTNIL_CORS_ORIGINS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    Any,
    Only(Vec<String>),
}

impl std::str::FromStr for CorsOrigins {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim() == "*" {
            return Ok(Self::Any);
        }
        let origins: Vec<String> = text
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_string())
            .filter(|o| !o.is_empty())
            .collect();
        if origins.is_empty() {
            return Err("give at least one origin, or *".into());
        }
        let is_origin = |o: &str| {
            o.split_once("://").is_some_and(|(scheme, host)| {
                matches!(scheme, "http" | "https") && !host.is_empty() && !host.contains('/')
            })
        };
        if let Some(bad) = origins.iter().find(|o| !is_origin(o)) {
            return Err(format!(
                "{bad:?} is not an origin: write scheme://host[:port], e.g. https://dash.example.com"
            ));
        }
        Ok(Self::Only(origins))
    }
}

const fn millis(duration: Duration) -> u64 {
    duration.as_millis() as u64
}

impl ApiSettings {
    /// The WebSocket endpoint's timings and limits; its largest message is
    /// the largest request body.
    pub fn websocket(&self) -> ws::WsSettings {
        ws::WsSettings {
            init_timeout: Duration::from_millis(self.ws_init_timeout_ms),
            keepalive: Duration::from_millis(self.ws_keepalive_ms),
            max_message_bytes: self.max_body_bytes,
            max_operations: self.ws_max_operations,
            send_timeout: Duration::from_millis(self.ws_send_timeout_ms),
        }
    }

    /// The setting, or the directory [`PLAYGROUND_DIR`] finds. When none is
    /// found, `playground/dist` under the current directory (built later, it is
    /// served without a restart) and a warning that says where it looked.
    pub fn playground_dir(&self) -> PathBuf {
        let located = match &self.playground_dir {
            Some(dir) => Ok(dir.clone()),
            None => PLAYGROUND_DIR.locate_here(),
        };
        match located {
            Ok(dir) => {
                tracing::info!(dir = %dir.display(), "playground.dir");
                dir
            }
            Err(not_found) => {
                let dir = not_found.fallback();
                tracing::warn!(dir = %dir.display(), looked = %not_found, "playground.not_found");
                dir
            }
        }
    }
}

/// Limits of one execution of user code, and how a process schedules them.
#[derive(Debug, Clone, Args)]
pub struct ExecutionSettings {
    /// CPU time one execution may use (instantiation plus `handle`), in
    /// milliseconds; time spent waiting for a wasm thread or a core is not counted.
    #[arg(long, env = "PROJECTNIL_EXEC_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub exec_timeout_ms: u64,

    /// Executions running at once in this process (wasm threads). Default: the
    /// number of cores.
    #[arg(long, env = "PROJECTNIL_EXEC_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub exec_concurrency: Option<u32>,

    /// Synchronous executions that may wait in this process beyond one per wasm
    /// thread; beyond that, executeFunction answers TOO_MANY_REQUESTS.
    #[arg(long, env = "PROJECTNIL_EXEC_QUEUE", default_value_t = 64)]
    pub exec_queue: usize,

    /// Background executions that may wait in `execution_jobs`, over every
    /// process; beyond that, startExecution answers TOO_MANY_REQUESTS.
    #[arg(long, env = "PROJECTNIL_EXEC_BACKLOG", default_value_t = 10_000)]
    pub exec_backlog: usize,

    /// Runs of a background execution that crashes may interrupt before it
    /// ends FAILED.
    #[arg(long, env = "PROJECTNIL_EXEC_MAX_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..))]
    pub exec_max_attempts: i32,

    /// How long an execution stays its process's without a renewal, in
    /// milliseconds: how soon a crash is noticed (renewed every third of it).
    #[arg(long, env = "PROJECTNIL_EXEC_LEASE_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub exec_lease_ms: u64,

    /// Linear-memory cap of one execution, in MiB (wasm32 addresses 4 GiB at most).
    #[arg(long, env = "PROJECTNIL_EXEC_MEMORY_MB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub exec_memory_mb: u64,

    /// Largest accepted function output (serialized JSON), in bytes.
    #[arg(long, env = "PROJECTNIL_MAX_OUTPUT_BYTES", default_value_t = 1024 * 1024, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_output_bytes: usize,

    /// Budget of the compiled-module cache, in MiB.
    #[arg(long, env = "PROJECTNIL_MODULE_CACHE_MB", default_value_t = 256, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_048_576))]
    pub module_cache_mb: usize,
}

impl ExecutionSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.exec_timeout_ms)
    }

    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.exec_lease_ms)
    }

    /// Wasm threads: the setting, or the number of cores.
    pub fn concurrency(&self) -> usize {
        match self.exec_concurrency {
            Some(threads) => threads as usize,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// The compiler worker.
#[derive(Debug, Clone, Args)]
pub struct CompilerSettings {
    /// Limit of one compilation, in milliseconds.
    #[arg(long, env = "PROJECTNIL_COMPILE_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub compile_timeout_ms: u64,

    /// Tries of one job on which the compiler crashed or its worker died (or
    /// the database refused something of it), before the job is given up as
    /// poison (FAILED). A platform failure (Node.js missing, the database away
    /// for a moment) does not count (`compile::worker`).
    #[arg(long, env = "PROJECTNIL_COMPILE_MAX_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(i32).range(1..))]
    pub compile_max_attempts: i32,

    /// Node.js executable that runs the AssemblyScript compiler.
    #[arg(long, env = "PROJECTNIL_NODE", default_value = "node")]
    pub node: PathBuf,

    /// Directory holding compiler.mjs and its node_modules. Default:
    /// `server/compiler` in the current directory or the nearest of its parents
    /// that has one, else in the nearest parent of the executable's directory that
    /// has one (target/debug/projectnil → the checkout); without one, start-up fails.
    #[arg(long, env = "PROJECTNIL_COMPILER_DIR")]
    pub compiler_dir: Option<PathBuf>,
}

impl CompilerSettings {
    /// The setting, or the directory [`COMPILER_DIR`] finds.
    pub fn compiler_dir(&self) -> Result<PathBuf, NotFound> {
        match &self.compiler_dir {
            Some(dir) => Ok(dir.clone()),
            None => COMPILER_DIR.locate_here(),
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.compile_timeout_ms)
    }

    /// Jobs stay invisible to other workers for longer than a compile may
    /// take, and the worker renews this while it is on the job (a compile
    /// restarted after the compiler process was killed takes two), so a job is
    /// only redelivered when its worker died.
    pub fn visibility_timeout(&self) -> Duration {
        self.timeout() + Duration::from_secs(15)
    }
}

/// A directory of the source tree that the binary needs at run time, found
/// from where it runs when no setting names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceDir {
    /// Relative to the root of a checkout.
    pub path: &'static str,
    /// A file that must be in it for it to count (`None`: being a directory is
    /// enough).
    pub marker: Option<&'static str>,
    /// What names it explicitly, for messages.
    pub setting: &'static str,
}

/// The AssemblyScript compiler: `server/compiler`, holding `compiler.mjs`.
pub const COMPILER_DIR: SourceDir = SourceDir {
    path: "server/compiler",
    marker: Some("compiler.mjs"),
    setting: "PROJECTNIL_COMPILER_DIR (or --compiler-dir)",
};

/// The built dashboard and GraphiQL: `playground/dist`.
pub const PLAYGROUND_DIR: SourceDir = SourceDir {
    path: "playground/dist",
    marker: None,
    setting: "PROJECTNIL_PLAYGROUND_DIR (or --playground-dir)",
};

impl SourceDir {
    /// Looks for [`path`](Self::path) in `cwd` and each of its parents, then in
    /// the directory of `exe` and each of its parents; the first that qualifies
    /// wins. So the checkout one works in wins over the one the executable sits
    /// in, and an executable in `target/<profile>/` of a checkout finds that
    /// checkout from anywhere.
    pub fn locate(&self, cwd: Option<&Path>, exe: Option<&Path>) -> Result<PathBuf, NotFound> {
        let starts: Vec<PathBuf> = cwd
            .into_iter()
            .chain(exe.and_then(Path::parent))
            .map(Path::to_path_buf)
            .collect();
        for start in &starts {
            for base in start.ancestors() {
                let dir = base.join(self.path);
                let qualifies = match self.marker {
                    Some(marker) => dir.join(marker).is_file(),
                    None => dir.is_dir(),
                };
                if qualifies {
                    return Ok(dir);
                }
            }
        }
        Err(NotFound {
            dir: *self,
            searched: starts,
        })
    }

    /// [`locate`](Self::locate) from this process's current directory and
    /// executable.
    pub fn locate_here(&self) -> Result<PathBuf, NotFound> {
        let cwd = std::env::current_dir().ok();
        let exe = std::env::current_exe().ok();
        self.locate(cwd.as_deref(), exe.as_deref())
    }
}

/// No checkout around: says where [`SourceDir::locate`] looked and what to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    pub dir: SourceDir,
    /// Where the search started: the current directory, the executable's.
    pub searched: Vec<PathBuf>,
}

impl NotFound {
    /// `path` under the first place searched (the current directory).
    pub fn fallback(&self) -> PathBuf {
        self.searched
            .first()
            .map(|start| start.join(self.dir.path))
            .unwrap_or_else(|| PathBuf::from(self.dir.path))
    }
}

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let wanted = match self.dir.marker {
            Some(marker) => format!("{}/{marker}", self.dir.path),
            None => self.dir.path.to_string(),
        };
        let searched: Vec<String> = self
            .searched
            .iter()
            .map(|p| format!("{} or its parents", p.display()))
            .collect();
        if searched.is_empty() {
            write!(
                f,
                "found no {wanted}: the current directory and the executable's path are unknown"
            )?;
        } else {
            write!(f, "found no {wanted} in {}", searched.join(", nor in "))?;
        }
        write!(
            f,
            "; set {} to the {} directory of a ProjectNIL checkout",
            self.dir.setting, self.dir.path,
        )
    }
}

impl std::error::Error for NotFound {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_off_or_a_positive_duration() {
        assert_eq!("off".parse(), Ok(Retention::Forever));
        assert_eq!(" OFF ".parse(), Ok(Retention::Forever));
        assert_eq!(
            "30d".parse(),
            Ok(Retention::For(Duration::from_secs(30 * 86_400)))
        );
        assert_eq!(
            "90m".parse(),
            Ok(Retention::For(Duration::from_secs(5_400)))
        );
        for bad in ["", "0s", "soon", "-1d", "30"] {
            assert!(bad.parse::<Retention>().is_err(), "{bad}");
        }
    }

    /// A fresh directory tree under the system temp dir, removed on drop.
    struct Tree(PathBuf);

    impl Tree {
        fn new() -> Self {
            let root = std::env::temp_dir().join(format!(
                "projectnil-config-test-{}",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::create_dir_all(&root).unwrap();
            // Canonical, so paths compare equal to what `locate` builds from them.
            Self(root.canonicalize().unwrap())
        }

        fn dir(&self, relative: &str) -> PathBuf {
            let dir = self.0.join(relative);
            std::fs::create_dir_all(&dir).unwrap();
            dir
        }

        fn file(&self, relative: &str) {
            let path = self.0.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "").unwrap();
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn found_in_the_current_directory_or_a_parent() {
        let tree = Tree::new();
        tree.file("checkout/server/compiler/compiler.mjs");
        let root = tree.dir("checkout");
        let nested = tree.dir("checkout/tests/deep");
        let want = root.join("server/compiler");
        for cwd in [&root, &nested] {
            assert_eq!(COMPILER_DIR.locate(Some(cwd), None), Ok(want.clone()));
        }
    }

    #[test]
    fn the_current_checkout_wins_over_the_executables() {
        let tree = Tree::new();
        tree.file("mine/server/compiler/compiler.mjs");
        tree.file("built-here/server/compiler/compiler.mjs");
        tree.file("built-here/target/debug/projectnil");
        let exe = tree.0.join("built-here/target/debug/projectnil");
        assert_eq!(
            COMPILER_DIR.locate(Some(&tree.dir("mine")), Some(&exe)),
            Ok(tree.0.join("mine/server/compiler"))
        );
        // Elsewhere, the checkout around the executable.
        assert_eq!(
            COMPILER_DIR.locate(Some(&tree.dir("elsewhere")), Some(&exe)),
            Ok(tree.0.join("built-here/server/compiler"))
        );
        assert_eq!(
            COMPILER_DIR.locate(None, Some(&exe)),
            Ok(tree.0.join("built-here/server/compiler"))
        );
    }

    #[test]
    fn a_directory_without_its_marker_does_not_count() {
        let tree = Tree::new();
        // An empty server/compiler nearer than the real one.
        tree.dir("outer/inner/server/compiler");
        tree.file("outer/server/compiler/compiler.mjs");
        assert_eq!(
            COMPILER_DIR.locate(Some(&tree.dir("outer/inner")), None),
            Ok(tree.0.join("outer/server/compiler"))
        );
        // The playground only needs the directory.
        tree.dir("outer/inner/playground/dist");
        assert_eq!(
            PLAYGROUND_DIR.locate(Some(&tree.dir("outer/inner")), None),
            Ok(tree.0.join("outer/inner/playground/dist"))
        );
    }

    #[test]
    fn not_found_says_where_it_looked_and_what_to_set() {
        let tree = Tree::new();
        let cwd = tree.dir("nowhere");
        let exe = tree.0.join("bin/projectnil");
        let error = COMPILER_DIR.locate(Some(&cwd), Some(&exe)).unwrap_err();
        assert_eq!(error.searched, vec![cwd.clone(), tree.0.join("bin")]);
        let message = error.to_string();
        assert!(
            message.contains("server/compiler/compiler.mjs"),
            "{message}"
        );
        assert!(message.contains(&cwd.display().to_string()), "{message}");
        assert!(message.contains("PROJECTNIL_COMPILER_DIR"), "{message}");
        let error = PLAYGROUND_DIR.locate(Some(&cwd), Some(&exe)).unwrap_err();
        assert_eq!(error.fallback(), cwd.join("playground/dist"));
        assert!(error.to_string().contains("PROJECTNIL_PLAYGROUND_DIR"));
    }

    #[test]
    fn settings_out_of_range_are_refused_at_start_up() {
        let parse =
            |args: &[&str]| Cli::try_parse_from(["projectnil"].iter().chain(args)).map(|_| ());
        for (flag, value) in [
            ("--db-pool-size", "0"),
            ("--exec-timeout-ms", "0"),
            ("--exec-memory-mb", "0"),
            ("--exec-memory-mb", "4097"),
            ("--max-output-bytes", "0"),
            ("--module-cache-mb", "0"),
            ("--module-cache-mb", "18446744073709551615"),
            ("--compile-timeout-ms", "0"),
            ("--compile-max-attempts", "0"),
            ("--ws-init-timeout-ms", "0"),
            ("--ws-keepalive-ms", "0"),
            ("--ws-max-operations", "0"),
            ("--ws-send-timeout-ms", "zero"),
        ] {
            let refused = parse(&["serve", flag, value]).unwrap_err().to_string();
            assert!(refused.contains(flag), "{flag} {value}: {refused}");
        }
        assert!(
            parse(&[
                "serve",
                "--exec-memory-mb",
                "4096",
                "--ws-max-operations",
                "1"
            ])
            .is_ok()
        );
        assert!(parse(&["worker", "--compile-max-attempts", "1"]).is_ok());
    }

    #[test]
    fn websocket_settings_default_to_the_endpoints_own() {
        let Command::Serve(serve) = Cli::try_parse_from(["projectnil", "serve"])
            .unwrap()
            .command
        else {
            panic!("not serve");
        };
        let websocket = serve.api.websocket();
        assert_eq!(
            websocket,
            ws::WsSettings {
                max_message_bytes: serve.api.max_body_bytes,
                ..ws::WsSettings::default()
            }
        );
    }

    #[test]
    fn an_explicit_setting_wins() {
        let settings = CompilerSettings {
            compile_timeout_ms: 1,
            compile_max_attempts: 1,
            node: "node".into(),
            compiler_dir: Some("/explicit/compiler".into()),
        };
        assert_eq!(
            settings.compiler_dir(),
            Ok(PathBuf::from("/explicit/compiler"))
        );
    }
}
