//! Versions and deploys end to end: every revision is kept with its compile
//! outcome, executions run the deployed revision (the newest READY one) and
//! record it, a rollback deploys an old module without any compiler, a stale
//! `expectedRevision` is a CONFLICT, and `functionChanged` announces every
//! change across replicas. Real compiles, real pgmq, real wasmtime.

use std::time::Duration;

use serde_json::{Value, json};
use tests::ws::{TRANSPORT_WS, WsClient};
use tests::{Client, ServerOptions, TestApp, TestDb, TestServer, TestWorker, eventually, scalar};

const WAIT: Duration = Duration::from_secs(120);

/// A function whose output says which source produced it.
fn numbered(n: i32) -> String {
    format!("export function handle(input: string): string {{ return '{{\"version\":{n}}}'; }}\n")
}

const BROKEN: &str = "export function handle(input: string): string { return 1 }";

const UPDATE: &str = "mutation($id: UUID!, $input: UpdateFunctionInput!, $expected: Int) {
  updateFunction(id: $id, input: $input, expectedRevision: $expected) { revision deployedRevision status name }
}";

const ROLLBACK: &str = "mutation($id: UUID!, $revision: Int!) {
  rollbackFunction(id: $id, revision: $revision) { revision deployedRevision status source wasmSize compileError }
}";

const DEPLOY_STATE: &str =
    "query($id: UUID!) { function(id: $id) { revision deployedRevision status compileError } }";

async fn set_source(client: &Client, id: &str, source: &str) -> Value {
    client
        .data(UPDATE, json!({ "id": id, "input": { "source": source } }))
        .await
        .unwrap()["updateFunction"]
        .clone()
}

async fn deploy_state(client: &Client, id: &str) -> Value {
    client
        .data(DEPLOY_STATE, json!({ "id": id }))
        .await
        .unwrap()["function"]
        .clone()
}

/// Waits until revision `revision` of `id` has its compile outcome.
async fn compiled(client: &Client, id: &str, revision: i64) -> Value {
    let query = "query($id: UUID!, $r: Int!) { function(id: $id) { version(revision: $r) { revision status compileError wasmSize source } } }";
    eventually!(format!("revision {revision} of {id} compiled"), async {
        let data = client
            .data(query, json!({ "id": id, "r": revision }))
            .await
            .unwrap();
        let version = data["function"]["version"].clone();
        matches!(version["status"].as_str(), Some("READY" | "FAILED")).then_some(version)
    })
}

async fn run(client: &Client, id: &str) -> Value {
    let mutation =
        "mutation($id: UUID!) { executeFunction(id: $id) { status output errorMessage revision } }";
    client.data(mutation, json!({ "id": id })).await.unwrap()["executeFunction"].clone()
}

