//! GraphQL over HTTP (`GET` and `POST /graphql`). async-graphql-poem's own
//! endpoint is lenient where a public API must not be: it reads any content type
//! as JSON, stores multipart uploads in temporary files (this schema has no
//! uploads), runs batches of any size, and runs a mutation sent with GET (which
//! a browser may send cross-site, or a proxy may repeat). This endpoint refuses
//! those at the transport level, with a status code and a GraphQL-shaped error
//! body whose message says what to send instead, then executes through the same
//! schema.

use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{BatchRequest, BatchResponse};
use poem::http::{Method, StatusCode, header};
use poem::web::Json;
use poem::{Endpoint, IntoResponse, Request, Response, Result};
use serde_json::Value;

use super::response_json::{self, Data};
use crate::graphql::AppSchema;
use crate::graphql::error::{ErrorCode, refusal_body};
use crate::graphql::operation::Operation;

pub struct GraphQLHttp {
    schema: AppSchema,
    max_batch: usize,
}

impl GraphQLHttp {
    pub fn new(schema: AppSchema, max_batch: usize) -> Self {
        Self { schema, max_batch }
    }
}

/// A request refused before it reached the schema.
struct Refused {
    status: StatusCode,
    message: String,
}

impl Refused {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let body = refusal_body(ErrorCode::BadUserInput, &self.message);
        let mut response = Json(body).with_status(self.status).into_response();
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        }
        response
    }
}

impl GraphQLHttp {
    /// Runs a request or batch, each request as its own [`Operation`].
    async fn execute(&self, batch: BatchRequest) -> BatchResponse {
        match batch {
            BatchRequest::Single(request) => BatchResponse::Single(self.execute_one(request).await),
            BatchRequest::Batch(requests) => BatchResponse::Batch(
                futures::future::join_all(requests.into_iter().map(|r| self.execute_one(r))).await,
            ),
        }
    }

    async fn execute_one(&self, mut request: async_graphql::Request) -> async_graphql::Response {
        let operation = Operation::start(&mut request);
        operation.finish(self.schema.execute(request).await)
    }
}

impl Endpoint for GraphQLHttp {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let graphql_response = accepts_graphql_response(&req);
        let batch = match self.read(req).await {
            Ok(batch) => batch,
            Err(refused) => return Ok(refused.into_response()),
        };
        match self.execute(batch).await {
            BatchResponse::Single(response) if graphql_response => {
                Ok(as_graphql_response(response))
            }
            batch => Ok(as_json(batch)),
        }
    }
}

/// A response or batch as `application/json`, with the headers
/// async-graphql-poem's `GraphQLBatchResponse` sets: the schema's cache
/// control when every response succeeded, and the headers resolvers added.
fn as_json(batch: BatchResponse) -> Response {
    let mut http = Response::builder()
        .content_type("application/json; charset=utf-8")
        .body(response_json::batch(&batch));
    if batch.is_ok()
        && let Some(cache_control) = batch.cache_control().value()
        && let Ok(value) = header::HeaderValue::from_str(&cache_control)
    {
        http.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    for (name, value) in batch.http_headers_iter() {
        http.headers_mut().append(name, value);
    }
    http
}

/// The media type of GraphQL over HTTP; `application/json` stays the answer
/// for clients that do not ask for it.
const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

fn accepts_graphql_response(req: &Request) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|media| super::media_type(media) == GRAPHQL_RESPONSE)
}

/// A single response as `application/graphql-response+json`: a request that
/// failed before execution (it did not parse, validate or coerce its
/// variables) is a 400 without a `data` entry, as the spec says.
fn as_graphql_response(response: async_graphql::Response) -> Response {
    // Field errors carry a path; errors of a request that never ran do not.
    let request_error = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let (data, status) = if request_error {
        (Data::Omitted, StatusCode::BAD_REQUEST)
    } else {
        (Data::Written, StatusCode::OK)
    };
    let mut http = Response::builder()
        .status(status)
        .content_type("application/graphql-response+json; charset=utf-8")
        .body(response_json::single(&response, data));
    for (name, value) in response.http_headers.iter() {
        http.headers_mut().append(name.clone(), value.clone());
    }
    http
}

