-- The floor of the list query: the two statements functions::list
-- (server/src/functions/mod.rs) sends for `functions(first: 50)`, as the
-- server sends them (text captured with log_statement = 'all').
SELECT COUNT(*) AS num_items FROM (SELECT "functions"."id", "functions"."name", "functions"."description", "functions"."language", "functions"."source", "functions"."wasm_binary", CAST("functions"."status" AS "text"), "functions"."compile_error", "functions"."revision", "functions"."created_at", "functions"."updated_at" FROM "functions" WHERE TRUE) AS "sub_query";
SELECT "functions"."id", "functions"."name", "functions"."description", "functions"."language", "functions"."source", CAST("functions"."status" AS "text"), "functions"."compile_error", "functions"."revision", "functions"."created_at", "functions"."updated_at", octet_length(wasm_binary) AS "wasm_size" FROM "functions" WHERE TRUE ORDER BY "functions"."created_at" DESC, "functions"."id" DESC LIMIT 51;
