//! The schema and its invariants, migrations and the process surface, against a
//! real PostgreSQL (each test its own database).

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::json;
use tests::{TestApp, TestDb, run_cli, scalar};

async fn exec(db: &DatabaseConnection, sql: &str) -> Result<u64, sea_orm::DbErr> {
    Ok(db.execute_unprepared(sql).await?.rows_affected())
}

async fn insert_function(db: &DatabaseConnection) -> String {
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            // Names are unique.
            "INSERT INTO functions (name, language, source) VALUES ('f-' || gen_random_uuid(), 'assemblyscript', 'x') RETURNING id::text",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<String>(0).unwrap()
}

#[tokio::test]
async fn migrations_apply_roll_back_and_apply_again() {
    let test_db = TestDb::empty().await.unwrap();
    let db = test_db.connect().await.unwrap();
    migration::apply(&db).await.unwrap();
    assert_eq!(
        Migrator::get_pending_migrations(&db).await.unwrap().len(),
        0
    );
    assert_eq!(scalar(&db, "SELECT count(*) FROM pgmq.meta WHERE queue_name IN ('compilation_jobs', 'compilation_results', 'execution_jobs')").await, 3);
    assert_eq!(scalar(&db, QUEUE_TRIGGERS).await, 3);
    const LEASE_COLUMNS: &str = "SELECT count(*) FROM information_schema.columns \
         WHERE table_name = 'executions' AND column_name IN ('attempt', 'background', 'owner', 'lease_expires_at')";
    assert_eq!(scalar(&db, LEASE_COLUMNS).await, 4);

    const VERSIONS: &str =
        "SELECT count(*) FROM pg_tables WHERE tablename IN ('function_versions', 'modules')";
    assert_eq!(scalar(&db, VERSIONS).await, 2);
    let id = insert_function(&db).await;
    exec(
        &db,
        &format!("INSERT INTO executions (function_id, revision) VALUES ('{id}', 1)"),
    )
    .await
    .unwrap();

    const UNIQUE_NAMES: &str =
        "SELECT count(*) FROM pg_indexes WHERE indexname = 'functions_name_unique'";
    assert_eq!(scalar(&db, UNIQUE_NAMES).await, 1);

    const PARTITIONED: &str = "SELECT count(*) FROM pg_partitioned_table p \
         JOIN pg_class c ON c.oid = p.partrelid WHERE c.relname = 'executions'";
    assert_eq!(scalar(&db, PARTITIONED).await, 1);
    const RECORD_RUN: &str = "SELECT count(*) FROM pg_proc WHERE proname = 'projectnil_record_run'";
    assert_eq!(scalar(&db, RECORD_RUN).await, 1);
    const RECORD_RUN_UPDATES: &str = "SELECT count(*) FROM pg_proc \
         WHERE proname = 'projectnil_record_run' AND prosrc LIKE '%UPDATE executions%'";
    assert_eq!(scalar(&db, RECORD_RUN_UPDATES).await, 0);
    const TIME_ORDERED_IDS: &str = "SELECT count(*) FROM information_schema.columns \
         WHERE table_name = 'executions' AND column_name = 'id' \
           AND column_default = 'projectnil_uuid_v7()'";
    assert_eq!(scalar(&db, TIME_ORDERED_IDS).await, 1);
    // The execution inserted above has a version 7 id.
    const VERSION_7_IDS: &str =
        "SELECT count(*) FROM executions WHERE substr(id::text, 15, 1) = '7'";
    assert_eq!(scalar(&db, VERSION_7_IDS).await, 1);
    // Time-ordered ids alone: new ids are random again.
    Migrator::down(&db, Some(1)).await.unwrap();
    assert_eq!(scalar(&db, TIME_ORDERED_IDS).await, 0);
    // A run inserted whole alone: the insert-then-update record comes back.
    Migrator::down(&db, Some(1)).await.unwrap();
    assert_eq!(scalar(&db, RECORD_RUN_UPDATES).await, 1);
    // The one-statement record of a synchronous run alone.
    Migrator::down(&db, Some(1)).await.unwrap();
    assert_eq!(scalar(&db, RECORD_RUN).await, 0);
    assert_eq!(scalar(&db, PARTITIONED).await, 1);
    // The analytics migration alone: executions go back to one table, rows kept.
    Migrator::down(&db, Some(1)).await.unwrap();
    assert_eq!(scalar(&db, PARTITIONED).await, 0);
    assert_eq!(scalar(&db, "SELECT count(*) FROM executions").await, 1);
    // A failure recorded before error kinds existed gets its kind once.
    exec(
        &db,
        &format!(
            "INSERT INTO executions (function_id, revision, status, error_message, started_at, completed_at)
             VALUES ('{id}', 1, 'FAILED', 'timed out after 5 ms of running time', now() - interval '1 second', now())"
        ),
    )
    .await
    .unwrap();

    // The last migration before it: names need not be unique.
    Migrator::down(&db, Some(1)).await.unwrap();
    assert_eq!(scalar(&db, UNIQUE_NAMES).await, 0);
    // Applied over duplicates, it keeps the oldest holder's name and suffixes
    // the others, skipping a suffix that is taken.
    exec(
        &db,
        "INSERT INTO functions (name, language, source, created_at) VALUES
             ('Dup', 'assemblyscript', 'x', now() - interval '3 minutes'),
             ('dup (2)', 'assemblyscript', 'x', now() - interval '2 minutes'),
             ('dup', 'assemblyscript', 'x', now() - interval '1 minute')",
    )
    .await
    .unwrap();
    Migrator::up(&db, Some(1)).await.unwrap();
    let renamed = scalar(
        &db,
        "SELECT count(*) FROM functions WHERE name IN ('Dup', 'dup (2)', 'dup (3)')",
    )
    .await;
    assert_eq!(renamed, 3);
    exec(&db, "DELETE FROM functions WHERE lower(name) LIKE 'dup%'")
        .await
        .unwrap();
    Migrator::down(&db, Some(1)).await.unwrap();

    // The one before: versions go, the function keeps its row.
    Migrator::down(&db, Some(1)).await.unwrap();
    assert_eq!(scalar(&db, VERSIONS).await, 0);
    assert_eq!(scalar(&db, "SELECT count(*) FROM executions").await, 2);

    // Then: the execution queue and the leases go.
    Migrator::down(&db, Some(1)).await.unwrap();
    assert_eq!(scalar(&db, LEASE_COLUMNS).await, 0);
    assert_eq!(scalar(&db, "SELECT count(*) FROM pgmq.meta").await, 2);
    assert_eq!(scalar(&db, QUEUE_TRIGGERS).await, 2);

    // And the one before that: the queues stay, their triggers go.
    Migrator::down(&db, Some(1)).await.unwrap();
    assert_eq!(scalar(&db, QUEUE_TRIGGERS).await, 0);
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM pg_proc WHERE proname = 'projectnil_notify_queue'"
        )
        .await,
        0
    );
    assert_eq!(scalar(&db, "SELECT count(*) FROM pgmq.meta").await, 2);
    migration::apply(&db).await.unwrap();
    assert_eq!(scalar(&db, QUEUE_TRIGGERS).await, 3);
    assert_eq!(scalar(&db, LEASE_COLUMNS).await, 4);
    assert_eq!(scalar(&db, VERSIONS).await, 2);
    assert_eq!(scalar(&db, UNIQUE_NAMES).await, 1);
    assert_eq!(scalar(&db, PARTITIONED).await, 1);
    assert_eq!(scalar(&db, TIME_ORDERED_IDS).await, 1);
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM executions WHERE error_kind = 'TIMEOUT'"
        )
        .await,
        1
    );
    // ...and counts in the statistics.
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM execution_finishes WHERE error_kind = 'TIMEOUT'"
        )
        .await,
        1
    );
    // Applied again over existing data, every function has its revision.
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM function_versions").await,
        1
    );

    Migrator::down(&db, None).await.unwrap();
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM pg_tables WHERE tablename IN ('functions', 'executions')"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgmq'"
        )
        .await,
        0
    );

    migration::apply(&db).await.unwrap();
    assert_eq!(
        Migrator::get_pending_migrations(&db).await.unwrap().len(),
        0
    );
    assert_eq!(scalar(&db, QUEUE_TRIGGERS).await, 3);
    insert_function(&db).await;
}

