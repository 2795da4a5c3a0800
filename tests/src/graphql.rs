//! A GraphQL-over-HTTP client with the few domain helpers tests share.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    pub base_url: String,
}

/// One GraphQL error, as the API reported it.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

impl Client {
    pub fn new(base_url: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base_url: base_url.to_string(),
        }
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The whole response body of one operation.
    pub async fn raw(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}/graphql", self.base_url))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .with_context(|| format!("HTTP {status} without a JSON body"))?;
        Ok(body)
    }

    /// `data` of an operation that must succeed.
    pub async fn data(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let body = self.raw(query, variables).await?;
        if let Some(errors) = body.get("errors") {
            bail!("unexpected GraphQL errors: {errors}");
        }
        Ok(body["data"].clone())
    }

    /// The first error of an operation that must fail.
    pub async fn error(&self, query: &str, variables: Value) -> anyhow::Result<ApiError> {
        match self.first_error(query, variables).await? {
            Some(error) => Ok(error),
            None => bail!("expected an error, got none"),
        }
    }

    /// The first error of an operation that may fail, `None` if it succeeded.
    pub async fn first_error(
        &self,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<Option<ApiError>> {
        let body = self.raw(query, variables).await?;
        Ok(body["errors"].get(0).map(|error| ApiError {
            code: error["extensions"]["code"]
                .as_str()
                .unwrap_or("<none>")
                .to_string(),
            message: error["message"].as_str().unwrap_or_default().to_string(),
        }))
    }

    pub async fn create_function(&self, name: &str, source: &str) -> anyhow::Result<Value> {
        let data = self
            .data(
                "mutation($input: CreateFunctionInput!) { createFunction(input: $input) { id name status revision createdAt } }",
                json!({ "input": { "name": name, "language": "assemblyscript", "source": source } }),
            )
            .await?;
        Ok(data["createFunction"].clone())
    }

    pub async fn function(&self, id: &str) -> anyhow::Result<Value> {
        let data = self
            .data(
                "query($id: UUID!) { function(id: $id) { id name description language source status compileError wasmSize revision createdAt updatedAt } }",
                json!({ "id": id }),
            )
            .await?;
        Ok(data["function"].clone())
    }

    /// Polls until the function is READY or FAILED (or `timeout` passes).
    pub async fn wait_compiled(&self, id: &str, timeout: Duration) -> anyhow::Result<Value> {
        Ok(crate::eventually!(
            format!("function {id} to be READY or FAILED"),
            timeout,
            async {
                self.function(id)
                    .await
                    .ok()
                    .filter(|f| matches!(f["status"].as_str(), Some("READY" | "FAILED")))
            }
        ))
    }

    /// Creates a function and waits until it is READY.
    pub async fn ready_function(&self, name: &str, source: &str) -> anyhow::Result<String> {
        let id = self.create_function(name, source).await?["id"]
            .as_str()
            .context("no id")?
            .to_string();
        let function = self.wait_compiled(&id, Duration::from_secs(120)).await?;
        if function["status"] != "READY" {
            bail!("{name} did not compile: {}", function["compileError"]);
        }
        Ok(id)
    }

    pub async fn execute(&self, id: &str, input: Value) -> anyhow::Result<Value> {
        let data = self
            .data(
                "mutation($id: UUID!, $input: JSON) { executeFunction(id: $id, input: $input) { id functionId status input output errorMessage errorKind logs startedAt completedAt createdAt durationMs } }",
                json!({ "id": id, "input": input }),
            )
            .await?;
        Ok(data["executeFunction"].clone())
    }

    /// Executes add.ts's function `add` once for each `a` in `each_a`, all at
    /// once, with `b`, and checks that every run COMPLETED with its own sum
    /// (no run sees another's input or output). Returns how many ran.
    pub async fn adds_at_once(&self, add: &str, each_a: std::ops::Range<i64>, b: i64) -> usize {
        let runs = each_a.map(|a| async move {
            let execution = self.execute(add, json!({ "a": a, "b": b })).await;
            (a, execution.expect("executeFunction"))
        });
        let finished = futures::future::join_all(runs).await;
        for (a, execution) in &finished {
            assert_eq!(execution["status"], "COMPLETED", "{execution}");
            assert_eq!(execution["output"], json!({ "sum": a + b }), "{execution}");
        }
        finished.len()
    }
}
