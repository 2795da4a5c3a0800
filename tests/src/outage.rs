//! The database going away under load, as one scenario: the fault tests differ
//! only in *how* the database goes away (one database refusing connections, the
//! whole cluster stopped, ...), which an [`Outage`] says.
//!
//! While the outage lasts, the server must answer every request, with the
//! contract's INTERNAL_SERVER_ERROR and a short message, say 503 on `/ready`
//! and stay alive; afterwards the same process must serve, compile and execute
//! again by itself, and no execution may stay PENDING or RUNNING.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Connection as _;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::fixtures::{ECHO, source};
use crate::{Client, TestApp, TestDb, eventually};

/// Hang guard of every wait of the fault tests.
pub const GUARD: Duration = crate::wait::WAIT_LIMIT;

/// The execution time limit the scenario's server must run with: the loops
/// caught by the outage reach it while the database is away.
pub const EXEC_TIMEOUT_MS: u64 = 2000;

/// A way for the database to go away and come back.
#[allow(
    async_fn_in_trait,
    reason = "implemented and awaited only by the tests, never across threads"
)]
pub trait Outage {
    async fn begin(&mut self);
    async fn end(&mut self);
}

/// A connection to the cluster's `postgres` database, for administration.
pub async fn admin() -> sqlx::PgConnection {
    crate::admin_connection().await.unwrap()
}

pub async fn sql(conn: &mut sqlx::PgConnection, statement: &str) {
    sqlx::raw_sql(statement).execute(&mut *conn).await.unwrap();
}

/// The HTTP status of `/ready`, if the server answered at all.
pub async fn ready_status(base_url: &str) -> Option<u16> {
    reqwest::Client::new()
        .get(format!("{base_url}/ready"))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

pub async fn execution_status(client: &Client, id: &str) -> Value {
    client
        .data(
            "query($id: UUID!) { execution(id: $id) { status errorMessage completedAt attempt } }",
            json!({ "id": id }),
        )
        .await
        .unwrap()["execution"]
        .clone()
}

/// Starts a background execution of `function` and gives its id.
pub async fn start_execution(client: &Client, function: &str) -> String {
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

/// How many executions of `db` are PENDING or RUNNING.
pub async fn unfinished_executions(db: &TestDb) -> i64 {
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
pub enum Outcome {
    Ok,
    /// A GraphQL error: code and message.
    Error(String, String),
    /// Anything else: an HTTP status that is not 200, no JSON, no answer.
    Broken(String),
}

impl Outcome {
    /// Whether this is what the contract allows while the database is away:
    /// success, or INTERNAL_SERVER_ERROR with a short message.
    pub fn is_clean(&self) -> bool {
        match self {
            Outcome::Ok => true,
            Outcome::Error(code, message) => {
                code == "INTERNAL_SERVER_ERROR" && !message.is_empty() && message.len() <= 200
            }
            Outcome::Broken(_) => false,
        }
    }
}

/// Sends one GraphQL request and classifies the answer.
pub async fn request(http: &reqwest::Client, base_url: &str, body: &Value) -> Outcome {
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

/// Executions and reads from a few clients, every outcome recorded, until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(base_url: &str, echo: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let execute = json!({ "query": "mutation($id: UUID!) { executeFunction(id: $id, input: {n: 1}) { status } }", "variables": { "id": echo } });
        let read = json!({ "query": "{ functions { totalCount nodes { id status } } executions(first: 5) { totalCount } }" });
        let clients = (0..4)
            .map(|client| {
                let (stop, outcomes) = (Arc::clone(&stop), Arc::clone(&outcomes));
                let (base_url, execute, read) =
                    (base_url.to_string(), execute.clone(), read.clone());
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    let mut i = client;
                    while !stop.load(Ordering::Relaxed) {
                        let body = if i % 2 == 0 { &execute } else { &read };
                        let outcome = request(&http, &base_url, body).await;
                        outcomes.lock().await.push(outcome);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        i += 1;
                    }
                })
            })
            .collect();
        Self {
            stop,
            outcomes,
            clients,
        }
    }

    async fn len(&self) -> usize {
        self.outcomes.lock().await.len()
    }

    /// Waits until `count` outcomes recorded after the `since`-th one match.
    async fn wait_for(
        &self,
        what: &str,
        since: usize,
        count: usize,
        matches: fn(&Outcome) -> bool,
    ) {
        eventually!(what, async {
            let seen = self.outcomes.lock().await[since..]
                .iter()
                .filter(|o| matches(o))
                .count();
            (seen >= count).then_some(())
        });
    }

    async fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            client.await.unwrap();
        }
        Arc::try_unwrap(self.outcomes).unwrap().into_inner()
    }
}

/// Runs the scenario on `app`, whose server must have been started with
/// `PROJECTNIL_EXEC_TIMEOUT_MS` = [`EXEC_TIMEOUT_MS`].
pub async fn survive(app: &TestApp, mut outage: impl Outage) {
    let client = app.client();
    let base_url = &app.server.base_url;
    let echo = client.ready_function("echo", ECHO).await.unwrap();
    let spin = client
        .ready_function("loop", &source("loop"))
        .await
        .unwrap();

    let load = Load::start(base_url, &echo);
    load.wait_for("the load to get going", 0, 8, |o| matches!(o, Outcome::Ok))
        .await;

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

    outage.begin().await;
    let outage_began = load.len().await;
    // The loops reach their time limit while the database is away, so their
    // final status must wait for it to come back.
    eventually!(
        "both loops to time out and retry their final status",
        async {
            let retries = app.server.logs.lines_with("execution.write_retry");
            spinning
                .iter()
                .all(|id| {
                    retries
                        .iter()
                        .any(|line| line.contains("final status") && line.contains(id.as_str()))
                })
                .then_some(())
        }
    );

    // During the outage: not ready, and requests fail with a short, clear error.
    eventually!("/ready to say 503", async {
        (ready_status(base_url).await == Some(503)).then_some(())
    });
    let error = client
        .error("{ functions { totalCount } }", json!({}))
        .await
        .unwrap();
    assert_eq!(error.code, "INTERNAL_SERVER_ERROR", "{error:?}");
    assert!(error.message.contains("database"), "{error:?}");
    load.wait_for(
        "the load to see the outage",
        outage_began,
        4,
        |o| matches!(o, Outcome::Error(code, _) if code == "INTERNAL_SERVER_ERROR"),
    )
    .await;
    let health = reqwest::get(format!("{base_url}/health")).await.unwrap();
    assert_eq!(health.status(), 200, "the process itself stays alive");

    // Back again: the same process recovers by itself.
    let outage_ended = Instant::now();
    outage.end().await;
    eventually!("/ready to say 200 again", async {
        (ready_status(base_url).await == Some(200)).then_some(())
    });
    let recovered = load.len().await;
    load.wait_for("the load to succeed again", recovered, 8, |o| {
        matches!(o, Outcome::Ok)
    })
    .await;
    println!(
        "recovered {:?} after the outage ended",
        outage_ended.elapsed()
    );
    let outcomes = load.stop().await;
    let done = client.execute(&echo, json!({ "x": 1 })).await.unwrap();
    assert_eq!(done["status"], "COMPLETED");
    // The compiler and the result consumer are back too.
    client.ready_function("after", ECHO).await.unwrap();

    // Every request either worked or failed with the contract's error.
    let failures: Vec<&Outcome> = outcomes.iter().filter(|o| !o.is_clean()).collect();
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
