-- The floor of "execute over HTTP": the three statements of
-- Executor::execute (server/src/executions/mod.rs) as the server sends them
-- (text captured with log_statement = 'all'), each in its own transaction as
-- on the server's pool. Timestamps the server passes as parameters are now()
-- here. Variables: fid (a READY function), input, output (JSON text).
WITH f AS (SELECT id, revision FROM functions WHERE id = :fid AND status = 'READY'),
     e AS (INSERT INTO executions (function_id, input, status)
           SELECT id, CAST(:input AS jsonb), 'PENDING' FROM f
           RETURNING id, function_id, input, status, created_at)
SELECT e.id, e.function_id, e.input, e.status::text AS status, e.created_at, f.revision FROM e, f \gset e_
UPDATE "executions" SET "status" = CAST('RUNNING' AS "execution_status"), "started_at" = now()
  WHERE "executions"."id" = :e_id
  RETURNING "id", "function_id", "input", "output", CAST("status" AS "text"), "error_message", "logs", "started_at", "completed_at", "created_at";
UPDATE "executions" SET "output" = :output, "status" = CAST('COMPLETED' AS "execution_status"), "logs" = NULL, "completed_at" = now()
  WHERE "executions"."id" = :e_id
  RETURNING "id", "function_id", "input", "output", CAST("status" AS "text"), "error_message", "logs", "started_at", "completed_at", "created_at";
