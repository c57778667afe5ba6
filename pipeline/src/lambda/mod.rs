//! Lambda handlers: the same pipelines and jobs, started by AWS events instead of the CLI.
//! Each handler takes the event's JSON and answers with JSON; `tributary invoke` runs them
//! locally on a sample event. Handled: Kinesis event-source-mapping batches, S3 ObjectCreated
//! notifications (direct, or inside SQS and SNS envelopes) and EventBridge scheduled events.

mod kinesis;
mod query;
mod runtime;
mod s3;
mod stages;

pub use runtime::serve;

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
    /// API Gateway / Function URL requests: the HTTP query API.
    Query,
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
    if query::is_http(event) {
        return Some(HandlerKind::Query);
    }
    // The sink function's periodic sweep (split stages) comes to it as an S3 function.
    if event["tributary"]["stage"].is_string() {
        return Some(HandlerKind::S3);
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

/// Runs one event through its handler, with a fresh correlation id.
pub async fn handle(
    config: &Config,
    lake: &Lake,
    event: &Value,
    kind: Option<HandlerKind>,
) -> Result<Value> {
    let id = uuid::Uuid::new_v4().to_string();
    handle_with_id(config, lake, event, kind, id).await
}

/// Runs one event through its handler; every log line of the invocation, its metrics line
/// and its answer carry `correlation_id` (in Lambda: the request id).
pub async fn handle_with_id(
    config: &Config,
    lake: &Lake,
    event: &Value,
    kind: Option<HandlerKind>,
    correlation_id: String,
) -> Result<Value> {
    let kind = kind.or_else(|| detect(event)).ok_or_else(|| {
        Error::Usage(
            "cannot tell what this event is: expected Kinesis or S3 notification Records (direct, SQS or SNS), a scheduled event or an HTTP request (API Gateway, Function URL); pass --handler".into(),
        )
    })?;
    let span = tracing::info_span!("invocation", correlation_id = %correlation_id, handler = ?kind);
    let started = std::time::Instant::now();
    let run = async {
        match kind {
            HandlerKind::Kinesis => kinesis::handle(config, lake, event).await,
            HandlerKind::S3 => s3::handle(config, lake, event).await,
            HandlerKind::Schedule => schedule(config, lake, event).await,
            HandlerKind::Query => query::handle(config, lake, event).await,
        }
    };
    let mut answer = tracing::Instrument::instrument(run, span).await?;
    eprintln!("{}", emf(kind, &answer, started.elapsed(), &correlation_id));
    if kind == HandlerKind::Query {
        // An HTTP response: the id goes in a header, the body is the API's.
        if let Some(h) = answer["headers"].as_object_mut() {
            h.insert("x-correlation-id".into(), json!(correlation_id));
        }
    } else if let Some(o) = answer.as_object_mut() {
        o.insert("correlation_id".into(), json!(correlation_id));
    }
    Ok(answer)
}

/// One CloudWatch Embedded Metric Format record for the invocation (Lambda sends stderr to
/// CloudWatch Logs, which turns it into metrics): records in and out, bytes, dead letters,
/// failed batch items, duration, commit latency and (Kinesis) iterator age; dimensions
/// handler and pipeline.
fn emf(
    kind: HandlerKind,
    answer: &Value,
    took: std::time::Duration,
    correlation_id: &str,
) -> Value {
    let sum = |key: &str| -> u64 {
        match answer["runs"].as_array() {
            Some(runs) => runs.iter().filter_map(|r| r[key].as_u64()).sum(),
            None => answer[key].as_u64().unwrap_or(0),
        }
    };
    let (records_in, records_out, dead) = match kind {
        HandlerKind::Kinesis => (sum("records"), sum("records_written"), sum("dead_lettered")),
        HandlerKind::S3 => (
            sum("records_read"),
            sum("records_written"),
            sum("dead_lettered"),
        ),
        HandlerKind::Schedule => (0, sum("rows_written"), 0),
        HandlerKind::Query => (0, 0, 0),
    };
    let total = |key: &str| -> f64 {
        match answer["runs"].as_array() {
            Some(runs) => runs.iter().filter_map(|r| r[key].as_f64()).sum(),
            None => answer[key].as_f64().unwrap_or(0.0),
        }
    };
    let failed = answer["batchItemFailures"]
        .as_array()
        .map(|a| a.len())
        .unwrap_or(0);
    let pipeline = answer["pipeline"]
        .as_str()
        .or(answer["job"].as_str())
        .or(answer["runs"][0]["pipeline"].as_str())
        .unwrap_or("-");
    json!({
        "_aws": {
            "Timestamp": chrono::Utc::now().timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "Tributary",
                "Dimensions": [["Handler", "Pipeline"]],
                "Metrics": [
                    {"Name": "RecordsIn", "Unit": "Count"},
                    {"Name": "RecordsOut", "Unit": "Count"},
                    {"Name": "DeadLettered", "Unit": "Count"},
                    {"Name": "FailedBatchItems", "Unit": "Count"},
                    {"Name": "DurationMs", "Unit": "Milliseconds"},
                    {"Name": "Bytes", "Unit": "Bytes"},
                    {"Name": "CommitLatencyMs", "Unit": "Milliseconds"},
                    {"Name": "IteratorAgeMs", "Unit": "Milliseconds"}
                ]
            }]
        },
        "Handler": format!("{kind:?}").to_lowercase(),
        "Pipeline": pipeline,
        "RecordsIn": records_in,
        "RecordsOut": records_out,
        "DeadLettered": dead,
        "FailedBatchItems": failed,
        "DurationMs": took.as_millis() as u64,
        "Bytes": total("bytes"),
        "CommitLatencyMs": total("commit_ms"),
        // Kinesis only: the batch's oldest record's age when the invocation began.
        "IteratorAgeMs": answer["iterator_age_ms"].as_u64().unwrap_or(0),
        "correlation_id": correlation_id
    })
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
    let s = crate::jobs::Scheduler::for_project(config, lake)?;
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
