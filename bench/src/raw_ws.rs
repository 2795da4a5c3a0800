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
        const MASK: [u8; 4] = [0x5a, 0x17, 0xc3, 0x8e];
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push(0x80 | opcode);
        match payload.len() {
            len @ 0..=125 => frame.push(0x80 | len as u8),
            len @ 126..=0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&MASK);
        frame.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
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
        let Some(head) = frame_head(self.unread())? else {
            return Ok(None);
        };
        let payload = self.start + head.header..self.start + head.header + head.len;
        self.start = payload.end;
        Ok(Some(match head.opcode {
            0x1 => Frame::Text(payload),
            0x8 => Frame::Close,
            0x9 => Frame::Ping(payload),
            _ => Frame::Other,
        }))
    }
}

/// Where a server frame's payload lies.
#[derive(Debug, PartialEq, Eq)]
struct FrameHead {
    opcode: u8,
    /// Bytes before the payload.
    header: usize,
    len: usize,
}

/// The head of the frame `bytes` begin with, once all of the frame is there.
fn frame_head(bytes: &[u8]) -> anyhow::Result<Option<FrameHead>> {
    let [first, second, ..] = *bytes else {
        return Ok(None);
    };
    if first & 0x80 == 0 {
        bail!("a fragmented frame (the servers measured send none)");
    }
    if second & 0x80 != 0 {
        bail!("a masked frame from the server");
    }
    let (header, len) = match second & 0x7f {
        126 if bytes.len() >= 4 => (4, usize::from(u16::from_be_bytes([bytes[2], bytes[3]]))),
        127 if bytes.len() >= 10 => {
            let len: [u8; 8] = bytes[2..10].try_into()?;
            (10, usize::try_from(u64::from_be_bytes(len))?)
        }
        126 | 127 => return Ok(None),
        len => (2, usize::from(len)),
    };
    if bytes.len() < header + len {
        return Ok(None);
    }
    Ok(Some(FrameHead {
        opcode: first & 0x0f,
        header,
        len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(opcode: u8, header: usize, len: usize) -> Option<FrameHead> {
        Some(FrameHead {
            opcode,
            header,
            len,
        })
    }

    #[test]
    fn reads_each_length_form_once_the_frame_is_complete() {
        let mut short = vec![0x81, 3];
        short.extend_from_slice(b"abc");
        assert_eq!(frame_head(&short).unwrap(), head(1, 2, 3));
        assert_eq!(frame_head(&short[..4]).unwrap(), None);

        let mut medium = vec![0x81, 126, 0x01, 0x00];
        medium.resize(4 + 256, b'x');
        assert_eq!(frame_head(&medium).unwrap(), head(1, 4, 256));
        assert_eq!(frame_head(&medium[..3]).unwrap(), None);
        assert_eq!(frame_head(&medium[..100]).unwrap(), None);

        let mut long = vec![0x89, 127, 0, 0, 0, 0, 0, 1, 0, 0];
        long.resize(10 + 65_536, b'y');
        assert_eq!(frame_head(&long).unwrap(), head(9, 10, 65_536));
        assert_eq!(frame_head(&long[..9]).unwrap(), None);

        assert_eq!(frame_head(&[0x81]).unwrap(), None);
        assert_eq!(frame_head(&[0x8a, 0]).unwrap(), head(0xa, 2, 0));
    }

    #[test]
    fn refuses_what_a_server_must_not_send() {
        let fragment = frame_head(&[0x01, 0]).unwrap_err();
        assert!(fragment.to_string().contains("fragmented"), "{fragment}");
        let masked = frame_head(&[0x81, 0x80, 1, 2, 3, 4]).unwrap_err();
        assert!(masked.to_string().contains("masked"), "{masked}");
    }
}
