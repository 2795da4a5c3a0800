//! Test harness: every test gets its own PostgreSQL database and, when it needs
//! one, its own `projectnil` process on a free port, driven over real HTTP and
//! WebSocket. Databases are dropped when the test ends.

pub mod fixtures;
pub mod graphql;
pub mod outage;
pub mod readme;
pub mod wait;
pub mod ws;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub use graphql::Client;

/// Server part of the URL of the PostgreSQL the tests use.
pub fn postgres_server_url() -> String {
    std::env::var("PROJECTNIL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A database of one test's own, dropped (with its connections) on drop.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// A fresh, empty database (no migrations applied).
    pub async fn empty() -> anyhow::Result<Self> {
        let name = format!("projectnil_test_{}", uuid::Uuid::new_v4().simple());
        let db = Self::named(&name);
        admin(&format!("CREATE DATABASE \"{name}\"")).await?;
        Ok(db)
    }

    /// The name of a database that does not exist yet (dropped on drop if created).
    pub fn not_yet_created() -> Self {
        Self::named(&format!(
            "projectnil_test_{}",
            uuid::Uuid::new_v4().simple()
        ))
    }

    fn named(name: &str) -> Self {
        Self {
            name: name.to_string(),
            url: format!("{}/{name}", postgres_server_url()),
        }
    }

    /// A fresh database with every migration applied.
    pub async fn migrated() -> anyhow::Result<Self> {
        let db = Self::empty().await?;
        let conn = db.connect().await?;
        migration::apply(&conn).await?;
        conn.close().await?;
        Ok(db)
    }

    pub async fn connect(&self) -> anyhow::Result<sea_orm::DatabaseConnection> {
        let mut options = sea_orm::ConnectOptions::new(self.url.clone());
        options.max_connections(5).sqlx_logging(false);
        Ok(sea_orm::Database::connect(options).await?)
    }

    /// [`first_value`] on a connection of its own.
    pub async fn first_value<T: sea_orm::TryGetable>(&self, sql: &str) -> T {
        let conn = self
            .connect()
            .await
            .expect("connecting to the test database");
        first_value(&conn, sql).await
    }

    /// [`scalar`] on a connection of its own.
    pub async fn scalar(&self, sql: &str) -> i64 {
        self.first_value(sql).await
    }

    /// Terminates every connection to this database, as a database restart
    /// would, without touching the other tests' databases on the cluster.
    pub async fn terminate_connections(&self) -> anyhow::Result<()> {
        admin(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            self.name
        ))
        .await
    }

    pub async fn exists(&self) -> anyhow::Result<bool> {
        let mut conn = admin_connection().await?;
        let row: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(&self.name)
            .fetch_optional(&mut conn)
            .await?;
        Ok(row.is_some())
    }
}

/// The first column of the first row `sql` returns on `db`; panics, naming
/// the statement, when it fails or returns no row.
pub async fn first_value<T: sea_orm::TryGetable>(
    db: &impl sea_orm::ConnectionTrait,
    sql: &str,
) -> T {
    let statement = sea_orm::Statement::from_string(db.get_database_backend(), sql);
    let row = db
        .query_one(statement)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
        .unwrap_or_else(|| panic!("{sql}: no row"));
    row.try_get_by_index::<T>(0)
        .unwrap_or_else(|error| panic!("{sql}: {error:?}"))
}

/// [`first_value`] as a bigint: a count, mostly.
pub async fn scalar(db: &impl sea_orm::ConnectionTrait, sql: &str) -> i64 {
    first_value(db, sql).await
}

/// Runs `sql` (one or more statements, no parameters) on `db` and returns
/// the rows it affected; panics, naming the statement, when it fails.
pub async fn exec(db: &impl sea_orm::ConnectionTrait, sql: &str) -> u64 {
    db.execute_unprepared(sql)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
        .rows_affected()
}

impl Drop for TestDb {
    fn drop(&mut self) {
        admin_from_drop(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ));
    }
}

/// Runs `sql` on the cluster's `postgres` database from a `Drop`, which runs
/// outside any runtime guarantee: on a thread and a small runtime of its own.
/// Best effort: a clean-up that fails must not turn into a panic in a panic.
pub fn admin_from_drop(sql: String) {
    let _ = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            let _ = rt.block_on(admin(&sql));
        }
    })
    .join();
}

/// A connection to the cluster's `postgres` database, for administration.
pub async fn admin_connection() -> anyhow::Result<sqlx::PgConnection> {
    use sqlx::Connection;
    Ok(sqlx::PgConnection::connect(&format!("{}/postgres", postgres_server_url())).await?)
}

async fn admin(sql: &str) -> anyhow::Result<()> {
    let mut conn = admin_connection().await?;
    sqlx::raw_sql(sql).execute(&mut conn).await?;
    Ok(())
}

/// The `projectnil` binary built next to this test binary (`cargo build
/// --bin projectnil` first; the README's test command does), or `PROJECTNIL_BIN`.
pub fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("PROJECTNIL_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> → target/<profile>/projectnil
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    profile_dir.join("projectnil")
}

