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

/// One line of every kind of bad input, among good ones: each ends in the table or in the
/// DLQ with its kind and reason, counted; nothing panics and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_of_every_kind_is_accounted_for() {
    let p = TempProject::events("max_record_bytes = 20000\ndedupe_key = \"event_id\"\n");
    let good = |id: &str, ts: &str| {
        format!(
            "{{\"event_id\":\"{id}\",\"event_time\":\"{ts}\",\"customer_id\":7,\"country\":\"DE\",\"device\":\"web\",\"items\":[{{\"sku\":\"A\",\"qty\":1,\"price\":2.5}}],\"total_amount\":2.5,\"status\":\"paid\",\"shipping\":null}}"
        )
    };
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut want_good = 0;
    for i in 0..50 {
        lines.push(good(&format!("g{i}"), "2024-06-01T10:00:00Z").into_bytes());
        want_good += 1;
    }
    let mut expect = std::collections::BTreeMap::<&str, i64>::new();
    let mut bad = |line: Vec<u8>, kind: &'static str, lines: &mut Vec<Vec<u8>>| {
        lines.push(line);
        *expect.entry(kind).or_default() += 1;
    };
    // Not UTF-8.
    let mut b = good("u1", "2024-06-01T10:00:00Z").into_bytes();
    b.splice(20..21, [0xff, 0xfe]);
    bad(b, "invalid_utf8", &mut lines);
    // Not JSON, or cut off.
    bad(
        b"{\"event_id\": \"x\", ".to_vec(),
        "invalid_json",
        &mut lines,
    );
    bad(b"not json at all".to_vec(), "invalid_json", &mut lines);
    bad(b"[1, 2, 3]".to_vec(), "invalid_json", &mut lines);
    // Nested 9,000 deep where a list of structs belongs.
    let deep = format!(
        "{{\"event_id\":\"d1\",\"event_time\":\"2024-06-01T10:00:00Z\",\"customer_id\":1,\"total_amount\":1.0,\"items\":{}{}}}",
        "[".repeat(9_000),
        "]".repeat(9_000)
    );
    assert!(deep.len() < 20_000);
    bad(deep.into_bytes(), "too_deep", &mut lines);
    // Deep but within the limit, in a field the schema does not have: ignored, kept.
    lines.push(
        good("n1", "2024-06-01T10:00:00Z")
            .replace(
                "\"status\"",
                &format!("\"extra\":{}1{},\"status\"", "[".repeat(40), "]".repeat(40)),
            )
            .into_bytes(),
    );
    want_good += 1;
    // Over max_record_bytes.
    let huge = good("h1", "2024-06-01T10:00:00Z")
        .replace("\"web\"", &format!("\"{}\"", "w".repeat(30_000)));
    bad(huge.into_bytes(), "too_large", &mut lines);
    // Wrong types, and timestamps that do not parse or do not fit.
    bad(
        good("t1", "2024-06-01T10:00:00Z")
            .replace("2.5}", "\"2.5x\"}")
            .replace("\"total_amount\":2.5", "\"total_amount\":\"lots\"")
            .into_bytes(),
        "wrong_type",
        &mut lines,
    );
    bad(
        good("t2", "yesterday").into_bytes(),
        "wrong_type",
        &mut lines,
    );
    bad(
        good("t3", "+292278994-08-17T07:12:55Z").into_bytes(),
        "wrong_type",
        &mut lines,
    );
    bad(
        good("t4", "2024-13-45T99:00:00Z").into_bytes(),
        "wrong_type",
        &mut lines,
    );
    // A required field missing.
    bad(
        good("m1", "2024-06-01T10:00:00Z")
            .replace("\"customer_id\":7,", "")
            .into_bytes(),
        "missing_field",
        &mut lines,
    );
    // The same event id twice in one batch: the first is kept.
    lines.push(good("dup", "2024-06-01T11:00:00Z").into_bytes());
    want_good += 1;
    bad(
        good("dup", "2024-06-01T12:00:00Z").into_bytes(),
        "duplicate",
        &mut lines,
    );
    bad(
        good("dup", "2024-06-01T13:00:00Z").into_bytes(),
        "duplicate",
        &mut lines,
    );

    std::fs::create_dir_all(p.data_dir()).unwrap();
    let mut data = lines.join(&b'\n');
    data.push(b'\n');
    std::fs::write(p.data_dir().join("mixed.ndjson"), &data).unwrap();
    let s = &p.run().await[0];
    let total_bad: i64 = expect.values().sum();
    assert_eq!(s.records_read as usize, lines.len());
    assert_eq!(s.records_written, want_good);
    assert_eq!(s.dead_lettered as i64, total_bad);
    assert_eq!(
        p.count("SELECT count(*) FROM events").await,
        want_good as i64
    );
    let kinds = p
        .query_csv(
            "SELECT error_kind, count(*) FROM events_dlq GROUP BY error_kind ORDER BY error_kind",
        )
        .await;
    let want: Vec<String> = expect.iter().map(|(k, n)| format!("{k},{n}")).collect();
    assert_eq!(kinds[1..], want);
    // The kept duplicate is the first one; every dead letter has a reason and its raw bytes.
    assert_eq!(
        p.query_csv("SELECT CAST(event_time AS VARCHAR) FROM events WHERE event_id = 'dup'")
            .await[1],
        "2024-06-01T11:00:00Z"
    );
    assert_eq!(
        p.count("SELECT count(*) FROM events_dlq WHERE length(error) > 10 AND length(raw) > 0")
            .await,
        total_bad
    );
}
