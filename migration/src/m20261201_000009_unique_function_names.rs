//! Function names are unique, compared case-insensitively (names are stored
//! trimmed), so `/run/{name}` names one function. Existing duplicates keep
//! their oldest holder's name; the others are renamed "name (2)", "name (3)"…
//! in order of creation, skipping any suffix that is itself taken.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000009_unique_function_names"
    }
}

/// The unique index; its name is what a refused insert or update reports.
pub const FUNCTION_NAME_INDEX: &str = "functions_name_unique";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(&format!(
                r#"
DO $$
DECLARE
    duplicate record;
    n integer;
    candidate text;
BEGIN
    FOR duplicate IN
        SELECT id, name FROM (
            SELECT id, name, row_number() OVER (PARTITION BY lower(name) ORDER BY created_at, id) AS rank
              FROM functions) ranked
         WHERE rank > 1
         ORDER BY lower(name), rank
    LOOP
        n := 2;
        LOOP
            candidate := left(duplicate.name, 240) || ' (' || n || ')';
            EXIT WHEN NOT EXISTS (SELECT 1 FROM functions WHERE lower(name) = lower(candidate));
            n := n + 1;
        END LOOP;
        UPDATE functions SET name = candidate WHERE id = duplicate.id;
    END LOOP;
END;
$$;
CREATE UNIQUE INDEX {FUNCTION_NAME_INDEX} ON functions (lower(name));
DROP INDEX IF EXISTS functions_name_idx;
"#
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS functions_name_idx ON functions (name);
                 DROP INDEX IF EXISTS {FUNCTION_NAME_INDEX};"
            ))
            .await?;
        Ok(())
    }
}
