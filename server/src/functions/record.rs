//! [`FunctionRecord`]: a function as the API shows it, without its wasm (which
//! can be large and is loaded only when a client selects it); and
//! [`VersionRecord`]: one of its revisions.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveEnum, DbErr, EntityTrait, FromQueryResult, IdenStatic, QueryResult, QuerySelect, Select,
};
use sqlx::postgres::{PgRow, PgValueFormat};
use sqlx::{Column, Row, TypeInfo};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
/// 11 % (BENCHMARKS.md, session 14).
///
/// The row's column types are checked once, against [`RECORD_COLUMNS`], and
/// then each value is decoded without sqlx's check per value: that check
/// compares type descriptions (for a `String` six of them, one by name) and
/// was 12 % of a list request's server instructions (BENCHMARKS.md, session
/// 19). A test compares this reading with sea-orm's column for column
/// (`tests/tests/api.rs`).
impl FromQueryResult for FunctionRecord {
    fn from_query_result(row: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        if !pre.is_empty() {
            return Err(DbErr::Type(format!(
                "a function record is read by position, not under the prefix {pre:?}"
            )));
        }
        let row = row
            .try_as_pg_row()
            .ok_or_else(|| DbErr::Type("a function record is read from PostgreSQL rows".into()))?;
        check_record_columns(row)?;
        let decode = |e: sqlx::Error| DbErr::Type(format!("a function record: {e}"));
        let status: String = row.try_get_unchecked(3).map_err(decode)?;
        Ok(Self {
            id: row.try_get_unchecked(0).map_err(decode)?,
            name: row.try_get_unchecked(1).map_err(decode)?,
            language: row.try_get_unchecked(2).map_err(decode)?,
            status: FunctionStatus::try_from_value(&status)?,
            revision: row.try_get_unchecked(4).map_err(decode)?,
            deployed_revision: row.try_get_unchecked(5).map_err(decode)?,
            created_at: timestamp(row, 6).map_err(decode)?,
            updated_at: timestamp(row, 7).map_err(decode)?,
            source: row.try_get_unchecked(8).map_err(decode)?,
            description: row.try_get_unchecked(9).map_err(decode)?,
            compile_error: row.try_get_unchecked(10).map_err(decode)?,
            wasm_size: row.try_get_unchecked(11).map_err(decode)?,
        })
    }
}

/// PostgreSQL's epoch, 2000-01-01T00:00:00Z, in Unix microseconds.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A timestamptz column's value. In the binary format it is microseconds
/// since [`POSTGRES_EPOCH_MICROS`]; sqlx's decode adds them to its epoch
/// through chrono's calendar arithmetic, about 490 instructions a value,
/// where this takes less than half of that (BENCHMARKS.md, session 19). The
/// text format, and anything out of chrono's range, goes to sqlx.
fn timestamp(row: &PgRow, index: usize) -> Result<DateTime<Utc>, sqlx::Error> {
    let value = row.try_get_raw(index)?;
    if value.format() == PgValueFormat::Binary
        && let Ok(Ok(bytes)) = value.as_bytes().map(<[u8; 8]>::try_from)
        && let Some(at) = i64::from_be_bytes(bytes)
            .checked_add(POSTGRES_EPOCH_MICROS)
            .and_then(DateTime::from_timestamp_micros)
    {
        return Ok(at);
    }
    row.try_get_unchecked(index)
}

/// The PostgreSQL types each column [`FunctionRecord::select_columns`]
/// selects may have, in its order: those [`FunctionRecord`]'s fields decode
/// from.
const RECORD_COLUMNS: [ColumnType; 12] = [
    ColumnType::Uuid,
    ColumnType::Text, // name
    ColumnType::Text, // language
    ColumnType::Text, // status, cast to text
    ColumnType::Int8,
    ColumnType::Int8,
    ColumnType::Timestamptz,
    ColumnType::Timestamptz,
    ColumnType::Text, // source, or ''
    ColumnType::Text, // description, or NULL::text
    ColumnType::Text, // compile_error, or NULL::text
    ColumnType::Int4,
];

#[derive(Debug, Clone, Copy)]
enum ColumnType {
    Uuid,
    Text,
    Int8,
    Int4,
    Timestamptz,
}

impl ColumnType {
    /// The OIDs of the built-in types it stands for (fixed in PostgreSQL's
    /// catalog, `pg_type.dat`).
    fn oids(self) -> &'static [u32] {
        match self {
            Self::Uuid => &[2950],
            Self::Text => &[25, 1043], // text, varchar
            Self::Int8 => &[20],
            Self::Int4 => &[23],
            Self::Timestamptz => &[1184],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Uuid => "UUID",
            Self::Text => "TEXT or VARCHAR",
            Self::Int8 => "INT8",
            Self::Int4 => "INT4",
            Self::Timestamptz => "TIMESTAMPTZ",
        }
    }
}

/// Whether `row` starts with the record's columns, compared by type OID.
fn check_record_columns(row: &PgRow) -> Result<(), DbErr> {
    let columns = row.columns();
    // A page's statement adds its count after them.
    if columns.len() < RECORD_COLUMNS.len() {
        return Err(DbErr::Type(format!(
            "a function record has {} columns, this row only {}",
            RECORD_COLUMNS.len(),
            columns.len()
        )));
    }
    for (column, expected) in columns.iter().zip(RECORD_COLUMNS) {
        let found = column.type_info();
        if !found
            .oid()
            .is_some_and(|oid| expected.oids().contains(&oid.0))
        {
            return Err(DbErr::Type(format!(
                "column {} of a function record is {}, expected {}",
                column.name(),
                found.name(),
                expected.name()
            )));
        }
    }
    Ok(())
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
