//! The compilation pipeline end to end: real pgmq queues, the real AssemblyScript
//! compiler in its long-lived Node process, real worker processes.

use std::time::Duration;

use serde_json::{Value, json};
use tests::fixtures::{ADD, ECHO};
use tests::readme::{Expected, examples};
use tests::{ServerOptions, TestApp, TestDb, TestServer, TestWorker, eventually, exec, scalar};

const COMPILE_WAIT: Duration = Duration::from_secs(120);

/// A `projectnil worker` on `db_url` with `env` set, once it is ready.
async fn worker(db_url: &str, env: &[(&str, &str)]) -> TestWorker {
    let options = env
        .iter()
        .fold(ServerOptions::default(), |options, (key, value)| {
            options.env(key, value)
        });
    TestWorker::start(db_url, options).await.unwrap()
}

fn id_of(function: &Value) -> String {
    function["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn valid_source_becomes_ready_and_runs() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let id = id_of(&client.create_function("add", ADD).await.unwrap());
    let function = client.wait_compiled(&id, COMPILE_WAIT).await.unwrap();
    assert_eq!(function["status"], "READY", "{function}");
    assert_eq!(function["compileError"], Value::Null);
    assert!(function["wasmSize"].as_i64().unwrap() > 100);
    let wasm = client
        .data(
            "query($id: UUID!) { function(id: $id) { wasmBinary } }",
            json!({ "id": id }),
        )
        .await
        .unwrap();
    assert!(
        wasm["function"]["wasmBinary"]
            .as_str()
            .unwrap()
            .starts_with("AGFzbQ"),
        "base64 of \\0asm"
    );
    let execution = client
        .execute(&id, json!({ "a": 5, "b": 3 }))
        .await
        .unwrap();
    assert_eq!(execution["status"], "COMPLETED", "{execution}");
    assert_eq!(execution["output"], json!({ "sum": 8 }));
}

#[tokio::test]
async fn compile_errors_are_readable() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let syntax = id_of(
        &client
            .create_function(
                "syntax",
                "export function handle(input: string): string {\n  return input +;\n}\n",
            )
            .await
            .unwrap(),
    );
    let types = id_of(
        &client
            .create_function(
                "types",
                "export function handle(input: string): string { return 1 }\n",
            )
            .await
            .unwrap(),
    );
    let no_handle = id_of(
        &client
            .create_function(
                "no-handle",
                "export function run(input: string): string { return input }\n",
            )
            .await
            .unwrap(),
    );
    let bad_import = id_of(
        &client
            .create_function(
                "bad-import",
                "@external(\"env\", \"fetch\") declare function fetch(): i32;\nexport function handle(input: string): string { return fetch().toString() }\n",
            )
            .await
            .unwrap(),
    );

    let syntax = client.wait_compiled(&syntax, COMPILE_WAIT).await.unwrap();
    assert_eq!(syntax["status"], "FAILED");
    let message = syntax["compileError"].as_str().unwrap();
    assert!(message.contains("index.ts:2:"), "{message}");
    assert!(message.contains("ERROR"), "{message}");
    assert!(!message.contains('\u{1b}'), "no ANSI colours: {message:?}");
    assert!(
        !message.contains("/tmp") && !message.contains("node_modules"),
        "no host paths: {message}"
    );

    let types = client.wait_compiled(&types, COMPILE_WAIT).await.unwrap();
    assert_eq!(types["status"], "FAILED");
    assert!(
        types["compileError"]
            .as_str()
            .unwrap()
            .contains("index.ts:1:"),
        "{types}"
    );

    let no_handle = client
        .wait_compiled(&no_handle, COMPILE_WAIT)
        .await
        .unwrap();
    assert_eq!(no_handle["status"], "FAILED");
    assert!(
        no_handle["compileError"]
            .as_str()
            .unwrap()
            .contains("export function handle(input: string): string"),
        "{no_handle}"
    );

    let bad_import = client
        .wait_compiled(&bad_import, COMPILE_WAIT)
        .await
        .unwrap();
    assert_eq!(bad_import["status"], "FAILED");
    assert!(
        bad_import["compileError"]
            .as_str()
            .unwrap()
            .contains("env.fetch"),
        "{bad_import}"
    );
}