impl GraphQLHttp {
    async fn read(&self, mut req: Request) -> Result<BatchRequest, Refused> {
        if req.method() == Method::GET {
            let mut request =
                async_graphql::http::parse_query_string(req.uri().query().unwrap_or_default())
                    .map_err(|e| {
                        Refused::bad_request(format!(
                            "the query string is not a GraphQL request: {e}"
                        ))
                    })?;
            require_query(&request, None)?;
            refuse_mutation_over_get(&mut request)?;
            return Ok(BatchRequest::Single(request));
        }
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        let media_type = super::media_type(content_type);
        let graphql_text = match media_type.as_str() {
            "application/json" | "application/graphql-response+json" => false,
            // The bare query as the body, as some clients send it.
            "application/graphql" => true,
            _ => {
                return Err(Refused::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!(
                        "content type {:?} is not supported; send a JSON body {{\"query\": ...}} \
                         with Content-Type: application/json",
                        content_type
                    ),
                ));
            }
        };
        let body = req.take_body().into_vec().await.map_err(|e| {
            Refused::bad_request(format!("the request body could not be read: {e}"))
        })?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(Refused::bad_request(
                "the request body is empty; send a JSON object {\"query\": ...}",
            ));
        }
        if graphql_text {
            let query = String::from_utf8(body)
                .map_err(|_| Refused::bad_request("the request body is not valid UTF-8"))?;
            let request = async_graphql::Request::new(query);
            require_query(&request, None)?;
            return Ok(BatchRequest::Single(request));
        }
        let value: Value = serde_json::from_slice(&body).map_err(|e| {
            Refused::bad_request(format!("the request body is not valid JSON: {e}"))
        })?;
        match value {
            Value::Object(_) => Ok(BatchRequest::Single(request_from(value, None)?)),
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(Refused::bad_request(
                        "the batch is empty; send at least one operation",
                    ));
                }
                if items.len() > self.max_batch {
                    return Err(Refused::bad_request(format!(
                        "the batch holds {} operations; the limit is {}",
                        items.len(),
                        self.max_batch
                    )));
                }
                let requests = items
                    .into_iter()
                    .enumerate()
                    .map(|(index, item)| request_from(item, Some(index)))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(BatchRequest::Batch(requests))
            }
            _ => Err(Refused::bad_request(
                "the request body must be a JSON object {\"query\": ...} or an array of them",
            )),
        }
    }
}

fn request_from(value: Value, index: Option<usize>) -> Result<async_graphql::Request, Refused> {
    let at = index
        .map(|i| format!("operation {i} of the batch"))
        .unwrap_or_else(|| "the request".into());
    if !value.is_object() {
        return Err(Refused::bad_request(format!(
            "{at} must be a JSON object {{\"query\": ...}}"
        )));
    }
    let request = serde_json::from_value(value)
        .map_err(|e| Refused::bad_request(format!("{at} is not a GraphQL request: {e}")))?;
    require_query(&request, index)?;
    Ok(request)
}

/// async-graphql would answer a missing query with a bare parser error.
fn require_query(request: &async_graphql::Request, index: Option<usize>) -> Result<(), Refused> {
    if request.query.trim().is_empty() {
        let at = index
            .map(|i| format!("operation {i} of the batch"))
            .unwrap_or_else(|| "the request".into());
        return Err(Refused::bad_request(format!(
            "{at} has no query; send {{\"query\": \"{{ ... }}\"}}"
        )));
    }
    Ok(())
}

/// Mutations change state, so they must come by POST: a GET can be sent by a
/// link or an image tag on another site, and caches and proxies may repeat it.
fn refuse_mutation_over_get(request: &mut async_graphql::Request) -> Result<(), Refused> {
    let operation_name = request.operation_name.clone();
    // A query that does not parse is answered by the schema with its syntax
    // error. Parsed through the document cache, as `Operation::start` does.
    let Some(document) = crate::graphql::documents::parse(request) else {
        return Ok(());
    };
    let is_mutation = match (&document.operations, operation_name.as_deref()) {
        (DocumentOperations::Single(operation), _) => operation.node.ty == OperationType::Mutation,
        (DocumentOperations::Multiple(operations), Some(name)) => operations
            .get(name)
            .is_some_and(|operation| operation.node.ty == OperationType::Mutation),
        (DocumentOperations::Multiple(operations), None) => operations
            .values()
            .any(|operation| operation.node.ty == OperationType::Mutation),
    };
    if is_mutation {
        return Err(Refused::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "mutations are not allowed over GET; send them with POST",
        ));
    }
    Ok(())
}
