//! The `projectnil` binary: parses the command line and hands over to
//! [`server::app`] (`serve`, `worker`, `migrate`); everything else lives in
//! the library.

use clap::Parser;

use server::config::{Cli, Command};
use server::{app, telemetry};

// jemalloc rather than glibc's malloc: the server allocates and frees small
// buffers on every worker thread (each request's GraphQL values, each
// subscriber's frames), where glibc spent 16 % of a list request and jemalloc
// costs 14 % less CPU per delivered fan-out message at the same RSS
// (BENCHMARKS.md, "jemalloc as the allocator").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let result = match cli.command {
        Command::Serve(settings) => app::serve(&cli.database, settings).await,
        Command::Worker(settings) => app::worker(&cli.database, settings).await,
        Command::Migrate => app::migrate(&cli.database).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("projectnil: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
