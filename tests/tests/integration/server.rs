//! The HTTP query API (`tributary serve`), driven over the wire: auth, every query state,
//! paging in JSON and Arrow, CSV download, cancel, the queue, read-only refusals, result
//! reuse, history across a restart, and the OpenAPI document.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tributary_tests::http::request;
use tributary_tests::serve::{RUNAWAY, TOKEN, call, python_driver, serve, start, wait};
use tributary_tests::{TempProject, tributary_bin};

fn project() -> TempProject {
    let p = TempProject::new(
        "[project]\nlake = \"lake\"\n\n[server]\nconcurrency = 1\nreuse_results_secs = 600\n\n[pipelines.events]\ntable = \"events\"\nsource = { type = \"file\", path = \"data/*.ndjson\" }\n",
        &[("events", tributary_tests::EVENTS_SCHEMA)],
    );
    p.gen_events(2500, 1, 0.0, 71);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_api_end_to_end() {
    let p = project();
    p.run().await;
    let s = serve(&p);

    // Auth.
    let r = request(&s.addr, "GET", "/v1/queries", None, None);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = request(&s.addr, "GET", "/v1/queries", Some("wrong"), None);
    assert_eq!(r.status, 403);

    // OpenAPI: every route is described.
    let r = request(&s.addr, "GET", "/openapi.json", None, None);
    assert_eq!(r.status, 200);
    let spec = r.json();
    assert_eq!(spec["openapi"], "3.1.0");
    for (path, method) in [
        ("/v1/queries", "post"),
        ("/v1/queries", "get"),
        ("/v1/queries/{id}", "get"),
        ("/v1/queries/{id}", "delete"),
        ("/v1/queries/{id}/results", "get"),
    ] {
        assert!(spec["paths"][path][method].is_object(), "{method} {path}");
    }

    // SUCCEEDED, with statistics, paged in JSON.
    let id = start(&s, "SELECT event_id FROM events ORDER BY event_id");
    let done = wait(&s, &id);
    assert_eq!(done["state"], "SUCCEEDED", "{done}");
    // Prometheus metrics, behind the token like the API, count the finished query.
    assert_eq!(request(&s.addr, "GET", "/metrics", None, None).status, 401);
    let r = request(&s.addr, "GET", "/metrics", Some(TOKEN), None);
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(
        text.contains("tributary_queries_total{state=\"SUCCEEDED\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE tributary_query_bytes_scanned_total counter"));
    assert_eq!(done["statistics"]["rows"], 2500);
    assert!(done["statistics"]["bytes_scanned"].as_u64().unwrap() > 0);
    assert!(done["statistics"]["files_scanned"].as_u64().unwrap() > 0);
    assert_eq!(done["statistics"]["files_pruned"], 0);
    assert!(
        done["output_location"]
            .as_str()
            .unwrap()
            .starts_with("_tributary/results/")
    );
    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &token {
            Some(t) => format!("/v1/queries/{id}/results?next_token={t}"),
            None => format!("/v1/queries/{id}/results"),
        };
        let (st, page) = call(&s, "GET", &path, None);
        assert_eq!(st, 200, "{page}");
        let rows = page["rows"].as_array().unwrap();
        assert!(rows.len() <= 1000);
        ids.extend(
            rows.iter()
                .map(|r| r["event_id"].as_str().unwrap().to_string()),
        );
        pages += 1;
        match page["next_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(ids.len(), 2500);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "ordered, no duplicates across pages");
    // The same page as Arrow IPC; the whole result as CSV.
    let r = request(
        &s.addr,
        "GET",
        &format!("/v1/queries/{id}/results?format=arrow&max_results=700"),
        Some(TOKEN),
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-next-token"), Some("700"));
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(r.body), None).unwrap();
    let n: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(n, 700);
    let r = request(
        &s.addr,
        "GET",
        &format!("/v1/queries/{id}/results?format=csv"),
        Some(TOKEN),
        None,
    );
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-disposition")
            .unwrap()
            .contains("attachment")
    );
    assert_eq!(String::from_utf8_lossy(&r.body).lines().count(), 2501);

    // Reuse: the same text again comes back SUCCEEDED at once, pointing at the first.
    let (_, again) = call(
        &s,
        "POST",
        "/v1/queries",
        Some(json!({ "sql": "SELECT event_id FROM events ORDER BY event_id" })),
    );
    assert_eq!(again["state"], "SUCCEEDED");
    assert_eq!(again["reused_from"], id.as_str());

    // FAILED: a bad table, and a write (read-only); their results are a conflict.
    let bad = start(&s, "SELECT * FROM evnts");
    let v = wait(&s, &bad);
    assert_eq!(v["state"], "FAILED");
    assert!(v["error"].as_str().unwrap().contains("did you mean"), "{v}");
    let (st, _) = call(&s, "GET", &format!("/v1/queries/{bad}/results"), None);
    assert_eq!(st, 409);
    let w = start(&s, "DROP TABLE events");
    let v = wait(&s, &w);
    assert_eq!(v["state"], "FAILED");
    assert!(v["error"].as_str().unwrap().contains("read-only"), "{v}");

    // QUEUED behind a runaway (concurrency = 1), RUNNING, CANCELLED; then the queue moves.
    let slow = start(&s, RUNAWAY);
    let deadline = Instant::now() + Duration::from_secs(30);
    while call(&s, "GET", &format!("/v1/queries/{slow}"), None).1["state"] != "RUNNING" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let quick = start(&s, "SELECT 1 AS one");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        call(&s, "GET", &format!("/v1/queries/{quick}"), None).1["state"],
        "QUEUED"
    );
    let (st, v) = call(&s, "DELETE", &format!("/v1/queries/{slow}"), None);
    assert_eq!(st, 200);
    assert_eq!(v["state"], "CANCELLED");
    assert_eq!(wait(&s, &slow)["state"], "CANCELLED");
    assert_eq!(wait(&s, &quick)["state"], "SUCCEEDED");
    let (st, _) = call(
        &s,
        "GET",
        "/v1/queries/00000000-0000-0000-0000-000000000000",
        None,
    );
    assert_eq!(st, 404);

    // History survives a restart, and so do the results.
    drop(s);
    let s = serve(&p);
    let (_, hist) = call(&s, "GET", "/v1/queries?limit=100", None);
    let states: Vec<(String, String)> = hist["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["query_id"].as_str().unwrap().to_string(),
                q["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(states.len(), 6, "{states:?}");
    assert!(states.contains(&(id.clone(), "SUCCEEDED".into())));
    assert!(states.contains(&(slow.clone(), "CANCELLED".into())));
    let (st, page) = call(
        &s,
        "GET",
        &format!("/v1/queries/{id}/results?max_results=5"),
        None,
    );
    assert_eq!(st, 200);
    assert_eq!(page["rows"].as_array().unwrap().len(), 5);

    // Execution parameters (Athena's): literals bound to the `?`s, cast to their use, each
    // set of values its own query (not a reuse of another's results).
    let sql = "SELECT count(*) AS n FROM events WHERE total_amount > ? AND status <> ?";
    let mut counts = Vec::new();
    for threshold in ["50", "100.5"] {
        let (st, v) = call(
            &s,
            "POST",
            "/v1/queries",
            Some(json!({ "sql": sql, "parameters": [threshold, "'cancelled'"] })),
        );
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["parameters"][1], "'cancelled'");
        let id = v["query_id"].as_str().unwrap().to_string();
        assert_eq!(wait(&s, &id)["state"], "SUCCEEDED");
        let (_, page) = call(&s, "GET", &format!("/v1/queries/{id}/results"), None);
        let n = page["rows"][0]["n"].as_i64().unwrap();
        let want = p
            .count(&format!(
                "SELECT count(*) FROM events WHERE total_amount > {threshold} AND status <> 'cancelled'"
            ))
            .await;
        assert_eq!(n, want, "{page}");
        counts.push(n);
    }
    assert!(counts[0] > counts[1], "{counts:?}");
    // A parameter is a value, never SQL: refused before anything runs.
    let (st, v) = call(
        &s,
        "POST",
        "/v1/queries",
        Some(json!({ "sql": sql, "parameters": ["(SELECT 1)", "'x'"] })),
    );
    assert_eq!(st, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("not a literal"),
        "{v}"
    );
}

/// The real ADBC Flight SQL driver (PyPI) against the Flight SQL endpoint: auth, queries
/// (Athena forms included), read-only refusal, and the catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flight_sql_through_adbc() {
    let p = project();
    p.run().await;
    let s = serve(&p);
    let v = python_driver(&s, "adbc_flight.py");
    assert!(
        v["unauthenticated"]
            .as_str()
            .unwrap()
            .contains("nauthenticated"),
        "{v}"
    );
    assert_eq!(v["count"], 2500);
    assert_eq!(v["columns"], json!(["dt", "n"]));
    let want: Vec<Value> = p
        .query_csv("SELECT dt, count(*) AS n FROM events GROUP BY dt ORDER BY dt")
        .await[1..]
        .iter()
        .map(|l| {
            let (d, n) = l.split_once(',').unwrap();
            json!([d, n.parse::<i64>().unwrap()])
        })
        .collect();
    assert_eq!(v["days"], json!(want));
    let items = p.count("SELECT sum(cardinality(items)) FROM events").await;
    assert_eq!(v["items"], items);
    assert!(v["drop"].as_str().unwrap().contains("read-only"), "{v}");
    // Prepared statements with bound parameters answer as the literal query does.
    let by_customer = p
        .count(&format!(
            "SELECT count(*) FROM events WHERE customer_id = {}",
            v["customer"]
        ))
        .await;
    assert!(by_customer >= 1);
    assert_eq!(v["by_customer"], by_customer, "{v}");
    for (i, threshold) in ["10.0", "100.0"].iter().enumerate() {
        let n = p
            .count(&format!(
                "SELECT count(*) FROM events WHERE country = '{}' AND total_amount > {threshold}",
                v["country"].as_str().unwrap()
            ))
            .await;
        assert_eq!(v["by_country"][i], n, "{v}");
    }
    assert!(
        v["by_country"][0].as_i64() > v["by_country"][1].as_i64(),
        "{v}"
    );
    assert_eq!(v["param_types"], json!(["int64", "string"]), "{v}");
    assert_eq!(v["catalogs"], json!(["tributary"]));
    assert_eq!(v["tables"], json!(["events", "events_dlq"]));
    assert_eq!(v["vendor"], "Tributary");
}

