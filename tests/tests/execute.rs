//! Executions end to end: real compiled AssemblyScript, run in wasmtime by the
//! server, recorded in PostgreSQL, through the GraphQL API.

use std::time::Duration;

use serde_json::{Value, json};
use tests::fixtures::{ADD, ECHO};
use tests::{Client, ServerOptions, TestApp, TestServer, eventually, exec};

/// Reads a JSON object field `n` (as i32) from the input; used by several fixtures.
const PARSE_N: &str = r#"import { JSON } from "json-as";
@json
class Input { n: i32 = 0; }
function n(input: string): i32 { return JSON.parse<Input>(input).n; }
"#;

fn with_n(body: &str) -> String {
    format!("{PARSE_N}\nexport function handle(input: string): string {{\n{body}\n}}\n")
}

/// Runs `id` on `input`, which must fail with an error of `kind`; returns the message.
async fn failed_with(client: &Client, id: &str, input: Value, kind: &str) -> String {
    let execution = client.execute(id, input).await.unwrap();
    assert_eq!(execution["status"], "FAILED", "{execution}");
    assert_eq!(execution["errorKind"], kind, "{execution}");
    assert_eq!(execution["output"], Value::Null);
    assert!(execution["completedAt"].is_string());
    execution["errorMessage"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn echo_add_and_unicode_round_trip() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let echo = client.ready_function("echo", ECHO).await.unwrap();
    let add = client.ready_function("add", ADD).await.unwrap();
    let strings = client
        .ready_function("strings", &tests::fixtures::source("strings"))
        .await
        .unwrap();

    let execution = client
        .execute(&echo, json!({ "nested": { "list": [1, 2.5, null, true] } }))
        .await
        .unwrap();
    assert_eq!(execution["status"], "COMPLETED");
    assert_eq!(
        execution["output"],
        json!({ "nested": { "list": [1, 2.5, null, true] } })
    );
    assert_eq!(
        execution["input"],
        json!({ "nested": { "list": [1, 2.5, null, true] } })
    );
    assert!(execution["durationMs"].as_f64().unwrap() >= 0.0);
    assert!(execution["startedAt"].is_string() && execution["completedAt"].is_string());
    assert_eq!(execution["errorMessage"], Value::Null);

    // null and omitted input both mean {}.
    assert_eq!(
        client.execute(&echo, Value::Null).await.unwrap()["output"],
        json!({})
    );
    assert_eq!(
        client
            .execute(&add, json!({ "a": 5, "b": 3 }))
            .await
            .unwrap()["output"],
        json!({ "sum": 8 })
    );

    let text = "Grüße, 世界! 👩‍💻🚀 e\u{301}";
    let execution = client
        .execute(&strings, json!({ "text": text }))
        .await
        .unwrap();
    assert_eq!(execution["status"], "COMPLETED", "{execution}");
    assert_eq!(execution["output"]["text"], text, "exact round trip");
    assert_eq!(execution["output"]["length"], text.encode_utf16().count());
    assert_eq!(execution["output"]["upper"], "GRÜSSE, 世界! 👩‍💻🚀 E\u{301}");
    let echoed = client.execute(&echo, json!({ "s": text })).await.unwrap();
    assert_eq!(echoed["output"]["s"], text);

    // Recorded as it was returned.
    let stored = client
        .data(
            "query($id: UUID!) { execution(id: $id) { status output function { name } } }",
            json!({ "id": execution["id"] }),
        )
        .await
        .unwrap();
    assert_eq!(stored["execution"]["function"]["name"], "strings");
    assert_eq!(stored["execution"]["output"]["text"], text);
}

#[tokio::test]
async fn failures_of_user_code_are_failed_executions_with_clear_messages() {
    let app = TestApp::start_with(
        ServerOptions::default()
            .env("PROJECTNIL_EXEC_MEMORY_MB", 16)
            .env("PROJECTNIL_MAX_OUTPUT_BYTES", 1000),
    )
    .await
    .unwrap();
    let client = app.client();
    let throws = client.ready_function("throw", "export function handle(input: string): string {\n  throw new Error(\"Division by zero\");\n}\n").await.unwrap();
    let unreachable = client
        .ready_function("unreachable", &tests::fixtures::source("unreachable"))
        .await
        .unwrap();
    let divide = client
        .ready_function("divide", &with_n("  return (100 / n(input)).toString();"))
        .await
        .unwrap();
    let bomb = client
        .ready_function("memory", &tests::fixtures::source("memory_bomb"))
        .await
        .unwrap();
    let recursion = client
        .ready_function("recursion", &tests::fixtures::source("recursion"))
        .await
        .unwrap();
    let bad_json = client
        .ready_function("bad-json", &tests::fixtures::source("bad_json"))
        .await
        .unwrap();
    let big = client
        .ready_function(
            "big",
            &with_n("  return '\"' + 'x'.repeat(n(input)) + '\"';"),
        )
        .await
        .unwrap();

    assert_eq!(
        failed_with(&client, &throws, json!({}), "ABORT").await,
        "abort: Division by zero at index.ts:2:3"
    );
    assert_eq!(
        failed_with(&client, &unreachable, json!({}), "TRAP").await,
        "unreachable executed"
    );
    assert_eq!(
        failed_with(&client, &divide, json!({ "n": 0 }), "TRAP").await,
        "integer divide by zero"
    );
    assert_eq!(
        client.execute(&divide, json!({ "n": 4 })).await.unwrap()["output"],
        json!(25)
    );
    assert_eq!(
        failed_with(&client, &bomb, json!({}), "MEMORY_LIMIT").await,
        "memory limit of 16 MiB exceeded"
    );
    let overflow = client.execute(&recursion, json!({})).await.unwrap();
    let message = overflow["errorMessage"].as_str().unwrap();
    assert!(
        (message == "stack overflow" && overflow["errorKind"] == "STACK_OVERFLOW")
            || (message.starts_with("abort:") && overflow["errorKind"] == "ABORT"),
        "{overflow}"
    );
    assert_eq!(
        failed_with(
            &client,
            &recursion,
            json!({ "native": true }),
            "STACK_OVERFLOW"
        )
        .await,
        "stack overflow"
    );
    let message = failed_with(&client, &bad_json, json!({ "k": 1 }), "INVALID_OUTPUT").await;
    assert!(
        message.starts_with("function returned invalid JSON: this is not json: {\"k\":1}"),
        "{message}"
    );
    let message = failed_with(&client, &big, json!({ "n": 5000 }), "OUTPUT_TOO_LARGE").await;
    assert_eq!(
        message,
        "output of 5002 bytes exceeds the limit of 1000 bytes"
    );
    assert_eq!(
        client.execute(&big, json!({ "n": 3 })).await.unwrap()["output"],
        json!("xxx")
    );
}

#[tokio::test]
async fn a_runaway_function_times_out_while_others_keep_completing() {
    let app = TestApp::start_with(ServerOptions::default().env("PROJECTNIL_EXEC_TIMEOUT_MS", 1500))
        .await
        .unwrap();
    let client = app.client();
    let looping = client
        .ready_function("loop", &tests::fixtures::source("loop"))
        .await
        .unwrap();
    let echo = client.ready_function("echo", ECHO).await.unwrap();
    let runaway = {
        let client = client.clone();
        let looping = looping.clone();
        tokio::spawn(async move { client.execute(&looping, json!({})).await })
    };
    // While the loop spins, normal executions still complete.
    let mut completed = 0;
    while !runaway.is_finished() {
        let execution = client
            .execute(&echo, json!({ "i": completed }))
            .await
            .unwrap();
        assert_eq!(execution["status"], "COMPLETED");
        completed += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(completed > 0, "no execution completed while the loop ran");
    let execution = runaway.await.unwrap().unwrap();
    assert_eq!(execution["status"], "FAILED");
    assert_eq!(
        execution["errorMessage"],
        "timed out after 1500 ms of running time"
    );
    assert_eq!(execution["errorKind"], "TIMEOUT");
}

#[tokio::test]
async fn concurrent_executions_of_one_function_are_isolated() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let counter = client
        .ready_function("counter", &tests::fixtures::source("counter"))
        .await
        .unwrap();
    let add = client.ready_function("add", ADD).await.unwrap();
    client.adds_at_once(&add, 0..24, 1000).await;
    // A global counter starts fresh in every execution.
    let first = client.execute(&counter, json!({})).await.unwrap()["output"].clone();
    let second = client.execute(&counter, json!({})).await.unwrap()["output"].clone();
    assert_eq!(first, second, "executions must not see each other's state");
    let total = client
        .data(
            "query($f: UUID) { executions(functionId: $f) { totalCount } }",
            json!({ "f": add }),
        )
        .await
        .unwrap();
    assert_eq!(total["executions"]["totalCount"], 24);
}

#[tokio::test]
async fn an_update_replaces_the_cached_module_once_it_is_deployed() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let id = client
        .ready_function(
            "v",
            "export function handle(input: string): string { return '1'; }\n",
        )
        .await
        .unwrap();
    assert_eq!(
        client.execute(&id, json!({})).await.unwrap()["output"],
        json!(1)
    );
    client
        .data(
            "mutation($id: UUID!) { updateFunction(id: $id, input: { source: \"export function handle(input: string): string { return '2'; }\" }) { status } }",
            json!({ "id": id }),
        )
        .await
        .unwrap();
    // Revision 1 keeps serving while revision 2 compiles (or once it has,
    // revision 2 serves): never FUNCTION_NOT_READY, never a mix.
    let meanwhile = client.execute(&id, json!({})).await.unwrap();
    assert_eq!(meanwhile["status"], "COMPLETED", "{meanwhile}");
    assert!(
        [json!(1), json!(2)].contains(&meanwhile["output"]),
        "{meanwhile}"
    );
    client
        .wait_compiled(&id, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(
        client.execute(&id, json!({})).await.unwrap()["output"],
        json!(2)
    );
}

#[tokio::test]
async fn start_execution_returns_at_once_and_finishes_in_the_background() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let id = client.ready_function("add", ADD).await.unwrap();
    let started = client
        .data("mutation($id: UUID!) { startExecution(id: $id, input: { a: 1, b: 2 }) { id status output } }", json!({ "id": id }))
        .await
        .unwrap()["startExecution"]
        .clone();
    assert!(
        matches!(started["status"].as_str(), Some("PENDING" | "RUNNING")),
        "{started}"
    );
    assert_eq!(started["output"], Value::Null);
    let execution = eventually!("the background execution to complete", async {
        let execution = client
            .data(
                "query($id: UUID!) { execution(id: $id) { status output logs } }",
                json!({ "id": started["id"] }),
            )
            .await
            .unwrap()["execution"]
            .clone();
        (execution["status"] == "COMPLETED").then_some(execution)
    });
    assert_eq!(execution["output"], json!({ "sum": 3 }));
}

