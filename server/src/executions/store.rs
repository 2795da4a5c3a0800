//! Every write of an execution's status, each guarded by the state it expects:
//! RUNNING only from PENDING (or from a RUNNING run whose lease lapsed, when a
//! background execution is taken over), a final status only from RUNNING and
//! only by the run that owns it (owner and attempt), a cancel or a recovery
//! only of an unfinished execution. A write whose guard does not hold changes
//! nothing; the caller gets `None` and decides what to log. A database trigger
//! (migration `m20261201_000007`) refuses any change of a finished execution
//! on top of that.
//!
//! `executions` is partitioned by day of `created_at`. Writes that know the
//! row name its `created_at`; a lookup by id alone bounds it by the time in
//! the id ([`by_id`]), so it probes one partition instead of every day kept.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Statement, Value as SqlValue};
use serde_json::Value;
use uuid::Uuid;

use entity::execution::{self, ExecutionErrorKind, ExecutionStatus};

use crate::queue::{self, EXECUTION_JOBS_QUEUE, ExecutionJob};

/// The columns of an execution as [`execution::Model`] reads them (the status
/// enum as text, which is how the model decodes it).
pub const COLUMNS: &str = "id, function_id, input, output, status::text AS status, error_message, logs, \
     started_at, completed_at, created_at, attempt, background, owner, lease_expires_at, revision, \
     error_kind::text AS error_kind";

/// The process (one per `serve` or `worker`) that runs or holds executions;
/// written as their `owner`.
pub type RunnerId = Uuid;

/// What accepting a background execution came to.
#[derive(Debug)]
pub enum Enqueued {
    /// Recorded PENDING, its job sent to `execution_jobs`.
    Accepted(Box<execution::Model>),
    /// Refused: this many jobs wait, at least the backlog's bound.
    BacklogFull(i64),
    /// No such function, or no revision of it compiled yet.
    NotRunnable,
}

/// How every write that ends an execution FAILED of `kind` with the message
/// in parameter `$n` sets it: no output, finished now, no lease left.
fn failed_with_message(n: usize, kind: ExecutionErrorKind) -> String {
    use sea_orm::ActiveEnum as _;
    format!(
        "status = 'FAILED', output = NULL, error_message = ${n}, error_kind = '{}',
         completed_at = clock_timestamp(), lease_expires_at = NULL",
        kind.to_value()
    )
}

fn statement(sql: String, values: Vec<SqlValue>) -> Statement {
    Statement::from_sql_and_values(sea_orm::DatabaseBackend::Postgres, sql, values)
}

fn interval(lease: Duration) -> String {
    format!("{} milliseconds", lease.as_millis())
}

/// A measured interval, to the microsecond (PostgreSQL's resolution).
fn micros(duration: Duration) -> String {
    format!("{} microseconds", duration.as_micros())
}

async fn one<C: ConnectionTrait>(
    db: &C,
    sql: String,
    values: Vec<SqlValue>,
) -> Result<Option<execution::Model>, DbErr> {
    execution::Model::find_by_statement(statement(sql, values))
        .one(db)
        .await
}

/// How far from the time in its id an execution's `created_at` is looked for
/// first. Ids are made within moments of `created_at` (by PostgreSQL in the
/// insert, or here as a synchronous run is admitted); an hour covers a long
/// transaction or clocks that differ a little, and still names one daily
/// partition (two in the hours around midnight).
const CREATED_NEAR_ID: TimeDelta = TimeDelta::hours(1);

/// When the execution `id` was created, give or take [`CREATED_NEAR_ID`], if
/// its id tells: one made since migration `m20261206_000013` (version 7).
fn created_near(id: Uuid) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let (seconds, nanos) = id.get_timestamp()?.to_unix();
    let made = DateTime::from_timestamp(i64::try_from(seconds).ok()?, nanos)?;
    Some((made - CREATED_NEAR_ID, made + CREATED_NEAR_ID))
}

