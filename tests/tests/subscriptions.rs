//! Live status subscriptions (issue #8) end to end: real compiles by the
//! AssemblyScript compiler, real executions, events fanned out through
//! PostgreSQL to every replica, and a subscriber that outlives the loss of the
//! server's database connections.
//!
//! Where the order of events matters, servers run with `--no-worker` and a
//! `projectnil worker` is started only once the subscriber is in place, so a
//! compile can never race ahead of the subscription.

use std::time::Duration;

use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use tests::fixtures::{ADD, ECHO};
use tests::ws::{TRANSPORT_WS, WsClient};
use tests::{Client, ServerOptions, TestApp, TestDb, TestServer, TestWorker, exec};

/// Compiles take seconds; this is a bound for a hung test, not a expectation.
const WAIT: Duration = Duration::from_secs(60);

const FAILING: &str = "export function handle(input: string): string { return 1 }";

const FUNCTION_EVENTS: &str = "subscription($id: UUID) {
  functionStatusChanged(id: $id) { previousStatus status at function { id status compileError wasmSize } }
}";

const EXECUTION_EVENTS: &str = "subscription($id: UUID, $functionId: UUID) {
  executionStatusChanged(id: $id, functionId: $functionId) {
    previousStatus status at execution { id functionId status output errorMessage }
  }
}";

const START: &str =
    "mutation($id: UUID!, $input: JSON) { startExecution(id: $id, input: $input) { id status } }";

async fn app_without_worker() -> TestApp {
    TestApp::start_without_worker().await.unwrap()
}

async fn subscriber(server: &TestServer, query: &str, variables: Value) -> WsClient {
    let mut client = WsClient::connect(&server.ws_url(), TRANSPORT_WS)
        .await
        .unwrap();
    client.subscribe("sub", query, variables).await.unwrap();
    client
}

/// The next event of the client's subscription `sub`.
async fn event(client: &mut WsClient) -> Value {
    event_in(&client.next_payload("sub", WAIT).await.unwrap())
}

/// The event in a `next` payload.
fn event_in(payload: &Value) -> Value {
    assert!(payload.get("errors").is_none(), "{payload}");
    let data = &payload["data"];
    data.get("functionStatusChanged")
        .or_else(|| data.get("executionStatusChanged"))
        .unwrap_or_else(|| panic!("not an event: {payload}"))
        .clone()
}

/// The entity an event is about.
fn subject(event: &Value) -> &Value {
    event.get("function").unwrap_or(&event["execution"])
}

/// Events of subscription `sub` about `id`, up to and including `last` status.
async fn events_of(client: &mut WsClient, id: &str, last: &str) -> Vec<Value> {
    collect_events(client, id, last, false).await
}

/// The same, skipping results that are an INTERNAL_SERVER_ERROR: while the
/// database is unreachable, an event the server could not load arrives as one.
async fn events_after_outage(client: &mut WsClient, id: &str, last: &str) -> Vec<Value> {
    collect_events(client, id, last, true).await
}

async fn collect_events(client: &mut WsClient, id: &str, last: &str, outage: bool) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let payload = client.next_payload("sub", WAIT).await.unwrap();
        if outage && is_outage_error(&payload) {
            continue;
        }
        let event = event_in(&payload);
        if subject(&event)["id"] != id {
            continue;
        }
        let done = event["status"] == last;
        events.push(event);
        if done {
            return events;
        }
    }
}

