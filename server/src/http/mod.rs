//! The HTTP surface of the contract: GraphQL over HTTP and WebSocket, GraphiQL,
//! the playground, health and readiness probes and Prometheus metrics.

mod body_limit;
mod probes;
mod static_pages;

use poem::middleware::Tracing;
use poem::{EndpointExt, Route, get};

use async_graphql_poem::{GraphQL, GraphQLSubscription};

use crate::config::ApiSettings;
use crate::graphql::{AppSchema, AppState};

pub fn routes(
    schema: AppSchema,
    state: AppState,
    settings: &ApiSettings,
) -> impl poem::Endpoint + use<> {
    Route::new()
        .at(
            "/graphql",
            get(GraphQL::new(schema.clone())).post(GraphQL::new(schema.clone())),
        )
        .at("/graphql/ws", get(GraphQLSubscription::new(schema)))
        .at("/health", get(probes::health))
        .at("/ready", get(probes::ready))
        .nest("/", static_pages::routes(&settings.playground_dir))
        .data(state)
        .with(body_limit::BodyLimit(settings.max_body_bytes))
        .with(Tracing)
}
