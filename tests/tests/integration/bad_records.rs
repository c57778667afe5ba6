//! Every line accounted for: good rows in the table, bad rows in the DLQ, counts exact.

use tributary_tests::{TempProject, independent_daily, ndjson_files};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_percent_bad_input_every_line_accounted_for() {
    let p = TempProject::events("");
    let m = p.gen_events(20_000, 3, 0.05, 7);
    let bad = m.count("truncated") + m.count("wrong_type") + m.count("missing_field");
    assert!(bad > 500, "the generator made {bad} bad lines");
    let s = &p.run().await[0];
    assert_eq!(s.records_read, 20_000 + bad);
    assert_eq!(s.records_written, 20_000);
    assert_eq!(s.dead_lettered, bad);

    assert_eq!(p.count("SELECT count(*) FROM events").await, 20_000);
    assert_eq!(
        p.count("SELECT count(DISTINCT event_id) FROM events").await,
        20_000
    );
    let kinds = p
        .query_csv(
            "SELECT error_kind, count(*) FROM events_dlq GROUP BY error_kind ORDER BY error_kind",
        )
        .await;
    assert_eq!(
        kinds[1..],
        [
            format!("invalid_json,{}", m.count("truncated")),
            format!("missing_field,{}", m.count("missing_field")),
            format!("wrong_type,{}", m.count("wrong_type")),
        ]
    );
    // Each dead letter keeps its raw line, where it came from, and why.
    let rows = p
        .query_csv("SELECT count(*) FROM events_dlq WHERE length(raw) > 0 AND length(error) > 0 AND source LIKE '%.ndjson' AND position >= 0")
        .await;
    assert_eq!(rows[1], bad.to_string());

    // The table's answer equals one computed from the input with serde_json alone.
    let (daily, independent_bad) = independent_daily(&ndjson_files(&p.data_dir()));
    assert_eq!(independent_bad, bad);
    let got = p
        .query_csv("SELECT dt, count(*), CAST(round(sum(total_amount) * 100) AS BIGINT) FROM events GROUP BY dt ORDER BY dt")
        .await;
    let want: Vec<String> = daily
        .iter()
        .map(|(d, (n, c))| format!("{d},{n},{c}"))
        .collect();
    assert_eq!(got[1..], want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_policy_counts_and_fail_policy_stops() {
    let p = TempProject::events("on_bad_record = \"drop\"");
    let m = p.gen_events(3000, 1, 0.05, 3);
    let bad = m.count("truncated") + m.count("wrong_type") + m.count("missing_field");
    let s = &p.run().await[0];
    assert_eq!(s.dropped, bad);
    assert_eq!(s.records_written, 3000);
    assert!(
        !p.lake()
            .await
            .tables()
            .await
            .unwrap()
            .contains(&"events_dlq".to_string())
    );

    let p = TempProject::events("on_bad_record = \"fail\"");
    p.gen_events(3000, 1, 0.05, 3);
    let config = p.config().await;
    let lake = p.lake().await;
    let err = tributary::runtime::run_pipeline(&config.pipelines[0], &lake, &Default::default())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("bad record at") && msg.contains("events-00000.ndjson@"),
        "{msg}"
    );
    assert_eq!(err.class(), tributary::ErrorClass::User);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_inputs_give_the_same_table() {
    let p = TempProject::events("");
    p.gen_events(2000, 2, 0.02, 5);
    let files = ndjson_files(&p.data_dir());
    // One file gzip, one zstd, neither left plain.
    let gz = files[0].with_extension("ndjson.gz");
    std::fs::write(&gz, gzip(&std::fs::read(&files[0]).unwrap())).unwrap();
    let zst = files[1].with_extension("ndjson.zst");
    std::fs::write(&zst, zstd_frame(&std::fs::read(&files[1]).unwrap())).unwrap();
    std::fs::remove_file(&files[0]).unwrap();
    std::fs::remove_file(&files[1]).unwrap();
    let s = &p.run().await[0];
    assert_eq!(s.records_written, 2000);
    assert_eq!(
        p.count("SELECT count(DISTINCT event_id) FROM events").await,
        2000
    );
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd_frame(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}
