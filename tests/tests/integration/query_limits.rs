//! The query side's safety: read-only, nothing outside the lake, per-query limits on time,
//! bytes scanned and memory (each cancels the query with an error naming the limit), and
//! the catalog statements.

use std::time::Duration;

use tributary::query::{QueryEngine, QueryLimits};
use tributary_tests::TempProject;

async fn lake_with_events() -> TempProject {
    let p = TempProject::events("");
    p.gen_events(3000, 1, 0.0, 51);
    p.run().await;
    p
}

async fn err(engine: &QueryEngine, sql: &str) -> String {
    match engine.sql(sql).await {
        Ok(_) => panic!("`{sql}` should have been refused"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_and_nothing_outside_the_lake() {
    let p = lake_with_events().await;
    let engine = QueryEngine::open(&p.lake().await).await.unwrap();
    for sql in [
        "INSERT INTO events SELECT * FROM events",
        "DELETE FROM events",
        "CREATE TABLE x AS SELECT 1",
        "DROP TABLE events",
        "CREATE EXTERNAL TABLE etc STORED AS CSV LOCATION '/etc/passwd'",
        "COPY events TO '/tmp/out.parquet'",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let e = err(&engine, sql).await;
        assert!(
            e.contains("read-only") || e.contains("not supported") || e.contains("not allowed"),
            "{sql}: {e}"
        );
    }
    // Files and URLs are not tables.
    let e = err(&engine, "SELECT * FROM '/etc/passwd'").await;
    assert!(e.contains("not found"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_cancel_runaway_queries() {
    let p = lake_with_events().await;
    let lake = p.lake().await;
    // Time: a triple self-join of 3,000 rows would run for hours.
    let engine = QueryEngine::open_with(
        &lake,
        &QueryLimits {
            timeout: Some(Duration::from_millis(1500)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let e = err(
        &engine,
        "SELECT count(*) FROM events a, events b, events c WHERE a.total_amount + b.total_amount > c.total_amount",
    )
    .await;
    assert!(e.contains("query.timeout_secs"), "{e}");
    // Cancelled, not finished (it would take hours); the bound is loose, for busy machines.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );

    // Bytes scanned: counted for every query, and capped.
    let open = QueryEngine::open(&lake).await.unwrap();
    let r = open
        .sql("SELECT sum(total_amount) FROM events")
        .await
        .unwrap();
    assert!(r.bytes_scanned > 0);
    let capped = QueryEngine::open_with(
        &lake,
        &QueryLimits {
            max_bytes_scanned: Some(1024),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let e = err(&capped, "SELECT * FROM events").await;
    assert!(e.contains("query.max_bytes_scanned"), "{e}");
    assert!(e.contains("1024 bytes"), "{e}");

    // Memory: an aggregate that cannot spill (about 900k strings), in 256 KiB.
    let small = QueryEngine::open_with(
        &lake,
        &QueryLimits {
            memory_bytes: Some(256 << 10),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let e = err(
        &small,
        "SELECT array_agg(a.event_id) FROM events a, events b WHERE b.customer_id % 10 = 0",
    )
    .await;
    assert!(e.contains("query.memory_mb"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_statements() {
    let p = lake_with_events().await;
    let tables = p.query_csv("SHOW TABLES").await;
    assert!(tables.iter().any(|l| l.contains(",events,")), "{tables:?}");
    let cols = p.query_csv("DESCRIBE events").await;
    assert!(cols.iter().any(|l| l.starts_with("event_id,")), "{cols:?}");
    let parts = p.query_csv("SHOW PARTITIONS events").await;
    let days = p
        .query_csv("SELECT DISTINCT dt FROM events ORDER BY dt")
        .await;
    assert_eq!(parts, days);
    assert!(parts.len() > 2);
    let engine = QueryEngine::open(&p.lake().await).await.unwrap();
    assert!(
        err(&engine, "SHOW PARTITIONS evnts")
            .await
            .contains("did you mean")
    );
}

/// Time travel: a table at an earlier Delta version or point in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_travel_by_version_and_time() {
    let p = lake_with_events().await;
    let v1 = p
        .lake()
        .await
        .load("events")
        .await
        .unwrap()
        .unwrap()
        .version()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let between = chrono::Utc::now().to_rfc3339();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // More data arrives: a second file, a new commit.
    let more = TempProject::events("");
    more.gen_events(500, 1, 0.0, 52);
    let src = tributary_tests::ndjson_files(&more.data_dir()).remove(0);
    std::fs::copy(&src, p.data_dir().join("more.ndjson")).unwrap();
    p.run().await;
    assert_eq!(p.count("SELECT count(*) FROM events").await, 3500);
    assert_eq!(
        p.count(&format!(
            "SELECT count(*) FROM table_version('events', {v1})"
        ))
        .await,
        3000
    );
    assert_eq!(
        p.count(&format!(
            "SELECT count(*) FROM table_at('events', '{between}')"
        ))
        .await,
        3000
    );
    let engine = QueryEngine::open(&p.lake().await).await.unwrap();
    let e = err(&engine, "SELECT * FROM table_version('events', 999)").await;
    assert!(e.contains("has no version 999"), "{e}");
}
