//! Analytics against the real binary: statistics of a known set of executions
//! (counts, rates, percentiles within the stated error, windows, buckets,
//! empty windows, bad arguments) before and after they are rolled up, error
//! kinds recorded where a failure happens, rollups whose objects hold more
//! than counts, and retention that removes exactly what is old, once, with
//! two replicas, while the statistics stay.

use chrono::{DateTime, DurationRound as _, TimeDelta, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};
use tests::fixtures::ADD;
use tests::{Client, ServerOptions, TestApp, TestDb, TestServer, eventually, exec, scalar};

const STATS: &str = "query($f: UUID, $since: DateTime, $until: DateTime, $bucket: Int!) {
  executionStats(functionId: $f, since: $since, until: $until) {
    total completed failed successRate
    durationMs { p50 p95 p99 mean max }
    errorsByKind { kind count }
    series(bucketSeconds: $bucket) { at total completed failed p95Ms }
  }
}";

/// The relative error the README states for percentiles.
const PERCENTILE_ERROR: f64 = 0.02;

/// One seeded execution.
#[derive(Debug, Clone)]
struct Seeded {
    completed_at: DateTime<Utc>,
    duration_us: i64,
    kind: Option<&'static str>,
}

impl Seeded {
    fn ms(&self) -> f64 {
        self.duration_us as f64 / 1000.0
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Inserts finished executions of `function` as SQL would from any writer.
async fn seed(db: &DatabaseConnection, function: &str, rows: &[Seeded]) {
    let values: Vec<String> = rows
        .iter()
        .map(|row| {
            let started = row.completed_at - TimeDelta::microseconds(row.duration_us);
            let (status, message, kind) = match row.kind {
                None => ("COMPLETED", "NULL".to_string(), "NULL".to_string()),
                Some(kind) => ("FAILED", "'seeded failure'".into(), format!("'{kind}'")),
            };
            format!(
                "('{function}', 1, '{status}', {message}, {kind}, '{}', '{}', '{}')",
                rfc3339(started),
                rfc3339(row.completed_at),
                rfc3339(started)
            )
        })
        .collect();
    exec(
        db,
        &format!(
            "INSERT INTO executions (function_id, revision, status, error_message, error_kind, started_at, completed_at, created_at) VALUES {}",
            values.join(", ")
        ),
    )
    .await;
}

/// Nearest-rank quantile of `ms`.
fn exact_quantile(ms: &[f64], q: f64) -> f64 {
    let mut sorted = ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn assert_close(what: &str, reported: &Value, exact: f64, relative: f64) {
    let reported = reported
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {reported}"));
    assert!(
        (reported - exact).abs() <= relative * exact + 1e-9,
        "{what}: reported {reported}, exact {exact}"
    );
}

/// Checks `stats` against the seeded rows that finished in `[since, until)`.
fn assert_matches(stats: &Value, rows: &[&Seeded]) {
    let failed: Vec<_> = rows.iter().filter(|r| r.kind.is_some()).collect();
    assert_eq!(stats["total"], rows.len(), "{stats}");
    assert_eq!(stats["failed"], failed.len());
    assert_eq!(stats["completed"], rows.len() - failed.len());
    let rate = (rows.len() - failed.len()) as f64 / rows.len() as f64;
    assert_close("successRate", &stats["successRate"], rate, 1e-12);
    let ms: Vec<f64> = rows.iter().map(|r| r.ms()).collect();
    let durations = &stats["durationMs"];
    for (field, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
        assert_close(
            field,
            &durations[field],
            exact_quantile(&ms, q),
            PERCENTILE_ERROR,
        );
    }
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    assert_close("mean", &durations["mean"], mean, 1e-9);
    let max = ms.iter().copied().fold(0.0, f64::max);
    assert_close("max", &durations["max"], max, 1e-12);
    let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
    for row in &failed {
        *kinds.entry(row.kind.unwrap()).or_default() += 1;
    }
    let reported: std::collections::BTreeMap<&str, usize> = stats["errorsByKind"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kind"].as_str().unwrap(),
                k["count"].as_u64().unwrap() as usize,
            )
        })
        .collect();
    assert_eq!(reported, kinds);
}

async fn stats(
    client: &Client,
    function: Option<&str>,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    bucket: i32,
) -> Value {
    client
        .data(
            STATS,
            json!({ "f": function, "since": rfc3339(since), "until": rfc3339(until), "bucket": bucket }),
        )
        .await
        .unwrap()["executionStats"]
        .clone()
}

#[tokio::test]
async fn statistics_of_a_known_set_of_executions() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let function = client.ready_function("stats", ADD).await.unwrap();
    let other = client.ready_function("other", ADD).await.unwrap();
    let db = app.db.connect().await.unwrap();