fn is_outage_error(payload: &Value) -> bool {
    payload["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
}

/// `(previousStatus, status)` of each event.
fn transitions(events: &[Value]) -> Vec<(Value, Value)> {
    events
        .iter()
        .map(|e| (e["previousStatus"].clone(), e["status"].clone()))
        .collect()
}

fn pair(previous: Option<&str>, status: &str) -> (Value, Value) {
    (json!(previous), json!(status))
}

async fn create(client: &Client, name: &str, source: &str) -> String {
    client.create_function(name, source).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn start_execution(client: &Client, function_id: &str, input: Value) -> String {
    let data = client
        .data(START, json!({ "id": function_id, "input": input }))
        .await
        .unwrap();
    data["startExecution"]["id"].as_str().unwrap().to_string()
}

/// A subscription without an id sends nothing until something changes, so
/// nothing says when the server has registered it (or, after the database
/// connections were lost, when it listens again). Announce a probe transition
/// of `function_id` (an execution inserted as FAILED) until one comes through.
async fn until_executions_flow(client: &mut WsClient, db: &DatabaseConnection, function_id: &str) {
    let is_probe = |event: &Value| event["execution"]["errorMessage"] == "probe";
    let announce = format!(
        "INSERT INTO executions (function_id, revision, status, error_message, error_kind) VALUES ('{function_id}', 1, 'FAILED', 'probe', 'ABORT')"
    );
    until_flowing(client, is_probe, db, &announce).await
}

/// A function of the probes' own, made in the database (so no compiler ever
/// touches it): announced as FAILED.
async fn probe_function(db: &DatabaseConnection) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    exec(
        db,
        &format!(
            "INSERT INTO functions (id, name, language, source, status, compile_error)
             VALUES ('{id}', 'probe {id}', 'assemblyscript', '', 'FAILED', 'probe')"
        ),
    )
    .await;
    id
}

/// The same for function subscriptions: the probe function flips between
/// FAILED and PENDING.
async fn until_functions_flow(client: &mut WsClient, db: &DatabaseConnection, probe: &str) {
    let is_probe = |event: &Value| event["function"]["id"] == probe;
    let announce = format!(
        "UPDATE functions SET status = CASE status WHEN 'FAILED' THEN 'PENDING'::function_status ELSE 'FAILED' END
         WHERE id = '{probe}'"
    );
    until_flowing(client, is_probe, db, &announce).await
}

/// Runs `announce` until `client` hears an event `is_probe` recognises.
async fn until_flowing(
    client: &mut WsClient,
    is_probe: impl Fn(&Value) -> bool,
    db: &DatabaseConnection,
    announce: &str,
) {
    for _ in 0..60 {
        exec(db, announce).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match client.next_payload("sub", left).await {
                // (Around a database outage, an event may arrive as an error.)
                Ok(payload) if is_outage_error(&payload) => continue,
                Ok(payload) if is_probe(&event_in(&payload)) => return,
                Ok(_) => continue,
                Err(_) => break,
            }
        }
    }
    panic!("the subscription never delivered a probe transition");
}

#[tokio::test]
async fn a_function_subscription_sees_pending_compiling_ready_in_order() {
    let app = app_without_worker().await;
    let id = create(&app.client(), "add", ADD).await;
    let mut client = subscriber(&app.server, FUNCTION_EVENTS, json!({ "id": id })).await;
    let snapshot = event(&mut client).await;
    assert_eq!(
        transitions(std::slice::from_ref(&snapshot)),
        [pair(None, "PENDING")]
    );
    assert_eq!(snapshot["function"]["id"], id.as_str());

    let _worker = TestWorker::start(&app.db.url, ServerOptions::default())
        .await
        .unwrap();
    let events = events_of(&mut client, &id, "READY").await;
    assert_eq!(
        transitions(&events),
        [
            pair(Some("PENDING"), "COMPILING"),
            pair(Some("COMPILING"), "READY")
        ]
    );
    let ready = &events[1]["function"];
    assert_eq!(ready["status"], "READY");
    assert!(
        ready["wasmSize"].as_i64().is_some_and(|size| size > 0),
        "{ready}"
    );
    assert_eq!(ready["compileError"], Value::Null);
}

#[tokio::test]
async fn without_an_id_every_function_is_followed() {
    let app = app_without_worker().await;
    let client = app.client();
    let db = app.db.connect().await.unwrap();
    let probe = probe_function(&db).await;
    let mut ws = subscriber(&app.server, FUNCTION_EVENTS, json!({})).await;
    until_functions_flow(&mut ws, &db, &probe).await;

    let add = create(&client, "add", ADD).await;
    let echo = create(&client, "echo", ECHO).await;
    let _worker = TestWorker::start(&app.db.url, ServerOptions::default())
        .await
        .unwrap();
    let mut seen: std::collections::HashMap<String, Vec<Value>> = Default::default();
    while [&add, &echo].iter().any(|id| {
        !seen
            .get(*id)
            .is_some_and(|e| e.last().is_some_and(|e| e["status"] == "READY"))
    }) {
        let event = event(&mut ws).await;
        let id = subject(&event)["id"].as_str().unwrap().to_string();
        seen.entry(id).or_default().push(event);
    }
    for id in [&add, &echo] {
        assert_eq!(
            transitions(&seen[id]),
            [
                pair(None, "PENDING"),
                pair(Some("PENDING"), "COMPILING"),
                pair(Some("COMPILING"), "READY")
            ],
            "{id}"
        );
    }
}

