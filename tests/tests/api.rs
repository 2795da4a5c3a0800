//! The GraphQL query and mutation surface through real HTTP against the real
//! binary and database. These servers run without a compiler worker, so
//! functions stay PENDING unless a test moves them on in the database.

use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use serde_json::{Value, json};
use tests::fixtures::ADD;
use tests::{ServerOptions, TestApp, exec};

async fn app() -> TestApp {
    TestApp::start_without_worker().await.unwrap()
}

async fn app_with(options: ServerOptions) -> TestApp {
    TestApp::start_with(options.arg("--no-worker"))
        .await
        .unwrap()
}

async fn db(app: &TestApp) -> DatabaseConnection {
    app.db.connect().await.unwrap()
}

const LIST: &str =
    "query($first: Int, $after: String, $status: FunctionStatus, $nameContains: String) {
  functions(first: $first, after: $after, status: $status, nameContains: $nameContains) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id name } }
    nodes { id name status }
  }
}";

fn names(connection: &Value) -> Vec<String> {
    connection["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn create_get_update_delete() {
    let app = app().await;
    let client = app.client();
    let created = client
        .data(
            "mutation($input: CreateFunctionInput!) { createFunction(input: $input) { id name description language source status compileError wasmSize wasmBinary revision createdAt updatedAt } }",
            json!({ "input": { "name": "  add  ", "description": "adds", "language": "assemblyscript", "source": ADD } }),
        )
        .await
        .unwrap()["createFunction"]
        .clone();
    assert_eq!(created["name"], "add", "names are trimmed");
    assert_eq!(created["description"], "adds");
    assert_eq!(created["status"], "PENDING");
    assert_eq!(created["revision"], 1);
    assert_eq!(created["wasmSize"], Value::Null);
    assert_eq!(created["wasmBinary"], Value::Null);
    assert!(created["createdAt"].as_str().unwrap().contains('T'));
    let id = created["id"].as_str().unwrap().to_string();

    let fetched = client.function(&id).await.unwrap();
    assert_eq!(fetched["source"], ADD);

    // The job went to pgmq in the same transaction.
    let db = db(&app).await;
    let jobs = db
        .query_one(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT message FROM pgmq.q_compilation_jobs",
        ))
        .await
        .unwrap()
        .unwrap();
    let job: Value = jobs.try_get_by_index(0).unwrap();
    assert_eq!(job["functionId"], id.as_str());
    assert_eq!(job["language"], "assemblyscript");
    assert_eq!(job["source"], ADD);
    assert_eq!(job["revision"], 1);

    let deleted = client
        .data(
            "mutation($id: UUID!) { deleteFunction(id: $id) }",
            json!({ "id": id }),
        )
        .await
        .unwrap();
    assert_eq!(deleted["deleteFunction"], id.as_str());
    assert_eq!(
        client
            .data(
                "query($id: UUID!) { function(id: $id) { id } }",
                json!({ "id": id })
            )
            .await
            .unwrap()["function"],
        Value::Null
    );
}

