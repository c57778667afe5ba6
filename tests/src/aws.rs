//! The S3- and Kinesis-compatible server the test command starts on 127.0.0.1 (moto), and
//! helpers to make buckets and streams on it. Each test uses its own names.

use std::io::{Read, Write};
use std::time::Duration;

use tributary_connectors::aws::AwsSettings;

/// The server's endpoint, from `TRIBUTARY_TEST_AWS_ENDPOINT` (set by `scripts/test.sh`).
/// Tests that need it fail loudly without it: they are never skipped silently.
pub fn endpoint() -> String {
    std::env::var("TRIBUTARY_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "TRIBUTARY_TEST_AWS_ENDPOINT is not set: run the tests with `bash scripts/test.sh`, which starts the S3/Kinesis server"
        )
    })
}

/// kinesalite's endpoint (`TRIBUTARY_TEST_KINESALITE_ENDPOINT`), the second Kinesis server.
pub fn kinesalite_endpoint() -> String {
    std::env::var("TRIBUTARY_TEST_KINESALITE_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "TRIBUTARY_TEST_KINESALITE_ENDPOINT is not set: run the tests with `bash scripts/test.sh`, which starts kinesalite"
        )
    })
}

pub fn kinesalite_settings() -> AwsSettings {
    AwsSettings {
        endpoint: Some(kinesalite_endpoint()),
        region: Some("us-east-1".into()),
        allow_http: true,
    }
}

pub fn settings() -> AwsSettings {
    AwsSettings {
        endpoint: Some(endpoint()),
        region: Some("us-east-1".into()),
        allow_http: true,
    }
}

/// `[storage.*]` sections pointing at the test server.
pub fn storage_toml() -> String {
    let e = endpoint();
    format!(
        "[storage.s3]\nendpoint = \"{e}\"\nallow_http = true\nregion = \"us-east-1\"\n\n[storage.kinesis]\nendpoint = \"{e}\"\nallow_http = true\nregion = \"us-east-1\"\n"
    )
}

/// A name unique to this test run (buckets and streams are shared server state).
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{:06x}",
        std::process::id(),
        fastrand::u32(..0xFF_FFFF)
    )
}

/// Creates a bucket (an unsigned path-style PUT, which the test server accepts).
pub fn create_bucket(name: &str) {
    let url = url::Url::parse(&endpoint()).unwrap();
    let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut s = std::net::TcpStream::connect(&host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "PUT /{name} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(
        resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200"),
        "create bucket {name}: {resp}"
    );
}

pub async fn kinesis() -> aws_sdk_kinesis::Client {
    tributary_connectors::kinesis::client(&settings()).await
}

pub async fn kinesalite() -> aws_sdk_kinesis::Client {
    tributary_connectors::kinesis::client(&kinesalite_settings()).await
}

/// Creates a stream with `shards` shards and waits until it is active.
pub async fn create_stream(client: &aws_sdk_kinesis::Client, name: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .unwrap();
    wait_active(client, name).await;
}

pub async fn wait_active(client: &aws_sdk_kinesis::Client, name: &str) {
    for _ in 0..100 {
        let d = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .unwrap();
        if d.stream_description_summary()
            .map(|s| s.stream_status().as_str())
            == Some("ACTIVE")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("stream {name} did not become active");
}

/// Every record of every shard, read independently of Tributary: (shard, sequence, data).
pub async fn read_all(
    client: &aws_sdk_kinesis::Client,
    name: &str,
) -> Vec<(String, String, Vec<u8>)> {
    let shards = tributary_connectors::kinesis::list_shards(client, name)
        .await
        .unwrap();
    let mut out = Vec::new();
    for s in shards {
        let mut it = client
            .get_shard_iterator()
            .stream_name(name)
            .shard_id(s.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .map(str::to_string);
        while let Some(i) = it {
            let r = client.get_records().shard_iterator(i).send().await.unwrap();
            if r.records().is_empty() && r.millis_behind_latest() == Some(0) {
                break;
            }
            for rec in r.records() {
                out.push((
                    s.shard_id().to_string(),
                    rec.sequence_number().to_string(),
                    rec.data().as_ref().to_vec(),
                ));
            }
            it = r.next_shard_iterator().map(str::to_string);
        }
    }
    out
}

/// Uploads the project's generated NDJSON files to `bucket` under `prefix` (keys
/// `prefix` + file name), as the S3 source tests' input.
pub async fn upload_data(bucket: &str, prefix: &str, files: &[std::path::PathBuf]) {
    let store = tributary_connectors::aws::s3_store(bucket, &settings())
        .await
        .unwrap();
    for f in files {
        let key = format!("{prefix}{}", f.file_name().unwrap().to_string_lossy());
        object_store::ObjectStoreExt::put(
            store.as_ref(),
            &object_store::path::Path::from(key),
            std::fs::read(f).unwrap().into(),
        )
        .await
        .unwrap();
    }
}

/// `tributary send` of the project's files or folders (`args`) to `stream`, keyed by
/// `event_id`; its stdout.
pub fn send(p: &crate::TempProject, stream: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(crate::tributary_bin())
        .current_dir(p.path())
        .args(["send", "--stream", stream, "--partition-key", "event_id"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "send: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
