//! `GET /metrics` and the middleware that counts and times every HTTP request.
//! Routes are labelled from a fixed set of known paths, never from the raw path,
//! so a client requesting random URLs cannot create unbounded label values.

use std::time::Instant;

use poem::http::{Method, StatusCode};
use poem::web::Data;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result, handler};

use crate::metrics::{self, ScrapeSources};

/// Prometheus text format.
#[handler]
pub async fn scrape(sources: Data<&ScrapeSources>) -> Response {
    match metrics::render(&sources).await {
        Some(text) => text
            .with_content_type("text/plain; version=0.0.4; charset=utf-8")
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not enabled in this process",
        )
            .into_response(),
    }
}

pub struct HttpMetrics;

impl<E: Endpoint> Middleware<E> for HttpMetrics {
    type Output = HttpMetricsEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        HttpMetricsEndpoint { inner }
    }
}

pub struct HttpMetricsEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for HttpMetricsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let method = method_label(req.method());
        let route = route_label(req.uri().path());
        let started = Instant::now();
        let result = self.inner.call(req).await.map(IntoResponse::into_response);
        let status = match &result {
            Ok(response) => response.status(),
            Err(error) => error.status(),
        };
        metrics::http_request(method, route, status.as_u16(), started.elapsed());
        result
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

fn route_label(path: &str) -> &'static str {
    match path {
        "/graphql" => "/graphql",
        "/graphql/ws" => "/graphql/ws",
        "/health" => "/health",
        "/ready" => "/ready",
        "/metrics" => "/metrics",
        "/graphiql" => "/graphiql",
        "/" => "/",
        "/openapi.json" => "/openapi.json",
        "/docs" => "/docs",
        path if path.starts_with("/assets/") => "/assets/*",
        path => rest_route_label(path),
    }
}

/// The REST path template a path matches (its ids and names left out, so
/// the labels stay few), or `other`.
fn rest_route_label(path: &str) -> &'static str {
    let mut segments = path.strip_prefix('/').unwrap_or_default().split('/');
    let template = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    );
    match template {
        (Some("functions"), None, ..) => "/functions",
        (Some("functions"), Some(id), None, _) if !id.is_empty() => "/functions/{id}",
        (Some("functions"), Some(id), Some("execute"), None) if !id.is_empty() => {
            "/functions/{id}/execute"
        }
        (Some("functions"), Some(id), Some("executions"), None) if !id.is_empty() => {
            "/functions/{id}/executions"
        }
        (Some("executions"), Some(id), None, _) if !id.is_empty() => "/executions/{id}",
        (Some("run"), Some(name), None, _) if !name.is_empty() => "/run/{name}",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_paths_never_become_labels() {
        assert_eq!(route_label("/graphql"), "/graphql");
        assert_eq!(route_label("/assets/index-abc.js"), "/assets/*");
        assert_eq!(route_label("/graphql/../etc/passwd"), "other");
        assert_eq!(route_label("/a-random-path-1234"), "other");
        assert_eq!(route_label("/functions"), "/functions");
        assert_eq!(route_label("/functions/3f2a"), "/functions/{id}");
        assert_eq!(
            route_label("/functions/3f2a/execute"),
            "/functions/{id}/execute"
        );
        assert_eq!(
            route_label("/functions/3f2a/executions"),
            "/functions/{id}/executions"
        );
        assert_eq!(route_label("/executions/9e1b"), "/executions/{id}");
        assert_eq!(route_label("/run/my%20function"), "/run/{name}");
        assert_eq!(route_label("/functions/3f2a/other"), "other");
        assert_eq!(route_label("/functions//execute"), "other");
        assert_eq!(route_label("/run/a/b"), "other");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "OTHER");
    }

    /// The labels repeat the REST handlers' paths (`#[oai(path)]` takes only
    /// literals): every path of the OpenAPI document, with a value in each
    /// parameter, is labelled with its own template.
    #[test]
    fn every_rest_path_has_its_own_label() {
        let spec: serde_json::Value = serde_json::from_str(&crate::rest::service().spec()).unwrap();
        let paths = spec["paths"].as_object().unwrap();
        assert!(paths.len() >= 6, "{paths:?}");
        for template in paths.keys() {
            let path = template.replace("{id}", "3f2a").replace("{name}", "greet");
            assert_eq!(route_label(&path), template, "{path}");
        }
    }
}
