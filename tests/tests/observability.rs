//! Observability: `/metrics` in Prometheus text format reflects what the server
//! did, and JSON logs carry the ids of the flow each line belongs to.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tests::fixtures::{ECHO, source};
use tests::ws::{TRANSPORT_WS, WsClient};
use tests::{Client, TestApp, TestDb, eventually};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// One sample of the exposition: name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

fn parse_exposition(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("sample has a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').expect("label is key=value");
                    (key.to_string(), value.trim_matches('"').to_string())
                })
                .collect();
            Sample {
                name: name.to_string(),
                labels,
                value: value.parse().expect("sample value is a number"),
            }
        })
        .collect()
}

/// Sum of the samples of `name` whose labels include all of `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

async fn scrape(client: &Client) -> anyhow::Result<(String, Vec<Sample>)> {
    let response = client
        .http()
        .get(format!("{}/metrics", client.base_url))
        .timeout(Duration::from_secs(30))
        .send()
        .await?;
    if response.status() != 200 {
        bail!("/metrics answered {}", response.status());
    }
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await?;
    let samples = parse_exposition(&text);
    Ok((text, samples))
}

#[tokio::test]
async fn metrics_reflect_executions_compilations_requests_and_subscriptions() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let echo = client.ready_function("echo", ECHO).await.unwrap();
    let throw = client
        .ready_function("throw", &source("throw"))
        .await
        .unwrap();
    let broken = client
        .create_function("broken", "export function handle(: string {")
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let broken = client
        .wait_compiled(&broken, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(broken["status"], "FAILED");

    for _ in 0..3 {
        let done = client.execute(&echo, json!({ "n": 1 })).await.unwrap();
        assert_eq!(done["status"], "COMPLETED");
    }
    let failed = client.execute(&throw, json!({})).await.unwrap();
    assert_eq!(failed["status"], "FAILED");
    // A client error and a request to a path nobody knows.
    let error = client
        .error("{ functions(first: 0) { totalCount } }", json!({}))
        .await
        .unwrap();
    assert_eq!(error.code, "BAD_USER_INPUT");
    let secret_path = format!("/no-such-page-{}", uuid::Uuid::new_v4().simple());
    let missing = client
        .http()
        .get(format!("{}{secret_path}", client.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // An open subscription is counted while it lasts.
    let mut ws = WsClient::connect(&app.server.ws_url(), TRANSPORT_WS)
        .await
        .unwrap();
    ws.subscribe(
        "1",
        "subscription { functionStatusChanged { status } }",
        json!({}),
    )
    .await
    .unwrap();
    eventually!("the subscription is counted", async {
        let (_, samples) = scrape(&client).await.unwrap();
        (value(&samples, "projectnil_active_subscriptions", &[]) == Some(1.0)).then_some(())
    });

    let (text, samples) = scrape(&client).await.unwrap();
    let at_least = |name: &str, labels: &[(&str, &str)], min: f64| {
        let found = value(&samples, name, labels);
        assert!(
            found.is_some_and(|v| v >= min),
            "{name}{labels:?} should be >= {min}, is {found:?}\n{text}"
        );
    };
    at_least(
        "projectnil_executions_total",
        &[("status", "COMPLETED")],
        3.0,
    );
    at_least("projectnil_executions_total", &[("status", "FAILED")], 1.0);
    at_least(
        "projectnil_execution_duration_seconds_count",
        &[("status", "COMPLETED")],
        3.0,
    );
    at_least(
        "projectnil_execution_duration_seconds_bucket",
        &[("status", "FAILED"), ("le", "+Inf")],
        1.0,
    );
    at_least(
        "projectnil_compilations_total",
        &[("outcome", "compiled")],
        2.0,
    );
    at_least(
        "projectnil_compilations_total",
        &[("outcome", "rejected"), ("cache_hit", "false")],
        1.0,
    );
    at_least("projectnil_compile_duration_seconds_count", &[], 3.0);
    for queue in ["compilation_jobs", "compilation_results"] {
        at_least("projectnil_queue_length", &[("queue", queue)], 0.0);
        at_least(
            "projectnil_queue_oldest_message_age_seconds",
            &[("queue", queue)],
            0.0,
        );
    }
    // Three executions of echo and one of throw: one miss per module at most,
    // the rest hits (the warmer may have compiled them first).
    let hits = value(&samples, "projectnil_module_cache_hits_total", &[]).unwrap();
    let misses = value(&samples, "projectnil_module_cache_misses_total", &[]).unwrap();
    assert!(hits + misses >= 4.0, "hits {hits}, misses {misses}");
    at_least("projectnil_module_cache_entries", &[], 2.0);
    at_least("projectnil_module_cache_bytes", &[], 1.0);
    at_least(
        "projectnil_http_requests_total",
        &[("method", "POST"), ("route", "/graphql"), ("status", "200")],
        8.0,
    );
    at_least(
        "projectnil_http_request_duration_seconds_count",
        &[("method", "POST"), ("route", "/graphql")],
        8.0,
    );
    at_least(
        "projectnil_http_requests_total",
        &[("route", "other"), ("status", "404")],
        1.0,
    );
    at_least(
        "projectnil_graphql_operations_total",
        &[("type", "mutation"), ("outcome", "ok")],
        7.0,
    );
    at_least(
        "projectnil_graphql_operations_total",
        &[("type", "query"), ("outcome", "BAD_USER_INPUT")],
        1.0,
    );
    assert!(
        !text.contains(&secret_path),
        "raw paths must never become labels"
    );

    // Closing the subscription stops counting it.
    drop(ws);
    eventually!("the closed subscription is no longer counted", async {
        let (_, samples) = scrape(&client).await.unwrap();
        (value(&samples, "projectnil_active_subscriptions", &[]) == Some(0.0)).then_some(())
    });
}

/// A server of our own whose stderr we keep, line by line.
struct LoggedServer {
    child: tokio::process::Child,
    base_url: String,
    lines: Arc<Mutex<Vec<String>>>,
}

async fn start_logged(db: &TestDb) -> anyhow::Result<LoggedServer> {
    let mut child = Command::new(tests::binary())
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("PROJECTNIL_LISTEN", "127.0.0.1:0")
        .env("PROJECTNIL_DB_POOL_SIZE", "8")
        .env("PROJECTNIL_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn,server=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting projectnil")?;
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().context("no stderr")?;
    let sink = Arc::clone(&lines);
    tokio::spawn(async move {
        let mut reader = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let base_url = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = stdout.next_line().await? {
            if let Some(url) = line.strip_prefix("listening on ") {
                return Ok(url.trim().to_string());
            }
        }
        bail!("projectnil exited before listening")
    })
    .await
    .context("projectnil did not start listening")??;
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    Ok(LoggedServer {
        child,
        base_url,
        lines,
    })
}

/// A field of a JSON log line: on the event itself or on any span it is in.
fn field<'a>(line: &'a Value, name: &str) -> Option<&'a Value> {
    line.get(name).or_else(|| {
        line["spans"]
            .as_array()?
            .iter()
            .rev()
            .find_map(|span| span.get(name))
    })
}