#[tokio::test]
async fn rename_keeps_the_module_and_a_new_source_recompiles() {
    let app = app().await;
    let client = app.client();
    let id = client.create_function("f", ADD).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let db = db(&app).await;
    // Pretend it compiled, as the result consumer would record it.
    let pretend = db.begin().await.unwrap();
    let outcome = server::functions::CompileOutcome::Ready(b"\0asm".to_vec());
    server::functions::record_outcome(&pretend, id.parse().unwrap(), Some(1), &outcome)
        .await
        .unwrap();
    pretend.commit().await.unwrap();

    let update = "mutation($id: UUID!, $input: UpdateFunctionInput!) { updateFunction(id: $id, input: $input) { name description status revision wasmSize compileError } }";
    let renamed = client
        .data(
            update,
            json!({ "id": id, "input": { "name": "g", "description": "d" } }),
        )
        .await
        .unwrap()["updateFunction"]
        .clone();
    assert_eq!(
        renamed,
        json!({ "name": "g", "description": "d", "status": "READY", "revision": 1, "wasmSize": 4, "compileError": null })
    );
    let same_source = client
        .data(update, json!({ "id": id, "input": { "source": ADD } }))
        .await
        .unwrap()["updateFunction"]
        .clone();
    assert_eq!(
        same_source["revision"], 1,
        "an unchanged source does not recompile"
    );
    let cleared = client
        .data(
            update,
            json!({ "id": id, "input": { "description": null } }),
        )
        .await
        .unwrap()["updateFunction"]
        .clone();
    assert_eq!(cleared["description"], Value::Null);

    let recompiled = client
        .data(
            update,
            json!({ "id": id, "input": { "source": format!("{ADD}\n// v2\n") } }),
        )
        .await
        .unwrap()["updateFunction"]
        .clone();
    assert_eq!(recompiled["status"], "PENDING");
    assert_eq!(recompiled["revision"], 2);
    assert_eq!(recompiled["wasmSize"], Value::Null);
    let row = db
        .query_one(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT count(*), max((message->>'revision')::int) FROM pgmq.q_compilation_jobs",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), 2);
    assert_eq!(row.try_get_by_index::<i32>(1).unwrap(), 2);
}

#[tokio::test]
async fn a_failing_enqueue_leaves_no_function() {
    let app = app().await;
    let db = db(&app).await;
    exec(&db, "SELECT pgmq.drop_queue('compilation_jobs')").await;
    let error = app
        .client()
        .error(
            "mutation($input: CreateFunctionInput!) { createFunction(input: $input) { id } }",
            json!({ "input": { "name": "f", "language": "assemblyscript", "source": ADD } }),
        )
        .await
        .unwrap();
    assert_eq!(error.code, "INTERNAL_SERVER_ERROR");
    assert!(
        !error.message.contains("pgmq"),
        "no internals leak: {}",
        error.message
    );
    let row = db
        .query_one(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT count(*) FROM functions",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), 0);
}

#[tokio::test]
async fn pages_are_stable_under_concurrent_inserts() {
    let app = app().await;
    let client = app.client();
    for i in 0..7 {
        client.create_function(&format!("f{i}"), ADD).await.unwrap();
    }
    let first = client.data(LIST, json!({ "first": 3 })).await.unwrap()["functions"].clone();
    assert_eq!(names(&first), ["f6", "f5", "f4"]);
    assert_eq!(first["totalCount"], 7);
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    assert_eq!(first["pageInfo"]["hasPreviousPage"], false);
    assert_eq!(first["pageInfo"]["endCursor"], first["edges"][2]["cursor"]);

    // New functions arrive between pages: they do not shift the next page.
    client.create_function("new1", ADD).await.unwrap();
    client.create_function("new2", ADD).await.unwrap();
    let second = client
        .data(
            LIST,
            json!({ "first": 3, "after": first["pageInfo"]["endCursor"] }),
        )
        .await
        .unwrap()["functions"]
        .clone();
    assert_eq!(names(&second), ["f3", "f2", "f1"]);
    assert_eq!(second["totalCount"], 9);
    assert_eq!(second["pageInfo"]["hasPreviousPage"], true);
    assert_eq!(second["pageInfo"]["hasNextPage"], true);

    let third = client
        .data(
            LIST,
            json!({ "first": 3, "after": second["pageInfo"]["endCursor"] }),
        )
        .await
        .unwrap()["functions"]
        .clone();
    assert_eq!(names(&third), ["f0"]);
    assert_eq!(third["pageInfo"]["hasNextPage"], false);

    let all = client.data(LIST, json!({ "first": 100 })).await.unwrap()["functions"].clone();
    assert_eq!(names(&all)[..2], ["new2", "new1"]);
}

#[tokio::test]
async fn the_total_counts_every_match_on_any_page() {
    let app = app().await;
    let client = app.client();
    let empty = client.data(LIST, json!({})).await.unwrap()["functions"].clone();
    assert_eq!(empty["totalCount"], 0);
    assert_eq!(names(&empty), Vec::<String>::new());
    for i in 0..3 {
        client.create_function(&format!("f{i}"), ADD).await.unwrap();
    }
    let all = client.data(LIST, json!({ "first": 3 })).await.unwrap()["functions"].clone();
    assert_eq!(all["totalCount"], 3);
    // Past the end of the list: no row carries the count, which is still 3.
    let past_the_end = client
        .data(
            LIST,
            json!({ "first": 3, "after": all["pageInfo"]["endCursor"] }),
        )
        .await
        .unwrap()["functions"]
        .clone();
    assert_eq!(names(&past_the_end), Vec::<String>::new());
    assert_eq!(past_the_end["totalCount"], 3);
    assert_eq!(past_the_end["pageInfo"]["hasNextPage"], false);
}

#[tokio::test]
async fn lists_read_the_large_columns_their_nodes_select() {
    let app = app().await;
    let client = app.client();
    let id = client
        .data(
            "mutation($input: CreateFunctionInput!) { createFunction(input: $input) { id } }",
            json!({ "input": { "name": "add", "description": "adds", "language": "assemblyscript", "source": ADD } }),
        )
        .await
        .unwrap()["createFunction"]["id"]
        .clone();
    exec(
        &db(&app).await,
        "UPDATE functions SET status = 'FAILED', compile_error = 'ERROR TS2304'",
    )
    .await;
    let expected = json!({ "source": ADD, "description": "adds", "compileError": "ERROR TS2304" });
    // Directly, through a named fragment, an inline fragment and an alias,
    // in `nodes` and in `edges { node }`: each must read the columns.
    for query in [
        "{ functions { nodes { source description compileError } } }",
        "fragment F on Function { source description compileError }
         { functions { nodes { ...F } } }",
        "{ functions { edges { node { ... on Function { source description compileError } } } } }",
        "{ functions { nodes { source: source description compileError } } }",
    ] {
        let data = client.data(query, json!({})).await.unwrap();
        let page = &data["functions"];
        let node = if page["nodes"].is_null() {
            &page["edges"][0]["node"]
        } else {
            &page["nodes"][0]
        };
        assert_eq!(node, &expected, "{query}");
    }
    // A node that selects none of them still resolves its other fields.
    let lean = client
        .data("{ functions { nodes { id name status } } }", json!({}))
        .await
        .unwrap();
    assert_eq!(
        lean["functions"]["nodes"][0],
        json!({ "id": id, "name": "add", "status": "FAILED" })
    );
}

#[tokio::test]
async fn filters_by_status_and_name() {
    let app = app().await;
    let client = app.client();
    for name in ["Resize Image", "resize-video", "thumbnail", "100%_done"] {
        client.create_function(name, ADD).await.unwrap();
    }
    let db = db(&app).await;
    exec(
        &db,
        "UPDATE functions SET status = 'FAILED', compile_error = 'x' WHERE name = 'thumbnail'",
    )
    .await;

    let resize = client
        .data(LIST, json!({ "nameContains": "RESIZE" }))
        .await
        .unwrap()["functions"]
        .clone();
    assert_eq!(names(&resize), ["resize-video", "Resize Image"]);
    assert_eq!(resize["totalCount"], 2);
    let wildcard = client
        .data(LIST, json!({ "nameContains": "%_" }))
        .await
        .unwrap()["functions"]
        .clone();
    assert_eq!(
        names(&wildcard),
        ["100%_done"],
        "LIKE wildcards are literal"
    );
    let failed = client
        .data(LIST, json!({ "status": "FAILED" }))
        .await
        .unwrap()["functions"]
        .clone();
    assert_eq!(names(&failed), ["thumbnail"]);
    let pending_resize = client
        .data(
            LIST,
            json!({ "status": "PENDING", "nameContains": "image" }),
        )
        .await
        .unwrap()["functions"]
        .clone();
    assert_eq!(names(&pending_resize), ["Resize Image"]);
}

#[tokio::test]
async fn executions_are_listed_filtered_and_joined_without_n_plus_one() {
    let app = app().await;
    let client = app.client();
    let a = client.create_function("a", ADD).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = client.create_function("b", ADD).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let db = db(&app).await;
    for (function, status, error, kind) in [
        (&a, "COMPLETED", "NULL", "NULL"),
        (&a, "FAILED", "'boom'", "'ABORT'"),
        (&a, "COMPLETED", "NULL", "NULL"),
        (&b, "RUNNING", "NULL", "NULL"),
    ] {
        let insert = format!(
            "INSERT INTO executions (function_id, revision, status, error_message, error_kind, input) VALUES ('{function}', 1, '{status}', {error}, {kind}, '{{\"x\": 1}}')"
        );
        exec(&db, &insert).await;
    }
    let all = client
        .data(
            "{ executions(first: 10) { totalCount nodes { status input function { name } } } }",
            json!({}),
        )
        .await
        .unwrap()["executions"]
        .clone();
    assert_eq!(all["totalCount"], 4);
    assert_eq!(all["nodes"][0]["function"]["name"], "b");
    assert_eq!(all["nodes"][0]["input"], json!({ "x": 1 }));

    let failed_of_a = client
        .data("query($f: UUID) { executions(functionId: $f, status: FAILED) { totalCount nodes { errorMessage } } }", json!({ "f": a }))
        .await
        .unwrap()["executions"]
        .clone();
    assert_eq!(failed_of_a["totalCount"], 1);
    assert_eq!(failed_of_a["nodes"][0]["errorMessage"], "boom");

    let nested = client
        .data("{ functions { nodes { name executions(first: 2) { totalCount pageInfo { hasNextPage } nodes { status } } } } }", json!({}))
        .await
        .unwrap()["functions"]["nodes"]
        .clone();
    assert_eq!(nested[0]["name"], "b");
    assert_eq!(nested[0]["executions"]["totalCount"], 1);
    assert_eq!(nested[1]["executions"]["totalCount"], 3);
    assert_eq!(nested[1]["executions"]["pageInfo"]["hasNextPage"], true);
    let completed = client
        .data("query($id: UUID!) { function(id: $id) { executions(status: COMPLETED) { totalCount } } }", json!({ "id": a }))
        .await
        .unwrap();
    assert_eq!(completed["function"]["executions"]["totalCount"], 2);

    // Cascade, seen through the API.
    client
        .data(
            "mutation($id: UUID!) { deleteFunction(id: $id) }",
            json!({ "id": a }),
        )
        .await
        .unwrap();
    let left = client
        .data(
            "query($f: UUID) { executions(functionId: $f) { totalCount } }",
            json!({ "f": a }),
        )
        .await
        .unwrap();
    assert_eq!(left["executions"]["totalCount"], 0);
}

#[tokio::test]
async fn languages_and_queue_stats() {
    let app = app().await;
    let client = app.client();
    client.create_function("f", ADD).await.unwrap();
    let data = client
        .data(
            "{ languages queueStats { queueName length oldestMessageAgeSeconds totalMessages } }",
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(data["languages"], json!(["assemblyscript"]));
    let jobs = &data["queueStats"][0];
    assert_eq!(jobs["queueName"], "compilation_jobs");
    assert_eq!(jobs["length"], 1);
    assert_eq!(jobs["totalMessages"], 1);
    assert!(jobs["oldestMessageAgeSeconds"].as_i64().is_some());
    let results = &data["queueStats"][1];
    assert_eq!(results["queueName"], "compilation_results");
    assert_eq!(results["length"], 0);
    assert_eq!(results["oldestMessageAgeSeconds"], Value::Null);
    assert_eq!(data["queueStats"][2]["queueName"], "execution_jobs");
    assert_eq!(data["queueStats"].as_array().unwrap().len(), 3);
}

/// Every validation error of the API, with its code.
#[tokio::test]
async fn bad_input_is_rejected_with_the_right_code() {
    let app = app_with(
        ServerOptions::default()
            .env("PROJECTNIL_MAX_SOURCE_BYTES", 1000)
            .env("PROJECTNIL_MAX_INPUT_BYTES", 100),
    )
    .await;
    let client = app.client();
    let pending = client.create_function("pending", ADD).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let unknown = uuid::Uuid::new_v4().to_string();
    let create = "mutation($input: CreateFunctionInput!) { createFunction(input: $input) { id } }";
    let update = "mutation($id: UUID!, $input: UpdateFunctionInput!) { updateFunction(id: $id, input: $input) { id } }";
    let execute =
        "mutation($id: UUID!, $input: JSON) { executeFunction(id: $id, input: $input) { id } }";
    let start =
        "mutation($id: UUID!, $input: JSON) { startExecution(id: $id, input: $input) { id } }";
    let function_input = |name: &str, language: &str, source: &str| json!({ "input": { "name": name, "language": language, "source": source } });

    let cases: Vec<(&str, &str, Value, &str, &str)> = vec![
        (
            "empty name",
            create,
            function_input("  ", "assemblyscript", ADD),
            "BAD_USER_INPUT",
            "name must not be empty",
        ),
        (
            "long name",
            create,
            function_input(&"n".repeat(256), "assemblyscript", ADD),
            "BAD_USER_INPUT",
            "the limit is 255",
        ),
        (
            "empty source",
            create,
            function_input("f", "assemblyscript", " "),
            "BAD_USER_INPUT",
            "source must not be empty",
        ),
        (
            "big source",
            create,
            function_input("f", "assemblyscript", &"x".repeat(1001)),
            "PAYLOAD_TOO_LARGE",
            "the limit is 1000 bytes",
        ),
        (
            "language",
            create,
            function_input("f", "rust", ADD),
            "UNSUPPORTED_LANGUAGE",
            "supported: assemblyscript",
        ),
        (
            "missing field",
            create,
            json!({ "input": { "name": "f", "language": "assemblyscript" } }),
            "BAD_USER_INPUT",
            "source",
        ),
        (
            "update unknown",
            update,
            json!({ "id": unknown, "input": { "name": "x" } }),
            "NOT_FOUND",
            "no function with id",
        ),
        (
            "update empty name",
            update,
            json!({ "id": pending, "input": { "name": "" } }),
            "BAD_USER_INPUT",
            "name must not be empty",
        ),
        (
            "update language",
            update,
            json!({ "id": pending, "input": { "language": "go" } }),
            "UNSUPPORTED_LANGUAGE",
            "\"go\"",
        ),
        (
            "update big source",
            update,
            json!({ "id": pending, "input": { "source": "y".repeat(2000) } }),
            "PAYLOAD_TOO_LARGE",
            "2000 bytes",
        ),
        (
            "malformed uuid",
            update,
            json!({ "id": "not-a-uuid", "input": {} }),
            "BAD_USER_INPUT",
            "UUID",
        ),
        (
            "delete unknown",
            "mutation($id: UUID!) { deleteFunction(id: $id) }",
            json!({ "id": unknown }),
            "NOT_FOUND",
            "no function with id",
        ),
        (
            "execute unknown",
            execute,
            json!({ "id": unknown }),
            "NOT_FOUND",
            "no function with id",
        ),
        (
            "start unknown",
            start,
            json!({ "id": unknown }),
            "NOT_FOUND",
            "no function with id",
        ),
        (
            "execute pending",
            execute,
            json!({ "id": pending }),
            "FUNCTION_NOT_READY",
            "PENDING",
        ),
        (
            "start pending",
            start,
            json!({ "id": pending }),
            "FUNCTION_NOT_READY",
            "PENDING",
        ),
        (
            "array input",
            execute,
            json!({ "id": pending, "input": [1, 2] }),
            "BAD_USER_INPUT",
            "must be a JSON object",
        ),
        (
            "string input",
            start,
            json!({ "id": pending, "input": "{}" }),
            "BAD_USER_INPUT",
            "must be a JSON object",
        ),
        (
            "number input",
            execute,
            json!({ "id": pending, "input": 5 }),
            "BAD_USER_INPUT",
            "must be a JSON object",
        ),
        (
            "big input",
            execute,
            json!({ "id": pending, "input": { "s": "x".repeat(200) } }),
            "PAYLOAD_TOO_LARGE",
            "the limit is 100 bytes",
        ),
        (
            "first 0",
            LIST,
            json!({ "first": 0 }),
            "BAD_USER_INPUT",
            "between 1 and 100",
        ),
        (
            "first 101",
            LIST,
            json!({ "first": 101 }),
            "BAD_USER_INPUT",
            "between 1 and 100",
        ),
        (
            "forged cursor",
            LIST,
            json!({ "after": "bm90LWEtY3Vyc29y" }),
            "BAD_USER_INPUT",
            "not a cursor",
        ),
        (
            "garbage cursor",
            "query($a: String) { executions(after: $a) { totalCount } }",
            json!({ "a": "%%%" }),
            "BAD_USER_INPUT",
            "not a cursor",
        ),
        (
            "unknown status",
            LIST,
            json!({ "status": "DONE" }),
            "BAD_USER_INPUT",
            "FunctionStatus",
        ),
        (
            "unknown field",
            "{ functions { nodes { nope } } }",
            json!({}),
            "BAD_USER_INPUT",
            "nope",
        ),
        ("syntax", "{ functions { ", json!({}), "BAD_USER_INPUT", ""),
    ];
    for (name, query, variables, code, message) in cases {
        let error = client.error(query, variables).await.unwrap();
        assert_eq!(error.code, code, "{name}: {error:?}");
        assert!(
            error.message.contains(message),
            "{name}: {:?} should mention {message:?}",
            error.message
        );
    }

    // Unknown ids in queries are null, not errors.
    let nulls = client
        .data(
            "query($id: UUID!) { function(id: $id) { id } execution(id: $id) { id } }",
            json!({ "id": unknown }),
        )
        .await
        .unwrap();
    assert_eq!(nulls, json!({ "function": null, "execution": null }));
    // Nothing was recorded by the rejected executions.
    let count = client
        .data("{ executions { totalCount } }", json!({}))
        .await
        .unwrap();
    assert_eq!(count["executions"]["totalCount"], 0);
}

#[tokio::test]
async fn query_depth_and_body_size_are_limited() {
    let app = app_with(ServerOptions::default().env("PROJECTNIL_MAX_BODY_BYTES", 100_000)).await;
    let client = app.client();
    let mut deep = String::from("id");
    for _ in 0..12 {
        deep = format!("function {{ executions {{ nodes {{ {deep} }} }} }}");
    }
    let error = client
        .error(
            &format!("{{ executions {{ nodes {{ {deep} }} }} }}"),
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(error.code, "BAD_USER_INPUT");
    assert!(error.message.to_lowercase().contains("depth"), "{error:?}");

    let big = client
        .http()
        .post(format!("{}/graphql", client.base_url))
        .json(&json!({ "query": "{ languages }", "variables": { "pad": "x".repeat(200_000) } }))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
}

#[tokio::test]
async fn graphql_over_get_and_health_endpoints() {
    let app = app().await;
    let response: Value = reqwest::get(format!(
        "{}/graphql?query=%7B%20languages%20%7D",
        app.server.base_url
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        response,
        json!({ "data": { "languages": ["assemblyscript"] } })
    );
    let ready = reqwest::get(format!("{}/ready", app.server.base_url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

/// `FunctionRecord` is read by position, in the order its select writes the
/// columns: every column must come back as the table holds it (read here by
/// name, through the entity), from a lookup and from a page alike.
#[tokio::test]
async fn function_records_read_every_column_as_stored() {
    use sea_orm::EntityTrait;
    use server::functions::{
        self, CompileOutcome, FunctionFilter, FunctionRecord, OptionalColumns,
    };
    use server::pagination::PageRequest;

    let app = app().await;
    let client = app.client();
    let db = db(&app).await;
    let mut ids = Vec::new();
    for (name, outcome) in [
        ("ready", CompileOutcome::Ready(b"\0asm\x01\0\0\0".to_vec())),
        ("failed", CompileOutcome::Failed("line 1: oops".into())),
    ] {
        let id: uuid::Uuid = client.create_function(name, ADD).await.unwrap()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let txn = db.begin().await.unwrap();
        functions::record_outcome(&txn, id, Some(1), &outcome)
            .await
            .unwrap();
        txn.commit().await.unwrap();
        ids.push(id);
    }
    // Created and updated at different times, so a swap of the two shows.
    client
        .data(
            "mutation($id: UUID!) { updateFunction(id: $id, input: { description: \"d\" }) { id } }",
            json!({ "id": ids[0] }),
        )
        .await
        .unwrap();

    let page = functions::list(
        &db,
        &FunctionFilter::default(),
        &PageRequest::new(10, None).unwrap(),
        true,
        OptionalColumns::ALL,
    )
    .await
    .unwrap();
    assert_eq!(page.total_count, 2);
    for (i, id) in ids.into_iter().enumerate() {
        let stored = entity::function::Entity::find_by_id(id)
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        let wasm_size = db
            .query_one(sea_orm::Statement::from_sql_and_values(
                db.get_database_backend(),
                "SELECT wasm_size FROM function_versions WHERE function_id = $1 AND revision = $2",
                [id.into(), stored.revision.into()],
            ))
            .await
            .unwrap()
            .and_then(|row| row.try_get::<Option<i32>>("", "wasm_size").unwrap());
        let expected = FunctionRecord {
            id,
            name: stored.name,
            description: stored.description,
            language: stored.language,
            source: stored.source,
            status: stored.status,
            compile_error: stored.compile_error,
            revision: stored.revision,
            deployed_revision: stored.deployed_revision,
            wasm_size,
            created_at: stored.created_at,
            updated_at: stored.updated_at,
        };
        if i == 0 {
            assert_ne!(expected.created_at, expected.updated_at);
        }
        let got = functions::get(&db, id).await.unwrap().unwrap();
        assert_eq!(got, expected);
        let listed = page.items.iter().find(|r| r.id == id).unwrap();
        assert_eq!(listed, &expected);
    }
}

/// A row whose columns are not a function record's (the revision as text,
/// or too few) is refused with what differs, not decoded.
#[tokio::test]
async fn a_row_of_other_column_types_is_not_read_as_a_function_record() {
    use sea_orm::{FromQueryResult, Statement};
    use server::functions::FunctionRecord;

    let app = app().await;
    let db = db(&app).await;
    let row = |revision: &str| {
        Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT gen_random_uuid() AS id, 'f' AS name, 'assemblyscript' AS language, \
                 'READY' AS status, {revision} AS revision, NULL::bigint AS deployed_revision, \
                 now() AS created_at, now() AS updated_at, '' AS source, \
                 NULL::text AS description, NULL::text AS compile_error, NULL::integer AS wasm_size"
            ),
        )
    };
    let read = FunctionRecord::find_by_statement(row("1::bigint"))
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.revision, 1);
    let error = FunctionRecord::find_by_statement(row("'1'::text"))
        .one(&db)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("column revision of a function record is TEXT, expected INT8"),
        "{error}"
    );
    let short = Statement::from_string(db.get_database_backend(), "SELECT gen_random_uuid() AS id");
    let error = FunctionRecord::find_by_statement(short)
        .one(&db)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("a function record has 12 columns, this row only 1"),
        "{error}"
    );
}
