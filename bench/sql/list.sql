-- The floor of the list query: the statement functions::list
-- (server/src/functions/mod.rs, via pagination::fetch_page) sends for the
-- figure's `functions(first: 50)`: the page with its count as a scalar
-- subquery, and without the text columns the query does not select
-- (source, description, compile_error), as the server sends it (text
-- captured with log_min_duration_statement = 0).
SELECT "functions"."id", "functions"."name", "functions"."language", CAST("functions"."status" AS "text"), "functions"."revision", "functions"."deployed_revision", "functions"."created_at", "functions"."updated_at", '' AS "source", NULL::text AS "description", NULL::text AS "compile_error", (SELECT v.wasm_size FROM function_versions v WHERE v.function_id = functions.id AND v.revision = functions.revision) AS "wasm_size", (SELECT COUNT(*) FROM "functions" WHERE TRUE) AS "page_total_count" FROM "functions" WHERE TRUE ORDER BY "functions"."created_at" DESC, "functions"."id" DESC LIMIT 51;
