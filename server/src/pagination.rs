//! Keyset pagination, newest first, shared by every list: the cursor is the
//! position of the last item seen — `(created_at, id)` for functions and
//! executions, the revision for a function's versions — so pages stay stable
//! while rows are inserted concurrently. Cursors are opaque to clients (base64
//! of a versioned string) and validated on the way in.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Asterisk, Expr, IntoIden, Query, SimpleExpr};
use sea_orm::{
    Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, PaginatorTrait,
    QueryFilter, QuerySelect, QueryTrait, Select, Statement, Value,
};
use uuid::Uuid;

/// The column a page's rows carry the list's total in.
const TOTAL_COLUMN: &str = "page_total_count";

/// The statement of one page of `select` (already filtered, cursor included,
/// and ordered) and, when `count` is given, of how many rows of `E` match it:
/// `count` is `select`'s filter without the cursor, and the total is
/// `totalCount`. [`fetch_page`] runs it.
///
/// The count rides in the page's statement as an uncorrelated scalar subquery,
/// which PostgreSQL evaluates once: one statement instead of two, so a page
/// takes one connection from the pool, one round trip and one snapshot. Only
/// a page past the end of the list, which has no row to carry it, asks for
/// the count on its own.
///
/// The `LIMIT` is written into the statement's text. As a bound parameter it
/// made PostgreSQL plan the statement again on every execution: a generic
/// plan cannot know how few rows are wanted, so it costs out worse than a
/// custom plan and is never kept. Written in, the prepared statement keeps
/// its plan. The limit is a validated page size (at most [`MAX_PAGE_SIZE`] +
/// 1, or the REST API's maximum + 1), so a connection caches a handful of
/// such texts at most.
pub fn page_statement<E: EntityTrait, K: Cursor>(
    backend: DbBackend,
    select: Select<E>,
    page: &PageRequest<K>,
    count: Option<&Condition>,
) -> Statement {
    let select = match count {
        Some(condition) => select.expr_as(count_of::<E>(condition.clone()), TOTAL_COLUMN),
        None => select,
    };
    let mut statement = select.build(backend);
    statement.sql = format!("{} LIMIT {}", statement.sql, page.fetch_limit());
    statement
}

/// Runs a [`page_statement`] (or one with its text: [`StatementTexts`]) and
/// reads its page; `count` as there.
pub async fn fetch_page<M, E, C, K>(
    db: &C,
    statement: Statement,
    page: &PageRequest<K>,
    count: Option<Condition>,
) -> Result<Page<M>, DbErr>
where
    M: FromQueryResult,
    E: EntityTrait,
    E::Model: FromQueryResult + Send + Sync,
    C: ConnectionTrait,
    K: Cursor,
{
    let rows = db.query_all(statement).await?;
    let total = match (count, rows.first()) {
        (None, _) => 0,
        (Some(_), Some(row)) => row.try_get::<i64>("", TOTAL_COLUMN)?,
        // Without a cursor the page's filter is the count's: nothing matches.
        (Some(_), None) if page.after.is_none() => 0,
        (Some(condition), None) => {
            let count = E::find().filter(condition).count(db).await?;
            i64::try_from(count).unwrap_or(i64::MAX)
        }
    };
    let items = rows
        .iter()
        .map(|row| M::from_query_result(row, ""))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_rows(items, page, total))
}

/// The text of one list's statement for each shape its requests take (which
/// filters, cursor, columns and limit), rendered by sea-query the first time
/// and then reused with each request's parameters. Rendering cost the
/// benchmark's list 66,000 instructions a request, 6 % of the server's, most
/// of it quoting column names.
///
/// The caller gives the parameters in the order the text binds them. The
/// first time a shape is seen they are compared with the rendered
/// statement's, and a shape whose parameters differ is never reused (and
/// logged), so a mistake there costs speed, not a wrong answer. A shape is a
/// combination of a few flags and a validated page size, so there are
/// finitely many, and a handful in practice.
pub struct StatementTexts<S> {
    texts: Mutex<HashMap<S, String>>,
}

impl<S: Hash + Eq> StatementTexts<S> {
    pub fn new() -> Self {
        Self {
            texts: Mutex::new(HashMap::new()),
        }
    }

    /// The statement of `shape` with `parameters`; `render` makes it the
    /// first time.
    pub fn statement(
        &self,
        shape: S,
        parameters: Vec<Value>,
        render: impl FnOnce() -> Statement,
    ) -> Statement {
        if let Some(sql) = self.texts().get(&shape) {
            return Statement::from_sql_and_values(DbBackend::Postgres, sql.clone(), parameters);
        }
        let statement = render();
        let rendered = statement.values.as_ref().map_or(&[][..], |v| &v.0[..]);
        if rendered == parameters.as_slice() && statement.db_backend == DbBackend::Postgres {
            self.texts().insert(shape, statement.sql.clone());
        } else {
            tracing::error!(
                sql = %statement.sql,
                "a list's parameters are not in the order of its statement; its text is not reused"
            );
        }
        statement
    }

