//! [`FunctionRecord`]: a function as the API shows it, without its wasm (which
//! can be large and is loaded only when a client selects it).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{EntityTrait, FromQueryResult, QuerySelect, Select};
use uuid::Uuid;

use entity::function::{self, FunctionStatus};

#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct FunctionRecord {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub language: String,
    pub source: String,
    pub status: FunctionStatus,
    pub compile_error: Option<String>,
    pub revision: i64,
    pub wasm_size: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl FunctionRecord {
    /// Every column but the wasm, plus its size.
    pub fn select() -> Select<function::Entity> {
        use function::Column as C;
        function::Entity::find()
            .select_only()
            .columns([
                C::Id,
                C::Name,
                C::Description,
                C::Language,
                C::Source,
                C::Status,
                C::CompileError,
                C::Revision,
                C::CreatedAt,
                C::UpdatedAt,
            ])
            .column_as(Expr::cust("octet_length(wasm_binary)"), "wasm_size")
    }
}

impl From<function::Model> for FunctionRecord {
    fn from(m: function::Model) -> Self {
        Self {
            wasm_size: m.wasm_binary.as_ref().map(|w| w.len() as i32),
            id: m.id,
            name: m.name,
            description: m.description,
            language: m.language,
            source: m.source,
            status: m.status,
            compile_error: m.compile_error,
            revision: m.revision,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}
