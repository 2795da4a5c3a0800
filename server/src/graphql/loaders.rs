//! DataLoaders that batch the per-parent lookups of a query into one database
//! round trip each: `Execution.function` and `Function.executions`.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use sea_orm::{ConnectionTrait, FromQueryResult, Statement, Value};
use uuid::Uuid;

use entity::ExecutionStatus;
use entity::execution;
use entity::execution::ExecutionErrorKind;

use super::error::ApiError;
use crate::db::KeptConnections;
use crate::executions::EXECUTION_COLUMNS;
use crate::functions::{self, FunctionRecord};
use crate::pagination::{Page, PageRequest};

/// Functions by id.
pub struct Functions(pub KeptConnections);

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
    pub error_kind: Option<ExecutionErrorKind>,
    /// Whether `totalCount` was selected: counting is the one part whose cost
    /// grows with the number of executions, so it is skipped unless asked.
    pub with_total: bool,
}

/// What keys that share one query have in common.
type Shape = (
    PageRequest,
    Option<ExecutionStatus>,
    Option<ExecutionErrorKind>,
    bool,
);

/// Pages of executions for many functions at once: one query taking the top
/// N rows of each function from its index, plus one grouped count per
/// distinct page shape when `totalCount` is selected.
pub struct ExecutionPages(pub KeptConnections);

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
        let mut shapes: HashMap<Shape, Vec<Uuid>> = HashMap::new();
        for key in keys {
            shapes
                .entry((key.page, key.status, key.error_kind, key.with_total))
                .or_default()
                .push(key.function_id);
        }
        let mut pages = HashMap::with_capacity(keys.len());
        for (shape, function_ids) in shapes {
            let loaded = self
                .load_shape(&shape, &function_ids)
                .await
                .map_err(ApiError::from)?;
            let (page, status, error_kind, with_total) = shape;
            for (function_id, result) in loaded {
                pages.insert(
                    ExecutionPageKey {
                        function_id,
                        page,
                        status,
                        error_kind,
                        with_total,
                    },
                    result,
                );
            }
        }
        Ok(pages)
    }
}

impl ExecutionPages {
    /// The entity API has no LATERAL joins, hence the SQL.
    async fn load_shape(
        &self,
        (page, status, error_kind, with_total): &Shape,
        function_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Page<execution::Model>>, sea_orm::DbErr> {
        use sea_orm::ActiveEnum as _;
        let db = &self.0;
        let ids = Value::Array(
            sea_orm::sea_query::ArrayType::Uuid,
            Some(Box::new(
                function_ids.iter().map(|id| Value::from(*id)).collect(),
            )),
        );
        let status_value: Value = status.map(|s| s.to_value()).into();
        let kind_value: Value = error_kind.map(|k| k.to_value()).into();
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
               FROM unnest($1::uuid[]) AS wanted(fid)
               CROSS JOIN LATERAL (
                   SELECT * FROM executions e
                    WHERE e.function_id = wanted.fid
                      AND ($2::execution_status IS NULL OR e.status = $2::execution_status)
                      AND ($6::execution_error_kind IS NULL OR e.error_kind = $6::execution_error_kind)
                      AND ($3::timestamptz IS NULL OR (e.created_at, e.id) < ($3, $4::uuid))
                    ORDER BY e.created_at DESC, e.id DESC
                    LIMIT $5) AS page"),
            [
                ids.clone(),
                status_value.clone(),
                after_at,
                after_id,
                (page.fetch_limit() as i64).into(),
                kind_value.clone(),
            ],
        ))
        .all(db)
        .await?;
        let mut totals: HashMap<Uuid, i64> = HashMap::new();
        if *with_total {
            let counts = Count::find_by_statement(Statement::from_sql_and_values(
                db.get_database_backend(),
                "SELECT function_id, count(*) AS total FROM executions
                  WHERE function_id = ANY($1)
                    AND ($2::execution_status IS NULL OR status = $2::execution_status)
                    AND ($3::execution_error_kind IS NULL OR error_kind = $3::execution_error_kind)
                  GROUP BY function_id",
                [ids, status_value, kind_value],
            ))
            .all(db)
            .await?;
            totals.extend(counts.into_iter().map(|c| (c.function_id, c.total)));
        }
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