/// Runs the statement `sql` writes for the execution `id`, given the
/// condition that bounds `created_at` (or an empty one): first bounded near
/// the time in the id, then, if that finds nothing, by id alone. The second
/// look finds a row made before `m20261206_000013` or by a clock far off;
/// a guard that does not hold costs both looks, and changes nothing in
/// either.
async fn by_id<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    sql: impl Fn(&str) -> String,
    values: Vec<SqlValue>,
) -> Result<Option<execution::Model>, DbErr> {
    if let Some((from, until)) = created_near(id) {
        let n = values.len();
        let near = format!("AND created_at >= ${} AND created_at < ${}", n + 1, n + 2);
        let mut bounded = values.clone();
        bounded.extend([from.into(), until.into()]);
        if let Some(found) = one(db, sql(&near), bounded).await? {
            return Ok(Some(found));
        }
    }
    one(db, sql(""), values).await
}

/// Records a PENDING synchronous execution of the deployed revision of
/// `function_id`, held by `owner` for `lease`, in one statement; `None` when
/// there is none (no such function, or no revision of it compiled yet).
pub async fn accept<C: ConnectionTrait>(
    db: &C,
    function_id: Uuid,
    input: &Value,
    owner: RunnerId,
    lease: Duration,
) -> Result<Option<execution::Model>, DbErr> {
    one(
        db,
        format!(
            "INSERT INTO executions (function_id, revision, input, status, background, owner, lease_expires_at)
             SELECT id, deployed_revision, $2::jsonb, 'PENDING', false, $3, clock_timestamp() + $4::interval
               FROM functions WHERE id = $1 AND deployed_revision IS NOT NULL
             RETURNING {COLUMNS}"
        ),
        vec![
            function_id.into(),
            input.clone().into(),
            owner.into(),
            interval(lease).into(),
        ],
    )
    .await
}

/// Records a PENDING background execution of the deployed revision of
/// `function_id` and sends its job, unless `backlog` or more jobs wait. One
/// statement, so neither exists without the other: one round trip and one
/// commit, where a transaction of the backlog check, the insert and the send
/// took five round trips.
pub async fn enqueue<C: ConnectionTrait>(
    db: &C,
    function_id: Uuid,
    input: &Value,
    backlog: i64,
) -> Result<Enqueued, DbErr> {
    let waiting = queue::length_if_at_least(EXECUTION_JOBS_QUEUE, "$3");
    let job = ExecutionJob::sql_from("accepted");
    // `sent` is read by the outer query, so it runs exactly when a row was
    // accepted.
    let sql = format!(
        "WITH waiting AS ({waiting}),
         accepted AS (
             INSERT INTO executions (function_id, revision, input, status, background)
             SELECT f.id, f.deployed_revision, $2::jsonb, 'PENDING', true
               FROM functions f, waiting
              WHERE f.id = $1 AND f.deployed_revision IS NOT NULL
                AND (waiting.length IS NULL OR waiting.length < $3)
             RETURNING {COLUMNS}),
         sent AS (SELECT pgmq.send($4, {job}) AS msg_id FROM accepted)
         SELECT waiting.length AS waiting, accepted.*
           FROM waiting LEFT JOIN (accepted CROSS JOIN sent) ON true"
    );
    let values = vec![
        function_id.into(),
        input.clone().into(),
        backlog.into(),
        EXECUTION_JOBS_QUEUE.into(),
    ];
    let row = db
        .query_one(statement(sql, values))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("accepting returned no row".into()))?;
    let waiting: Option<i64> = row.try_get("", "waiting")?;
    if let Some(waiting) = waiting.filter(|&waiting| waiting >= backlog) {
        return Ok(Enqueued::BacklogFull(waiting));
    }
    let accepted: Option<Uuid> = row.try_get("", "id")?;
    Ok(match accepted {
        Some(_) => Enqueued::Accepted(Box::new(execution::Model::from_query_result(&row, "")?)),
        None => Enqueued::NotRunnable,
    })
}