#[tokio::test]
async fn a_failing_compile_ends_in_failed_with_the_compile_error() {
    let app = app_without_worker().await;
    let id = create(&app.client(), "broken", FAILING).await;
    let mut client = subscriber(&app.server, FUNCTION_EVENTS, json!({ "id": id })).await;
    assert_eq!(
        transitions(&[event(&mut client).await]),
        [pair(None, "PENDING")]
    );

    let _worker = TestWorker::start(&app.db.url, ServerOptions::default())
        .await
        .unwrap();
    let events = events_of(&mut client, &id, "FAILED").await;
    assert_eq!(
        transitions(&events),
        [
            pair(Some("PENDING"), "COMPILING"),
            pair(Some("COMPILING"), "FAILED")
        ]
    );
    let failed = &events[1]["function"];
    assert_eq!(failed["status"], "FAILED");
    assert!(
        failed["compileError"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{failed}"
    );
    assert_eq!(failed["wasmSize"], Value::Null);
}

/// Runs `source` with `input` and follows it both by function and by id.
async fn follow_execution(source: &str, input: Value, last: &str) -> (Vec<Value>, Vec<Value>) {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let function_id = client.ready_function("f", source).await.unwrap();
    let db = app.db.connect().await.unwrap();

    let mut by_function = subscriber(
        &app.server,
        EXECUTION_EVENTS,
        json!({ "functionId": function_id }),
    )
    .await;
    until_executions_flow(&mut by_function, &db, &function_id).await;

    let execution_id = start_execution(&client, &function_id, input).await;
    let mut by_id = subscriber(&app.server, EXECUTION_EVENTS, json!({ "id": execution_id })).await;

    let function_events = events_of(&mut by_function, &execution_id, last).await;
    let id_events = events_of(&mut by_id, &execution_id, last).await;
    // A subscription to one execution ends after its final state.
    assert_eq!(
        by_id.next_message("sub", WAIT).await.unwrap(),
        json!({ "id": "sub", "type": "complete" })
    );
    for event in function_events.iter().chain(&id_events) {
        assert_eq!(event["execution"]["functionId"], function_id.as_str());
    }
    (function_events, id_events)
}

/// The by-id events: the snapshot first, then a chain of transitions.
fn assert_snapshot_then_chain(events: &[Value]) {
    assert_eq!(events[0]["previousStatus"], Value::Null, "{events:?}");
    for window in events.windows(2) {
        assert_eq!(
            window[1]["previousStatus"], window[0]["status"],
            "{events:?}"
        );
    }
}

#[tokio::test]
async fn an_execution_goes_running_then_completed() {
    let (by_function, by_id) = follow_execution(ADD, json!({ "a": 5, "b": 3 }), "COMPLETED").await;
    assert_eq!(
        transitions(&by_function),
        [
            pair(None, "PENDING"),
            pair(Some("PENDING"), "RUNNING"),
            pair(Some("RUNNING"), "COMPLETED")
        ]
    );
    let completed = &by_function[2]["execution"];
    assert_eq!(completed["output"], json!({ "sum": 8 }));
    assert_eq!(completed["errorMessage"], Value::Null);
    assert_snapshot_then_chain(&by_id);
    assert_eq!(by_id.last().unwrap()["execution"], *completed);
}

#[tokio::test]
async fn an_execution_goes_running_then_failed() {
    let source = tests::fixtures::source("throw");
    let (by_function, by_id) = follow_execution(&source, json!({ "x": 1 }), "FAILED").await;
    assert_eq!(
        transitions(&by_function),
        [
            pair(None, "PENDING"),
            pair(Some("PENDING"), "RUNNING"),
            pair(Some("RUNNING"), "FAILED")
        ]
    );
    let failed = &by_function[2]["execution"];
    assert!(
        failed["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("boom")),
        "{failed}"
    );
    assert_snapshot_then_chain(&by_id);
    assert_eq!(by_id.last().unwrap()["execution"], *failed);
}

#[tokio::test]
async fn subscribing_to_a_finished_execution_sends_it_and_completes() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let function_id = client.ready_function("echo", ECHO).await.unwrap();
    let finished = client
        .execute(&function_id, json!({ "n": 1 }))
        .await
        .unwrap();
    assert_eq!(finished["status"], "COMPLETED", "{finished}");

    let mut ws = subscriber(
        &app.server,
        EXECUTION_EVENTS,
        json!({ "id": finished["id"] }),
    )
    .await;
    let snapshot = event(&mut ws).await;
    assert_eq!(
        transitions(std::slice::from_ref(&snapshot)),
        [pair(None, "COMPLETED")]
    );
    assert_eq!(snapshot["execution"]["output"], json!({ "n": 1 }));
    // Nothing will change it again, so the subscription ends at once.
    assert_eq!(
        ws.next_message("sub", WAIT).await.unwrap(),
        json!({ "id": "sub", "type": "complete" })
    );
}

/// Following what is not there, an unknown id or an execution under another
/// function's id, is NOT_FOUND, and the subscription ends.
#[tokio::test]
async fn following_what_is_not_there_is_not_found() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let function_id = client.ready_function("echo", ECHO).await.unwrap();
    let other = create(&client, "other", ECHO).await;
    let execution = client
        .execute(&function_id, json!({ "n": 1 }))
        .await
        .unwrap();
    let unknown = uuid::Uuid::new_v4().to_string();
    let cases = [
        (FUNCTION_EVENTS, json!({ "id": unknown }), "function"),
        (EXECUTION_EVENTS, json!({ "id": unknown }), "execution"),
        (
            EXECUTION_EVENTS,
            json!({ "id": execution["id"], "functionId": other }),
            "execution",
        ),
    ];
    for (query, variables, what) in cases {
        let mut ws = subscriber(&app.server, query, variables.clone()).await;
        let payload = ws.next_payload("sub", WAIT).await.unwrap();
        let error = &payload["errors"][0];
        assert_eq!(
            error["extensions"]["code"], "NOT_FOUND",
            "{variables}: {payload}"
        );
        let message = error["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("no {what} with id")),
            "{message}"
        );
        assert_eq!(
            ws.next_message("sub", WAIT).await.unwrap(),
            json!({ "id": "sub", "type": "complete" }),
            "{variables}"
        );
    }
}

