use clap::Parser;

use server::config::{Cli, Command};
use server::{app, telemetry};

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
