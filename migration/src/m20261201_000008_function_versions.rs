//! Versions and deploys. Every revision of a function's source is kept as an
//! immutable `function_versions` row with its own compile outcome; compiled
//! modules live once per content in `modules` (keyed by the SHA-256 of the
//! wasm), so a rollback or an unchanged recompile stores nothing new.
//! `functions.status`, `compile_error` and `revision` keep describing the
//! latest revision; `functions.deployed_revision` is the READY revision that
//! executions run, and every execution records the revision it ran.
//!
//! Every change of a function is announced on the status channel: the status
//! payload of migration 000003 (unchanged, so `functionStatusChanged` keeps its
//! contract) and `{"kind": "functionChange", "change": "UPDATED" | "DEPLOYED" |
//! "DELETED", "id", "revision", "at"}`, from one trigger in the order UPDATED,
//! status, DEPLOYED.

use sea_orm_migration::prelude::*;

use crate::m20261201_000007_dependable_executions::{
    GUARDED_COLUMNS, final_executions_never_change,
};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000008_function_versions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
                r#"
CREATE TABLE modules (
    digest      text PRIMARY KEY,
    wasm_binary bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT modules_digest_is_sha256 CHECK (digest = encode(sha256(wasm_binary), 'hex'))
);

CREATE TABLE function_versions (
    function_id   uuid NOT NULL REFERENCES functions (id) ON DELETE CASCADE,
    revision      bigint NOT NULL,
    language      varchar(50) NOT NULL,
    source        text NOT NULL,
    status        function_status NOT NULL DEFAULT 'PENDING',
    compile_error text,
    module_digest text REFERENCES modules (digest),
    wasm_size     integer,
    created_at    timestamptz NOT NULL DEFAULT now(),
    compiled_at   timestamptz,
    PRIMARY KEY (function_id, revision),
    CONSTRAINT function_versions_ready_has_module
        CHECK ((status = 'READY') = (module_digest IS NOT NULL)),
    CONSTRAINT function_versions_failed_has_error
        CHECK (status <> 'FAILED' OR compile_error IS NOT NULL)
);
-- Deleting a function drops the modules no other revision uses.
CREATE INDEX function_versions_module_digest_idx ON function_versions (module_digest);

-- What exists becomes revision `revision` of each function.
INSERT INTO modules (digest, wasm_binary)
SELECT DISTINCT encode(sha256(wasm_binary), 'hex'), wasm_binary
  FROM functions WHERE wasm_binary IS NOT NULL;
INSERT INTO function_versions
       (function_id, revision, language, source, status, compile_error,
        module_digest, wasm_size, created_at, compiled_at)
SELECT id, revision, language, source, status, compile_error,
       encode(sha256(wasm_binary), 'hex'), octet_length(wasm_binary), updated_at,
       CASE WHEN status IN ('READY', 'FAILED') THEN updated_at END
  FROM functions;

ALTER TABLE functions ADD COLUMN deployed_revision bigint;
UPDATE functions SET deployed_revision = revision WHERE status = 'READY';
ALTER TABLE functions
    DROP CONSTRAINT functions_ready_has_wasm,
    DROP COLUMN wasm_binary,
    ADD CONSTRAINT functions_deployed_version_fk
        FOREIGN KEY (id, deployed_revision) REFERENCES function_versions (function_id, revision)
        DEFERRABLE INITIALLY DEFERRED;

ALTER TABLE executions ADD COLUMN revision bigint;
UPDATE executions e SET revision = f.revision FROM functions f WHERE f.id = e.function_id;
ALTER TABLE executions ALTER COLUMN revision SET NOT NULL;

-- A version's source never changes; only its compile outcome is written, once.
CREATE FUNCTION projectnil_versions_are_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.function_id, NEW.revision, NEW.language, NEW.source, NEW.created_at)
       IS DISTINCT FROM (OLD.function_id, OLD.revision, OLD.language, OLD.source, OLD.created_at)
       OR (OLD.status IN ('READY', 'FAILED') AND
           (NEW.status, NEW.compile_error, NEW.module_digest)
           IS DISTINCT FROM (OLD.status, OLD.compile_error, OLD.module_digest)) THEN
        RAISE EXCEPTION 'revision % of function % can no longer change', OLD.revision, OLD.function_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER function_versions_immutable
    BEFORE UPDATE ON function_versions
    FOR EACH ROW EXECUTE FUNCTION projectnil_versions_are_immutable();

CREATE FUNCTION projectnil_notify_function() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    at text := to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('projectnil_status', json_build_object(
            'kind', 'functionChange', 'change', 'DELETED', 'id', OLD.id,
            'revision', OLD.revision, 'at', at)::text);
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND (NEW.name, NEW.description, NEW.language, NEW.source)
       IS DISTINCT FROM (OLD.name, OLD.description, OLD.language, OLD.source) THEN
        PERFORM pg_notify('projectnil_status', json_build_object(
            'kind', 'functionChange', 'change', 'UPDATED', 'id', NEW.id,
            'revision', NEW.revision, 'at', at)::text);
    END IF;
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        PERFORM pg_notify('projectnil_status', json_build_object(
            'kind', 'function',
            'id', NEW.id,
            'functionId', NEW.id,
            'previousStatus', CASE TG_OP WHEN 'UPDATE' THEN OLD.status::text END,
            'status', NEW.status::text,
            'at', at)::text);
    END IF;
    IF NEW.deployed_revision IS NOT NULL AND (TG_OP = 'INSERT'
       OR NEW.deployed_revision IS DISTINCT FROM OLD.deployed_revision) THEN
        PERFORM pg_notify('projectnil_status', json_build_object(
            'kind', 'functionChange', 'change', 'DEPLOYED', 'id', NEW.id,
            'revision', NEW.deployed_revision, 'at', at)::text);
    END IF;
    RETURN NEW;
END;
$$;
DROP TRIGGER functions_status_notify ON functions;
CREATE TRIGGER functions_notify
    AFTER INSERT OR UPDATE OR DELETE ON functions
    FOR EACH ROW EXECUTE FUNCTION projectnil_notify_function();
"#,
            )
            .await?;
        // A finished execution's revision never changes either.
        let guarded = [GUARDED_COLUMNS, &["revision"]].concat();
        db.execute_unprepared(&final_executions_never_change(&guarded))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(&final_executions_never_change(GUARDED_COLUMNS))
            .await?;
        db.execute_unprepared(
            r#"
DROP TRIGGER IF EXISTS functions_notify ON functions;
DROP FUNCTION IF EXISTS projectnil_notify_function();
CREATE TRIGGER functions_status_notify
    AFTER INSERT OR UPDATE OF status ON functions
    FOR EACH ROW EXECUTE FUNCTION projectnil_notify_status();
ALTER TABLE executions DROP COLUMN IF EXISTS revision;
ALTER TABLE functions ADD COLUMN wasm_binary bytea;
UPDATE functions f SET wasm_binary = m.wasm_binary
  FROM function_versions v JOIN modules m ON m.digest = v.module_digest
 WHERE v.function_id = f.id AND v.revision = f.revision;
ALTER TABLE functions
    DROP CONSTRAINT IF EXISTS functions_deployed_version_fk,
    DROP COLUMN IF EXISTS deployed_revision,
    ADD CONSTRAINT functions_ready_has_wasm CHECK (status <> 'READY' OR wasm_binary IS NOT NULL);
DROP TABLE IF EXISTS function_versions;
DROP FUNCTION IF EXISTS projectnil_versions_are_immutable();
DROP TABLE IF EXISTS modules;
"#,
        )
        .await?;
        Ok(())
    }
}
