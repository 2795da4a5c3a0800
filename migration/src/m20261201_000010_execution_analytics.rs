//! Analytics and bounded growth of executions.
//!
//! - `executions.error_kind`: why a FAILED execution failed, written with the
//!   final status by whoever ends it (rows finished before this migration are
//!   classified once from their message, the only record they have).
//! - `executions` becomes range-partitioned by `created_at`, one partition per
//!   UTC day (`executions_pYYYYMMDD`), so retention drops whole partitions and
//!   every index stays the size of a day. `executions_default` catches a row
//!   whose day has no partition yet (it stays empty while maintenance runs);
//!   [`ENSURE_PARTITIONS`] moves such rows into their partition when it creates
//!   it. The primary key is `(id, created_at)`, as PostgreSQL requires the
//!   partition key in it; ids are random UUIDs, so they stay unique in practice.
//! - Statistics: a trigger stages every execution that reaches a final status
//!   in `execution_finishes`, in the same transaction as the status write; the
//!   server folds staged rows into `execution_rollups` (per function and for
//!   the whole platform, per minute and per hour; counts by status and kind and
//!   a mergeable duration histogram) and reads both, so statistics are exact
//!   the moment an execution finishes and cost nothing proportional to the
//!   number of executions. Rollups are never touched by execution retention.

use sea_orm_migration::prelude::*;

use crate::m20261201_000007_dependable_executions::{
    GUARDED_COLUMNS, final_executions_never_change,
};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000010_execution_analytics"
    }
}

/// `projectnil_ensure_execution_partitions(first_day, last_day)`: creates the
/// missing daily partitions of `executions` for those UTC days (inclusive),
/// moving any of their rows out of the default partition; returns how many it
/// created. Maintenance calls it ahead of time; so can anyone seeding old rows.
pub const ENSURE_PARTITIONS: &str = r#"
CREATE OR REPLACE FUNCTION projectnil_ensure_execution_partitions(first_day date, last_day date)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    day date;
    part text;
    lo timestamptz;
    hi timestamptz;
    created integer := 0;
