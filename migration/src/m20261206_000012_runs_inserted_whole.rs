//! `projectnil_record_run` inserts a synchronous run's row once, already in
//! the status it reached, instead of inserting it PENDING and updating it
//! twice in the same statement. Nobody could see the row between those
//! writes, so their guards could never fail; what they cost was real: each
//! update of `status` and `lease_expires_at` is a new row version with an
//! entry in every one of the table's indexes, and a trigger call of its own.
//! Measured with pgbench on one connection (BENCHMARKS.md, session 23): a
//! call took 0.79–0.82 ms before and 0.52–0.61 ms after, CPU-bound (a bare
//! one-row insert and commit takes 0.39–0.47 ms).
//!
//! Listeners still hear every transition in order, from the announcing
//! trigger: a row inserted already started (`started_at` set, status not
//! PENDING) is announced as PENDING, then RUNNING, then its final status if
//! it has one, each with the status before it, as the three writes announced
//! them. Any other insert is announced as before, with no previous status.
//! The statistics trigger stages a run inserted final as it stages one
//! updated to final (`m20261201_000010`).

use sea_orm_migration::prelude::*;

use crate::m20261129_000003_status_notifications::NOTIFY_STATUS;
use crate::m20261202_000011_synchronous_runs::RECORD_RUN;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000012_runs_inserted_whole"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                r#"
-- Attached to executions only (functions announce through
-- projectnil_notify_function since m20261201_000008).
CREATE OR REPLACE FUNCTION projectnil_notify_status() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    at text := to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    -- The statuses this write moved the row through, in order.
    path text[] := ARRAY[NEW.status::text];
    previous text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.status IS NOT DISTINCT FROM OLD.status THEN
            RETURN NEW;
        END IF;
        previous := OLD.status::text;
    ELSIF NEW.started_at IS NOT NULL AND NEW.status <> 'PENDING' THEN
        path := CASE NEW.status WHEN 'RUNNING' THEN ARRAY['PENDING', 'RUNNING']
                                ELSE ARRAY['PENDING', 'RUNNING', NEW.status::text] END;
    END IF;
    FOR i IN 1 .. cardinality(path) LOOP
        PERFORM pg_notify('projectnil_status', json_build_object(
            'kind', 'execution',
            'id', NEW.id,
            'functionId', NEW.function_id,
            'previousStatus', previous,
            'status', path[i],
            'at', at
        )::text);
        previous := path[i];
    END LOOP;
    RETURN NEW;
END;
$$;

-- The same signature and result as m20261202_000011's: a RUNNING row with
-- its lease when the outcome is not given yet, else the final row.
CREATE OR REPLACE FUNCTION projectnil_record_run(
    p_id uuid,
    p_function_id uuid,
    p_revision bigint,
    p_input jsonb,
    p_owner uuid,
    p_lease interval,
    p_accepted_ago interval,
    p_started_ago interval,
    p_ran interval,
    p_status execution_status,
    p_output jsonb,
    p_error_message text,
    p_logs jsonb,
    p_error_kind execution_error_kind
) RETURNS SETOF executions
LANGUAGE plpgsql
-- Planned once per connection (m20261202_000011).
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    now_ timestamptz := clock_timestamp();
BEGIN
    RETURN QUERY
    INSERT INTO executions (id, function_id, revision, input, status, background, owner,
                            lease_expires_at, created_at, started_at, completed_at,
                            output, error_message, logs, error_kind)
    SELECT p_id, id, deployed_revision, p_input, coalesce(p_status, 'RUNNING'), false, p_owner,
           CASE WHEN p_status IS NULL THEN now_ + p_lease END, now_ - p_accepted_ago,
           now_ - p_started_ago, now_ - p_started_ago + p_ran,
           p_output, p_error_message, p_logs, p_error_kind
      FROM functions WHERE id = p_function_id AND deployed_revision = p_revision
    RETURNING *;
END;
$$;
"#,
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(NOTIFY_STATUS).await?;
        db.execute_unprepared(RECORD_RUN).await?;
        Ok(())
    }
}
