//! One run of a function: its input, output or error, and timings.

use sea_orm::entity::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Enum", enum_name = "execution_status")]
pub enum ExecutionStatus {
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "RUNNING")]
    Running,
    #[sea_orm(string_value = "COMPLETED")]
    Completed,
    #[sea_orm(string_value = "FAILED")]
    Failed,
}

/// Why an execution FAILED, decided where the failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(
    rs_type = "String",
    db_type = "Enum",
    enum_name = "execution_error_kind"
)]
pub enum ExecutionErrorKind {
    /// Ran out of CPU time.
    #[sea_orm(string_value = "TIMEOUT")]
    Timeout,
    #[sea_orm(string_value = "MEMORY_LIMIT")]
    MemoryLimit,
    #[sea_orm(string_value = "STACK_OVERFLOW")]
    StackOverflow,
    /// Any other wasm trap (unreachable, division by zero, out of bounds…).
    #[sea_orm(string_value = "TRAP")]
    Trap,
    /// `env.abort`: a `throw` or failed assertion in the function.
    #[sea_orm(string_value = "ABORT")]
    Abort,
    /// `handle` returned something that is not storable JSON.
    #[sea_orm(string_value = "INVALID_OUTPUT")]
    InvalidOutput,
    #[sea_orm(string_value = "OUTPUT_TOO_LARGE")]
    OutputTooLarge,
    /// The process running it went away, and no further run was allowed.
    #[sea_orm(string_value = "INTERRUPTED")]
    Interrupted,
    /// `cancelExecution`.
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
    /// The platform could not run it (module unavailable, engine failure).
    #[sea_orm(string_value = "PLATFORM")]
    Platform,
}

/// completedAt - startedAt in milliseconds; `None` until finished.
pub fn duration_ms(
    started_at: Option<DateTimeUtc>,
    completed_at: Option<DateTimeUtc>,
) -> Option<f64> {
    let (started, completed) = (started_at?, completed_at?);
    Some((completed - started).num_microseconds()? as f64 / 1000.0)
}

impl ExecutionStatus {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "executions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub function_id: Uuid,
    pub input: Option<Json>,
    pub output: Option<Json>,
    pub status: ExecutionStatus,
    #[sea_orm(column_type = "Text", nullable)]
    pub error_message: Option<String>,
    /// Console output (`console.log`, `trace`) captured during the run.
    pub logs: Option<Json>,
    pub started_at: Option<DateTimeUtc>,
    pub completed_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    /// Which run produced (or is producing) the outcome: 1 for the first, more
    /// when a run whose process vanished was taken over.
    pub attempt: i32,
    /// Accepted by `startExecution`: run again after a crash, not ended "interrupted".
    pub background: bool,
    /// The process (runner id) that runs it, or holds it while it waits for a
    /// wasm thread; kept after it finishes, to tell which process produced it.
    pub owner: Option<Uuid>,
    /// The owner renews this while it lives; recovery reclaims only executions
    /// whose lease lapsed.
    pub lease_expires_at: Option<DateTimeUtc>,
    /// The function revision it runs (the deployed one when it was accepted).
    pub revision: i64,
    /// Set exactly when FAILED.
    pub error_kind: Option<ExecutionErrorKind>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::function::Entity",
        from = "Column::FunctionId",
        to = "super::function::Column::Id",
        on_delete = "Cascade"
    )]
    Function,
}

impl Related<super::function::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Function.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
