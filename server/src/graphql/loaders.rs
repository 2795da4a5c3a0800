//! DataLoaders that batch the per-parent lookups of a query into one database
//! round trip each: `Execution.function` and `Function.executions`.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use sea_orm::{ConnectionTrait, DatabaseConnection, FromQueryResult, Statement, Value};
use uuid::Uuid;

use entity::ExecutionStatus;
use entity::execution;

use super::error::ApiError;
use crate::executions::EXECUTION_COLUMNS;
use crate::functions::{self, FunctionRecord};
use crate::pagination::{Page, PageRequest};

/// Functions by id.
pub struct Functions(pub DatabaseConnection);

impl Loader<Uuid> for Functions {
    type Value = FunctionRecord;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, FunctionRecord>, Self::Error> {
        let records = functions::get_many(&self.0, keys)
            .await
            .map_err(ApiError::from)?;
        Ok(records.into_iter().map(|r| (r.id, r)).collect())
    }
}

/// One page of one function's executions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExecutionPageKey {
    pub function_id: Uuid,
    pub page: PageRequest,
    pub status: Option<ExecutionStatus>,
}

/// Pages of executions for many functions at once: one windowed query (the top
/// N rows per function) plus one grouped count per distinct page shape.
pub struct ExecutionPages(pub DatabaseConnection);

#[derive(FromQueryResult)]
struct Count {
    function_id: Uuid,
    total: i64,
}

impl Loader<ExecutionPageKey> for ExecutionPages {
    type Value = Page<execution::Model>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[ExecutionPageKey],
    ) -> Result<HashMap<ExecutionPageKey, Self::Value>, Self::Error> {
        // Keys that differ only by function share one query.
        let mut shapes: HashMap<(PageRequest, Option<ExecutionStatus>), Vec<Uuid>> = HashMap::new();
        for key in keys {
            shapes
                .entry((key.page, key.status))
                .or_default()
                .push(key.function_id);
        }
        let mut pages = HashMap::with_capacity(keys.len());
        for ((page, status), function_ids) in shapes {
            let loaded = self
                .load_shape(&page, status, &function_ids)
                .await
                .map_err(ApiError::from)?;
            for (function_id, result) in loaded {
                pages.insert(
                    ExecutionPageKey {
                        function_id,
                        page,
                        status,
                    },
                    result,
                );
            }
        }
        Ok(pages)
    }
}

impl ExecutionPages {
    /// The entity API has no window functions, hence the SQL.
    async fn load_shape(
        &self,
        page: &PageRequest,
        status: Option<ExecutionStatus>,
        function_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Page<execution::Model>>, sea_orm::DbErr> {
        let db = &self.0;
        let ids = Value::Array(
            sea_orm::sea_query::ArrayType::Uuid,
            Some(Box::new(
                function_ids.iter().map(|id| Value::from(*id)).collect(),
            )),
        );
        let status_value: Value = status.map(|s| sea_orm::ActiveEnum::to_value(&s)).into();
        let (after_at, after_id): (Value, Value) = match page.after {
            Some(cursor) => (cursor.created_at.into(), cursor.id.into()),
            None => (
                Option::<chrono::DateTime<chrono::Utc>>::None.into(),
                Option::<Uuid>::None.into(),
            ),
        };
        let rows = execution::Model::find_by_statement(Statement::from_sql_and_values(
            db.get_database_backend(),
            format!("SELECT {EXECUTION_COLUMNS}
               FROM (SELECT e.*, row_number() OVER (PARTITION BY function_id ORDER BY created_at DESC, id DESC) AS rank
                       FROM executions e
                      WHERE function_id = ANY($1)
                        AND ($2::text IS NULL OR status::text = $2)
                        AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))) ranked
              WHERE rank <= $5
              ORDER BY function_id, created_at DESC, id DESC"),
            [ids.clone(), status_value.clone(), after_at, after_id, (page.fetch_limit() as i64).into()],
        ))
        .all(db)
        .await?;
        let counts = Count::find_by_statement(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT function_id, count(*) AS total FROM executions
              WHERE function_id = ANY($1) AND ($2::text IS NULL OR status::text = $2)
              GROUP BY function_id",
            [ids, status_value],
        ))
        .all(db)
        .await?;
        let totals: HashMap<Uuid, i64> = counts
            .into_iter()
            .map(|c| (c.function_id, c.total))
            .collect();
        let mut grouped: HashMap<Uuid, Vec<execution::Model>> = HashMap::new();
        for row in rows {
            grouped.entry(row.function_id).or_default().push(row);
        }
        Ok(function_ids
            .iter()
            .map(|id| {
                let rows = grouped.remove(id).unwrap_or_default();
                (
                    *id,
                    Page::from_rows(rows, page, totals.get(id).copied().unwrap_or(0)),
                )
            })
            .collect())
    }
}