fn id_of(function: &Value) -> String {
    function["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_failed_update_keeps_serving_the_deployed_revision() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let id = client.ready_function("served", &numbered(1)).await.unwrap();
    assert_eq!(
        run(&client, &id).await,
        json!({ "status": "COMPLETED", "output": { "version": 1 }, "errorMessage": null, "revision": 1 })
    );

    assert_eq!(
        set_source(&client, &id, BROKEN).await["deployedRevision"],
        1
    );
    assert_eq!(compiled(&client, &id, 2).await["status"], "FAILED");
    let state = deploy_state(&client, &id).await;
    assert_eq!(
        (
            &state["revision"],
            &state["deployedRevision"],
            &state["status"]
        ),
        (&json!(2), &json!(1), &json!("FAILED")),
        "the function describes its latest revision and keeps serving the last good one: {state}"
    );
    assert!(state["compileError"].is_string(), "{state}");
    let served = run(&client, &id).await;
    assert_eq!(
        (&served["status"], &served["output"], &served["revision"]),
        (&json!("COMPLETED"), &json!({ "version": 1 }), &json!(1)),
        "{served}"
    );

    // A background execution records the revision it ran too.
    let started = client
        .data(
            "mutation($id: UUID!) { startExecution(id: $id) { id revision } }",
            json!({ "id": id }),
        )
        .await
        .unwrap();
    assert_eq!(started["startExecution"]["revision"], 1);

    set_source(&client, &id, &numbered(3)).await;
    assert_eq!(compiled(&client, &id, 3).await["status"], "READY");
    eventually!("revision 3 deployed", async {
        (deploy_state(&client, &id).await["deployedRevision"] == 3).then_some(())
    });
    let served = run(&client, &id).await;
    assert_eq!(
        (&served["output"], &served["revision"]),
        (&json!({ "version": 3 }), &json!(3))
    );

    // Every execution says which code produced it.
    let history = client
        .data(
            "query($id: UUID!) { executions(functionId: $id, status: COMPLETED, first: 10) { nodes { revision output } } }",
            json!({ "id": id }),
        )
        .await
        .unwrap();
    let nodes = history["executions"]["nodes"].as_array().unwrap();
    assert!(
        nodes
            .iter()
            .all(|e| e["output"]["version"] == e["revision"]),
        "{history}"
    );
}

#[tokio::test]
async fn a_function_that_never_compiled_is_not_ready() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let id = id_of(&client.create_function("broken", BROKEN).await.unwrap());
    assert_eq!(compiled(&client, &id, 1).await["status"], "FAILED");
    assert_eq!(
        deploy_state(&client, &id).await["deployedRevision"],
        Value::Null
    );
    let error = client
        .error(
            "mutation($id: UUID!) { executeFunction(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await
        .unwrap();
    assert_eq!(error.code, "FUNCTION_NOT_READY", "{}", error.message);
    assert!(
        error.message.contains("no READY revision"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn rollback_deploys_an_old_revision_while_no_compiler_runs() {
    let db = TestDb::not_yet_created();
    let server = TestServer::start(&db.url, ServerOptions::default().arg("--no-worker"))
        .await
        .unwrap();
    let client = server.client();
    let mut worker = TestWorker::start(
        &db.url,
        ServerOptions::default().arg("--only").arg("compilations"),
    )
    .await
    .unwrap();
    let id = client
        .ready_function("rollback", &numbered(1))
        .await
        .unwrap();
    set_source(&client, &id, &numbered(2)).await;
    let second = compiled(&client, &id, 2).await;
    assert_eq!(second["status"], "READY");
    let first = compiled(&client, &id, 1).await;
    worker.kill().await.unwrap();

    let mut status_events = subscribe(
        &server,
        "subscription($id: UUID) { functionStatusChanged(id: $id) { previousStatus status function { revision deployedRevision } } }",
        json!({ "id": id }),
    )
    .await;
    let current = next(&mut status_events, "functionStatusChanged").await;
    assert_eq!(current["status"], "READY");

    let rolled = client
        .data(ROLLBACK, json!({ "id": id, "revision": 1 }))
        .await
        .unwrap()["rollbackFunction"]
        .clone();
    assert_eq!(
        rolled,
        json!({ "revision": 3, "deployedRevision": 3, "status": "READY", "source": numbered(1),
                "wasmSize": first["wasmSize"], "compileError": null })
    );
    let pending = next(&mut status_events, "functionStatusChanged").await;
    let ready = next(&mut status_events, "functionStatusChanged").await;
    assert_eq!(
        [
            (&pending["previousStatus"], &pending["status"]),
            (&ready["previousStatus"], &ready["status"])
        ],
        [
            (&json!("READY"), &json!("PENDING")),
            (&json!("PENDING"), &json!("READY"))
        ]
    );
    assert_eq!(ready["function"]["deployedRevision"], 3);

    let served = run(&client, &id).await;
    assert_eq!(
        (&served["output"], &served["revision"]),
        (&json!({ "version": 1 }), &json!(3))
    );
    let third = compiled(&client, &id, 3).await;
    assert_eq!(third["source"], first["source"]);
    // The module is stored once, however many revisions use it.
    let conn = db.connect().await.unwrap();
    let modules = scalar(&conn, "SELECT count(*) FROM modules").await;
    assert_eq!(modules, 2, "revisions 1 and 3 share one module");
}

#[tokio::test]
async fn rollback_refuses_failed_and_unknown_revisions() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let id = client.ready_function("refuse", &numbered(1)).await.unwrap();
    set_source(&client, &id, BROKEN).await;
    assert_eq!(compiled(&client, &id, 2).await["status"], "FAILED");

    let failed = client
        .error(ROLLBACK, json!({ "id": id, "revision": 2 }))
        .await
        .unwrap();
    assert_eq!(failed.code, "BAD_USER_INPUT");
    assert!(
        failed.message.contains("revision 2 is FAILED"),
        "{}",
        failed.message
    );
    for (function, revision) in [(id.as_str(), 9), (id.as_str(), 0)] {
        let unknown = client
            .error(ROLLBACK, json!({ "id": function, "revision": revision }))
            .await
            .unwrap();
        assert_eq!(unknown.code, "NOT_FOUND", "{}", unknown.message);
        assert!(unknown.message.contains(&format!("no revision {revision}")));
    }
    let missing = client
        .error(
            ROLLBACK,
            json!({ "id": uuid::Uuid::new_v4(), "revision": 1 }),
        )
        .await
        .unwrap();
    assert_eq!(missing.code, "NOT_FOUND");
    let state = deploy_state(&client, &id).await;
    assert_eq!(
        (&state["revision"], &state["deployedRevision"]),
        (&json!(2), &json!(1)),
        "nothing changed"
    );
}

#[tokio::test]
async fn a_stale_expected_revision_is_a_conflict_and_changes_nothing() {
    let app = TestApp::start_without_worker().await.unwrap();
    let client = app.client();
    let id = id_of(
        &client
            .create_function("shared", &numbered(1))
            .await
            .unwrap(),
    );
    // Someone else saves first.
    let theirs = client
        .data(
            UPDATE,
            json!({ "id": id, "input": { "source": numbered(2) }, "expected": 1 }),
        )
        .await
        .unwrap();
    assert_eq!(theirs["updateFunction"]["revision"], 2);

    let mine = client
        .error(
            UPDATE,
            json!({ "id": id, "input": { "source": numbered(3), "name": "mine" }, "expected": 1 }),
        )
        .await
        .unwrap();
    assert_eq!(mine.code, "CONFLICT");
    assert!(
        mine.message.contains("at revision 2, not 1"),
        "{}",
        mine.message
    );
    let function = client.function(&id).await.unwrap();
    assert_eq!(
        (
            &function["revision"],
            &function["name"],
            &function["source"]
        ),
        (&json!(2), &json!("shared"), &json!(numbered(2)))
    );

    let retried = client
        .data(
            UPDATE,
            json!({ "id": id, "input": { "source": numbered(3) }, "expected": 2 }),
        )
        .await
        .unwrap();
    assert_eq!(retried["updateFunction"]["revision"], 3);
    let unguarded = client
        .data(UPDATE, json!({ "id": id, "input": { "name": "renamed" } }))
        .await
        .unwrap();
    assert_eq!(unguarded["updateFunction"]["name"], "renamed");
}

#[tokio::test]
async fn versions_are_listed_newest_first_and_paginated() {
    let app = TestApp::start_without_worker().await.unwrap();
    let client = app.client();
    let id = id_of(
        &client
            .create_function("history", &numbered(1))
            .await
            .unwrap(),
    );
    set_source(&client, &id, &numbered(2)).await;
    // Renames and an unchanged source make no revision.
    client
        .data(
            UPDATE,
            json!({ "id": id, "input": { "name": "renamed", "source": numbered(2) } }),
        )
        .await
        .unwrap();
    set_source(&client, &id, &numbered(3)).await;

    let page = "query($id: UUID!, $first: Int, $after: String) { function(id: $id) {
        versions(first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor }
          edges { cursor node { revision status language source compileError wasmSize createdAt } } nodes { revision } } } }";
    let first = client
        .data(page, json!({ "id": id, "first": 2 }))
        .await
        .unwrap()["function"]["versions"]
        .clone();
    assert_eq!(first["totalCount"], 3);
    assert_eq!(
        first["nodes"],
        json!([{ "revision": 3 }, { "revision": 2 }])
    );
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    let newest = &first["edges"][0]["node"];
    assert_eq!(
        (
            &newest["status"],
            &newest["language"],
            &newest["source"],
            &newest["wasmSize"]
        ),
        (
            &json!("PENDING"),
            &json!("assemblyscript"),
            &json!(numbered(3)),
            &Value::Null
        )
    );
    let rest = client
        .data(
            page,
            json!({ "id": id, "first": 2, "after": first["pageInfo"]["endCursor"] }),
        )
        .await
        .unwrap()["function"]["versions"]
        .clone();
    assert_eq!(rest["nodes"], json!([{ "revision": 1 }]));
    assert_eq!(rest["pageInfo"]["hasNextPage"], false);

    let one = "query($id: UUID!, $r: Int!) { function(id: $id) { version(revision: $r) { revision source } } }";
    let second = client.data(one, json!({ "id": id, "r": 2 })).await.unwrap();
    assert_eq!(
        second["function"]["version"],
        json!({ "revision": 2, "source": numbered(2) })
    );
    let none = client.data(one, json!({ "id": id, "r": 7 })).await.unwrap();
    assert_eq!(none["function"]["version"], Value::Null);

    for (first, after) in [(json!(0), Value::Null), (json!(2), json!("not-a-cursor"))] {
        let error = client
            .error(page, json!({ "id": id, "first": first, "after": after }))
            .await
            .unwrap();
        assert_eq!(error.code, "BAD_USER_INPUT", "{}", error.message);
    }
}

