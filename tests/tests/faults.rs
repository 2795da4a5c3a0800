//! Faults against the real binary: the database going away under load, the
//! server killed or stopped mid-execution, and queries cancelled by PostgreSQL.
//!
//! The outage here is simulated for the test's own database only (no new
//! connections allowed, existing ones terminated), which is what the server
//! sees when PostgreSQL restarts, without disturbing the other tests that share
//! the cluster; `postgres_restart.rs` stops the real cluster, alone.

use std::time::Duration;

use serde_json::json;
use sqlx::Connection as _;
use tests::eventually;
use tests::fixtures::source;
use tests::outage::{
    self, GUARD, Outage, admin, execution_status, sql, start_execution, unfinished_executions,
};
use tests::{ServerOptions, TestApp, TestDb, TestServer};

/// The test's own database stops taking connections and loses those it had.
struct RefusedConnections<'a> {
    db: &'a TestDb,
    admin: sqlx::PgConnection,
}

impl Outage for RefusedConnections<'_> {
    async fn begin(&mut self) {
        let name = &self.db.name;
        sql(
            &mut self.admin,
            &format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"),
        )
        .await;
        self.db.terminate_connections().await.unwrap();
    }

    async fn end(&mut self) {
        let name = &self.db.name;
        sql(
            &mut self.admin,
            &format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"),
        )
        .await;
    }
}

#[tokio::test]
async fn a_database_outage_under_load_fails_cleanly_and_recovers() {
    let app = TestApp::start_with(
        ServerOptions::default().env("PROJECTNIL_EXEC_TIMEOUT_MS", outage::EXEC_TIMEOUT_MS),
    )
    .await
    .unwrap();
    let outage = RefusedConnections {
        db: &app.db,
        admin: admin().await,
    };
    outage::survive(&app, outage).await;
}

#[tokio::test]
async fn executions_killed_with_the_server_end_failed_or_run_again_after_a_restart() {
    // A long timeout, so the loops are surely still running when the kill lands.
    let options = ServerOptions::default()
        .env("PROJECTNIL_EXEC_TIMEOUT_MS", 600_000)
        .env("PROJECTNIL_EXEC_LEASE_MS", 1000);
    let app = TestApp::start_with(options).await.unwrap();
    let client = app.client();
    let spin = client
        .ready_function("loop", &source("loop"))
        .await
        .unwrap();
    let background = start_execution(&client, &spin).await;
    let caller = {
        let client = client.clone();
        let spin = spin.clone();
        tokio::spawn(async move { client.execute(&spin, json!({})).await })
    };
    eventually!("both loops to be RUNNING", async {
        (unfinished_executions(&app.db).await == 2
            && execution_status(&client, &background).await["status"] == "RUNNING")
            .then_some(())
    });
    let TestApp { mut server, db } = app;
    server.kill().await.unwrap();
    drop(server);
    assert!(caller.await.unwrap().is_err(), "the caller lost its server");

    let restart_timeout = Duration::from_millis(2000);
    let restarted = TestServer::start(
        &db.url,
        ServerOptions::default()
            .env("PROJECTNIL_EXEC_TIMEOUT_MS", restart_timeout.as_millis())
            .env("PROJECTNIL_EXEC_LEASE_MS", 1000),
    )
    .await
    .unwrap();
    let client = restarted.client();
    // The synchronous one lost its caller: interrupted, once its lease lapsed.
    let interrupted = eventually!("the synchronous run to be ended", async {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let row: Option<(String, i32)> = sqlx::query_as(
            "SELECT error_message, attempt FROM executions WHERE NOT background AND status = 'FAILED'",
        )
        .fetch_optional(&mut conn)
        .await
        .unwrap();
        row
    });
    assert_eq!(
        interrupted,
        (
            "interrupted: the server stopped or lost its database during execution; run it again"
                .to_string(),
            1
        )
    );
    // The background one runs again, as attempt 2, to its real outcome.
    let rerun = eventually!("the background run to end", async {
        let now = execution_status(&client, &background).await;
        (now["status"] == "FAILED").then_some(now)
    });
    assert_eq!(
        rerun["errorMessage"],
        "timed out after 2000 ms of running time"
    );
    assert_eq!(rerun["attempt"], 2);
    assert_eq!(unfinished_executions(&db).await, 0);
}

