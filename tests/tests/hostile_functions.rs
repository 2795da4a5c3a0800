//! Every execution limit at once: a tight loop, a memory bomb and a recursion
//! bomb run over and over while ordinary executions keep completing, and the
//! server stays healthy throughout.

use serde_json::json;
use tests::fixtures::ADD;
use tests::{ServerOptions, TestApp};

#[tokio::test]
async fn limits_hold_under_load_and_normal_executions_keep_completing() {
    let app = TestApp::start_with(
        ServerOptions::default()
            .env("PROJECTNIL_EXEC_TIMEOUT_MS", 1000)
            .env("PROJECTNIL_EXEC_MEMORY_MB", 32),
    )
    .await
    .unwrap();
    let client = app.client();
    let add = client.ready_function("add", ADD).await.unwrap();
    let looping = client
        .ready_function("loop", &tests::fixtures::source("loop"))
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

    let hostile: Vec<_> = [
        (
            looping.clone(),
            json!({}),
            "timed out after 1000 ms of running time",
        ),
        (bomb.clone(), json!({}), "memory limit of 32 MiB exceeded"),
        (
            recursion.clone(),
            json!({ "native": true }),
            "stack overflow",
        ),
    ]
    .into_iter()
    .map(|(id, input, expected)| {
        let client = client.clone();
        tokio::spawn(async move {
            for _ in 0..3 {
                let execution = client.execute(&id, input.clone()).await.unwrap();
                assert_eq!(execution["status"], "FAILED");
                assert_eq!(execution["errorMessage"], expected);
            }
        })
    })
    .collect();

    // Meanwhile, ordinary traffic: every execution completes correctly.
    let mut completed = 0;
    while hostile.iter().any(|task| !task.is_finished()) {
        completed += client.adds_at_once(&add, 0..4, 1).await;
        let health = reqwest::get(format!("{}/health", app.server.base_url))
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
    }
    for task in hostile {
        task.await.unwrap();
    }
    assert!(
        completed >= 4,
        "ordinary executions ran alongside the hostile ones ({completed})"
    );
    let unfinished = client
        .data("{ executions(status: RUNNING) { totalCount } }", json!({}))
        .await
        .unwrap();
    assert_eq!(unfinished["executions"]["totalCount"], 0);
}
