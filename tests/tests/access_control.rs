//! API keys: off by default; with `PROJECTNIL_API_KEYS` set, every GraphQL
//! operation over HTTP and WebSocket needs a key, `/health` stays open, and the
//! keys never reach the logs.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tests::ws::{LEGACY_WS, Received, TRANSPORT_WS, WsClient};
use tests::{ServerOptions, TestApp, TestDb};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

const KEY: &str = "pn-test-key-0123456789";

async fn app() -> TestApp {
    TestApp::start_with(
        ServerOptions::default()
            .arg("--no-worker")
            .env("PROJECTNIL_API_KEYS", format!("other-key, {KEY}")),
    )
    .await
    .unwrap()
}

async fn post(app: &TestApp, authorization: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/graphql", app.server.base_url))
        .json(&json!({ "query": "{ languages }" }));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn http_needs_a_valid_bearer_key() {
    let app = app().await;
    for (authorization, message) in [
        (None, "an API key is required"),
        (Some("Bearer nope"), "not valid"),
        (Some(KEY), "not valid"),
    ] {
        let (status, body) = post(&app, authorization).await;
        assert_eq!(status, 401, "{authorization:?}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
            "{body}"
        );
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(message),
            "{body}"
        );
        assert!(body.get("data").is_none());
    }
    let (status, body) = post(&app, Some(&format!("Bearer {KEY}"))).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["languages"], json!(["assemblyscript"]));

    let get = reqwest::get(format!(
        "{}/graphql?query=%7B%20languages%20%7D",
        app.server.base_url
    ))
    .await
    .unwrap();
    assert_eq!(get.status(), 401);
    let health = reqwest::get(format!("{}/health", app.server.base_url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "/health stays open");
}

#[tokio::test]
async fn websocket_init_needs_the_key() {
    let app = app().await;
    let url = app.server.ws_url();

    let mut refused = WsClient::open(&url, TRANSPORT_WS).await.unwrap();
    refused
        .send(json!({ "type": "connection_init", "payload": {} }))
        .await
        .unwrap();
    match refused.receive(Duration::from_secs(10)).await.unwrap() {
        Received::Closed(code) => assert_eq!(code, Some(4403)),
        other => panic!("expected close 4403, got {other:?}"),
    }
    let mut wrong = WsClient::open(&url, TRANSPORT_WS).await.unwrap();
    wrong
        .send(json!({ "type": "connection_init", "payload": { "authorization": "Bearer wrong" } }))
        .await
        .unwrap();
    assert!(matches!(
        wrong.receive(Duration::from_secs(10)).await.unwrap(),
        Received::Closed(Some(4403))
    ));

    let mut legacy = WsClient::open(&url, LEGACY_WS).await.unwrap();
    legacy
        .send(json!({ "type": "connection_init", "payload": {} }))
        .await
        .unwrap();
    match legacy.receive(Duration::from_secs(10)).await.unwrap() {
        Received::Message(m) => assert_eq!(m["type"], "connection_error", "{m}"),
        other => panic!("expected connection_error, got {other:?}"),
    }

    let mut allowed = WsClient::open(&url, TRANSPORT_WS).await.unwrap();
    allowed.send(json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {KEY}") } })).await.unwrap();
    match allowed.receive(Duration::from_secs(10)).await.unwrap() {
        Received::Message(m) => assert_eq!(m["type"], "connection_ack", "{m}"),
        other => panic!("expected connection_ack, got {other:?}"),
    }
    allowed
        .subscribe(
            "1",
            "subscription { functionStatusChanged { status } }",
            json!({}),
        )
        .await
        .unwrap();
    allowed
        .send(json!({ "id": "2", "type": "subscribe", "payload": { "query": "{ languages }" } }))
        .await
        .unwrap();
    assert_eq!(
        allowed
            .next_payload("2", Duration::from_secs(10))
            .await
            .unwrap()["data"]["languages"],
        json!(["assemblyscript"])
    );
}

#[tokio::test]
async fn keys_never_appear_in_the_logs() {
    let db = TestDb::not_yet_created();
    let mut child = tokio::process::Command::new(tests::binary())
        .arg("serve")
        .arg("--no-worker")
        .env("DATABASE_URL", &db.url)
        .env("PROJECTNIL_LISTEN", "127.0.0.1:0")
        .env("PROJECTNIL_API_KEYS", KEY)
        .env("RUST_LOG", "trace,sqlx=info,sea_orm=info,hyper=info,tungstenite=info,tokio_tungstenite=info,h2=info,wasmtime=info,cranelift=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base_url = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("server exited");
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_string();
        }
    };
    let client = reqwest::Client::new();
    for authorization in [
        format!("Bearer {KEY}"),
        format!("Bearer {KEY}x"),
        KEY.to_string(),
    ] {
        client
            .post(format!("{base_url}/graphql"))
            .header("Authorization", authorization)
            .json(&json!({ "query": "{ languages }" }))
            .send()
            .await
            .unwrap();
    }
    let mut ws = WsClient::open(
        &format!("{}/graphql/ws", base_url.replacen("http", "ws", 1)),
        TRANSPORT_WS,
    )
    .await
    .unwrap();
    ws.send(json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {KEY}") } })).await.unwrap();
    ws.receive(Duration::from_secs(10)).await.unwrap();
    let pid = child.id().unwrap();
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    let mut stderr = String::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        child.stderr.take().unwrap().read_to_string(&mut stderr),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(stderr.len() > 200, "the server logged something: {stderr}");
    assert!(!stderr.contains(KEY), "an API key leaked into the logs");
}