/// Runs `projectnil <args>` to completion against `db`.
pub async fn run_cli(db: &TestDb, args: &[&str]) -> anyhow::Result<std::process::Output> {
    let output = Command::new(binary())
        .args(args)
        .env("DATABASE_URL", &db.url)
        .kill_on_drop(true)
        .output()
        .await
        .context("running projectnil (build it with `cargo build --bin projectnil`)")?;
    Ok(output)
}

/// The stderr lines of a process under test, kept (and passed on to the
/// test's own stderr) so a test can wait for a log event.
#[derive(Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Logs {
    fn capture(child: &mut Child) -> Self {
        let logs = Logs::default();
        if let Some(stderr) = child.stderr.take() {
            let kept = logs.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    eprintln!("{line}");
                    kept.0.lock().unwrap().push(line);
                }
            });
        }
        logs
    }

    /// The lines so far that contain `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(needle))
            .cloned()
            .collect()
    }

    /// How many lines so far contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(needle))
            .count()
    }
}

/// Options for a server under test.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
}

impl ServerOptions {
    pub fn env(mut self, key: &str, value: impl ToString) -> Self {
        self.env.push((key.into(), value.to_string()));
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.into());
        self
    }
}

/// A running `projectnil serve`, killed on drop.
pub struct TestServer {
    pub base_url: String,
    pub child: Child,
    pub logs: Logs,
}

/// Starts `projectnil <subcommand>` against `db_url` with `options`, keeps
/// its stderr ([`Logs`]) and waits (up to 120 s) for the stdout line `ready`
/// picks out; stdout is drained afterwards so the child never blocks on it.
async fn spawn_projectnil<T>(
    subcommand: &str,
    db_url: &str,
    options: &ServerOptions,
    ready: impl Fn(&str) -> Option<T>,
) -> anyhow::Result<(Child, Logs, T)> {
    let mut command = Command::new(binary());
    command
        .arg(subcommand)
        .args(&options.args)
        .env("DATABASE_URL", db_url)
        .env("PROJECTNIL_LISTEN", "127.0.0.1:0")
        .env("PROJECTNIL_DB_POOL_SIZE", "8")
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,server=info".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, value) in &options.env {
        command.env(key, value);
    }
    let mut child = command.spawn().with_context(|| {
        format!("starting projectnil {subcommand} (build it with `cargo build --bin projectnil`)")
    })?;
    let logs = Logs::capture(&mut child);
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(found) = ready(&line) {
                return Ok(found);
            }
        }
        bail!("projectnil {subcommand} exited before it was ready")
    })
    .await
    .with_context(|| format!("projectnil {subcommand} was not ready within 120 s"))??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, logs, found))
}

impl TestServer {
    /// Starts `projectnil serve` on a free port against `db_url`.
    pub async fn start(db_url: &str, options: ServerOptions) -> anyhow::Result<Self> {
        let (child, logs, base_url) = spawn_projectnil("serve", db_url, &options, |line| {
            line.strip_prefix("listening on ")
                .map(|url| url.trim().to_string())
        })
        .await?;
        Ok(Self {
            base_url,
            child,
            logs,
        })
    }

    pub fn client(&self) -> Client {
        Client::new(&self.base_url)
    }

    pub fn ws_url(&self) -> String {
        format!("{}/graphql/ws", self.base_url.replacen("http", "ws", 1))
    }

    /// Sends SIGKILL (a crash) and waits for the process to go.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("already exited")
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub async fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.child.id().context("already exited")?;
        std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()?;
        Ok(tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await??)
    }
}

/// A running `projectnil worker`, killed on drop.
pub struct TestWorker {
    pub child: Child,
    pub logs: Logs,
}

impl TestWorker {
    /// Starts `projectnil worker <args>` against `db_url` and waits until it
    /// says it is ready.
    pub async fn start(db_url: &str, options: ServerOptions) -> anyhow::Result<Self> {
        let (child, logs, ()) = spawn_projectnil("worker", db_url, &options, |line| {
            (line.trim() == "worker ready").then_some(())
        })
        .await?;
        Ok(Self { child, logs })
    }

    /// Sends SIGKILL (a crash) and waits for the process to go.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("already exited")
    }
}

/// Sends `signal` (e.g. "STOP", "CONT") to process `pid`.
pub fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()?;
    anyhow::ensure!(status.success(), "kill -{signal} {pid} failed");
    Ok(())
}

/// A migrated database of its own plus a server on it: what most tests start with.
pub struct TestApp {
    pub server: TestServer,
    pub db: TestDb,
}

impl TestApp {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(ServerOptions::default()).await
    }

    /// A server that runs no compiler worker (`--no-worker`): functions stay
    /// PENDING until a test starts a worker or writes their state itself.
    pub async fn start_without_worker() -> anyhow::Result<Self> {
        Self::start_with(ServerOptions::default().arg("--no-worker")).await
    }

    pub async fn start_with(options: ServerOptions) -> anyhow::Result<Self> {
        let db = TestDb::not_yet_created();
        let server = TestServer::start(&db.url, options).await?;
        Ok(Self { server, db })
    }

    pub fn client(&self) -> Client {
        self.server.client()
    }
}
