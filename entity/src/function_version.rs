//! One immutable revision of a function: the source and language it was
//! saved with and how its compilation went.

use sea_orm::entity::prelude::*;

use crate::function::FunctionStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "function_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub function_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub revision: i64,
    pub language: String,
    #[sea_orm(column_type = "Text")]
    pub source: String,
    pub status: FunctionStatus,
    #[sea_orm(column_type = "Text", nullable)]
    pub compile_error: Option<String>,
    /// The compiled module (see [`crate::module`]); set exactly when READY.
    pub module_digest: Option<String>,
    pub wasm_size: Option<i32>,
    pub created_at: DateTimeUtc,
    pub compiled_at: Option<DateTimeUtc>,
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