/// The insert triggers on the three queue tables.
const QUEUE_TRIGGERS: &str = "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
     WHERE t.tgname = 'projectnil_notify_insert' \
     AND c.relname IN ('q_compilation_jobs', 'q_compilation_results', 'q_execution_jobs')";

#[tokio::test]
async fn migrate_command_creates_the_database_and_is_idempotent() {
    let db = TestDb::not_yet_created();
    assert!(!db.exists().await.unwrap());
    let first = run_cli(&db, &["migrate"]).await.unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(db.exists().await.unwrap());
    let conn = db.connect().await.unwrap();
    let applied = scalar(&conn, "SELECT count(*) FROM seaql_migrations").await;

    let second = run_cli(&db, &["migrate"]).await.unwrap();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(
        scalar(&conn, "SELECT count(*) FROM seaql_migrations").await,
        applied
    );
}

#[tokio::test]
async fn database_enforces_the_invariants() {
    let test_db = TestDb::migrated().await.unwrap();
    let db = test_db.connect().await.unwrap();
    let id = insert_function(&db).await;

    let failed_without_error = exec(
        &db,
        &format!("UPDATE functions SET status = 'FAILED' WHERE id = '{id}'"),
    )
    .await;
    assert!(
        failed_without_error
            .unwrap_err()
            .to_string()
            .contains("functions_failed_has_error")
    );
    // A revision is READY exactly when it has a module, the module is stored
    // under its own digest, and a revision's source never changes.
    let version = |status: &str, digest: &str| {
        format!(
            "INSERT INTO function_versions (function_id, revision, language, source, status, module_digest)
             VALUES ('{id}', 1, 'assemblyscript', 'x', '{status}', {digest})"
        )
    };
    let ready_without_module = exec(&db, &version("READY", "NULL")).await;
    assert!(
        ready_without_module
            .unwrap_err()
            .to_string()
            .contains("function_versions_ready_has_module")
    );
    let wrong_digest = exec(
        &db,
        "INSERT INTO modules (digest, wasm_binary) VALUES ('abc', '\\x00')",
    )
    .await;
    assert!(
        wrong_digest
            .unwrap_err()
            .to_string()
            .contains("modules_digest_is_sha256")
    );
    exec(
        &db,
        "INSERT INTO modules (digest, wasm_binary) VALUES (encode(sha256('\\x00'), 'hex'), '\\x00')",
    )
    .await
    .unwrap();
    exec(&db, &version("READY", "encode(sha256('\\x00'), 'hex')"))
        .await
        .unwrap();
    for change in ["source = 'y'", "status = 'FAILED', compile_error = 'late'"] {
        let rewritten = exec(
            &db,
            &format!("UPDATE function_versions SET {change} WHERE function_id = '{id}'"),
        )
        .await;
        let error = rewritten.unwrap_err().to_string();
        assert!(error.contains("can no longer change"), "{change}: {error}");
    }
    let deployed_unknown = exec(
        &db,
        &format!("UPDATE functions SET deployed_revision = 7 WHERE id = '{id}'"),
    )
    .await;
    assert!(
        deployed_unknown
            .unwrap_err()
            .to_string()
            .contains("functions_deployed_version_fk")
    );
    exec(
        &db,
        &format!("UPDATE functions SET status = 'READY', deployed_revision = 1 WHERE id = '{id}'"),
    )
    .await
    .unwrap();

    let failed_without_message = exec(
        &db,
        &format!(
            "INSERT INTO executions (function_id, revision, status) VALUES ('{id}', 1, 'FAILED')"
        ),
    )
    .await;
    assert!(
        failed_without_message
            .unwrap_err()
            .to_string()
            .contains("executions_failed_has_error")
    );
    let completed_with_error = exec(
        &db,
        &format!("INSERT INTO executions (function_id, revision, status, error_message) VALUES ('{id}', 1, 'COMPLETED', 'boom')"),
    )
    .await;
    assert!(
        completed_with_error
            .unwrap_err()
            .to_string()
            .contains("executions_completed_has_no_error")
    );
    // A finished execution never changes again, whoever writes.
    exec(
        &db,
        &format!("INSERT INTO executions (id, function_id, revision, status, error_message, error_kind) VALUES ('00000000-0000-0000-0000-0000000000f1', '{id}', 1, 'FAILED', 'cancelled', 'CANCELLED')"),
    )
    .await
    .unwrap();
    // A failure always has its kind, and only a failure has one.
    for (status, message, kind) in [("FAILED", "'x'", "NULL"), ("COMPLETED", "NULL", "'TRAP'")] {
        let refused = exec(
            &db,
            &format!("INSERT INTO executions (function_id, revision, status, error_message, error_kind) VALUES ('{id}', 1, '{status}', {message}, {kind})"),
        )
        .await;
        assert!(
            refused
                .unwrap_err()
                .to_string()
                .contains("executions_failed_has_kind"),
            "{status} with kind {kind}"
        );
    }
    for change in [
        "status = 'COMPLETED', error_message = NULL",
        "error_message = 'something else'",
        "attempt = 2",
        "completed_at = now()",
        "revision = 2",
        "error_kind = 'TRAP'",
    ] {
        let rewritten = exec(
            &db,
            &format!(
                "UPDATE executions SET {change} WHERE id = '00000000-0000-0000-0000-0000000000f1'"
            ),
        )
        .await;
        let error = rewritten.unwrap_err().to_string();
        assert!(error.contains("can no longer change"), "{change}: {error}");
    }
    let orphan = exec(
        &db,
        &format!(
            "INSERT INTO executions (function_id, revision) VALUES ('{}', 1)",
            uuid::Uuid::new_v4()
        ),
    )
    .await;
    assert!(orphan.unwrap_err().to_string().contains("foreign key"));
    let unknown_status = exec(
        &db,
        &format!("UPDATE functions SET status = 'DONE' WHERE id = '{id}'"),
    )
    .await;
    assert!(unknown_status.is_err());
    let long_name = exec(
        &db,
        &format!(
            "UPDATE functions SET name = '{}' WHERE id = '{id}'",
            "n".repeat(256)
        ),
    )
    .await;
    assert!(long_name.is_err());
}

