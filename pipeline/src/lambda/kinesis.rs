//! Kinesis event-source-mapping batches: decode the records, run them through the pipeline
//! reading that stream, commit them with their shard's sequence number — the same Delta
//! `txn` positions `tributary run` keeps, so Lambda and a daemon can take turns on one
//! stream. Records at or below the committed position are skipped, so a batch Lambda
//! retries adds nothing. The answer follows ReportBatchItemFailures: an empty list when the
//! batch is committed, else the lowest sequence number not committed (Lambda retries from
//! it). Exactly once needs ParallelizationFactor = 1: with more, one shard's records are
//! split across concurrent batches and a per-shard position cannot order them.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};
use tributary_connectors::kinesis::records_batch;
use tributary_connectors::{Offset, SeqNo, SourceKind};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::lake::{self, Lake};
use crate::runtime::{RunOptions, run_pipeline};

/// One record of the event: shard, sequence number, payload, when it reached the stream.
struct Rec {
    shard: String,
    seq: SeqNo,
    data: Vec<u8>,
    /// `approximateArrivalTimestamp`, in seconds since the epoch.
    arrived: Option<f64>,
}

fn parse(event: &Value) -> Result<(String, Vec<Rec>)> {
    let records = event["Records"]
        .as_array()
        .ok_or_else(|| Error::Usage("a Kinesis event has Records".into()))?;
    let mut stream = None;
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let arn = r["eventSourceARN"].as_str().unwrap_or("");
        let name = arn
            .rsplit_once(":stream/")
            .map(|(_, s)| s.split('/').next().unwrap_or(s));
        let Some(name) = name else {
            return Err(Error::Usage(format!(
                "eventSourceARN `{arn}` names no stream"
            )));
        };
        if stream.get_or_insert_with(|| name.to_string()) != name {
            return Err(Error::Usage("records of two streams in one event".into()));
        }
        let id = r["eventID"].as_str().unwrap_or("");
        let (shard, id_seq) = id.split_once(':').unwrap_or((id, ""));
        let shard = shard.to_string();
        let seq_text = r["kinesis"]["sequenceNumber"].as_str().unwrap_or("");
        let shown: String = seq_text.chars().take(40).collect();
        let seq = SeqNo::parse(seq_text).ok_or_else(|| {
            Error::Usage(format!(
                "sequence number `{shown}` is not a Kinesis sequence number (1 to {} digits)",
                SeqNo::MAX_DIGITS
            ))
        })?;
        // Lambda's eventID is `<shard>:<sequence number>`: a record whose two disagree, or
        // whose shard is not a Kinesis shard id, was not read from a stream.
        if id_seq != seq_text || !is_shard_id(&shard) {
            return Err(Error::Usage(format!(
                "record {shown}: eventID `{}` is not `shardId-<digits>:<its sequence number>`",
                id.chars().take(80).collect::<String>()
            )));
        }
        let data = base64::engine::general_purpose::STANDARD
            .decode(r["kinesis"]["data"].as_str().unwrap_or(""))
            .map_err(|e| Error::Usage(format!("record {seq_text}: data is not base64: {e}")))?;
        if shard.is_empty() {
            return Err(Error::Usage(format!(
                "record {seq_text}: eventID names no shard"
            )));
        }
        // A number from Lambda; the aws_lambda_events types write it as a string.
        let t = &r["kinesis"]["approximateArrivalTimestamp"];
        let arrived = t.as_f64().or_else(|| t.as_str()?.parse().ok());
        out.push(Rec {
            shard,
            seq,
            data,
            arrived,
        });
    }
    Ok((stream.unwrap_or_default(), out))
}

