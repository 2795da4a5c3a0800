//! The dashboard (`/`) and GraphiQL (`/graphiql`), built from `playground/` into
//! static files that the server serves itself, so both work with no internet
//! access. When they are not built, the pages say how to build them.

use std::path::{Path, PathBuf};

use poem::endpoint::StaticFilesEndpoint;
use poem::http::StatusCode;
use poem::web::Html;
use poem::{Endpoint, EndpointExt, IntoResponse, Response, Route, get, handler};

pub fn routes(dir: &Path) -> impl Endpoint + use<> {
    let index = dir.join("index.html");
    let graphiql = dir.join("graphiql.html");
    Route::new()
        .at("/", get(page.data(PagePath(index))))
        .at("/graphiql", get(page.data(PagePath(graphiql))))
        .nest("/assets", StaticFilesEndpoint::new(dir.join("assets")))
}

#[derive(Clone)]
struct PagePath(PathBuf);

#[handler]
async fn page(path: poem::web::Data<&PagePath>) -> Response {
    match tokio::fs::read_to_string(&path.0.0).await {
        Ok(html) => Html(html).into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Html(format!(
                "<!doctype html><title>ProjectNIL</title><h1>The playground is not built</h1>\
                 <p>Build it with <code>npm ci --prefix playground &amp;&amp; npm run build --prefix playground</code> \
                 (the README's run command does this), then reload. Looked for <code>{}</code>.</p>\
                 <p>The GraphQL API itself is up at <code>/graphql</code>.</p>",
                path.0.0.file_name().and_then(|n| n.to_str()).unwrap_or("index.html")
            )),
        )
            .into_response(),
    }
}
