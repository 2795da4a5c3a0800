//! The two pgmq queues of the compilation pipeline.

use sea_orm_migration::prelude::*;

use crate::{COMPILATION_JOBS_QUEUE, COMPILATION_RESULTS_QUEUE};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261129_000004_compilation_queues"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for queue in [COMPILATION_JOBS_QUEUE, COMPILATION_RESULTS_QUEUE] {
            db.execute_unprepared(&format!("SELECT pgmq.create('{queue}')"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for queue in [COMPILATION_JOBS_QUEUE, COMPILATION_RESULTS_QUEUE] {
            db.execute_unprepared(&format!(
                "SELECT pgmq.drop_queue('{queue}') WHERE EXISTS \
                 (SELECT 1 FROM pgmq.meta WHERE queue_name = '{queue}')"
            ))
            .await?;
        }
        Ok(())
    }
}