/// The revision `function_id` would run now, if it has one deployed.
pub async fn deployed_revision<C: ConnectionTrait>(
    db: &C,
    function_id: Uuid,
) -> Result<Option<i64>, DbErr> {
    let row = db
        .query_one(statement(
            "SELECT deployed_revision FROM functions WHERE id = $1 AND deployed_revision IS NOT NULL"
                .to_owned(),
            vec![function_id.into()],
        ))
        .await?;
    row.map(|row| row.try_get::<i64>("", "deployed_revision"))
        .transpose()
}

/// A synchronous run that has already started on this runner, as
/// [`record_run`] writes it.
#[derive(Debug)]
pub struct StartedRun<'a> {
    pub id: Uuid,
    pub function_id: Uuid,
    /// The revision whose module runs; recorded only while it is deployed.
    pub revision: i64,
    pub input: &'a Value,
    pub owner: RunnerId,
    pub lease: Duration,
    /// How long ago the request was admitted (the execution's `created_at`).
    pub accepted_ago: Duration,
    /// How long ago the call started (its `started_at`).
    pub started_ago: Duration,
}

/// Records `run` RUNNING or, with `finished` (the outcome and how long the
/// call took), in its final status: one insert and one commit, announced as
/// each transition it made from PENDING (migrations `m20261202_000011`,
/// `m20261206_000012`). `None` when `run.revision` is no longer deployed (or
/// the function is gone): nothing was recorded.
pub async fn record_run<C: ConnectionTrait>(
    db: &C,
    run: &StartedRun<'_>,
    finished: Option<(&Outcome, Duration)>,
) -> Result<Option<execution::Model>, DbErr> {
    let outcome = finished.map(|(outcome, _)| outcome);
    let mut values = vec![
        run.id.into(),
        run.function_id.into(),
        run.revision.into(),
        run.input.clone().into(),
        run.owner.into(),
        interval(run.lease).into(),
        micros(run.accepted_ago).into(),
        micros(run.started_ago).into(),
        finished.map(|(_, ran)| micros(ran)).into(),
    ];
    values.extend(outcome_values(outcome));
    one(
        db,
        format!(
            "SELECT {COLUMNS} FROM projectnil_record_run(
                 $1, $2, $3, $4::jsonb, $5, $6::interval, $7::interval, $8::interval, $9::interval,
                 $10::execution_status, $11::jsonb, $12, $13::jsonb, $14::execution_error_kind)"
        ),
        values,
    )
    .await
}

/// An outcome's columns, bound in this order: status, output, error
/// message, logs, error kind (all NULL without one).
fn outcome_values(outcome: Option<&Outcome>) -> [SqlValue; 5] {
    use sea_orm::ActiveEnum as _;
    [
        outcome.map(|o| o.status.to_value()).into(),
        outcome.and_then(|o| o.output.clone()).into(),
        outcome.and_then(|o| o.error_message.clone()).into(),
        outcome.and_then(|o| o.logs.clone()).into(),
        outcome
            .and_then(|o| o.error_kind)
            .map(|kind| kind.to_value())
            .into(),
    ]
}

/// PENDING → RUNNING for the synchronous execution `owner` holds, as its wasm
/// thread starts it. (`created_at` names its partition.)
pub async fn start_held<C: ConnectionTrait>(
    db: &C,
    pending: &execution::Model,
    owner: RunnerId,
    lease: Duration,
) -> Result<Option<execution::Model>, DbErr> {
    one(
        db,
        format!(
            "UPDATE executions SET status = 'RUNNING', started_at = clock_timestamp(),
                    lease_expires_at = clock_timestamp() + $3::interval
             WHERE id = $1 AND created_at = $4 AND status = 'PENDING' AND owner = $2
             RETURNING {COLUMNS}"
        ),
        vec![
            pending.id.into(),
            owner.into(),
            interval(lease).into(),
            pending.created_at.into(),
        ],
    )
    .await
}