#[tokio::test]
async fn console_output_is_kept_on_the_execution() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let id = client
        .ready_function("logging", &tests::fixtures::source("logging"))
        .await
        .unwrap();
    let execution = client.execute(&id, json!({})).await.unwrap();
    assert_eq!(execution["status"], "COMPLETED", "{execution}");
    let logs: Vec<String> = serde_json::from_value(execution["logs"].clone()).unwrap();
    assert!(
        logs.iter().any(|l| l.contains("hello from console.log")),
        "{logs:?}"
    );
    assert!(logs.iter().any(|l| l.contains("info ✓")), "{logs:?}");
}

#[tokio::test]
async fn executions_interrupted_by_a_crash_end_failed_on_restart() {
    let app = TestApp::start_with(ServerOptions::default().env("PROJECTNIL_EXEC_TIMEOUT_MS", 1000))
        .await
        .unwrap();
    let client = app.client();
    let id = client.ready_function("echo", ECHO).await.unwrap();
    let db = app.db.connect().await.unwrap();
    // Left behind by a process that died mid-execution (leases lapsed a
    // minute ago), and one that is old but still held: its lease is live, as
    // a long wait in a queue would be. Age alone never counts as a crash.
    let left_behind = format!(
        "INSERT INTO executions (function_id, revision, status, started_at, created_at, owner, lease_expires_at) VALUES
           ('{id}', 1, 'RUNNING', now() - interval '1 minute', now() - interval '1 minute', gen_random_uuid(), now() - interval '1 minute'),
           ('{id}', 1, 'PENDING', NULL, now() - interval '1 minute', gen_random_uuid(), now() - interval '1 minute'),
           ('{id}', 1, 'PENDING', NULL, now() - interval '1 hour', gen_random_uuid(), now() + interval '1 hour')"
    );
    exec(&db, &left_behind).await;
    let TestApp {
        mut server,
        db: test_db,
    } = app;
    server.kill().await.unwrap();
    let restarted = TestServer::start(
        &test_db.url,
        ServerOptions::default().env("PROJECTNIL_EXEC_TIMEOUT_MS", 1000),
    )
    .await
    .unwrap();
    let client = restarted.client();
    let failed = client
        .data("query($f: UUID) { executions(functionId: $f, status: FAILED) { totalCount nodes { errorMessage errorKind completedAt } } }", json!({ "f": id }))
        .await
        .unwrap()["executions"]
        .clone();
    assert_eq!(failed["totalCount"], 2);
    for node in failed["nodes"].as_array().unwrap() {
        assert_eq!(
            node["errorMessage"],
            "interrupted: the server stopped or lost its database during execution; run it again"
        );
        assert_eq!(node["errorKind"], "INTERRUPTED");
        assert!(node["completedAt"].is_string());
    }
    let unfinished = client
        .data(
            "query($f: UUID) { running: executions(functionId: $f, status: RUNNING) { totalCount }
                               pending: executions(functionId: $f, status: PENDING) { totalCount } }",
            json!({ "f": id }),
        )
        .await
        .unwrap();
    assert_eq!(unfinished["running"]["totalCount"], 0);
    assert_eq!(unfinished["pending"]["totalCount"], 1, "the held one stays");
}
