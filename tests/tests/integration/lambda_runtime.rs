//! The deployed shape: `tributary` started as `bootstrap` under a real Lambda Runtime API
//! (cargo-lambda's emulator), initialised once, serving one invocation after another —
//! Kinesis batches (a retried batch adds nothing), scheduled jobs, and bad events answered
//! as Lambda errors without taking the container down.

use serde_json::json;
use tributary_tests::aws::{storage_toml, unique};
use tributary_tests::lambda::{RuntimeEmulator, batch_item_failures, kinesis_event};
use tributary_tests::{EVENTS_SCHEMA, TempProject, ndjson_files, tributary_bin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_serves_invocations_through_the_runtime_api() {
    let stream = unique("runtime");
    let config = format!(
        "[project]\nlake = \"lake\"\n\n{}\n[pipelines.events]\ntable = \"events\"\nsource = {{ type = \"kinesis\", stream = \"{stream}\" }}\n",
        storage_toml()
    );
    let p = TempProject::new(&config, &[("events", EVENTS_SCHEMA)]);
    std::fs::create_dir_all(p.path().join("jobs")).unwrap();
    std::fs::write(
        p.path().join("jobs/daily.toml"),
        "schedule = \"cron(15 2 * * ? *)\"\nmode = \"overwrite\"\nsql = \"SELECT dt, count(*) AS n FROM events GROUP BY dt\"\n",
    )
    .unwrap();
    p.gen_events(900, 1, 0.0, 94);
    let lines: Vec<Vec<u8>> = ndjson_files(&p.data_dir())
        .iter()
        .flat_map(|f| {
            std::fs::read(f)
                .unwrap()
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(lines.len(), 900);
    let records: Vec<(String, String, Vec<u8>)> = lines
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            (
                "shardId-000000000000".to_string(),
                format!("4960{:052}", 1000 + i),
                l,
            )
        })
        .collect();

    // The function as Lambda starts it: a binary named `bootstrap`, no arguments.
    let emu = RuntimeEmulator::start();
    let bootstrap = p.path().join("bootstrap");
    std::os::unix::fs::symlink(tributary_bin(), &bootstrap).unwrap();
    let mut function = emu.start_function(&bootstrap, p.path(), &[("TRIBUTARY_LOG", "info")]);

    // Two batches of the shard, then the second again (Lambda retrying after a timeout).
    for batch in records.chunks(450) {
        let r = emu.invoke(&kinesis_event(&stream, batch));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        assert!(batch_item_failures(&v).is_empty(), "{v}");
        assert_eq!(v["records_written"], 450, "{v}");
        assert!(v["correlation_id"].as_str().is_some_and(|c| !c.is_empty()));
    }
    let v = emu.invoke(&kinesis_event(&stream, &records[450..])).json();
    assert_eq!(v["already_committed"], 450, "{v}");
    assert_eq!(v["records_written"], 0, "{v}");
    assert_eq!(p.count("SELECT count(*) FROM events").await, 900);
    assert_eq!(
        p.count("SELECT count(DISTINCT event_id) FROM events").await,
        900
    );

    // A bad event is a Lambda error with our class as its type; the container lives on.
    let r = emu.invoke(&json!({"hello": "world"}));
    assert_eq!(r.status, 500, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["errorType"], "Tributary.UserError");
    assert!(
        r.json()["errorMessage"]
            .as_str()
            .unwrap()
            .contains("cannot tell what this event is")
    );

    // An EventBridge Scheduler event runs its job; a repeated delivery of the slot does not.
    let event = json!({"source": "aws.scheduler", "detail-type": "Scheduled Event",
        "time": "2026-01-01T02:15:00Z", "tributary": {"job": "daily"}});
    let v = emu.invoke(&event).json();
    assert_eq!(v["runs"][0]["state"], "SUCCEEDED", "{v}");
    assert!(
        emu.invoke(&event).json()["skipped"]
            .as_str()
            .unwrap()
            .contains("already ran")
    );
    assert_eq!(p.count("SELECT sum(n) FROM daily").await, 900);

    // One process served all seven invocations, initialised once.
    assert!(function.try_wait().unwrap().is_none(), "bootstrap exited");
    function.kill().unwrap();
    function.wait().unwrap();
    let log = emu.function_log();
    assert_eq!(
        log.matches("lambda runtime ready").count(),
        1,
        "init once per container: {log}"
    );
    // One CloudWatch EMF line per completed invocation (the bad event has none).
    assert_eq!(log.matches("\"CloudWatchMetrics\"").count(), 5, "{log}");
}

#[test]
fn lambda_outside_a_runtime_says_how_to_run_locally() {
    let p = TempProject::events("");
    let o = std::process::Command::new(tributary_bin())
        .arg("lambda")
        .current_dir(p.path())
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("AWS_LAMBDA_RUNTIME_API"), "{err}");
    assert!(err.contains("tributary invoke"), "{err}");
}
