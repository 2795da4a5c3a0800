//! The HTTP surface of the contract: GraphQL over HTTP and WebSocket, GraphiQL,
//! the playground, health and readiness probes and Prometheus metrics.

mod auth;
mod body_limit;
mod graphql;
mod metrics;
mod probes;
mod static_pages;
pub mod ws;

use poem::middleware::Tracing;
use poem::{EndpointExt, Route, get};

use crate::config::ApiSettings;
use crate::graphql::{AppSchema, AppState};

pub fn routes(
    schema: AppSchema,
    state: AppState,
    settings: &ApiSettings,
    sockets: ws::Sockets,
) -> impl poem::Endpoint + use<> {
    let scrape_sources = crate::metrics::ScrapeSources {
        db: state.db.clone(),
        events: state.events.clone(),
        runtime: state.executor.runtime().clone(),
    };
    let graphql_http = get(graphql::GraphQLHttp::new(
        schema.clone(),
        settings.max_batch,
    ))
    .post(graphql::GraphQLHttp::new(
        schema.clone(),
        settings.max_batch,
    ))
    .with(auth::RequireApiKey(settings.api_keys.clone()));
    let mut graphql_ws = ws::GraphQLWs::new(schema).sockets(sockets);
    if let Some(keys) = &settings.api_keys {
        graphql_ws = graphql_ws.auth(auth::ApiKeyConnectionAuth(keys.clone()));
    }
    Route::new()
        .at("/graphql", graphql_http)
        .at("/graphql/ws", get(graphql_ws))
        .at("/health", get(probes::health))
        .at("/ready", get(probes::ready))
        .at("/metrics", get(metrics::scrape))
        .nest("/", static_pages::routes(&settings.playground_dir()))
        .data(scrape_sources)
        .data(state)
        .with(body_limit::BodyLimit(settings.max_body_bytes))
        .with(metrics::HttpMetrics)
        .with(Tracing)
}