    // 300 executions over almost three hours, from a window start that is
    // not on the hour (so hour rollups and minute rollups both take part),
    // durations from 0.5 ms to 1.7 s, every seventh one failing.
    let now = Utc::now();
    let base = (now - TimeDelta::hours(5))
        .duration_trunc(TimeDelta::hours(1))
        .unwrap()
        + TimeDelta::minutes(7);
    let kinds = ["TIMEOUT", "TRAP", "ABORT"];
    let rows: Vec<Seeded> = (0..300)
        .map(|i: i64| Seeded {
            completed_at: base + TimeDelta::seconds(35 * i) + TimeDelta::microseconds(i),
            duration_us: ((i * 37) % 1000) * 1700 + 500,
            kind: (i % 7 == 3).then(|| kinds[(i as usize / 7) % 3]),
        })
        .collect();
    seed(&db, &function, &rows).await;
    let elsewhere: Vec<Seeded> = (0..5)
        .map(|i| Seeded {
            completed_at: base + TimeDelta::minutes(10 * i),
            duration_us: 2_000,
            kind: None,
        })
        .collect();
    seed(&db, &other, &elsewhere).await;

    let until = base + TimeDelta::hours(3);
    let all: Vec<&Seeded> = rows.iter().collect();
    let staged_view = stats(&client, Some(&function), base, until, 3600).await;
    assert_matches(&staged_view, &all);

    // The same answers once every finish is rolled up.
    eventually!("the staged finishes to be rolled up", async {
        (scalar(&db, "SELECT count(*) FROM execution_finishes").await == 0).then_some(())
    });
    let rolled_up = stats(&client, Some(&function), base, until, 3600).await;
    // The mean is a float sum, added in another order once rolled up.
    let mean = |stats: &Value| stats["durationMs"]["mean"].as_f64().unwrap();
    assert_close(
        "mean",
        &rolled_up["durationMs"]["mean"],
        mean(&staged_view),
        1e-12,
    );
    let without_mean = |mut stats: Value| {
        stats["durationMs"]["mean"] = Value::Null;
        stats
    };
    assert_eq!(
        without_mean(rolled_up.clone()),
        without_mean(staged_view.clone())
    );
    assert!(
        scalar(
            &db,
            "SELECT count(*) FROM execution_rollups WHERE width = 3600"
        )
        .await
            > 0
            && scalar(
                &db,
                "SELECT count(*) FROM execution_rollups WHERE width = 60"
            )
            .await
                > 0
    );