/// The notebooks in `notebooks/` run headless (nbclient) against a server over the demo
/// lake, through Flight SQL (ADBC) and the HTTP API; any failing cell fails the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notebooks_run_headless() {
    let python = std::env::var("TRIBUTARY_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("TRIBUTARY_TEST_PYTHON is not set: run the tests with `bash scripts/test.sh`, which installs nbclient")
    });
    let p = TempProject::demo();
    let demo = Command::new(tributary_bin())
        .current_dir(p.path())
        .args([
            "demo",
            "--records",
            "20000",
            "--files",
            "2",
            "--no-progress",
        ])
        .output()
        .unwrap();
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let s = serve(&p);
    let out = p.path().join("executed");
    let plot = p.path().join("revenue.png");
    let run = Command::new(python)
        .arg(tributary_tests::repo_root().join("tests/python/run_notebooks.py"))
        .arg(tributary_tests::repo_root().join("notebooks"))
        .arg(&out)
        .env("TRIBUTARY_FLIGHT", &s.flight)
        .env("TRIBUTARY_HTTP", format!("http://{}", s.addr))
        .env("TRIBUTARY_TOKEN", TOKEN)
        .env("TRIBUTARY_PLOT", &plot)
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "{log}");
    assert_eq!(log.matches("ok     ").count(), 3, "{log}");
    let png = std::fs::read(&plot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "the revenue plot was drawn");
}
