//! Enforces the API keys (see [`crate::auth`]) on GraphQL: over HTTP a missing
//! or wrong `Authorization: Bearer <key>` is an UNAUTHENTICATED GraphQL error
//! (HTTP 401); over WebSocket the key comes in the connection_init payload
//! (`{"authorization": "Bearer <key>"}`) or the upgrade request's header, and a
//! refused init closes with 4403 as graphql-transport-ws prescribes.

use std::future::ready;

use async_graphql::Data;
use poem::http::{StatusCode, header};
use poem::web::Json;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use serde_json::json;

use super::ws::{AuthFuture, ConnectionAuth, ConnectionInit};
use crate::auth::{ApiKeys, Verdict};
use crate::graphql::error::ErrorCode;

/// HTTP middleware; `None` keys means access control is off.
pub struct RequireApiKey(pub Option<ApiKeys>);

impl<E: Endpoint> Middleware<E> for RequireApiKey {
    type Output = RequireApiKeyEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RequireApiKeyEndpoint {
            inner,
            keys: self.0.clone(),
        }
    }
}

pub struct RequireApiKeyEndpoint<E> {
    inner: E,
    keys: Option<ApiKeys>,
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
                let body = json!({ "errors": [{ "message": verdict.message(), "extensions": { "code": ErrorCode::Unauthenticated.as_str() } }] });
                return Ok((StatusCode::UNAUTHORIZED, Json(body))
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
