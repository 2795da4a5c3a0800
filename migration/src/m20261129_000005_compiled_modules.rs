//! Content cache of the compiler: the same (language, source, compiler version,
//! flags) compiled before reuses its module instead of running the compiler.
//! Keyed by a SHA-256 over those inputs; shared by every worker.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261129_000005_compiled_modules"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE TABLE compiled_modules (
                     cache_key   text PRIMARY KEY,
                     wasm_binary bytea NOT NULL,
                     created_at  timestamptz NOT NULL DEFAULT now()
                 );",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE IF EXISTS compiled_modules;")
            .await?;
        Ok(())
    }
}