/// `shardId-` and twelve digits (up to 20 allowed), as Kinesis names shards.
fn is_shard_id(s: &str) -> bool {
    s.strip_prefix("shardId-")
        .is_some_and(|d| (1..=20).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

pub async fn handle(config: &Config, lake: &Lake, event: &Value) -> Result<Value> {
    let (stream, records) = parse(event)?;
    if records.is_empty() {
        return Ok(json!({"batchItemFailures": []}));
    }
    let p = config
        .pipelines
        .iter()
        .find(|p| matches!(&p.source, SourceKind::Kinesis(k) if k.stream == stream))
        .ok_or_else(|| Error::Usage(format!("no pipeline reads Kinesis stream `{stream}`")))?;
    let SourceKind::Kinesis(k) = &p.source else {
        return Err(Error::Internal("not a Kinesis pipeline".into()));
    };
    let lowest = records.iter().map(|r| r.seq.clone()).min();
    // How far behind the stream this batch is: its oldest record's age (Lambda's
    // IteratorAge, per invocation).
    let now_ms = chrono::Utc::now().timestamp_millis() as f64;
    let iterator_age_ms = records
        .iter()
        .filter_map(|r| r.arrived)
        .map(|t| (now_ms - t * 1000.0).max(0.0) as u64)
        .max();
    let bytes: usize = records.iter().map(|r| r.data.len()).sum();
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let result = async {
        // What is already committed per shard (a retried batch, or a daemon's progress).
        let mut by_shard: BTreeMap<String, Vec<&Rec>> = BTreeMap::new();
        for r in &records {
            by_shard.entry(r.shard.clone()).or_default().push(r);
        }
        let partitions: Vec<String> = by_shard.keys().map(|s| k.partition(s)).collect();
        let committed = match lake.load(&p.table.name).await? {
            Some(t) => lake::committed_offsets(&t, &p.name, &partitions).await?,
            None => Default::default(),
        };
        let mut batches = Vec::new();
        let mut skipped = 0usize;
        for (shard, recs) in &by_shard {
            let partition = k.partition(shard);
            let done = match committed.get(&partition) {
                Some(Offset::Sequence { seq, .. }) => Some(seq.clone()),
                _ => None,
            };
            let fresh: Vec<&&Rec> = recs
                .iter()
                .filter(|r| done.as_ref().is_none_or(|d| r.seq > *d))
                .collect();
            skipped += recs.len() - fresh.len();
            if fresh.is_empty() {
                continue;
            }
            let mut last = None;
            let (batch, _) = records_batch(
                &partition,
                fresh.iter().map(|r| (r.data.as_slice(), r.seq.as_str())),
                &mut last,
                false,
            )?;
            batches.push(batch);
        }
        let summary = if batches.is_empty() {
            None
        } else {
            let opts = RunOptions {
                batches: Some(Arc::new(batches)),
                metrics: Some(metrics.clone()),
                ..Default::default()
            };
            Some(run_pipeline(p, lake, &opts).await?)
        };
        Ok::<_, Error>((summary, skipped))
    }
    .await;
    match result {
        Ok((s, skipped)) => Ok(json!({
            "batchItemFailures": [],
            "pipeline": p.name,
            "records": records.len(),
            "already_committed": skipped,
            "records_written": s.as_ref().map(|s| s.records_written).unwrap_or(0),
            "dead_lettered": s.as_ref().map(|s| s.dead_lettered).unwrap_or(0),
            "bytes": bytes,
            "commit_ms": commit_ms(&metrics, &p.name),
            "iterator_age_ms": iterator_age_ms,
        })),
        Err(e) => {
            // Nothing of this invocation was committed (one commit, all or nothing): Lambda
            // retries from the lowest sequence number.
            tracing::error!(error = %e, "Kinesis batch failed; reporting it for retry");
            Ok(json!({
                "batchItemFailures": [{"itemIdentifier": lowest.map(|s| s.as_str().to_string())}],
                "error": e.to_string(),
            }))
        }
    }
}

/// Milliseconds the run spent committing (its commits' total latency).
pub(super) fn commit_ms(metrics: &crate::metrics::Metrics, pipeline: &str) -> f64 {
    let m = metrics.pipeline(pipeline);
    m.commit_micros.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, seq: &str) -> Value {
        json!({"Records": [{
            "eventID": id,
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/events",
            "kinesis": {"sequenceNumber": seq, "data": "e30="}
        }]})
    }

    #[test]
    fn real_records_parse() {
        let seq = "49590338271490256608559692538361571095921575989136588898";
        let parsed = parse(&event(&format!("shardId-000000000000:{seq}"), seq));
        assert!(parsed.is_ok_and(|(s, r)| s == "events" && r.len() == 1));
    }

    #[test]
    fn forged_sequence_numbers_are_refused() {
        let long = "9".repeat(5000);
        for (id, seq) in [
            (format!("shardId-000000000000:{long}"), long.clone()),
            ("shardId-000000000000:12x".into(), "12x".into()),
            // The eventID and the record disagree.
            ("shardId-000000000000:5".into(), "6".into()),
            ("../../x:5".into(), "5".into()),
        ] {
            let e = parse(&event(&id, &seq)).err().map(|e| e.to_string());
            assert!(e.is_some(), "{id}");
            assert!(
                e.unwrap_or_default().len() < 300,
                "the error quotes no 5,000 digits"
            );
        }
    }
}