#[tokio::test]
async fn deleting_a_function_deletes_its_executions() {
    let test_db = TestDb::migrated().await.unwrap();
    let db = test_db.connect().await.unwrap();
    let id = insert_function(&db).await;
    let other = insert_function(&db).await;
    for function in [&id, &id, &other] {
        exec(
            &db,
            &format!("INSERT INTO executions (function_id, revision) VALUES ('{function}', 1)"),
        )
        .await
        .unwrap();
    }
    exec(&db, &format!("DELETE FROM functions WHERE id = '{id}'"))
        .await
        .unwrap();
    assert_eq!(
        scalar(
            &db,
            &format!("SELECT count(*) FROM executions WHERE function_id = '{id}'")
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            &db,
            &format!("SELECT count(*) FROM executions WHERE function_id = '{other}'")
        )
        .await,
        1
    );
}

#[tokio::test]
async fn pgmq_round_trip_on_both_queues() {
    let test_db = TestDb::migrated().await.unwrap();
    let db = test_db.connect().await.unwrap();
    for queue in [
        server::queue::COMPILATION_JOBS_QUEUE,
        server::queue::COMPILATION_RESULTS_QUEUE,
    ] {
        let body = json!({ "functionId": uuid::Uuid::new_v4(), "queue": queue });
        let msg_id = server::queue::send(&db, queue, &body).await.unwrap();
        let read = server::queue::read(&db, queue, Duration::from_secs(30), 10)
            .await
            .unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].msg_id, msg_id);
        assert_eq!(read[0].read_count, 1);
        assert_eq!(read[0].body, body);
        // Invisible while in flight.
        let again = server::queue::read(&db, queue, Duration::from_secs(30), 10)
            .await
            .unwrap();
        assert!(again.is_empty());
        server::queue::archive(&db, queue, msg_id).await.unwrap();
        let metrics = server::queue::metrics(&db, queue).await.unwrap();
        assert_eq!(metrics.queue_length, 0);
        assert_eq!(metrics.total_messages, 1);
        assert_eq!(
            scalar(&db, &format!("SELECT count(*) FROM pgmq.a_{queue}")).await,
            1
        );
    }
}

