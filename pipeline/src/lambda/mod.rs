//! Lambda handlers: the same pipelines and jobs, started by AWS events instead of the CLI.
//! Each handler takes the event's JSON and answers with JSON; `tributary invoke` runs them
//! locally on a sample event. Handled: Kinesis event-source-mapping batches, S3 ObjectCreated
//! notifications (direct, or inside SQS and SNS envelopes) and EventBridge scheduled events.

mod kinesis;
mod s3;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::lake::Lake;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HandlerKind {
    /// Kinesis event-source-mapping batches: run them through the stream's pipeline.
    Kinesis,
    /// S3 ObjectCreated notifications (direct, via SQS, via SNS): read the objects.
    S3,
    /// EventBridge (Scheduler) events: run the named job for the event's time.
    Schedule,
}

/// Which handler an event is for, from its shape.
pub fn detect(event: &Value) -> Option<HandlerKind> {
    if let Some(r) = event["Records"].as_array().and_then(|r| r.first()) {
        let source = r["eventSource"]
            .as_str()
            .or(r["EventSource"].as_str())
            .unwrap_or("");
        return match source {
            "aws:kinesis" => Some(HandlerKind::Kinesis),
            "aws:s3" | "aws:sqs" | "aws:sns" => Some(HandlerKind::S3),
            _ => None,
        };
    }
    if event["tributary"]["job"].is_string()
        || event["detail-type"] == "Scheduled Event"
        || matches!(
            event["source"].as_str(),
            Some("aws.events" | "aws.scheduler")
        )
    {
        return Some(HandlerKind::Schedule);
    }
    None
}

/// Runs one event through its handler.
pub async fn handle(
    config: &Config,
    lake: &Lake,
    event: &Value,
    kind: Option<HandlerKind>,
) -> Result<Value> {
    let kind = kind.or_else(|| detect(event)).ok_or_else(|| {
        Error::Usage(
            "cannot tell what this event is: expected Kinesis or S3 notification Records (direct, SQS or SNS) or a scheduled event; pass --handler".into(),
        )
    })?;
    match kind {
        HandlerKind::Kinesis => kinesis::handle(config, lake, event).await,
        HandlerKind::S3 => s3::handle(config, lake, event).await,
        HandlerKind::Schedule => schedule(config, lake, event).await,
    }
}

/// A scheduled event: `{"tributary": {"job": NAME}, "time": RFC3339}` (what the SAM
/// template's EventBridge Scheduler target sends), or an EventBridge rule's "Scheduled
/// Event" with the job in `detail.job` (or `TRIBUTARY_JOB` set on the function).
async fn schedule(config: &Config, lake: &Lake, event: &Value) -> Result<Value> {
    let job = event["tributary"]["job"]
        .as_str()
        .or(event["detail"]["job"].as_str())
        .map(str::to_string)
        .or_else(|| std::env::var("TRIBUTARY_JOB").ok())
        .ok_or_else(|| {
            Error::Usage(
                "the scheduled event names no job: {\"tributary\": {\"job\": NAME}} or TRIBUTARY_JOB".into(),
            )
        })?;
    let slot = match event["time"].as_str() {
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map_err(|e| Error::Usage(format!("event time `{t}`: {e}")))?
            .with_timezone(&Utc),
        None => Utc::now(),
    };
    let s = crate::jobs::Scheduler::new(
        lake.clone(),
        config.query.clone(),
        config.jobs.clone(),
        config.scheduler.max_concurrent_runs,
        config.scheduler.grace,
    )?;
    match s.run_slot_once(&job, slot).await? {
        None => Ok(
            json!({"job": job, "slot": slot.to_rfc3339(), "skipped": "this slot already ran (a repeated delivery)"}),
        ),
        Some(runs) => {
            let failed = runs
                .iter()
                .find(|r| r.state != crate::jobs::history::RunState::Succeeded);
            let out: Vec<Value> = runs
                .iter()
                .map(|r| {
                    json!({"job": r.job, "run_id": r.run_id, "state": r.state.as_str(),
                           "rows_written": r.rows_written, "error": r.error})
                })
                .collect();
            match failed {
                // A failed run fails the invocation, so EventBridge's retry policy applies.
                Some(r) => Err(Error::Usage(format!(
                    "job `{}` {}: {}",
                    r.job,
                    r.state.as_str(),
                    r.error.as_deref().unwrap_or("")
                ))),
                None => Ok(json!({"job": job, "slot": slot.to_rfc3339(), "runs": out})),
            }
        }
    }
}