#[tokio::test]
async fn only_the_latest_revision_wins() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let version = |n: i32| {
        format!(
            "export function handle(input: string): string {{ return '{{\"version\":{n}}}'; }}\n"
        )
    };
    let id = id_of(&client.create_function("v", &version(1)).await.unwrap());
    let update = "mutation($id: UUID!, $source: String!) { updateFunction(id: $id, input: { source: $source }) { revision } }";
    client
        .data(update, json!({ "id": id, "source": version(2) }))
        .await
        .unwrap();
    let last = client
        .data(update, json!({ "id": id, "source": version(3) }))
        .await
        .unwrap();
    assert_eq!(last["updateFunction"]["revision"], 3);

    let function = client.wait_compiled(&id, COMPILE_WAIT).await.unwrap();
    assert_eq!(function["status"], "READY", "{function}");
    assert_eq!(function["revision"], 3);
    // Let any stale job or result drain, then check nothing overwrote revision 3.
    let db = app.db.connect().await.unwrap();
    eventually!("the queues drained", async {
        let left = scalar(&db, "SELECT count(*) FROM pgmq.q_compilation_jobs").await
            + scalar(&db, "SELECT count(*) FROM pgmq.q_compilation_results").await;
        (left == 0).then_some(())
    });
    let execution = client.execute(&id, json!({})).await.unwrap();
    assert_eq!(execution["output"], json!({ "version": 3 }), "{execution}");
    assert_eq!(client.function(&id).await.unwrap()["status"], "READY");
}

/// With `PROJECTNIL_COMPILE_BACKLOG` jobs waiting, a create or a recompiling
/// update is refused whole (no function, no revision, no job), over GraphQL
/// and REST alike; an update that does not recompile (a rename) still goes
/// through, and once a worker drains the queue, creates are taken again.
#[tokio::test]
async fn a_full_compile_backlog_refuses_and_records_nothing() {
    let app = TestApp::start_with(
        ServerOptions::default()
            .arg("--no-worker")
            .env("PROJECTNIL_COMPILE_BACKLOG", 2),
    )
    .await
    .unwrap();
    let client = app.client();
    let db = app.db.connect().await.unwrap();
    let first = id_of(&client.create_function("first", ADD).await.unwrap());
    client.create_function("second", ECHO).await.unwrap();

    let create = "mutation($input: CreateFunctionInput!) { createFunction(input: $input) { id } }";
    let refused = client
        .error(
            create,
            json!({ "input": { "name": "third", "language": "assemblyscript", "source": ADD } }),
        )
        .await
        .unwrap();
    assert_eq!(refused.code, "TOO_MANY_REQUESTS", "{refused:?}");
    assert!(
        refused
            .message
            .contains("2 compilations are already waiting")
            && refused.message.contains("PROJECTNIL_COMPILE_BACKLOG"),
        "{refused:?}"
    );
    let update = "mutation($id: UUID!, $input: UpdateFunctionInput!) { updateFunction(id: $id, input: $input) { name revision } }";
    let refused = client
        .error(update, json!({ "id": first, "input": { "source": ECHO } }))
        .await
        .unwrap();
    assert_eq!(refused.code, "TOO_MANY_REQUESTS", "{refused:?}");
    let rest = client
        .http()
        .post(format!("{}/functions", app.server.base_url))
        .json(&json!({ "name": "third", "language": "assemblyscript", "source": ADD }))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 429);
    let body: Value = rest.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("PROJECTNIL_COMPILE_BACKLOG"),
        "{body}"
    );
    // Nothing of the refused requests was recorded.
    assert_eq!(scalar(&db, "SELECT count(*) FROM functions").await, 2);
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM function_versions").await,
        2
    );
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM pgmq.q_compilation_jobs").await,
        2
    );
    let unchanged = client.function(&first).await.unwrap();
    assert_eq!(
        (unchanged["revision"].clone(), unchanged["source"].as_str()),
        (json!(1), Some(ADD))
    );
    // A rename sends no job, so it is not held back.
    let renamed = client
        .data(
            update,
            json!({ "id": first, "input": { "name": "renamed" } }),
        )
        .await
        .unwrap();
    assert_eq!(
        renamed["updateFunction"],
        json!({ "name": "renamed", "revision": 1 })
    );

    let _worker = worker(&app.db.url, &[]).await;
    eventually!("the backlog drained", async {
        (scalar(&db, "SELECT count(*) FROM pgmq.q_compilation_jobs").await == 0).then_some(())
    });
    let third = id_of(&client.create_function("third", ADD).await.unwrap());
    let compiled = client.wait_compiled(&third, COMPILE_WAIT).await.unwrap();
    assert_eq!(compiled["status"], "READY", "{compiled}");
}

