//! A user's function: its latest revision's source and compile state, and the
//! revision that is deployed. Each revision is a [`super::function_version`].

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
    pub status: FunctionStatus,
    #[sea_orm(column_type = "Text", nullable)]
    pub compile_error: Option<String>,
    /// The latest revision: goes up whenever source or language change (and
    /// on rollback).
    pub revision: i64,
    /// The newest READY revision, which executions run; `None` until one compiled.
    pub deployed_revision: Option<i64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::execution::Entity")]
    Executions,
    #[sea_orm(has_many = "super::function_version::Entity")]
    Versions,
}

impl Related<super::execution::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Executions.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
