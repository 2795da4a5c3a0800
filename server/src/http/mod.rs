//! The HTTP surface of the contract: GraphQL over HTTP and WebSocket, the REST
//! API and HTTP triggers with their OpenAPI document ([`crate::rest`]),
//! GraphiQL, the playground, health and readiness probes and Prometheus
//! metrics. Every error outside GraphQL has the REST error body.

mod accepted;
mod auth;
mod body_limit;
mod graphql;
mod metrics;
mod probes;
mod response_json;
mod static_pages;
pub mod ws;

pub use accepted::{AcceptedSockets, Accepting};
pub use auth::Face;

/// The media type of a `Content-Type` or `Accept` item, without its
/// parameters, lower-cased: `"Application/JSON; charset=utf-8"` → `"application/json"`.
pub fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

use std::sync::Arc;

use poem::middleware::Tracing;
use poem::{EndpointExt, IntoEndpoint, Route, get};

use crate::config::ApiSettings;
use crate::graphql::{AppSchema, AppState};

/// Cross-origin access for browser pages served elsewhere (a dashboard on
/// another origin): GraphQL, REST and the triggers, with the headers they use.
fn cors(settings: &ApiSettings) -> poem::middleware::Cors {
    use poem::http::Method;
    let cors = poem::middleware::Cors::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(["authorization", "content-type"])
        .expose_headers(["x-execution-id", "link"])
        .max_age(600);
    match &settings.cors_origins {
        Some(crate::config::CorsOrigins::Only(origins)) => cors.allow_origins(origins.clone()),
        _ => cors,
    }
}

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
    .with(auth::RequireApiKey(
        settings.api_keys.clone(),
        auth::Face::GraphQL,
    ));
    let mut graphql_ws = ws::GraphQLWs::new(schema)
        .sockets(sockets)
        .settings(settings.websocket())
        .share_results(Arc::new(crate::graphql::subscription::shares_results));
    if let Some(keys) = &settings.api_keys {
        graphql_ws = graphql_ws.auth(auth::ApiKeyConnectionAuth(keys.clone()));
    }
    let rest = Arc::new(crate::rest::service().into_endpoint());
    let mut routes = Route::new()
        .at("/graphql", graphql_http)
        .at("/graphql/ws", get(graphql_ws));
    for open in crate::rest::OPEN_PATHS {
        routes = routes.at(*open, Arc::clone(&rest));
    }
    for prefix in crate::rest::PATH_PREFIXES {
        let guarded = Arc::clone(&rest).with(auth::RequireApiKey(
            settings.api_keys.clone(),
            auth::Face::Rest,
        ));
        routes = routes.nest_no_strip(*prefix, guarded);
    }
    routes
        .at("/ready", get(probes::ready))
        .at("/metrics", get(metrics::scrape))
        .nest("/", static_pages::routes(&settings.playground_dir()))
        .data(scrape_sources)
        .data(state)
        .with(body_limit::BodyLimit(settings.max_body_bytes))
        .with(crate::rest::ErrorBodies)
        .with_if(settings.cors_origins.is_some(), cors(settings))
        .with(metrics::HttpMetrics)
        .with(Tracing)
}
