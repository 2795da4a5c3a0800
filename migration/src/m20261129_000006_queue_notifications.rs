//! An insert into a compilation queue is announced with `pg_notify` on the
//! queue's channel ([`crate::queue_channel`]), so an idle consumer sleeps on a
//! LISTEN connection instead of polling (see the server's `queue::consumer`).
//!
//! The trigger is on pgmq's queue table (`pgmq.q_<queue>`), so every sender is
//! heard: `pgmq.send` from this platform or from a compiler written in another
//! language. One notification per statement (a `pgmq.send_batch` is one), with an
//! empty payload: it only says "read the queue". Like every NOTIFY it is delivered
//! when the sending transaction commits, which is when the message becomes
//! readable. A message that becomes visible later (its visibility timeout ran
//! out, `pgmq.set_vt`, a delayed send) is not announced again: consumers still
//! read now and then.

use sea_orm_migration::prelude::*;

use crate::{COMPILATION_JOBS_QUEUE, COMPILATION_RESULTS_QUEUE, queue_channel};

pub struct Migration;

/// The statement that announces every insert into `queue` on its channel
/// (used again by the migrations that add queues).
pub(crate) fn notify_insert_trigger(queue: &str) -> String {
    format!(
        "CREATE TRIGGER projectnil_notify_insert \
             AFTER INSERT ON pgmq.q_{queue} \
             FOR EACH STATEMENT EXECUTE FUNCTION projectnil_notify_queue('{}')",
        queue_channel(queue)
    )
}

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261129_000006_queue_notifications"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            r#"
CREATE FUNCTION projectnil_notify_queue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], '');
    RETURN NULL;
END;
$$;
"#,
        )
        .await?;
        for queue in [COMPILATION_JOBS_QUEUE, COMPILATION_RESULTS_QUEUE] {
            db.execute_unprepared(&notify_insert_trigger(queue)).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for queue in [COMPILATION_JOBS_QUEUE, COMPILATION_RESULTS_QUEUE] {
            db.execute_unprepared(&format!(
                "DROP TRIGGER IF EXISTS projectnil_notify_insert ON pgmq.q_{queue}"
            ))
            .await?;
        }
        db.execute_unprepared("DROP FUNCTION IF EXISTS projectnil_notify_queue()")
            .await?;
        Ok(())
    }
}
