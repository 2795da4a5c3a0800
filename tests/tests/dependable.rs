//! Dependable executions against real processes: admission under overload,
//! background executions that survive a killed worker, several replicas and
//! workers sharing one queue, cancellation wherever an execution runs,
//! final statuses that a slow (stopped) owner cannot overwrite, and
//! executions found by id whatever time their id tells.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::future::join_all;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use tests::fixtures::{ADD, source};
use tests::ws::{TRANSPORT_WS, WsClient};
use tests::{Client, ServerOptions, TestApp, TestDb, TestServer, TestWorker, eventually, signal};

/// Rounds of `burn.ts` that take a few tens of milliseconds of CPU.
const SHORT_BURN: i32 = 30_000_000;
/// Rounds that take a couple of seconds: long enough to act on a run in flight.
const LONG_BURN: i32 = 600_000_000;

/// What `burn.ts` returns for `rounds`.
fn burn_output(rounds: i32) -> Value {
    let mut hash: i32 = 17;
    for i in 0..rounds {
        hash = hash
            .wrapping_mul(1_103_515_245)
            .wrapping_add(12345)
            .wrapping_add(i);
        hash ^= ((hash as u32) >> 13) as i32;
    }
    json!({ "rounds": rounds, "hash": hash })
}

const START: &str = "mutation($id: UUID!, $input: JSON) { startExecution(id: $id, input: $input) { id status attempt } }";
const EXECUTE: &str = "mutation($id: UUID!, $input: JSON) { executeFunction(id: $id, input: $input) { id status output errorMessage attempt } }";
const CANCEL: &str = "mutation($id: UUID!) { cancelExecution(id: $id) { id status errorMessage errorKind completedAt attempt } }";
const EXECUTION: &str = "query($id: UUID!) { execution(id: $id) { id status output errorMessage errorKind attempt startedAt completedAt } }";