    // Hourly points, aligned to the hour: each holds what finished in it.
    let series = rolled_up["series"].as_array().unwrap();
    let origin = base.duration_trunc(TimeDelta::hours(1)).unwrap();
    assert_eq!(series.len(), 4);
    for (k, point) in series.iter().enumerate() {
        let start = origin + TimeDelta::hours(k as i64);
        assert_eq!(
            point["at"]
                .as_str()
                .unwrap()
                .parse::<DateTime<Utc>>()
                .unwrap(),
            start
        );
        let inside: Vec<&Seeded> = rows
            .iter()
            .filter(|r| r.completed_at >= start && r.completed_at < start + TimeDelta::hours(1))
            .collect();
        assert_eq!(point["total"], inside.len(), "{point}");
        let failed = inside.iter().filter(|r| r.kind.is_some()).count();
        assert_eq!(point["failed"], failed);
        assert_eq!(point["completed"], inside.len() - failed);
        if inside.is_empty() {
            assert_eq!(point["p95Ms"], Value::Null);
        } else {
            let ms: Vec<f64> = inside.iter().map(|r| r.ms()).collect();
            assert_close(
                "p95Ms",
                &point["p95Ms"],
                exact_quantile(&ms, 0.95),
                PERCENTILE_ERROR,
            );
        }
    }
    // Ten-minute points from minute rollups add up to the same total.
    let fine = stats(&client, Some(&function), base, until, 600).await;
    let fine_series = fine["series"].as_array().unwrap();
    assert_eq!(fine_series.len(), 19);
    let summed: u64 = fine_series
        .iter()
        .map(|p| p["total"].as_u64().unwrap())
        .sum();
    assert_eq!(summed, 300);

    // One request with series at both resolutions (the summary and the
    // whole-hour series share one read, the ten-minute one reads its own):
    // each adds up to the summary's total.
    let combined = client
        .data(
            "query($f: UUID, $since: DateTime, $until: DateTime) { executionStats(functionId: $f, since: $since, until: $until) {
                total failed
                hours: series(bucketSeconds: 3600) { total failed }
                twoHours: series(bucketSeconds: 7200) { total failed }
                tenMinutes: series(bucketSeconds: 600) { total failed } } }",
            json!({ "f": function, "since": rfc3339(base), "until": rfc3339(until) }),
        )
        .await
        .unwrap();
    let combined = &combined["executionStats"];
    assert_eq!(combined["total"], 300);
    assert_eq!(combined["failed"], rolled_up["failed"]);
    let hourly: Vec<Value> = series
        .iter()
        .map(|p| json!({ "total": p["total"], "failed": p["failed"] }))
        .collect();
    assert_eq!(combined["hours"], json!(hourly));
    assert_eq!(combined["tenMinutes"].as_array().unwrap().len(), 19);
    for name in ["hours", "twoHours", "tenMinutes"] {
        let points_of = combined[name].as_array().unwrap();
        for field in ["total", "failed"] {
            let summed: u64 = points_of.iter().map(|p| p[field].as_u64().unwrap()).sum();
            assert_eq!(combined[field], summed, "{name}.{field}");
        }
    }

    // A window inside: exactly what finished in it.
    let (since, until_inner) = (
        base + TimeDelta::minutes(30),
        base + TimeDelta::minutes(100),
    );
    let inner: Vec<&Seeded> = rows
        .iter()
        .filter(|r| r.completed_at >= since && r.completed_at < until_inner)
        .collect();
    assert_matches(
        &stats(&client, Some(&function), since, until_inner, 3600).await,
        &inner,
    );
    // Function.stats is the same view.
    let via_function = client
        .data(
            "query($id: UUID!, $since: DateTime, $until: DateTime) { function(id: $id) { stats(since: $since, until: $until) { total failed } } }",
            json!({ "id": function, "since": rfc3339(since), "until": rfc3339(until_inner) }),
        )
        .await
        .unwrap();
    assert_eq!(via_function["function"]["stats"]["total"], inner.len());

    // The platform counts every function.
    let platform = stats(&client, None, base, until, 3600).await;
    assert_eq!(platform["total"], 305);

    // An empty window.
    let empty = stats(
        &client,
        Some(&function),
        now - TimeDelta::days(30),
        now - TimeDelta::days(29),
        86_400,
    )
    .await;
    assert_eq!(empty["total"], 0);
    assert_eq!(empty["successRate"], Value::Null);
    assert_eq!(empty["durationMs"], Value::Null);
    assert_eq!(empty["errorsByKind"], json!([]));
    let points = empty["series"].as_array().unwrap();
    assert!(
        !points.is_empty()
            && points
                .iter()
                .all(|p| p["total"] == 0 && p["p95Ms"].is_null())
    );

    // A real execution counts the moment it finishes (default window: 24 h).
    let live = "query($f: UUID) { executionStats(functionId: $f) { total completed } }";
    let before = client.data(live, json!({ "f": function })).await.unwrap();
    assert_eq!(before["executionStats"]["total"], 300);
    client
        .execute(&function, json!({ "a": 1, "b": 2 }))
        .await
        .unwrap();
    let after = client.data(live, json!({ "f": function })).await.unwrap();
    assert_eq!(after["executionStats"]["total"], 301);
    assert_eq!(
        after["executionStats"]["completed"],
        before["executionStats"]["completed"].as_i64().unwrap() + 1
    );

    // A deleted function's executions still count for the platform.
    client
        .data(
            "mutation($id: UUID!) { deleteFunction(id: $id) }",
            json!({ "id": other }),
        )
        .await
        .unwrap();
    assert_eq!(stats(&client, None, base, until, 3600).await["total"], 305);
}

