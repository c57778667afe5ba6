//! The query side's own plan pieces, checked against DataFusion's plain plans on the same
//! lake: the lake table scan (a Delta snapshot read as plain Parquet, partition filters
//! exact) and the adaptive per-partition top-K for `ROW_NUMBER()/RANK() … WHERE rn <= K`.

use tributary::query::{OutputFormat, QueryEngine, QueryLimits, write_result};
use tributary_tests::TempProject;

async fn csv(engine: &QueryEngine, sql: &str) -> Vec<String> {
    let result = engine
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut buf = Vec::new();
    write_result(&result, OutputFormat::Csv, &mut buf).unwrap();
    String::from_utf8(buf)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

async fn plan(engine: &QueryEngine, sql: &str) -> String {
    csv(engine, &format!("EXPLAIN ANALYZE {sql}"))
        .await
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lake_scan_prunes_partitions_exactly() {
    let p = TempProject::events("");
    p.gen_events(6000, 2, 0.0, 61);
    p.run().await;
    let engine = QueryEngine::open(&p.lake().await).await.unwrap();
    let days = csv(&engine, "SELECT DISTINCT dt FROM events ORDER BY dt").await;
    assert!(days.len() > 3, "{days:?}");
    let day = &days[2];

    // A filter on the partition column alone is answered by choosing files: no filter is
    // left in the plan, and only that day's files are read.
    let sql = format!("SELECT count(*) FROM events WHERE dt = '{day}'");
    let explained = plan(&engine, &sql).await;
    assert!(!explained.contains("FilterExec"), "{explained}");
    assert!(!explained.contains("DeltaScan"), "{explained}");
    let r = engine.sql(&sql).await.unwrap();
    assert!(r.files_pruned > 0, "{}", r.files_pruned);
    let count: i64 = csv(&engine, &sql).await[1].parse().unwrap();
    let by_scan: i64 = csv(
        &engine,
        &format!("SELECT count(*) FROM events WHERE CAST(dt AS VARCHAR) || '' = '{day}'"),
    )
    .await[1]
        .parse()
        .unwrap();
    assert_eq!(count, by_scan);
    assert!(count > 0);

    // Every column reads back, partition column included, in the table's column order.
    let all = engine
        .sql("SELECT * FROM events ORDER BY event_id LIMIT 3")
        .await
        .unwrap();
    let names: Vec<_> = all
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names.first().map(String::as_str),
        Some("event_id"),
        "{names:?}"
    );
    assert_eq!(names.last().map(String::as_str), Some("dt"), "{names:?}");
    assert_eq!(all.num_rows(), 3);
    assert_eq!(all.batches[0].column(names.len() - 1).null_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_top_k_answers_as_the_sort_plan() {
    let p = TempProject::events("");
    // Enough rows per operator for the top-K to judge its yield: two partitions, whatever
    // the machine's cores (the default is two per core).
    p.gen_events(140_000, 2, 0.0, 62);
    p.run().await;
    let lake = p.lake().await;
    let engine = QueryEngine::open_with(
        &lake,
        &QueryLimits {
            partitions: Some(2),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // A small memory budget (the sorts spill): the same answers.
    let tight = QueryEngine::open_with(
        &lake,
        &QueryLimits {
            memory_bytes: Some(64 << 20),
            partitions: Some(2),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Few partitions (country), many (customer_id), one row each (event_id); ROW_NUMBER and
    // RANK (ties kept: status has five values). The inner SELECT names only the columns the
    // window uses, the shape DataFusion's rewrite recognises.
    for (f, key, cols, order, k) in [
        (
            "ROW_NUMBER",
            "country",
            "total_amount",
            "total_amount DESC, event_id",
            3,
        ),
        (
            "ROW_NUMBER",
            "customer_id",
            "event_time",
            "event_time DESC, event_id",
            1,
        ),
        ("ROW_NUMBER", "event_id", "event_time", "event_time", 2),
        ("RANK", "country", "status", "status", 1),
        ("RANK", "device", "total_amount", "total_amount DESC", 4),
    ] {
        let id = if key == "event_id" { "" } else { "event_id, " };
        let sql = |extra: &str| {
            format!(
                "SELECT * FROM (SELECT {key}, {id}{cols}, {f}() OVER (PARTITION BY {key} \
                 ORDER BY {order}) AS rn FROM events) t WHERE rn <= {k}{extra} \
                 ORDER BY {key}, rn, event_id"
            )
        };
        // `AND rn > 0` hides the pattern: DataFusion's window over a full sort.
        let want = csv(&engine, &sql(" AND rn > 0")).await;
        assert!(want.len() > 1, "{f} by {key}: no rows");
        let explained = plan(&engine, &sql("")).await;
        assert!(explained.contains("AdaptiveTopKExec"), "{explained}");
        assert!(
            !plan(&engine, &sql(" AND rn > 0"))
                .await
                .contains("AdaptiveTopKExec")
        );
        assert_eq!(csv(&engine, &sql("")).await, want, "{f} by {key}");
        assert_eq!(
            csv(&tight, &sql("")).await,
            want,
            "{f} by {key}, tight memory"
        );
    }
    // One partition per row: the top-K saw most rows pass and sorted instead.
    let explained = plan(
        &engine,
        "SELECT * FROM (SELECT event_id, event_time, ROW_NUMBER() OVER (PARTITION BY event_id \
         ORDER BY event_time) AS rn FROM events) t WHERE rn <= 2 ORDER BY event_id, rn",
    )
    .await;
    assert!(explained.contains("sort_fallbacks="), "{explained}");
    assert!(!explained.contains("sort_fallbacks=0"), "{explained}");
}
