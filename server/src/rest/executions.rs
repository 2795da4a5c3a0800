//! `/functions/{id}/execute`, `/functions/{id}/executions` and
//! `/executions/{id}`.

use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;

use super::bodies::{ExecutionRequest, ExecutionResponse, ExecutionSummary};
use super::error::RestError;
use super::{ApiTag, Listed, OptionalJson, next_link, page_request, parse_id};
use crate::executions::{self, ExecutionError, ExecutionFilter, Wait};
use crate::functions;
use crate::graphql::AppState;

pub struct ExecutionsApi;

#[OpenApi(tag = "ApiTag::Executions")]
impl ExecutionsApi {
    /// Run a function
    ///
    /// Runs the deployed revision and answers with the finished execution:
    /// 200 also when the function's own code failed (status FAILED, with its
    /// errorMessage). The body may be omitted; `input` omitted or null means `{}`.
    #[oai(path = "/functions/:id/execute", method = "post")]
    async fn execute(
        &self,
        state: Data<&AppState>,
        /// The function's UUID.
        id: Path<String>,
        body: OptionalJson<ExecutionRequest>,
    ) -> Result<Json<ExecutionResponse>, RestError> {
        let id = parse_id("function", &id.0)?;
        let input = body.0.unwrap_or_default().input;
        let execution = state
            .executor
            .execute(id, input, Wait::UntilFinished)
            .await?;
        Ok(Json(execution.into()))
    }

    /// List a function's executions
    #[oai(path = "/functions/:id/executions", method = "get")]
    async fn list(
        &self,
        state: Data<&AppState>,
        /// The function's UUID.
        id: Path<String>,
        /// 1..1000, default 100.
        limit: Query<Option<i32>>,
        /// The cursor of the `Link` header's next page.
        after: Query<Option<String>>,
    ) -> Result<Listed<ExecutionSummary>, RestError> {
        let id = parse_id("function", &id.0)?;
        let page = page_request(limit.0, after.0.as_deref())?;
        if !functions::exists(&state.reads, id).await? {
            return Err(RestError::function_not_found(id));
        }
        let filter = ExecutionFilter {
            function_id: Some(id),
            ..Default::default()
        };
        let page = executions::list(&state.reads, &filter, &page, false).await?;
        let next = next_link(&format!("/functions/{id}/executions"), &page, |e| {
            (e.created_at, e.id)
        });
        Ok(Listed::Ok(
            Json(page.items.into_iter().map(Into::into).collect()),
            next,
        ))
    }

    /// Get an execution
    #[oai(path = "/executions/:id", method = "get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        /// The execution's UUID.
        id: Path<String>,
    ) -> Result<Json<ExecutionResponse>, RestError> {
        let id = parse_id("execution", &id.0)?;
        let execution = executions::get(&state.reads, id)
            .await?
            .ok_or(ExecutionError::NotFound(id))?;
        Ok(Json(execution.into()))
    }
}