#[tokio::test]
async fn subscribing_to_a_ready_function_sends_exactly_one_snapshot() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let id = client.ready_function("echo", ECHO).await.unwrap();
    let mut ws = subscriber(&app.server, FUNCTION_EVENTS, json!({ "id": id })).await;
    let snapshot = event(&mut ws).await;
    assert_eq!(
        transitions(std::slice::from_ref(&snapshot)),
        [pair(None, "READY")]
    );
    assert_eq!(snapshot["function"]["status"], "READY");

    // Nothing else was sent in between: the next event is the next transition.
    let update = "mutation($id: UUID!, $input: UpdateFunctionInput!) { updateFunction(id: $id, input: $input) { status } }";
    client
        .data(update, json!({ "id": id, "input": { "name": "renamed" } }))
        .await
        .unwrap();
    client
        .data(
            update,
            json!({ "id": id, "input": { "source": format!("{ECHO}// v2\n") } }),
        )
        .await
        .unwrap();
    let next = event(&mut ws).await;
    assert_eq!(transitions(&[next]), [pair(Some("READY"), "PENDING")]);
}

#[tokio::test]
async fn events_reach_every_replica() {
    let db = TestDb::not_yet_created();
    let no_worker = || ServerOptions::default().arg("--no-worker");
    let a = TestServer::start(&db.url, no_worker()).await.unwrap();
    let b = TestServer::start(&db.url, no_worker()).await.unwrap();

    // Compiled by the worker process, seen on A.
    let function_id = create(&b.client(), "add", ADD).await;
    let mut functions = subscriber(&a, FUNCTION_EVENTS, json!({ "id": function_id })).await;
    assert_eq!(
        transitions(&[event(&mut functions).await]),
        [pair(None, "PENDING")]
    );
    let _worker = TestWorker::start(&db.url, ServerOptions::default())
        .await
        .unwrap();
    let events = events_of(&mut functions, &function_id, "READY").await;
    assert_eq!(
        transitions(&events),
        [
            pair(Some("PENDING"), "COMPILING"),
            pair(Some("COMPILING"), "READY")
        ]
    );

    // Run on B, seen on A.
    let mut executions =
        subscriber(&a, EXECUTION_EVENTS, json!({ "functionId": function_id })).await;
    let conn = db.connect().await.unwrap();
    until_executions_flow(&mut executions, &conn, &function_id).await;
    let execution_id = start_execution(&b.client(), &function_id, json!({ "a": 1, "b": 2 })).await;
    let events = events_of(&mut executions, &execution_id, "COMPLETED").await;
    assert_eq!(
        transitions(&events),
        [
            pair(None, "PENDING"),
            pair(Some("PENDING"), "RUNNING"),
            pair(Some("RUNNING"), "COMPLETED")
        ]
    );
    assert_eq!(events[2]["execution"]["output"], json!({ "sum": 3 }));
}