BEGIN
    FOR day IN SELECT d::date FROM generate_series(first_day, last_day, interval '1 day') AS d LOOP
        part := 'executions_p' || to_char(day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass(part) IS NOT NULL;
        lo := day::timestamp AT TIME ZONE 'UTC';
        hi := (day + 1)::timestamp AT TIME ZONE 'UTC';
        IF EXISTS (SELECT 1 FROM executions_default WHERE created_at >= lo AND created_at < hi) THEN
            -- Rows that arrived before their partition existed move in with it
            -- (the table is filled before it is attached, so no trigger fires).
            EXECUTE format('CREATE TABLE %I (LIKE executions INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
            EXECUTE format('WITH moved AS (DELETE FROM executions_default WHERE created_at >= $1 AND created_at < $2 RETURNING *)
                            INSERT INTO %I SELECT * FROM moved', part) USING lo, hi;
            EXECUTE format('ALTER TABLE executions ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
        ELSE
            EXECUTE format('CREATE TABLE %I PARTITION OF executions FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
        END IF;
        created := created + 1;
    END LOOP;
    RETURN created;
END;
$$;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            r#"
CREATE TYPE execution_error_kind AS ENUM (
    'TIMEOUT', 'MEMORY_LIMIT', 'STACK_OVERFLOW', 'TRAP', 'ABORT', 'INVALID_OUTPUT',
    'OUTPUT_TOO_LARGE', 'INTERRUPTED', 'CANCELLED', 'PLATFORM'
);

CREATE TABLE executions_partitioned (
    id               uuid NOT NULL DEFAULT gen_random_uuid(),
    function_id      uuid NOT NULL REFERENCES functions (id) ON DELETE CASCADE,
    input            jsonb,
    output           jsonb,
    status           execution_status NOT NULL DEFAULT 'PENDING',
    error_message    text,
    logs             jsonb,
    started_at       timestamptz,
    completed_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempt          integer NOT NULL DEFAULT 1,
    background       boolean NOT NULL DEFAULT false,
    owner            uuid,
    lease_expires_at timestamptz,
    revision         bigint NOT NULL,
    error_kind       execution_error_kind,
    CONSTRAINT executions_failed_has_error CHECK (status <> 'FAILED' OR error_message IS NOT NULL),
    CONSTRAINT executions_completed_has_no_error CHECK (status <> 'COMPLETED' OR error_message IS NULL),
    CONSTRAINT executions_attempt_positive CHECK (attempt > 0),
    CONSTRAINT executions_failed_has_kind CHECK ((status = 'FAILED') = (error_kind IS NOT NULL))
) PARTITION BY RANGE (created_at);
CREATE TABLE executions_default PARTITION OF executions_partitioned DEFAULT;

INSERT INTO executions_partitioned
SELECT id, function_id, input, output, status, error_message, logs, started_at, completed_at,
       created_at, attempt, background, owner, lease_expires_at, revision,
       CASE WHEN status = 'FAILED' THEN
           CASE
               WHEN error_message LIKE 'timed out after%' THEN 'TIMEOUT'
               WHEN error_message LIKE 'memory limit of%' THEN 'MEMORY_LIMIT'
               WHEN error_message = 'stack overflow' THEN 'STACK_OVERFLOW'
               WHEN error_message LIKE 'abort:%' THEN 'ABORT'
               WHEN error_message LIKE 'function returned%' THEN 'INVALID_OUTPUT'
               WHEN error_message LIKE 'output of % exceeds the limit%' THEN 'OUTPUT_TOO_LARGE'
               WHEN error_message LIKE 'interrupted%' THEN 'INTERRUPTED'
               WHEN error_message LIKE 'cancelled%' THEN 'CANCELLED'
               WHEN error_message IN ('unreachable executed', 'integer divide by zero', 'integer overflow')
                 OR error_message LIKE 'out of bounds%' THEN 'TRAP'
               ELSE 'PLATFORM'
           END::execution_error_kind
       END
  FROM executions;
DROP TABLE executions;
ALTER TABLE executions_partitioned RENAME TO executions;
ALTER TABLE executions ADD PRIMARY KEY (id, created_at);

-- Lists walk these newest first; each partition's piece is a day's worth.
CREATE INDEX executions_created_idx ON executions (created_at DESC, id DESC);
CREATE INDEX executions_function_created_idx ON executions (function_id, created_at DESC, id DESC);
CREATE INDEX executions_status_created_idx ON executions (status, created_at DESC, id DESC);
CREATE INDEX executions_function_status_created_idx
    ON executions (function_id, status, created_at DESC, id DESC);
CREATE INDEX executions_kind_created_idx ON executions (error_kind, created_at DESC, id DESC)
    WHERE error_kind IS NOT NULL;
CREATE INDEX executions_function_kind_created_idx
    ON executions (function_id, error_kind, created_at DESC, id DESC) WHERE error_kind IS NOT NULL;
-- Recovery looks only at unfinished executions, by lease.
CREATE INDEX executions_unfinished_lease_idx ON executions (lease_expires_at)
    WHERE status IN ('PENDING', 'RUNNING');

CREATE TRIGGER executions_status_notify
    AFTER INSERT OR UPDATE OF status ON executions
    FOR EACH ROW EXECUTE FUNCTION projectnil_notify_status();
CREATE TRIGGER executions_final_never_change
    BEFORE UPDATE ON executions
    FOR EACH ROW EXECUTE FUNCTION projectnil_final_executions_never_change();

-- Every execution that reaches a final status, until the server rolls it up.
CREATE TABLE execution_finishes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    function_id uuid NOT NULL,
    finished_at timestamptz NOT NULL,
    status      execution_status NOT NULL,
    error_kind  execution_error_kind,
    duration_ms double precision
);
CREATE INDEX execution_finishes_finished_idx ON execution_finishes (finished_at);

CREATE FUNCTION projectnil_stage_finish() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO execution_finishes (function_id, finished_at, status, error_kind, duration_ms)
    VALUES (NEW.function_id, coalesce(NEW.completed_at, clock_timestamp()), NEW.status, NEW.error_kind,
            extract(epoch FROM NEW.completed_at - NEW.started_at) * 1000);
    RETURN NULL;
END;
$$;
CREATE TRIGGER executions_stage_finish_insert
    AFTER INSERT ON executions
    FOR EACH ROW WHEN (NEW.status IN ('COMPLETED', 'FAILED'))
    EXECUTE FUNCTION projectnil_stage_finish();
CREATE TRIGGER executions_stage_finish_update
    AFTER UPDATE OF status ON executions
    FOR EACH ROW WHEN (OLD.status NOT IN ('COMPLETED', 'FAILED') AND NEW.status IN ('COMPLETED', 'FAILED'))
    EXECUTE FUNCTION projectnil_stage_finish();

-- Finished executions per minute (width 60) and per hour (width 3600), of one
-- function or (function_id NULL) of the whole platform.
CREATE TABLE execution_rollups (
    function_id        uuid REFERENCES functions (id) ON DELETE CASCADE,
    width              integer NOT NULL CHECK (width IN (60, 3600)),
    bucket             timestamptz NOT NULL,
    completed          bigint NOT NULL,
    failed             bigint NOT NULL,
    -- {"TIMEOUT": 3, ...}
    failed_by_kind     jsonb NOT NULL,
    -- Executions with a duration (some never started: cancelled while pending).
    timed              bigint NOT NULL,
    duration_sum_ms    double precision NOT NULL,
    duration_min_ms    double precision,
    duration_max_ms    double precision,
    -- {"<bucket index>": count}; the server owns the bucket boundaries.
    duration_histogram jsonb NOT NULL,
    CONSTRAINT execution_rollups_key UNIQUE NULLS NOT DISTINCT (function_id, width, bucket)
);
CREATE INDEX execution_rollups_bucket_idx ON execution_rollups (width, bucket);

-- Adds two {"key": count} objects key by key.
CREATE FUNCTION projectnil_add_counts(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(jsonb_object_agg(key, total), '{}'::jsonb)
      FROM (SELECT key, sum(value::bigint) AS total
              FROM (SELECT * FROM jsonb_each_text(a) UNION ALL SELECT * FROM jsonb_each_text(b)) AS both_sides
             GROUP BY key) AS summed
$$;

-- What finished before this migration counts too.
INSERT INTO execution_finishes (function_id, finished_at, status, error_kind, duration_ms)
SELECT function_id, coalesce(completed_at, created_at), status, error_kind,
       extract(epoch FROM completed_at - started_at) * 1000
  FROM executions WHERE status IN ('COMPLETED', 'FAILED')
 ORDER BY completed_at;
"#,
        )
        .await?;
        db.execute_unprepared(ENSURE_PARTITIONS).await?;
        // Today and the next days; the server keeps creating them ahead.
        db.execute_unprepared(
            "SELECT projectnil_ensure_execution_partitions(
                 (now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date + 3)",
        )
        .await?;
        let guarded = [GUARDED_COLUMNS, &["revision", "error_kind"]].concat();
        db.execute_unprepared(&final_executions_never_change(&guarded))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let guarded = [GUARDED_COLUMNS, &["revision"]].concat();
        db.execute_unprepared(&final_executions_never_change(&guarded))
            .await?;
        db.execute_unprepared(
            r#"
DROP TABLE IF EXISTS execution_rollups;
DROP FUNCTION IF EXISTS projectnil_add_counts(jsonb, jsonb);
DROP TABLE IF EXISTS execution_finishes;
DROP FUNCTION IF EXISTS projectnil_stage_finish() CASCADE;
DROP FUNCTION IF EXISTS projectnil_ensure_execution_partitions(date, date);

CREATE TABLE executions_unpartitioned (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    function_id      uuid NOT NULL REFERENCES functions (id) ON DELETE CASCADE,
    input            jsonb,
    output           jsonb,
    status           execution_status NOT NULL DEFAULT 'PENDING',
    error_message    text,
    logs             jsonb,
    started_at       timestamptz,
    completed_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempt          integer NOT NULL DEFAULT 1,
    background       boolean NOT NULL DEFAULT false,
    owner            uuid,
    lease_expires_at timestamptz,
    revision         bigint NOT NULL,
    CONSTRAINT executions_failed_has_error CHECK (status <> 'FAILED' OR error_message IS NOT NULL),
    CONSTRAINT executions_completed_has_no_error CHECK (status <> 'COMPLETED' OR error_message IS NULL),
    CONSTRAINT executions_attempt_positive CHECK (attempt > 0)
);
INSERT INTO executions_unpartitioned
SELECT id, function_id, input, output, status, error_message, logs, started_at, completed_at,
       created_at, attempt, background, owner, lease_expires_at, revision
  FROM executions;
DROP TABLE executions;
ALTER TABLE executions_unpartitioned RENAME TO executions;
DROP TYPE execution_error_kind;
CREATE INDEX executions_function_id_idx ON executions (function_id);
CREATE INDEX executions_status_idx ON executions (status);
CREATE INDEX executions_created_at_idx ON executions (created_at DESC);
CREATE INDEX executions_function_created_idx ON executions (function_id, created_at DESC, id DESC);
CREATE INDEX executions_unfinished_lease_idx ON executions (lease_expires_at)
    WHERE status IN ('PENDING', 'RUNNING');
CREATE TRIGGER executions_status_notify
    AFTER INSERT OR UPDATE OF status ON executions
    FOR EACH ROW EXECUTE FUNCTION projectnil_notify_status();
CREATE TRIGGER executions_final_never_change
    BEFORE UPDATE ON executions
    FOR EACH ROW EXECUTE FUNCTION projectnil_final_executions_never_change();
"#,
        )
        .await?;
        Ok(())
    }
}