    fn texts(&self) -> MutexGuard<'_, HashMap<S, String>> {
        // The map holds plain strings: a panic elsewhere cannot leave it torn.
        self.texts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S: Hash + Eq> Default for StatementTexts<S> {
    fn default() -> Self {
        Self::new()
    }
}

/// `(SELECT COUNT(*) FROM <E> WHERE <condition>)`.
fn count_of<E: EntityTrait>(condition: Condition) -> SimpleExpr {
    let count = Query::select()
        .expr(Expr::col(Asterisk).count())
        .from(E::default().table_ref())
        .cond_where(condition)
        .to_owned();
    SimpleExpr::SubQuery(None, Box::new(count.into_sub_query_statement()))
}

pub const MAX_PAGE_SIZE: i32 = 100;
/// `first` when a client omits it or passes null.
pub const DEFAULT_PAGE_SIZE: i32 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageCursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PageError {
    #[error("`first` must be between 1 and {max}, got {first}")]
    FirstOutOfRange { first: i32, max: i32 },
    #[error("`after` is not a cursor this API returned")]
    BadCursor,
}

/// A position in a list, as clients see it: an opaque string.
pub trait Cursor: Sized + Copy {
    fn encode(&self) -> String;
    fn decode(cursor: &str) -> Result<Self, PageError>;
}

fn decode_text(cursor: &str) -> Result<String, PageError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| PageError::BadCursor)?;
    String::from_utf8(bytes).map_err(|_| PageError::BadCursor)
}

impl Cursor for PageCursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "v1:{}:{}",
            self.created_at.timestamp_micros(),
            self.id
        ))
    }

    fn decode(cursor: &str) -> Result<Self, PageError> {
        let text = decode_text(cursor)?;
        let mut parts = text.splitn(3, ':');
        let (Some("v1"), Some(micros), Some(id)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(PageError::BadCursor);
        };
        let micros: i64 = micros.parse().map_err(|_| PageError::BadCursor)?;
        let created_at = DateTime::from_timestamp_micros(micros).ok_or(PageError::BadCursor)?;
        let id = Uuid::parse_str(id).map_err(|_| PageError::BadCursor)?;
        Ok(Self { created_at, id })
    }
}

impl PageCursor {
    /// `(created_at, id) < (cursor)`: the rows after this cursor, newest first.
    pub fn rows_after(
        &self,
        created_at: impl IntoIden + 'static,
        id: impl IntoIden + 'static,
    ) -> SimpleExpr {
        Expr::tuple([Expr::col(created_at).into(), Expr::col(id).into()]).lt(Expr::tuple([
            Expr::value(self.created_at),
            Expr::value(self.id),
        ]))
    }
}

/// The position of a function version: its revision (listed newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RevisionCursor(pub i64);

impl Cursor for RevisionCursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("r1:{}", self.0))
    }

    fn decode(cursor: &str) -> Result<Self, PageError> {
        let text = decode_text(cursor)?;
        let revision = text.strip_prefix("r1:").ok_or(PageError::BadCursor)?;
        revision.parse().map(Self).map_err(|_| PageError::BadCursor)
    }
}

/// A validated request for one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageRequest<C = PageCursor> {
    pub first: u64,
    pub after: Option<C>,
}

impl<C: Cursor> PageRequest<C> {
    pub fn new(first: i32, after: Option<&str>) -> Result<Self, PageError> {
        Self::up_to(MAX_PAGE_SIZE, first, after)
    }

    /// A page of at most `max` items (the REST API allows larger pages).
    pub fn up_to(max: i32, first: i32, after: Option<&str>) -> Result<Self, PageError> {
        if !(1..=max).contains(&first) {
            return Err(PageError::FirstOutOfRange { first, max });
        }
        let after = after.map(C::decode).transpose()?;
        Ok(Self {
            first: first as u64,
            after,
        })
    }

    /// Rows to fetch: one more than asked, to learn whether a next page exists.
    pub fn fetch_limit(&self) -> u64 {
        self.first + 1
    }
}

/// One page of items, newest first.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub total_count: i64,
}

