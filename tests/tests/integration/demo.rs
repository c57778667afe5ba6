//! The demo project end to end, and its answer checked against serde_json arithmetic.

use tributary_tests::{TempProject, independent_daily, ndjson_files, repo_root, valid_event};

fn demo_project() -> TempProject {
    TempProject::demo()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_pipeline_end_to_end_matches_independent_answer() {
    let p = demo_project();
    let g = tributary::demo::generate(&p.path().join("data/orders"), 6000, 3, 42).unwrap();
    let summaries = p.run().await;
    let s = summaries.iter().find(|s| s.pipeline == "orders").unwrap();
    assert_eq!(s.records_read, g.good + g.bad);
    assert_eq!(s.dead_lettered, g.bad);

    // Independent: valid lines (serde_json), minus the pipeline's filter (status = created).
    let files = ndjson_files(&p.path().join("data/orders"));
    let (daily, bad) = independent_daily(&files);
    assert_eq!(bad, g.bad);
    assert_eq!(daily.len(), 7);
    let mut expected = std::collections::BTreeMap::new();
    let mut created = 0;
    for f in &files {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            let Some((day, cents)) = valid_event(line) else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["status"] == "created" {
                created += 1;
                continue;
            }
            let e = expected.entry(day).or_insert((0u64, 0i64, 0u64));
            e.0 += 1;
            e.1 += cents;
            e.2 += u64::from(cents >= 10_000);
        }
    }
    assert!(created > 0);
    assert_eq!(s.records_filtered, created);

    let rows = p
        .query_csv(
            "SELECT dt, count(*) AS n, CAST(round(sum(total_amount) * 100) AS BIGINT) AS cents, \
             sum(CASE WHEN value_band = 'high' THEN 1 ELSE 0 END) AS high FROM orders GROUP BY dt ORDER BY dt",
        )
        .await;
    let got: Vec<String> = rows[1..].to_vec();
    let want: Vec<String> = expected
        .iter()
        .map(|(d, (n, c, h))| format!("{d},{n},{c},{h}"))
        .collect();
    assert_eq!(got, want);

    // The demo's daily rollup job gives the same answer as querying the orders directly.
    let config = p.config().await;
    let job = config
        .jobs
        .iter()
        .find(|j| j.name == "daily_revenue")
        .unwrap();
    let rec = tributary::jobs::run::execute(
        &p.lake().await,
        &config.query,
        job,
        tributary::jobs::run::Scope::Incremental,
        &tributary::jobs::run::Trigger::new("manual", None),
    )
    .await
    .unwrap();
    assert_eq!(rec.state.as_str(), "SUCCEEDED", "{:?}", rec.error);
    let direct = std::fs::read_to_string(repo_root().join("jobs/daily_revenue.sql")).unwrap();
    assert_eq!(
        p.query_csv("SELECT * FROM daily_revenue ORDER BY dt, country")
            .await,
        p.query_csv(&format!("SELECT * FROM ({direct}) ORDER BY dt, country"))
            .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_answer_for_the_demo_data() {
    let p = demo_project();
    tributary::demo::generate(&p.path().join("data/orders"), 3000, 2, 42).unwrap();
    p.run().await;
    let rows = p
        .query_csv(
            "SELECT dt, device, count(*) AS orders, round(sum(total_amount), 2) AS revenue \
             FROM orders WHERE dt BETWEEN '2024-06-02' AND '2024-06-04' GROUP BY dt, device ORDER BY dt, device",
        )
        .await;
    let golden_path = repo_root().join("tests/golden/demo_daily_device.csv");
    let got = rows.join("\n") + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden_path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden_path).unwrap();
    assert_eq!(
        got,
        want,
        "golden file {} differs (UPDATE_GOLDEN=1 rewrites it)",
        golden_path.display()
    );
}

/// Both of the repository's project configs validate with its schemas and jobs (the README
/// runs them as written).
#[test]
fn the_repository_configs_validate() {
    let p = TempProject::demo();
    std::fs::copy(
        repo_root().join("tributary-kinesis.toml"),
        p.path().join("tributary-kinesis.toml"),
    )
    .unwrap();
    for config in ["tributary.toml", "tributary-kinesis.toml"] {
        let o = std::process::Command::new(tributary_tests::tributary_bin())
            .args(["--config", config, "validate"])
            .current_dir(p.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{config}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
