//! Scheduled ETL jobs: bookmarks over incremental runs (answers equal a full recompute),
//! failed runs that leave bookmark and target untouched, retries and timeouts, depends_on,
//! the scheduler on a controlled clock (`--now`) across a crash, compaction under a
//! concurrent query, retention, backfill, catalog export and job validation.

use std::process::Command;

use tributary::jobs::run::{Scope, Trigger, execute};
use tributary::query::QueryEngine;
use tributary_tests::{TempProject, aws, cli, output_text as out, shared_bench, tributary_bin};

/// A batch of generated events as `data/<prefix>*.ndjson`: `days` days from `start`.
fn add_events(p: &TempProject, prefix: &str, records: u64, start: &str, days: u32, seed: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new("python3")
        .arg(shared_bench().join("gen_events.py"))
        .args(["--records", &records.to_string(), "--files", "1"])
        .args(["--seed", &seed.to_string(), "--start", start])
        .args(["--days", &days.to_string(), "--prefix", prefix])
        .arg("--out")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::create_dir_all(p.data_dir()).unwrap();
    for e in std::fs::read_dir(tmp.path()).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "ndjson") {
            std::fs::copy(&path, p.data_dir().join(path.file_name().unwrap())).unwrap();
        }
    }
}

fn write_job(p: &TempProject, name: &str, text: &str) {
    let dir = p.path().join("jobs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
}

const DAILY_SQL: &str = "SELECT dt, country, count(*) AS n, round(sum(total_amount), 2) AS revenue FROM events GROUP BY dt, country";

fn daily_job(sql: &str) -> String {
    format!(
        "schedule = \"cron(15 2 * * ? *)\"\nmode = \"overwrite_partitions\"\npartition_by = [\"dt\"]\nsql = \"\"\"\n{sql}\n\"\"\"\n\n[incremental]\nevents = \"changed_partitions\"\n"
    )
}

async fn run_job(p: &TempProject, name: &str, scope: Scope) -> tributary::jobs::history::RunRecord {
    let config = p.config().await;
    let lake = p.lake().await;
    let job = config.jobs.iter().find(|j| j.name == name).unwrap();
    execute(
        &lake,
        &config.query,
        job,
        scope,
        &Trigger::new("manual", None),
    )
    .await
    .unwrap()
}

fn detail(r: &tributary::jobs::history::RunRecord, path: &[&str]) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(r.details.as_deref().unwrap()).unwrap();
    for k in path {
        v = v[*k].clone();
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_runs_equal_a_full_recompute_and_read_only_what_changed() {
    let p = TempProject::events("");
    write_job(&p, "daily", &daily_job(DAILY_SQL));
    write_job(
        &p,
        "copy",
        "schedule = \"rate(1 hour)\"\nsql = \"SELECT event_id, dt, total_amount FROM events\"\n\n[incremental]\nevents = \"new_rows\"\n",
    );
    // Three arrivals: the second overlaps the first's last day, the third is a new day.
    let batches = [
        ("a-", "2024-06-01", 3, 1),
        ("b-", "2024-06-03", 2, 2),
        ("c-", "2024-06-05", 1, 3),
    ];
    let expected = format!("SELECT * FROM ({DAILY_SQL}) ORDER BY dt, country");
    for (k, (prefix, start, days, seed)) in batches.into_iter().enumerate() {
        add_events(&p, prefix, 3000, start, days, seed);
        p.run().await;
        let t = std::time::Instant::now();
        let daily = run_job(&p, "daily", Scope::Incremental).await;
        let incremental_time = t.elapsed();
        assert_eq!(daily.state.as_str(), "SUCCEEDED", "{:?}", daily.error);
        let copy = run_job(&p, "copy", Scope::Incremental).await;
        assert_eq!(copy.state.as_str(), "SUCCEEDED", "{:?}", copy.error);
        // The rollup equals a full recompute over the source.
        assert_eq!(
            p.query_csv("SELECT * FROM daily ORDER BY dt, country")
                .await,
            p.query_csv(&expected).await,
            "run {k}"
        );
        // The copy holds every event exactly once.
        assert_eq!(
            p.count("SELECT count(*) FROM copy").await,
            p.count("SELECT count(*) FROM events").await
        );
        assert_eq!(
            p.count("SELECT count(DISTINCT event_id) FROM copy").await,
            p.count("SELECT count(*) FROM copy").await
        );
        // Only the new files (copy) or the changed days' files (daily) were read.
        let total_files = p.count("SELECT count(DISTINCT dt) FROM events").await;
        let read = detail(&daily, &["sources", "events", "files"])
            .as_i64()
            .unwrap();
        let new = detail(&copy, &["sources", "events", "files"])
            .as_i64()
            .unwrap();
        eprintln!(
            "run {k}: daily read {read} files of {total_files} partitions in {incremental_time:?}; copy read {new} new files"
        );
        match k {
            0 => assert_eq!(read, 3),
            1 => assert_eq!(read, 3, "both files of 06-03 and the new 06-04"),
            _ => assert_eq!(read, 1, "only 06-05"),
        }
        assert_eq!(new, days as i64, "one new file per day of the batch");
        // The append streamed its output into the writer; its row count is the commit's.
        assert_eq!(detail(&copy, &["streamed"]), true);
        assert_eq!(copy.rows_written as usize, 3000);
    }
    // Nothing new: the next run reads nothing and commits nothing.
    let before = p
        .lake()
        .await
        .load("daily")
        .await
        .unwrap()
        .unwrap()
        .version();
    let again = run_job(&p, "daily", Scope::Incremental).await;
    assert!(detail(&again, &["skipped"]).is_string());
    let after = p
        .lake()
        .await
        .load("daily")
        .await
        .unwrap()
        .unwrap()
        .version();
    assert_eq!(before, after);
    // A full recompute gives the same answer; figures for the note.
    let t = std::time::Instant::now();
    let full = run_job(&p, "daily", Scope::Full).await;
    eprintln!(
        "full recompute: {:?} ({} rows)",
        t.elapsed(),
        full.rows_written
    );
    assert_eq!(
        p.query_csv("SELECT * FROM daily ORDER BY dt, country")
            .await,
        p.query_csv(&expected).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_leaves_bookmark_and_target_untouched() {
    let p = TempProject::events("");
    write_job(&p, "daily", &daily_job(DAILY_SQL));
    add_events(&p, "a-", 2000, "2024-06-01", 2, 1);
    p.run().await;
    assert_eq!(
        run_job(&p, "daily", Scope::Incremental)
            .await
            .state
            .as_str(),
        "SUCCEEDED"
    );
    let lake = p.lake().await;
    let v1 = lake.load("daily").await.unwrap().unwrap().version();
    let answer1 = p
        .query_csv("SELECT * FROM daily ORDER BY dt, country")
        .await;

    // New data arrives; the job's SQL now fails while it runs (a cast error per row).
    add_events(&p, "b-", 2000, "2024-06-02", 2, 2);
    p.run().await;
    write_job(
        &p,
        "daily",
        &daily_job(
            &DAILY_SQL.replace("count(*) AS n", "count(*) + sum(CAST(country AS INT)) AS n"),
        ),
    );
    let failed = run_job(&p, "daily", Scope::Incremental).await;
    assert_eq!(failed.state.as_str(), "FAILED");
    assert_eq!(
        failed.attempt, 1,
        "an error in the job's own SQL is not retried"
    );
    assert!(
        failed.error.as_deref().unwrap().contains("Cast"),
        "{:?}",
        failed.error
    );
    assert_eq!(lake.load("daily").await.unwrap().unwrap().version(), v1);
    assert_eq!(
        p.query_csv("SELECT * FROM daily ORDER BY dt, country")
            .await,
        answer1
    );

    // Fixed: the next run processes the same data — nothing lost, nothing counted twice.
    write_job(&p, "daily", &daily_job(DAILY_SQL));
    let ok = run_job(&p, "daily", Scope::Incremental).await;
    assert_eq!(ok.state.as_str(), "SUCCEEDED", "{:?}", ok.error);
    assert_eq!(
        p.query_csv("SELECT * FROM daily ORDER BY dt, country")
            .await,
        p.query_csv(&format!("SELECT * FROM ({DAILY_SQL}) ORDER BY dt, country"))
            .await
    );
    // The history holds both runs, queryable with SQL.
    let rows = p
        .query_csv("SELECT state, count(*) FROM job_runs WHERE job = 'daily' GROUP BY state ORDER BY state")
        .await;
    assert_eq!(
        rows,
        ["state,count(*)", "FAILED,1", "RUNNING,3", "SUCCEEDED,2"]
    );
}

#[test]
fn timeouts_are_retried_then_reported() {
    let p = TempProject::events("");
    add_events(&p, "a-", 2000, "2024-06-01", 1, 1);
    assert!(cli(&p, &["run"]).status.success());
    // 2000³ products: far longer than the timeout.
    write_job(
        &p,
        "slow",
        "schedule = \"rate(1 day)\"\ntimeout_secs = 0.5\nretries = 2\nretry_backoff_secs = 0.05\nsql = \"SELECT sum(a.total_amount * b.total_amount * c.total_amount) AS n FROM events a CROSS JOIN events b CROSS JOIN events c\"\n",
    );
    let o = cli(&p, &["jobs", "run", "slow"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("TIMEOUT (attempt 3"), "{}", out(&o));
    assert!(out(&o).contains("cancelled after 0.5 s"), "{}", out(&o));
    let o = cli(
        &p,
        &[
            "query",
            "--format",
            "csv",
            "SELECT attempt, state FROM job_runs WHERE job = 'slow' ORDER BY updated_at",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .collect::<Vec<_>>(),
        [
            "attempt,state",
            "1,RUNNING",
            "1,TIMEOUT",
            "2,RUNNING",
            "2,TIMEOUT",
            "3,RUNNING",
            "3,TIMEOUT"
        ]
    );
    // Nothing was written: no table (the output streams into the writer, which may have
    // made the table's folder, but no file and no commit).
    let dir = p.path().join("lake").join("slow");
    let files: Vec<_> = walkdir(&dir);
    assert!(files.is_empty(), "{files:?}");
}

/// Every file under `dir` (none if it does not exist).
fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walkdir(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// The latest (job, state, trigger) of every run, oldest first.
fn runs(p: &TempProject) -> Vec<String> {
    let sql = "SELECT job, state, \"trigger\", scheduled_for FROM (SELECT *, row_number() OVER (PARTITION BY run_id ORDER BY updated_at DESC) AS rn FROM job_runs) WHERE rn = 1 ORDER BY started_at, job";
    let o = cli(p, &["query", "--format", "csv", sql]);
    assert!(o.status.success(), "{}", out(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

#[test]
fn scheduler_fires_slots_once_runs_dependents_and_survives_a_crash() {
    let p = TempProject::events("");
    add_events(&p, "a-", 1000, "2024-06-01", 2, 1);
    assert!(cli(&p, &["run"]).status.success());
    write_job(
        &p,
        "a",
        &format!(
            "catch_up = \"all\"\n{}",
            daily_job(DAILY_SQL).replace("cron(15 2 * * ? *)", "cron(0 2 * * ? *)")
        ),
    );
    write_job(
        &p,
        "b",
        "depends_on = [\"a\"]\nmode = \"overwrite\"\nsql = \"SELECT dt, sum(n) AS n FROM a GROUP BY dt\"\n",
    );
    let tick = |t: &str| {
        let o = cli(&p, &["scheduler", "--now", t]);
        assert!(o.status.success(), "{}", out(&o));
        out(&o)
    };
    // First sight of the jobs: nothing before now runs.
    assert!(tick("2026-01-01T01:00:00Z").contains("no job due"));
    // The 02:00 slot: a, then b after it.
    let o = tick("2026-01-01T02:00:30Z");
    let lines: Vec<&str> = o.lines().collect();
    let ia = lines.iter().position(|l| l.starts_with("a ")).unwrap();
    let ib = lines.iter().position(|l| l.starts_with("b ")).unwrap();
    assert!(ia < ib, "{o}");
    assert_eq!(
        runs(&p),
        [
            "a,SUCCEEDED,schedule,2026-01-01T02:00:00Z",
            "b,SUCCEEDED,dependency,2026-01-01T02:00:00Z"
        ]
    );
    // The same time again, and again after losing the cursor (a crash between claiming a
    // slot and moving the cursor): the claimed slot does not run twice.
    assert!(tick("2026-01-01T02:00:40Z").contains("no job due"));
    std::fs::remove_file(p.path().join("lake/_tributary/jobs/a/cursor.json")).unwrap();
    assert!(tick("2026-01-01T02:00:50Z").contains("no job due"));
    assert_eq!(runs(&p).len(), 2);
    // Three days later: catch_up = "all" runs each missed slot, oldest first; b follows each.
    tick("2026-01-04T02:30:00Z");
    let r = runs(&p);
    assert_eq!(r.len(), 8, "{r:#?}");
    assert_eq!(r[2], "a,SUCCEEDED,catch_up,2026-01-02T02:00:00Z");
    assert_eq!(r[3], "b,SUCCEEDED,dependency,2026-01-02T02:00:00Z");
    assert_eq!(r[6], "a,SUCCEEDED,catch_up,2026-01-04T02:00:00Z");
}

#[test]
fn a_scheduler_killed_mid_run_does_not_rerun_the_slot() {
    // Schedulers announce themselves every ~2.7 s; one silent for 8 s is dead. (A shorter
    // life let a busy machine, starting the second scheduler below while the first's
    // cross join takes both cores, take the living scheduler for dead.)
    let p = TempProject::events("[scheduler]\nheartbeat_ttl_secs = 8\n");
    add_events(&p, "a-", 2000, "2024-06-01", 1, 1);
    assert!(cli(&p, &["run"]).status.success());
    write_job(
        &p,
        "slow",
        "schedule = \"rate(1 hour)\"\ntimeout_secs = 600\nsql = \"SELECT sum(a.total_amount * b.total_amount * c.total_amount) AS n FROM events a CROSS JOIN events b CROSS JOIN events c\"\n",
    );
    assert!(
        cli(&p, &["scheduler", "--now", "2026-01-01T00:30:00Z"])
            .status
            .success()
    );
    let mut child = Command::new(tributary_bin())
        .args([
            "--no-progress",
            "scheduler",
            "--now",
            "2026-01-01T01:00:05Z",
        ])
        .current_dir(p.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the run is recorded RUNNING.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !p
        .path()
        .join("lake/job_runs/_delta_log/00000000000000000001.json")
        .exists()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    // A second scheduler meanwhile: the run's scheduler is alive, so its run is left alone
    // (and its slot is not run twice).
    let o = cli(&p, &["scheduler", "--now", "2026-01-01T01:00:07Z"]);
    assert!(!out(&o).contains("abandoned"), "{}", out(&o));
    assert!(out(&o).contains("no job due"), "{}", out(&o));
    assert_eq!(runs(&p), ["slow,RUNNING,schedule,2026-01-01T01:00:00Z"]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(runs(&p), ["slow,RUNNING,schedule,2026-01-01T01:00:00Z"]);
    // Once its heartbeat has expired, the next scheduler marks the orphan FAILED and does
    // not run its slot again. Until then, schedulers leave it alone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let o = loop {
        let o = cli(&p, &["scheduler", "--now", "2026-01-01T01:00:10Z"]);
        if out(&o).contains("abandoned") {
            break o;
        }
        assert!(out(&o).contains("no job due"), "{}", out(&o));
        assert_eq!(runs(&p), ["slow,RUNNING,schedule,2026-01-01T01:00:00Z"]);
        assert!(
            std::time::Instant::now() < deadline,
            "the dead scheduler's run was never taken for abandoned"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert!(out(&o).contains("1 runs abandoned"), "{}", out(&o));
    assert!(out(&o).contains("no job due"), "{}", out(&o));
    assert_eq!(runs(&p), ["slow,FAILED,schedule,2026-01-01T01:00:00Z"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_answers_for_concurrent_queries_and_vacuum_cleans_up() {
    let p = TempProject::events("");
    // Eight arrivals over the same two days: eight small files per partition.
    for k in 0..8 {
        add_events(&p, &format!("k{k}-"), 500, "2024-06-01", 2, 10 + k);
        p.run().await;
    }
    write_job(
        &p,
        "compact",
        "type = \"compact\"\ntable = \"events\"\ntarget_file_mb = 64\nschedule = \"rate(1 day)\"\n",
    );
    write_job(
        &p,
        "vacuum",
        "type = \"vacuum\"\ntable = \"events\"\nretention_hours = 0\nschedule = \"rate(1 day)\"\n",
    );
    let sql = "SELECT dt, count(*) AS n, round(sum(total_amount), 2) AS revenue FROM events GROUP BY dt ORDER BY dt";
    let lake = p.lake().await;
    let files = |l: tributary::lake::Lake| async move {
        tributary::lake::table_info("events", &l.load("events").await.unwrap().unwrap())
            .await
            .unwrap()
            .files
    };
    let before_files = files(lake.clone()).await;
    let answer = p.query_csv(sql).await;
    // A session opened before the compaction keeps querying while it runs and after it.
    let old = QueryEngine::open(&lake).await.unwrap();
    let reader = tokio::spawn(async move {
        let mut answers = Vec::new();
        for _ in 0..20 {
            let r = old.sql(sql).await.unwrap();
            answers.push(
                arrow::util::pretty::pretty_format_batches(&r.batches)
                    .unwrap()
                    .to_string(),
            );
        }
        answers
    });
    let r = run_job(&p, "compact", Scope::Incremental).await;
    assert_eq!(r.state.as_str(), "SUCCEEDED", "{:?}", r.error);
    let answers = reader.await.unwrap();
    assert!(answers.windows(2).all(|w| w[0] == w[1]));
    let after_files = files(lake.clone()).await;
    eprintln!(
        "compaction: {before_files} files → {after_files} ({})",
        r.details.as_deref().unwrap()
    );
    assert_eq!(before_files, 16);
    assert_eq!(after_files, 2, "one file per partition");
    assert_eq!(p.query_csv(sql).await, answer);
    // Compaction is not new data: an incremental job reading events sees nothing new.
    // Vacuum (retention 0) deletes the 16 replaced files; the answer stays.
    let v = run_job(&p, "vacuum", Scope::Incremental).await;
    assert_eq!(detail(&v, &["files_deleted"]), 16, "{:?}", v.details);
    assert_eq!(p.query_csv(sql).await, answer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_reruns_day_by_day_and_merge_upserts() {
    let p = TempProject::events("");
    add_events(&p, "a-", 3000, "2024-06-01", 3, 1);
    p.run().await;
    write_job(&p, "daily", &daily_job(DAILY_SQL));
    write_job(
        &p,
        "latest",
        "schedule = \"rate(1 hour)\"\nmode = \"merge\"\nmerge_on = [\"country\"]\nsql = \"SELECT country, max(event_time) AS last_event, count(*) AS n FROM events GROUP BY country\"\n\n[incremental]\nevents = \"new_rows\"\n",
    );
    assert_eq!(
        run_job(&p, "daily", Scope::Incremental)
            .await
            .state
            .as_str(),
        "SUCCEEDED"
    );
    let full = p
        .query_csv("SELECT * FROM daily ORDER BY dt, country")
        .await;
    // Wipe one day by hand, then backfill two days: day by day, same answer.
    let o = cli(
        &p,
        &[
            "jobs",
            "backfill",
            "daily",
            "--from",
            "2024-06-02",
            "--to",
            "2024-06-03",
        ],
    );
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("2024-06-02: daily"), "{}", out(&o));
    assert!(out(&o).contains("2024-06-03: daily"), "{}", out(&o));
    assert_eq!(
        p.query_csv("SELECT * FROM daily ORDER BY dt, country")
            .await,
        full
    );
    // Backfills leave the bookmark alone: the next incremental run finds nothing new.
    let again = run_job(&p, "daily", Scope::Incremental).await;
    assert!(
        detail(&again, &["skipped"]).is_string(),
        "{:?}",
        again.details
    );
    // Reset: the next run reads everything again (and still equals the full answer).
    let o = cli(&p, &["jobs", "reset", "daily"]);
    assert!(o.status.success(), "{}", out(&o));
    let r = run_job(&p, "daily", Scope::Incremental).await;
    assert_eq!(detail(&r, &["sources", "events", "files"]), 3);
    assert_eq!(
        p.query_csv("SELECT * FROM daily ORDER BY dt, country")
            .await,
        full
    );

    // Merge: one row per country, updated in place as new events arrive.
    assert_eq!(
        run_job(&p, "latest", Scope::Incremental)
            .await
            .state
            .as_str(),
        "SUCCEEDED"
    );
    let countries = p.count("SELECT count(*) FROM latest").await;
    add_events(&p, "b-", 1000, "2024-06-04", 1, 2);
    p.run().await;
    assert_eq!(
        run_job(&p, "latest", Scope::Incremental)
            .await
            .state
            .as_str(),
        "SUCCEEDED"
    );
    assert_eq!(p.count("SELECT count(*) FROM latest").await, countries);
    assert_eq!(
        p.count("SELECT count(*) FROM latest WHERE last_event >= TIMESTAMP '2024-06-04T00:00:00Z'")
            .await,
        countries,
        "every country's row was updated with the new day's events"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_retention_deletes_only_old_records() {
    let p = TempProject::events("");
    let o = Command::new("python3")
        .arg(shared_bench().join("gen_events.py"))
        .args([
            "--records",
            "2000",
            "--files",
            "1",
            "--bad-rate",
            "0.05",
            "--out",
        ])
        .arg(p.data_dir())
        .output()
        .unwrap();
    assert!(o.status.success());
    p.run().await;
    let bad = p.count("SELECT count(*) FROM events_dlq").await;
    assert!(bad > 50);
    write_job(
        &p,
        "keep",
        "type = \"dlq_retention\"\ntable = \"events_dlq\"\nretention_days = 30\nschedule = \"rate(1 day)\"\n",
    );
    write_job(
        &p,
        "purge",
        "type = \"dlq_retention\"\ntable = \"events_dlq\"\nretention_days = 0\nschedule = \"rate(1 day)\"\n",
    );
    let r = run_job(&p, "keep", Scope::Incremental).await;
    assert_eq!(r.state.as_str(), "SUCCEEDED", "{:?}", r.error);
    assert_eq!(detail(&r, &["rows_deleted"]), 0, "{:?}", r);
    assert_eq!(p.count("SELECT count(*) FROM events_dlq").await, bad);
    let r = run_job(&p, "purge", Scope::Incremental).await;
    assert_eq!(detail(&r, &["rows_deleted"]), bad, "{:?}", r);
    assert_eq!(p.count("SELECT count(*) FROM events_dlq").await, 0);
}

#[test]
fn catalog_export_prints_ddl_for_every_table() {
    let p = TempProject::events("");
    add_events(&p, "a-", 500, "2024-06-01", 2, 1);
    assert!(cli(&p, &["run"]).status.success());
    let o = cli(
        &p,
        &[
            "catalog",
            "export",
            "--format",
            "athena",
            "--database",
            "shop",
            "--location-prefix",
            "s3://bucket/lake",
        ],
    );
    assert!(o.status.success(), "{}", out(&o));
    let ddl = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        ddl.contains("CREATE DATABASE IF NOT EXISTS `shop`;"),
        "{ddl}"
    );
    assert!(
        ddl.contains("CREATE EXTERNAL TABLE IF NOT EXISTS `shop`.`events`\nLOCATION 's3://bucket/lake/events/'\nTBLPROPERTIES ('table_type' = 'DELTA');"),
        "{ddl}"
    );
    assert!(
        ddl.contains("-- events: 10 columns, partitioned by dt"),
        "{ddl}"
    );
    // The local lake's own location, with a warning that other engines need shared storage.
    let o = cli(&p, &["catalog", "export", "--format", "trino"]);
    let ddl = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(ddl.contains("local folder"), "{ddl}");
    assert!(ddl.contains("CALL delta.system.register_table(schema_name => 'tributary', table_name => 'events', table_location => 'file://"), "{ddl}");
    let o = cli(
        &p,
        &[
            "catalog",
            "export",
            "--format",
            "spark",
            "--location-prefix",
            "s3a://b/l",
        ],
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains(
        "CREATE TABLE IF NOT EXISTS tributary.events USING DELTA LOCATION 's3a://b/l/events';"
    ));
}

#[test]
fn bad_jobs_are_rejected_with_line_and_column_before_anything_runs() {
    let p = TempProject::events("");
    add_events(&p, "a-", 100, "2024-06-01", 1, 1);
    write_job(
        &p,
        "bad",
        "schedule = \"cron(0 12 * * * *)\"\ntimezone = \"Europe/Berln\"\nsql = \"SELECT dt FROM evnts\"\ndepends_on = [\"nope\"]\n",
    );
    std::fs::write(
        p.path().join("jobs/cyc1.toml"),
        "depends_on = [\"cyc2\"]\nsql = \"SELECT 1 AS x\"\n",
    )
    .unwrap();
    std::fs::write(
        p.path().join("jobs/cyc2.toml"),
        "depends_on = [\"cyc1\"]\nsql = \"SELECT 1 AS x\"\n",
    )
    .unwrap();
    let o = cli(&p, &["validate"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    let e = out(&o);
    assert!(
        e.contains("jobs/bad.toml:1:23: error: exactly one of day-of-month and day-of-week"),
        "{e}"
    );
    assert!(e.contains("jobs/bad.toml:2:12: error: unknown time zone `Europe/Berln`: did you mean `Europe/Berlin`?"), "{e}");
    assert!(
        e.contains("jobs/bad.toml:3:23: error: unknown table `evnts`"),
        "{e}"
    );
    assert!(e.contains("did you mean `events`?"), "{e}");
    assert!(
        e.contains("jobs/bad.toml:4:15: error: unknown job `nope` in depends_on"),
        "{e}"
    );
    // `run` refuses the same project before touching the lake.
    assert_eq!(cli(&p, &["run"]).status.code(), Some(2));
    assert!(!p.path().join("lake").exists());
    // With the bad job gone, the cycle is reported.
    std::fs::remove_file(p.path().join("jobs/bad.toml")).unwrap();
    let e = out(&cli(&p, &["validate"]));
    assert!(
        e.contains("depends_on forms a cycle: cyc1 → cyc2 → cyc1"),
        "{e}"
    );
}

#[test]
fn jobs_and_the_scheduler_work_on_an_s3_lake() {
    let bucket = aws::unique("jobs");
    aws::create_bucket(&bucket);
    let config = format!(
        "[project]\nlake = \"s3://{bucket}/lake\"\n\n{}\n[pipelines.events]\ntable = \"events\"\nsource = {{ type = \"file\", path = \"data/*.ndjson*\" }}\n",
        aws::storage_toml()
    );
    let p = TempProject::new(&config, &[("events", tributary_tests::EVENTS_SCHEMA)]);
    add_events(&p, "a-", 1000, "2024-06-01", 2, 1);
    assert!(cli(&p, &["run"]).status.success());
    write_job(&p, "daily", &daily_job(DAILY_SQL));
    assert!(
        cli(&p, &["scheduler", "--now", "2026-01-01T00:00:00Z"])
            .status
            .success()
    );
    let o = cli(&p, &["scheduler", "--now", "2026-01-01T02:16:00Z"]);
    assert!(out(&o).contains("daily"), "{}", out(&o));
    assert!(out(&o).contains("SUCCEEDED"), "{}", out(&o));
    // The slot is claimed on S3 with a create-only put: a second pass runs nothing.
    std::thread::sleep(std::time::Duration::from_millis(10));
    let o = cli(&p, &["scheduler", "--now", "2026-01-01T02:16:30Z"]);
    assert!(out(&o).contains("no job due"), "{}", out(&o));
    let o = cli(
        &p,
        &["query", "--format", "csv", "SELECT sum(n) FROM daily"],
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("\n1000"),
        "{}",
        out(&o)
    );
}