/// Takes a background execution for `owner`: PENDING → RUNNING (attempt
/// stays), or a RUNNING one whose lease lapsed with fewer than `max_attempts`
/// runs (attempt + 1; its status does not change, so no transition is
/// announced twice).
pub async fn claim<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    owner: RunnerId,
    lease: Duration,
    max_attempts: i32,
) -> Result<Option<execution::Model>, DbErr> {
    by_id(
        db,
        id,
        |near| {
            format!(
                "UPDATE executions SET status = 'RUNNING', started_at = clock_timestamp(), owner = $2,
                        lease_expires_at = clock_timestamp() + $3::interval,
                        attempt = CASE WHEN status = 'RUNNING' THEN attempt + 1 ELSE attempt END
                 WHERE id = $1 {near} AND background
                   AND (status = 'PENDING'
                        OR (status = 'RUNNING' AND lease_expires_at < clock_timestamp() AND attempt < $4))
                 RETURNING {COLUMNS}"
            )
        },
        vec![
            id.into(),
            owner.into(),
            interval(lease).into(),
            max_attempts.into(),
        ],
    )
    .await
}

/// The outcome a run writes.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: ExecutionStatus,
    pub output: Option<Value>,
    pub error_message: Option<String>,
    /// Set exactly when `status` is FAILED.
    pub error_kind: Option<ExecutionErrorKind>,
    pub logs: Option<Value>,
}

/// RUNNING → COMPLETED or FAILED, only by the run that owns it (its
/// `created_at` names the partition, so the write touches one). A background
/// run names its `execution_jobs` message, which goes with the write (see
/// [`with_message_deleted`]).
pub async fn finish<C: ConnectionTrait>(
    db: &C,
    run: &execution::Model,
    outcome: &Outcome,
    message: Option<i64>,
) -> Result<Option<execution::Model>, DbErr> {
    let mut values = vec![run.id.into(), run.owner.into(), run.attempt.into()];
    values.extend(outcome_values(Some(outcome)));
    values.push(run.created_at.into());
    let update = format!(
        "UPDATE executions SET status = $4::execution_status, output = $5::jsonb,
                error_message = $6, logs = $7::jsonb, error_kind = $8::execution_error_kind,
                completed_at = clock_timestamp(), lease_expires_at = NULL
         WHERE id = $1 AND created_at = $9 AND status = 'RUNNING' AND owner = $2 AND attempt = $3
         RETURNING {COLUMNS}"
    );
    match message {
        Some(msg_id) => with_message_deleted(db, update, values, msg_id).await,
        None => one(db, update, values).await,
    }
}

/// A guarded `update` (returning [`COLUMNS`]) and the delete of the
/// `execution_jobs` message `msg_id` in one statement, the delete only when
/// the write held: one commit and one round trip, where a transaction around
/// two statements took four.
async fn with_message_deleted<C: ConnectionTrait>(
    db: &C,
    update: String,
    mut values: Vec<SqlValue>,
    msg_id: i64,
) -> Result<Option<execution::Model>, DbErr> {
    let (queue, message) = (values.len() + 1, values.len() + 2);
    values.extend([EXECUTION_JOBS_QUEUE.into(), msg_id.into()]);
    one(
        db,
        format!(
            "WITH changed AS ({update})
             SELECT changed.*, pgmq.delete(${queue}, ${message}::bigint) AS job_deleted FROM changed"
        ),
        values,
    )
    .await
}

/// PENDING or RUNNING → FAILED with `message`, whoever holds it.
pub async fn cancel<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    message: &str,
) -> Result<Option<execution::Model>, DbErr> {
    let failed = failed_with_message(2, ExecutionErrorKind::Cancelled);
    by_id(
        db,
        id,
        |near| {
            format!(
                "UPDATE executions SET {failed}
                 WHERE id = $1 {near} AND status IN ('PENDING', 'RUNNING')
                 RETURNING {COLUMNS}"
            )
        },
        vec![id.into(), message.into()],
    )
    .await
}