#[tokio::test]
async fn sigterm_lets_an_execution_in_flight_answer_and_exits_zero() {
    // The timeout counts CPU time: on a loaded machine two runs of 3 s of CPU
    // could outlast the 10 s shutdown grace in wall time, so keep them short.
    let app = TestApp::start_with(ServerOptions::default().env("PROJECTNIL_EXEC_TIMEOUT_MS", 1500))
        .await
        .unwrap();
    let client = app.client();
    let spin = client
        .ready_function("loop", &source("loop"))
        .await
        .unwrap();
    let background = start_execution(&client, &spin).await;
    let in_flight = {
        let client = client.clone();
        let spin = spin.clone();
        tokio::spawn(async move { client.execute(&spin, json!({})).await })
    };
    // Both runs are RUNNING before the signal.
    let db = app.db.connect().await.unwrap();
    eventually!("both loops to be RUNNING", async {
        use sea_orm::ConnectionTrait;
        let row = db
            .query_one(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT count(*) AS n FROM executions WHERE status = 'RUNNING'",
            ))
            .await
            .unwrap()
            .unwrap();
        (row.try_get::<i64>("", "n").unwrap() == 2).then_some(())
    });
    db.close().await.unwrap();

    let TestApp {
        mut server,
        db: test_db,
    } = app;
    let exit = server.terminate().await.unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    // The request in flight got its answer: the run, ended by its own timeout.
    let execution = tokio::time::timeout(GUARD, in_flight)
        .await
        .expect("the in-flight request was answered")
        .unwrap()
        .expect("the in-flight request succeeded");
    assert_eq!(execution["status"], "FAILED", "{execution}");
    assert!(
        execution["errorMessage"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{execution}"
    );
    // The background run was finished too before the process left.
    let mut conn = sqlx::PgConnection::connect(&test_db.url).await.unwrap();
    let (status, message): (String, Option<String>) =
        sqlx::query_as("SELECT status::text, error_message FROM executions WHERE id = $1::uuid")
            .bind(&background)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(status, "FAILED");
    assert!(message.unwrap_or_default().contains("timed out"));
    assert_eq!(unfinished_executions(&test_db).await, 0);
}

/// Holds an exclusive lock on `functions`, so reads of it wait until cancelled.
async fn lock_functions(db: &TestDb) -> sqlx::PgConnection {
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sql(
        &mut conn,
        "BEGIN; LOCK TABLE functions IN ACCESS EXCLUSIVE MODE",
    )
    .await;
    conn
}

/// The server's backends of `db` that wait for a lock on `functions`.
async fn waiting_backends(admin: &mut sqlx::PgConnection, db: &TestDb) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND query ILIKE '%functions%'",
    )
    .bind(&db.name)
    .fetch_all(&mut *admin)
    .await
    .unwrap()
}

#[tokio::test]
async fn queries_cancelled_by_postgres_give_a_clear_error() {
    let app = TestApp::start_without_worker().await.unwrap();
    let client = app.client();
    let list = "{ functions { totalCount } }";
    let mut admin = admin().await;

    // An operator cancels the query (pg_cancel_backend).
    let mut lock = lock_functions(&app.db).await;
    let request = {
        let client = client.clone();
        tokio::spawn(async move { client.error(list, json!({})).await })
    };
    let waiting = eventually!("the query to wait for the lock", async {
        let pids = waiting_backends(&mut admin, &app.db).await;
        (!pids.is_empty()).then_some(pids)
    });
    for pid in waiting {
        sql(&mut admin, &format!("SELECT pg_cancel_backend({pid})")).await;
    }
    let error = tokio::time::timeout(GUARD, request)
        .await
        .expect("the cancelled request was answered")
        .unwrap()
        .unwrap();
    assert_eq!(error.code, "INTERNAL_SERVER_ERROR", "{error:?}");
    assert!(error.message.contains("cancelled"), "{error:?}");
    sql(&mut lock, "ROLLBACK").await;
    client.data(list, json!({})).await.unwrap();

    // A statement timeout set on the database.
    let name = &app.db.name;
    sql(
        &mut admin,
        &format!("ALTER DATABASE \"{name}\" SET statement_timeout = '300ms'"),
    )
    .await;
    // Pooled connections keep their settings; make the server open new ones.
    app.db.terminate_connections().await.unwrap();
    let mut lock = lock_functions(&app.db).await;
    let error = eventually!("a statement timeout", async {
        let error = client.error(list, json!({})).await.unwrap();
        // Right after the terminate, a request may still meet a dead connection.
        error.message.contains("cancelled").then_some(error)
    });
    assert_eq!(error.code, "INTERNAL_SERVER_ERROR", "{error:?}");
    assert!(error.message.len() < 200, "{error:?}");
    sql(&mut lock, "ROLLBACK").await;
    client.data(list, json!({})).await.unwrap();
    let health = reqwest::get(format!("{}/health", app.server.base_url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

/// A tmpfs of its own, mounted as a tablespace: a database disk the test can
/// fill without touching the machine's. Needs root (`mount`), as CI has.
struct SmallDisk {
    mount: std::path::PathBuf,
    tablespace: String,
}

impl SmallDisk {
    async fn mount(megabytes: u32) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let disk = Self {
            mount: format!("/var/tmp/projectnil-test-disk-{id}").into(),
            tablespace: format!("projectnil_test_{id}"),
        };
        std::fs::create_dir_all(&disk.mount).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&disk.mount)
            .status()
            .is_ok_and(|status| status.success());
        assert!(
            mounted,
            "this test fills a small tmpfs mounted as a PostgreSQL tablespace: it must run as root (CI does)"
        );
        // PostgreSQL takes only a directory its own user owns.
        let owned = std::process::Command::new("chown")
            .arg("postgres:postgres")
            .arg(&disk.mount)
            .status()
            .is_ok_and(|status| status.success());
        assert!(owned, "chown postgres {}", disk.mount.display());
        sql(
            &mut admin().await,
            &format!(
                "CREATE TABLESPACE \"{}\" LOCATION '{}'",
                disk.tablespace,
                disk.mount.display()
            ),
        )
        .await;
        disk
    }

    fn filler(&self) -> std::path::PathBuf {
        self.mount.join("filler")
    }

    /// Takes every byte left, as another tenant of the disk would.
    fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.filler()).unwrap();
        for chunk in [1 << 20, 4096] {
            let block = vec![0u8; chunk];
            while file.write_all(&block).is_ok() {}
        }
    }

    fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        tests::admin_from_drop(format!("DROP TABLESPACE IF EXISTS \"{}\"", self.tablespace));
        let _ = std::process::Command::new("umount")
            .arg(&self.mount)
            .status();
        let _ = std::fs::remove_dir(&self.mount);
    }
}