#[tokio::test]
async fn results_are_applied_idempotently() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let id = client.ready_function("echo", ECHO).await.unwrap();
    let before = client.function(&id).await.unwrap();
    let db = app.db.connect().await.unwrap();
    // A duplicate delivery of the same revision's result, a stale failure, and
    // a result for a function that does not exist.
    for message in [
        json!({ "functionId": id, "revision": 1, "success": false, "wasmBinary": null, "error": "duplicate" }),
        json!({ "functionId": id, "revision": 0, "success": false, "wasmBinary": null, "error": "stale" }),
        json!({ "functionId": uuid::Uuid::new_v4(), "revision": 1, "success": false, "wasmBinary": null, "error": "gone" }),
        json!({ "not": "a result" }),
    ] {
        server::queue::send(&db, "compilation_results", &message)
            .await
            .unwrap();
    }
    eventually!("every result was consumed", async {
        (scalar(&db, "SELECT count(*) FROM pgmq.q_compilation_results").await == 0).then_some(())
    });
    let after = client.function(&id).await.unwrap();
    assert_eq!(after, before, "nothing changed");
    assert_eq!(
        client.execute(&id, json!({ "x": 1 })).await.unwrap()["output"],
        json!({ "x": 1 })
    );
}

#[tokio::test]
async fn identical_source_hits_the_content_cache() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let first = client.ready_function("first", ADD).await.unwrap();
    let second = client.ready_function("second", ADD).await.unwrap();
    let db = app.db.connect().await.unwrap();
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM compiled_modules").await,
        1,
        "compiled once"
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT (pgmq.metrics('compilation_results')).total_messages"
        )
        .await,
        1,
        "the hit is applied by the worker, without a trip through compilation_results"
    );
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM pgmq.a_compilation_jobs").await,
        2,
        "both jobs are archived"
    );
    for id in [first, second] {
        assert_eq!(
            client
                .execute(&id, json!({ "a": 1, "b": 2 }))
                .await
                .unwrap()["output"],
            json!({ "sum": 3 })
        );
    }
}

#[tokio::test]
async fn poison_jobs_fail_the_function_after_the_limit() {
    let app = TestApp::start_without_worker().await.unwrap();
    let client = app.client();
    let id = id_of(&client.create_function("poison", ECHO).await.unwrap());
    let db = app.db.connect().await.unwrap();
    // As if five workers had died on this job already.
    exec(&db, "UPDATE pgmq.q_compilation_jobs SET read_ct = 5").await;
    let _worker = worker(&app.db.url, &[]).await;
    let function = client.wait_compiled(&id, COMPILE_WAIT).await.unwrap();
    assert_eq!(function["status"], "FAILED");
    assert!(
        function["compileError"]
            .as_str()
            .unwrap()
            .contains("given up after 5 attempts"),
        "{function}"
    );
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM pgmq.q_compilation_jobs").await,
        0
    );
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM pgmq.a_compilation_jobs").await,
        1,
        "archived"
    );
}

#[tokio::test]
async fn several_workers_compile_each_job_once() {
    let db = TestDb::not_yet_created();
    let server = TestServer::start(&db.url, ServerOptions::default().arg("--no-worker"))
        .await
        .unwrap();
    let client = server.client();
    let _workers = [worker(&db.url, &[]).await, worker(&db.url, &[]).await];
    let mut ids = Vec::new();
    for i in 0..6 {
        let source = format!(
            "export function handle(input: string): string {{ return '{{\"n\":{i}}}'; }}\n"
        );
        ids.push(id_of(
            &client
                .create_function(&format!("f{i}"), &source)
                .await
                .unwrap(),
        ));
    }
    for (i, id) in ids.iter().enumerate() {
        let function = client.wait_compiled(id, COMPILE_WAIT).await.unwrap();
        assert_eq!(function["status"], "READY", "{function}");
        assert_eq!(
            client.execute(id, json!({})).await.unwrap()["output"],
            json!({ "n": i })
        );
    }
    let conn = db.connect().await.unwrap();
    assert_eq!(
        scalar(&conn, "SELECT count(*) FROM pgmq.a_compilation_jobs").await,
        6
    );
    assert_eq!(
        scalar(
            &conn,
            "SELECT max(read_ct)::bigint FROM pgmq.a_compilation_jobs"
        )
        .await,
        1,
        "no job was delivered twice"
    );
    assert_eq!(
        scalar(
            &conn,
            "SELECT (pgmq.metrics('compilation_results')).total_messages"
        )
        .await,
        6,
        "one result per job"
    );
}

