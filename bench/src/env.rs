//! The database and the server a run uses.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::Connection;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::Paths;

/// Server part of the PostgreSQL URL (`PROJECTNIL_BENCH_POSTGRES`, default
/// the local cluster).
pub fn postgres_server_url() -> String {
    std::env::var("PROJECTNIL_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A bench database's URL. Over plain TCP unless `PROJECTNIL_BENCH_POSTGRES`
/// says otherwise: the server and pgbench would otherwise negotiate TLS with
/// a cluster that offers it (sqlx and libpq prefer it) while PostGraphile's
/// node-postgres does not, so the peers would not reach PostgreSQL the same
/// way; on loopback TLS only adds encryption at both ends.
pub fn database_url(name: &str) -> String {
    match std::env::var("PROJECTNIL_BENCH_POSTGRES") {
        Ok(server) => format!("{server}/{name}"),
        Err(_) => format!("{}/{name}?sslmode=disable", postgres_server_url()),
    }
}

fn check_name(name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        name.starts_with("projectnil_bench_")
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "the bench database must be named projectnil_bench_<letters, digits>, got {name:?}"
    );
    Ok(())
}

async fn admin(sql: &str) -> anyhow::Result<()> {
    let mut conn =
        sqlx::PgConnection::connect(&format!("{}/postgres", postgres_server_url())).await?;
    sqlx::raw_sql(sql).execute(&mut conn).await?;
    Ok(())
}

pub async fn create_database(name: &str) -> anyhow::Result<()> {
    check_name(name)?;
    admin(&format!("CREATE DATABASE \"{name}\"")).await
}

pub async fn drop_database(name: &str) -> anyhow::Result<()> {
    check_name(name)?;
    admin(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await
}

/// `projectnil serve` on a free port, its log in `DIR/server.log`.
pub struct Server {
    child: Child,
    pub pid: u32,
    pub base_url: String,
}

impl Server {
    pub async fn start(bin: &Path, db_url: &str, paths: &Paths) -> anyhow::Result<Self> {
        Self::start_with(bin, db_url, paths, &[], "server.log").await
    }

    /// `projectnil serve <args>`, its log in `DIR/<log>`.
    pub async fn start_with(
        bin: &Path,
        db_url: &str,
        paths: &Paths,
        args: &[&str],
        log: &str,
    ) -> anyhow::Result<Self> {
        let mut command = vec!["serve"];
        command.extend_from_slice(args);
        let (child, base_url) = spawn(bin, &command, db_url, paths, log, |line| {
            line.strip_prefix("listening on ")
                .map(|url| url.trim().to_string())
        })
        .await?;
        let pid = child.id().context("server exited at once")?;
        Ok(Self {
            child,
            pid,
            base_url,
        })
    }

    pub fn ws_url(&self) -> String {
        format!("{}/graphql/ws", self.base_url.replacen("http", "ws", 1))
    }

    /// Resident set size, from /proc/<pid>/status.
    pub fn rss_mb(&self) -> Option<f64> {
        rss_mb_of(self.pid)
    }

    /// SIGTERM, then SIGKILL if it has not stopped after 20 s.
    pub async fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// `projectnil worker --only executions`, its log in `DIR/<log>`.
pub struct Worker {
    child: Child,
}

impl Worker {
    pub async fn start(bin: &Path, db_url: &str, paths: &Paths, log: &str) -> anyhow::Result<Self> {
        let (child, ()) = spawn(
            bin,
            &["worker", "--only", "executions"],
            db_url,
            paths,
            log,
            |line| (line.trim() == "worker ready").then_some(()),
        )
        .await?;
        Ok(Self { child })
    }

    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// `projectnil <args>` on `db_url`, its stderr in `DIR/<log>`, once it printed
/// the stdout line `ready` picks out (within 120 s); stdout is drained after.
async fn spawn<T>(
    bin: &Path,
    args: &[&str],
    db_url: &str,
    paths: &Paths,
    log: &str,
    ready: impl Fn(&str) -> Option<T>,
) -> anyhow::Result<(Child, T)> {
    let log_file = std::fs::File::create(paths.dir.join(log))?;
    let mut child = Command::new(bin)
        .args(args)
        .current_dir(&paths.repo)
        .env("DATABASE_URL", db_url)
        .env("PROJECTNIL_LISTEN", "127.0.0.1:0")
        .env("PROJECTNIL_COMPILER_DIR", paths.compiler_dir())
        .env(
            "RUST_LOG",
            std::env::var("PROJECTNIL_BENCH_SERVER_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::piped())
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} {}", bin.display(), args.join(" ")))?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let found = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(found) = ready(&line) {
                return Ok(found);
            }
        }
        bail!(
            "projectnil {} exited before it was ready (see {log})",
            args[0]
        )
    })
    .await
    .with_context(|| format!("projectnil {} was not ready within 120 s", args[0]))??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, found))
}

/// Resident set size of a process, from /proc/<pid>/status.
pub fn rss_mb_of(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}
