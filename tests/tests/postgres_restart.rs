//! The real PostgreSQL cluster stopped and started again while the server is
//! under load (see `tests::outage` for what the server must do meanwhile).
//!
//! Stopping the cluster takes every other test's database away too, so this
//! test runs alone: it is the only test of its binary (`cargo test` runs test
//! binaries one after another) and `.config/nextest.toml` gives it every
//! nextest slot. It needs the local cluster managed by Debian's
//! `pg_ctlcluster`, run as root or postgres, which is how `scripts/test` and
//! CI run.

use std::process::Command;

use tests::outage::{self, Outage};
use tests::{ServerOptions, TestApp};

/// The local cluster serving the tests, as `pg_ctlcluster` names it.
#[derive(Debug)]
struct Cluster {
    version: String,
    name: String,
    stopped: bool,
}

impl Cluster {
    /// The cluster listening on the port of the tests' PostgreSQL URL.
    fn serving_tests() -> Self {
        let url = tests::postgres_server_url();
        let port = url
            .rsplit_once(':')
            .and_then(|(_, port)| port.trim_end_matches('/').parse::<u16>().ok())
            .unwrap_or(5432);
        let listing = Command::new("pg_lsclusters")
            .arg("--no-header")
            .output()
            .expect("this test restarts the local PostgreSQL with Debian's pg_ctlcluster (package postgresql-common)");
        String::from_utf8_lossy(&listing.stdout)
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .find(|fields| fields.get(2) == Some(&port.to_string().as_str()))
            .map(|fields| Self {
                version: fields[0].to_string(),
                name: fields[1].to_string(),
                stopped: false,
            })
            .unwrap_or_else(|| panic!("no local cluster listens on port {port} ({url}); this test restarts it with pg_ctlcluster"))
    }

    fn run(&self, action: &str) -> std::io::Result<std::process::ExitStatus> {
        Command::new("pg_ctlcluster")
            .args([
                "--skip-systemctl-redirect",
                &self.version,
                &self.name,
                action,
            ])
            .status()
    }

    fn control(&self, action: &str) {
        let status = self.run(action).expect("running pg_ctlcluster");
        assert!(status.success(), "pg_ctlcluster {action} failed: {status}");
    }
}

impl Outage for Cluster {
    async fn begin(&mut self) {
        self.stopped = true;
        self.control("stop");
    }

    async fn end(&mut self) {
        self.control("start");
        self.stopped = false;
    }
}

impl Drop for Cluster {
    /// A failed assertion mid-outage must not leave the machine without its database.
    fn drop(&mut self) {
        // Best effort, and no assertion: a panic while unwinding would abort.
        if self.stopped {
            let _ = self.run("start");
        }
    }
}

#[tokio::test]
async fn a_postgres_restart_under_load_fails_cleanly_and_recovers() {
    let cluster = Cluster::serving_tests();
    let app = TestApp::start_with(
        ServerOptions::default().env("PROJECTNIL_EXEC_TIMEOUT_MS", outage::EXEC_TIMEOUT_MS),
    )
    .await
    .unwrap();
    outage::survive(&app, cluster).await;
}
