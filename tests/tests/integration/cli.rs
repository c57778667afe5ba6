//! The binary as a user runs it: validate, query formats, tables, schema infer.

use std::process::Output;

use tributary_tests::{TempProject, cli};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn validate_reports_errors_with_line_and_column_and_runs_nothing() {
    let p = TempProject::events(
        "[[pipelines.events.transforms]]\ntype = \"filter\"\npredicate = \"satus = 'paid'\"\n",
    );
    p.gen_events(100, 1, 0.0, 1);
    let o = cli(&p, &["validate"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("tributary.toml:9:14: error: transform #1 (filter): unknown column `satus`"),
        "{e}"
    );
    assert!(e.contains("hint: did you mean `status`?"), "{e}");
    // `run` refuses the same config before touching the lake.
    let o = cli(&p, &["run"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!p.path().join("lake").exists());
}

#[test]
fn run_query_formats_and_tables() {
    let p = TempProject::events("");
    p.gen_events(1000, 1, 0.0, 2);
    let o = cli(&p, &["validate"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli(&p, &["run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("written    1000 records"),
        "{}",
        stdout(&o)
    );

    let sql = "SELECT count(*) AS n FROM events";
    let o = cli(&p, &["query", sql]);
    assert!(stdout(&o).contains("| 1000 |"), "{}", stdout(&o));
    let o = cli(&p, &["query", "--format", "csv", sql]);
    assert_eq!(stdout(&o), "n\n1000\n");
    let o = cli(&p, &["query", "--format", "json", sql]);
    assert_eq!(stdout(&o).trim(), "{\"n\":1000}");
    let out = p.path().join("r.parquet");
    let o = cli(
        &p,
        &[
            "query",
            "--format",
            "parquet",
            "--output",
            out.to_str().unwrap(),
            sql,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(&std::fs::read(&out).unwrap()[..4], b"PAR1");

    let o = cli(&p, &["query", "SELECT count(*) FROM event"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("table `event` not found in the lake: did you mean `events`?"),
        "{}",
        stderr(&o)
    );
    let o = cli(&p, &["query", "SELECT sum(totl_amount) FROM events"]);
    assert!(
        stderr(&o).contains("did you mean `total_amount`?"),
        "{}",
        stderr(&o)
    );
    let o = cli(&p, &["query", "DROP TABLE events"]);
    assert_eq!(o.status.code(), Some(1));

    let o = cli(&p, &["tables"]);
    let t = stdout(&o);
    let line = t
        .lines()
        .find(|l| l.starts_with("events "))
        .unwrap_or_else(|| panic!("{t}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[1], "1000", "{line}");
    assert_eq!(cols[5], "7", "7 daily partitions: {line}");
}

#[test]
fn schema_infer_round_trips_through_a_pipeline() {
    let p = TempProject::events("");
    p.gen_events(500, 1, 0.0, 3);
    let sample = p.data_dir().join("events-00000.ndjson");
    let o = cli(
        &p,
        &[
            "schema",
            "infer",
            sample.to_str().unwrap(),
            "--name",
            "inferred",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let toml = stdout(&o);
    assert!(
        toml.contains("name = \"event_time\"\ntype = \"timestamp(ms, UTC)\"\nrequired = true"),
        "{toml}"
    );
    std::fs::write(p.path().join("schemas/inferred.toml"), &toml).unwrap();
    let config = std::fs::read_to_string(p.config_path())
        .unwrap()
        .replace("table = \"events\"", "table = \"inferred\"");
    std::fs::write(p.config_path(), config).unwrap();
    let o = cli(&p, &["run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli(
        &p,
        &[
            "query",
            "--format",
            "csv",
            "SELECT count(*) AS n, count(DISTINCT dt) AS days FROM inferred",
        ],
    );
    assert_eq!(stdout(&o), "n,days\n500,7\n");
}

#[test]
fn json_logs_when_asked() {
    let p = TempProject::events("");
    p.gen_events(100, 1, 0.0, 4);
    let o = cli(&p, &["--log-format", "json", "run"]);
    assert!(o.status.success());
    let first = stderr(&o).lines().next().unwrap_or_default().to_string();
    let v: serde_json::Value =
        serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert!(v["fields"]["message"].is_string());
}

#[test]
fn status_shows_commits_dead_letters_and_pending_input() {
    let p = TempProject::events("");
    p.gen_events(1000, 2, 0.02, 5);
    assert!(cli(&p, &["run"]).status.success());
    // A new file arrives after the run.
    let extra = TempProject::events("");
    extra.gen_events(100, 1, 0.0, 6);
    let f = tributary_tests::ndjson_files(&extra.data_dir())[0].clone();
    let size = std::fs::metadata(&f).unwrap().len();
    std::fs::copy(&f, p.data_dir().join("late.ndjson")).unwrap();
    let o = cli(&p, &["status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    let line = s
        .lines()
        .find(|l| l.starts_with("events "))
        .unwrap_or_else(|| panic!("{s}"));
    assert!(line.contains(" 1000 "), "{line}");
    assert!(
        line.contains(&format!("1 of 3 files pending ({size} bytes)")),
        "{line}"
    );
    let dlq: i64 = {
        let o = cli(
            &p,
            &[
                "query",
                "--format",
                "csv",
                "SELECT count(*) AS n FROM events_dlq",
            ],
        );
        stdout(&o).lines().nth(1).unwrap().parse().unwrap()
    };
    assert!(dlq > 0);
    assert!(line.contains(&format!(" {dlq}  ")), "{line}");
    // After the next run nothing is pending.
    assert!(cli(&p, &["run"]).status.success());
    assert!(stdout(&cli(&p, &["status"])).contains("0 of 3 files pending (0 bytes)"));
}
