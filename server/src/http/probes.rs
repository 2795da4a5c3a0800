//! Liveness and readiness.

use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{IntoResponse, handler};
use serde_json::json;

use crate::graphql::AppState;

/// Liveness: the process answers.
#[handler]
pub fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "UP" }))
}

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