#[tokio::test]
async fn subscriptions_survive_losing_the_database_connections() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let id = client.ready_function("echo", ECHO).await.unwrap();
    let mut by_id = subscriber(&app.server, FUNCTION_EVENTS, json!({ "id": id })).await;
    assert_eq!(
        transitions(&[event(&mut by_id).await]),
        [pair(None, "READY")]
    );
    let mut all = subscriber(&app.server, FUNCTION_EVENTS, json!({})).await;
    let db = app.db.connect().await.unwrap();
    let probe = probe_function(&db).await;
    until_functions_flow(&mut all, &db, &probe).await;
    drop(db);

    app.db.terminate_connections().await.unwrap();
    // Transitions committed before the server listens again are not announced
    // (subscribers with an id get the current state instead, see below); wait
    // until a probe made after the cut comes through.
    let db = app.db.connect().await.unwrap();
    let probe = probe_function(&db).await;
    until_functions_flow(&mut all, &db, &probe).await;

    let source = format!("{ECHO}// v2\n");
    let update = "mutation($id: UUID!, $input: UpdateFunctionInput!) { updateFunction(id: $id, input: $input) { status } }";
    client
        .data(update, json!({ "id": id, "input": { "source": source } }))
        .await
        .unwrap();
    // Without an id: the recompile's transitions, as they happen.
    let events = events_after_outage(&mut all, &id, "READY").await;
    assert_eq!(
        transitions(&events),
        [
            pair(Some("READY"), "PENDING"),
            pair(Some("PENDING"), "COMPILING"),
            pair(Some("COMPILING"), "READY")
        ]
    );
    // By id: the same, possibly preceded by a resync snapshot; ends READY.
    let events = events_after_outage(&mut by_id, &id, "READY").await;
    assert!(
        events.iter().any(|e| e["status"] == "PENDING"),
        "the recompile was not reported: {events:?}"
    );
    assert_snapshot_then_chain_after(&events, "READY");
}

/// Each event continues from the one before; the first from `from`.
fn assert_snapshot_then_chain_after(events: &[Value], from: &str) {
    let mut previous = json!(from);
    for event in events {
        assert_eq!(event["previousStatus"], previous, "{events:?}");
        previous = event["status"].clone();
    }
}

/// The server's backend of `db` whose read of one execution waits for a
/// lock, other than `except`, with when its statement started (a retry on the same
/// connection is a new statement).
async fn waiting_read(
    admin: &mut sqlx::PgConnection,
    db: &TestDb,
    except: i32,
) -> Option<(i32, chrono::DateTime<chrono::Utc>)> {
    sqlx::query_as(
        "SELECT pid, query_start FROM pg_stat_activity
         WHERE datname = $1 AND pid <> $2 AND wait_event_type = 'Lock'
           AND query LIKE 'SELECT %FROM executions WHERE id = $1%'",
    )
    .bind(&db.name)
    .bind(except)
    .fetch_optional(&mut *admin)
    .await
    .unwrap()
}