const CHANGES: &str = "subscription($id: UUID) {
  functionChanged(id: $id) { kind functionId at function { name description revision deployedRevision status } }
}";

async fn subscribe(server: &TestServer, query: &str, variables: Value) -> WsClient {
    let mut ws = WsClient::connect(&server.ws_url(), TRANSPORT_WS)
        .await
        .unwrap();
    ws.subscribe("sub", query, variables).await.unwrap();
    ws
}

async fn next(ws: &mut WsClient, field: &str) -> Value {
    let payload = ws.next_payload("sub", WAIT).await.unwrap();
    assert!(payload.get("errors").is_none(), "{payload}");
    payload["data"][field].clone()
}

/// The next change event about function `id`, skipping others.
async fn next_about(ws: &mut WsClient, id: &str) -> Value {
    loop {
        let event = next(ws, "functionChanged").await;
        if event["functionId"] == id {
            return event;
        }
    }
}

/// The kinds of the next `n` change events about `id`, with the last event.
async fn kinds(ws: &mut WsClient, id: &str, n: usize) -> (Vec<String>, Value) {
    let mut kinds = Vec::new();
    let mut last = Value::Null;
    for _ in 0..n {
        last = next_about(ws, id).await;
        kinds.push(last["kind"].as_str().unwrap().to_string());
    }
    (kinds, last)
}

