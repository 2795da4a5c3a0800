//! The `functions` and `executions` tables, their status enums and the
//! invariants the database enforces whatever process writes to it.
//!
//! `revision` is the pipeline's addition: it starts at 1 and goes up whenever the
//! source or language changes, so a compilation job or result for an older
//! revision is recognised as stale and dropped.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261129_000002_functions_executions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                r#"
CREATE TYPE function_status AS ENUM ('PENDING', 'COMPILING', 'READY', 'FAILED');
CREATE TYPE execution_status AS ENUM ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED');

CREATE TABLE functions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          varchar(255) NOT NULL,
    description   text,
    language      varchar(50) NOT NULL,
    source        text NOT NULL,
    wasm_binary   bytea,
    status        function_status NOT NULL DEFAULT 'PENDING',
    compile_error text,
    revision      bigint NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT functions_ready_has_wasm CHECK (status <> 'READY' OR wasm_binary IS NOT NULL),
    CONSTRAINT functions_failed_has_error CHECK (status <> 'FAILED' OR compile_error IS NOT NULL),
    CONSTRAINT functions_revision_positive CHECK (revision > 0)
);
CREATE INDEX functions_name_idx ON functions (name);
CREATE INDEX functions_status_idx ON functions (status);
-- Newest-first pagination walks (created_at, id) backwards.
CREATE INDEX functions_created_at_id_idx ON functions (created_at DESC, id DESC);

CREATE TABLE executions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    function_id   uuid NOT NULL REFERENCES functions (id) ON DELETE CASCADE,
    input         jsonb,
    output        jsonb,
    status        execution_status NOT NULL DEFAULT 'PENDING',
    error_message text,
    logs          jsonb,
    started_at    timestamptz,
    completed_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT executions_failed_has_error CHECK (status <> 'FAILED' OR error_message IS NOT NULL),
    CONSTRAINT executions_completed_has_no_error CHECK (status <> 'COMPLETED' OR error_message IS NULL)
);
CREATE INDEX executions_function_id_idx ON executions (function_id);
CREATE INDEX executions_status_idx ON executions (status);
CREATE INDEX executions_created_at_idx ON executions (created_at DESC);
CREATE INDEX executions_function_created_idx ON executions (function_id, created_at DESC, id DESC);
"#,
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP TABLE IF EXISTS executions;
                 DROP TABLE IF EXISTS functions;
                 DROP TYPE IF EXISTS execution_status;
                 DROP TYPE IF EXISTS function_status;",
            )
            .await?;
        Ok(())
    }
}
