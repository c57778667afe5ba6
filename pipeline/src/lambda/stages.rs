//! A pipeline deployed as three functions (`[pipelines.x.lambda] split_stages = true`): the
//! ingest function gets the source's S3 notifications and stages raw segments; the lake
//! bucket's notifications for `_tributary/staging/<pipeline>/raw/` start transform functions
//! (one per batch of segments, as many at once as the backlog needs), and those for `out/`
//! start the sink function, which commits whatever is ready, in order. Every step is
//! idempotent (create-only segments, the sink's committed sequence number), so S3's and
//! SQS's repeated deliveries add nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::{Value, json};
use tributary_connectors::aws::parse_s3_url;

use crate::config::{Config, Pipeline};
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::runtime::staged::{self, StageSummary};

/// A sink function commits what is ready and returns once nothing new has come for this
/// long (the next segment's notification starts it again).
const SINK_IDLE: Duration = Duration::from_millis(1500);

/// A staged segment named by a notification of the lake's bucket.
#[derive(Debug, PartialEq, Eq)]
pub struct SegmentKey {
    pub pipeline: String,
    /// `raw` (for transform) or `out` (for the sink).
    pub dir: String,
    pub seq: u64,
}

/// `key` as a staged segment of the lake at `lake` (the project's lake URL), if it is one.
pub fn segment_key(lake: &str, bucket: &str, key: &str) -> Option<SegmentKey> {
    let (lake_bucket, prefix) = parse_s3_url(lake)?;
    if lake_bucket != bucket {
        return None;
    }
    let prefix = prefix.trim_matches('/');
    let rest = if prefix.is_empty() {
        key
    } else {
        key.strip_prefix(prefix)?.strip_prefix('/')?
    };
    let rest = rest.strip_prefix("_tributary/staging/")?;
    let mut parts = rest.split('/');
    let (pipeline, dir, name) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !matches!(dir, "raw" | "out") {
        return None;
    }
    // `out/<seq>.dlq.arrow` comes with `out/<seq>.arrow`: one notification is enough.
    let seq = name.strip_suffix(".arrow")?.parse().ok()?;
    Some(SegmentKey {
        pipeline: pipeline.to_string(),
        dir: dir.to_string(),
        seq,
    })
}

fn summary_json(pipeline: &str, s: &StageSummary) -> Value {
    json!({
        "pipeline": pipeline,
        "stage": s.stage,
        "segments": s.segments,
        "records": s.records,
        "dead_lettered": s.dead_lettered,
        "commits": s.commits,
    })
}

fn split_pipeline<'a>(config: &'a Config, name: &str) -> Result<&'a Pipeline> {
    let p = config.pipeline(name).map_err(Error::Usage)?;
    if !p.lambda.split_stages {
        return Err(Error::Usage(format!(
            "a staged segment of pipeline `{name}`, which is not deployed as split stages: set [pipelines.{name}.lambda] split_stages = true"
        )));
    }
    Ok(p)
}

/// Runs the stage each staged segment asks for: transform for `raw/`, the sink for `out/`.
pub async fn handle_segments(
    config: &Config,
    lake: &Lake,
    segments: Vec<SegmentKey>,
) -> Result<Vec<Value>> {
    let mut raw: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut out: BTreeSet<String> = BTreeSet::new();
    for s in segments {
        if s.dir == "raw" {
            raw.entry(s.pipeline).or_default().insert(s.seq);
        } else {
            out.insert(s.pipeline);
        }
    }
    let mut answers = Vec::new();
    for (name, seqs) in raw {
        let p = split_pipeline(config, &name)?;
        let seqs: Vec<u64> = seqs.into_iter().collect();
        let s = staged::transform_segments(p, lake, &seqs).await?;
        answers.push(summary_json(&name, &s));
    }
    for name in out {
        let p = split_pipeline(config, &name)?;
        let s = staged::sink(p, lake, Arc::new(AtomicBool::new(false)), Some(SINK_IDLE)).await?;
        answers.push(summary_json(&name, &s));
    }
    Ok(answers)
}

/// The sink function's scheduled sweep (`{"tributary": {"stage": "sink", "pipeline": P}}`):
/// commits whatever is ready even if the notifications that should have started it were
/// lost or ran out of retries, so nothing stays staged for long.
pub async fn sweep(config: &Config, lake: &Lake, stage: &str, pipeline: &Value) -> Result<Value> {
    let name = pipeline.as_str().ok_or_else(|| {
        Error::Usage("a stage sweep names no pipeline: {\"tributary\": {\"stage\": \"sink\", \"pipeline\": NAME}}".into())
    })?;
    if stage != "sink" {
        return Err(Error::Usage(format!(
            "stage `{stage}` has no sweep (only the sink's: ingest and transform run on notifications of new objects)"
        )));
    }
    let answers = handle_segments(
        config,
        lake,
        vec![SegmentKey {
            pipeline: name.to_string(),
            dir: "out".into(),
            seq: 0,
        }],
    )
    .await?;
    Ok(json!({ "runs": answers, "ignored": [] }))
}

/// The ingest function: the notified source objects into raw segments.
pub async fn ingest(p: &Pipeline, lake: &Lake, keys: &BTreeSet<String>) -> Result<Value> {
    let s = staged::ingest(p, lake, Arc::new(AtomicBool::new(false)), Some(keys)).await?;
    let mut v = summary_json(&p.name, &s);
    v["objects"] = json!(keys.len());
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_keys_name_their_pipeline_stage_and_segment() {
        let lake = "s3://lake-bucket/lakes/prod";
        let k = |key: &str| segment_key(lake, "lake-bucket", key);
        assert_eq!(
            k("lakes/prod/_tributary/staging/orders/raw/00000000000000000042.arrow"),
            Some(SegmentKey {
                pipeline: "orders".into(),
                dir: "raw".into(),
                seq: 42
            })
        );
        assert_eq!(
            k("lakes/prod/_tributary/staging/orders/out/00000000000000000007.arrow")
                .map(|s| (s.dir, s.seq)),
            Some(("out".into(), 7))
        );
        assert_eq!(
            k("lakes/prod/_tributary/staging/orders/out/00000000000000000007.dlq.arrow"),
            None
        );
        assert_eq!(k("lakes/prod/_tributary/staging/orders/ingest.done"), None);
        assert_eq!(k("lakes/prod/orders/part-0.parquet"), None);
        assert_eq!(
            k("other/_tributary/staging/orders/raw/00000000000000000042.arrow"),
            None
        );
        assert_eq!(
            segment_key(
                lake,
                "another-bucket",
                "lakes/prod/_tributary/staging/orders/raw/00000000000000000042.arrow"
            ),
            None
        );
    }
}