#[tokio::test]
async fn a_worker_killed_mid_compile_loses_nothing() {
    let db = TestDb::not_yet_created();
    let server = TestServer::start(&db.url, ServerOptions::default().arg("--no-worker"))
        .await
        .unwrap();
    let client = server.client();
    // A short compile timeout keeps the visibility timeout (timeout + 15 s) short.
    let env = [("PROJECTNIL_COMPILE_TIMEOUT_MS", "15000")];
    let mut doomed = worker(&db.url, &env).await;
    // A source that takes a while to compile, so the kill lands mid-compile.
    let mut source = String::from(ADD);
    for i in 0..30 {
        source.push_str(&format!(
            "export function f{i}(x: i32): i32 {{ return x * {i} + {i}; }}\n"
        ));
    }
    let id = id_of(&client.create_function("slow", &source).await.unwrap());
    eventually!("the worker to start compiling", COMPILE_WAIT, async {
        let status = client.function(&id).await.unwrap()["status"].clone();
        assert!(
            status == "PENDING" || status == "COMPILING",
            "expected to catch it compiling, got {status}"
        );
        (status == "COMPILING").then_some(())
    });
    doomed.kill().await.unwrap();
    assert_eq!(client.function(&id).await.unwrap()["status"], "COMPILING");
    let _rescuer = worker(&db.url, &env).await;
    let function = client.wait_compiled(&id, COMPILE_WAIT).await.unwrap();
    assert_eq!(function["status"], "READY", "{}", function["compileError"]);
    assert_eq!(
        client
            .execute(&id, json!({ "a": 2, "b": 2 }))
            .await
            .unwrap()["output"],
        json!({ "sum": 4 })
    );
}

/// Consumers sleep on a NOTIFY between messages, but a message that becomes
/// visible again (after a visibility timeout, or `set_vt`) is announced by
/// nothing: both consumers must still find it by reading now and then.
#[tokio::test]
async fn messages_made_visible_without_a_notification_are_consumed() {
    let app = TestApp::start_without_worker().await.unwrap();
    let client = app.client();
    let db = app.db.connect().await.unwrap();

    // Results: sent hidden (the consumer is woken, reads nothing and goes back
    // to sleep), then made visible without a word.
    let failed = id_of(&client.create_function("failed", ECHO).await.unwrap());
    let result = json!({ "functionId": failed, "revision": 1, "success": false, "error": "made visible later" });
    exec(
        &db,
        &format!("SELECT pgmq.send('compilation_results', '{result}'::jsonb, 3600)"),
    )
    .await;
    // A visible result sent after it: once that one is consumed, the hidden
    // one's notification has been spent on a read that found nothing.
    let sentinel = id_of(&client.create_function("sentinel", ECHO).await.unwrap());
    let sentinel_result =
        json!({ "functionId": sentinel, "revision": 1, "success": false, "error": "sentinel" });
    exec(
        &db,
        &format!("SELECT pgmq.send('compilation_results', '{sentinel_result}'::jsonb)"),
    )
    .await;
    let consumed = client.wait_compiled(&sentinel, COMPILE_WAIT).await.unwrap();
    assert_eq!(consumed["compileError"], "sentinel", "{consumed}");
    assert_eq!(client.function(&failed).await.unwrap()["status"], "PENDING");
    let make_visible = "SELECT 1 FROM pgmq.set_vt('compilation_results', (SELECT msg_id FROM pgmq.q_compilation_results WHERE message->>'error' = 'made visible later'), 0)";
    exec(&db, make_visible).await;
    let function = client.wait_compiled(&failed, COMPILE_WAIT).await.unwrap();
    assert_eq!(function["status"], "FAILED", "{function}");
    assert_eq!(function["compileError"], "made visible later");

    // Jobs: hidden before a worker starts, made visible once it sleeps.
    let ready = id_of(&client.create_function("ready", ECHO).await.unwrap());
    let hide_job = |seconds: i32| {
        format!(
            "SELECT 1 FROM pgmq.set_vt('compilation_jobs', (SELECT msg_id FROM pgmq.q_compilation_jobs WHERE message->>'functionId' = '{ready}'), {seconds})"
        )
    };
    exec(&db, &hide_job(3600)).await;
    let _worker = worker(&app.db.url, &[]).await;
    let listening = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                     AND query LIKE 'LISTEN%projectnil_queue_compilation_jobs%'";
    eventually!("the worker to listen", async {
        (scalar(&db, listening).await > 0).then_some(())
    });
    assert_eq!(scalar(&db, listening).await, 1, "the worker listens");
    // A visible job after the hidden one: once it is compiled, the worker has
    // read past the hidden job and sleeps again.
    let sentinel = id_of(&client.create_function("sentinel job", ECHO).await.unwrap());
    let compiled = client.wait_compiled(&sentinel, COMPILE_WAIT).await.unwrap();
    assert_eq!(compiled["status"], "READY", "{compiled}");
    assert_eq!(client.function(&ready).await.unwrap()["status"], "PENDING");
    exec(&db, &hide_job(0)).await;
    let function = client.wait_compiled(&ready, COMPILE_WAIT).await.unwrap();
    assert_eq!(function["status"], "READY", "{function}");
}

