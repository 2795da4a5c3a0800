//! Every status transition of a function or an execution is announced with
//! `pg_notify` from a trigger, so it is published exactly when (and only if) the
//! transaction that made it commits, in commit order, whichever process made it.
//! Subscribers on any replica LISTEN on the channel (see the server's `events`).
//!
//! Payload (JSON, small, never the wasm): `{"kind": "function" | "execution",
//! "id", "functionId", "previousStatus" (null on insert), "status", "at"}`.

use sea_orm_migration::prelude::*;

/// The announcing trigger function as this migration made it; restored when
/// `m20261206_000012_runs_inserted_whole` is rolled back.
pub(crate) const NOTIFY_STATUS: &str = r#"
CREATE OR REPLACE FUNCTION projectnil_notify_status() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    function_id uuid;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status IS NOT DISTINCT FROM OLD.status THEN
        RETURN NEW;
    END IF;
    IF TG_TABLE_NAME = 'functions' THEN
        function_id := NEW.id;
    ELSE
        function_id := NEW.function_id;
    END IF;
    PERFORM pg_notify('projectnil_status', json_build_object(
        'kind', CASE TG_TABLE_NAME WHEN 'functions' THEN 'function' ELSE 'execution' END,
        'id', NEW.id,
        'functionId', function_id,
        'previousStatus', CASE TG_OP WHEN 'UPDATE' THEN OLD.status::text END,
        'status', NEW.status::text,
        'at', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    )::text);
    RETURN NEW;
END;
$$;
"#;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261129_000003_status_notifications"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(NOTIFY_STATUS).await?;
        db.execute_unprepared(
            r#"
CREATE TRIGGER functions_status_notify
    AFTER INSERT OR UPDATE OF status ON functions
    FOR EACH ROW EXECUTE FUNCTION projectnil_notify_status();
CREATE TRIGGER executions_status_notify
    AFTER INSERT OR UPDATE OF status ON executions
    FOR EACH ROW EXECUTE FUNCTION projectnil_notify_status();
"#,
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP TRIGGER IF EXISTS executions_status_notify ON executions;
                 DROP TRIGGER IF EXISTS functions_status_notify ON functions;
                 DROP FUNCTION IF EXISTS projectnil_notify_status();",
            )
            .await?;
        Ok(())
    }
}
