//! Hostile and malformed requests against one real server: each is answered
//! with the right HTTP status and `extensions.code` and a message that says
//! what was wrong; none gets a 500, kills the server or hangs it.

use std::time::Duration;

use serde_json::{Value, json};
use tests::fixtures::ADD;
use tests::{ServerOptions, TestApp};

/// How a case is sent.
enum Send {
    /// POST application/json of this value.
    Json(Value),
    /// POST with these bytes and this Content-Type (none when `None`).
    Raw(Option<&'static str>, Vec<u8>),
    /// GET /graphql?<this query string>.
    Get(String),
    /// Another method, no body.
    Method(&'static str),
}

/// A GraphQL operation with variables, POSTed as JSON.
fn op(query: impl Into<String>, variables: Value) -> Send {
    Send::Json(json!({ "query": query.into(), "variables": variables }))
}

fn query_string(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Case {
    name: &'static str,
    send: Send,
    status: u16,
    /// `extensions.code` of the first error; `None` for plain-text transport errors.
    code: Option<&'static str>,
    /// Part of the message (case-insensitive).
    message: &'static str,
}

fn case(
    name: &'static str,
    send: Send,
    status: u16,
    code: &'static str,
    message: &'static str,
) -> Case {
    Case {
        name,
        send,
        status,
        code: Some(code),
        message,
    }
}

const BAD: &str = "BAD_USER_INPUT";

fn nested(open: &str, close: &str, inner: &str, levels: usize) -> String {
    format!("{}{inner}{}", open.repeat(levels), close.repeat(levels))
}

#[tokio::test]
async fn hostile_requests_get_clear_errors_and_the_server_stays_up() {
    let app = TestApp::start_with(
        ServerOptions::default()
            .arg("--no-worker")
            .env("PROJECTNIL_MAX_SOURCE_BYTES", 1000)
            .env("PROJECTNIL_MAX_INPUT_BYTES", 100)
            .env("PROJECTNIL_MAX_BODY_BYTES", 2_000_000)
            .env("PROJECTNIL_MAX_BATCH", 10),
    )
    .await
    .unwrap();
    let client = app.client();
    let pending = client.create_function("pending", ADD).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let unknown = uuid::Uuid::new_v4().to_string();
    let create = "mutation($input: CreateFunctionInput!) { createFunction(input: $input) { id } }";
    let execute =
        "mutation($id: UUID!, $input: JSON) { executeFunction(id: $id, input: $input) { id } }";
    let list = "query($first: Int, $after: String, $status: FunctionStatus) { functions(first: $first, after: $after, status: $status) { totalCount } }";
    let function_input = |name: &str, source: &str| json!({ "input": { "name": name, "language": "assemblyscript", "source": source } });
    let execute_with = |input: Value| op(execute, json!({ "id": pending, "input": input }));
    let languages = json!({ "query": "{ languages }" });
    let aliases = |count: usize, field: &str| {
        let fields: Vec<String> = (0..count).map(|i| format!("a{i}: {field}")).collect();
        format!("{{ {} }}", fields.join(" "))
    };
    let of_type_chain = {
        let mut chain = String::from("name");
        for _ in 0..30 {
            chain = format!("ofType {{ {chain} }}");
        }
        format!("{{ __type(name: \"Function\") {{ fields {{ type {{ {chain} }} }} }} }}")
    };
    let deep_fields = {
        let mut deep = String::from("id");
        for _ in 0..6 {
            deep = format!("function {{ executions {{ nodes {{ {deep} }} }} }}");
        }
        format!("{{ executions {{ nodes {{ {deep} }} }} }}")
    };

    let cases = vec![
        // Transport: the body is not a GraphQL request.
        case("malformed JSON", Send::Raw(Some("application/json"), b"{\"query\": ".to_vec()), 400, BAD, "not valid JSON"),
        case("JSON with a bad key", Send::Raw(Some("application/json"), b"{query: 1}".to_vec()), 400, BAD, "not valid JSON"),
        case("empty body", Send::Raw(Some("application/json"), Vec::new()), 400, BAD, "empty"),
        case("whitespace body", Send::Raw(Some("application/json"), b" \n\t ".to_vec()), 400, BAD, "empty"),
        case("body is a number", Send::Raw(Some("application/json"), b"42".to_vec()), 400, BAD, "JSON object"),
        case("body is a string", Send::Raw(Some("application/json"), b"\"{ languages }\"".to_vec()), 400, BAD, "JSON object"),
        case("body is null", Send::Raw(Some("application/json"), b"null".to_vec()), 400, BAD, "JSON object"),
        case("query is not a string", Send::Json(json!({ "query": 5 })), 400, BAD, "not a GraphQL request"),
        case("variables are a list", Send::Json(json!({ "query": "{ languages }", "variables": [1] })), 400, BAD, "not a GraphQL request"),
        case("operationName is an object", Send::Json(json!({ "query": "{ languages }", "operationName": {} })), 400, BAD, "not a GraphQL request"),
        case("no query", Send::Json(json!({ "variables": {} })), 400, BAD, "no query"),
        case("blank query", Send::Json(json!({ "query": "   " })), 400, BAD, "no query"),
        case("not UTF-8", Send::Raw(Some("application/json"), vec![0xff, 0xfe, 0x00, 0x7b]), 400, BAD, "not valid JSON"),
        case("JSON nested past the parser's limit", Send::Raw(Some("application/json"), nested("[", "]", "", 100_000).into_bytes()), 400, BAD, "recursion limit"),
        case("text/plain", Send::Raw(Some("text/plain"), serde_json::to_vec(&languages).unwrap()), 415, BAD, "application/json"),
        case("form encoded", Send::Raw(Some("application/x-www-form-urlencoded"), b"query=%7Blanguages%7D".to_vec()), 415, BAD, "not supported"),
        case("multipart upload", Send::Raw(Some("multipart/form-data; boundary=x"), b"--x\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{}\r\n--x--\r\n".to_vec()), 415, BAD, "not supported"),
        case("no content type", Send::Raw(None, serde_json::to_vec(&languages).unwrap()), 415, BAD, "Content-Type"),
        case("XML", Send::Raw(Some("application/xml"), b"<query/>".to_vec()), 415, BAD, "not supported"),
        case("batch over the limit", Send::Json(Value::Array(vec![languages.clone(); 11])), 400, BAD, "the limit is 10"),
        case("huge batch", Send::Json(Value::Array(vec![languages.clone(); 5000])), 400, BAD, "the limit is 10"),
        case("empty batch", Send::Json(json!([])), 400, BAD, "empty"),
        case("batch with a non-object", Send::Json(json!([{ "query": "{ languages }" }, 7])), 400, BAD, "operation 1 of the batch"),
        case("body over the limit", Send::Json(json!({ "query": "{ languages }", "variables": { "pad": "x".repeat(2_100_000) } })), 413, "PAYLOAD_TOO_LARGE", "limit"),
        case("GET without a query", Send::Get(String::new()), 400, BAD, "no query"),
        case("GET with a mutation", Send::Get(query_string(&[("query", &format!("mutation {{ deleteFunction(id: \"{pending}\") }}"))])), 405, BAD, "POST"),
        case("GET picking the mutation of two", Send::Get(query_string(&[("query", "query Q { languages } mutation M { deleteFunction(id: \"00000000-0000-0000-0000-000000000000\") }"), ("operationName", "M")])), 405, BAD, "POST"),
        case("GET with bad variables", Send::Get(query_string(&[("query", "{ languages }"), ("variables", "{nope")])), 400, BAD, "variables"),
        Case { name: "PUT", send: Send::Method("PUT"), status: 405, code: Some(BAD), message: "method not allowed" },
        Case { name: "DELETE", send: Send::Method("DELETE"), status: 405, code: Some(BAD), message: "method not allowed" },
        // The document: syntax, depth, width, cycles.
        case("syntax error", op("{ functions { ", json!({})), 200, BAD, "expected"),
        case("selection nested 100,000 deep", op(nested("{a", "}", "", 100_000), json!({})), 200, BAD, ""),
        case("list value nested 100,000 deep", op(format!("{{ languages(x: {}) }}", nested("[", "]", "", 100_000)), json!({})), 200, BAD, ""),
        case("selection nested past the recursion limit", op(nested("{ a ", "}", "", 40), json!({})), 200, BAD, "recursion depth"),
        case("fields nested past the depth limit", op(deep_fields, json!({})), 200, BAD, "nested too deep"),
        case("introspection ofType chain", op(of_type_chain, json!({})), 200, BAD, "depth"),
        case("2,000 aliased lookups", op(aliases(2000, &format!("function(id: \"{unknown}\") {{ id }}")), json!({})), 200, BAD, "too complex"),
        case("6,000 aliased fields", op(aliases(6000, "languages"), json!({})), 200, BAD, "too complex"),
        case("20,000 repeated fields", op(format!("{{ {} }}", "languages ".repeat(20_000)), json!({})), 200, BAD, "too complex"),
        case("fragment cycle", op("fragment A on Query { ...B } fragment B on Query { ...A } { ...A }", json!({})), 200, BAD, ""),
        case("self-referencing fragment", op("fragment A on Query { languages ...A } { ...A }", json!({})), 200, BAD, ""),
        case("5,000 unknown arguments", op(format!("{{ languages({}) }}", (0..5000).map(|i| format!("a{i}: {i}")).collect::<Vec<_>>().join(", ")), json!({})), 200, BAD, "Unknown argument"),
        case("5,000 repeated arguments", op(format!("{{ functions({}) {{ totalCount }} }}", vec!["first: 1"; 5000].join(", ")), json!({})), 200, BAD, "first"),
        case("5,000 repeated directives", op(format!("{{ languages {} }}", "@skip(if: false) ".repeat(5000)), json!({})), 200, BAD, "skip"),
        case("unknown directive", op("{ languages @explode }", json!({})), 200, BAD, "explode"),
        case("unknown field", op("{ functions { nodes { password } } }", json!({})), 200, BAD, "password"),
        case("unknown operation name", Send::Json(json!({ "query": "query A { languages }", "operationName": "B" })), 200, BAD, "Unknown operation"),
        case("two operations, no name", op("query A { languages } query B { languages }", json!({})), 200, BAD, "Operation name required"),
        case("subscription over HTTP", op("subscription { functionStatusChanged { status } }", json!({})), 200, BAD, "not supported"),
        case("undeclared variable", op("{ function(id: $id) { id } }", json!({})), 200, BAD, "$id"),
        // Values: types, enums, ranges, cursors.
        case("variable of the wrong type", op("query($id: UUID!) { function(id: $id) { id } }", json!({ "id": 5 })), 200, BAD, "UUID"),
        case("missing non-null variable", op("query($id: UUID!) { function(id: $id) { id } }", json!({})), 200, BAD, "id"),
        case("invalid UUID literal", op("{ function(id: \"not-a-uuid\") { id } }", json!({})), 200, BAD, "UUID"),
        case("invalid UUID variable", op("query($id: UUID!) { execution(id: $id) { id } }", json!({ "id": "1234" })), 200, BAD, "UUID"),
        case("unknown enum value", op(list, json!({ "status": "DONE" })), 200, BAD, "FunctionStatus"),
        case("enum in the wrong case", op(list, json!({ "status": "ready" })), 200, BAD, "FunctionStatus"),
        case("first 0", op(list, json!({ "first": 0 })), 200, BAD, "between 1 and 100"),
        case("first negative", op(list, json!({ "first": -5 })), 200, BAD, "between 1 and 100"),
        case("first 101", op(list, json!({ "first": 101 })), 200, BAD, "between 1 and 100"),
        case("first past 32 bits", op(list, json!({ "first": 1u64 << 40 })), 200, BAD, "Int"),
        case("first as a string", op(list, json!({ "first": "ten" })), 200, BAD, "Int"),
        case("statistics until past year 9999", op("{ executionStats(until: \"+262142-12-31T23:59:30Z\") { total } }", json!({})), 200, BAD, "within the years 1 to 9999"),
        case("statistics until chrono's earliest day", op("{ executionStats(until: \"-262143-01-01T12:00:00Z\") { total } }", json!({})), 200, BAD, "within the years 1 to 9999"),
        case("forged cursor", op(list, json!({ "after": "djE6MTIzOm5vdC1hLXV1aWQ" })), 200, BAD, "not a cursor"),
        case("garbage cursor", op(list, json!({ "after": "%%%\u{0}" })), 200, BAD, "not a cursor"),
        case("huge cursor", op(list, json!({ "after": "A".repeat(100_000) })), 200, BAD, "not a cursor"),
        // Business input: sizes and shapes.
        case("oversized source", op(create, function_input("f", &"x".repeat(1001))), 200, "PAYLOAD_TOO_LARGE", "the limit is 1000 bytes"),
        case("NUL in the source", op(create, function_input("f", "export function handle(i: string): string { return i }\0")), 200, BAD, "NUL"),
        case("control characters in the name", op(create, function_input("a\u{7}b", ADD)), 200, BAD, "control characters"),
        case("unsupported language", op(create, json!({ "input": { "name": "f", "language": "cobol", "source": ADD } })), 200, "UNSUPPORTED_LANGUAGE", "cobol"),
        case("oversized input", execute_with(json!({ "s": "x".repeat(200) })), 200, "PAYLOAD_TOO_LARGE", "the limit is 100 bytes"),
        case("array input", execute_with(json!([1, 2, 3])), 200, BAD, "must be a JSON object"),
        case("string input", execute_with(json!("{}")), 200, BAD, "must be a JSON object"),
        case("number input", execute_with(json!(3.5)), 200, BAD, "must be a JSON object"),
        case("boolean input", execute_with(json!(true)), 200, BAD, "must be a JSON object"),
        case("deeply nested array input", execute_with(serde_json::from_str(&nested("[", "]", "", 100)).unwrap()), 200, BAD, "must be a JSON object"),
        case("execute an unknown function", op(execute, json!({ "id": unknown })), 200, "NOT_FOUND", "no function with id"),
        case("execute a function still compiling", op(execute, json!({ "id": pending })), 200, "FUNCTION_NOT_READY", "PENDING"),
    ];
    assert!(cases.len() >= 40);

    let http = reqwest::Client::builder()
        // Every request has a hang guard.
        .timeout(Duration::from_secs(60))
        // A refused upload closes its connection; never reuse one.
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = format!("{}/graphql", app.server.base_url);
    let mut failures = Vec::new();
    for case in cases {
        let request = match case.send {
            Send::Json(value) => http.post(&url).json(&value),
            Send::Raw(content_type, body) => {
                let request = http.post(&url).body(body);
                match content_type {
                    Some(content_type) => request.header("content-type", content_type),
                    None => request,
                }
            }
            Send::Get(query) => http.get(format!("{url}?{query}")),
            Send::Method(method) => http.request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                &url,
            ),
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                failures.push(format!("{}: no answer: {error}", case.name));
                continue;
            }
        };
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let (code, message) = match serde_json::from_str::<Value>(&text) {
            Ok(body) => (
                body["errors"][0]["extensions"]["code"]
                    .as_str()
                    .map(str::to_string),
                body["errors"][0]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ),
            Err(_) => (None, text.clone()),
        };
        let problems = [
            (status != case.status).then(|| format!("status {status}, expected {}", case.status)),
            (code.as_deref() != case.code)
                .then(|| format!("code {code:?}, expected {:?}", case.code)),
            message
                .trim()
                .is_empty()
                .then(|| "empty message".to_string()),
            (!message
                .to_lowercase()
                .contains(&case.message.to_lowercase()))
            .then(|| format!("message should mention {:?}", case.message)),
            // Even for a megabyte query, the message stays readable.
            (message.len() > 4000).then(|| format!("message is {} bytes long", message.len())),
        ];
        let problems: Vec<String> = problems.into_iter().flatten().collect();
        if !problems.is_empty() {
            let shown: String = text.chars().take(300).collect();
            failures.push(format!(
                "{}: {} — got {shown}",
                case.name,
                problems.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Still alive and well, and nothing was recorded by the rejected requests.
    let health = http
        .get(format!("{}/health", app.server.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = http
        .get(format!("{}/ready", app.server.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let state = client
        .data(
            "{ languages functions { totalCount } executions { totalCount } }",
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(
        state,
        json!({ "languages": ["assemblyscript"], "functions": { "totalCount": 1 }, "executions": { "totalCount": 0 } })
    );
    // The accepted forms still work: a batch within the limit, a bare
    // application/graphql body, and a query over GET.
    let batch: Value = http
        .post(&url)
        .json(&vec![json!({ "query": "{ languages }" }); 10])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(batch.as_array().unwrap().len(), 10);
    assert_eq!(batch[9]["data"]["languages"][0], "assemblyscript");
    let bare: Value = http
        .post(&url)
        .header("content-type", "application/graphql")
        .body("{ languages }")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bare["data"]["languages"][0], "assemblyscript");
    let get: Value = http
        .get(format!(
            "{url}?{}",
            query_string(&[("query", "{ languages }")])
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(get["data"]["languages"][0], "assemblyscript");
}

/// PostgreSQL cannot store U+0000 in text or jsonb: a NUL the client sends is
/// its mistake (BAD_USER_INPUT, 400), never reported as an outage, and one
/// the function produces ends its execution FAILED with a message to act on.
#[tokio::test]
async fn a_nul_character_is_a_clear_error_wherever_it_comes_from() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let echo = client
        .ready_function("echo", tests::fixtures::ECHO)
        .await
        .unwrap();
    let execute = "mutation($id: UUID!, $input: JSON) { executeFunction(id: $id, input: $input) { status output errorMessage logs } }";
    for input in [
        json!({ "text": "a\u{0}b" }),
        json!({ "k\u{0}": 1 }),
        json!({ "deep": [{ "x": "\u{0}" }] }),
    ] {
        let error = client
            .error(execute, json!({ "id": echo, "input": input }))
            .await
            .unwrap();
        assert_eq!(error.code, "BAD_USER_INPUT", "{}", error.message);
        assert!(error.message.contains("U+0000"), "{}", error.message);
    }
    // The text "\u0000" (a backslash and five characters) is fine.
    let escaped = client
        .data(
            execute,
            json!({ "id": echo, "input": { "text": "\\u0000" } }),
        )
        .await
        .unwrap();
    assert_eq!(
        escaped["executeFunction"]["output"],
        json!({ "text": "\\u0000" })
    );

    let rest = client
        .http()
        .post(format!("{}/functions/{echo}/execute", client.base_url))
        .header("content-type", "application/json")
        .body(r#"{"input": {"text": "\u0000"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 400);
    let body: Value = rest.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("U+0000"),
        "{body}"
    );

    let described = client
        .error(
            "mutation($id: UUID!) { updateFunction(id: $id, input: { description: \"a\\u0000b\" }) { id } }",
            json!({ "id": echo }),
        )
        .await
        .unwrap();
    assert_eq!(described.code, "BAD_USER_INPUT", "{}", described.message);

    let nul_out = client
        .ready_function(
            "nul-out",
            "export function handle(input: string): string {\n  console.log('before\\0after');\n  return '{\"a\":\"\\\\u0000\"}';\n}\n",
        )
        .await
        .unwrap();
    let failed = client
        .data(execute, json!({ "id": nul_out, "input": {} }))
        .await
        .unwrap()["executeFunction"]
        .clone();
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert!(
        failed["errorMessage"].as_str().unwrap().contains("U+0000"),
        "{failed}"
    );
    assert_eq!(failed["logs"], json!(["before\u{2400}after"]), "{failed}");
}

/// HTTP/2 lets a body come without a Content-Length (the server speaks it
/// in the clear to a client that starts with its preface). Such a body is
/// read up to the limit (4 MiB by default) like a chunked one, not taken
/// whole.
#[tokio::test]
async fn an_http2_body_without_a_length_is_held_to_the_limit() {
    let app = TestApp::start_without_worker().await.unwrap();
    let http = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let unsized_body = |bytes: Vec<u8>| {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
        reqwest::Body::wrap_stream(futures::stream::iter(chunks))
    };
    let small = serde_json::to_vec(&json!({ "query": "{ languages }" })).unwrap();
    let big = serde_json::to_vec(
        &json!({ "query": "{ languages }", "variables": { "pad": "x".repeat(5_000_000) } }),
    )
    .unwrap();
    for (path, body, status) in [
        ("/graphql", small.clone(), 200),
        ("/graphql", big.clone(), 413),
        ("/functions", big, 413),
    ] {
        let response = http
            .post(format!("{}{path}", app.server.base_url))
            .header("content-type", "application/json")
            .body(unsized_body(body))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: no answer: {e}"));
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_eq!(response.status(), status, "{path}");
        let text = response.text().await.unwrap();
        match status {
            200 => assert!(text.contains("assemblyscript"), "{text}"),
            _ => assert!(text.contains("larger than the limit"), "{text}"),
        }
    }
}

/// A client still sending an over-limit body sees the 413, not a reset: the
/// server reads and discards the rest (within bounds) before answering.
#[tokio::test]
async fn an_over_limit_body_is_answered_413_not_reset() {
    let app = TestApp::start_without_worker().await.unwrap();
    let http = reqwest::Client::new();
    let body = vec![b'x'; 20 * 1024 * 1024];
    for (path, content_type) in [
        ("/graphql", "application/json"),
        ("/functions", "application/json"),
    ] {
        for attempt in 0..5 {
            let response = http
                .post(format!("{}{path}", app.server.base_url))
                .header("content-type", content_type)
                .body(body.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("{path} attempt {attempt}: no answer: {e}"));
            assert_eq!(response.status(), 413, "{path} attempt {attempt}");
            let text = response.text().await.unwrap();
            assert!(text.contains("limit"), "{text}");
        }
    }
}