#[tokio::test]
async fn json_logs_carry_the_ids_of_their_flow() {
    let db = TestDb::not_yet_created();
    let mut server = start_logged(&db).await.unwrap();
    let client = Client::new(&server.base_url);
    let function = client.ready_function("echo", ECHO).await.unwrap();
    let execution = client.execute(&function, json!({ "x": 1 })).await.unwrap();
    assert_eq!(execution["status"], "COMPLETED");
    let execution_id = execution["id"].as_str().unwrap().to_string();

    // SIGTERM flushes everything; the process exits cleanly.
    let pid = server.child.id().unwrap();
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), server.child.wait())
        .await
        .expect("the server stops after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    // The reader task may still be draining the pipe: its last line is the stop.
    tests::eventually!("the log to be read to its end", async {
        let lines = server.lines.lock().unwrap();
        lines
            .iter()
            .any(|l| l.contains("server.stopped"))
            .then_some(())
    });

    let lines = server.lines.lock().unwrap().clone();
    assert!(!lines.is_empty());
    let parsed: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    for line in &parsed {
        assert!(
            line["timestamp"].is_string() && line["level"].is_string(),
            "{line}"
        );
        assert!(line["message"].is_string(), "{line}");
    }
    let of = |message: &str| -> Vec<&Value> {
        parsed
            .iter()
            .filter(|line| line["message"] == message)
            .collect()
    };
    for message in [
        "execution.accepted",
        "execution.started",
        "execution.completed",
    ] {
        let lines = of(message);
        assert_eq!(lines.len(), 1, "{message}: {lines:?}");
        assert_eq!(
            field(lines[0], "function_id"),
            Some(&json!(function)),
            "{message}"
        );
        assert_eq!(
            field(lines[0], "execution_id"),
            Some(&json!(execution_id)),
            "{message}"
        );
    }
    for message in [
        "function.created",
        "compilation.job.published",
        "job.received",
        "job.compiled",
        "result.published",
        "compilation.result.applied",
    ] {
        let lines = of(message);
        assert!(!lines.is_empty(), "no {message} line");
        for line in lines {
            assert_eq!(
                field(line, "function_id"),
                Some(&json!(function)),
                "{message}: {line}"
            );
        }
    }
    assert_eq!(of("server.stopped").len(), 1);
}

#[tokio::test]
async fn every_metric_exists_from_start_up() {
    let app = TestApp::start().await.unwrap();
    let (text, samples) = scrape(&app.client()).await.unwrap();
    for (name, labels) in [
        ("projectnil_executions_total", vec![("status", "COMPLETED")]),
        ("projectnil_executions_total", vec![("status", "FAILED")]),
        (
            "projectnil_compilations_total",
            vec![("outcome", "compiled"), ("cache_hit", "true")],
        ),
        (
            "projectnil_compilations_total",
            vec![("outcome", "rejected")],
        ),
        (
            "projectnil_graphql_operations_total",
            vec![("type", "query"), ("outcome", "ok")],
        ),
        (
            "projectnil_graphql_operations_total",
            vec![("type", "mutation"), ("outcome", "TOO_MANY_REQUESTS")],
        ),
        (
            "projectnil_executions_refused_total",
            vec![("bound", "queue")],
        ),
        ("projectnil_execution_writes_lost_total", vec![]),
        ("projectnil_compilations_refused_total", vec![]),
    ] {
        assert_eq!(
            value(&samples, name, &labels),
            Some(0.0),
            "{name} {labels:?} at zero before anything happened:\n{text}"
        );
    }
    for histogram in [
        "projectnil_execution_duration_seconds",
        "projectnil_compile_duration_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {histogram} histogram")),
            "{histogram}:\n{text}"
        );
    }
}
