//! `/functions` and `/functions/{id}`: create, list, read, replace, delete.

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::bodies::{FunctionDetails, FunctionRequest, FunctionResponse};
use super::error::RestError;
use super::{ApiTag, Listed, next_link, page_request, parse_id};
use crate::functions::{self, FunctionFilter, OptionalColumns};
use crate::graphql::AppState;

pub struct FunctionsApi;

#[derive(ApiResponse)]
enum Created {
    /// Stored as PENDING; its compilation is queued.
    #[oai(status = 201)]
    Created(Json<FunctionResponse>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// Deleted, with its versions and executions.
    #[oai(status = 204)]
    NoContent,
}

#[OpenApi(tag = "ApiTag::Functions")]
impl FunctionsApi {
    /// Create a function
    ///
    /// Stores it as PENDING and queues its compilation in the same transaction.
    #[oai(path = "/functions", method = "post")]
    async fn create(
        &self,
        state: Data<&AppState>,
        body: Json<FunctionRequest>,
    ) -> Result<Created, RestError> {
        let new = body.0.into_new()?;
        let created = functions::create(&state.db, &state.function_limits, new).await?;
        Ok(Created::Created(Json(created.into())))
    }

    /// List functions
    #[oai(path = "/functions", method = "get")]
    async fn list(
        &self,
        state: Data<&AppState>,
        /// 1..1000, default 100.
        limit: Query<Option<i32>>,
        /// The cursor of the `Link` header's next page.
        after: Query<Option<String>>,
    ) -> Result<Listed<FunctionResponse>, RestError> {
        let page = page_request(limit.0, after.0.as_deref())?;
        let page = functions::list(
            &state.reads,
            &FunctionFilter::default(),
            &page,
            false,
            // A listed function is its id, name, status and creation time.
            OptionalColumns::NONE,
        )
        .await?;
        let next = next_link("/functions", &page, |f| (f.created_at, f.id));
        Ok(Listed::Ok(
            Json(page.items.into_iter().map(Into::into).collect()),
            next,
        ))
    }

    /// Get a function
    #[oai(path = "/functions/:id", method = "get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        /// The function's UUID.
        id: Path<String>,
    ) -> Result<Json<FunctionDetails>, RestError> {
        let id = parse_id("function", &id.0)?;
        let function = functions::get(&state.reads, id)
            .await?
            .ok_or_else(|| RestError::function_not_found(id))?;
        Ok(Json(function.into()))
    }

    /// Replace a function
    ///
    /// A changed source or language records a new revision and compiles it
    /// (status PENDING, compileError null); the deployed revision keeps serving.
    #[oai(path = "/functions/:id", method = "put")]
    async fn replace(
        &self,
        state: Data<&AppState>,
        /// The function's UUID.
        id: Path<String>,
        body: Json<FunctionRequest>,
    ) -> Result<Json<FunctionDetails>, RestError> {
        let id = parse_id("function", &id.0)?;
        let changes = body.0.into_changes()?;
        let updated =
            functions::update(&state.db, &state.function_limits, id, changes, None).await?;
        Ok(Json(updated.into()))
    }

    /// Delete a function
    #[oai(path = "/functions/:id", method = "delete")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        /// The function's UUID.
        id: Path<String>,
    ) -> Result<Deleted, RestError> {
        let id = parse_id("function", &id.0)?;
        functions::delete(&state.db, id).await?;
        Ok(Deleted::NoContent)
    }
}