async fn start(client: &Client, function: &str, input: Value) -> String {
    let started = client
        .data(START, json!({ "id": function, "input": input }))
        .await
        .unwrap();
    started["startExecution"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn execution(client: &Client, id: &str) -> Value {
    client.data(EXECUTION, json!({ "id": id })).await.unwrap()["execution"].clone()
}

async fn finished(client: &Client, id: &str) -> Value {
    eventually!(format!("execution {id} to finish"), async {
        let now = execution(client, id).await;
        matches!(now["status"].as_str(), Some("COMPLETED" | "FAILED")).then_some(now)
    })
}

async fn owner_of(db: &TestDb, id: &str) -> Option<String> {
    db.first_value(&format!(
        "SELECT owner::text FROM executions WHERE id = '{id}'"
    ))
    .await
}

/// `executeFunction` from a task of its own: the whole answer, once it comes.
fn execute_in_background(
    client: &Client,
    function: &str,
    input: Value,
) -> tokio::task::JoinHandle<Value> {
    let client = client.clone();
    let variables = json!({ "id": function, "input": input });
    tokio::spawn(async move { client.raw(EXECUTE, variables).await.unwrap() })
}

/// The id of a synchronous execution that is `status`, if there is one.
async fn synchronous_execution(db: &TestDb, status: &str) -> Option<String> {
    let conn = db.connect().await.unwrap();
    let row = conn
        .query_one(Statement::from_string(
            conn.get_database_backend(),
            format!(
                "SELECT id::text AS id FROM executions WHERE status = '{status}' AND NOT background"
            ),
        ))
        .await
        .unwrap();
    row.map(|r| r.try_get::<String>("", "id").unwrap())
}

/// A `serve` that leaves background executions to workers.
fn api_only() -> ServerOptions {
    ServerOptions::default().arg("--no-execution-worker")
}

/// How many background executions [`api_with_backlog`] lets wait.
const BACKLOG: usize = 3;

/// An API-only server whose backlog holds [`BACKLOG`], its client, and the
/// id of a READY add function.
async fn api_with_backlog() -> (TestApp, Client, String) {
    let app = TestApp::start_with(api_only().env("PROJECTNIL_EXEC_BACKLOG", BACKLOG))
        .await
        .unwrap();
    let client = app.client();
    let add = client.ready_function("add", ADD).await.unwrap();
    (app, client, add)
}

/// `startExecution` of `function` is refused, naming the backlog's setting.
async fn refused_for_a_full_backlog(client: &Client, function: &str) {
    let refused = client
        .error(
            START,
            json!({ "id": function, "input": { "a": 9, "b": 1 } }),
        )
        .await
        .unwrap();
    assert_eq!(refused.code, "TOO_MANY_REQUESTS", "{refused:?}");
    assert!(
        refused.message.contains("PROJECTNIL_EXEC_BACKLOG"),
        "{refused:?}"
    );
}

fn executions_worker(lease_ms: u64) -> ServerOptions {
    ServerOptions::default()
        .arg("--only")
        .arg("executions")
        .env("PROJECTNIL_EXEC_LEASE_MS", lease_ms)
        .env("PROJECTNIL_EXEC_TIMEOUT_MS", 60_000)
}

/// Every status an execution went through, as a subscription saw them.
struct Transitions(HashMap<String, Vec<String>>);

impl Transitions {
    /// Reads `executionStatusChanged(functionId)` events until every id in
    /// `ids` has reached a final status.
    async fn collect(ws: &mut WsClient, ids: &HashSet<String>) -> Self {
        let mut seen: HashMap<String, Vec<String>> = HashMap::new();
        let done = |seen: &HashMap<String, Vec<String>>| {
            ids.iter().all(|id| {
                seen.get(id).is_some_and(|statuses| {
                    statuses
                        .last()
                        .is_some_and(|s| s == "COMPLETED" || s == "FAILED")
                })
            })
        };
        while !done(&seen) {
            let payload = ws
                .next_payload("all", Duration::from_secs(120))
                .await
                .unwrap();
            let event = &payload["data"]["executionStatusChanged"];
            let id = event["execution"]["id"].as_str().unwrap().to_string();
            seen.entry(id)
                .or_default()
                .push(event["status"].as_str().unwrap().to_string());
        }
        Self(seen)
    }
}

/// Subscribes to the transitions of `function`'s executions. Nothing says
/// when the server has registered a subscription without an id, so probe
/// executions are started until one is heard of; returns how many were.
async fn subscribe_to_function(server: &TestServer, function: &str) -> (WsClient, usize) {
    let mut ws = WsClient::connect(&server.ws_url(), TRANSPORT_WS)
        .await
        .unwrap();
    ws.subscribe(
        "all",
        "subscription($f: UUID) { executionStatusChanged(functionId: $f) { status execution { id } } }",
        json!({ "f": function }),
    )
    .await
    .unwrap();
    let client = server.client();
    for probes in 1..=60 {
        let probe = start(&client, function, json!({ "rounds": 1 })).await;
        if ws.next_payload("all", Duration::from_secs(1)).await.is_ok() {
            // Whatever is left of the probes' transitions is ignored later.
            finished(&client, &probe).await;
            return (ws, probes);
        }
    }
    panic!("the subscription never delivered a transition");
}

#[tokio::test]
async fn overload_refuses_clearly_and_every_accepted_execution_completes() {
    const THREADS: usize = 2;
    const QUEUE: usize = 4;
    const CALLS: usize = 10 * (THREADS + QUEUE);
    let app = TestApp::start_with(
        ServerOptions::default()
            .env("PROJECTNIL_EXEC_CONCURRENCY", THREADS)
            .env("PROJECTNIL_EXEC_QUEUE", QUEUE)
            .env("PROJECTNIL_EXEC_TIMEOUT_MS", 1000),
    )
    .await
    .unwrap();
    let client = app.client();
    let burn = client
        .ready_function("burn", &source("burn"))
        .await
        .unwrap();
    let (mut ws, probes) = subscribe_to_function(&app.server, &burn).await;

    let input = json!({ "rounds": SHORT_BURN });
    let synchronous = (0..CALLS).map(|_| {
        let client = client.clone();
        let burn = burn.clone();
        let input = input.clone();
        async move {
            client
                .raw(EXECUTE, json!({ "id": burn, "input": input }))
                .await
                .unwrap()
        }
    });
    let background = (0..CALLS).map(|_| {
        let client = client.clone();
        let burn = burn.clone();
        let input = input.clone();
        async move {
            client
                .raw(START, json!({ "id": burn, "input": input }))
                .await
                .unwrap()
        }
    });
    let (synchronous, background) = tokio::join!(join_all(synchronous), join_all(background));

    let mut accepted = HashSet::new();
    let mut refused = 0;
    let expected = burn_output(SHORT_BURN);
    for answer in &synchronous {
        match answer["errors"].as_array() {
            Some(errors) => {
                assert_eq!(
                    errors[0]["extensions"]["code"], "TOO_MANY_REQUESTS",
                    "{answer}"
                );
                let message = errors[0]["message"].as_str().unwrap();
                assert!(message.contains("at capacity"), "{message}");
                assert!(message.contains("nothing was recorded"), "{message}");
                refused += 1;
            }
            None => {
                let execution = &answer["data"]["executeFunction"];
                assert_eq!(execution["status"], "COMPLETED", "{execution}");
                assert_eq!(execution["output"], expected);
                assert_eq!(execution["attempt"], 1);
                accepted.insert(execution["id"].as_str().unwrap().to_string());
            }
        }
    }
    assert!(
        refused > 0,
        "{CALLS} calls at once never filled a queue of {QUEUE}"
    );
    assert!(
        accepted.len() >= THREADS,
        "accepted only {}",
        accepted.len()
    );
    for answer in &background {
        assert!(
            answer["errors"].is_null(),
            "background executions are not refused: {answer}"
        );
        accepted.insert(
            answer["data"]["startExecution"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(accepted.len(), (CALLS - refused) + CALLS);

    // Each transition exactly once, in order; every outcome the real one.
    let transitions = Transitions::collect(&mut ws, &accepted).await;
    for id in &accepted {
        assert_eq!(
            transitions.0[id],
            ["PENDING", "RUNNING", "COMPLETED"],
            "{id}"
        );
        let now = execution(&client, id).await;
        assert_eq!(now["output"], expected, "{now}");
        assert_eq!(now["attempt"], 1);
    }
    // The refused calls left no row: only the accepted ones and the probes exist.
    assert_eq!(
        app.db.scalar("SELECT count(*) FROM executions").await,
        (accepted.len() + probes) as i64
    );
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM executions WHERE status <> 'COMPLETED'")
            .await,
        0
    );
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM pgmq.q_execution_jobs")
            .await,
        0
    );
}

#[tokio::test]
async fn a_killed_worker_s_executions_run_again_elsewhere_and_give_up_after_the_attempt_limit() {
    const LEASE_MS: u64 = 1000;
    let app = TestApp::start_with(api_only()).await.unwrap();
    let client = app.client();
    let burn = client
        .ready_function("burn", &source("burn"))
        .await
        .unwrap();
    let input = json!({ "rounds": LONG_BURN });

    // Attempt 1 on worker A, killed mid-run; worker B runs both again.
    let mut first = TestWorker::start(&app.db.url, executions_worker(LEASE_MS))
        .await
        .unwrap();
    let ids = [
        start(&client, &burn, input.clone()).await,
        start(&client, &burn, input.clone()).await,
    ];
    for id in &ids {
        eventually!("both executions to be RUNNING on worker A", async {
            (execution(&client, id).await["status"] == "RUNNING").then_some(())
        });
    }
    let first_owner = owner_of(&app.db, &ids[0]).await;
    first.kill().await.unwrap();
    let second = TestWorker::start(&app.db.url, executions_worker(LEASE_MS))
        .await
        .unwrap();
    let expected = burn_output(LONG_BURN);
    for id in &ids {
        let done = finished(&client, id).await;
        assert_eq!(done["status"], "COMPLETED", "{done}");
        assert_eq!(done["output"], expected);
        assert_eq!(done["attempt"], 2, "{done}");
        assert_ne!(owner_of(&app.db, id).await, first_owner);
    }

    // With one attempt allowed, the run the crash interrupted is not run again.
    let mut third = TestWorker::start(&app.db.url, executions_worker(LEASE_MS))
        .await
        .unwrap();
    drop(second);
    let doomed = start(&client, &burn, input.clone()).await;
    eventually!("the execution to be RUNNING", async {
        (execution(&client, &doomed).await["status"] == "RUNNING").then_some(())
    });
    third.kill().await.unwrap();
    let _strict = TestWorker::start(
        &app.db.url,
        executions_worker(LEASE_MS).env("PROJECTNIL_EXEC_MAX_ATTEMPTS", 1),
    )
    .await
    .unwrap();
    let done = finished(&client, &doomed).await;
    assert_eq!(done["status"], "FAILED", "{done}");
    assert_eq!(done["attempt"], 1);
    let message = done["errorMessage"].as_str().unwrap();
    assert!(
        message.starts_with("interrupted 1 time: gave up after 1 run"),
        "{message}"
    );
    assert_eq!(done["errorKind"], "INTERRUPTED");
    eventually!("the settled message to leave the queue", async {
        (app.db
            .scalar("SELECT count(*) FROM pgmq.q_execution_jobs")
            .await
            == 0)
            .then_some(())
    });
}

#[tokio::test]
async fn two_replicas_and_two_workers_run_every_background_execution_exactly_once() {
    const EXECUTIONS: usize = 40;
    let app = TestApp::start().await.unwrap();
    let replica = TestServer::start(&app.db.url, ServerOptions::default())
        .await
        .unwrap();
    let _workers = [
        TestWorker::start(&app.db.url, executions_worker(10_000))
            .await
            .unwrap(),
        TestWorker::start(&app.db.url, executions_worker(10_000))
            .await
            .unwrap(),
    ];
    let clients = [app.client(), replica.client()];
    let burn = clients[0]
        .ready_function("burn", &source("burn"))
        .await
        .unwrap();
    let (mut ws, _) = subscribe_to_function(&replica, &burn).await;

    let input = json!({ "rounds": SHORT_BURN });
    let ids: HashSet<String> = join_all((0..EXECUTIONS).map(|i| {
        let client = clients[i % 2].clone();
        let burn = burn.clone();
        let input = input.clone();
        async move { start(&client, &burn, input).await }
    }))
    .await
    .into_iter()
    .collect();
    assert_eq!(ids.len(), EXECUTIONS);
    let transitions = Transitions::collect(&mut ws, &ids).await;
    let expected = burn_output(SHORT_BURN);
    for id in &ids {
        assert_eq!(
            transitions.0[id],
            ["PENDING", "RUNNING", "COMPLETED"],
            "{id}"
        );
        let done = execution(&clients[0], id).await;
        assert_eq!(done["output"], expected);
        assert_eq!(done["attempt"], 1, "run more than once: {done}");
    }
    let owners = app
        .db
        .scalar(&format!(
            "SELECT count(DISTINCT owner) FROM executions WHERE input->>'rounds' = '{SHORT_BURN}'"
        ))
        .await;
    assert!(
        owners >= 2,
        "{EXECUTIONS} executions all ran in one process"
    );
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM pgmq.q_execution_jobs")
            .await,
        0
    );
}

#[tokio::test]
async fn cancel_pending_running_finished_unknown_and_across_replicas() {
    // Replica A runs executions on two threads; replica B only takes requests.
    let options = ServerOptions::default()
        .env("PROJECTNIL_EXEC_CONCURRENCY", 2)
        .env("PROJECTNIL_EXEC_TIMEOUT_MS", 600_000);
    let app = TestApp::start_with(options.clone()).await.unwrap();
    let other = TestServer::start(&app.db.url, options.arg("--no-execution-worker"))
        .await
        .unwrap();
    let (a, b) = (app.client(), other.client());
    let spin = a.ready_function("loop", &source("loop")).await.unwrap();
    let add = a.ready_function("add", ADD).await.unwrap();

    let unknown = b
        .error(CANCEL, json!({ "id": uuid::Uuid::new_v4() }))
        .await
        .unwrap();
    assert_eq!(unknown.code, "NOT_FOUND", "{unknown:?}");

    let done = a.execute(&add, json!({ "a": 1, "b": 2 })).await.unwrap();
    let unchanged =
        b.data(CANCEL, json!({ "id": done["id"] })).await.unwrap()["cancelExecution"].clone();
    assert_eq!(unchanged["status"], "COMPLETED");
    assert_eq!(unchanged["errorMessage"], Value::Null);

    // Running, synchronous, on A, cancelled through B: its caller gets the
    // cancelled execution back.
    let caller = execute_in_background(&a, &spin, json!({}));
    let running_sync = eventually!("the synchronous loop to be RUNNING", async {
        synchronous_execution(&app.db, "RUNNING").await
    });
    // Running, background, on A (B does not take background executions).
    let running_background = start(&b, &spin, json!({})).await;
    eventually!("the background loop to be RUNNING", async {
        (execution(&b, &running_background).await["status"] == "RUNNING").then_some(())
    });
    // Both threads of A are busy: these two wait, PENDING.
    let pending_background = start(&b, &spin, json!({})).await;
    let queued_caller = execute_in_background(&a, &spin, json!({}));
    let pending_sync = eventually!("the queued synchronous execution to be recorded", async {
        synchronous_execution(&app.db, "PENDING").await
    });
    assert_eq!(
        execution(&b, &pending_background).await["status"],
        "PENDING"
    );

    for id in [
        &pending_sync,
        &pending_background,
        &running_sync,
        &running_background,
    ] {
        let cancelled =
            b.data(CANCEL, json!({ "id": id })).await.unwrap()["cancelExecution"].clone();
        assert_eq!(cancelled["status"], "FAILED", "{cancelled}");
        let message = cancelled["errorMessage"].as_str().unwrap();
        assert!(message.starts_with("cancelled"), "{message}");
        assert_eq!(cancelled["errorKind"], "CANCELLED");
        assert!(cancelled["completedAt"].is_string());
        // Cancelling again returns it unchanged.
        let again = a.data(CANCEL, json!({ "id": id })).await.unwrap()["cancelExecution"].clone();
        assert_eq!(again, cancelled);
    }
    for caller in [caller, queued_caller] {
        let answer = caller.await.unwrap();
        let execution = &answer["data"]["executeFunction"];
        assert_eq!(execution["status"], "FAILED", "{answer}");
        assert!(
            execution["errorMessage"]
                .as_str()
                .unwrap()
                .starts_with("cancelled")
        );
    }
    // The interrupted loops freed A's threads, and the settled messages left the queue.
    let after = a.execute(&add, json!({ "a": 2, "b": 2 })).await.unwrap();
    assert_eq!(after["output"], json!({ "sum": 4 }));
    let later = start(&b, &add, json!({ "a": 3, "b": 3 })).await;
    assert_eq!(finished(&b, &later).await["output"], json!({ "sum": 6 }));
    eventually!("the execution queue to be empty", async {
        (app.db
            .scalar("SELECT count(*) FROM pgmq.q_execution_jobs")
            .await
            == 0)
            .then_some(())
    });
    for id in [
        &pending_sync,
        &pending_background,
        &running_sync,
        &running_background,
    ] {
        let now = execution(&a, id).await;
        assert!(
            now["errorMessage"]
                .as_str()
                .unwrap()
                .starts_with("cancelled"),
            "{now}"
        );
    }
}

#[tokio::test]
async fn a_final_status_is_never_overwritten_by_an_owner_that_lost_its_lease() {
    const LEASE_MS: u64 = 500;
    let app = TestApp::start_with(
        api_only()
            .env("PROJECTNIL_EXEC_LEASE_MS", LEASE_MS)
            .env("PROJECTNIL_EXEC_TIMEOUT_MS", 60_000),
    )
    .await
    .unwrap();
    let client = app.client();
    let burn = client
        .ready_function("burn", &source("burn"))
        .await
        .unwrap();
    let input = json!({ "rounds": LONG_BURN });
    let expected = burn_output(LONG_BURN);

    // Background: worker A is stopped mid-run, B takes over and finishes; A
    // resumes, finishes its own run, and its write changes nothing.
    let slow = TestWorker::start(&app.db.url, executions_worker(LEASE_MS))
        .await
        .unwrap();
    let id = start(&client, &burn, input.clone()).await;
    eventually!("the execution to be RUNNING on worker A", async {
        (execution(&client, &id).await["status"] == "RUNNING").then_some(())
    });
    signal(slow.child.id().unwrap(), "STOP").unwrap();
    let fast = TestWorker::start(&app.db.url, executions_worker(LEASE_MS))
        .await
        .unwrap();
    let done = finished(&client, &id).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["attempt"], 2);
    assert_eq!(done["output"], expected);
    drop(fast);
    signal(slow.child.id().unwrap(), "CONT").unwrap();
    eventually!("worker A to find its run lost", async {
        (slow.logs.count("execution.lease_lost") + slow.logs.count("execution.final_write_lost")
            > 0)
        .then_some(())
    });
    assert_eq!(execution(&client, &id).await, done);

    // Synchronous: replica A holds it and is stopped; replica B's sweep ends
    // it "interrupted"; A resumes and cannot overwrite that.
    let holder = TestServer::start(
        &app.db.url,
        ServerOptions::default()
            .env("PROJECTNIL_EXEC_LEASE_MS", LEASE_MS)
            .env("PROJECTNIL_EXEC_TIMEOUT_MS", 60_000),
    )
    .await
    .unwrap();
    let caller = execute_in_background(&holder.client(), &burn, input.clone());
    let sync_id = eventually!("the synchronous execution to be RUNNING", async {
        synchronous_execution(&app.db, "RUNNING").await
    });
    signal(holder.child.id().unwrap(), "STOP").unwrap();
    let swept = finished(&client, &sync_id).await;
    assert_eq!(swept["status"], "FAILED");
    assert!(
        swept["errorMessage"]
            .as_str()
            .unwrap()
            .starts_with("interrupted"),
        "{swept}"
    );
    signal(holder.child.id().unwrap(), "CONT").unwrap();
    let answer = caller.await.unwrap();
    let returned = &answer["data"]["executeFunction"];
    assert_eq!(returned["status"], "FAILED", "{answer}");
    assert_eq!(returned["errorMessage"], swept["errorMessage"]);
    assert_eq!(execution(&client, &sync_id).await, swept);
}

#[tokio::test]
async fn the_backlog_waits_in_postgres_visible_to_operators_and_is_bounded() {
    let (app, client, add) = api_with_backlog().await;
    let ids: Vec<String> = join_all((0..BACKLOG).map(|i| {
        let client = client.clone();
        let add = add.clone();
        async move { start(&client, &add, json!({ "a": i, "b": 1 })).await }
    }))
    .await;
    let stats = client
        .data("{ queueStats { queueName length } }", json!({}))
        .await
        .unwrap();
    let execution_jobs = stats["queueStats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queueName"] == "execution_jobs")
        .cloned()
        .unwrap();
    assert_eq!(execution_jobs["length"], BACKLOG);
    // Each job is what serialising `ExecutionJob` gives for its execution,
    // although SQL built it in the statement that accepted the execution.
    let conn = app.db.connect().await.unwrap();
    let jobs = conn
        .query_all(Statement::from_string(
            conn.get_database_backend(),
            "SELECT q.message, e.id, e.function_id, e.revision
               FROM pgmq.q_execution_jobs q JOIN executions e ON e.id::text = q.message->>'executionId'",
        ))
        .await
        .unwrap();
    assert_eq!(jobs.len(), ids.len());
    for row in jobs {
        let job = server::queue::ExecutionJob {
            execution_id: row.try_get("", "id").unwrap(),
            function_id: Some(row.try_get("", "function_id").unwrap()),
            revision: Some(row.try_get("", "revision").unwrap()),
        };
        let message: Value = row.try_get("", "message").unwrap();
        assert_eq!(message, serde_json::to_value(&job).unwrap());
    }
    let metrics = client
        .http()
        .get(format!("{}/metrics", app.server.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "projectnil_queue_length{{queue=\"execution_jobs\"}} {BACKLOG}"
        )),
        "{metrics}"
    );

    // Full: refused at once, nothing recorded.
    refused_for_a_full_backlog(&client, &add).await;
    assert_eq!(
        app.db.scalar("SELECT count(*) FROM executions").await,
        BACKLOG as i64
    );

    // A worker drains it.
    let _worker = TestWorker::start(&app.db.url, executions_worker(10_000))
        .await
        .unwrap();
    for (i, id) in ids.iter().enumerate() {
        let done = finished(&client, id).await;
        assert_eq!(done["output"], json!({ "sum": i + 1 }), "{done}");
    }
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM pgmq.q_execution_jobs")
            .await,
        0
    );
}

