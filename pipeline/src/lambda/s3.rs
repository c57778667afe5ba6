//! S3 ObjectCreated notifications → the pipelines whose S3 source covers the objects, reading
//! just those objects (or staging them, for split stages; notifications of staged segments
//! go to their stage, `stages.rs`). Positions are per object and ETag (`s3://bucket/key#etag`), so a
//! repeated notification for the same object version adds nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use tributary_connectors::SourceKind;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::runtime::{RunOptions, run_pipeline};

/// (bucket, key) of every ObjectCreated record, unwrapping SQS and SNS envelopes.
pub fn objects(event: &Value, out: &mut Vec<(String, String)>) -> Result<()> {
    let Some(records) = event["Records"].as_array() else {
        // An S3 test event (on configuring notifications) has no records.
        return Ok(());
    };
    for r in records {
        let source = r["eventSource"]
            .as_str()
            .or(r["EventSource"].as_str())
            .unwrap_or("");
        match source {
            "aws:s3" => {
                if !r["eventName"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("ObjectCreated")
                {
                    continue;
                }
                let bucket = r["s3"]["bucket"]["name"].as_str();
                let key = r["s3"]["object"]["key"].as_str();
                match (bucket, key) {
                    (Some(b), Some(k)) => out.push((b.to_string(), decode_key(k))),
                    _ => return Err(Error::Usage("an S3 record without bucket or key".into())),
                }
            }
            "aws:sqs" => {
                let body = r["body"].as_str().unwrap_or("");
                let inner: Value = serde_json::from_str(body)
                    .map_err(|e| Error::Usage(format!("SQS message body is not JSON: {e}")))?;
                // SNS → SQS delivers the SNS notification as the body.
                if let Some(msg) = inner["Message"].as_str() {
                    let m: Value = serde_json::from_str(msg).map_err(|e| {
                        Error::Usage(format!("SNS message in SQS is not JSON: {e}"))
                    })?;
                    objects(&m, out)?;
                } else {
                    objects(&inner, out)?;
                }
            }
            "aws:sns" => {
                let msg = r["Sns"]["Message"].as_str().unwrap_or("");
                let m: Value = serde_json::from_str(msg)
                    .map_err(|e| Error::Usage(format!("SNS message is not JSON: {e}")))?;
                objects(&m, out)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// S3 event keys are URL-encoded, with `+` for spaces.
fn decode_key(k: &str) -> String {
    crate::jobs::incremental::percent_decode(&k.replace('+', " "))
}

pub async fn handle(config: &Config, lake: &Lake, event: &Value) -> Result<Value> {
    if let Some(stage) = event["tributary"]["stage"].as_str() {
        return super::stages::sweep(config, lake, stage, &event["tributary"]["pipeline"]).await;
    }
    let mut objs = Vec::new();
    objects(event, &mut objs)?;
    let mut per_pipeline: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut ignored = Vec::new();
    let mut segments = Vec::new();
    for (bucket, key) in objs {
        if let Some(s) = super::stages::segment_key(&config.project.lake, &bucket, &key) {
            segments.push(s);
            continue;
        }
        let p = config.pipelines.iter().find(|p| {
            matches!(&p.source, SourceKind::S3(s) if s.bucket == bucket && key.starts_with(&s.prefix))
        });
        match p {
            Some(p) => {
                per_pipeline.entry(p.name.clone()).or_default().insert(key);
            }
            None => ignored.push(format!("s3://{bucket}/{key}")),
        }
    }
    if !ignored.is_empty() {
        tracing::warn!(objects = ?ignored, "no pipeline reads these objects");
    }
    let mut runs = Vec::new();
    for (name, keys) in per_pipeline {
        let p = config.pipeline(&name).map_err(Error::Usage)?;
        if p.lambda.split_stages {
            runs.push(super::stages::ingest(p, lake, &keys).await?);
            continue;
        }
        let metrics = std::sync::Arc::new(crate::metrics::Metrics::default());
        let opts = RunOptions {
            only_objects: Some(keys.clone()),
            metrics: Some(metrics.clone()),
            ..Default::default()
        };
        let s = run_pipeline(p, lake, &opts).await?;
        runs.push(json!({
            "pipeline": name,
            "objects": keys.len(),
            "records_read": s.records_read,
            "records_written": s.records_written,
            "dead_lettered": s.dead_lettered,
            "bytes": s.bytes_read,
            "commit_ms": super::kinesis::commit_ms(&metrics, &name),
        }));
    }
    runs.extend(super::stages::handle_segments(config, lake, segments).await?);
    Ok(json!({"runs": runs, "ignored": ignored}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_and_encoded_keys() {
        let s3 = json!({"Records": [
            {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
             "s3": {"bucket": {"name": "b"}, "object": {"key": "in/a+b%3D1.ndjson"}}},
            {"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete",
             "s3": {"bucket": {"name": "b"}, "object": {"key": "in/gone"}}}
        ]});
        let sqs = json!({"Records": [{"eventSource": "aws:sqs", "body": s3.to_string()}]});
        let sns =
            json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": s3.to_string()}}]});
        let sns_in_sqs = json!({"Records": [{"eventSource": "aws:sqs",
            "body": json!({"Type": "Notification", "Message": s3.to_string()}).to_string()}]});
        for e in [&s3, &sqs, &sns, &sns_in_sqs] {
            let mut out = Vec::new();
            objects(e, &mut out).unwrap();
            assert_eq!(
                out,
                [("b".to_string(), "in/a b=1.ndjson".to_string())],
                "{e}"
            );
        }
        let mut out = Vec::new();
        objects(
            &json!({"Service": "Amazon S3", "Event": "s3:TestEvent"}),
            &mut out,
        )
        .unwrap();
        assert!(out.is_empty());
    }
}