/// RUNNING → FAILED with `message` for a background execution whose lease
/// lapsed on its last allowed attempt, together with its `execution_jobs`
/// message `msg_id` (see [`with_message_deleted`]).
pub async fn give_up<C: ConnectionTrait>(
    db: &C,
    run: &execution::Model,
    message: &str,
    msg_id: i64,
) -> Result<Option<execution::Model>, DbErr> {
    let failed = failed_with_message(4, ExecutionErrorKind::Interrupted);
    let update = format!(
        "UPDATE executions SET {failed}
         WHERE id = $1 AND created_at = $2 AND status = 'RUNNING' AND attempt = $3
           AND lease_expires_at < clock_timestamp()
         RETURNING {COLUMNS}"
    );
    let values = vec![
        run.id.into(),
        run.created_at.into(),
        run.attempt.into(),
        message.into(),
    ];
    with_message_deleted(db, update, values, msg_id).await
}

/// Ends FAILED with `message` every synchronous execution whose holder's
/// lease lapsed (its caller is gone with it); returns how many.
pub async fn fail_abandoned<C: ConnectionTrait>(db: &C, message: &str) -> Result<u64, DbErr> {
    let result = db
        .execute(statement(
            format!(
                "UPDATE executions SET {}
                 WHERE status IN ('PENDING', 'RUNNING') AND NOT background
                   AND (lease_expires_at IS NULL OR lease_expires_at < clock_timestamp())",
                failed_with_message(1, ExecutionErrorKind::Interrupted)
            ),
            vec![message.into()],
        ))
        .await?;
    Ok(result.rows_affected())
}

/// A run whose lease its holder renews: the execution, its attempt, and
/// its `created_at`, which names the partition.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    pub id: Uuid,
    pub attempt: i32,
    pub created_at: DateTime<Utc>,
}

/// Pushes back the lease of the executions `owner` still holds among `runs`;
/// returns those it still holds (id and attempt).
pub async fn renew<C: ConnectionTrait>(
    db: &C,
    owner: RunnerId,
    runs: &[Lease],
    lease: Duration,
) -> Result<Vec<(Uuid, i32)>, DbErr> {
    #[derive(FromQueryResult)]
    struct Held {
        id: Uuid,
        attempt: i32,
    }
    let ids: Vec<Uuid> = runs.iter().map(|run| run.id).collect();
    let attempts: Vec<i32> = runs.iter().map(|run| run.attempt).collect();
    let created: Vec<DateTime<Utc>> = runs.iter().map(|run| run.created_at).collect();
    let held = Held::find_by_statement(statement(
        "UPDATE executions e SET lease_expires_at = clock_timestamp() + $4::interval
         FROM unnest($2::uuid[], $3::int[], $5::timestamptz[]) AS r(id, attempt, created_at)
         WHERE e.id = r.id AND e.created_at = r.created_at AND e.attempt = r.attempt
           AND e.owner = $1 AND e.status IN ('PENDING', 'RUNNING')
         RETURNING e.id, e.attempt"
            .into(),
        vec![
            owner.into(),
            ids.into(),
            attempts.into(),
            interval(lease).into(),
            created.into(),
        ],
    ))
    .all(db)
    .await?;
    Ok(held.into_iter().map(|h| (h.id, h.attempt)).collect())
}

pub async fn get<C: ConnectionTrait>(db: &C, id: Uuid) -> Result<Option<execution::Model>, DbErr> {
    by_id(
        db,
        id,
        |near| format!("SELECT {COLUMNS} FROM executions WHERE id = $1 {near}"),
        vec![id.into()],
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_ordered_id_bounds_its_creation_within_the_margin() {
        // The id keeps whole milliseconds.
        let before = Utc::now() - TimeDelta::milliseconds(1);
        let id = Uuid::now_v7();
        let after = Utc::now();
        let (from, until) = created_near(id).expect("a version 7 id tells its time");
        assert_eq!(until - from, CREATED_NEAR_ID * 2);
        let made = from + CREATED_NEAR_ID;
        assert!(
            before <= made && made <= after,
            "{before} <= {made} <= {after}"
        );
    }

    #[test]
    fn a_random_id_is_looked_up_by_id_alone() {
        assert_eq!(created_near(Uuid::new_v4()), None);
        assert_eq!(created_near(Uuid::nil()), None);
    }
}
