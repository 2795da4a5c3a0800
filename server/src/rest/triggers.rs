//! HTTP triggers: `POST /run/{name}` and `GET /run/{name}?…` run a function's
//! deployed revision from anything that speaks HTTP and answer with the
//! function's own output as the body.

use std::collections::BTreeMap;

use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use serde_json::Value;

use super::ApiTag;
use super::error::{ErrorBody, RestError};
use super::input::TriggerInput;
use crate::executions::{ExecutionError, Wait};
use crate::functions;
use crate::graphql::AppState;
use entity::ExecutionStatus;

pub struct TriggersApi;

#[derive(ApiResponse)]
enum TriggerAnswer {
    /// The function's output.
    #[oai(status = 200)]
    Completed(
        Json<Value>,
        /// The execution that produced it.
        #[oai(header = "X-Execution-Id")]
        String,
    ),
    /// The function's own code failed; `message` is the execution's errorMessage.
    #[oai(status = 422)]
    Failed(
        Json<ErrorBody>,
        /// The execution that failed.
        #[oai(header = "X-Execution-Id")]
        String,
    ),
    /// The function has no deployed (READY) revision yet.
    #[oai(status = 503)]
    NotDeployed(Json<ErrorBody>),
}

#[OpenApi(tag = "ApiTag::Triggers")]
impl TriggersApi {
    /// Run a function by name
    ///
    /// The body is the input (a JSON object, or a form); empty means `{}`.
    #[oai(path = "/run/:name", method = "post")]
    async fn post(
        &self,
        state: Data<&AppState>,
        /// The function's name, URL-encoded.
        name: Path<String>,
        input: TriggerInput,
    ) -> Result<TriggerAnswer, RestError> {
        run(&state, &name.0, input.0).await
    }

    /// Run a function by name, with the query string as its input
    ///
    /// `?a=1&b=x` runs with `{"a": "1", "b": "x"}`.
    #[oai(path = "/run/:name", method = "get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        /// The function's name, URL-encoded.
        name: Path<String>,
        query: poem::web::Query<BTreeMap<String, String>>,
    ) -> Result<TriggerAnswer, RestError> {
        let input = serde_json::to_value(query.0).unwrap_or_default();
        run(&state, &name.0, Some(input)).await
    }
}

async fn run(
    state: &AppState,
    name: &str,
    input: Option<Value>,
) -> Result<TriggerAnswer, RestError> {
    let function = functions::find_by_name(&state.reads, name)
        .await?
        .ok_or_else(|| RestError::function_not_found(name))?;
    let execution = match state
        .executor
        .execute(function.id, input, Wait::UntilFinished)
        .await
    {
        Ok(execution) => execution,
        Err(ExecutionError::FunctionNotReady { status, .. }) => {
            return Ok(TriggerAnswer::NotDeployed(Json(ErrorBody::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "Function {name} is not ready: no revision has compiled yet (its latest is {status})"
                ),
            ))));
        }
        Err(error) => return Err(error.into()),
    };
    let id = execution.id.to_string();
    Ok(match execution.status {
        ExecutionStatus::Completed => {
            TriggerAnswer::Completed(Json(execution.output.unwrap_or(Value::Null)), id)
        }
        _ => TriggerAnswer::Failed(
            Json(ErrorBody::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                execution
                    .error_message
                    .unwrap_or_else(|| "the execution failed".into()),
            )),
            id,
        ),
    })
}
