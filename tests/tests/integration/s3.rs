//! S3 against the real S3-compatible test server: an S3-prefix source (plain and compressed
//! objects, resumed by key + ETag) and the lake itself on S3.

use std::io::Write;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tributary_tests::aws::{create_bucket, settings, storage_toml, unique};
use tributary_tests::{EVENTS_SCHEMA, TempProject, ndjson_files};

async fn bucket() -> (String, Arc<dyn ObjectStore>) {
    let name = unique("trib");
    create_bucket(&name);
    let store = tributary_connectors::aws::s3_store(&name, &settings())
        .await
        .unwrap();
    (name, store)
}

fn gz(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_prefix_source_reads_plain_and_compressed_objects_once() {
    let (bucket, store) = bucket().await;
    let config = format!(
        "[project]\nlake = \"lake\"\n\n{}\n[pipelines.events]\ntable = \"events\"\nsource = {{ type = \"s3\", url = \"s3://{bucket}/incoming/\" }}\n",
        storage_toml()
    );
    let p = TempProject::new(&config, &[("events", EVENTS_SCHEMA)]);
    let m = p.gen_events(6000, 3, 0.02, 21);
    let bad = m.count("truncated") + m.count("wrong_type") + m.count("missing_field");
    let files = ndjson_files(&p.data_dir());
    // One plain, one gzip, one zstd object; plus an object outside the prefix.
    for (i, f) in files.iter().enumerate() {
        let bytes = std::fs::read(f).unwrap();
        let (key, body) = match i {
            0 => ("incoming/a.ndjson".to_string(), bytes),
            1 => ("incoming/b.ndjson.gz".to_string(), gz(&bytes)),
            _ => (
                "incoming/c.ndjson.zst".to_string(),
                zstd::encode_all(bytes.as_slice(), 3).unwrap(),
            ),
        };
        store
            .put(&ObjectPath::from(key), PutPayload::from(body))
            .await
            .unwrap();
    }
    store
        .put(
            &ObjectPath::from("elsewhere/x.ndjson"),
            PutPayload::from_static(b"{\"not\":\"read\"}\n"),
        )
        .await
        .unwrap();

    let s = &p.run().await[0];
    assert_eq!(s.files, 3);
    assert_eq!(s.records_written, 6000);
    assert_eq!(s.dead_lettered, bad);
    assert_eq!(p.count("SELECT count(*) FROM events").await, 6000);
    assert_eq!(
        p.count("SELECT count(DISTINCT event_id) FROM events").await,
        6000
    );
    // DLQ rows name the object (key + ETag).
    let sources = p
        .query_csv("SELECT DISTINCT split_part(source, '#', 1) AS s FROM events_dlq ORDER BY s")
        .await;
    assert!(
        sources[1..]
            .iter()
            .all(|s| s.starts_with(&format!("s3://{bucket}/incoming/")))
    );

    // Re-run: nothing new. A new object: only it is read.
    let again = &p.run().await[0];
    assert_eq!(again.records_read, 0);
    assert!(
        again.files_skipped >= 1,
        "plain objects read to the end are skipped unopened"
    );
    let line = "{\"event_id\":\"new-1\",\"event_time\":\"2024-06-09T10:00:00Z\",\"customer_id\":1,\"total_amount\":1.5}\n";
    store
        .put(
            &ObjectPath::from("incoming/d.ndjson"),
            PutPayload::from(line.as_bytes().to_vec()),
        )
        .await
        .unwrap();
    let third = &p.run().await[0];
    assert_eq!(third.records_read, 1);
    assert_eq!(p.count("SELECT count(*) FROM events").await, 6001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lake_on_s3_writes_queries_and_reruns_add_nothing() {
    let (bucket, store) = bucket().await;
    let config = format!(
        "[project]\nlake = \"s3://{bucket}/lake\"\n\n{}\n[pipelines.events]\ntable = \"events\"\nsource = {{ type = \"file\", path = \"data/*.ndjson\" }}\n[pipelines.events.sink]\nflush_rows = 2000\n",
        storage_toml()
    );
    let p = TempProject::new(&config, &[("events", EVENTS_SCHEMA)]);
    let m = p.gen_events(5000, 2, 0.02, 22);
    let bad = m.count("truncated") + m.count("wrong_type") + m.count("missing_field");
    let s = &p.run().await[0];
    assert_eq!(s.records_written, 5000);
    assert!(s.commits >= 2, "several commits: {}", s.commits);
    // Data files and the Delta log are in the bucket, nothing local.
    assert!(!p.path().join("lake").exists());
    let log: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(
        store.list(Some(&ObjectPath::from("lake/events/_delta_log"))),
    )
    .await
    .unwrap();
    assert!(log.len() >= 3, "commits in the bucket: {}", log.len());
    assert_eq!(p.count("SELECT count(*) FROM events").await, 5000);
    assert_eq!(p.count("SELECT count(*) FROM events_dlq").await, bad as i64);
    let again = &p.run().await[0];
    assert_eq!(again.records_written, 0);
    assert_eq!(p.count("SELECT count(*) FROM events").await, 5000);
    let lake = p.lake().await;
    assert_eq!(
        lake.tables().await.unwrap(),
        vec!["events".to_string(), "events_dlq".to_string()]
    );

    // The CLI sees the same lake.
    let out = std::process::Command::new(tributary_tests::tributary_bin())
        .current_dir(p.path())
        .args([
            "query",
            "SELECT count(*) AS n FROM events",
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "n\n5000");
}

/// Two pipelines writing one table of an S3 lake at once, from its creation on: the
/// server's conditional put lets one commit win each version; the other retries on top (or
/// uses the table the other created), so no commit is lost and nothing is written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_s3_lose_nothing() {
    let (bucket, _store) = bucket().await;
    let config = format!(
        "[project]\nlake = \"s3://{bucket}/lake\"\n\n{}\n[pipelines.a]\ntable = \"events\"\nsource = {{ type = \"file\", path = \"data/a/*.ndjson\" }}\n[pipelines.a.sink]\nflush_rows = 500\n\n[pipelines.b]\ntable = \"events\"\nsource = {{ type = \"file\", path = \"data/b/*.ndjson\" }}\n[pipelines.b.sink]\nflush_rows = 500\n",
        storage_toml()
    );
    let p = TempProject::new(&config, &[("events", EVENTS_SCHEMA)]);
    p.gen_events(4000, 2, 0.0, 23);
    for (i, f) in ndjson_files(&p.data_dir()).iter().enumerate() {
        let dir = p.data_dir().join(if i == 0 { "a" } else { "b" });
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::rename(f, dir.join("part.ndjson")).unwrap();
    }
    let cfg = p.config().await;
    let lake = p.lake().await;
    let opts = Default::default();
    let (ra, rb) = tokio::join!(
        tributary::runtime::run_pipeline(&cfg.pipelines[0], &lake, &opts),
        tributary::runtime::run_pipeline(&cfg.pipelines[1], &lake, &opts)
    );
    assert_eq!(
        ra.unwrap().records_written + rb.unwrap().records_written,
        4000
    );
    assert_eq!(p.count("SELECT count(*) FROM events").await, 4000);
    assert_eq!(
        p.count("SELECT count(DISTINCT event_id) FROM events").await,
        4000
    );
}

/// With `poll_interval_secs`, a running pipeline picks up objects that arrive later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_source_polls_for_new_objects() {
    let (bucket, store) = bucket().await;
    let config = format!(
        "[project]\nlake = \"lake\"\n\n{}\n[pipelines.events]\ntable = \"events\"\nsource = {{ type = \"s3\", url = \"s3://{bucket}/in\", poll_interval_secs = 1 }}\n[pipelines.events.sink]\nflush_interval_secs = 1\n",
        storage_toml()
    );
    let p = TempProject::new(&config, &[("events", EVENTS_SCHEMA)]);
    p.gen_events(2000, 2, 0.0, 24);
    let files = ndjson_files(&p.data_dir());
    let put = |i: usize| {
        let (store, f) = (store.clone(), files[i].clone());
        async move {
            store
                .put(
                    &ObjectPath::from(format!("in/{i}.ndjson")),
                    PutPayload::from(std::fs::read(f).unwrap()),
                )
                .await
                .unwrap();
        }
    };
    put(0).await;
    let child = std::process::Command::new(tributary_tests::tributary_bin())
        .current_dir(p.path())
        .args(["run", "--no-progress", "--idle-exit", "5"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The second object arrives once the first is committed (waited for, not slept on: a
    // busy machine may take longer than any fixed pause to start and read).
    tributary_tests::crash::wait_for_version(
        &p.path().join("lake/events"),
        1,
        std::time::Duration::from_secs(120),
        "the first object was never committed",
    );
    put(1).await;
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("new object"), "{log}");
    assert_eq!(p.count("SELECT count(*) FROM events").await, 2000);
    assert_eq!(
        p.count("SELECT count(DISTINCT event_id) FROM events").await,
        2000
    );
}
