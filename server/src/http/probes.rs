//! Readiness (liveness, `/health`, is part of the REST API).

use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{IntoResponse, handler};
use serde_json::json;

use crate::graphql::AppState;

/// Readiness: 200 only when the database answers.
#[handler]
pub async fn ready(state: Data<&AppState>) -> impl IntoResponse {
    match tokio::time::timeout(std::time::Duration::from_secs(2), state.db.ping()).await {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(json!({ "status": "UP", "database": "UP" })),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "DOWN", "database": "DOWN" })),
        ),
    }
}
