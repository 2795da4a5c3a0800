//! Command line and settings: every flag has an environment fallback, and the
//! names and defaults are the ones in the contract (`shared/contract/README.md`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Apply migrations, serve HTTP + WebSocket, and run a compiler worker unless --no-worker.
    Serve(ServeSettings),
    /// Run a compiler worker only (scale out by running several).
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

    #[command(flatten)]
    pub api: ApiSettings,

    #[command(flatten)]
    pub execution: ExecutionSettings,

    #[command(flatten)]
    pub compiler: CompilerSettings,
}

#[derive(Debug, Clone, Args)]
pub struct WorkerSettings {
    #[command(flatten)]
    pub compiler: CompilerSettings,
}

/// Limits of the GraphQL API.
#[derive(Debug, Clone, Args)]
pub struct ApiSettings {
    /// Largest accepted function source, in bytes.
    #[arg(long, env = "PROJECTNIL_MAX_SOURCE_BYTES", default_value_t = 256 * 1024)]
    pub max_source_bytes: usize,

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

    /// Directory of the built playground and GraphiQL assets.
    #[arg(long, env = "PROJECTNIL_PLAYGROUND_DIR", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../playground/dist"))]
    pub playground_dir: PathBuf,
}

/// Limits of one execution of user code.
#[derive(Debug, Clone, Args)]
pub struct ExecutionSettings {
    /// Wall-clock limit of one execution, in milliseconds.
    #[arg(long, env = "PROJECTNIL_EXEC_TIMEOUT_MS", default_value_t = 10_000)]
    pub exec_timeout_ms: u64,

    /// Linear-memory cap of one execution, in MiB.
    #[arg(long, env = "PROJECTNIL_EXEC_MEMORY_MB", default_value_t = 64)]
    pub exec_memory_mb: u64,

    /// Largest accepted function output (serialized JSON), in bytes.
    #[arg(long, env = "PROJECTNIL_MAX_OUTPUT_BYTES", default_value_t = 1024 * 1024)]
    pub max_output_bytes: usize,

    /// Budget of the compiled-module cache, in MiB.
    #[arg(long, env = "PROJECTNIL_MODULE_CACHE_MB", default_value_t = 256)]
    pub module_cache_mb: usize,
}

impl ExecutionSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.exec_timeout_ms)
    }
}

/// The compiler worker.
#[derive(Debug, Clone, Args)]
pub struct CompilerSettings {
    /// Limit of one compilation, in milliseconds.
    #[arg(long, env = "PROJECTNIL_COMPILE_TIMEOUT_MS", default_value_t = 30_000)]
    pub compile_timeout_ms: u64,

    /// Deliveries of one job before it is given up as poison (FAILED).
    #[arg(long, env = "PROJECTNIL_COMPILE_MAX_ATTEMPTS", default_value_t = 5)]
    pub compile_max_attempts: i32,

    /// Node.js executable that runs the AssemblyScript compiler.
    #[arg(long, env = "PROJECTNIL_NODE", default_value = "node")]
    pub node: PathBuf,

    /// Directory holding compiler.mjs and its node_modules.
    #[arg(long, env = "PROJECTNIL_COMPILER_DIR", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/compiler"))]
    pub compiler_dir: PathBuf,
}

impl CompilerSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.compile_timeout_ms)
    }

    /// Jobs stay invisible to other workers for longer than a compile may take,
    /// so a job is only redelivered when its worker died.
    pub fn visibility_timeout(&self) -> Duration {
        self.timeout() + Duration::from_secs(15)
    }
}
