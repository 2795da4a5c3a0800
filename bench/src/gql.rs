//! GraphQL over HTTP (keep-alive) and a lean `graphql-transport-ws` client.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const CREATE_FUNCTION: &str =
    "mutation($input: CreateFunctionInput!) { createFunction(input: $input) { id status } }";
pub const EXECUTE: &str = "mutation($id: UUID!, $input: JSON) { executeFunction(id: $id, input: $input) { id status output errorMessage durationMs } }";
pub const START_EXECUTION: &str =
    "mutation($id: UUID!, $input: JSON) { startExecution(id: $id, input: $input) { id status } }";

/// One HTTP client: its own connection pool, so one client per load task
/// means one keep-alive connection per task.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    pub fn new(base_url: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(4)
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
            url: format!("{base_url}/graphql"),
        }
    }

    /// A client with a connection pool of its own.
    pub fn fresh(&self) -> Self {
        Self {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
            url: self.url.clone(),
        }
    }

    /// The whole GraphQL response (`data` and `errors`) of an operation.
    pub async fn raw(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        Ok(self
            .http
            .post(&self.url)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// How many `nodes` the connection `field` of a query's answer holds,
    /// failing on GraphQL errors. It reads the body without building a value
    /// tree: the load generator shares the machine's cores with the server
    /// and the peer it measures, so what it spends on a response is taken
    /// from them.
    pub async fn page_len(&self, query: &str, field: &str) -> anyhow::Result<usize> {
        #[derive(Deserialize)]
        struct Body<'a> {
            #[serde(borrow)]
            data: Option<HashMap<&'a str, Page>>,
            errors: Option<Value>,
        }
        #[derive(Deserialize)]
        struct Page {
            nodes: Vec<IgnoredAny>,
        }
        let bytes = self
            .http
            .post(&self.url)
            .json(&json!({ "query": query }))
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let body: Body = serde_json::from_slice(&bytes)?;
        if let Some(errors) = body.errors {
            bail!("GraphQL errors: {errors}");
        }
        body.data
            .as_ref()
            .and_then(|data| data.get(field))
            .map(|page| page.nodes.len())
            .with_context(|| format!("no `{field}` in {}", String::from_utf8_lossy(&bytes)))
    }

    /// `data` of an operation that must succeed.
    pub async fn data(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let mut body = self.raw(query, variables).await?;
        if let Some(errors) = body.get("errors") {
            bail!("GraphQL errors: {errors}");
        }
        Ok(body["data"].take())
    }

    pub async fn create_function(&self, name: &str, source: &str) -> anyhow::Result<String> {
        let data = self
            .data(
                CREATE_FUNCTION,
                json!({ "input": { "name": name, "language": "assemblyscript", "source": source } }),
            )
            .await?;
        Ok(data["createFunction"]["id"]
            .as_str()
            .context("createFunction returned no id")?
            .to_string())
    }

    /// Polls until the function is READY (fails on FAILED or after `timeout`).
    pub async fn wait_ready(&self, id: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let data = self
                .data(
                    "query($id: UUID!) { function(id: $id) { status compileError } }",
                    json!({ "id": id }),
                )
                .await?;
            match data["function"]["status"].as_str() {
                Some("READY") => return Ok(()),
                Some("FAILED") => bail!("function failed: {}", data["function"]["compileError"]),
                _ if tokio::time::Instant::now() > deadline => {
                    bail!("function {id} not READY after {timeout:?}")
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a `graphql-transport-ws` socket and completes the init handshake.
pub async fn ws_connect(url: &str) -> anyhow::Result<Socket> {
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    // tungstenite zero-fills its read buffer before every read; at the
    // default 128 KiB that memset was 44 % of the load generator's CPU in
    // the fan-out (perf, 10,000 subscribers). 8 KiB still takes a backlog of
    // events in few reads.
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    // TCP_NODELAY, as browsers set on their sockets: without it a small frame
    // (`subscribe` after `complete`) waits for the server's delayed ACK.
    let (mut socket, _) =
        tokio_tungstenite::connect_async_with_config(request, Some(config), true).await?;
    socket
        .send(Message::Text(
            json!({ "type": "connection_init", "payload": {} })
                .to_string()
                .into(),
        ))
        .await?;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .context("no connection_ack within 30 s")?;
        match frame {
            Some(Ok(Message::Text(text))) => {
                let message: Value = serde_json::from_str(&text)?;
                match message["type"].as_str() {
                    Some("connection_ack") => return Ok(socket),
                    Some("ping") => pong(&mut socket).await?,
                    _ => bail!("expected connection_ack, got {message}"),
                }
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("socket closed before connection_ack"),
        }
    }
}

pub async fn pong(socket: &mut Socket) -> anyhow::Result<()> {
    socket
        .send(Message::Text(json!({ "type": "pong" }).to_string().into()))
        .await?;
    Ok(())
}

pub async fn subscribe(
    socket: &mut Socket,
    id: &str,
    query: &str,
    variables: Value,
) -> anyhow::Result<()> {
    socket
        .send(Message::Text(
            json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } })
                .to_string()
                .into(),
        ))
        .await?;
    Ok(())
}

pub async fn complete(socket: &mut Socket, id: &str) -> anyhow::Result<()> {
    socket
        .send(Message::Text(
            json!({ "id": id, "type": "complete" }).to_string().into(),
        ))
        .await?;
    Ok(())
}

/// The next `next` payload of subscription `id` (answering pings; failing on
/// `error`, `complete` or a closed socket).
pub async fn next_payload(
    socket: &mut Socket,
    id: &str,
    timeout: Duration,
) -> anyhow::Result<Value> {
    loop {
        let frame = tokio::time::timeout(timeout, socket.next())
            .await
            .context("nothing received in time")?;
        match frame {
            Some(Ok(Message::Text(text))) => {
                let message: Value = serde_json::from_str(&text)?;
                match message["type"].as_str() {
                    Some("ping") => pong(socket).await?,
                    Some("next") if message["id"] == id => return Ok(message["payload"].clone()),
                    Some("error" | "complete") if message["id"] == id => {
                        bail!("subscription ended: {message}")
                    }
                    _ => continue,
                }
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("socket closed"),
        }
    }
}