#[tokio::test]
async fn statistics_arguments_are_validated() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let now = Utc::now();
    let cases = [
        (json!({ "bucket": 90 }), "multiple of 60"),
        (json!({ "bucket": 30 }), "multiple of 60"),
        (json!({ "bucket": 172_800 }), "multiple of 60"),
        // 1440 one-minute points in the default day.
        (json!({ "bucket": 60 }), "the limit is 1000"),
        (
            json!({ "bucket": 3600, "since": rfc3339(now), "until": rfc3339(now - TimeDelta::hours(1)) }),
            "must be later than",
        ),
        (
            json!({ "bucket": 3600, "since": rfc3339(now), "until": rfc3339(now) }),
            "must be later than",
        ),
    ];
    for (variables, wanted) in cases {
        let error = client.error(STATS, variables.clone()).await.unwrap();
        assert_eq!(error.code, "BAD_USER_INPUT", "{variables}: {error:?}");
        assert!(
            error.message.contains(wanted),
            "{variables}: {}",
            error.message
        );
    }
    let unknown = client
        .error(STATS, json!({ "bucket": 3600, "f": uuid::Uuid::new_v4() }))
        .await
        .unwrap();
    assert_eq!(unknown.code, "NOT_FOUND");
}

#[tokio::test]
async fn a_module_the_platform_cannot_run_is_a_platform_failure() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let function = client.ready_function("broken", ADD).await.unwrap();
    let db = app.db.connect().await.unwrap();
    // Revision 2's module is not WebAssembly: the runtime cannot compile it.
    exec(
        &db,
        &format!(
            "INSERT INTO modules (digest, wasm_binary)
                 SELECT encode(sha256(b), 'hex'), b FROM (SELECT '\\x0061736d01000000ffff'::bytea AS b) m;
             INSERT INTO function_versions (function_id, revision, language, source, status, module_digest, wasm_size, compiled_at)
                 SELECT id, 2, language, source, 'READY', encode(sha256('\\x0061736d01000000ffff'::bytea), 'hex'), 10, now()
                   FROM functions WHERE id = '{function}';
             UPDATE functions SET revision = 2, deployed_revision = 2 WHERE id = '{function}';"
        ),
    )
    .await;
    let execution = client
        .execute(&function, json!({ "a": 1, "b": 2 }))
        .await
        .unwrap();
    assert_eq!(execution["status"], "FAILED", "{execution}");
    assert_eq!(execution["errorKind"], "PLATFORM");
    assert_eq!(
        execution["errorMessage"],
        "internal error: the platform could not run this function; try again"
    );
    // The list filters by kind, on both faces of the list.
    let filtered = client
        .data(
            "query($f: UUID!) {
               platform: executions(functionId: $f, errorKind: PLATFORM) { totalCount nodes { id errorKind } }
               none: executions(functionId: $f, errorKind: TIMEOUT) { totalCount nodes { id } }
               function(id: $f) { executions(errorKind: PLATFORM) { totalCount nodes { id } } }
             }",
            json!({ "f": function }),
        )
        .await
        .unwrap();
    assert_eq!(filtered["platform"]["totalCount"], 1);
    assert_eq!(filtered["platform"]["nodes"][0]["id"], execution["id"]);
    assert_eq!(filtered["none"]["totalCount"], 0);
    assert_eq!(
        filtered["function"]["executions"]["nodes"][0]["id"],
        execution["id"]
    );
    let stats = client
        .data(
            "query($f: UUID) { executionStats(functionId: $f) { failed errorsByKind { kind count } } }",
            json!({ "f": function }),
        )
        .await
        .unwrap();
    assert_eq!(
        stats["executionStats"]["errorsByKind"],
        json!([{ "kind": "PLATFORM", "count": 1 }])
    );
}

