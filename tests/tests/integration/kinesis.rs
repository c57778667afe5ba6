//! Kinesis against the real Kinesis-compatible test server: `tributary send` → stream →
//! `tributary run` → lake, exactly once; resume after the committed sequence numbers;
//! resharding while running; KPL aggregates; two processes sharing the shards.

use std::collections::BTreeMap;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use tributary_tests::aws::{create_stream, kinesis, read_all, send, storage_toml, unique};
use tributary_tests::{
    EVENTS_SCHEMA, TempProject, assert_exactly_once, ndjson_files, sent, tributary_bin,
};

fn project(stream: &str, extra: &str) -> TempProject {
    project_on(&storage_toml(), stream, extra)
}

fn project_on(storage: &str, stream: &str, extra: &str) -> TempProject {
    let config = format!(
        "[project]\nlake = \"lake\"\n\n{}\n[pipelines.events]\ntable = \"events\"\nsource = {{ type = \"kinesis\", stream = \"{stream}\", discovery_interval_secs = 1, lease_ttl_secs = 6, idle_poll_ms = 200 }}\n{extra}\n[pipelines.events.sink]\nflush_interval_secs = 1\n",
        storage
    );
    TempProject::new(&config, &[("events", EVENTS_SCHEMA)])
}

fn spawn_run(p: &TempProject, idle: &str) -> Child {
    Command::new(tributary_bin())
        .current_dir(p.path())
        .args(["run", "--no-progress", "--idle-exit", idle])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> Output {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "run failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Last sequence number of each shard, read directly from the server.
async fn last_sequences(stream: &str) -> BTreeMap<String, String> {
    let client = kinesis().await;
    let mut last = BTreeMap::new();
    for (shard, seq, _) in read_all(&client, stream).await {
        last.insert(shard, seq);
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_shards_end_up_in_the_lake_exactly_once() {
    let stream = unique("events");
    let client = kinesis().await;
    create_stream(&client, &stream, 4).await;
    let p = project(&stream, "");
    let m = p.gen_events(8000, 2, 0.01, 31);
    let bad = m.count("truncated") + m.count("wrong_type") + m.count("missing_field");
    let out = send(&p, &stream, &["data"]);
    assert!(out.contains("sent 80"), "{out}");
    let out = finish(spawn_run(&p, "3"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("written    8000 records"), "{stdout}");
    // Per-shard figures in the summary, one line per shard.
    assert_eq!(stdout.matches("ms behind latest").count(), 4, "{stdout}");
    let want = sent(&p).0;
    assert_exactly_once(&p, &want, None).await;
    assert_eq!(p.count("SELECT count(*) FROM events_dlq").await, bad as i64);
    // Every DLQ row names its record by sequence number, in a shard of the stream.
    assert_eq!(
        p.count("SELECT count(*) FROM events_dlq WHERE record_id IS NULL OR source NOT LIKE 'kinesis/%/shardId-%'")
            .await,
        0
    );
    // The committed position of each shard is its last record.
    let lake = p.lake().await;
    let table = lake.load("events").await.unwrap().unwrap();
    let parts: Vec<String> = last_sequences(&stream)
        .await
        .keys()
        .map(|s| format!("kinesis/{stream}/{s}"))
        .collect();
    let committed = tributary::lake::committed_offsets(&table, "events", &parts)
        .await
        .unwrap();
    for (shard, seq) in last_sequences(&stream).await {
        let o = &committed[&format!("kinesis/{stream}/{shard}")];
        assert_eq!(
            o,
            &tributary_connectors::Offset::Sequence {
                seq: tributary_connectors::SeqNo::parse(&seq).unwrap(),
                closed: false
            },
            "shard {shard}"
        );
    }

    // More records: a second run resumes after the committed sequence numbers.
    let extra = TempProject::events("");
    extra.gen_events(1000, 1, 0.0, 32);
    std::fs::rename(
        &ndjson_files(&extra.data_dir())[0],
        p.data_dir().join("extra.ndjson"),
    )
    .unwrap();
    send(&p, &stream, &["data/extra.ndjson"]);
    let out = finish(spawn_run(&p, "3"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("read       1000 records"), "{stdout}");
    assert_exactly_once(&p, &sent(&p).0, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpl_aggregated_records_are_deaggregated() {
    let stream = unique("kpl");
    let client = kinesis().await;
    create_stream(&client, &stream, 2).await;
    let p = project(&stream, "");
    p.gen_events(3000, 1, 0.0, 33);
    send(&p, &stream, &["--aggregate", "25", "data"]);
    // 120 Kinesis records on the server, 3000 events in the lake.
    assert_eq!(read_all(&client, &stream).await.len(), 120);
    finish(spawn_run(&p, "3"));
    assert_exactly_once(&p, &sent(&p).0, None).await;
}

/// On kinesalite: moto's SplitShard moves the parent's records into the children, which
/// real Kinesis never does (a parent keeps its records and ends with SHARD_END).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_and_merge_while_running_lose_nothing() {
    let stream = unique("reshard");
    let client = tributary_tests::aws::kinesalite().await;
    create_stream(&client, &stream, 2).await;
    let e = tributary_tests::aws::kinesalite_endpoint();
    let storage = format!(
        "[storage.kinesis]\nendpoint = \"{e}\"\nallow_http = true\nregion = \"us-east-1\"\n"
    );
    let p = project_on(&storage, &stream, "");
    p.gen_events(9000, 3, 0.0, 34);
    let files = ndjson_files(&p.data_dir());
    // Idle 20 s: longer than a split or merge may take to settle on a busy machine, so the
    // run does not end between two of the steps below.
    let child = spawn_run(&p, "20");
    send(&p, &stream, &[files[0].to_str().unwrap()]);
    // Split shard 0 in the middle of its hash range.
    let shards = tributary_connectors::kinesis::list_shards(&client, &stream)
        .await
        .unwrap();
    let s0 = &shards[0];
    let range = s0.hash_key_range().unwrap();
    let lo: u128 = range.starting_hash_key().parse().unwrap();
    let hi: u128 = range.ending_hash_key().parse().unwrap();
    client
        .split_shard()
        .stream_name(&stream)
        .shard_to_split(s0.shard_id())
        .new_starting_hash_key(((lo + hi) / 2).to_string())
        .send()
        .await
        .unwrap();
    tributary_tests::aws::wait_active(&client, &stream).await;
    send(&p, &stream, &[files[1].to_str().unwrap()]);
    // Merge the two children of the split back together.
    let shards = tributary_connectors::kinesis::list_shards(&client, &stream)
        .await
        .unwrap();
    let children: Vec<_> = shards
        .iter()
        .filter(|s| s.parent_shard_id() == Some(s0.shard_id()))
        .collect();
    assert_eq!(children.len(), 2, "split made two children");
    client
        .merge_shards()
        .stream_name(&stream)
        .shard_to_merge(children[0].shard_id())
        .adjacent_shard_to_merge(children[1].shard_id())
        .send()
        .await
        .unwrap();
    tributary_tests::aws::wait_active(&client, &stream).await;
    send(&p, &stream, &[files[2].to_str().unwrap()]);
    let out = finish(child);
    assert_exactly_once(&p, &sent(&p).0, None).await;
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("SHARD_END"),
        "parents were read to their end:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_the_shards_exactly_once() {
    let stream = unique("shared");
    let client = kinesis().await;
    create_stream(&client, &stream, 4).await;
    let p = project(&stream, "");
    p.gen_events(12_000, 4, 0.0, 35);
    let files = ndjson_files(&p.data_dir());
    // Idle 15 s: longer than any send below may take on a busy machine, so neither process
    // takes a pause between two files for the end of the stream.
    let a = spawn_run(&p, "15");
    let b = spawn_run(&p, "15");
    for f in &files {
        send(&p, &stream, &[f.to_str().unwrap()]);
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let (oa, ob) = (finish(a), finish(b));
    assert_exactly_once(&p, &sent(&p).0, None).await;
    let (la, lb) = (
        String::from_utf8_lossy(&oa.stderr),
        String::from_utf8_lossy(&ob.stderr),
    );
    assert!(
        la.contains("lease acquired") && lb.contains("lease acquired"),
        "both processes read shards:\n--- a\n{la}\n--- b\n{lb}"
    );
}

/// Every other GetRecords and every third PutRecords call is throttled by a proxy in front of
/// the server: the reader and the producer back off and retry, and nothing is lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_survived() {
    let stream = unique("throttled");
    let client = kinesis().await;
    create_stream(&client, &stream, 2).await;
    let put = tributary_tests::fault::FaultProxy::start(
        &tributary_tests::aws::endpoint(),
        &["PutRecords"],
        3,
    );
    let get = tributary_tests::fault::FaultProxy::start(
        &tributary_tests::aws::endpoint(),
        &["GetRecords"],
        2,
    );
    let storage = |e: &str| {
        format!(
            "[storage.kinesis]\nendpoint = \"{e}\"\nallow_http = true\nregion = \"us-east-1\"\n"
        )
    };
    let sender = project_on(&storage(&put.endpoint), &stream, "");
    sender.gen_events(4000, 1, 0.0, 36);
    send(&sender, &stream, &["data"]);
    assert!(put.injected.load(std::sync::atomic::Ordering::Relaxed) > 0);
    let p = project_on(&storage(&get.endpoint), &stream, "");
    std::fs::create_dir_all(p.data_dir()).unwrap();
    for f in ndjson_files(&sender.data_dir()) {
        std::fs::copy(&f, p.data_dir().join(f.file_name().unwrap())).unwrap();
    }
    finish(spawn_run(&p, "4"));
    assert!(get.injected.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    assert_exactly_once(&p, &sent(&p).0, None).await;
}

/// A worker killed with its leases held: another takes the shards over once the leases
/// expire, resumes after the committed positions, and delivers everything exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_of_a_killed_worker_are_taken_over() {
    let stream = unique("takeover");
    let client = kinesis().await;
    create_stream(&client, &stream, 2).await;
    let p = project(&stream, "");
    p.gen_events(6000, 2, 0.0, 37);
    let files = ndjson_files(&p.data_dir());
    send(&p, &stream, &[files[0].to_str().unwrap()]);
    let mut a = spawn_run(&p, "60");
    // Let it commit some, then kill it without warning: its leases stay held.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let lake = p.lake().await;
        if let Some(t) = lake.load("events").await.unwrap()
            && t.version().unwrap_or(0) >= 1
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no commit from the first worker"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    a.kill().unwrap();
    a.wait().unwrap();
    send(&p, &stream, &[files[1].to_str().unwrap()]);
    // The lease TTL is 6 s: the second worker waits for it, then reads on.
    let out = finish(spawn_run(&p, "10"));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("lease acquired"), "{log}");
    assert_exactly_once(&p, &sent(&p).0, None).await;
}
