//! A user's function: source, compile state and, once READY, its module.

use sea_orm::entity::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Enum", enum_name = "function_status")]
pub enum FunctionStatus {
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "COMPILING")]
    Compiling,
    #[sea_orm(string_value = "READY")]
    Ready,
    #[sea_orm(string_value = "FAILED")]
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "functions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub language: String,
    #[sea_orm(column_type = "Text")]
    pub source: String,
    pub wasm_binary: Option<Vec<u8>>,
    pub status: FunctionStatus,
    #[sea_orm(column_type = "Text", nullable)]
    pub compile_error: Option<String>,
    /// Goes up whenever source or language change; stale compilations carry an
    /// older revision and are dropped.
    pub revision: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::execution::Entity")]
    Executions,
}

impl Related<super::execution::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Executions.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