#[tokio::test]
async fn a_send_wakes_the_queue_listener_once_it_commits() {
    use sea_orm::TransactionTrait;
    use server::queue::{QueueListener, Wake};

    let test_db = TestDb::migrated().await.unwrap();
    let db = test_db.connect().await.unwrap();
    let pool = db.get_postgres_connection_pool().clone();
    let quiet = Duration::from_millis(300);
    let long = Duration::from_secs(30);
    for queue in [
        server::queue::COMPILATION_JOBS_QUEUE,
        server::queue::COMPILATION_RESULTS_QUEUE,
    ] {
        let mut listener = QueueListener::start(pool.clone(), queue).await;
        assert!(listener.is_connected());
        assert_eq!(listener.wait(quiet).await, Wake::TimedOut);

        server::queue::send(&db, queue, &json!({ "n": 1 }))
            .await
            .unwrap();
        assert_eq!(listener.wait(long).await, Wake::Notified);
        assert_eq!(listener.wait(quiet).await, Wake::TimedOut);

        // Nothing for a send that is rolled back.
        let txn = db.begin().await.unwrap();
        server::queue::send(&txn, queue, &json!({ "n": 2 }))
            .await
            .unwrap();
        txn.rollback().await.unwrap();
        assert_eq!(listener.wait(quiet).await, Wake::TimedOut);

        // A burst committed at once wakes the listener once.
        let burst = db.begin().await.unwrap();
        for n in 0..5 {
            server::queue::send(&burst, queue, &json!({ "n": n }))
                .await
                .unwrap();
        }
        burst.commit().await.unwrap();
        assert_eq!(listener.wait(long).await, Wake::Notified);
        assert_eq!(listener.wait(quiet).await, Wake::TimedOut);
    }
}

