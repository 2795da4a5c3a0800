//! Reads of a function's revisions and of their compiled modules.

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};
use uuid::Uuid;

use entity::function_version::{self, Column as V};

use super::VersionRecord;
use crate::pagination::{Page, PageRequest, RevisionCursor, fetch_page, page_statement};

/// The function's versions, newest first.
pub async fn list_versions<C: ConnectionTrait>(
    db: &C,
    function_id: Uuid,
    page: &PageRequest<RevisionCursor>,
) -> Result<Page<VersionRecord>, DbErr> {
    let of_function = Condition::all().add(V::FunctionId.eq(function_id));
    let mut rows = function_version::Entity::find().filter(of_function.clone());
    if let Some(RevisionCursor(after)) = page.after {
        rows = rows.filter(V::Revision.lt(after));
    }
    let rows = rows.order_by_desc(V::Revision);
    let statement = page_statement(db.get_database_backend(), rows, page, Some(&of_function));
    let page: Page<function_version::Model> =
        fetch_page::<_, function_version::Entity, _, _>(db, statement, page, Some(of_function))
            .await?;
    Ok(page.map(VersionRecord::from))
}

pub async fn version<C: ConnectionTrait>(
    db: &C,
    function_id: Uuid,
    revision: i64,
) -> Result<Option<VersionRecord>, DbErr> {
    Ok(
        function_version::Entity::find_by_id((function_id, revision))
            .one(db)
            .await?
            .map(VersionRecord::from),
    )
}

/// The compiled module of one revision; `None` unless that revision is READY
/// (or when the function is gone).
pub async fn module<C: ConnectionTrait>(
    db: &C,
    function_id: Uuid,
    revision: i64,
) -> Result<Option<Vec<u8>>, DbErr> {
    #[derive(FromQueryResult)]
    struct Module {
        wasm_binary: Vec<u8>,
    }
    let module = Module::find_by_statement(Statement::from_sql_and_values(
        sea_orm::DatabaseBackend::Postgres,
        "SELECT m.wasm_binary FROM function_versions v JOIN modules m ON m.digest = v.module_digest
          WHERE v.function_id = $1 AND v.revision = $2",
        [function_id.into(), revision.into()],
    ))
    .one(db)
    .await?;
    Ok(module.map(|m| m.wasm_binary))
}

pub(super) async fn wasm_size<C: ConnectionTrait>(
    db: &C,
    function_id: Uuid,
    revision: i64,
) -> Result<Option<i32>, DbErr> {
    let size: Option<Option<i32>> = function_version::Entity::find_by_id((function_id, revision))
        .select_only()
        .column(V::WasmSize)
        .into_tuple()
        .one(db)
        .await?;
    Ok(size.flatten())
}
