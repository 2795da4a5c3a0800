//! [`FunctionRecord`]: a function as the API shows it, without its wasm (which
//! can be large and is loaded only when a client selects it); and
//! [`VersionRecord`]: one of its revisions.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{DbErr, EntityTrait, FromQueryResult, IdenStatic, QueryResult, QuerySelect, Select};
use uuid::Uuid;

use entity::function::{self, FunctionStatus};
use entity::function_version;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRecord {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub language: String,
    pub source: String,
    pub status: FunctionStatus,
    pub compile_error: Option<String>,
    pub revision: i64,
    pub deployed_revision: Option<i64>,
    /// The latest revision's module size; `None` unless that revision is READY.
    pub wasm_size: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns of a function that can be large (texts a user wrote) or cost
/// a lookup (the module size, from the latest version). A list reads those
/// its client selected; in its records the others are empty (`""` or
/// `None`), never shown because nobody asked for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalColumns {
    pub source: bool,
    pub description: bool,
    pub compile_error: bool,
    /// Also what `wasmBinary` needs to know whether there is a module.
    pub wasm_size: bool,
}

impl OptionalColumns {
    pub const ALL: Self = Self {
        source: true,
        description: true,
        compile_error: true,
        wasm_size: true,
    };
    pub const NONE: Self = Self {
        source: false,
        description: false,
        compile_error: false,
        wasm_size: false,
    };
}

impl FunctionRecord {
    /// Every column, plus the latest revision's module size.
    pub fn select() -> Select<function::Entity> {
        Self::select_columns(OptionalColumns::ALL)
    }

    /// The columns every record has, and those of `optional` that are set;
    /// the others come back empty.
    pub fn select_columns(optional: OptionalColumns) -> Select<function::Entity> {
        use function::Column as C;
        // The order `from_query_result` reads them in.
        let select = function::Entity::find().select_only().columns([
            C::Id,
            C::Name,
            C::Language,
            C::Status,
            C::Revision,
            C::DeployedRevision,
            C::CreatedAt,
            C::UpdatedAt,
        ]);
        let either = |select: Select<function::Entity>, wanted: bool, column: C, empty: &str| {
            if wanted {
                select.column(column)
            } else {
                select.column_as(Expr::cust(empty.to_string()), column.as_str())
            }
        };
        let select = either(select, optional.source, C::Source, "''");
        let select = either(select, optional.description, C::Description, "NULL::text");
        let select = either(
            select,
            optional.compile_error,
            C::CompileError,
            "NULL::text",
        );
        let wasm_size = if optional.wasm_size {
            LATEST_WASM_SIZE
        } else {
            "NULL::integer"
        };
        select.column_as(Expr::cust(wasm_size), "wasm_size")
    }

    pub(super) fn from_model(m: function::Model, wasm_size: Option<i32>) -> Self {
        Self {
            wasm_size,
            id: m.id,
            name: m.name,
            description: m.description,
            language: m.language,
            source: m.source,
            status: m.status,
            compile_error: m.compile_error,
            revision: m.revision,
            deployed_revision: m.deployed_revision,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// Read by position, in the order [`FunctionRecord::select_columns`] writes
/// the columns (every statement that reads records is built by it). Read by
/// name, as sea-orm's derive does, each column of each row cost a formatted
/// name and a hashed lookup, about 6 % of a list request's server time for a
/// page of 50; by position, the server's CPU per list request fell by about
/// 11 % (BENCHMARKS.md, session 14). A test compares both readings column for
/// column (`tests/tests/api.rs`).
impl FromQueryResult for FunctionRecord {
    fn from_query_result(row: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        if !pre.is_empty() {
            return Err(DbErr::Type(format!(
                "a function record is read by position, not under the prefix {pre:?}"
            )));
        }
        let (
            id,
            name,
            language,
            status,
            revision,
            deployed_revision,
            created_at,
            updated_at,
            source,
            description,
            compile_error,
            wasm_size,
        ) = row.try_get_many_by_index()?;
        Ok(Self {
            id,
            name,
            description,
            language,
            source,
            status,
            compile_error,
            revision,
            deployed_revision,
            wasm_size,
            created_at,
            updated_at,
        })
    }
}

const LATEST_WASM_SIZE: &str = "(SELECT v.wasm_size FROM function_versions v \
     WHERE v.function_id = functions.id AND v.revision = functions.revision)";

/// One immutable revision of a function, without its module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    pub function_id: Uuid,
    pub revision: i64,
    pub language: String,
    pub source: String,
    pub status: FunctionStatus,
    pub compile_error: Option<String>,
    pub wasm_size: Option<i32>,
    pub created_at: DateTime<Utc>,
}

impl From<function_version::Model> for VersionRecord {
    fn from(m: function_version::Model) -> Self {
        Self {
            function_id: m.function_id,
            revision: m.revision,
            language: m.language,
            source: m.source,
            status: m.status,
            compile_error: m.compile_error,
            wasm_size: m.wasm_size,
            created_at: m.created_at,
        }
    }
}
