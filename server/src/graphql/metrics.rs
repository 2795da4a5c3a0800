//! Counts GraphQL operations by type and outcome for `/metrics`, whatever the
//! transport (HTTP, batches, WebSocket). The type is learnt from the parsed
//! document and the request's operation name; the outcome is `ok` or the code
//! of the first error, read after [`super::error::ErrorCodes`] gave every error
//! one (this extension is registered before it, so it wraps it).

use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest,
    NextSubscribe,
};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use async_graphql::{Request, Response, ServerResult, Variables};
use futures::StreamExt;
use futures::stream::BoxStream;

use super::error::ErrorCode;

pub struct OperationMetrics;

impl ExtensionFactory for OperationMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationMetricsExtension::default())
    }
}

#[derive(Default)]
struct Seen {
    operation_name: Option<String>,
    kind: Option<&'static str>,
}

/// One per request; shared with the subscription stream it wraps.
#[derive(Default)]
struct OperationMetricsExtension {
    seen: Arc<Mutex<Seen>>,
}

/// The `type` label values, "unknown" for a document that did not parse.
pub const OPERATION_KINDS: [&str; 4] = ["query", "mutation", "subscription", "unknown"];

/// The `outcome` label values: "ok", a contract code, or "other".
pub fn outcomes() -> impl Iterator<Item = &'static str> {
    ["ok", "other"]
        .into_iter()
        .chain(ErrorCode::ALL.into_iter().map(ErrorCode::as_str))
}

fn kind_name(ty: OperationType) -> &'static str {
    match ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    }
}

fn operation_kind(document: &ExecutableDocument, name: Option<&str>) -> Option<&'static str> {
    let ty = match (&document.operations, name) {
        (DocumentOperations::Single(operation), _) => operation.node.ty,
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name)?.node.ty,
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next()?.node.ty
        }
        (DocumentOperations::Multiple(_), None) => return None,
    };
    Some(kind_name(ty))
}

/// `ok`, or the contract code of the first error (bounded label values).
fn outcome(response: &Response) -> &'static str {
    let Some(error) = response.errors.first() else {
        return "ok";
    };
    let code = error
        .extensions
        .as_ref()
        .and_then(|ext| ext.get("code"))
        .and_then(|code| match code {
            async_graphql::Value::String(code) => Some(code.as_str()),
            _ => None,
        });
    ErrorCode::ALL
        .into_iter()
        .map(ErrorCode::as_str)
        .find(|known| code == Some(*known))
        .unwrap_or("other")
}

fn record(seen: &Mutex<Seen>, response: &Response) {
    let kind = seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .kind
        .unwrap_or("unknown");
    crate::metrics::graphql_operation(kind, outcome(response));
}

#[async_trait::async_trait]
impl Extension for OperationMetricsExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let response = next.run(ctx).await;
        record(&self.seen, &response);
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        // Counted once, by its first response: the snapshot or the error.
        let seen = Arc::clone(&self.seen);
        let mut counted = false;
        next.run(ctx, stream)
            .map(move |response| {
                if !counted {
                    counted = true;
                    record(&seen, &response);
                }
                response
            })
            .boxed()
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .operation_name = request.operation_name.clone();
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.kind = operation_kind(&document, seen.operation_name.as_deref());
        drop(seen);
        Ok(document)
    }
}
