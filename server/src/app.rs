//! Start-up: wires the database, runtime, event bus, compiler and HTTP server
//! together for each subcommand, and shuts them down in order.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use poem::listener::{Acceptor, Listener, TcpListener};
use tokio_util::sync::CancellationToken;

use crate::compile::asc::{AscCompiler, AscConfig};
use crate::compile::results::ResultConsumer;
use crate::compile::worker::CompilerWorker;
use crate::config::{
    CompilerSettings, DatabaseSettings, ExecutionSettings, RetentionSettings, ServeSettings,
    WorkerSettings,
};
use crate::events::EventBus;
use crate::executions::{self, Executor, ExecutorSettings};
use crate::functions::FunctionLimits;
use crate::graphql::{self, AppState};
use crate::runtime::{ExecutionLimits, Runtime};
use crate::{analytics, db, http, maintenance};

/// In-flight requests get this long to finish after SIGTERM/ctrl-c.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub async fn migrate(database: &DatabaseSettings) -> anyhow::Result<()> {
    let db = db::connect_and_migrate(database).await?;
    db.close().await.ok();
    tracing::info!("migrations.applied");
    Ok(())
}

pub async fn serve(database: &DatabaseSettings, settings: ServeSettings) -> anyhow::Result<()> {
    let compiler_dir = if settings.no_worker {
        None
    } else {
        Some(compiler_dir(&settings.compiler)?)
    };
    let db = db::connect_and_migrate(database).await?;
    let shutdown = CancellationToken::new();
    crate::metrics::install(shutdown.clone()).context("installing the metrics recorder")?;

    let (executor, events) = start_executor(
        &db,
        &settings.execution,
        settings.api.max_input_bytes,
        shutdown.clone(),
    )
    .await?;
    executions::spawn_cache_warmer(
        db.clone(),
        executor.runtime().clone(),
        &events,
        shutdown.clone(),
    );
    spawn_housekeeping(&db, &settings.retention, &shutdown);
    // Every receiver so far is the process's own; clients' subscriptions come later.
    crate::metrics::set_internal_subscribers(events.subscriber_count());

    let mut background = vec![tokio::spawn(
        ResultConsumer::new(db.clone()).run(shutdown.clone()),
    )];
    if !settings.no_execution_worker {
        background.push(executor.spawn_job_consumer(shutdown.clone()));
    }
    if let Some(compiler_dir) = compiler_dir {
        let worker = start_worker(db.clone(), settings.compiler.clone(), compiler_dir).await?;
        background.push(tokio::spawn(worker.run(shutdown.clone())));
    }

    let state = AppState {
        db: db.clone(),
        reads: db::KeptConnections::new(db.clone()),
        executor: executor.clone(),
        events,
        function_limits: FunctionLimits {
            max_source_bytes: settings.api.max_source_bytes,
            compile_backlog: settings.api.compile_backlog,
        },
    };
    let schema = graphql::build_schema(state.clone(), &settings.api);
    // Upgraded WebSockets are not part of poem's graceful shutdown: they are
    // closed (1001) through this handle.
    let sockets = http::ws::Sockets::new(shutdown.clone());
    let app = http::routes(schema, state, &settings.api, sockets.clone());

    let acceptor = http::Accepting::new(
        TcpListener::bind(settings.listen)
            .into_acceptor()
            .await
            .with_context(|| format!("binding {}", settings.listen))?,
        sockets.accepted(),
    );
    let bound = acceptor
        .local_addr()
        .into_iter()
        .next()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let bound = bound.trim_start_matches("socket://");
    // On stdout, for scripts and tests that start the server on port 0.
    println!("listening on http://{bound}");
    tracing::info!(address = %bound, "server.listening");

    let stop = shutdown.clone();
    poem::Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(
            app,
            async move {
                shutdown_signal().await;
                stop.cancel();
            },
            Some(SHUTDOWN_GRACE),
        )
        .await?;
    shutdown.cancel();
    sockets.closed(Duration::from_secs(3)).await;
    executor.drain().await;
    for task in background {
        task.await.ok();
    }
    db.close().await.ok();
    tracing::info!("server.stopped");
    Ok(())
}

