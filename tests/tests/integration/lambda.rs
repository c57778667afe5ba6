//! Lambda handlers run locally (`tributary invoke`): S3 notifications — direct, in SQS, in
//! SNS-in-SQS — read just the named objects, and a repeated notification adds nothing;
//! scheduled events run their job once per slot however often they are delivered.

use std::process::{Command, Output};

use serde_json::{Value, json};
use tributary_tests::aws::{create_bucket, storage_toml, unique};
use tributary_tests::{EVENTS_SCHEMA, TempProject, ndjson_files, tributary_bin};

fn invoke(p: &TempProject, event: &Value) -> (Output, Value) {
    let path = p.path().join(format!("event-{}.json", fastrand::u32(..)));
    std::fs::write(&path, event.to_string()).unwrap();
    let o = Command::new(tributary_bin())
        .args(["--no-progress", "invoke", "--event"])
        .arg(&path)
        .current_dir(p.path())
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o, v)
}

fn s3_event(bucket: &str, encoded_key: &str) -> Value {
    json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": encoded_key}}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_notifications_read_the_named_objects_once() {
    let bucket = unique("lambda");
    create_bucket(&bucket);
    let config = format!(
        "[project]\nlake = \"lake\"\n\n{}\n[pipelines.events]\ntable = \"events\"\nsource = {{ type = \"s3\", url = \"s3://{bucket}/in/\" }}\n",
        storage_toml()
    );
    let p = TempProject::new(&config, &[("events", EVENTS_SCHEMA)]);
    p.gen_events(3000, 3, 0.0, 91);
    let files = ndjson_files(&p.data_dir());
    let store = tributary_connectors::aws::s3_store(&bucket, &tributary_tests::aws::settings())
        .await
        .unwrap();
    let keys = ["in/a.ndjson", "in/b c.ndjson", "in/c.ndjson"];
    for (f, k) in files.iter().zip(keys) {
        object_store::ObjectStoreExt::put(
            store.as_ref(),
            &object_store::path::Path::from(k),
            std::fs::read(f).unwrap().into(),
        )
        .await
        .unwrap();
    }
    // Direct S3 event for one object: just its records.
    let (o, v) = invoke(&p, &s3_event(&bucket, "in/a.ndjson"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(v["runs"][0]["records_written"], 1000, "{v}");
    assert_eq!(p.count("SELECT count(*) FROM events").await, 1000);
    // The same notification again (S3 delivers at least once): nothing added.
    let (_, v) = invoke(&p, &s3_event(&bucket, "in/a.ndjson"));
    assert_eq!(v["runs"][0]["records_written"], 0, "{v}");
    assert_eq!(p.count("SELECT count(*) FROM events").await, 1000);
    // SNS → SQS envelope, URL-encoded key with a space, and an object no pipeline reads.
    let inner = json!({"Records": [
        s3_event(&bucket, "in/b+c.ndjson")["Records"][0].clone(),
        s3_event(&bucket, "elsewhere/x.ndjson")["Records"][0].clone()
    ]});
    let sqs = json!({"Records": [{"eventSource": "aws:sqs",
        "body": json!({"Type": "Notification", "Message": inner.to_string()}).to_string()}]});
    let (o, v) = invoke(&p, &sqs);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(v["runs"][0]["records_written"], 1000, "{v}");
    assert_eq!(
        v["ignored"],
        json!([format!("s3://{bucket}/elsewhere/x.ndjson")])
    );
    // Plain SQS for the last object: every record once.
    let sqs = json!({"Records": [{"eventSource": "aws:sqs", "body": s3_event(&bucket, "in/c.ndjson").to_string()}]});
    invoke(&p, &sqs);
    assert_eq!(
        p.count("SELECT count(DISTINCT event_id) FROM events").await,
        3000
    );
    assert_eq!(p.count("SELECT count(*) FROM events").await, 3000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_events_run_their_job_once_per_slot() {
    let p = TempProject::events("");
    p.gen_events(1000, 1, 0.0, 92);
    p.run().await;
    std::fs::create_dir_all(p.path().join("jobs")).unwrap();
    std::fs::write(
        p.path().join("jobs/daily.toml"),
        "schedule = \"cron(15 2 * * ? *)\"\nmode = \"overwrite\"\nsql = \"SELECT dt, count(*) AS n FROM events GROUP BY dt\"\n",
    )
    .unwrap();
    let event = json!({"source": "aws.scheduler", "detail-type": "Scheduled Event",
        "time": "2026-01-01T02:15:00Z", "tributary": {"job": "daily"}});
    let (o, v) = invoke(&p, &event);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(v["runs"][0]["state"], "SUCCEEDED", "{v}");
    assert_eq!(p.count("SELECT sum(n) FROM daily").await, 1000);
    // EventBridge delivers at least once: the second delivery of the slot runs nothing.
    let (o, v) = invoke(&p, &event);
    assert!(o.status.success());
    assert!(
        v["skipped"].as_str().unwrap().contains("already ran"),
        "{v}"
    );
    assert_eq!(
        p.count("SELECT count(DISTINCT run_id) FROM job_runs WHERE job = 'daily'")
            .await,
        1
    );
    // A job that fails fails the invocation (so the schedule's retry policy applies).
    std::fs::write(
        p.path().join("jobs/bad.toml"),
        "schedule = \"rate(1 hour)\"\nsql = \"SELECT CAST(country AS INT) AS c FROM events\"\n",
    )
    .unwrap();
    let (o, _) = invoke(
        &p,
        &json!({"time": "2026-01-01T03:00:00Z", "tributary": {"job": "bad"}}),
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("job `bad` FAILED"));
}
