//! Lambda handlers run locally (`tributary invoke`): S3 notifications — direct, in SQS, in
//! SNS-in-SQS — read just the named objects, and a repeated notification adds nothing;
//! scheduled events run their job once per slot however often they are delivered; Kinesis
//! batches commit exactly once, and a forged sequence number is refused.

use std::process::{Command, Output};

use serde_json::{Value, json};
use tributary_tests::aws::{create_bucket, storage_toml, unique};
use tributary_tests::lambda::{batch_item_failures, kinesis_event};
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

/// Puts the project's data files, in order, to `bucket` under `keys`; the bucket's store.
async fn put_as(
    p: &TempProject,
    bucket: &str,
    keys: &[&str],
) -> std::sync::Arc<dyn object_store::ObjectStore> {
    let store = tributary_connectors::aws::s3_store(bucket, &tributary_tests::aws::settings())
        .await
        .unwrap();
    for (f, k) in ndjson_files(&p.data_dir()).iter().zip(keys) {
        object_store::ObjectStoreExt::put(
            store.as_ref(),
            &object_store::path::Path::from(*k),
            std::fs::read(f).unwrap().into(),
        )
        .await
        .unwrap();
    }
    store
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
    put_as(
        &p,
        &bucket,
        &["in/a.ndjson", "in/b c.ndjson", "in/c.ndjson"],
    )
    .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_batches_commit_exactly_once_and_report_failures() {
    let stream = unique("lambda");
    let client = tributary_tests::aws::kinesis().await;
    tributary_tests::aws::create_stream(&client, &stream, 2).await;
    let config = format!(
        "[project]\nlake = \"lake\"\n\n{}\n[pipelines.events]\ntable = \"events\"\nsource = {{ type = \"kinesis\", stream = \"{stream}\" }}\n",
        storage_toml()
    );
    let p = TempProject::new(&config, &[("events", EVENTS_SCHEMA)]);
    let m = p.gen_events(3000, 1, 0.01, 93);
    let bad = m.count("truncated") + m.count("wrong_type") + m.count("missing_field");
    tributary_tests::aws::send(&p, &stream, &["data"]);
    let all = tributary_tests::aws::read_all(&client, &stream).await;
    assert_eq!(all.len() as u64, 3000 + bad);
    // Batches of 400 per shard, in order, as the mapping would invoke.
    let mut by_shard: std::collections::BTreeMap<String, Vec<(String, String, Vec<u8>)>> =
        Default::default();
    for r in all {
        by_shard.entry(r.0.clone()).or_default().push(r);
    }
    // A forged record (a 5,000-digit sequence number) is refused and moves no position:
    // the real batches below are all written, none skipped as already committed.
    let shard = by_shard.keys().next().unwrap().clone();
    let forged = vec![(shard, "9".repeat(5000), b"{}".to_vec())];
    let (o, _) = invoke(&p, &kinesis_event(&stream, &forged));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(err.contains("is not a Kinesis sequence number"), "{err}");
    let mut written = 0;
    for recs in by_shard.values() {
        let chunks: Vec<&[(String, String, Vec<u8>)]> = recs.chunks(400).collect();
        for (i, c) in chunks.iter().enumerate() {
            let (o, v) = invoke(&p, &kinesis_event(&stream, c));
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert!(batch_item_failures(&v).is_empty(), "{v}");
            // One CloudWatch EMF record per invocation, with the answer's correlation id.
            let log = String::from_utf8_lossy(&o.stderr).to_string();
            let emf: Value = log
                .lines()
                .find(|l| l.starts_with("{\"_aws\""))
                .map(|l| serde_json::from_str(l).unwrap())
                .unwrap_or_else(|| panic!("no EMF line in {log}"));
            assert_eq!(
                emf["_aws"]["CloudWatchMetrics"][0]["Namespace"],
                "Tributary"
            );
            assert_eq!(emf["RecordsIn"], c.len());
            let bytes: usize = c.iter().map(|(_, _, d)| d.len()).sum();
            assert_eq!(emf["Bytes"].as_f64(), Some(bytes as f64), "{emf}");
            // Its records reached the stream a minute before (the event says so).
            let age = emf["IteratorAgeMs"].as_u64().unwrap();
            assert!((60_000..120_000).contains(&age), "{emf}");
            // Each batch commits once; the commit took some time.
            assert!(emf["CommitLatencyMs"].as_f64().unwrap() > 0.0, "{emf}");
            assert_eq!(emf["Pipeline"], "events");
            assert_eq!(emf["correlation_id"], v["correlation_id"]);
            written +=
                v["records_written"].as_u64().unwrap() + v["dead_lettered"].as_u64().unwrap();
            if i == 1 {
                // Lambda retries a batch (the function timed out after committing): nothing new.
                let (_, v) = invoke(&p, &kinesis_event(&stream, c));
                assert_eq!(v["already_committed"], c.len(), "{v}");
                assert_eq!(v["records_written"], 0);
                // A retry that starts inside a committed batch and runs into the next: only the
                // uncommitted part is written.
                if let Some(next) = chunks.get(2) {
                    let mut overlap = c[200..].to_vec();
                    overlap.extend_from_slice(&next[..100]);
                    let (_, v) = invoke(&p, &kinesis_event(&stream, &overlap));
                    assert_eq!(v["already_committed"], 200, "{v}");
                    written += v["records_written"].as_u64().unwrap()
                        + v["dead_lettered"].as_u64().unwrap();
                }
            }
        }
    }
    assert_eq!(written, 3000 + bad);
    assert_eq!(p.count("SELECT count(*) FROM events").await, 3000);
    assert_eq!(
        p.count("SELECT count(DISTINCT event_id) FROM events").await,
        3000
    );
    assert_eq!(p.count("SELECT count(*) FROM events_dlq").await, bad as i64);
    // A failure (the lake's bucket does not exist): nothing committed, and the answer names
    // the lowest sequence number for Lambda to retry from.
    let first = by_shard.values().next().unwrap()[..10].to_vec();
    let path = p.path().join("fail.json");
    std::fs::write(&path, kinesis_event(&stream, &first).to_string()).unwrap();
    let o = Command::new(tributary_bin())
        .args([
            "--no-progress",
            "--lake",
            "s3://no-such-bucket-for-tributary/lake",
            "invoke",
            "--event",
        ])
        .arg(&path)
        .current_dir(p.path())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    assert_eq!(
        batch_item_failures(&v),
        vec![first[0].1.clone()],
        "{v} {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A Function URL / API Gateway (payload 2.0) request, as Lambda delivers it.
fn http_event(
    method: &str,
    path: &str,
    query: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Value {
    let mut headers =
        json!({"content-type": "application/json", "host": "x.lambda-url.us-east-1.on.aws"});
    if let Some(t) = token {
        headers["authorization"] = json!(format!("Bearer {t}"));
    }
    json!({"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": headers,
        "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1",
            "sourceIp": "198.51.100.7", "userAgent": "test"}, "requestId": "r", "stage": "$default"},
        "body": body, "isBase64Encoded": false})
}

fn invoke_with_token(p: &TempProject, event: &Value) -> Value {
    let path = p.path().join(format!("event-{}.json", fastrand::u32(..)));
    std::fs::write(&path, event.to_string()).unwrap();
    let o = Command::new(tributary_bin())
        .args(["--no-progress", "invoke", "--event"])
        .arg(&path)
        .env("TRIBUTARY_TOKEN", "s3cret")
        .current_dir(p.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn query_requests_go_through_the_http_api() {
    let p = TempProject::events("");
    p.gen_events(500, 1, 0.0, 97);
    assert!(
        Command::new(tributary_bin())
            .args(["--no-progress", "run"])
            .current_dir(p.path())
            .status()
            .unwrap()
            .success()
    );
    // POST answers once the query has finished (a frozen container would not run it on).
    let sql = json!({"sql": "SELECT count(*) AS n FROM events"}).to_string();
    let v = invoke_with_token(
        &p,
        &http_event("POST", "/v1/queries", "", Some("s3cret"), Some(&sql)),
    );
    assert_eq!(v["statusCode"], 200, "{v}");
    assert!(v["headers"]["x-correlation-id"].is_string(), "{v}");
    let info: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
    assert_eq!(info["state"], "SUCCEEDED", "{info}");
    let id = info["query_id"].as_str().unwrap();
    // Another invocation (another process: another container) pages through the results.
    let v = invoke_with_token(
        &p,
        &http_event(
            "GET",
            &format!("/v1/queries/{id}/results"),
            "format=json",
            Some("s3cret"),
            None,
        ),
    );
    assert_eq!(v["statusCode"], 200, "{v}");
    let page: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
    assert_eq!(page["rows"][0]["n"], 500, "{page}");
    // Arrow IPC comes back base64-encoded, as API Gateway needs binary bodies.
    let v = invoke_with_token(
        &p,
        &http_event(
            "GET",
            &format!("/v1/queries/{id}/results"),
            "format=arrow",
            Some("s3cret"),
            None,
        ),
    );
    assert_eq!(v["isBase64Encoded"], true, "{v}");
    // The bearer token guards it as it guards `tributary serve`.
    let v = invoke_with_token(&p, &http_event("GET", "/v1/queries", "", None, None));
    assert_eq!(v["statusCode"], 401);
    let v = invoke_with_token(
        &p,
        &http_event("GET", "/v1/queries", "", Some("wrong"), None),
    );
    assert_eq!(v["statusCode"], 403);
}

/// Keys of the staged segments of pipeline `events` in `dir` (`raw` or `out`).
async fn staged_keys(store: &dyn object_store::ObjectStore, dir: &str) -> Vec<String> {
    use futures::TryStreamExt;
    let prefix = object_store::path::Path::from(format!("lake/_tributary/staging/events/{dir}"));
    let mut keys: Vec<String> = store
        .list(Some(&prefix))
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.location.to_string())
        .filter(|k| k.ends_with(".arrow"))
        .collect();
    keys.sort();
    keys
}

/// S3 notifications for `keys`, in one SQS message each, as a queue batch delivers them.
fn sqs_batch(bucket: &str, keys: &[String]) -> Value {
    let records: Vec<Value> = keys
        .iter()
        .map(|k| json!({"eventSource": "aws:sqs", "body": s3_event(bucket, k).to_string()}))
        .collect();
    json!({ "Records": records })
}

/// `split_stages`: the ingest, transform and sink functions, each started by its own
/// notifications, deliver every record once — through repeated deliveries, and segments
/// arriving at the sink out of order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_stage_functions_deliver_exactly_once() {
    let bucket = unique("stages");
    create_bucket(&bucket);
    let config = format!(
        "[project]\nlake = \"s3://{bucket}/lake\"\n\n{}\n[pipelines.events]\ntable = \"events\"\nbatch_size = 300\nsource = {{ type = \"s3\", url = \"s3://{bucket}/in/\" }}\n[pipelines.events.lambda]\nsplit_stages = true\n",
        storage_toml()
    );
    let p = TempProject::new(&config, &[("events", EVENTS_SCHEMA)]);
    p.gen_events(3000, 3, 0.02, 93);
    let (want, bad) = tributary_tests::sent(&p);
    let keys = ["in/a.ndjson", "in/b.ndjson", "in/c.ndjson"];
    let store = put_as(&p, &bucket, &keys).await;
    let ok = |o: &Output| assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Ingest function: two objects in one queue batch are staged, not written.
    let (o, v) = invoke(&p, &sqs_batch(&bucket, &[keys[0].into(), keys[1].into()]));
    ok(&o);
    assert_eq!(v["runs"][0]["stage"], "ingest", "{v}");
    let raw = staged_keys(store.as_ref(), "raw").await;
    assert!(raw.len() >= 6, "{raw:?}");
    assert_eq!(v["runs"][0]["segments"], raw.len(), "{v}");

    // Transform functions: the later half first, then the earlier; one batch delivered twice.
    let (first, second) = raw.split_at(raw.len() / 2);
    for batch in [second, first, second] {
        let (o, v) = invoke(&p, &sqs_batch(&bucket, batch));
        ok(&o);
        assert_eq!(v["runs"][0]["stage"], "transform", "{v}");
    }
    assert!(staged_keys(store.as_ref(), "raw").await.is_empty());
    // Each segment's rows, and its dead letters beside it (their notifications are ignored).
    let out = staged_keys(store.as_ref(), "out").await;
    let dead = out.iter().filter(|k| k.ends_with(".dlq.arrow")).count();
    assert!(dead > 0);
    assert_eq!(out.len() - dead, raw.len());

    // Sink function, told of the last segment only: it commits every ready one, in order.
    let last = out
        .iter()
        .rfind(|k| !k.ends_with(".dlq.arrow"))
        .cloned()
        .unwrap();
    let early: Vec<String> = out.iter().filter(|k| **k != last).cloned().collect();
    let (o, v) = invoke(&p, &sqs_batch(&bucket, &[last]));
    ok(&o);
    assert_eq!(v["runs"][0]["stage"], "sink", "{v}");
    let committed = v["runs"][0]["segments"].as_u64().unwrap();
    assert_eq!(committed as usize, raw.len(), "{v}");
    let (o, v) = invoke(&p, &sqs_batch(&bucket, &early));
    ok(&o);
    assert_eq!(
        v["runs"][0]["segments"], 0,
        "a repeated delivery adds nothing: {v}"
    );
    assert!(staged_keys(store.as_ref(), "out").await.is_empty());

    // The third object, through all three functions; then every notification again.
    let (o, _) = invoke(&p, &s3_event(&bucket, keys[2]));
    ok(&o);
    let raw2 = staged_keys(store.as_ref(), "raw").await;
    assert!(!raw2.is_empty());
    ok(&invoke(&p, &sqs_batch(&bucket, &raw2)).0);
    // This time the sink's notifications are lost: its scheduled sweep commits them.
    let out2 = staged_keys(store.as_ref(), "out").await;
    assert!(!out2.is_empty());
    let (o, v) = invoke(
        &p,
        &json!({"tributary": {"stage": "sink", "pipeline": "events"}}),
    );
    ok(&o);
    assert_eq!(v["runs"][0]["stage"], "sink", "{v}");
    assert!(v["runs"][0]["segments"].as_u64().unwrap() > 0, "{v}");
    let left = staged_keys(store.as_ref(), "out").await;
    assert!(left.is_empty(), "{left:?}");
    let (o, v) = invoke(&p, &sqs_batch(&bucket, &keys.map(String::from)));
    ok(&o);
    assert_eq!(
        v["runs"][0]["segments"], 0,
        "re-ingesting read objects: {v}"
    );
    let everything: Vec<String> = raw
        .iter()
        .chain(&out)
        .chain(&raw2)
        .chain(&out2)
        .cloned()
        .collect();
    ok(&invoke(&p, &sqs_batch(&bucket, &everything)).0);
    tributary_tests::assert_exactly_once(&p, &want, Some(bad)).await;
}
