//! The WebSocket endpoint `/graphql/ws` against the real binary: every close
//! code graphql-transport-ws prescribes, a full round trip on both subprotocols,
//! pings both ways and a clean close on shutdown. These servers run without a
//! compiler worker; a test that needs a status transition makes it in the
//! database (the trigger announces it like any other).
//!
//! 4403 (a connection_init refused by `ConnectionAuth`) cannot be triggered from
//! outside until access control plugs in a hook that refuses; the server's unit
//! tests in `server/src/http/ws/tests.rs` cover it.

use std::time::Duration;

use serde_json::json;
use tests::fixtures::ADD;
use tests::ws::{LEGACY_WS, Received, TRANSPORT_WS, WsClient};
use tests::{ServerOptions, TestApp, exec};

const WAIT: Duration = Duration::from_secs(30);

async fn app_with(options: ServerOptions) -> TestApp {
    TestApp::start_with(options.arg("--no-worker"))
        .await
        .unwrap()
}

async fn app() -> TestApp {
    app_with(ServerOptions::default()).await
}

async fn connect(app: &TestApp, protocol: &'static str) -> WsClient {
    WsClient::connect(&app.server.ws_url(), protocol)
        .await
        .unwrap()
}

async fn open(app: &TestApp, protocol: &'static str) -> WsClient {
    WsClient::open(&app.server.ws_url(), protocol)
        .await
        .unwrap()
}

async fn close_frame(client: &mut WsClient) -> (u16, String) {
    client
        .close_frame(WAIT)
        .await
        .unwrap()
        .expect("the server closed without a close frame")
}

