//! Operations that change state.

use async_graphql::{Context, InputObject, Json, MaybeUndefined, Object, Result};
use uuid::Uuid;

use super::AppState;
use super::error::ResultExt;
use super::types::{Execution, Function};
use crate::executions::Wait;
use crate::functions::{self, FunctionChanges, NewFunction};

pub struct MutationRoot;

#[derive(InputObject)]
pub struct CreateFunctionInput {
    pub name: String,
    pub description: Option<String>,
    /// Only "assemblyscript" today; see Query.languages.
    pub language: String,
    pub source: String,
}

/// Omitted fields stay as they are. A changed source or language records a new revision and compiles it (status back to PENDING); the deployed revision keeps serving meanwhile.
#[derive(InputObject)]
pub struct UpdateFunctionInput {
    pub name: Option<String>,
    /// null clears the description.
    pub description: MaybeUndefined<String>,
    pub language: Option<String>,
    pub source: Option<String>,
}

#[Object(name = "Mutation")]
impl MutationRoot {
    /// Stores the function as PENDING and enqueues its compilation in the same transaction.
    async fn create_function(
        &self,
        ctx: &Context<'_>,
        input: CreateFunctionInput,
    ) -> Result<Function> {
        let state = ctx.data_unchecked::<AppState>();
        let new = NewFunction {
            name: input.name,
            description: input.description,
            language: input.language,
            source: input.source,
        };
        Ok(functions::create(&state.db, &state.function_limits, new)
            .await
            .api()?
            .into())
    }

    /// CONFLICT when expectedRevision is given and the function is no longer at that revision; nothing changes then.
    async fn update_function(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        input: UpdateFunctionInput,
        expected_revision: Option<i64>,
    ) -> Result<Function> {
        let state = ctx.data_unchecked::<AppState>();
        let changes = FunctionChanges {
            name: input.name,
            description: match input.description {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(description) => Some(Some(description)),
            },
            language: input.language,
            source: input.source,
        };
        let limits = &state.function_limits;
        Ok(
            functions::update(&state.db, limits, id, changes, expected_revision)
                .await
                .api()?
                .into(),
        )
    }

    /// Makes a READY revision live again without compiling: records it as a new revision, deployed at once.
    async fn rollback_function(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        revision: i64,
    ) -> Result<Function> {
        let state = ctx.data_unchecked::<AppState>();
        Ok(functions::rollback(&state.db, id, revision)
            .await
            .api()?
            .into())
    }

    /// Deletes the function, its versions and its executions; returns the deleted id.
    async fn delete_function(&self, ctx: &Context<'_>, id: Uuid) -> Result<Uuid> {
        let state = ctx.data_unchecked::<AppState>();
        functions::delete(&state.db, id).await.api()?;
        Ok(id)
    }

    /// Runs the function now and returns the finished execution (COMPLETED or FAILED). input must be a JSON object; null or omitted means {}.
    async fn execute_function(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        input: Option<Json<serde_json::Value>>,
    ) -> Result<Execution> {
        run(ctx, id, input, Wait::UntilFinished).await
    }

    /// Ends a PENDING or RUNNING execution FAILED ("cancelled"); a finished one is returned unchanged.
    async fn cancel_execution(&self, ctx: &Context<'_>, id: Uuid) -> Result<Execution> {
        let state = ctx.data_unchecked::<AppState>();
        Ok(state.executor.cancel(id).await.api()?.into())
    }

    /// Accepts the execution and returns at once (PENDING or RUNNING); follow it with executionStatusChanged.
    async fn start_execution(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        input: Option<Json<serde_json::Value>>,
    ) -> Result<Execution> {
        run(ctx, id, input, Wait::No).await
    }
}

async fn run(
    ctx: &Context<'_>,
    id: Uuid,
    input: Option<Json<serde_json::Value>>,
    wait: Wait,
) -> Result<Execution> {
    let state = ctx.data_unchecked::<AppState>();
    let execution = state
        .executor
        .execute(id, input.map(|j| j.0), wait)
        .await
        .api()?;
    Ok(execution.into())
}