pub async fn worker(database: &DatabaseSettings, settings: WorkerSettings) -> anyhow::Result<()> {
    let compiler_dir = if settings.compiles() {
        Some(compiler_dir(&settings.compiler)?)
    } else {
        None
    };
    let db = db::connect_and_migrate(database).await?;
    let shutdown = CancellationToken::new();
    spawn_housekeeping(&db, &settings.retention, &shutdown);
    let mut tasks = Vec::new();
    if let Some(compiler_dir) = compiler_dir {
        let worker = start_worker(db.clone(), settings.compiler.clone(), compiler_dir).await?;
        tasks.push(tokio::spawn(worker.run(shutdown.clone())));
    }
    let executor = if settings.executes() {
        // A worker never validates input: what it runs was validated when
        // accepted. Its event bus runs on by itself until shutdown.
        let (executor, _events) =
            start_executor(&db, &settings.execution, usize::MAX, shutdown.clone()).await?;
        tasks.push(executor.spawn_job_consumer(shutdown.clone()));
        Some(executor)
    } else {
        None
    };
    // On stdout, for scripts and tests that wait for a worker to be up.
    println!("worker ready");
    tracing::info!(
        compiles = settings.compiles(),
        executes = settings.executes(),
        "worker.ready"
    );
    shutdown_signal().await;
    shutdown.cancel();
    for task in tasks {
        task.await.ok();
    }
    if let Some(executor) = executor {
        executor.drain().await;
    }
    db.close().await.ok();
    Ok(())
}

/// What every process does for the tables that grow: folding finished
/// executions into statistics, and maintenance (one process at a time).
fn spawn_housekeeping(
    db: &sea_orm::DatabaseConnection,
    retention: &RetentionSettings,
    shutdown: &CancellationToken,
) {
    analytics::rollup::spawn_folder(db.clone(), shutdown.clone());
    maintenance::spawn(db.clone(), retention.clone(), shutdown.clone());
}

/// The status-change bus, the wasm runtime and the executor on them, with the
/// sweeper that ends the synchronous executions of vanished processes.
async fn start_executor(
    db: &sea_orm::DatabaseConnection,
    settings: &ExecutionSettings,
    max_input_bytes: usize,
    shutdown: CancellationToken,
) -> anyhow::Result<(Executor, EventBus)> {
    let events = EventBus::start(db.get_postgres_connection_pool().clone(), shutdown.clone())
        .await
        .context("listening for status changes")?;
    let threads = settings.concurrency();
    let limits = ExecutionLimits {
        timeout: settings.timeout(),
        memory_bytes: settings.exec_memory_mb * 1024 * 1024,
        max_output_bytes: settings.max_output_bytes,
        max_concurrency: threads,
        ..ExecutionLimits::default()
    };
    let runtime = Runtime::new(limits, settings.module_cache_mb * 1024 * 1024)
        .context("starting the wasm runtime")?;
    // Synchronous executions whose holder is already gone end before serving;
    // the sweeper ends the rest as their leases lapse.
    executions::recover_interrupted(db).await?;
    executions::spawn_sweeper(db.clone(), settings.lease(), shutdown);
    let executor_settings = ExecutorSettings {
        max_input_bytes,
        queue_capacity: settings.exec_queue,
        backlog_capacity: settings.exec_backlog,
        max_attempts: settings.exec_max_attempts,
        lease: settings.lease(),
    };
    tracing::info!(
        threads,
        queue = settings.exec_queue,
        lease_ms = settings.exec_lease_ms,
        "executions.ready"
    );
    let executor = Executor::start(db.clone(), runtime, executor_settings, &events);
    Ok((executor, events))
}

/// The compiler directory, checked before anything else starts so that a
/// binary run outside a checkout fails at once and says what to set.
fn compiler_dir(settings: &CompilerSettings) -> anyhow::Result<PathBuf> {
    let dir = settings
        .compiler_dir()
        .context("locating the AssemblyScript compiler")?;
    tracing::info!(dir = %dir.display(), "compiler.dir");
    Ok(dir)
}

async fn start_worker(
    db: sea_orm::DatabaseConnection,
    settings: CompilerSettings,
    compiler_dir: PathBuf,
) -> anyhow::Result<CompilerWorker> {
    let compiler = AscCompiler::new(AscConfig {
        node: settings.node.clone(),
        compiler_dir,
        timeout: settings.timeout(),
    });
    // Start Node and load the compiler now, so a missing install fails loudly
    // at start-up and the first job does not pay for it.
    let version = compiler
        .compiler_version()
        .await
        .context("starting the AssemblyScript compiler")?;
    tracing::info!(compiler = %version, "compiler.ready");
    Ok(CompilerWorker::new(db, compiler, settings))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    ctrl_c.await.ok();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.ok();
    tracing::info!("server.shutting_down");
}
