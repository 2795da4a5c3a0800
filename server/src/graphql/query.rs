//! Read-only operations.

use async_graphql::{Context, Object, Result};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::analytics::ExecutionStats;
use super::columns::Listed;
use super::error::ResultExt;
use super::types::{
    Execution, ExecutionConnection, ExecutionErrorKind, ExecutionStatus, Function,
    FunctionConnection, FunctionStatus, QueueStats, connection, selects_total_count,
};
use super::{AppState, DB_FIELD_COST};
use crate::analytics::Scope;
use crate::executions::{self, ExecutionFilter};
use crate::functions::{self, FunctionFilter, OptionalColumns, SUPPORTED_LANGUAGES};
use crate::pagination::{DEFAULT_PAGE_SIZE, PageCursor, PageRequest};
use crate::queue;

pub struct QueryRoot;

/// The [`OptionalColumns`] a `functions` page's nodes select, through
/// `nodes` or `edges { node }`, fragments included.
fn listed_function_columns(ctx: &Context<'_>) -> OptionalColumns {
    let connection = ctx.look_ahead();
    let (nodes, edges) = (
        connection.field("nodes"),
        connection.field("edges").field("node"),
    );
    let selects = |field: &str| nodes.field(field).exists() || edges.field(field).exists();
    OptionalColumns {
        source: selects("source"),
        description: selects("description"),
        compile_error: selects("compileError"),
        wasm_size: selects("wasmSize") || selects("wasmBinary"),
    }
}

#[Object(name = "Query")]
impl QueryRoot {
    /// Newest first. first: 1..100.
    #[graphql(complexity = "DB_FIELD_COST + child_complexity")]
    async fn functions(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        status: Option<FunctionStatus>,
        name_contains: Option<String>,
    ) -> Result<FunctionConnection> {
        let page = PageRequest::new(first.unwrap_or(DEFAULT_PAGE_SIZE), after.as_deref()).api()?;
        let filter = FunctionFilter {
            status: status.map(Into::into),
            name_contains,
        };
        let state = ctx.data_unchecked::<AppState>();
        let columns = listed_function_columns(ctx);
        let page = functions::list(
            &state.reads,
            &filter,
            &page,
            selects_total_count(ctx),
            columns,
        )
        .await
        .api()?;
        Ok(connection(
            page,
            |f| PageCursor {
                created_at: f.created_at,
                id: f.id,
            },
            |record| Listed(Function::from(record)),
        ))
    }

    /// null when no function has this id.
    #[graphql(complexity = "DB_FIELD_COST + child_complexity")]
    async fn function(&self, ctx: &Context<'_>, id: Uuid) -> Result<Option<Function>> {
        let state = ctx.data_unchecked::<AppState>();
        Ok(functions::get(&state.reads, id)
            .await
            .api()?
            .map(Function::from))
    }

    /// null when no execution has this id.
    #[graphql(complexity = "DB_FIELD_COST + child_complexity")]
    async fn execution(&self, ctx: &Context<'_>, id: Uuid) -> Result<Option<Execution>> {
        let state = ctx.data_unchecked::<AppState>();
        Ok(executions::get(&state.reads, id)
            .await
            .api()?
            .map(Execution::from))
    }

    /// Newest first, across all functions unless functionId is given.
    #[graphql(complexity = "DB_FIELD_COST + child_complexity")]
    async fn executions(
        &self,
        ctx: &Context<'_>,
        function_id: Option<Uuid>,
        status: Option<ExecutionStatus>,
        error_kind: Option<ExecutionErrorKind>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<ExecutionConnection> {
        let page = PageRequest::new(first.unwrap_or(DEFAULT_PAGE_SIZE), after.as_deref()).api()?;
        let filter = ExecutionFilter {
            function_id,
            status: status.map(Into::into),
            error_kind: error_kind.map(Into::into),
        };
        let state = ctx.data_unchecked::<AppState>();
        let page = executions::list(&state.reads, &filter, &page, selects_total_count(ctx))
            .await
            .api()?;
        Ok(connection(
            page,
            |e| PageCursor {
                created_at: e.created_at,
                id: e.id,
            },
            Execution::from,
        ))
    }

    /// All functions unless functionId is given. Default window: the last 24 hours.
    #[graphql(complexity = "DB_FIELD_COST + child_complexity")]
    async fn execution_stats(
        &self,
        ctx: &Context<'_>,
        function_id: Option<Uuid>,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<ExecutionStats> {
        let scope = match function_id {
            Some(id) => {
                let state = ctx.data_unchecked::<AppState>();
                if !functions::exists(&state.reads, id).await.api()? {
                    return Err(functions::FunctionError::NotFound(id)).api();
                }
                Scope::Function(id)
            }
            None => Scope::Platform,
        };
        ExecutionStats::new(ctx, scope, since, until)
    }

    /// Languages the platform can compile, e.g. ["assemblyscript"].
    async fn languages(&self) -> Vec<String> {
        SUPPORTED_LANGUAGES.iter().map(|l| l.to_string()).collect()
    }

    /// compilation_jobs, compilation_results and execution_jobs backlogs.
    #[graphql(complexity = "DB_FIELD_COST + child_complexity")]
    async fn queue_stats(&self, ctx: &Context<'_>) -> Result<Vec<QueueStats>> {
        let state = ctx.data_unchecked::<AppState>();
        let mut stats = Vec::with_capacity(queue::QUEUES.len());
        for name in queue::QUEUES {
            let metrics = queue::metrics(&state.reads, name).await.api()?;
            stats.push(QueueStats {
                queue_name: metrics.queue_name,
                length: metrics.queue_length.try_into().unwrap_or(i32::MAX),
                oldest_message_age_seconds: metrics.oldest_msg_age_sec,
                total_messages: metrics.total_messages.try_into().unwrap_or(i32::MAX),
            });
        }
        Ok(stats)
    }
}
