//! A small `graphql-transport-ws` / `graphql-ws` client over a real WebSocket.

use std::time::Duration;

use tokio::time::Instant;

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const TRANSPORT_WS: &str = "graphql-transport-ws";
pub const LEGACY_WS: &str = "graphql-ws";

pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub protocol: &'static str,
}

/// What the server sent, or how it closed.
#[derive(Debug)]
pub enum Received {
    Message(Value),
    Closed(Option<u16>),
}

impl WsClient {
    /// Opens the socket without initialising the protocol.
    pub async fn open(url: &str, protocol: &'static str) -> anyhow::Result<Self> {
        let mut request = url.into_client_request()?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(protocol));
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Self { socket, protocol })
    }

    /// Opens the socket and completes connection_init / connection_ack.
    pub async fn connect(url: &str, protocol: &'static str) -> anyhow::Result<Self> {
        let mut client = Self::open(url, protocol).await?;
        client
            .send(json!({ "type": "connection_init", "payload": {} }))
            .await?;
        loop {
            match client.receive(Duration::from_secs(10)).await? {
                Received::Message(m) if m["type"] == "connection_ack" => return Ok(client),
                Received::Message(m) if m["type"] == "ka" || m["type"] == "ping" => continue,
                other => bail!("expected connection_ack, got {other:?}"),
            }
        }
    }

    pub async fn send(&mut self, message: Value) -> anyhow::Result<()> {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await?;
        Ok(())
    }

    pub async fn send_raw(&mut self, text: &str) -> anyhow::Result<()> {
        self.socket
            .send(Message::Text(text.to_string().into()))
            .await?;
        Ok(())
    }

    pub async fn subscribe(
        &mut self,
        id: &str,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<()> {
        let kind = if self.protocol == TRANSPORT_WS {
            "subscribe"
        } else {
            "start"
        };
        self.send(json!({ "id": id, "type": kind, "payload": { "query": query, "variables": variables } })).await
    }

    /// The next protocol message or the close, answering pings on the way.
    /// `timeout` bounds the whole wait: the server's keep-alive pings do not
    /// extend it.
    pub async fn receive(&mut self, timeout: Duration) -> anyhow::Result<Received> {
        self.receive_until(Instant::now() + timeout).await
    }

    async fn receive_until(&mut self, deadline: Instant) -> anyhow::Result<Received> {
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .context("nothing received in time")?;
            match frame {
                None => return Ok(Received::Closed(None)),
                Some(Err(_)) => return Ok(Received::Closed(None)),
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text)?;
                    if value["type"] == "ping" {
                        self.send(json!({ "type": "pong" })).await?;
                        continue;
                    }
                    if value["type"] == "ka" {
                        continue;
                    }
                    return Ok(Received::Message(value));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Ok(Received::Closed(frame.map(|f| u16::from(f.code))));
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next frame as it came: unlike [`Self::receive`], pings are neither
    /// answered nor skipped, and `ka` is returned too.
    pub async fn receive_raw(&mut self, timeout: Duration) -> anyhow::Result<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .context("nothing received in time")?;
            match frame {
                None | Some(Err(_)) => return Ok(Received::Closed(None)),
                Some(Ok(Message::Text(text))) => {
                    return Ok(Received::Message(serde_json::from_str(&text)?));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Ok(Received::Closed(frame.map(|f| u16::from(f.code))));
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Reads until the server closes the socket and returns the close frame's
    /// code and reason (`None`: the connection ended without a close frame).
    /// Protocol messages on the way are skipped.
    pub async fn close_frame(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<Option<(u16, String)>> {
        let deadline = Instant::now() + timeout;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .context("the socket was not closed in time")?;
            match frame {
                None | Some(Err(_)) => return Ok(None),
                Some(Ok(Message::Close(frame))) => {
                    return Ok(frame.map(|f| (u16::from(f.code), f.reason.to_string())));
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Ends subscription `id` from the client side (`complete`, or `stop` on the
    /// legacy protocol).
    pub async fn complete(&mut self, id: &str) -> anyhow::Result<()> {
        let kind = if self.protocol == TRANSPORT_WS {
            "complete"
        } else {
            "stop"
        };
        self.send(json!({ "id": id, "type": kind })).await
    }

    /// The next message about operation `id` (`next`, `data`, `error` or
    /// `complete`), skipping messages about other operations.
    pub async fn next_message(&mut self, id: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.receive_until(deadline).await? {
                Received::Message(m) if m["id"] == id => return Ok(m),
                Received::Message(_) => continue,
                Received::Closed(code) => bail!("socket closed ({code:?})"),
            }
        }
    }

    /// The payload of the next `next`/`data` message of subscription `id`.
    pub async fn next_payload(&mut self, id: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.receive_until(deadline).await? {
                Received::Message(m)
                    if m["id"] == id && (m["type"] == "next" || m["type"] == "data") =>
                {
                    return Ok(m["payload"].clone());
                }
                Received::Message(m)
                    if m["id"] == id && (m["type"] == "error" || m["type"] == "complete") =>
                {
                    bail!("subscription ended: {m}")
                }
                Received::Message(_) => continue,
                Received::Closed(code) => bail!("socket closed ({code:?})"),
            }
        }
    }
}
