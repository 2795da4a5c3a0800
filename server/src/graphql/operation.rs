//! What every GraphQL operation gets on its way out, whatever the transport
//! (HTTP, batches, WebSocket): the contract's error codes
//! ([`super::error::with_codes`]) and the operation counter
//! ([`super::metrics`]). A transport calls [`Operation::start`] before it
//! executes a request, then [`Operation::finish`] on the response or
//! [`Operation::follow`] on a stream of them.
//!
//! This is not a schema extension on purpose: with any extension registered,
//! async-graphql sends every field through its extension chain (a registry
//! lookup and boxed futures per field), and one page of 50 functions is 350
//! fields (BENCHMARKS.md, "List query").

use async_graphql::{Request, Response};
use futures::stream::{BoxStream, Stream, StreamExt};

use super::{documents, error, metrics};

/// One operation on its way through a transport.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    kind: &'static str,
}

impl Operation {
    /// Learns the operation's type from its document, which is parsed here
    /// (or taken from [`documents`]) once and kept in `request` for the
    /// execution.
    pub fn start(request: &mut Request) -> Self {
        let name = request.operation_name.clone();
        let kind = documents::parse(request)
            .and_then(|document| metrics::operation_kind(document, name.as_deref()))
            .unwrap_or("unknown");
        Self { kind }
    }

    /// The response with every error coded, counted.
    pub fn finish(self, response: Response) -> Response {
        let response = error::with_codes(response);
        metrics::record(self.kind, &response);
        response
    }

    /// Every response coded; the operation counted once, by its first (the
    /// snapshot or the error).
    pub fn follow<'a>(
        self,
        responses: impl Stream<Item = Response> + Send + 'a,
    ) -> BoxStream<'a, Response> {
        let mut counted = false;
        responses
            .map(move |response| {
                let response = error::with_codes(response);
                if !counted {
                    counted = true;
                    metrics::record(self.kind, &response);
                }
                response
            })
            .boxed()
    }
}
