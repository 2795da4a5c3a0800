//! The REST API of the contract (`rest.md`) and the HTTP triggers: a second
//! thin face over the same domain modules as GraphQL (`functions`,
//! `executions`), with its own bodies ([`bodies`]) and error body
//! ([`error`]). Built with poem-openapi, so the OpenAPI document
//! (`/openapi.json`, rendered offline at `/docs`) is generated from the
//! handlers' own types and cannot drift from them.

mod bodies;
mod error;
mod executions;
mod functions;
mod input;
mod triggers;

use chrono::{DateTime, Utc};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::payload::Json;
use poem_openapi::types::{ParseFromJSON, ToJSON, Type};
use poem_openapi::{ApiResponse, OpenApi, OpenApiService, Tags};
use uuid::Uuid;

pub use error::ErrorBody;

use crate::http::Face;
use error::RestError;
use input::OptionalJson;

use crate::pagination::{Cursor, Page, PageCursor, PageRequest};

/// Largest `?limit=` of a REST list, and the default.
const MAX_LIMIT: i32 = 1000;
const DEFAULT_LIMIT: i32 = 100;

#[derive(Tags)]
enum ApiTag {
    /// Functions: AssemblyScript source, compiled to WebAssembly in the background.
    Functions,
    /// Runs of a function.
    Executions,
    /// Call a function by name from anything that speaks HTTP.
    Triggers,
    /// Probes.
    Health,
}

pub struct HealthApi;

#[OpenApi(tag = "ApiTag::Health")]
impl HealthApi {
    /// Liveness
    ///
    /// The process answers (readiness, with the database, is `/ready`).
    #[oai(path = "/health", method = "get")]
    async fn health(&self) -> Json<bodies::Health> {
        Json(bodies::Health {
            status: "UP".into(),
        })
    }
}

/// The document describes itself too, so every path the REST side answers
/// is in it.
pub struct DocsApi;

#[OpenApi(tag = "ApiTag::Health")]
impl DocsApi {
    /// This OpenAPI 3 document
    #[oai(path = "/openapi.json", method = "get")]
    async fn spec(&self) -> SpecResponse {
        SpecResponse::Ok(poem_openapi::payload::PlainText(documents().spec.clone()))
    }

    /// The API reference, rendered from this document (works offline)
    #[oai(path = "/docs", method = "get")]
    async fn docs(&self) -> poem_openapi::payload::Html<String> {
        poem_openapi::payload::Html(documents().html.clone())
    }
}

/// The document as generated, already JSON text: sent as it is with its own
/// media type, where `PlainText` alone would say `text/plain` and
/// `Json<Value>` would serialise it again on every request.
#[derive(ApiResponse)]
enum SpecResponse {
    /// The OpenAPI 3 document
    #[oai(status = 200, content_type = "application/json; charset=utf-8")]
    Ok(poem_openapi::payload::PlainText<String>),
}

struct Documents {
    spec: String,
    html: String,
}

/// Generated once: the document does not change while the process runs.
fn documents() -> &'static Documents {
    static DOCUMENTS: std::sync::OnceLock<Documents> = std::sync::OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        let service = service();
        Documents {
            spec: service.spec(),
            html: service.swagger_ui_html(),
        }
    })
}

pub type RestService = OpenApiService<
    (
        functions::FunctionsApi,
        executions::ExecutionsApi,
        triggers::TriggersApi,
        HealthApi,
        DocsApi,
    ),
    (),
>;

/// The REST operations and their OpenAPI document.
pub fn service() -> RestService {
    OpenApiService::new(
        (
            functions::FunctionsApi,
            executions::ExecutionsApi,
            triggers::TriggersApi,
            HealthApi,
            DocsApi,
        ),
        "ProjectNIL",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "AssemblyScript functions compiled to WebAssembly and run on demand. \
         The same platform is also served as GraphQL at /graphql.",
    )
}

/// The paths the REST service answers, for the router (the service itself
/// answers 404 and 405 inside them): these need the API key when access
/// control is on...
pub const PATH_PREFIXES: &[&str] = &["/functions", "/executions", "/run"];
/// ...and these stay open, like `/ready` and `/metrics`.
pub const OPEN_PATHS: &[&str] = &["/health", "/openapi.json", "/docs"];

/// An id from the path; "Invalid" and the value when it is not a UUID.
fn parse_id(what: &str, raw: &str) -> Result<Uuid, RestError> {
    Uuid::parse_str(raw)
        .map_err(|_| RestError::bad_request(format!("Invalid {what} id: {raw:?} is not a UUID")))
}

/// The page a REST list asks for with `?limit=` and the `Link` header's cursor.
fn page_request(limit: Option<i32>, after: Option<&str>) -> Result<PageRequest, RestError> {
    PageRequest::up_to(MAX_LIMIT, limit.unwrap_or(DEFAULT_LIMIT), after)
        .map_err(|e| RestError::bad_request(e.to_string().replace("`first`", "`limit`")))
}

/// `<path?limit=N&after=…>; rel="next"` when there is a next page.
fn next_link<T>(
    path: &str,
    page: &Page<T>,
    position: impl Fn(&T) -> (DateTime<Utc>, Uuid),
) -> Option<String> {
    if !page.has_next_page {
        return None;
    }
    let (created_at, id) = position(page.items.last()?);
    let cursor = PageCursor { created_at, id }.encode();
    Some(format!(
        "<{path}?limit={}&after={cursor}>; rel=\"next\"",
        page.items.len()
    ))
}

#[derive(ApiResponse)]
enum Listed<T: ToJSON + ParseFromJSON + Type + Send + Sync> {
    /// Newest first.
    #[oai(status = 200)]
    Ok(
        Json<Vec<T>>,
        /// `<…>; rel="next"` when more exist.
        #[oai(header = "Link")]
        Option<String>,
    ),
}

/// Gives every error the contract's body: routing errors (unknown path,
/// wrong method) and whatever a request failed with before a handler could
/// answer (bad JSON, wrong content type). Answers that are already responses
/// pass unchanged.
pub struct ErrorBodies;

impl<E: Endpoint> Middleware<E> for ErrorBodies {
    type Output = ErrorBodiesEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        ErrorBodiesEndpoint { inner }
    }
}

pub struct ErrorBodiesEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for ErrorBodiesEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Self::Output> {
        let (method, path) = (req.method().clone(), req.uri().path().to_string());
        match self.inner.call(req).await {
            Ok(response) => Ok(response.into_response()),
            Err(error) if error.is_from_response() => Ok(error.into_response()),
            Err(error) => {
                let status = error.status();
                let message = match status {
                    poem::http::StatusCode::NOT_FOUND => format!("No such route: {method} {path}"),
                    poem::http::StatusCode::METHOD_NOT_ALLOWED => {
                        format!("Method not allowed: {method} {path}")
                    }
                    _ => error::request_error_message(&error),
                };
                // Under /graphql, shaped as a GraphQL error for GraphQL clients.
                let code = crate::graphql::error::ErrorCode::BadUserInput;
                Ok(Face::of(&path).error(status, code, &message))
            }
        }
    }
}
