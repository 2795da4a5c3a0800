//! Executions that survive load and crashes: each run is owned through a lease,
//! background executions travel through the `execution_jobs` queue, and the
//! database refuses a final status that changes.
//!
//! - `attempt`: which run produced (or is producing) the outcome; 1 for the first,
//!   one more each time a run whose process vanished is taken over.
//! - `background`: accepted by `startExecution` (re-run after a crash) rather than
//!   by a caller that waits (ended "interrupted" after a crash: its caller is gone).
//! - `owner` / `lease_expires_at`: the process that runs (or, for a waiting
//!   synchronous execution, holds) it, and until when; the owner renews the
//!   lease while it lives, so recovery reclaims only executions whose lease lapsed.
//! - A trigger rejects any update of a COMPLETED or FAILED row's status or
//!   outcome, whatever process or operator writes it.
//! - `execution_jobs`, with the same insert notification as the compilation queues.

use sea_orm_migration::prelude::*;

use crate::EXECUTION_JOBS_QUEUE;
use crate::m20261129_000006_queue_notifications::notify_insert_trigger;

pub struct Migration;

/// The columns of a finished execution this migration guards.
pub(crate) const GUARDED_COLUMNS: &[&str] = &[
    "status",
    "output",
    "error_message",
    "completed_at",
    "attempt",
];

/// (Re)defines the trigger function that refuses any change of `columns` of a
/// COMPLETED or FAILED execution.
pub(crate) fn final_executions_never_change(columns: &[&str]) -> String {
    let changed = columns
        .iter()
        .map(|c| format!("NEW.{c} IS DISTINCT FROM OLD.{c}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    format!(
        "CREATE OR REPLACE FUNCTION projectnil_final_executions_never_change() RETURNS trigger
         LANGUAGE plpgsql AS $$
         BEGIN
             IF OLD.status IN ('COMPLETED', 'FAILED') AND ({changed}) THEN
                 RAISE EXCEPTION 'execution % is % and can no longer change', OLD.id, OLD.status
                     USING ERRCODE = 'check_violation';
             END IF;
             RETURN NEW;
         END;
         $$;"
    )
}

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000007_dependable_executions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            r#"
ALTER TABLE executions
    ADD COLUMN attempt          integer NOT NULL DEFAULT 1,
    ADD COLUMN background       boolean NOT NULL DEFAULT false,
    ADD COLUMN owner            uuid,
    ADD COLUMN lease_expires_at timestamptz,
    ADD CONSTRAINT executions_attempt_positive CHECK (attempt > 0);

-- Recovery looks only at unfinished executions, by lease.
CREATE INDEX executions_unfinished_lease_idx ON executions (lease_expires_at)
    WHERE status IN ('PENDING', 'RUNNING');

"#,
        )
        .await?;
        db.execute_unprepared(&final_executions_never_change(GUARDED_COLUMNS))
            .await?;
        db.execute_unprepared(
            "CREATE TRIGGER executions_final_never_change
                 BEFORE UPDATE ON executions
                 FOR EACH ROW EXECUTE FUNCTION projectnil_final_executions_never_change();",
        )
        .await?;
        db.execute_unprepared(&format!("SELECT pgmq.create('{EXECUTION_JOBS_QUEUE}')"))
            .await?;
        db.execute_unprepared(&notify_insert_trigger(EXECUTION_JOBS_QUEUE))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(&format!(
            "SELECT pgmq.drop_queue('{EXECUTION_JOBS_QUEUE}') WHERE EXISTS \
             (SELECT 1 FROM pgmq.meta WHERE queue_name = '{EXECUTION_JOBS_QUEUE}')"
        ))
        .await?;
        db.execute_unprepared(
            "DROP TRIGGER IF EXISTS executions_final_never_change ON executions;
             DROP FUNCTION IF EXISTS projectnil_final_executions_never_change();
             DROP INDEX IF EXISTS executions_unfinished_lease_idx;
             ALTER TABLE executions
                 DROP CONSTRAINT IF EXISTS executions_attempt_positive,
                 DROP COLUMN IF EXISTS lease_expires_at,
                 DROP COLUMN IF EXISTS owner,
                 DROP COLUMN IF EXISTS background,
                 DROP COLUMN IF EXISTS attempt;",
        )
        .await?;
        Ok(())
    }
}
