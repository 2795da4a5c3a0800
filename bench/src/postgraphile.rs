//! PostGraphile v4 (from npm, `bench/node`) on the benchmark's database: what
//! users would pick instead of ProjectNIL for a GraphQL API over the same
//! tables. Started for the list figure, on a free port, and stopped with it.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::Paths;

/// The same page `functions(first: 50)` answers: newest first, the same
/// fields, the deployed version's module size through the relation.
pub const LIST_QUERY: &str = "{ allFunctions(first: 50, orderBy: [CREATED_AT_DESC, ID_DESC]) { totalCount pageInfo { hasNextPage endCursor } nodes { id name status revision createdAt updatedAt functionVersionsByFunctionId(first: 1, orderBy: REVISION_DESC) { nodes { wasmSize } } } } }";

/// A running PostGraphile; killed when dropped.
pub struct PostGraphile {
    pub base_url: String,
    pub version: String,
    _child: Child,
}

pub async fn start(paths: &Paths, db_url: &str) -> anyhow::Result<PostGraphile> {
    let node_dir = paths.repo.join("bench/node");
    let cli = node_dir.join("node_modules/postgraphile/cli.js");
    if !cli.exists() {
        bail!(
            "{} is missing (scripts/bench installs it: npm ci --prefix bench/node)",
            cli.display()
        );
    }
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        node_dir.join("node_modules/postgraphile/package.json"),
    )?)?;
    let version = manifest["version"].as_str().unwrap_or("?").to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let log = std::fs::File::create(paths.dir.join("postgraphile.log"))?;
    let mut child = Command::new("node")
        .arg(&cli)
        .args(["--connection", db_url, "--schema", "public"])
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        // As a production deployment runs it: no GraphiQL, no schema watch,
        // no query logging.
        .args(["--disable-query-log", "--disable-graphiql"])
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting PostGraphile")?;
    // It prints its banner to stdout once it listens.
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await? {
            if line.contains("GraphQL API:") {
                return anyhow::Ok(());
            }
        }
        bail!("PostGraphile exited before it listened (see postgraphile.log)")
    })
    .await
    .context("PostGraphile did not listen within 120 s")??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(PostGraphile {
        base_url: format!("http://127.0.0.1:{port}"),
        version,
        _child: child,
    })
}
