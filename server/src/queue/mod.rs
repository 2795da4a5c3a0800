//! The queues on pgmq, in the same PostgreSQL: the message types of the
//! contract and the few pgmq calls the compilation pipeline and the background
//! executions make. Everything goes
//! through SQL (`pgmq.send`, `pgmq.read`, ...) on a sea-orm connection or
//! transaction, so a job is enqueued in the very transaction that stores its
//! function, and the same code works on pgmq installed as SQL or as an extension.
//! Consumers sleep on a NOTIFY between messages rather than poll ([`consume`]).

mod consumer;
mod messages;

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Statement};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use consumer::{FALLBACK_POLL, QueueListener, Wake, consume};
pub use messages::{CompilationJob, CompilationResult, ExecutionJob};
pub use migration::{
    COMPILATION_JOBS_QUEUE, COMPILATION_RESULTS_QUEUE, EXECUTION_JOBS_QUEUE, QUEUES,
};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue database error: {0}")]
    Db(#[from] DbErr),
    #[error("could not encode a queue message: {0}")]
    Encode(#[from] serde_json::Error),
}

/// A message read from a queue, still invisible to other readers until its
/// visibility timeout runs out.
#[derive(Debug)]
pub struct Delivery {
    pub msg_id: i64,
    /// How many times this message has been read (1 on first delivery).
    pub read_count: i32,
    pub enqueued_at: chrono::DateTime<chrono::Utc>,
    pub body: serde_json::Value,
}

impl Delivery {
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(self.body.clone())
    }
}

#[derive(FromQueryResult)]
struct DeliveryRow {
    msg_id: i64,
    read_ct: i32,
    enqueued_at: chrono::DateTime<chrono::Utc>,
    message: serde_json::Value,
}

/// Sends one message; returns its id.
pub async fn send<C: ConnectionTrait, T: Serialize>(
    db: &C,
    queue: &str,
    message: &T,
) -> Result<i64, QueueError> {
    let body = serde_json::to_value(message)?;
    let row = db
        .query_one(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT pgmq.send($1, $2::jsonb) AS msg_id",
            [queue.into(), body.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("pgmq.send returned no row".into()))?;
    Ok(row.try_get("", "msg_id")?)
}

/// Reads up to `limit` messages without waiting (none when the queue has no
/// visible message); they stay invisible to other readers for
/// `visibility_timeout`.
pub async fn read<C: ConnectionTrait>(
    db: &C,
    queue: &str,
    visibility_timeout: Duration,
    limit: i32,
) -> Result<Vec<Delivery>, QueueError> {
    let rows = DeliveryRow::find_by_statement(Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT msg_id, read_ct, enqueued_at, message FROM pgmq.read($1, $2, $3)",
        [
            queue.into(),
            (visibility_timeout.as_secs().max(1) as i32).into(),
            limit.into(),
        ],
    ))
    .all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Delivery {
            msg_id: r.msg_id,
            read_count: r.read_ct,
            enqueued_at: r.enqueued_at,
            body: r.message,
        })
        .collect())
}

/// Moves a handled message to the queue's archive table (kept for operators).
pub async fn archive<C: ConnectionTrait>(
    db: &C,
    queue: &str,
    msg_id: i64,
) -> Result<(), QueueError> {
    on_message(db, "SELECT pgmq.archive($1, $2::bigint)", queue, msg_id).await
}

/// Deletes a handled message.
pub async fn delete<C: ConnectionTrait>(
    db: &C,
    queue: &str,
    msg_id: i64,
) -> Result<(), QueueError> {
    on_message(db, "SELECT pgmq.delete($1, $2::bigint)", queue, msg_id).await
}

/// Runs `sql`, a pgmq call on one message (`$1` the queue, `$2` its id).
async fn on_message<C: ConnectionTrait>(
    db: &C,
    sql: &str,
    queue: &str,
    msg_id: i64,
) -> Result<(), QueueError> {
    db.execute(Statement::from_sql_and_values(
        db.get_database_backend(),
        sql,
        [queue.into(), msg_id.into()],
    ))
    .await?;
    Ok(())
}