impl<T> Page<T> {
    /// The same page with each item converted.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            has_next_page: self.has_next_page,
            has_previous_page: self.has_previous_page,
            total_count: self.total_count,
        }
    }

    /// Builds a page from `fetch_limit()` rows at most.
    pub fn from_rows<C>(mut rows: Vec<T>, request: &PageRequest<C>, total_count: i64) -> Self {
        let has_next_page = rows.len() as u64 > request.first;
        rows.truncate(request.first as usize);
        Self {
            items: rows,
            has_next_page,
            has_previous_page: request.after.is_some(),
            total_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(sql: &str, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
    }

    #[test]
    fn a_shapes_text_is_rendered_once_and_bound_to_each_requests_parameters() {
        let texts = StatementTexts::new();
        let first = texts.statement("page", vec![Value::from(1)], || {
            rendered("SELECT $1", vec![Value::from(1)])
        });
        assert_eq!(first.values.unwrap().0, vec![Value::from(1)]);
        let again = texts.statement("page", vec![Value::from(2)], || {
            panic!("a known shape is not rendered again")
        });
        assert_eq!(again.sql, "SELECT $1");
        assert_eq!(again.values.unwrap().0, vec![Value::from(2)]);
    }

    #[test]
    fn a_shape_whose_parameters_differ_from_its_statements_is_not_reused() {
        let texts = StatementTexts::new();
        let render = || rendered("SELECT $1, $2", vec![Value::from(1), Value::from("a")]);
        let first = texts.statement("page", vec![Value::from("a"), Value::from(1)], render);
        // The rendered statement answers, with its own parameters.
        assert_eq!(
            first.values.unwrap().0,
            vec![Value::from(1), Value::from("a")]
        );
        let mut rendered_again = false;
        texts.statement("page", vec![], || {
            rendered_again = true;
            render()
        });
        assert!(rendered_again);
    }

    #[test]
    fn cursor_round_trips() {
        let cursor = PageCursor {
            created_at: DateTime::from_timestamp_micros(1_764_400_000_123_456).unwrap(),
            id: Uuid::new_v4(),
        };
        assert_eq!(PageCursor::decode(&cursor.encode()), Ok(cursor));
    }

    #[test]
    fn revision_cursors_round_trip_and_are_not_page_cursors() {
        let cursor = RevisionCursor(42);
        assert_eq!(RevisionCursor::decode(&cursor.encode()), Ok(cursor));
        let page_cursor = PageCursor {
            created_at: Utc::now(),
            id: Uuid::nil(),
        };
        assert_eq!(
            RevisionCursor::decode(&page_cursor.encode()),
            Err(PageError::BadCursor)
        );
        assert_eq!(
            PageCursor::decode(&cursor.encode()),
            Err(PageError::BadCursor)
        );
    }

    #[test]
    fn forged_cursors_are_rejected() {
        for bad in [
            "",
            "!!!",
            "djE6eDp5",
            &URL_SAFE_NO_PAD.encode("v2:1:00000000-0000-0000-0000-000000000000"),
        ] {
            assert_eq!(PageCursor::decode(bad), Err(PageError::BadCursor), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn decoding_anything_never_panics(text in ".{0,200}") {
            let _ = PageCursor::decode(&text);
        }

        #[test]
        fn decoding_base64_of_anything_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120)) {
            let _ = PageCursor::decode(&URL_SAFE_NO_PAD.encode(bytes));
        }

        #[test]
        fn cursors_round_trip(
            // Every instant chrono can represent to the microsecond.
            micros in DateTime::<Utc>::MIN_UTC.timestamp_micros()..=DateTime::<Utc>::MAX_UTC.timestamp_micros(),
            id in proptest::prelude::any::<u128>(),
        ) {
            let cursor = PageCursor {
                created_at: DateTime::from_timestamp_micros(micros).unwrap(),
                id: Uuid::from_u128(id),
            };
            proptest::prop_assert_eq!(PageCursor::decode(&cursor.encode()), Ok(cursor));
        }

        #[test]
        fn page_requests_validate_any_first(first in proptest::prelude::any::<i32>(), after in proptest::option::of(".{0,40}")) {
            let _ = PageRequest::<PageCursor>::new(first, after.as_deref());
            let _ = PageRequest::<RevisionCursor>::new(first, after.as_deref());
            if !(1..=MAX_PAGE_SIZE).contains(&first) {
                proptest::prop_assert_eq!(PageRequest::<PageCursor>::new(first, None), Err(PageError::FirstOutOfRange { first, max: MAX_PAGE_SIZE }));
            }
        }
    }

    #[test]
    fn first_is_bounded() {
        assert_eq!(
            PageRequest::<PageCursor>::new(0, None),
            Err(PageError::FirstOutOfRange {
                first: 0,
                max: MAX_PAGE_SIZE
            })
        );
        assert_eq!(
            PageRequest::<PageCursor>::new(101, None),
            Err(PageError::FirstOutOfRange {
                first: 101,
                max: MAX_PAGE_SIZE
            })
        );
        assert!(PageRequest::<PageCursor>::new(100, None).is_ok());
    }
}
