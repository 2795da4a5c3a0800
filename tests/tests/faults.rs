//! Faults against the real binary: the database going away under load, the
//! server killed or stopped mid-execution, and queries cancelled by PostgreSQL.
//!
//! The outage is simulated for the test's own database only (no new
//! connections allowed, existing ones terminated), which is what the server
//! sees when PostgreSQL restarts, without disturbing the other tests that share
//! the cluster.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Connection as _;
use tests::fixtures::{ECHO, source};
use tests::{Client, ServerOptions, TestApp, TestDb, TestServer};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Hang guard of every wait in this file.
const GUARD: Duration = Duration::from_secs(120);

async fn admin() -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&format!("{}/postgres", tests::postgres_server_url()))
        .await
        .unwrap()
}

async fn sql(conn: &mut sqlx::PgConnection, statement: &str) {
    sqlx::raw_sql(statement).execute(&mut *conn).await.unwrap();
}

/// Polls the async `check` until it gives `Some`, failing after [`GUARD`].
macro_rules! eventually {
    ($what:expr, $check:expr) => {{
        let deadline = Instant::now() + GUARD;
        loop {
            if let Some(value) = $check.await {
                break value;
            }
            assert!(Instant::now() < deadline, "gave up waiting: {}", $what);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }};
}

async fn ready_status(base_url: &str) -> Option<u16> {
    reqwest::Client::new()
        .get(format!("{base_url}/ready"))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

async fn execution_status(client: &Client, id: &str) -> Value {
    client
        .data(
            "query($id: UUID!) { execution(id: $id) { status errorMessage completedAt } }",
            json!({ "id": id }),
        )
        .await
        .unwrap()["execution"]
        .clone()
}

async fn start_execution(client: &Client, function: &str) -> String {
    client
        .data(
            "mutation($id: UUID!) { startExecution(id: $id, input: {}) { id } }",
            json!({ "id": function }),
        )
        .await
        .unwrap()["startExecution"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn unfinished_executions(db: &TestDb) -> i64 {
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let (count,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM executions WHERE status IN ('PENDING', 'RUNNING')")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    count
}

/// What one request of the load saw.
#[derive(Debug, Clone)]
#[allow(
    dead_code,
    reason = "the fields are read through Debug, in failure messages"
)]
enum Outcome {
    Ok,
    /// A GraphQL error: code and message.
    Error(String, String),
    /// Anything else: an HTTP status that is not 200, no JSON, no answer.
    Broken(String),
}

async fn load_request(http: &reqwest::Client, base_url: &str, body: &Value) -> Outcome {
    let response = match http
        .post(format!("{base_url}/graphql"))
        .timeout(Duration::from_secs(60))
        .json(body)
        .send()
        .await
    {
        Ok(response) => response,
        Err(error) => return Outcome::Broken(format!("no answer: {error}")),
    };
    let status = response.status();
    let body: Value = match response.json().await {
        Ok(body) => body,
        Err(error) => return Outcome::Broken(format!("HTTP {status}, no JSON: {error}")),
    };
    if status != 200 {
        return Outcome::Broken(format!("HTTP {status}: {body}"));
    }
    match body["errors"].get(0) {
        None => Outcome::Ok,
        Some(error) => Outcome::Error(
            error["extensions"]["code"]
                .as_str()
                .unwrap_or("<none>")
                .into(),
            error["message"].as_str().unwrap_or_default().into(),
        ),
    }
}

#[tokio::test]
async fn a_database_outage_under_load_fails_cleanly_and_recovers() {
    let app = TestApp::start_with(ServerOptions::default().env("PROJECTNIL_EXEC_TIMEOUT_MS", 2000))
        .await
        .unwrap();
    let client = app.client();
    let echo = client.ready_function("echo", ECHO).await.unwrap();
    let spin = client
        .ready_function("loop", &source("loop"))
        .await
        .unwrap();

    // Load: executions and reads, from a few clients, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (stop, outcomes) = (Arc::clone(&stop), Arc::clone(&outcomes));
        let base_url = app.server.base_url.clone();
        let echo = echo.clone();
        load.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let execute = json!({ "query": "mutation($id: UUID!) { executeFunction(id: $id, input: {n: 1}) { status } }", "variables": { "id": echo } });
            let read = json!({ "query": "{ functions { totalCount nodes { id status } } executions(first: 5) { totalCount } }" });
            for i in 0..5000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let body = if (i + worker) % 2 == 0 { &execute } else { &read };
                let outcome = load_request(&http, &base_url, body).await;
                outcomes.lock().await.push(outcome);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    eventually!("the load to get going", async {
        let ok = outcomes
            .lock()
            .await
            .iter()
            .filter(|o| matches!(o, Outcome::Ok))
            .count();
        (ok >= 8).then_some(())
    });

    // Executions in flight when the database goes away.
    let mut spinning = Vec::new();
    for _ in 0..2 {
        spinning.push(start_execution(&client, &spin).await);
    }
    for id in &spinning {
        eventually!("the loop to be RUNNING", async {
            (execution_status(&client, id).await["status"] == "RUNNING").then_some(())
        });
    }

    let mut admin = admin().await;
    let name = &app.db.name;
    sql(
        &mut admin,
        &format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"),
    )
    .await;
    app.db.terminate_connections().await.unwrap();
    let outage_began = outcomes.lock().await.len();
    // Long enough for the loops to reach their time limit while the database
    // is away, so their final status must wait for it to come back.
    tokio::time::sleep(Duration::from_millis(2000 + 1000)).await;

    // During the outage: not ready, and requests fail with a short, clear error.
    eventually!("/ready to say 503", async {
        (ready_status(&app.server.base_url).await == Some(503)).then_some(())
    });
    let error = client
        .error("{ functions { totalCount } }", json!({}))
        .await
        .unwrap();
    assert_eq!(error.code, "INTERNAL_SERVER_ERROR", "{error:?}");
    assert!(error.message.contains("database"), "{error:?}");
    eventually!("the load to see the outage", async {
        let seen = outcomes.lock().await[outage_began..]
            .iter()
            .filter(|o| matches!(o, Outcome::Error(code, _) if code == "INTERNAL_SERVER_ERROR"))
            .count();
        (seen >= 4).then_some(())
    });
    let health = reqwest::get(format!("{}/health", app.server.base_url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "the process itself stays alive");

    // Back again: the same process recovers by itself.
    sql(
        &mut admin,
        &format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"),
    )
    .await;
    eventually!("/ready to say 200 again", async {
        (ready_status(&app.server.base_url).await == Some(200)).then_some(())
    });
    let recovered = outcomes.lock().await.len();
    eventually!("the load to succeed again", async {
        let ok = outcomes.lock().await[recovered..]
            .iter()
            .filter(|o| matches!(o, Outcome::Ok))
            .count();
        (ok >= 8).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let done = client.execute(&echo, json!({ "x": 1 })).await.unwrap();
    assert_eq!(done["status"], "COMPLETED");
    // The compiler and the result consumer are back too.
    client.ready_function("after", ECHO).await.unwrap();

    // Every request either worked or failed with the contract's error.
    let outcomes = outcomes.lock().await.clone();
    let failures: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| match o {
            Outcome::Ok => false,
            Outcome::Error(code, message) => {
                code != "INTERNAL_SERVER_ERROR" || message.len() > 200 || message.is_empty()
            }
            Outcome::Broken(_) => true,
        })
        .collect();
    assert!(failures.is_empty(), "unexpected outcomes: {failures:#?}");

    // Nothing is left PENDING or RUNNING: the runs the outage caught end FAILED.
    eventually!("every execution to finish", async {
        (unfinished_executions(&app.db).await == 0).then_some(())
    });
    for id in &spinning {
        let execution = execution_status(&client, id).await;
        assert_eq!(execution["status"], "FAILED", "{execution}");
        assert!(execution["completedAt"].is_string(), "{execution}");
        // Their real outcome, written once the database was back.
        assert!(
            execution["errorMessage"]
                .as_str()
                .unwrap()
                .contains("timed out"),
            "{execution}"
        );
    }
}

#[tokio::test]
async fn an_execution_killed_with_the_server_ends_failed_after_a_restart() {
    // A long timeout, so the loop is surely still running when the kill lands.
    let app =
        TestApp::start_with(ServerOptions::default().env("PROJECTNIL_EXEC_TIMEOUT_MS", 600_000))
            .await
            .unwrap();
    let client = app.client();
    let spin = client
        .ready_function("loop", &source("loop"))
        .await
        .unwrap();
    let id = start_execution(&client, &spin).await;
    eventually!("the loop to be RUNNING", async {
        (execution_status(&client, &id).await["status"] == "RUNNING").then_some(())
    });
    let started = Instant::now();
    let TestApp { mut server, db } = app;
    server.kill().await.unwrap();
    drop(server);

    // The restarted server considers anything older than its timeout + 5 s
    // orphaned; wait until the killed run is that old.
    let restart_timeout = Duration::from_millis(2000);
    tokio::time::sleep_until(started + restart_timeout + Duration::from_secs(6)).await;
    let restarted = TestServer::start(
        &db.url,
        ServerOptions::default().env("PROJECTNIL_EXEC_TIMEOUT_MS", restart_timeout.as_millis()),
    )
    .await
    .unwrap();
    let execution = execution_status(&restarted.client(), &id).await;
    assert_eq!(execution["status"], "FAILED", "{execution}");
    assert_eq!(
        execution["errorMessage"],
        "interrupted: the server stopped during execution"
    );
    assert!(execution["completedAt"].is_string());
    assert_eq!(unfinished_executions(&db).await, 0);
}

#[tokio::test]
async fn sigterm_lets_an_execution_in_flight_answer_and_exits_zero() {
    let app = TestApp::start_with(ServerOptions::default().env("PROJECTNIL_EXEC_TIMEOUT_MS", 3000))
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
    let app = TestApp::start_with(ServerOptions::default().arg("--no-worker"))
        .await
        .unwrap();
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