async fn create_function(app: &TestApp) -> String {
    app.client().create_function("f", ADD).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Moves a function on in the database, as a compiler would.
async fn set_status(app: &TestApp, id: &str, status: &str) {
    let db = app.db.connect().await.unwrap();
    exec(
        &db,
        &format!("UPDATE functions SET status = '{status}' WHERE id = '{id}'"),
    )
    .await;
}

const FUNCTION_EVENTS: &str = "subscription($id: UUID) { functionStatusChanged(id: $id) { previousStatus status function { id name status } } }";

#[tokio::test]
async fn invalid_messages_close_4400() {
    let app = app().await;
    let invalid = [
        "not json",
        "[]",
        r#"{"payload":{}}"#,
        // Types of the legacy protocol or of the server are not client messages here.
        r#"{"type":"start","id":"1","payload":{"query":"{ languages }"}}"#,
        r#"{"type":"next","id":"1","payload":{"data":null}}"#,
        r#"{"type":"subscribe","payload":{"query":"{ languages }"}}"#,
        r#"{"type":"subscribe","id":"","payload":{"query":"{ languages }"}}"#,
        r#"{"type":"subscribe","id":"1","payload":{"variables":{}}}"#,
        r#"{"type":"subscribe","id":"1","payload":{"query":"{ languages }","variables":[1]}}"#,
        r#"{"type":"complete"}"#,
        r#"{"type":"ping","payload":"hello"}"#,
    ];
    for text in invalid {
        let mut client = connect(&app, TRANSPORT_WS).await;
        client.send_raw(text).await.unwrap();
        let (code, _) = close_frame(&mut client).await;
        assert_eq!(code, 4400, "{text}");
    }
    // Before connection_init as well.
    let mut client = open(&app, TRANSPORT_WS).await;
    client.send_raw("{").await.unwrap();
    assert_eq!(close_frame(&mut client).await.0, 4400);
}

#[tokio::test]
async fn subscribe_before_the_ack_closes_4401() {
    let app = app().await;
    let mut client = open(&app, TRANSPORT_WS).await;
    client
        .subscribe("1", "{ languages }", json!({}))
        .await
        .unwrap();
    assert_eq!(
        close_frame(&mut client).await,
        (4401, "Unauthorized".into())
    );
}

#[tokio::test]
async fn no_connection_init_in_time_closes_4408() {
    let app = app_with(ServerOptions::default().env("PROJECTNIL_WS_INIT_TIMEOUT_MS", 300)).await;
    // Initialised in time: the timeout does not apply any more. It opened
    // before the silent one, so its own deadline has passed by the time the
    // silent one is closed.
    let mut initialised = connect(&app, TRANSPORT_WS).await;
    let mut silent = open(&app, TRANSPORT_WS).await;
    assert_eq!(
        close_frame(&mut silent).await,
        (4408, "Connection initialisation timeout".into())
    );
    initialised
        .subscribe("q", "{ languages }", json!({}))
        .await
        .unwrap();
    let payload = initialised.next_payload("q", WAIT).await.unwrap();
    assert_eq!(payload["data"]["languages"], json!(["assemblyscript"]));
}

#[tokio::test]
async fn a_duplicate_live_id_closes_4409() {
    let app = app().await;
    let id = create_function(&app).await;
    let mut client = connect(&app, TRANSPORT_WS).await;
    client
        .subscribe("1", FUNCTION_EVENTS, json!({ "id": id }))
        .await
        .unwrap();
    client.next_payload("1", WAIT).await.unwrap();
    client
        .subscribe("1", FUNCTION_EVENTS, json!({ "id": id }))
        .await
        .unwrap();
    assert_eq!(
        close_frame(&mut client).await,
        (4409, "Subscriber for 1 already exists".into())
    );
}

#[tokio::test]
async fn ids_are_free_again_once_their_operation_ended() {
    let app = app().await;
    let id = create_function(&app).await;
    let mut client = connect(&app, TRANSPORT_WS).await;

    // Ended by the server: `complete`.
    for _ in 0..2 {
        client
            .subscribe("q", "{ languages }", json!({}))
            .await
            .unwrap();
        assert_eq!(
            client.next_message("q", WAIT).await.unwrap()["type"],
            "next"
        );
        assert_eq!(
            client.next_message("q", WAIT).await.unwrap(),
            json!({ "id": "q", "type": "complete" })
        );
    }

    // Ended by the client: `complete`, which the server does not echo.
    client
        .subscribe("s", FUNCTION_EVENTS, json!({ "id": id }))
        .await
        .unwrap();
    client.next_payload("s", WAIT).await.unwrap();
    client.complete("s").await.unwrap();
    client
        .subscribe("s", "{ languages }", json!({}))
        .await
        .unwrap();
    let first = client.next_message("s", WAIT).await.unwrap();
    assert_eq!(
        first["type"], "next",
        "the old operation's end is not echoed: {first}"
    );
    assert_eq!(
        first["payload"]["data"]["languages"],
        json!(["assemblyscript"])
    );
    assert_eq!(
        client.next_message("s", WAIT).await.unwrap()["type"],
        "complete"
    );

    // Ended by an `error` (the operation never ran): no `complete` follows.
    client
        .subscribe("e", "subscription { noSuchField }", json!({}))
        .await
        .unwrap();
    let error = client.next_message("e", WAIT).await.unwrap();
    assert_eq!(error["type"], "error", "{error}");
    assert!(
        error["payload"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("noSuchField")),
        "{error}"
    );
    client
        .subscribe("e", "{ languages }", json!({}))
        .await
        .unwrap();
    assert_eq!(
        client.next_message("e", WAIT).await.unwrap()["type"],
        "next"
    );
    assert_eq!(
        client.next_message("e", WAIT).await.unwrap()["type"],
        "complete"
    );
}

#[tokio::test]
async fn a_second_connection_init_closes_4429() {
    let app = app().await;
    let mut client = connect(&app, TRANSPORT_WS).await;
    client
        .send(json!({ "type": "connection_init", "payload": {} }))
        .await
        .unwrap();
    assert_eq!(
        close_frame(&mut client).await,
        (4429, "Too many initialisation requests".into())
    );
}

/// Subscribe, get the snapshot, see a transition, stop; and a query.
async fn round_trip(app: &TestApp, protocol: &'static str) {
    let id = create_function(app).await;
    let mut client = connect(app, protocol).await;
    client
        .subscribe("sub", FUNCTION_EVENTS, json!({ "id": id }))
        .await
        .unwrap();
    let snapshot = client.next_payload("sub", WAIT).await.unwrap();
    assert_eq!(
        snapshot["data"]["functionStatusChanged"],
        json!({ "previousStatus": null, "status": "PENDING", "function": { "id": id, "name": "f", "status": "PENDING" } }),
        "{protocol}"
    );
    set_status(app, &id, "COMPILING").await;
    let event = client.next_payload("sub", WAIT).await.unwrap();
    assert_eq!(
        event["data"]["functionStatusChanged"],
        json!({ "previousStatus": "PENDING", "status": "COMPILING", "function": { "id": id, "name": "f", "status": "COMPILING" } }),
        "{protocol}"
    );
    client.complete("sub").await.unwrap();

    client
        .subscribe("query", "{ languages }", json!({}))
        .await
        .unwrap();
    let result = client.next_payload("query", WAIT).await.unwrap();
    assert_eq!(
        result,
        json!({ "data": { "languages": ["assemblyscript"] } }),
        "{protocol}"
    );
    assert_eq!(
        client.next_message("query", WAIT).await.unwrap()["type"],
        "complete"
    );
}

#[tokio::test]
async fn graphql_transport_ws_round_trip() {
    let app = app().await;
    round_trip(&app, TRANSPORT_WS).await;
}

#[tokio::test]
async fn legacy_graphql_ws_round_trip() {
    let app = app().await;
    round_trip(&app, LEGACY_WS).await;
}

#[tokio::test]
async fn ping_is_answered_with_pong() {
    let app = app().await;
    // Allowed before connection_init too; the payload comes back.
    let mut client = open(&app, TRANSPORT_WS).await;
    client
        .send(json!({ "type": "ping", "payload": { "n": 1 } }))
        .await
        .unwrap();
    let pong = client.receive_raw(WAIT).await.unwrap();
    assert!(
        matches!(&pong, Received::Message(m) if *m == json!({ "type": "pong", "payload": { "n": 1 } })),
        "{pong:?}"
    );

    let mut client = connect(&app, TRANSPORT_WS).await;
    client.send(json!({ "type": "ping" })).await.unwrap();
    let pong = client.receive_raw(WAIT).await.unwrap();
    assert!(
        matches!(&pong, Received::Message(m) if *m == json!({ "type": "pong" })),
        "{pong:?}"
    );
}

#[tokio::test]
async fn the_server_keeps_connections_alive() {
    let app = app_with(ServerOptions::default().env("PROJECTNIL_WS_KEEPALIVE_MS", 200)).await;

    let mut client = connect(&app, TRANSPORT_WS).await;
    for _ in 0..2 {
        let ping = client.receive_raw(WAIT).await.unwrap();
        assert!(
            matches!(&ping, Received::Message(m) if m["type"] == "ping"),
            "{ping:?}"
        );
        client.send(json!({ "type": "pong" })).await.unwrap();
    }
    client
        .subscribe("q", "{ languages }", json!({}))
        .await
        .unwrap();
    client.next_payload("q", WAIT).await.unwrap();

    let mut legacy = connect(&app, LEGACY_WS).await;
    for _ in 0..2 {
        let ka = legacy.receive_raw(WAIT).await.unwrap();
        assert!(
            matches!(&ka, Received::Message(m) if *m == json!({ "type": "ka" })),
            "{ka:?}"
        );
    }
}

#[tokio::test]
async fn shutdown_closes_sockets_cleanly() {
    let mut app = app().await;
    let id = create_function(&app).await;
    let mut client = connect(&app, TRANSPORT_WS).await;
    client
        .subscribe("sub", FUNCTION_EVENTS, json!({ "id": id }))
        .await
        .unwrap();
    client.next_payload("sub", WAIT).await.unwrap();

    let pid = app.server.child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let (code, reason) = close_frame(&mut client).await;
    assert!(matches!(code, 1000 | 1001), "closed with {code} {reason}");
    let status = tokio::time::timeout(WAIT, app.server.child.wait())
        .await
        .expect("the server did not exit")
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_socket_without_a_known_subprotocol_is_refused() {
    let app = app().await;
    let refused = WsClient::open(&app.server.ws_url(), "chat").await;
    assert!(refused.is_err(), "the upgrade must fail");
    // Among others, the first protocol the server speaks is taken.
    WsClient::connect(&app.server.ws_url(), "chat, graphql-transport-ws")
        .await
        .expect("graphql-transport-ws among the offers");
}

#[tokio::test]
async fn a_message_over_the_body_limit_closes_1009_naming_the_limit() {
    let app = app_with(ServerOptions::default().env("PROJECTNIL_MAX_BODY_BYTES", 65536)).await;
    for protocol in [TRANSPORT_WS, LEGACY_WS] {
        let mut client = connect(&app, protocol).await;
        let padding = "x".repeat(100_000);
        client
            .send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "{ languages }", "extensions": { "pad": padding } } }))
            .await
            .unwrap();
        let (code, reason) = close_frame(&mut client).await;
        assert_eq!(code, 1009, "{protocol}: {reason}");
        assert!(reason.contains("65536"), "{reason}");
    }
    // A message within the limit is served as before.
    round_trip(&app, TRANSPORT_WS).await;
}

