//! Records pgmq as part of the schema. The install itself happens in
//! [`crate::install_pgmq`] (it needs a pool, not the migration's transaction);
//! this step checks that it did and, on the way down, removes the SQL-installed
//! pgmq again (an extension-installed pgmq is left to its owner).

use sea_orm_migration::prelude::*;

use crate::pgmq_extension_installed;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261129_000001_pgmq"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let row = db
            .query_one(sea_orm_migration::sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT to_regproc('pgmq.create') IS NOT NULL AS installed",
            ))
            .await?;
        let installed: bool = match row {
            Some(row) => row.try_get("", "installed")?,
            None => false,
        };
        if !installed {
            return Err(DbErr::Migration(
                "pgmq is not installed in this database: apply migrations with \
                 `projectnil migrate` (migration::apply), which installs it first"
                    .into(),
            ));
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if !pgmq_extension_installed(db).await? {
            db.execute_unprepared("DROP SCHEMA IF EXISTS pgmq CASCADE")
                .await?;
        }
        Ok(())
    }
}
