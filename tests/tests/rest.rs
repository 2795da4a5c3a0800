//! The REST API of `rest.md` and the HTTP triggers, through a real HTTP
//! client against the real binary: every endpoint, every status and the
//! error body, parity with GraphQL, and the same access control and
//! admission.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tests::fixtures::{ADD, ECHO};
use tests::ws::{TRANSPORT_WS, WsClient};
use tests::{ServerOptions, TestApp, eventually};

struct Rest {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

/// One answer: status, headers and the JSON body (Null when empty).
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    /// Asserts the contract's error body and returns its message.
    fn error(&self, status: u16) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        let body = &self.body;
        assert_eq!(body["status"], status, "{body}");
        assert_eq!(
            body["error"],
            StatusCode::from_u16(status)
                .unwrap()
                .canonical_reason()
                .unwrap(),
            "{body}"
        );
        assert!(
            chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok(),
            "{body}"
        );
        body["message"].as_str().unwrap().to_string()
    }
}

impl Rest {
    fn of(app: &TestApp) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: app.server.base_url.clone(),
            key: None,
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<(&str, String)>) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some((content_type, body)) = body {
            request = request.header("content-type", content_type).body(body);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn json(&self, method: Method, path: &str, body: Value) -> Answer {
        self.send(method, path, Some(("application/json", body.to_string())))
            .await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    async fn create(&self, name: &str, source: &str) -> Value {
        let answer = self
            .json(
                Method::POST,
                "/functions",
                json!({ "name": name, "language": "assemblyscript", "source": source }),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body
    }

    async fn ready(&self, name: &str, source: &str) -> String {
        let id = self.create(name, source).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let path = format!("/functions/{id}");
        let details = eventually!(format!("{name} compiled"), async {
            let body = self.get(&path).await.body;
            matches!(body["status"].as_str(), Some("READY" | "FAILED")).then_some(body)
        });
        assert_eq!(details["status"], "READY", "{details}");
        id
    }
}

#[tokio::test]
async fn every_endpoint_answers_as_the_contract_says() {
    let app = TestApp::start().await.unwrap();
    let rest = Rest::of(&app);
    assert_eq!(rest.get("/health").await.body, json!({ "status": "UP" }));
    let spec = rest.get("/openapi.json").await;
    assert_eq!(spec.status, StatusCode::OK);
    assert_eq!(
        spec.headers["content-type"], "application/json; charset=utf-8",
        "the document is JSON, and says so"
    );
    assert!(spec.body["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/functions",
        "/functions/{id}",
        "/functions/{id}/execute",
        "/executions/{id}",
        "/run/{name}",
    ] {
        assert!(
            spec.body["paths"][path].is_object(),
            "{path} in {}",
            spec.body["paths"]
        );
    }
    let docs = rest.get("/docs").await;
    assert_eq!(docs.status, StatusCode::OK);
    assert!(
        docs.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    let created = rest.create("add", ADD).await;
    assert_eq!(created["name"], "add");
    assert_eq!(created["status"], "PENDING");
    assert!(created["createdAt"].is_string() && created["id"].is_string());
    let id = created["id"].as_str().unwrap().to_string();
    eventually!("add compiled", async {
        (rest.get(&format!("/functions/{id}")).await.body["status"] == "READY").then_some(())
    });
    let details = rest.get(&format!("/functions/{id}")).await.body;
    for field in [
        "id",
        "name",
        "description",
        "language",
        "source",
        "status",
        "compileError",
        "createdAt",
        "updatedAt",
        "revision",
        "deployedRevision",
        "wasmSize",
    ] {
        assert!(details.get(field).is_some(), "{field} missing: {details}");
    }
    assert_eq!(
        (&details["source"], &details["deployedRevision"]),
        (&json!(ADD), &json!(1))
    );

    // Newest first, pages by limit with a Link to the next.
    rest.create("second", ECHO).await;
    rest.create("third", ECHO).await;
    let first_page = rest.get("/functions?limit=2").await;
    let names: Vec<&str> = first_page
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["third", "second"]);
    let link = first_page.headers["link"].to_str().unwrap().to_string();
    assert!(link.ends_with("; rel=\"next\""), "{link}");
    let next = link.trim_start_matches('<').split('>').next().unwrap();
    let rest_page = rest.get(next).await;
    assert_eq!(rest_page.body.as_array().unwrap().len(), 1);
    assert_eq!(rest_page.body[0]["name"], "add");
    assert!(rest_page.headers.get("link").is_none());

    let ran = rest
        .json(
            Method::POST,
            &format!("/functions/{id}/execute"),
            json!({ "input": { "a": 5, "b": 3 } }),
        )
        .await;
    assert_eq!(ran.status, StatusCode::OK);
    for field in [
        "id",
        "functionId",
        "status",
        "input",
        "output",
        "errorMessage",
        "startedAt",
        "completedAt",
        "createdAt",
    ] {
        assert!(
            ran.body.get(field).is_some(),
            "{field} missing: {}",
            ran.body
        );
    }
    assert_eq!(
        (
            &ran.body["status"],
            &ran.body["output"],
            &ran.body["revision"]
        ),
        (&json!("COMPLETED"), &json!({ "sum": 8 }), &json!(1))
    );
    // No body, an empty object and a null input all mean {}.
    for body in [
        None,
        Some(("application/json", "{}".to_string())),
        Some(("application/json", r#"{"input":null}"#.to_string())),
    ] {
        let answer = rest
            .send(Method::POST, &format!("/functions/{id}/execute"), body)
            .await;
        assert_eq!(
            answer.body["output"],
            json!({ "sum": 0 }),
            "{}",
            answer.body
        );
    }
    let execution = rest
        .get(&format!("/executions/{}", ran.body["id"].as_str().unwrap()))
        .await;
    assert_eq!(execution.body["id"], ran.body["id"]);
    assert_eq!(execution.body["output"], json!({ "sum": 8 }));
    let summaries = rest
        .get(&format!("/functions/{id}/executions?limit=3"))
        .await;
    let summary = &summaries.body[0];
    for field in ["id", "status", "startedAt", "completedAt"] {
        assert!(summary.get(field).is_some(), "{field} missing: {summary}");
    }
    assert!(
        summaries.headers.get("link").is_some(),
        "four executions, pages of three"
    );

    // A failure of the function's own code is a 200 with a FAILED execution.
    let echo_id = rest.ready("echo", ECHO).await;
    let replaced = rest
        .json(
            Method::PUT,
            &format!("/functions/{echo_id}"),
            json!({ "name": "thrower", "language": "assemblyscript", "source": tests::fixtures::source("throw") }),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK);
    assert_eq!(
        (
            &replaced.body["status"],
            &replaced.body["compileError"],
            &replaced.body["name"],
            &replaced.body["revision"],
            &replaced.body["description"]
        ),
        (
            &json!("PENDING"),
            &Value::Null,
            &json!("thrower"),
            &json!(2),
            &Value::Null
        )
    );
    eventually!("thrower compiled", async {
        (rest.get(&format!("/functions/{echo_id}")).await.body["deployedRevision"] == 2)
            .then_some(())
    });
    let failed = rest
        .json(
            Method::POST,
            &format!("/functions/{echo_id}/execute"),
            json!({ "input": { "x": 1 } }),
        )
        .await;
    assert_eq!(failed.status, StatusCode::OK);
    assert_eq!(failed.body["status"], "FAILED");
    assert!(
        failed.body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("boom"),
        "{}",
        failed.body
    );

    let deleted = rest
        .send(Method::DELETE, &format!("/functions/{id}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(deleted.body, Value::Null);
    let gone = rest.get(&format!("/functions/{id}")).await;
    assert_eq!(gone.error(404), format!("Function not found: {id}"));
    let gone = rest
        .get(&format!("/executions/{}", ran.body["id"].as_str().unwrap()))
        .await;
    assert!(
        gone.error(404).starts_with("Execution not found: "),
        "its executions went with it"
    );
}

#[tokio::test]
async fn every_error_has_the_contract_body_and_loses_nothing() {
    let app = TestApp::start_with(
        ServerOptions::default()
            .arg("--no-worker")
            .env("PROJECTNIL_MAX_BODY_BYTES", 4096),
    )
    .await
    .unwrap();
    let rest = Rest::of(&app);
    let valid = || json!({ "name": "f", "language": "assemblyscript", "source": ECHO });

    assert!(rest.get("/nowhere").await.error(404).contains("/nowhere"));
    assert!(
        rest.send(Method::PATCH, "/functions", None)
            .await
            .error(405)
            .contains("PATCH")
    );
    assert!(
        rest.send(Method::DELETE, "/functions", None)
            .await
            .error(405)
            .contains("DELETE")
    );
    let invalid_id = rest.get("/functions/not-a-uuid").await.error(400);
    assert!(
        invalid_id.contains("Invalid") && invalid_id.contains("not-a-uuid"),
        "{invalid_id}"
    );
    let invalid_id = rest.get("/executions/123").await.error(400);
    assert!(
        invalid_id.contains("Invalid") && invalid_id.contains("123"),
        "{invalid_id}"
    );

    let bad_json = rest
        .send(
            Method::POST,
            "/functions",
            Some(("application/json", "{\"name\": ".into())),
        )
        .await;
    assert!(bad_json.error(400).contains("JSON"));
    for (field, body) in [
        (
            "name",
            json!({ "language": "assemblyscript", "source": ECHO }),
        ),
        (
            "name",
            json!({ "name": null, "language": "assemblyscript", "source": ECHO }),
        ),
        (
            "name",
            json!({ "name": "  ", "language": "assemblyscript", "source": ECHO }),
        ),
        (
            "source",
            json!({ "name": "f", "language": "assemblyscript" }),
        ),
        (
            "source",
            json!({ "name": "f", "language": "assemblyscript", "source": "" }),
        ),
    ] {
        let message = rest
            .json(Method::POST, "/functions", body.clone())
            .await
            .error(400);
        assert!(message.contains(field), "{body}: {message}");
    }
    let text = rest
        .send(
            Method::POST,
            "/functions",
            Some(("text/plain", valid().to_string())),
        )
        .await;
    text.error(415);
    // The language is checked before the other fields.
    let rust = rest
        .json(Method::POST, "/functions", json!({ "language": "rust" }))
        .await;
    assert_eq!(rust.error(415), "Unsupported language: rust");
    rest.json(
        Method::POST,
        "/functions",
        json!({ "name": "f", "source": ECHO }),
    )
    .await
    .error(415);

    // Unknown fields are ignored.
    let mut extra = valid();
    extra["color"] = json!("blue");
    let created = rest.json(Method::POST, "/functions", extra).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();

    // Names are unique, ignoring case and surrounding spaces.
    let mut same = valid();
    same["name"] = json!("  F ");
    assert!(
        rest.json(Method::POST, "/functions", same.clone())
            .await
            .error(409)
            .contains("F")
    );
    let other = rest.create("other", ECHO).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    rest.json(Method::PUT, &format!("/functions/{other}"), same)
        .await
        .error(409);
    let graphql = app
        .client()
        .error(
            "mutation($id: UUID!) { updateFunction(id: $id, input: { name: \"f\" }) { id } }",
            json!({ "id": other }),
        )
        .await
        .unwrap();
    assert_eq!(graphql.code, "CONFLICT");

    let big = json!({ "name": "big", "language": "assemblyscript", "source": "x".repeat(8000) });
    assert!(
        rest.json(Method::POST, "/functions", big)
            .await
            .error(413)
            .contains("4096")
    );
    for limit in ["0", "1001", "x"] {
        rest.get(&format!("/functions?limit={limit}"))
            .await
            .error(400);
    }
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(
        rest.get(&format!("/functions/{unknown}")).await.error(404),
        format!("Function not found: {unknown}")
    );
    assert_eq!(
        rest.get(&format!("/executions/{unknown}")).await.error(404),
        format!("Execution not found: {unknown}")
    );
    rest.get(&format!("/functions/{unknown}/executions"))
        .await
        .error(404);
    rest.send(Method::DELETE, &format!("/functions/{unknown}"), None)
        .await
        .error(404);
    rest.json(
        Method::POST,
        &format!("/functions/{unknown}/execute"),
        json!({}),
    )
    .await
    .error(404);

    // Not compiled (no worker runs here): 400 naming the function and its status.
    let not_ready = rest
        .json(Method::POST, &format!("/functions/{id}/execute"), json!({}))
        .await
        .error(400);
    assert!(
        not_ready.contains(&format!("Function {id} is not ready")) && not_ready.contains("PENDING"),
        "{not_ready}"
    );
    let not_object = rest
        .json(
            Method::POST,
            &format!("/functions/{id}/execute"),
            json!({ "input": [1] }),
        )
        .await
        .error(400);
    assert!(
        not_object.contains("Input must be a JSON object"),
        "{not_object}"
    );

    // Nothing a refused request sent was recorded.
    let listed = rest.get("/functions").await.body;
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let executions = rest.get(&format!("/functions/{id}/executions")).await.body;
    assert_eq!(executions, json!([]));
}

#[tokio::test]
async fn http_triggers_run_the_deployed_revision_by_name() {
    let app = TestApp::start().await.unwrap();
    let rest = Rest::of(&app);
    let name = "echo me/ü";
    let path = format!("/run/{}", urlencoding(name));
    rest.ready(name, ECHO).await;

    let posted = rest.json(Method::POST, &path, json!({ "a": 1 })).await;
    assert_eq!(
        (posted.status, &posted.body),
        (StatusCode::OK, &json!({ "a": 1 }))
    );
    let execution_id = posted.headers["x-execution-id"]
        .to_str()
        .unwrap()
        .to_string();
    let recorded = rest.get(&format!("/executions/{execution_id}")).await.body;
    assert_eq!(recorded["output"], json!({ "a": 1 }));
    // Case-insensitive, like the uniqueness of names.
    let upper = rest
        .json(
            Method::POST,
            &format!("/run/{}", urlencoding("ECHO ME/Ü")),
            json!({}),
        )
        .await;
    assert_eq!(upper.status, StatusCode::OK);

    let empty = rest.send(Method::POST, &path, None).await;
    assert_eq!(empty.body, json!({}));
    let form = rest
        .send(
            Method::POST,
            &path,
            Some(("application/x-www-form-urlencoded", "a=1&b=x+y".into())),
        )
        .await;
    assert_eq!(form.body, json!({ "a": "1", "b": "x y" }));
    let query = rest.get(&format!("{path}?a=1&b=x")).await;
    assert_eq!(query.body, json!({ "a": "1", "b": "x" }));
    assert!(query.headers.contains_key("x-execution-id"));

    rest.json(Method::POST, &path, json!([1, 2]))
        .await
        .error(400);
    rest.send(
        Method::POST,
        &path,
        Some(("application/json", "{nope".into())),
    )
    .await
    .error(400);
    assert_eq!(
        rest.json(Method::POST, "/run/nobody", json!({}))
            .await
            .error(404),
        "Function not found: nobody"
    );

    let thrower = rest
        .ready("thrower", &tests::fixtures::source("throw"))
        .await;
    let failed = rest
        .json(Method::POST, "/run/thrower", json!({ "x": 1 }))
        .await;
    let message = failed.error(422);
    let failed_id = failed.headers["x-execution-id"].to_str().unwrap();
    let failed_execution = rest.get(&format!("/executions/{failed_id}")).await.body;
    assert_eq!(failed_execution["status"], "FAILED");
    assert_eq!(failed_execution["errorMessage"], message.as_str());
    assert_eq!(failed_execution["functionId"], thrower.as_str());

    let app_without_worker = TestApp::start_without_worker().await.unwrap();
    let idle = Rest::of(&app_without_worker);
    idle.create("waiting", ECHO).await;
    assert!(
        idle.json(Method::POST, "/run/waiting", json!({}))
            .await
            .error(503)
            .contains("not ready")
    );
}

#[tokio::test]
async fn access_control_and_admission_are_the_same_as_graphql() {
    let app = TestApp::start_with(
        ServerOptions::default()
            .env("PROJECTNIL_API_KEYS", "secret-key")
            .env("PROJECTNIL_EXEC_CONCURRENCY", 1)
            .env("PROJECTNIL_EXEC_QUEUE", 0)
            .env("PROJECTNIL_EXEC_TIMEOUT_MS", 600_000),
    )
    .await
    .unwrap();
    let mut rest = Rest::of(&app);
    assert_eq!(rest.get("/health").await.status, StatusCode::OK);
    assert_eq!(rest.get("/openapi.json").await.status, StatusCode::OK);
    rest.get("/functions").await.error(401);
    rest.json(Method::POST, "/run/anything", json!({}))
        .await
        .error(401);
    rest.key = Some("wrong".into());
    rest.get("/functions").await.error(401);
    rest.key = Some("secret-key".into());
    assert_eq!(rest.get("/functions").await.status, StatusCode::OK);

    let burn = rest.ready("burn", &tests::fixtures::source("burn")).await;
    // The one wasm thread busy with a long run, and no queue: the next is refused.
    let long = {
        let (http, base, id) = (rest.http.clone(), rest.base.clone(), burn.clone());
        tokio::spawn(async move {
            http.post(format!("{base}/functions/{id}/execute"))
                .bearer_auth("secret-key")
                .json(&json!({ "input": { "rounds": 2_000_000_000 } }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    let executions = format!("/functions/{burn}/executions");
    eventually!("the long run holds the only thread", async {
        let listed = rest.get(&executions).await.body;
        (listed[0]["status"] == "RUNNING").then_some(())
    });
    let refused = rest
        .json(Method::POST, "/run/burn", json!({ "rounds": 1 }))
        .await;
    refused.error(429);
    assert!(
        refused.headers.get("x-execution-id").is_none(),
        "nothing was recorded"
    );
    rest.json(
        Method::POST,
        &format!("/functions/{burn}/execute"),
        json!({}),
    )
    .await
    .error(429);
    let running = rest
        .get(&format!("/functions/{burn}/executions"))
        .await
        .body;
    let long_id = running[0]["id"].as_str().unwrap().to_string();
    let cancel = json!({
        "query": "mutation($id: UUID!) { cancelExecution(id: $id) { status } }",
        "variables": { "id": long_id },
    });
    let over_graphql = rest.json(Method::POST, "/graphql", cancel).await;
    assert_eq!(
        over_graphql.body["data"]["cancelExecution"]["status"], "FAILED",
        "{}",
        over_graphql.body
    );
    let cancelled = long.await.unwrap();
    assert_eq!(cancelled["status"], "FAILED", "{cancelled}");
}

#[tokio::test]
async fn rest_and_graphql_are_two_faces_of_the_same_functions() {
    let app = TestApp::start().await.unwrap();
    let rest = Rest::of(&app);
    let client = app.client();
    let from_rest = rest.ready("from-rest", ADD).await;
    let from_graphql = client.ready_function("from-graphql", ECHO).await.unwrap();
    for id in [&from_rest, &from_graphql] {
        let over_rest = rest.get(&format!("/functions/{id}")).await.body;
        let over_graphql = client
            .data(
                "query($id: UUID!) { function(id: $id) { id name description language source status compileError createdAt updatedAt revision deployedRevision wasmSize } }",
                json!({ "id": id }),
            )
            .await
            .unwrap()["function"]
            .clone();
        for field in [
            "id",
            "name",
            "description",
            "language",
            "source",
            "status",
            "compileError",
            "revision",
            "deployedRevision",
            "wasmSize",
        ] {
            assert_eq!(over_rest[field], over_graphql[field], "{field}");
        }
        for field in ["createdAt", "updatedAt"] {
            let parse =
                |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
            assert_eq!(
                parse(&over_rest[field]),
                parse(&over_graphql[field]),
                "{field}"
            );
        }
    }

    // An execution over REST reaches GraphQL subscribers like any other.
    let mut ws = WsClient::connect(&app.server.ws_url(), TRANSPORT_WS)
        .await
        .unwrap();
    let probe = rest
        .json(
            Method::POST,
            &format!("/functions/{from_rest}/execute"),
            json!({}),
        )
        .await;
    assert_eq!(probe.status, StatusCode::OK);
    ws.subscribe(
        "sub",
        "subscription($id: UUID) { executionStatusChanged(functionId: $id) { status execution { id output } } }",
        json!({ "id": from_rest }),
    )
    .await
    .unwrap();
    // The subscription is live once it sees a run made after it.
    let completed = eventually!("a REST execution seen by the subscriber", async {
        let ran = rest
            .json(
                Method::POST,
                &format!("/functions/{from_rest}/execute"),
                json!({ "input": { "a": 2, "b": 2 } }),
            )
            .await;
        let id = ran.body["id"].clone();
        loop {
            match ws.next_payload("sub", Duration::from_secs(2)).await {
                Ok(payload) => {
                    let event = &payload["data"]["executionStatusChanged"];
                    if event["execution"]["id"] == id && event["status"] == "COMPLETED" {
                        break Some(event.clone());
                    }
                }
                Err(_) => break None,
            }
        }
    });
    assert_eq!(completed["execution"]["output"], json!({ "sum": 4 }));
}

/// `encodeURIComponent`.
fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'!'
            | b'~'
            | b'*'
            | b'\''
            | b'('
            | b')' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