#[tokio::test]
async fn a_run_recorded_in_one_statement_keeps_its_run_time_and_only_its_deployed_revision() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let add = client.ready_function("add", ADD).await.unwrap();

    // Through the API: a short call takes the one-statement path.
    let answer = client
        .data(EXECUTE, json!({ "id": add, "input": { "a": 2, "b": 3 } }))
        .await
        .unwrap();
    let id = answer["executeFunction"]["id"].as_str().unwrap().to_owned();
    assert_eq!(answer["executeFunction"]["status"], "COMPLETED", "{answer}");
    assert_eq!(answer["executeFunction"]["output"], json!({ "sum": 5 }));
    assert_eq!(
        app.db
            .scalar(&format!(
                "SELECT count(*) FROM executions WHERE id = '{id}'
                   AND created_at <= started_at AND started_at <= completed_at
                   AND lease_expires_at IS NULL AND revision = 1"
            ))
            .await,
        1
    );

    // The statement itself: a revision that is not the deployed one records
    // nothing; the deployed one is recorded with the measured intervals.
    let record = |revision: i64| {
        format!(
            "SELECT count(*) FROM projectnil_record_run(
                 gen_random_uuid(), '{add}', {revision}, '{{}}'::jsonb, gen_random_uuid(),
                 '10 seconds', '3 milliseconds', '2 milliseconds', '1500 microseconds',
                 'COMPLETED', '{{\"sum\": 0}}'::jsonb, NULL, NULL, NULL)"
        )
    };
    let before = app.db.scalar("SELECT count(*) FROM executions").await;
    assert_eq!(app.db.scalar(&record(2)).await, 0);
    assert_eq!(
        app.db.scalar("SELECT count(*) FROM executions").await,
        before
    );
    assert_eq!(app.db.scalar(&record(1)).await, 1);
    assert_eq!(
        app.db
            .scalar(
                "SELECT count(*) FROM executions
              WHERE output = '{\"sum\": 0}' AND status = 'COMPLETED'
                AND completed_at - started_at = interval '1500 microseconds'
                AND started_at - created_at = interval '1 millisecond'"
            )
            .await,
        1
    );

    // The statistics see each run's own duration, whether the server has
    // folded its finish into the rollups yet (once a second) or not.
    assert_eq!(
        app.db.scalar(&format!(
                "SELECT count(*) FROM (
                     SELECT sum(ms) AS statistics FROM (
                         SELECT duration_ms AS ms FROM execution_finishes WHERE function_id = '{add}'
                         UNION ALL
                         SELECT duration_sum_ms FROM execution_rollups
                          WHERE function_id = '{add}' AND width = 60) AS both_sides) AS seen
                  WHERE abs(statistics - (
                      SELECT sum(extract(epoch FROM completed_at - started_at) * 1000)
                        FROM executions WHERE function_id = '{add}')) < 1e-6"
            )
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_run_recorded_in_one_statement_announces_each_transition_in_order() {
    let app = TestApp::start().await.unwrap();
    let add = app.client().ready_function("add", ADD).await.unwrap();
    let mut listener = sqlx::postgres::PgListener::connect(&app.db.url)
        .await
        .unwrap();
    listener.listen(migration::STATUS_CHANNEL).await.unwrap();
    // The `(previousStatus, status)` of each announcement of execution `id`,
    // until one ends in `last`.
    let mut announced = async |id: &str, last: &str| {
        let mut seen = Vec::new();
        loop {
            let notification = tokio::time::timeout(Duration::from_secs(10), listener.recv())
                .await
                .expect("an announcement within 10 s")
                .unwrap();
            let change: Value = serde_json::from_str(notification.payload()).unwrap();
            if change["id"] != id {
                continue;
            }
            assert_eq!(change["kind"], "execution", "{change}");
            assert_eq!(change["functionId"], add.as_str(), "{change}");
            let status = change["status"].as_str().unwrap().to_owned();
            seen.push((
                change["previousStatus"].as_str().map(str::to_owned),
                status.clone(),
            ));
            if status == last {
                return seen;
            }
        }
    };
    let pair =
        |previous: Option<&str>, status: &str| (previous.map(str::to_owned), status.to_owned());
    let record = |id: &str, outcome: &str| {
        format!(
            "SELECT status::text FROM projectnil_record_run(
                 '{id}', '{add}', 1, '{{}}'::jsonb, gen_random_uuid(),
                 '10 seconds', '3 milliseconds', '2 milliseconds', {outcome})"
        )
    };

    // Finished: inserted whole, announced as the three transitions it made.
    let finished = uuid::Uuid::new_v4().to_string();
    let outcome = "'1 millisecond', 'FAILED', NULL, 'abort: no', NULL, 'ABORT'";
    assert_eq!(
        app.db
            .first_value::<String>(&record(&finished, outcome))
            .await,
        "FAILED"
    );
    assert_eq!(
        announced(&finished, "FAILED").await,
        [
            pair(None, "PENDING"),
            pair(Some("PENDING"), "RUNNING"),
            pair(Some("RUNNING"), "FAILED")
        ]
    );
    // Still running (the call went on past its first poll): PENDING and
    // RUNNING, with its lease; the final write is an update, announced as one.
    let running = uuid::Uuid::new_v4().to_string();
    let no_outcome = "NULL, NULL, NULL, NULL, NULL, NULL";
    assert_eq!(
        app.db
            .first_value::<String>(&record(&running, no_outcome))
            .await,
        "RUNNING"
    );
    assert_eq!(
        announced(&running, "RUNNING").await,
        [pair(None, "PENDING"), pair(Some("PENDING"), "RUNNING")]
    );
    assert_eq!(
        app.db
            .scalar(&format!(
                "SELECT count(*) FROM executions WHERE id = '{running}'
                   AND lease_expires_at > now() AND completed_at IS NULL AND output IS NULL"
            ))
            .await,
        1
    );
    let ended = app.db.scalar(&format!(
            "WITH done AS (UPDATE executions SET status = 'COMPLETED', completed_at = clock_timestamp(),
                                                lease_expires_at = NULL
                            WHERE id = '{running}' AND status = 'RUNNING' RETURNING 1)
             SELECT count(*) FROM done"
        ),
    )
    .await;
    assert_eq!(ended, 1);
    assert_eq!(
        announced(&running, "COMPLETED").await,
        [pair(Some("RUNNING"), "COMPLETED")]
    );
    // Any other insert is announced once, as it always was.
    let inserted = uuid::Uuid::new_v4().to_string();
    let inserted_rows = app.db.scalar(&format!(
            "WITH i AS (INSERT INTO executions (id, function_id, revision) VALUES ('{inserted}', '{add}', 1) RETURNING 1)
             SELECT count(*) FROM i"
        ),
    )
    .await;
    assert_eq!(inserted_rows, 1);
    assert_eq!(
        announced(&inserted, "PENDING").await,
        [pair(None, "PENDING")]
    );
}

