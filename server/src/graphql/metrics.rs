//! Counts GraphQL operations by type and outcome for `/metrics`, whatever the
//! transport (HTTP, batches, WebSocket; see [`super::operation`]). The type is
//! learnt from the parsed document and the request's operation name; the
//! outcome is `ok` or the code of the first error, read after
//! [`super::error::with_codes`] gave every error one.

use async_graphql::Response;
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};

use super::error::ErrorCode;

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

pub(super) fn operation_kind(
    document: &ExecutableDocument,
    name: Option<&str>,
) -> Option<&'static str> {
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

/// Counts one operation of `kind` by its response.
pub(super) fn record(kind: &'static str, response: &Response) {
    crate::metrics::graphql_operation(kind, outcome(response));
}