/// The README's examples are fixtures: each compiles and gives what it shows.
#[tokio::test]
async fn readme_examples_compile_and_give_the_documented_output() {
    let examples = examples();
    assert!(examples.len() >= 4, "found {} examples", examples.len());
    // The first is the contract's example, the very source the compiler warms up on.
    assert_eq!(
        examples[0].source.trim(),
        tests::fixtures::ADD.trim(),
        "README's first example is server/compiler/example.ts"
    );
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    for example in examples {
        let id = client
            .ready_function(&example.title, &example.source)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", example.title));
        let execution = client.execute(&id, example.input.clone()).await.unwrap();
        match &example.expected {
            Expected::Output(output) => {
                assert_eq!(
                    execution["status"], "COMPLETED",
                    "{}: {execution}",
                    example.title
                );
                assert_eq!(&execution["output"], output, "{}", example.title);
            }
            Expected::Error(message) => {
                assert_eq!(
                    execution["status"], "FAILED",
                    "{}: {execution}",
                    example.title
                );
                assert_eq!(
                    execution["errorMessage"].as_str().unwrap(),
                    message,
                    "{}",
                    example.title
                );
            }
        }
    }
}

/// A `node` of the test's own: a script that runs the machine's Node.js,
/// which the test can slow down or take away. Removed on drop.
struct NodeWrapper {
    path: std::path::PathBuf,
}