#[tokio::test]
async fn retention_removes_exactly_what_is_old_once_with_two_replicas() {
    let test_db = TestDb::migrated().await.unwrap();
    let db = test_db.connect().await.unwrap();
    exec(
        &db,
        "INSERT INTO functions (id, name, language, source)
         VALUES ('00000000-0000-0000-0000-00000000aaaa', 'old', 'assemblyscript', 'x')",
    )
    .await;
    // Partitions for the last week, as if the platform had run all along.
    exec(
        &db,
        "SELECT projectnil_ensure_execution_partitions((now() AT TIME ZONE 'UTC')::date - 7, (now() AT TIME ZONE 'UTC')::date)",
    )
    .await;
    let now = Utc::now();
    let retention = TimeDelta::days(2);
    let ages = [
        TimeDelta::days(6),
        TimeDelta::days(5),
        TimeDelta::days(3) + TimeDelta::hours(2),
        TimeDelta::days(2) + TimeDelta::hours(1),
        TimeDelta::days(2) - TimeDelta::hours(1),
        TimeDelta::hours(20),
        TimeDelta::minutes(5),
    ];
    let rows: Vec<Seeded> = ages
        .iter()
        .map(|age| Seeded {
            completed_at: now - *age,
            duration_us: 1_000,
            kind: None,
        })
        .collect();
    seed(&db, "00000000-0000-0000-0000-00000000aaaa", &rows).await;
    // Two background runs still waiting in the queue, accepted before the
    // cutoff: one in a partition that would be dropped whole, one in the
    // partition that straddles the cutoff. Neither is removed.
    // The start of their day (UTC, as the partitions), so each lands in the
    // partition named whatever the time of the test.
    for days in [6, 2] {
        exec(
            &db,
            &format!(
                "INSERT INTO executions (function_id, revision, status, background, created_at)
                 VALUES ('00000000-0000-0000-0000-00000000aaaa', 1, 'PENDING', true,
                         date_trunc('day', now() - interval '{days} days', 'UTC'))"
            ),
        )
        .await;
    }
    let unfinished = 2;
    let kept_before: i64 = ages.iter().filter(|age| **age < retention).count() as i64 + unfinished;

    let options = ServerOptions::default()
        .env("PROJECTNIL_EXECUTION_RETENTION", "2d")
        .env("PROJECTNIL_MAINTENANCE_INTERVAL_MS", 200)
        .arg("--no-worker");
    let (a, b) = tokio::join!(
        TestServer::start(&test_db.url, options.clone()),
        TestServer::start(&test_db.url, options)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    eventually!("executions past retention to be removed", async {
        (scalar(&db, "SELECT count(*) FROM executions").await == kept_before).then_some(())
    });
    let oldest_kept: DateTime<Utc> = {
        let row = db
            .query_one(Statement::from_string(
                db.get_database_backend(),
                "SELECT min(created_at) AS oldest FROM executions WHERE status IN ('COMPLETED', 'FAILED')",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get("", "oldest").unwrap()
    };
    assert!(oldest_kept > now - retention, "{oldest_kept}");
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM executions WHERE status = 'PENDING' AND created_at < now() - interval '2 days'"
        )
        .await,
        unfinished,
        "runs accepted before the cutoff and not yet finished are kept"
    );
    // Whole days past retention went as partitions, each dropped by one
    // replica only, but for the one still holding an unfinished run;
    // today's and later partitions are there.
    let day_of = |age: i64| {
        (now - TimeDelta::days(age))
            .format("executions_p%Y%m%d")
            .to_string()
    };
    // The rows are gone once the drop commits; its log line may come a
    // moment later.
    let dropped: Vec<String> = eventually!("each dropped partition to be logged", async {
        let lines: Vec<String> = [&a, &b]
            .iter()
            .flat_map(|server| server.logs.lines_with("maintenance.done"))
            .collect();
        [5, 4, 3]
            .iter()
            .all(|age| lines.iter().any(|line| line.contains(&day_of(*age))))
            .then_some(lines)
    });
    for age in [5, 4, 3] {
        let day = day_of(age);
        let mentions = dropped.iter().filter(|line| line.contains(&day)).count();
        assert_eq!(mentions, 1, "{day} in {dropped:#?}");
        assert_eq!(
            scalar(
                &db,
                &format!("SELECT count(*) FROM pg_class WHERE relname = '{day}'")
            )
            .await,
            0
        );
    }
    let held = day_of(6);
    assert!(
        !dropped.iter().any(|line| line.contains(&held)),
        "{held} still holds an unfinished run: {dropped:#?}"
    );
    assert_eq!(
        scalar(&db, &format!("SELECT count(*) FROM {held}")).await,
        1,
        "only the unfinished run is left in {held}"
    );
    eventually!(format!("keeping {held} to be logged"), async {
        [&a, &b]
            .iter()
            .any(|server| {
                server
                    .logs
                    .lines_with("maintenance.partition_kept")
                    .iter()
                    .any(|line| line.contains(&held))
            })
            .then_some(())
    });
    let today = now.format("executions_p%Y%m%d").to_string();
    assert_eq!(
        scalar(
            &db,
            &format!("SELECT count(*) FROM pg_class WHERE relname = '{today}'")
        )
        .await,
        1
    );
    // The statistics keep every execution, removed or not.
    let client = a.client();
    let all = stats(
        &client,
        None,
        now - TimeDelta::days(7),
        now + TimeDelta::minutes(1),
        86_400,
    )
    .await;
    assert_eq!(all["total"], ages.len());
}

#[tokio::test]
async fn rollup_entries_that_are_not_counts_are_skipped_not_fatal() {
    let app = TestApp::start().await.unwrap();
    let client = app.client();
    let function = client.ready_function("odd-rollups", ADD).await.unwrap();
    let db = app.db.connect().await.unwrap();
    // A minute row written by hand, its objects holding more than counts:
    // the counts are read, the rest is skipped, the query still answers.
    let bucket = (Utc::now() - TimeDelta::hours(2))
        .duration_trunc(TimeDelta::minutes(1))
        .unwrap();
    exec(
        &db,
        &format!(
            r#"INSERT INTO execution_rollups (function_id, width, bucket, completed, failed, failed_by_kind,
                                             timed, duration_sum_ms, duration_min_ms, duration_max_ms, duration_histogram)
               VALUES ('{function}', 60, '{}', 3, 2, '{{"TRAP": 2, "note": "by hand"}}',
                       5, 10, 1, 4, '{{"195": 5, "x": 1, "196": -1}}')"#,
            rfc3339(bucket)
        ),
    )
    .await;
    let (since, until) = (
        bucket - TimeDelta::minutes(5),
        bucket + TimeDelta::minutes(5),
    );
    let stats = stats(&client, Some(&function), since, until, 600).await;
    assert_eq!(stats["total"], 5, "{stats}");
    assert_eq!(stats["failed"], 2);
    assert_eq!(
        stats["errorsByKind"],
        json!([{ "kind": "TRAP", "count": 2 }])
    );
    assert!(stats["durationMs"]["p50"].is_number(), "{stats}");
    let points = stats["series"].as_array().unwrap();
    let summed: u64 = points.iter().map(|p| p["total"].as_u64().unwrap()).sum();
    assert_eq!(summed, 5);
}
