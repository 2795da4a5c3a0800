//! The API's reads on connections kept between statements
//! (`server::db::KeptConnections`), against a real PostgreSQL: a connection
//! is kept only after a statement that completed, given back when idle or
//! when the pool runs out, and never handed on after a failure or a
//! cancelled request.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use server::config::DatabaseSettings;
use server::db::KeptConnections;
use tests::{TestDb, eventually};

async fn connect(db: &TestDb, pool_size: u32) -> DatabaseConnection {
    server::db::connect(&DatabaseSettings {
        database_url: db.url.clone(),
        db_pool_size: pool_size,
    })
    .await
    .unwrap()
}

async fn scalar(db: &impl ConnectionTrait, sql: &str) -> Result<i64, sea_orm::DbErr> {
    let row = db
        .query_one(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .expect("one row");
    Ok(row.try_get_by_index::<i64>(0).unwrap())
}

const BACKEND: &str = "SELECT pg_backend_pid()::bigint";

#[tokio::test]
async fn a_completed_read_keeps_its_connection_until_it_idles() {
    let test_db = TestDb::empty().await.unwrap();
    let db = connect(&test_db, 4).await;
    let reads = KeptConnections::new(db.clone());
    let pool = db.get_postgres_connection_pool();

    let first = scalar(&reads, BACKEND).await.unwrap();
    assert_eq!(reads.kept(), 1);
    let second = scalar(&reads, BACKEND).await.unwrap();
    assert_eq!(first, second, "the next read runs on the kept connection");
    let rows = reads
        .query_all(Statement::from_string(
            reads.get_database_backend(),
            "SELECT g::bigint FROM generate_series(1, 3) g",
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(reads.kept(), 1);

    eventually!("the idle connection to go back to the pool", async {
        (reads.kept() == 0 && pool.num_idle() == pool.size() as usize).then_some(())
    });
}

#[tokio::test]
async fn a_failed_read_gives_its_connection_back_to_the_pool() {
    let test_db = TestDb::empty().await.unwrap();
    let db = connect(&test_db, 4).await;
    let reads = KeptConnections::new(db);

    scalar(&reads, "SELECT 1::bigint").await.unwrap();
    assert_eq!(reads.kept(), 1);
    let error = scalar(&reads, "SELECT (1 / 0)::bigint").await.unwrap_err();
    let (code, _) = server::db::refusal(&error).expect("the database's refusal");
    assert_eq!(code, "22012", "division_by_zero: {error}");
    assert_eq!(reads.kept(), 0, "a connection is not kept after a failure");
    assert_eq!(scalar(&reads, "SELECT 7::bigint").await.unwrap(), 7);
}

#[tokio::test]
async fn a_read_dropped_mid_statement_is_not_handed_on() {
    let test_db = TestDb::empty().await.unwrap();
    let db = connect(&test_db, 4).await;
    let reads = KeptConnections::new(db.clone());
    let sleeper = scalar(&reads, BACKEND).await.unwrap();
    assert_eq!(reads.kept(), 1);

    // The request goes away while its statement runs on the kept connection.
    let running = tokio::spawn({
        let reads = reads.clone();
        async move { scalar(&reads, "SELECT 1::bigint FROM pg_sleep(5)").await }
    });
    eventually!("the statement to be running", async {
        let active = scalar(
            &db,
            &format!(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE pid = {sleeper} AND state = 'active' AND query LIKE '%pg_sleep%'"
            ),
        )
        .await
        .unwrap();
        (active == 1).then_some(())
    });
    running.abort();
    assert!(running.await.unwrap_err().is_cancelled());

    assert_eq!(reads.kept(), 0, "the interrupted connection is not kept");
    // The next read gets a connection that answers its own statement, not
    // the rest of the interrupted one.
    assert_eq!(scalar(&reads, "SELECT 7::bigint").await.unwrap(), 7);
    assert_ne!(scalar(&reads, BACKEND).await.unwrap(), sleeper);
}

#[tokio::test]
async fn connections_are_not_kept_while_the_pool_has_none_to_spare() {
    let test_db = TestDb::empty().await.unwrap();
    let db = connect(&test_db, 2).await;
    let reads = KeptConnections::new(db.clone());
    let pool = db.get_postgres_connection_pool();

    let held = pool.acquire().await.unwrap();
    scalar(&reads, "SELECT 1::bigint").await.unwrap();
    assert_eq!(
        reads.kept(),
        0,
        "with both connections out, the read's goes back to the pool"
    );
    drop(held);
    eventually!("the held connection to be back", async {
        (pool.num_idle() == 2).then_some(())
    });
    scalar(&reads, "SELECT 1::bigint").await.unwrap();
    assert_eq!(reads.kept(), 1);
}

#[tokio::test]
async fn at_most_half_the_pool_is_kept() {
    let test_db = TestDb::empty().await.unwrap();
    let db = connect(&test_db, 8).await;
    let reads = KeptConnections::new(db);

    let concurrent = (0..6).map(|_| scalar(&reads, "SELECT 1::bigint FROM pg_sleep(0.2)"));
    for result in futures::future::join_all(concurrent).await {
        assert_eq!(result.unwrap(), 1);
    }
    assert_eq!(reads.kept(), 4);
}

#[tokio::test]
async fn writes_go_through_the_pool() {
    let test_db = TestDb::empty().await.unwrap();
    let db = connect(&test_db, 4).await;
    let reads = KeptConnections::new(db);
    reads
        .execute_unprepared("CREATE TABLE t (n bigint)")
        .await
        .unwrap();
    let inserted = reads
        .execute(Statement::from_string(
            reads.get_database_backend(),
            "INSERT INTO t VALUES (1), (2)",
        ))
        .await
        .unwrap();
    assert_eq!(inserted.rows_affected(), 2);
    assert_eq!(reads.kept(), 0);
    assert_eq!(
        scalar(&reads, "SELECT sum(n)::bigint FROM t")
            .await
            .unwrap(),
        3
    );
}

#[tokio::test]
async fn dropping_the_last_handle_releases_what_it_kept() {
    let test_db = TestDb::empty().await.unwrap();
    let db = connect(&test_db, 4).await;
    let pool = db.get_postgres_connection_pool().clone();
    let reads = KeptConnections::new(db);
    scalar(&reads, "SELECT 1::bigint").await.unwrap();
    assert_eq!(reads.kept(), 1);
    drop(reads);
    eventually!(
        "the kept connection to be back in the pool",
        Duration::from_secs(10),
        async { (pool.num_idle() == pool.size() as usize).then_some(()) }
    );
}
