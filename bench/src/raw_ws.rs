//! A `graphql-transport-ws` client for the fan-out's subscribers that reads
//! WebSocket frames straight off its TCP stream into one reused buffer.
//!
//! The fan-out runs the server and 10,000 subscribers on the same two cores,
//! so every microsecond a subscriber spends reading delays the server it
//! measures (BENCHMARKS.md, session 20). tokio-tungstenite's stream costs a
//! message allocation and a trip through its codec per frame, and waiting for
//! a frame beside a stop signal registered a waker with the signal's one
//! shared list per frame. Here a read takes what the socket holds (an
//! execution's events arrive in one write) and yields its frames as slices
//! of the buffer; the caller stops the task instead of signalling it.
//!
//! It speaks only what a subscriber needs: the opening handshake, masked
//! text frames out, unfragmented frames in, and answers to pings.

use std::ops::Range;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ws_frame;

/// The buffer's first size; it grows for a larger frame.
const BUFFER: usize = 8 * 1024;

/// One frame read, its payload a range of the socket's buffer (valid until
/// the next [`RawSocket::fill`]).
pub enum Frame {
    Text(Range<usize>),
    Ping(Range<usize>),
    Close,
    /// Pong or binary: nothing a subscriber acts on.
    Other,
}

pub struct RawSocket {
    stream: TcpStream,
    buffer: Vec<u8>,
    /// The unread bytes are `buffer[start..end]`.
    start: usize,
    end: usize,
}

impl RawSocket {
    /// Opens a `graphql-transport-ws` socket on `url` (`ws://host:port/path`)
    /// and completes the protocol's init handshake.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("ws://")
            .with_context(|| format!("not a ws:// address: {url}"))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let stream = TcpStream::connect(authority).await?;
        // As browsers do: a small frame (`subscribe`) must not wait for an ACK.
        stream.set_nodelay(true)?;
        let mut socket = Self {
            stream,
            buffer: vec![0; BUFFER],
            start: 0,
            end: 0,
        };
        // The key only has to be 16 bytes in base64; the server's answer to
        // it is not checked (the servers measured are our own).
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: cHJvamVjdG5pbC1mYW5vdQ==\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
        );
        socket.stream.write_all(request.as_bytes()).await?;
        let head_end = loop {
            if let Some(at) = socket.unread().windows(4).position(|w| w == b"\r\n\r\n") {
                break socket.start + at + 4;
            }
            socket.fill().await?;
        };
        let head = String::from_utf8_lossy(&socket.buffer[socket.start..head_end]).into_owned();
        socket.start = head_end;
        if !head.starts_with("HTTP/1.1 101") {
            bail!("the WebSocket upgrade was refused: {head}");
        }
        socket
            .send_json(&json!({ "type": "connection_init", "payload": {} }))
            .await?;
        loop {
            while let Some(frame) = socket.next_frame()? {
                match frame {
                    Frame::Text(payload) => {
                        let message: Value = serde_json::from_slice(socket.payload(&payload))?;
                        match message["type"].as_str() {
                            Some("connection_ack") => return Ok(socket),
                            Some("ping") => socket.send_json(&json!({ "type": "pong" })).await?,
                            _ => bail!("expected connection_ack, got {message}"),
                        }
                    }
                    Frame::Ping(payload) => {
                        let payload = socket.payload(&payload).to_vec();
                        socket.send(0xA, &payload).await?;
                    }
                    Frame::Close => bail!("socket closed before connection_ack"),
                    Frame::Other => {}
                }
            }
            socket.fill().await?;
        }
    }

    /// Starts subscription `id`.
    pub async fn subscribe(
        &mut self,
        id: &str,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<()> {
        self.send_json(
            &json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }),
        )
        .await
    }

    pub async fn send_json(&mut self, message: &Value) -> anyhow::Result<()> {
        self.send(0x1, message.to_string().as_bytes()).await
    }

    /// Sends one final frame, masked as a client's must be.
    pub async fn send(&mut self, opcode: u8, payload: &[u8]) -> anyhow::Result<()> {
        let mut frame = Vec::new();
        ws_frame::write(&mut frame, opcode, payload, Some([0x5a, 0x17, 0xc3, 0x8e]));
        self.stream.write_all(&frame).await?;
        Ok(())
    }

    fn unread(&self) -> &[u8] {
        &self.buffer[self.start..self.end]
    }

    pub fn payload(&self, range: &Range<usize>) -> &[u8] {
        &self.buffer[range.clone()]
    }

    /// Waits until the socket has bytes and reads what it holds (at least
    /// one byte). Ranges of frames read before are invalid afterwards.
    pub async fn fill(&mut self) -> anyhow::Result<()> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == self.buffer.len() {
            self.buffer.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
            if self.end == self.buffer.len() {
                self.buffer.resize(self.buffer.len() * 2, 0);
            }
        }
        let n = self.stream.read(&mut self.buffer[self.end..]).await?;
        if n == 0 {
            bail!("the server closed the socket");
        }
        self.end += n;
        Ok(())
    }

    /// The next complete frame among the bytes read, if there is one.
    pub fn next_frame(&mut self) -> anyhow::Result<Option<Frame>> {
        let Some(head) = server_frame_head(self.unread())? else {
            return Ok(None);
        };
        let payload = self.start + head.header..self.start + head.end();
        self.start = payload.end;
        Ok(Some(match head.opcode {
            0x1 => Frame::Text(payload),
            0x8 => Frame::Close,
            0x9 => Frame::Ping(payload),
            _ => Frame::Other,
        }))
    }
}

/// The head of the server frame `bytes` begin with, once all of it is there.
fn server_frame_head(bytes: &[u8]) -> anyhow::Result<Option<ws_frame::Head>> {
    let Some(head) = ws_frame::head(bytes)? else {
        return Ok(None);
    };
    if !head.fin {
        bail!("a fragmented frame (the servers measured send none)");
    }
    if head.mask.is_some() {
        bail!("a masked frame from the server");
    }
    Ok(Some(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_a_server_must_not_send() {
        let fragment = server_frame_head(&[0x01, 0]).unwrap_err();
        assert!(fragment.to_string().contains("fragmented"), "{fragment}");
        let masked = server_frame_head(&[0x81, 0x80, 1, 2, 3, 4]).unwrap_err();
        assert!(masked.to_string().contains("masked"), "{masked}");
    }
}
