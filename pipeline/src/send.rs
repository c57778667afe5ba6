//! `tributary send`: NDJSON records onto a Kinesis stream (for demos, tests and load tests).

use std::path::PathBuf;
use std::time::Duration;

use tributary_connectors::aws::AwsSettings;
use tributary_connectors::file::{FileReader, InputFile};
use tributary_connectors::kinesis::{self, Producer, PutStats};

use crate::error::{Error, Result};

pub struct SendOptions {
    pub stream: String,
    pub files: Vec<PathBuf>,
    /// Generate this many demo order events instead of reading files.
    pub generate: Option<u64>,
    /// JSON field whose value is the partition key (default: a random key per record).
    pub partition_key: Option<String>,
    /// Pack this many records into each Kinesis record, KPL-style (0/1 = no aggregation).
    pub aggregate: usize,
    /// Create the stream with this many shards if it does not exist.
    pub create_shards: Option<i32>,
}

/// Creates `stream` with `shards` shards unless it exists, and waits until it is active.
async fn ensure_stream(client: &aws_sdk_kinesis::Client, stream: &str, shards: i32) -> Result<()> {
    let exists = client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .is_ok();
    if !exists {
        client
            .create_stream()
            .stream_name(stream)
            .shard_count(shards)
            .send()
            .await
            .map_err(|e| {
                Error::Usage(format!(
                    "cannot create stream `{stream}`: {}",
                    aws_sdk_kinesis::error::DisplayErrorContext(&e)
                ))
            })?;
        eprintln!("created stream {stream} with {shards} shards");
    }
    for _ in 0..600 {
        let active = client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .ok()
            .and_then(|d| {
                d.stream_description_summary()
                    .map(|s| s.stream_status().as_str() == "ACTIVE")
            })
            .unwrap_or(false);
        if active {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(Error::Usage(format!(
        "stream `{stream}` did not become active"
    )))
}

/// The partition key of one record: the named field's value, or a random key when the
/// record lacks it (bad records still get sent: the pipeline dead-letters them).
fn key_of(line: &[u8], field: Option<&str>) -> String {
    if let Some(f) = field
        && let Ok(serde_json::Value::Object(m)) = serde_json::from_slice(line)
    {
        match m.get(f) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => {
                return s.chars().take(256).collect();
            }
            Some(v) if !v.is_null() => return v.to_string().chars().take(256).collect(),
            _ => {}
        }
    }
    format!("{:016x}", fastrand::u64(..))
}

pub async fn send(aws: &AwsSettings, opts: &SendOptions) -> Result<PutStats> {
    let client = kinesis::client(aws).await;
    if let Some(n) = opts.create_shards {
        ensure_stream(&client, &opts.stream, n).await?;
    }
    let mut producer = Producer::new(client, &opts.stream);
    let tmp;
    let mut files = opts.files.clone();
    if let Some(n) = opts.generate {
        tmp = tempfile::tempdir().map_err(|e| Error::io("cannot make a temporary folder", e))?;
        crate::demo::generate(tmp.path(), n, 1, fastrand::u64(..))?;
        files = vec![tmp.path().to_path_buf()];
    }
    if files.is_empty() {
        return Err(Error::Usage(
            "give NDJSON files to send, or --generate N".into(),
        ));
    }
    let mut inputs: Vec<InputFile> = Vec::new();
    for f in &files {
        let src = tributary_connectors::file::FileSourceConfig {
            path: f.display().to_string(),
            base_dir: std::env::current_dir().map_err(|e| Error::io("no current folder", e))?,
        };
        inputs.extend(src.list()?);
    }
    if inputs.is_empty() {
        return Err(Error::Usage(format!(
            "no NDJSON files found in {}",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let field = opts.partition_key.as_deref();
    let mut group: Vec<Vec<u8>> = Vec::new();
    for input in inputs {
        let mut reader = FileReader::open(&input, 0)?;
        while let Some(chunk) = reader.next_chunk(4 << 20, usize::MAX)? {
            for line in chunk.records.split(|b| *b == b'\n') {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if opts.aggregate > 1 {
                    group.push(line.to_vec());
                    if group.len() == opts.aggregate {
                        put_aggregate(&mut producer, &mut group, field).await?;
                    }
                } else {
                    producer.put(key_of(line, field), line.to_vec()).await?;
                }
            }
        }
    }
    if !group.is_empty() {
        put_aggregate(&mut producer, &mut group, field).await?;
    }
    Ok(producer.finish().await?)
}

async fn put_aggregate(
    producer: &mut Producer,
    group: &mut Vec<Vec<u8>>,
    field: Option<&str>,
) -> Result<()> {
    let key = key_of(&group[0], field);
    let refs: Vec<&[u8]> = group.iter().map(Vec::as_slice).collect();
    let record = kinesis::aggregate(&key, &refs);
    producer.put(key, record).await?;
    group.clear();
    Ok(())
}

pub fn describe(stats: &PutStats) -> String {
    let secs = stats.elapsed.max(Duration::from_millis(1)).as_secs_f64();
    format!(
        "sent {} records ({:.1} MB) in {:.2} s: {:.0} records/s, {} PutRecords calls, {} records re-sent",
        stats.records,
        stats.bytes as f64 / 1e6,
        secs,
        stats.records as f64 / secs,
        stats.calls,
        stats.resent
    )
}