/// A transition whose execution cannot be loaded reaches the subscriber as an
/// error. The stream then reads the current state again instead of waiting for
/// an announcement that continues from the status it sent last: otherwise
/// every later transition would be skipped as out of order and the subscriber
/// would never see the execution finish.
///
/// The load fails for real: an exclusive lock on `executions`, queued right
/// behind the RUNNING write, makes the read wait, and the test cancels it and
/// its retry as an operator would (`pg_cancel_backend`). The execution's
/// statuses are written in SQL, as a worker's would be, so the lock can be
/// taken between them.
#[tokio::test]
async fn a_failed_load_does_not_stall_a_subscription_with_an_id() {
    use sqlx::Connection as _;
    let app = TestApp::start_with(ServerOptions::default().arg("--no-execution-worker"))
        .await
        .unwrap();
    let client = app.client();
    let function_id = client.ready_function("echo", ECHO).await.unwrap();
    let id = start_execution(&client, &function_id, json!({ "n": 1 })).await;
    let mut ws = subscriber(&app.server, EXECUTION_EVENTS, json!({ "id": id })).await;
    assert_eq!(
        transitions(&[event(&mut ws).await]),
        [pair(None, "PENDING")]
    );

    let connect = || sqlx::PgConnection::connect(&app.db.url);
    let mut writer = connect().await.unwrap();
    let mut locker = connect().await.unwrap();
    let locker_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut locker)
        .await
        .unwrap();
    let mut admin = tests::admin_connection().await.unwrap();
    tests::outage::sql(
        &mut writer,
        &format!(
            "BEGIN; UPDATE executions SET status = 'RUNNING', started_at = now() WHERE id = '{id}'"
        ),
    )
    .await;
    let lock = tests::outage::sql(
        &mut locker,
        "BEGIN; LOCK TABLE executions IN ACCESS EXCLUSIVE MODE",
    );
    let commit = async {
        tests::eventually!("the lock to queue behind the write", async {
            let waiting: bool = sqlx::query_scalar(
                "SELECT coalesce(wait_event_type = 'Lock', false) FROM pg_stat_activity WHERE pid = $1",
            )
            .bind(locker_pid)
            .fetch_one(&mut admin)
            .await
            .unwrap();
            waiting.then_some(())
        });
        // Announces PENDING → RUNNING; the server's read of it queues behind the lock.
        tests::outage::sql(&mut writer, "COMMIT").await;
    };
    tokio::join!(lock, commit);

    let mut cancelled = None;
    for _ in 0..2 {
        let read = tests::eventually!("the server's read to wait for the lock", async {
            waiting_read(&mut admin, &app.db, locker_pid)
                .await
                .filter(|read| Some(*read) != cancelled)
        });
        sqlx::query("SELECT pg_cancel_backend($1)")
            .bind(read.0)
            .execute(&mut admin)
            .await
            .unwrap();
        cancelled = Some(read);
    }
    let payload = ws.next_payload("sub", WAIT).await.unwrap();
    assert!(is_outage_error(&payload), "{payload}");
    assert!(
        payload["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cancelled")),
        "{payload}"
    );

    // RUNNING → COMPLETED does not continue from PENDING, the status sent
    // last; the stream's reread (waiting for the lock until now) sees it.
    tests::outage::sql(&mut locker, &format!(
        "UPDATE executions SET status = 'COMPLETED', output = '{{\"n\": 1}}', completed_at = now() WHERE id = '{id}'; COMMIT"
    )).await;
    let last = event(&mut ws).await;
    assert_eq!(
        transitions(std::slice::from_ref(&last)),
        [pair(Some("PENDING"), "COMPLETED")]
    );
    assert_eq!(last["execution"]["output"], json!({ "n": 1 }));
    assert_eq!(
        ws.next_message("sub", WAIT).await.unwrap(),
        json!({ "id": "sub", "type": "complete" })
    );
}