#[tokio::test]
async fn a_queue_listener_reconnects_after_losing_its_connection() {
    use server::queue::{QueueListener, Wake};

    let test_db = TestDb::migrated().await.unwrap();
    let db = test_db.connect().await.unwrap();
    let queue = server::queue::COMPILATION_JOBS_QUEUE;
    let mut listener = QueueListener::start(db.get_postgres_connection_pool().clone(), queue).await;
    test_db.terminate_connections().await.unwrap();
    assert_eq!(
        listener.wait(Duration::from_secs(30)).await,
        Wake::Disconnected
    );
    assert!(!listener.is_connected());
    assert_eq!(
        listener.wait(Duration::from_secs(30)).await,
        Wake::Reconnected
    );
    // The pool's connections were cut too: the first use may meet a dead one.
    let mut sent = false;
    for _ in 0..5 {
        if server::queue::send(&db, queue, &json!({})).await.is_ok() {
            sent = true;
            break;
        }
    }
    assert!(sent);
    assert_eq!(listener.wait(Duration::from_secs(30)).await, Wake::Notified);
}

#[tokio::test]
async fn serve_creates_a_missing_database_and_answers_health() {
    let app = TestApp::start().await.unwrap();
    assert!(app.db.exists().await.unwrap());
    let health: serde_json::Value = reqwest::get(format!("{}/health", app.server.base_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({ "status": "UP" }));
    let ready = reqwest::get(format!("{}/ready", app.server.base_url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}