/// How far, in milliseconds, the time in an execution's id is from its
/// `created_at`; `None` unless the id is time-ordered (version 7).
async fn id_time_from_created_at(db: &TestDb, id: &str) -> Option<i64> {
    db.first_value(&format!(
        "SELECT CASE WHEN substr(id::text, 15, 1) = '7' THEN
                    abs(floor(extract(epoch FROM created_at) * 1000)::bigint
                        - ('x' || substr(replace(id::text, '-', ''), 1, 12))::bit(48)::bigint)
                    END
               FROM executions WHERE id = '{id}'"
    ))
    .await
}

#[tokio::test]
async fn executions_are_found_cancelled_and_run_whatever_time_their_id_tells() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let add = client.ready_function("add", ADD).await.unwrap();

    // New ids, synchronous or background, tell when they were made.
    let synchronous = client
        .execute(&add, json!({ "a": 1, "b": 2 }))
        .await
        .unwrap();
    let background = start(&client, &add, json!({ "a": 2, "b": 2 })).await;
    for id in [synchronous["id"].as_str().unwrap(), &background] {
        let apart = id_time_from_created_at(&app.db, id).await;
        assert!(apart.is_some_and(|ms| ms < 60_000), "{id}: {apart:?} ms");
    }
    assert_eq!(
        finished(&client, &background).await["output"],
        json!({ "sum": 4 })
    );

    // Ids the server would not make: random (rows older than time-ordered
    // ids), and time-ordered three days before the row was created (a clock
    // far off). The server looks near the id's time first, then everywhere.
    let three_days_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3 * 86_400;
    let foreign = || {
        [
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
                uuid::NoContext,
                three_days_ago,
                0,
            )),
        ]
    };
    let insert = |id: uuid::Uuid, queued: bool| {
        let db = &app.db;
        let add = &add;
        async move {
            let sql = format!(
                "WITH i AS (INSERT INTO executions (id, function_id, revision, input, background)
                            VALUES ('{id}', '{add}', 1, '{{\"a\": 5, \"b\": 6}}', true) RETURNING 1)
                 SELECT count(*) FROM i"
            );
            assert_eq!(db.scalar(&sql).await, 1, "{sql}");
            if queued {
                let job = json!({ "executionId": id });
                db.scalar(&format!(
                    "SELECT pgmq.send('execution_jobs', '{job}'::jsonb)"
                ))
                .await;
            }
        }
    };
    for id in foreign() {
        insert(id, true).await;
        let ran = finished(&client, &id.to_string()).await;
        assert_eq!(ran["status"], "COMPLETED", "{id}: {ran}");
        assert_eq!(ran["output"], json!({ "sum": 11 }), "{id}");
    }
    for id in foreign() {
        insert(id, false).await;
        assert_eq!(
            execution(&client, &id.to_string()).await["status"],
            "PENDING"
        );
        let cancelled =
            client.data(CANCEL, json!({ "id": id })).await.unwrap()["cancelExecution"].clone();
        assert_eq!(cancelled["status"], "FAILED", "{id}: {cancelled}");
        assert_eq!(cancelled["errorKind"], "CANCELLED", "{id}");
    }
    // Unknown, though its id tells a time: neither look finds it.
    let unknown = uuid::Uuid::now_v7();
    let cancelled = client
        .error(CANCEL, json!({ "id": unknown }))
        .await
        .unwrap();
    assert_eq!(cancelled.code, "NOT_FOUND", "{cancelled:?}");
    assert_eq!(execution(&client, &unknown.to_string()).await, Value::Null);
    eventually!("the execution queue to be empty", async {
        (app.db
            .scalar("SELECT count(*) FROM pgmq.q_execution_jobs")
            .await
            == 0)
            .then_some(())
    });
}

#[tokio::test]
async fn the_backlog_counts_the_messages_waiting_not_the_ids_between_them() {
    let (app, client, add) = api_with_backlog().await;
    for i in 0..BACKLOG {
        start(&client, &add, json!({ "a": i, "b": 1 })).await;
    }
    refused_for_a_full_backlog(&client, &add).await;

    // The middle message leaves first, as when a later run finishes before
    // an earlier one: the ids still span the capacity, but only two wait.
    let middle = app
        .db
        .scalar("SELECT msg_id FROM pgmq.q_execution_jobs ORDER BY msg_id OFFSET 1 LIMIT 1")
        .await;
    app.db
        .scalar(&format!(
            "SELECT pgmq.delete('execution_jobs', {middle}::bigint)::int::bigint"
        ))
        .await;
    start(&client, &add, json!({ "a": 3, "b": 1 })).await;
    refused_for_a_full_backlog(&client, &add).await;
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM pgmq.q_execution_jobs")
            .await,
        BACKLOG as i64
    );
}