impl NodeWrapper {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("projectnil-node-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            path: dir.join("node"),
        }
    }

    /// (Re)writes the script: `before` runs first, then Node.js.
    fn install(&self, before: &str) {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(
            &self.path,
            format!("#!/bin/sh\n{before}\nexec node \"$@\"\n"),
        )
        .unwrap();
        std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

impl Drop for NodeWrapper {
    fn drop(&mut self) {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The processes `pid` started (Linux: `/proc/<pid>/task/*/children`).
fn children(pid: u32) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flat_map(|task| std::fs::read_to_string(task.unwrap().path().join("children")))
        .flat_map(|list| {
            list.split_whitespace()
                .map(|child| child.parse::<i32>().unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Compiles a first function (ECHO) on `worker`, so that its compiler
/// process is up, and returns that process's pid.
async fn compiler_after_a_first_compile(client: &tests::Client, worker: &TestWorker) -> i32 {
    let first = id_of(&client.create_function("first", ECHO).await.unwrap());
    let function = client.wait_compiled(&first, COMPILE_WAIT).await.unwrap();
    assert_eq!(function["status"], "READY", "{function}");
    let compilers = children(worker.pid().unwrap());
    assert_eq!(compilers.len(), 1, "{compilers:?}");
    compilers[0]
}

/// Sends SIGCONT to a process stopped by the test when dropped, so a failing
/// test does not leave it stopped.
struct Stopped(u32);

impl Stopped {
    fn stop(pid: i32) -> Self {
        let pid = pid as u32;
        tests::signal(pid, "STOP").unwrap();
        Self(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = tests::signal(self.0, "CONT");
    }
}

/// A content-cache hit does not wait behind a compile. The worker's
/// compiler process is stopped (SIGSTOP) with a compile in it; a job read
/// after that one, for a source compiled before, still ends READY, and the
/// held compile finishes once the process goes on. Before, the worker read
/// again only when every job of its last read was done.
#[tokio::test]
async fn a_cache_hit_does_not_wait_behind_a_compile() {
    let server = TestApp::start_without_worker().await.unwrap();
    let client = server.client();
    // The held compile must not time out while the test looks.
    let compiling = worker(
        &server.db.url,
        &[("PROJECTNIL_COMPILE_TIMEOUT_MS", "600000")],
    )
    .await;
    let stopped = Stopped::stop(compiler_after_a_first_compile(&client, &compiling).await);

    let held = id_of(
        &client
            .create_function("held", &format!("{ECHO}// held\n"))
            .await
            .unwrap(),
    );
    eventually!("the held job to be compiling", async {
        (client.function(&held).await.ok()?["status"] == "COMPILING").then_some(())
    });
    let hit = id_of(&client.create_function("hit", ECHO).await.unwrap());
    let function = client.wait_compiled(&hit, COMPILE_WAIT).await.unwrap();
    assert_eq!(function["status"], "READY", "{function}");
    assert_eq!(
        client.function(&held).await.unwrap()["status"],
        "COMPILING",
        "the held compile is still in the stopped process"
    );

    drop(stopped);
    let function = client.wait_compiled(&held, COMPILE_WAIT).await.unwrap();
    assert_eq!(function["status"], "READY", "{function}");
}

/// A compile that fails because of the platform, not the source, does not
/// use up the job's attempts. With one attempt allowed, a worker whose
/// Node.js is gone (its compiler process killed, `node` no longer there)
/// does not fail the function: it backs off, tries again, and compiles it
/// once Node.js is back. Before, the second try gave the job up as poison.
#[tokio::test]
async fn platform_failures_do_not_use_up_compile_attempts() {
    let node = NodeWrapper::new();
    node.install("");
    let app = TestApp::start_with(
        ServerOptions::default()
            .env("PROJECTNIL_NODE", node.path.display())
            .env("PROJECTNIL_COMPILE_MAX_ATTEMPTS", 1),
    )
    .await
    .unwrap();
    let client = app.client();

    std::fs::remove_file(&node.path).unwrap();
    // The server's only child is its warm compiler process.
    let compilers = children(app.server.pid().unwrap());
    assert_eq!(compilers.len(), 1, "{compilers:?}");
    tests::signal(compilers[0] as u32, "KILL").unwrap();

    let id = id_of(&client.create_function("echo", ECHO).await.unwrap());
    eventually!("a second try", async {
        (app.server.logs.count("job.platform_failed") >= 2).then_some(())
    });
    let function = client.function(&id).await.unwrap();
    // Taken, and waiting for its next try.
    assert_eq!(function["status"], "COMPILING", "{function}");
    let db = app.db.connect().await.unwrap();
    assert!(
        scalar(
            &db,
            "SELECT max(read_ct)::bigint FROM pgmq.q_compilation_jobs"
        )
        .await
            <= 1,
        "the failed deliveries were not counted"
    );

    node.install("");
    let function = client.wait_compiled(&id, COMPILE_WAIT).await.unwrap();
    assert_eq!(function["status"], "READY", "{function}");
}

/// A job stays with the worker that is on it, however long that takes. Here
/// the worker's compiler process was killed and its restart takes 30 s (a
/// slow `node`), longer than the job's visibility timeout (10 s compile
/// timeout + 15 s); the worker renews that while it waits, so a second,
/// idle worker never takes the job and it is read once.
#[tokio::test]
async fn a_slow_compile_is_not_taken_by_a_second_worker() {
    let server = TestApp::start_without_worker().await.unwrap();
    let client = server.client();
    let node = NodeWrapper::new();
    node.install("");
    let path = node.path.display().to_string();
    let slow = worker(
        &server.db.url,
        &[
            ("PROJECTNIL_NODE", &path),
            ("PROJECTNIL_COMPILE_TIMEOUT_MS", "10000"),
        ],
    )
    .await;
    let compiler = compiler_after_a_first_compile(&client, &slow).await;
    node.install("sleep 30");
    tests::signal(compiler as u32, "KILL").unwrap();

    // Another source, so the content cache does not answer for it.
    let id = id_of(
        &client
            .create_function("echo", &format!("{ECHO}// slow\n"))
            .await
            .unwrap(),
    );
    let db = server.db.connect().await.unwrap();
    eventually!("the slow worker to take the job", async {
        (scalar(
            &db,
            "SELECT count(*) FROM pgmq.q_compilation_jobs WHERE read_ct = 1",
        )
        .await
            == 1)
            .then_some(())
    });
    let _idle = worker(&server.db.url, &[]).await;
    let function = client.wait_compiled(&id, COMPILE_WAIT).await.unwrap();
    assert_eq!(function["status"], "READY", "{function}");
    assert_eq!(
        scalar(
            &db,
            "SELECT max(read_ct)::bigint FROM pgmq.a_compilation_jobs"
        )
        .await,
        1,
        "each job read once"
    );
}