/// A query of one row whose `length` is the number of messages of `queue`,
/// visible or in flight, if there may be `bound` or more of them (an SQL
/// expression, such as a parameter), and NULL when there are certainly
/// fewer. Message ids only grow, so the queue holds at most
/// `max(msg_id) - min(msg_id) + 1` messages: two lookups in the primary
/// key's index settle the usual case, and only a span of `bound` or more
/// pays for the count, which reads every message.
pub fn length_if_at_least(queue: &str, bound: &str) -> String {
    // The queue's table name cannot be a bind parameter; queue names are ours.
    format!(
        "SELECT CASE WHEN span < {bound} THEN NULL
                     ELSE (SELECT count(*) FROM pgmq.q_{queue}) END AS length
           FROM (SELECT coalesce(max(msg_id) - min(msg_id) + 1, 0) AS span
                   FROM pgmq.q_{queue}) ids"
    )
}

/// Sends one message unless `queue` already holds `bound` or more, in one
/// statement; `Err(waiting)` with how many it holds when it refused.
pub async fn send_unless_full<C: ConnectionTrait, T: Serialize>(
    db: &C,
    queue: &str,
    message: &T,
    bound: i64,
) -> Result<Result<i64, i64>, QueueError> {
    let body = serde_json::to_value(message)?;
    let waiting = length_if_at_least(queue, "$3");
    let row = db
        .query_one(Statement::from_sql_and_values(
            db.get_database_backend(),
            format!(
                "WITH waiting AS ({waiting}),
                 sent AS (SELECT pgmq.send($1, $2::jsonb) AS msg_id FROM waiting
                           WHERE waiting.length IS NULL OR waiting.length < $3)
                 SELECT waiting.length AS waiting, sent.msg_id
                   FROM waiting LEFT JOIN sent ON true"
            ),
            [queue.into(), body.into(), bound.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("sending returned no row".into()))?;
    let msg_id: Option<i64> = row.try_get("", "msg_id")?;
    match msg_id {
        Some(msg_id) => Ok(Ok(msg_id)),
        None => Ok(Err(row
            .try_get::<Option<i64>>("", "waiting")?
            .unwrap_or(bound))),
    }
}

/// Makes an in-flight message visible again after `delay` (instead of after
/// its whole visibility timeout).
pub async fn make_visible_in<C: ConnectionTrait>(
    db: &C,
    queue: &str,
    msg_id: i64,
    delay: Duration,
) -> Result<(), QueueError> {
    db.execute(Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT 1 FROM pgmq.set_vt($1, $2::bigint, $3)",
        [queue.into(), msg_id.into(), (delay.as_secs() as i32).into()],
    ))
    .await?;
    Ok(())
}

/// Puts an in-flight message back as if it had not been read: visible again
/// after `delay`, its read count as before this delivery. For a handler that
/// failed for a reason that is not the message's (the database, a compiler
/// that cannot start), so that such failures never add up to giving the
/// message up as poison. Only while the message is still this delivery's
/// (`read_count` unchanged; `false` when another reader took it since).
/// pgmq has no call for this; its queue table is `pgmq.q_<queue>` (see
/// [`length_if_at_least`]).
pub async fn give_back<C: ConnectionTrait>(
    db: &C,
    queue: &str,
    msg_id: i64,
    read_count: i32,
    delay: Duration,
) -> Result<bool, QueueError> {
    let given = db
        .execute(Statement::from_sql_and_values(
            db.get_database_backend(),
            format!(
                "UPDATE pgmq.q_{queue}
                    SET read_ct = read_ct - 1,
                        vt = clock_timestamp() + make_interval(secs => $3)
                  WHERE msg_id = $1 AND read_ct = $2 AND read_ct > 0"
            ),
            [msg_id.into(), read_count.into(), delay.as_secs_f64().into()],
        ))
        .await?;
    Ok(given.rows_affected() == 1)
}

/// Backlog of one queue, from `pgmq.metrics`.
#[derive(Debug, Clone, FromQueryResult)]
pub struct QueueMetrics {
    pub queue_name: String,
    pub queue_length: i64,
    pub oldest_msg_age_sec: Option<i32>,
    pub total_messages: i64,
}

pub async fn metrics<C: ConnectionTrait>(db: &C, queue: &str) -> Result<QueueMetrics, QueueError> {
    let metrics = QueueMetrics::find_by_statement(Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT queue_name, queue_length, oldest_msg_age_sec, total_messages FROM pgmq.metrics($1)",
        [queue.into()],
    ))
    .one(db)
    .await?
    .ok_or_else(|| DbErr::RecordNotFound(format!("queue {queue} does not exist")))?;
    Ok(metrics)
}
