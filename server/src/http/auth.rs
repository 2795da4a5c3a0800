//! Enforces the API keys (see [`crate::auth`]) on GraphQL and REST: over HTTP
//! a missing or wrong `Authorization: Bearer <key>` is HTTP 401 with an
//! UNAUTHENTICATED GraphQL error or the REST error body; over WebSocket the key comes in the connection_init payload
//! (`{"authorization": "Bearer <key>"}`) or the upgrade request's header, and a
//! refused init closes with 4403 as graphql-transport-ws prescribes.

use std::future::ready;

use async_graphql::Data;
use poem::http::{StatusCode, header};
use poem::web::Json;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

use super::ws::{AuthFuture, ConnectionAuth, ConnectionInit};
use crate::auth::{ApiKeys, Verdict};
use crate::graphql::error::{ErrorCode, refusal_body};

/// HTTP middleware; `None` keys means access control is off.
pub struct RequireApiKey(pub Option<ApiKeys>, pub Face);

/// Which API a refusal is shaped for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    GraphQL,
    Rest,
}

impl Face {
    /// The face a request path belongs to.
    pub fn of(path: &str) -> Self {
        if path == "/graphql" || path.starts_with("/graphql/") {
            Self::GraphQL
        } else {
            Self::Rest
        }
    }

    /// An error response in this face's shape.
    pub fn error(self, status: StatusCode, code: ErrorCode, message: &str) -> Response {
        match self {
            Self::GraphQL => (status, Json(refusal_body(code, message))).into_response(),
            Self::Rest => crate::rest::ErrorBody::new(status, message).into_response(),
        }
    }
}

impl<E: Endpoint> Middleware<E> for RequireApiKey {
    type Output = RequireApiKeyEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RequireApiKeyEndpoint {
            inner,
            keys: self.0.clone(),
            face: self.1,
        }
    }
}

pub struct RequireApiKeyEndpoint<E> {
    inner: E,
    keys: Option<ApiKeys>,
    face: Face,
}

impl<E: Endpoint> Endpoint for RequireApiKeyEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        if let Some(keys) = &self.keys {
            let authorization = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            let verdict = keys.check(authorization);
            if verdict != Verdict::Allowed {
                let refusal = self.face.error(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::Unauthenticated,
                    verdict.message(),
                );
                return Ok(refusal
                    .with_header(header::WWW_AUTHENTICATE, "Bearer")
                    .into_response());
            }
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

/// The WebSocket side: checks each connection_init.
pub struct ApiKeyConnectionAuth(pub ApiKeys);

impl ConnectionAuth for ApiKeyConnectionAuth {
    fn on_connection_init(&self, init: ConnectionInit) -> AuthFuture {
        let from_payload = ["authorization", "Authorization"]
            .iter()
            .find_map(|k| init.payload.get(*k))
            .and_then(|v| v.as_str());
        let from_header = init
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let verdict = self.0.check(from_payload.or(from_header));
        Box::pin(ready(match verdict {
            Verdict::Allowed => Ok(Data::default()),
            refused => Err(async_graphql::Error::new(refused.message())),
        }))
    }
}
