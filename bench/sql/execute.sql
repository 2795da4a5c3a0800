-- The floor of "execute over HTTP": the three statements of a synchronous
-- execution (server/src/executions/store.rs: accept, start_held, finish) as
-- the server sent them before #18 (with a wasm thread free it now writes them
-- with one statement, projectnil_record_run), each in its own transaction as
-- on the server's pool
-- (the finish also fires the trigger that stages it for the statistics). The
-- server binds created_at (which names the partition) as a parameter; pgbench
-- variables are text, hence the microseconds.
-- The owner is a fixed runner id; leases are the default 10 s. Variables: fid
-- (a READY function), input, output (JSON text).
INSERT INTO executions (function_id, revision, input, status, background, owner, lease_expires_at)
SELECT id, deployed_revision, CAST(:input AS jsonb), 'PENDING', false,
       'a0a0a0a0-0000-4000-8000-000000000001', clock_timestamp() + CAST('10000 milliseconds' AS interval)
  FROM functions WHERE id = :fid AND deployed_revision IS NOT NULL
RETURNING id, function_id, input, output, status::text AS status, error_message, logs,
          started_at, completed_at, created_at, attempt, background, owner, lease_expires_at, revision,
          error_kind::text AS error_kind,
          (extract(epoch FROM created_at) * 1000000)::bigint AS created_us \gset e_
UPDATE executions SET status = 'RUNNING', started_at = clock_timestamp(),
       lease_expires_at = clock_timestamp() + CAST('10000 milliseconds' AS interval)
 WHERE id = :e_id AND created_at = timestamptz 'epoch' + :e_created_us * interval '1 microsecond' AND status = 'PENDING' AND owner = 'a0a0a0a0-0000-4000-8000-000000000001'
 RETURNING id, function_id, input, output, status::text AS status, error_message, logs,
           started_at, completed_at, created_at, attempt, background, owner, lease_expires_at, revision,
           error_kind::text AS error_kind;
UPDATE executions SET status = CAST('COMPLETED' AS execution_status), output = CAST(:output AS jsonb),
       error_message = NULL, logs = NULL, error_kind = NULL, completed_at = clock_timestamp(), lease_expires_at = NULL
 WHERE id = :e_id AND created_at = timestamptz 'epoch' + :e_created_us * interval '1 microsecond' AND status = 'RUNNING' AND owner = 'a0a0a0a0-0000-4000-8000-000000000001' AND attempt = 1
 RETURNING id, function_id, input, output, status::text AS status, error_message, logs,
           started_at, completed_at, created_at, attempt, background, owner, lease_expires_at, revision,
           error_kind::text AS error_kind;
