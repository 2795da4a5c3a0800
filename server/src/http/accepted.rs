//! The server's TCP connections. Each accepted socket gets TCP_NODELAY and
//! is shared ([`SharedTcp`]): hyper reads and writes it as a stream, and
//! once it is upgraded to a WebSocket the endpoint finds it again by its
//! addresses ([`AcceptedSockets::writer`]) and writes to it directly.
//!
//! Why: a shared subscription result is written to thousands of sockets at
//! once, and on the way to each one it went through tokio's split lock,
//! poem's and hyper's upgraded stream and hyper's rewind buffer, a chain
//! of cold objects per socket that took about a tenth of the server's CPU
//! at 10,000 subscribers (BENCHMARKS.md). Reads keep going through hyper's
//! upgraded stream, which holds whatever it read past the upgrade request.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, ready};

use poem::listener::{Acceptor, TcpAcceptor};
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream that every holder may read and write through tokio's
/// readiness API, without a lock: hyper reads and writes it while it
/// serves HTTP; after an upgrade only the WebSocket session reads it and
/// only its outbox writes it. The handle the acceptor made (hyper's)
/// leaves [`AcceptedSockets`] when it is dropped; the others do not.
pub struct SharedTcp {
    stream: Arc<TcpStream>,
    registered: Option<(Peers, AcceptedSockets)>,
}

impl SharedTcp {
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream: Arc::new(stream),
            registered: None,
        }
    }

    /// Another handle on the same socket, to write to it.
    pub fn writer(&self) -> Self {
        Self {
            stream: Arc::clone(&self.stream),
            registered: None,
        }
    }

    /// Sends once the socket is writable (again when its readiness was
    /// stale).
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        mut send: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            match send(&self.stream) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                sent => return Poll::Ready(sent),
            }
        }
    }
}

impl AsyncRead for SharedTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            // Received into the buffer as it is, as tokio's own `TcpStream`
            // does. Zeroing it first (`initialize_unfilled`, the safe way)
            // made every upgraded connection keep hyper's whole read buffer
            // resident: 80 MB more at 10,000 subscribers.
            // SAFETY: `recv` only writes initialised bytes into `unfilled`,
            // and says how many.
            let unfilled = unsafe { buf.unfilled_mut() };
            let received = self.stream.try_io(Interest::READABLE, || {
                socket2::SockRef::from(&*self.stream).recv(unfilled)
            });
            match received {
                Ok(n) => {
                    // SAFETY: `recv` initialised the first `n` bytes.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, |stream| stream.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, |stream| stream.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let shut = socket2::SockRef::from(&*self.stream).shutdown(Shutdown::Write);
        // Already shut, or the peer is gone: either way nothing more goes out.
        Poll::Ready(match shut {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            shut => shut,
        })
    }
}

/// Who a connection is: the listener's address and the peer's.
type Peers = (SocketAddr, SocketAddr);

/// The open accepted connections, by address, for the WebSocket endpoint
/// to find an upgraded one's socket. Entries leave when hyper drops the
/// connection's stream.
#[derive(Clone, Default)]
pub struct AcceptedSockets(Arc<Mutex<HashMap<Peers, Weak<TcpStream>>>>);

impl AcceptedSockets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Peers, Weak<TcpStream>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The socket of the connection a request came on, to write to it
    /// once the request's upgrade is done; `None` when it was not accepted
    /// here (a test's in-memory stream). The addresses must be the ones
    /// the acceptor gave poem: a middleware that rewrote the remote
    /// address (to a proxy's client, say) would make this find another
    /// connection or none. Nothing in this server rewrites them.
    pub fn writer(&self, local: &LocalAddr, remote: &RemoteAddr) -> Option<SharedTcp> {
        let key = (*local.as_socket_addr()?, *remote.as_socket_addr()?);
        let stream = self.lock().get(&key).and_then(Weak::upgrade)?;
        Some(SharedTcp {
            stream,
            registered: None,
        })
    }

    /// Connections open (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Drop for SharedTcp {
    fn drop(&mut self) {
        let Some((key, sockets)) = &self.registered else {
            return;
        };
        let mut sockets = sockets.lock();
        // A later connection from the same address may have taken the key
        // already; leave that one.
        if sockets
            .get(key)
            .is_some_and(|kept| std::ptr::eq(kept.as_ptr(), Arc::as_ptr(&self.stream)))
        {
            sockets.remove(key);
        }
    }
}

/// poem's TCP acceptor, with TCP_NODELAY on every socket and each one kept
/// in [`AcceptedSockets`]. Without TCP_NODELAY, a WebSocket frame sent
/// right after another (a subscription's PENDING then COMPILING) waits for
/// the client's delayed ACK, up to 40 ms on Linux (see BENCHMARKS.md).
pub struct Accepting {
    tcp: TcpAcceptor,
    sockets: AcceptedSockets,
}

impl Accepting {
    pub fn new(tcp: TcpAcceptor, sockets: AcceptedSockets) -> Self {
        Self { tcp, sockets }
    }
}

impl Acceptor for Accepting {
    type Io = SharedTcp;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.tcp.local_addr()
    }

    async fn accept(
        &mut self,
    ) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, poem::http::uri::Scheme)> {
        let (stream, local, remote, scheme) = self.tcp.accept().await?;
        // Best effort: a socket that refuses it still works, only slower.
        let _ = stream.set_nodelay(true);
        let key = local
            .as_socket_addr()
            .copied()
            .zip(remote.as_socket_addr().copied());
        let mut accepted = SharedTcp::new(stream);
        if let Some(key) = key {
            let socket = Arc::downgrade(&accepted.stream);
            self.sockets.lock().insert(key, socket);
            accepted.registered = Some((key, self.sockets.clone()));
        }
        Ok((accepted, local, remote, scheme))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn an_accepted_socket_is_found_by_its_addresses_until_it_closes() {
        let sockets = AcceptedSockets::default();
        let listener = poem::listener::Listener::into_acceptor(poem::listener::TcpListener::bind(
            "127.0.0.1:0",
        ))
        .await
        .unwrap();
        let mut accepting = Accepting::new(listener, sockets.clone());
        let mut client = TcpStream::connect(accepting.local_addr()[0].as_socket_addr().unwrap())
            .await
            .unwrap();
        let (mut accepted, local, remote, _) = accepting.accept().await.unwrap();
        assert_eq!(sockets.len(), 1);

        // hyper's side and the found writer reach the same peer, in order.
        let mut writer = sockets.writer(&local, &remote).expect("registered");
        accepted.write_all(b"hyper ").await.unwrap();
        writer.write_all(b"then the session").await.unwrap();
        client.write_all(b"request").await.unwrap();
        let mut request = [0u8; 7];
        accepted.read_exact(&mut request).await.unwrap();
        assert_eq!(&request, b"request");
        writer.shutdown().await.unwrap();
        let mut received = String::new();
        client.read_to_string(&mut received).await.unwrap();
        assert_eq!(received, "hyper then the session");

        // Closed by hyper: gone from the registry, though a writer lives on.
        drop(accepted);
        assert_eq!(sockets.len(), 0);
        assert!(sockets.writer(&local, &remote).is_none());
        drop(writer);
    }
}