/// A subscription without an id sends nothing until something changes, so
/// rename a probe function until one of its changes comes through.
async fn until_changes_flow(ws: &mut WsClient, client: &Client) {
    let probe = id_of(&client.create_function("probe", BROKEN).await.unwrap());
    for attempt in 0..60 {
        client
            .data(
                UPDATE,
                json!({ "id": probe, "input": { "name": format!("probe {attempt}") } }),
            )
            .await
            .unwrap();
        let seen = tokio::time::timeout(Duration::from_secs(1), next_about(ws, &probe)).await;
        if seen.is_ok() {
            return;
        }
    }
    panic!("the subscription never delivered a probe change");
}

#[tokio::test]
async fn function_changed_announces_every_change_on_another_replica() {
    let db = TestDb::not_yet_created();
    let writer = TestServer::start(&db.url, ServerOptions::default().arg("--no-worker"))
        .await
        .unwrap();
    let watcher = TestServer::start(&db.url, ServerOptions::default().arg("--no-worker"))
        .await
        .unwrap();
    let client = writer.client();
    let mut all = subscribe(&watcher, CHANGES, json!({})).await;
    until_changes_flow(&mut all, &client).await;

    let id = id_of(
        &client
            .create_function("watched", &numbered(1))
            .await
            .unwrap(),
    );
    let (created, event) = kinds(&mut all, &id, 1).await;
    assert_eq!(created, ["CREATED"]);
    assert_eq!(event["functionId"], id.as_str());

    let mut one = subscribe(&watcher, CHANGES, json!({ "id": id })).await;
    let current = next(&mut one, "functionChanged").await;
    assert_eq!(
        (&current["kind"], &current["function"]["status"]),
        (&json!("CURRENT"), &json!("PENDING"))
    );

    let _worker = TestWorker::start(
        &db.url,
        ServerOptions::default().arg("--only").arg("compilations"),
    )
    .await
    .unwrap();
    for ws in [&mut all, &mut one] {
        let (compile, deployed) = kinds(ws, &id, 3).await;
        assert_eq!(compile, ["STATUS_CHANGED", "STATUS_CHANGED", "DEPLOYED"]);
        assert_eq!(deployed["function"]["deployedRevision"], 1);
    }

    client
        .data(
            UPDATE,
            json!({ "id": id, "input": { "name": "renamed", "description": "now described" } }),
        )
        .await
        .unwrap();
    for ws in [&mut all, &mut one] {
        let (updated, event) = kinds(ws, &id, 1).await;
        assert_eq!(updated, ["UPDATED"]);
        assert_eq!(
            (
                &event["function"]["name"],
                &event["function"]["description"]
            ),
            (&json!("renamed"), &json!("now described"))
        );
    }

    set_source(&client, &id, &numbered(2)).await;
    for ws in [&mut all, &mut one] {
        let (edited, event) = kinds(ws, &id, 2).await;
        assert_eq!(edited, ["UPDATED", "STATUS_CHANGED"]);
        assert_eq!(event["function"]["revision"], 2);
    }

    client
        .data(
            "mutation($id: UUID!) { deleteFunction(id: $id) }",
            json!({ "id": id }),
        )
        .await
        .unwrap();
    // Revision 2 may still compile before the delete: skip what comes first.
    for ws in [&mut all, &mut one] {
        let deleted = loop {
            let event = next_about(ws, &id).await;
            if event["kind"] == "DELETED" {
                break event;
            }
        };
        assert_eq!(
            (&deleted["functionId"], &deleted["function"]),
            (&json!(id), &Value::Null)
        );
    }
    let end = one.next_message("sub", WAIT).await.unwrap();
    assert_eq!(
        end["type"], "complete",
        "a deleted function's stream ends: {end}"
    );

    let mut missing = subscribe(&watcher, CHANGES, json!({ "id": id })).await;
    let error = missing.next_message("sub", WAIT).await.unwrap();
    assert!(error.to_string().contains("NOT_FOUND"), "{error}");
}
