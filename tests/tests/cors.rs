//! CORS (`PROJECTNIL_CORS_ORIGINS`): pages on an allowed origin may call
//! GraphQL, REST and the triggers; others get no allow header; unset means
//! same-origin only. Real preflights through a real HTTP client.

use reqwest::Method;
use tests::{ServerOptions, TestApp};

const ALLOWED: &str = "http://dash.example.test:5173";

async fn preflight(app: &TestApp, path: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(Method::OPTIONS, format!("{}{path}", app.server.base_url))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn allowed_origins_get_preflights_and_allow_headers_others_do_not() {
    let app = TestApp::start_with(ServerOptions::default().arg("--no-worker").env(
        "PROJECTNIL_CORS_ORIGINS",
        format!("https://other.example.test, {ALLOWED}"),
    ))
    .await
    .unwrap();
    for path in ["/graphql", "/functions", "/run/anything"] {
        let allowed = preflight(&app, path, ALLOWED).await;
        assert!(
            allowed.status().is_success(),
            "{path}: {}",
            allowed.status()
        );
        assert_eq!(
            header(&allowed, "access-control-allow-origin"),
            Some(ALLOWED),
            "{path}"
        );
        let methods = header(&allowed, "access-control-allow-methods")
            .unwrap_or_default()
            .to_uppercase();
        assert!(
            methods.contains("POST") && methods.contains("GET"),
            "{path}: {methods}"
        );
        let headers = header(&allowed, "access-control-allow-headers")
            .unwrap_or_default()
            .to_lowercase();
        assert!(
            headers.contains("authorization") && headers.contains("content-type"),
            "{path}: {headers}"
        );

        let refused = preflight(&app, path, "https://evil.example.test").await;
        assert_eq!(
            header(&refused, "access-control-allow-origin"),
            None,
            "{path}"
        );
    }
    let listed = reqwest::Client::new()
        .get(format!("{}/functions", app.server.base_url))
        .header("origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    assert_eq!(
        header(&listed, "access-control-allow-origin"),
        Some(ALLOWED)
    );
    let exposed = header(&listed, "access-control-expose-headers")
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        exposed.contains("x-execution-id") && exposed.contains("link"),
        "{exposed}"
    );
}

#[tokio::test]
async fn without_the_setting_only_the_same_origin_is_served() {
    let app = TestApp::start_without_worker().await.unwrap();
    let response = preflight(&app, "/graphql", ALLOWED).await;
    assert_eq!(header(&response, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn a_wildcard_allows_any_origin_and_a_bad_origin_is_refused_at_start_up() {
    let app = TestApp::start_with(
        ServerOptions::default()
            .arg("--no-worker")
            .env("PROJECTNIL_CORS_ORIGINS", "*"),
    )
    .await
    .unwrap();
    let response = preflight(&app, "/graphql", "https://anyone.example.test").await;
    assert!(header(&response, "access-control-allow-origin").is_some());

    let refused = TestApp::start_with(
        ServerOptions::default().env("PROJECTNIL_CORS_ORIGINS", "dash.example.test"),
    )
    .await;
    let error = refused
        .err()
        .expect("a bad origin stops start-up")
        .to_string();
    assert!(
        error.contains("exited") || error.contains("origin"),
        "{error}"
    );
}
