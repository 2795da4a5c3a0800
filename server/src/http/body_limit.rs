//! Request body cap. Unlike poem's `SizeLimit`, requests without a body (GET
//! queries) pass, and chunked bodies are read up to the cap instead of being
//! refused for lacking a Content-Length.

use poem::http::StatusCode;
use poem::web::headers::{ContentLength, HeaderMapExt};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response, Result};

use super::auth::Face;

pub struct BodyLimit(pub usize);

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
                return Ok(too_large(req.uri().path(), self.max));
            }
            Some(_) => {}
            None if req.headers().contains_key("transfer-encoding") => {
                match req.take_body().into_bytes_limit(self.max).await {
                    Ok(bytes) => req.set_body(Body::from(bytes)),
                    Err(_) => return Ok(too_large(req.uri().path(), self.max)),
                }
            }
            None => {}
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}