#[tokio::test]
async fn a_full_database_disk_gives_a_clear_error_and_loses_nothing() {
    // Declared first, dropped last: after the database that lives on it.
    let disk = SmallDisk::mount(64).await;
    let db = TestDb::not_yet_created();
    sql(
        &mut admin().await,
        &format!(
            "CREATE DATABASE \"{}\" TABLESPACE \"{}\"",
            db.name, disk.tablespace
        ),
    )
    .await;
    let server = TestServer::start(
        &db.url,
        ServerOptions::default().env("PROJECTNIL_EXEC_TIMEOUT_MS", 2000),
    )
    .await
    .unwrap();
    let app = TestApp { server, db };
    let client = app.client();
    let echo = client
        .ready_function("echo", tests::fixtures::ECHO)
        .await
        .unwrap();
    let count = "{ functions { totalCount } }";
    let before = client.data(count, json!({})).await.unwrap();

    disk.fill();

    // Executions go on until their rows no longer fit, then fail clearly.
    let execute =
        "mutation($id: UUID!, $input: JSON) { executeFunction(id: $id, input: $input) { status } }";
    let padding = "x".repeat(2000);
    let mut full = None;
    for _ in 0..2000 {
        let variables = json!({ "id": echo, "input": { "padding": padding } });
        if let Some(error) = client.first_error(execute, variables).await.unwrap() {
            full = Some(error);
            break;
        }
    }
    let error = full.expect("executions kept succeeding on a full disk");
    assert_eq!(error.code, "INTERNAL_SERVER_ERROR", "{error:?}");
    assert!(error.message.contains("out of disk space"), "{error:?}");

    // A new function does not fit either; none is half-created.
    // Random, so PostgreSQL cannot compress it into the space left in a page.
    let noise: String = (0..1200)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect();
    let large = format!("{}\n// {noise}\n", tests::fixtures::ECHO);
    let error = client
        .first_error(
            "mutation($input: CreateFunctionInput!) { createFunction(input: $input) { id } }",
            json!({ "input": { "name": "large", "language": "assemblyscript", "source": large } }),
        )
        .await
        .unwrap()
        .expect("a 40 KB function was created on a full disk");
    assert_eq!(error.code, "INTERNAL_SERVER_ERROR", "{error:?}");
    assert!(error.message.contains("out of disk space"), "{error:?}");
    assert_eq!(client.data(count, json!({})).await.unwrap(), before);
    let health = reqwest::get(format!("{}/health", app.server.base_url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "the process itself stays alive");

    // Space freed: the same process goes on, and every execution ends.
    disk.free();
    client.ready_function("large", &large).await.unwrap();
    let done = client.execute(&echo, json!({ "x": 1 })).await.unwrap();
    assert_eq!(done["status"], "COMPLETED");
    eventually!("every execution to finish", async {
        (unfinished_executions(&app.db).await == 0).then_some(())
    });
    drop(app);
}
