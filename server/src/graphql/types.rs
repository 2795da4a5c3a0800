//! The GraphQL object types of the contract: `Function`, `Execution`, their
//! status enums, connections and subscription events.

use super::analytics::ExecutionStats;
use crate::analytics::Scope;
use async_graphql::connection::{Connection, CursorType, Edge};
use async_graphql::dataloader::DataLoader;
use async_graphql::{
    ComplexObject, Context, Enum, InputType as _, Json, Result, SimpleObject, Value,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use sea_orm::ActiveEnum as _;
use uuid::Uuid;

use crate::functions::{self, FunctionRecord, VersionRecord};
use crate::pagination::{Cursor, DEFAULT_PAGE_SIZE, Page, PageCursor, PageRequest, RevisionCursor};
use entity::execution;

use super::columns::{Columns, Listed, timestamp_value, uuid_value};
use super::error::{ApiError, ErrorCode, ResultExt};
use super::loaders::{ExecutionPageKey, ExecutionPages, Functions};
use super::{AppState, DB_FIELD_COST};

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::FunctionStatus")]
pub enum FunctionStatus {
    Pending,
    Compiling,
    Ready,
    Failed,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::ExecutionStatus")]
pub enum ExecutionStatus {
    Pending,
    Running,
    Completed,
    Failed,
}

/// Why an execution FAILED.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::ExecutionErrorKind")]
pub enum ExecutionErrorKind {
    Timeout,
    MemoryLimit,
    StackOverflow,
    Trap,
    Abort,
    InvalidOutput,
    OutputTooLarge,
    Interrupted,
    Cancelled,
    Platform,
}

impl FunctionStatus {
    /// A status as the database names it (the entity is the one source of
    /// the names).
    pub fn parse(name: &str) -> Option<Self> {
        entity::FunctionStatus::try_from_value(&name.to_owned())
            .ok()
            .map(Into::into)
    }
}

impl ExecutionStatus {
    pub fn parse(name: &str) -> Option<Self> {
        entity::ExecutionStatus::try_from_value(&name.to_owned())
            .ok()
            .map(Into::into)
    }

    /// COMPLETED or FAILED: nothing changes it again.
    pub fn is_final(self) -> bool {
        entity::ExecutionStatus::from(self).is_final()
    }
}

/// Whether the connection being resolved selects `totalCount` (counting is
/// skipped otherwise).
pub fn selects_total_count(ctx: &Context<'_>) -> bool {
    ctx.look_ahead().field("totalCount").exists()
}

/// Number of items across all pages of a connection.
#[derive(SimpleObject)]
pub struct ConnectionTotal {
    pub total_count: i32,
}

pub type FunctionConnection = Connection<PageCursor, Listed<Function>, ConnectionTotal>;
pub type ExecutionConnection = Connection<PageCursor, Execution, ConnectionTotal>;
pub type FunctionVersionConnection = Connection<RevisionCursor, FunctionVersion, ConnectionTotal>;

/// Cursors are encoded only when a client selects them (`cursor`,
/// `pageInfo`), not for every item of every page.
macro_rules! cursor_type {
    ($($cursor:ty),*) => {$(
        impl CursorType for $cursor {
            type Error = crate::pagination::PageError;

            fn decode_cursor(text: &str) -> Result<Self, Self::Error> {
                <$cursor as Cursor>::decode(text)
            }

            fn encode_cursor(&self) -> String {
                self.encode()
            }
        }
    )*};
}
cursor_type!(PageCursor, RevisionCursor);

/// Turns a page of records into a Relay connection.
pub fn connection<R, N, C>(
    page: Page<R>,
    cursor_of: impl Fn(&R) -> C,
    node: impl Fn(R) -> N,
) -> Connection<C, N, ConnectionTotal>
where
    N: async_graphql::OutputType,
    C: CursorType + Send + Sync,
{
    let mut connection = Connection::with_additional_fields(
        page.has_previous_page,
        page.has_next_page,
        ConnectionTotal {
            total_count: page.total_count.try_into().unwrap_or(i32::MAX),
        },
    );
    connection.edges.extend(
        page.items
            .into_iter()
            .map(|record| Edge::new(cursor_of(&record), node(record))),
    );
    connection
}

/// A user's function and its compile state.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Function {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub language: String,
    pub source: String,
    pub status: FunctionStatus,
    pub compile_error: Option<String>,
    /// Size in bytes of the latest revision's compiled module; null unless it is READY.
    pub wasm_size: Option<i32>,
    /// Goes up by one each time the source or language changes (and on rollback).
    pub revision: i64,
    /// The READY revision that executions run; null while no revision has compiled.
    pub deployed_revision: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<FunctionRecord> for Function {
    fn from(r: FunctionRecord) -> Self {
        Self {
            id: r.id,
            name: r.name,
            description: r.description,
            language: r.language,
            source: r.source,
            status: r.status.into(),
            compile_error: r.compile_error,
            wasm_size: r.wasm_size,
            revision: r.revision,
            deployed_revision: r.deployed_revision,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl Columns for Function {
    fn column(&self, name: &str) -> Option<Value> {
        Some(match name {
            "id" => uuid_value(&self.id),
            "name" => self.name.to_value(),
            "description" => self.description.to_value(),
            "language" => self.language.to_value(),
            "source" => self.source.to_value(),
            "status" => self.status.to_value(),
            "compileError" => self.compile_error.to_value(),
            "wasmSize" => self.wasm_size.to_value(),
            "revision" => self.revision.to_value(),
            "deployedRevision" => self.deployed_revision.to_value(),
            "createdAt" => timestamp_value(&self.created_at),
            "updatedAt" => timestamp_value(&self.updated_at),
            _ => return None,
        })
    }
}

#[ComplexObject]
impl Function {
    /// The latest revision's compiled module as base64; null unless it is READY. Clients should not select it in lists.
    #[graphql(complexity = "DB_FIELD_COST + child_complexity")]
    async fn wasm_binary(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        if self.wasm_size.is_none() {
            return Ok(None);
        }
        let state = ctx.data_unchecked::<AppState>();
        let wasm = functions::module(&state.reads, self.id, self.revision)
            .await
            .api()?;
        Ok(wasm.map(|wasm| BASE64.encode(wasm)))
    }

    /// Newest first.
    #[graphql(complexity = "DB_FIELD_COST + child_complexity")]
    async fn versions(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<FunctionVersionConnection> {
        let page = PageRequest::new(first.unwrap_or(DEFAULT_PAGE_SIZE), after.as_deref()).api()?;
        let state = ctx.data_unchecked::<AppState>();
        let page = functions::list_versions(&state.reads, self.id, &page)
            .await
            .api()?;
        Ok(connection(
            page,
            |v| RevisionCursor(v.revision),
            FunctionVersion::from,
        ))
    }

    /// null when the function has no such revision.
    #[graphql(complexity = "DB_FIELD_COST + child_complexity")]
    async fn version(&self, ctx: &Context<'_>, revision: i64) -> Result<Option<FunctionVersion>> {
        let state = ctx.data_unchecked::<AppState>();
        Ok(functions::version(&state.reads, self.id, revision)
            .await
            .api()?
            .map(FunctionVersion::from))
    }

    /// Default window: the last 24 hours.
    #[graphql(complexity = "DB_FIELD_COST + child_complexity")]
    async fn stats(
        &self,
        ctx: &Context<'_>,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<ExecutionStats> {
        ExecutionStats::new(ctx, Scope::Function(self.id), since, until)
    }

    /// This function's executions, newest first.
    #[graphql(complexity = "DB_FIELD_COST + child_complexity")]
    async fn executions(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        status: Option<ExecutionStatus>,
        error_kind: Option<ExecutionErrorKind>,
    ) -> Result<ExecutionConnection> {
        let page = PageRequest::new(first.unwrap_or(DEFAULT_PAGE_SIZE), after.as_deref()).api()?;
        let key = ExecutionPageKey {
            function_id: self.id,
            page,
            status: status.map(Into::into),
            error_kind: error_kind.map(Into::into),
            with_total: selects_total_count(ctx),
        };
        let loader = ctx.data_unchecked::<DataLoader<ExecutionPages>>();
        let page = loader
            .load_one(key)
            .await?
            .unwrap_or_else(|| Page::from_rows(Vec::new(), &page, 0));
        Ok(connection(
            page,
            |e| PageCursor {
                created_at: e.created_at,
                id: e.id,
            },
            Execution::from,
        ))
    }
}

/// One run of a function.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Execution {
    pub id: Uuid,
    pub function_id: Uuid,
    pub input: Option<Json<serde_json::Value>>,
    pub output: Option<Json<serde_json::Value>>,
    pub status: ExecutionStatus,
    /// Why the execution FAILED: a trap, an abort with its location, the
    /// timeout, the memory cap, or output that is not JSON.
    pub error_message: Option<String>,
    /// Console output (`console.log`, `trace`) captured during the run.
    pub logs: Option<Vec<String>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// 1 for the first run; higher when a run interrupted by a crash was run again.
    pub attempt: i32,
    /// The function revision that ran.
    pub revision: i64,
    /// Why it FAILED, as a kind; null unless FAILED.
    pub error_kind: Option<ExecutionErrorKind>,
}

impl From<execution::Model> for Execution {
    fn from(m: execution::Model) -> Self {
        Self {
            id: m.id,
            function_id: m.function_id,
            input: m.input.map(Json),
            output: m.output.map(Json),
            status: m.status.into(),
            error_message: m.error_message,
            logs: m.logs.and_then(|logs| serde_json::from_value(logs).ok()),
            started_at: m.started_at,
            completed_at: m.completed_at,
            created_at: m.created_at,
            attempt: m.attempt,
            revision: m.revision,
            error_kind: m.error_kind.map(Into::into),
        }
    }
}

#[ComplexObject]
impl Execution {
    async fn function(&self, ctx: &Context<'_>) -> Result<Function> {
        let loader = ctx.data_unchecked::<DataLoader<Functions>>();
        match loader.load_one(self.function_id).await? {
            Some(record) => Ok(record.into()),
            None => Err(ApiError::new(
                ErrorCode::NotFound,
                format!("function {} was deleted", self.function_id),
            )
            .into()),
        }
    }

    /// completedAt - startedAt in milliseconds; null until finished.
    async fn duration_ms(&self) -> Option<f64> {
        execution::duration_ms(self.started_at, self.completed_at)
    }
}

/// One immutable revision of a function's source and its compile outcome.
#[derive(SimpleObject, Clone)]
pub struct FunctionVersion {
    pub revision: i64,
    pub language: String,
    pub source: String,
    pub status: FunctionStatus,
    pub compile_error: Option<String>,
    /// Size in bytes of its compiled module; null unless READY.
    pub wasm_size: Option<i32>,
    pub created_at: DateTime<Utc>,
}

impl From<VersionRecord> for FunctionVersion {
    fn from(v: VersionRecord) -> Self {
        Self {
            revision: v.revision,
            language: v.language,
            source: v.source,
            status: v.status.into(),
            compile_error: v.compile_error,
            wasm_size: v.wasm_size,
            created_at: v.created_at,
        }
    }
}

/// CURRENT: the function as it is when the subscription starts (sent first when an id is given).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum FunctionChangeKind {
    Current,
    Created,
    Updated,
    StatusChanged,
    Deployed,
    Deleted,
}

impl From<crate::events::FunctionChangeKind> for FunctionChangeKind {
    fn from(kind: crate::events::FunctionChangeKind) -> Self {
        use crate::events::FunctionChangeKind as K;
        match kind {
            K::Updated => Self::Updated,
            K::Deployed => Self::Deployed,
            K::Deleted => Self::Deleted,
        }
    }
}

/// One change of a function.
#[derive(SimpleObject)]
pub struct FunctionChangeEvent {
    pub kind: FunctionChangeKind,
    pub function_id: Uuid,
    /// null for DELETED.
    pub function: Option<Function>,
    pub at: DateTime<Utc>,
}

/// A status transition of a function.
#[derive(SimpleObject)]
pub struct FunctionStatusEvent {
    pub function: Function,
    /// null for the snapshot sent on subscribe.
    pub previous_status: Option<FunctionStatus>,
    pub status: FunctionStatus,
    pub at: DateTime<Utc>,
}

/// A status transition of an execution.
#[derive(SimpleObject)]
pub struct ExecutionStatusEvent {
    pub execution: Execution,
    /// null for the snapshot sent on subscribe.
    pub previous_status: Option<ExecutionStatus>,
    pub status: ExecutionStatus,
    pub at: DateTime<Utc>,
}

/// Backlog of one pgmq queue (operators debugging stuck compilations).
#[derive(SimpleObject)]
pub struct QueueStats {
    pub queue_name: String,
    /// Messages waiting or in flight.
    pub length: i32,
    /// Age in seconds of the oldest message; null when empty.
    pub oldest_message_age_seconds: Option<i32>,
    /// Messages ever sent to the queue.
    pub total_messages: i32,
}