#[tokio::test]
async fn live_operations_per_connection_are_limited() {
    let app = app_with(ServerOptions::default().env("PROJECTNIL_WS_MAX_OPERATIONS", 2)).await;
    let id = create_function(&app).await;
    let mut client = connect(&app, TRANSPORT_WS).await;
    for op in ["a", "b", "c"] {
        client
            .subscribe(op, FUNCTION_EVENTS, json!({ "id": id }))
            .await
            .unwrap();
    }
    // The third is refused with an error of its own; the other two stay live
    // and get the next change.
    let mut refused = None;
    let mut changed = std::collections::HashSet::new();
    let mut status_set = false;
    while refused.is_none() || changed.len() < 2 {
        let Received::Message(message) = client.receive(WAIT).await.unwrap() else {
            panic!("the socket closed");
        };
        match (message["id"].as_str(), message["type"].as_str()) {
            (Some("c"), Some("error")) => refused = Some(message),
            (Some(op @ ("a" | "b")), Some("next")) => {
                if message["payload"]["data"]["functionStatusChanged"]["status"] == "COMPILING" {
                    changed.insert(op.to_string());
                }
            }
            other => panic!("unexpected {other:?}: {message}"),
        }
        if refused.is_some() && !status_set {
            set_status(&app, &id, "COMPILING").await;
            status_set = true;
        }
    }
    let error = &refused.unwrap()["payload"][0];
    assert_eq!(error["extensions"]["code"], "TOO_MANY_REQUESTS");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("the limit is 2"),
        "{error}"
    );
    // Completing one makes room for another.
    client.complete("a").await.unwrap();
    client
        .subscribe("d", "{ languages }", json!({}))
        .await
        .unwrap();
    let answer = client.next_payload("d", WAIT).await.unwrap();
    assert_eq!(answer["data"]["languages"], json!(["assemblyscript"]));
}
