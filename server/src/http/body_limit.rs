//! Request body cap. Unlike poem's `SizeLimit`, requests without a body (GET
//! queries) pass, and bodies of unknown length (chunked, or HTTP/2 without a
//! Content-Length) are read up to the cap instead of being refused for
//! lacking a Content-Length. An over-limit body is read and discarded (up to
//! a bound and a short time, as nginx's lingering close does) before the 413
//! is sent, so that a client still sending sees the answer instead of a
//! connection reset.

use poem::http::StatusCode;
use poem::web::headers::{ContentLength, HeaderMapExt};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response, Result};

use super::auth::Face;

pub struct BodyLimit(pub usize);

/// How much of an over-limit body is read and thrown away, at most…
const DRAIN_BYTES: usize = 64 * 1024 * 1024;
/// …and for how long.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        BodyLimitEndpoint { inner, max: self.0 }
    }
}

pub struct BodyLimitEndpoint<E> {
    inner: E,
    max: usize,
}

/// Shaped for the API the request is for, so its clients show the reason
/// like any other error.
fn too_large(path: &str, max: usize) -> Response {
    Face::of(path).error(
        StatusCode::PAYLOAD_TOO_LARGE,
        crate::graphql::error::ErrorCode::PayloadTooLarge,
        &format!("request body is larger than the limit of {max} bytes"),
    )
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        match req.headers().typed_get::<ContentLength>() {
            Some(ContentLength(length)) if length as usize > self.max => {
                let path = req.uri().path().to_string();
                drain(req.take_body(), 0).await;
                return Ok(too_large(&path, self.max));
            }
            Some(_) => {}
            // A chunked HTTP/1.1 body, or an HTTP/2 body sent without a
            // Content-Length (which HTTP/2 allows): read up to the cap.
            None => {
                let body = req.take_body();
                if body.is_empty() {
                    req.set_body(body);
                } else {
                    match read_up_to(body, self.max).await {
                        Ok(bytes) => req.set_body(Body::from(bytes)),
                        Err(()) => return Ok(too_large(req.uri().path(), self.max)),
                    }
                }
            }
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

/// The body if it is at most `max` bytes; otherwise `Err` once the rest was
/// drained.
async fn read_up_to(body: Body, max: usize) -> std::result::Result<Vec<u8>, ()> {
    use futures::StreamExt;
    let mut stream = std::pin::pin!(body.into_bytes_stream());
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { return Err(()) };
        if bytes.len() + chunk.len() > max {
            drain_stream(stream, bytes.len() + chunk.len()).await;
            return Err(());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Reads and discards what is left of a refused body, within bounds.
async fn drain(body: Body, already: usize) {
    drain_stream(std::pin::pin!(body.into_bytes_stream()), already).await;
}

async fn drain_stream<S, B, E>(mut stream: std::pin::Pin<&mut S>, mut read: usize)
where
    S: futures::Stream<Item = std::result::Result<B, E>>,
    B: AsRef<[u8]>,
{
    use futures::StreamExt;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while read <= DRAIN_BYTES {
            match stream.next().await {
                Some(Ok(chunk)) => read += chunk.as_ref().len(),
                _ => break,
            }
        }
    })
    .await;
}
