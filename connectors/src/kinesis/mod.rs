//! Kinesis Data Streams: every shard read concurrently (one reader per shard, order kept per
//! shard), resumed after the last committed sequence number of each shard, children read only
//! after their parents are consumed and committed, KPL aggregates de-aggregated, and shards
//! shared between `tributary run` processes through leases in the lake.

mod coordinator;
mod kpl;
mod lease;
mod producer;
mod shard;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::types::Shard;

pub use coordinator::{MetricsMap, ShardMetrics, SourceEvent, StreamSource};
pub use kpl::{aggregate, deaggregate};
pub use lease::{LeaseStore, Leases};
pub use producer::{Producer, PutStats};
pub use shard::records_batch;

use crate::aws::{AwsSettings, sdk_config};
use crate::{Error, Offset, Result};

/// Where a pipeline starts reading a shard that has no committed position yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartPosition {
    TrimHorizon,
    Latest,
    /// Milliseconds since the epoch.
    AtTimestamp(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisSourceConfig {
    pub stream: String,
    pub start: StartPosition,
    pub aws: AwsSettings,
    /// Records per GetRecords call (the service allows at most 10,000).
    pub max_records_per_call: i32,
    /// Pause between polls of a shard that is caught up (the service allows 5 GetRecords
    /// calls per second per shard; busy shards poll at that rate).
    pub idle_poll: Duration,
    /// How long a lease lasts without renewal before another process may take the shard.
    pub lease_ttl: Duration,
    /// How often shards are listed again (new shards after a split or merge).
    pub discovery_interval: Duration,
}

impl KinesisSourceConfig {
    pub fn new(stream: &str) -> Self {
        Self {
            stream: stream.to_string(),
            start: StartPosition::TrimHorizon,
            aws: AwsSettings::default(),
            max_records_per_call: 10_000,
            idle_poll: Duration::from_millis(1000),
            lease_ttl: Duration::from_secs(20),
            discovery_interval: Duration::from_secs(10),
        }
    }

    /// The partition name a shard's position is committed under.
    pub fn partition(&self, shard_id: &str) -> String {
        format!("kinesis/{}/{shard_id}", self.stream)
    }
}

/// A Kinesis client from the standard AWS chain plus the overrides in `aws`.
pub async fn client(aws: &AwsSettings) -> aws_sdk_kinesis::Client {
    let conf = sdk_config(aws).await;
    aws_sdk_kinesis::Client::new(&conf)
}

/// Where the lake says each partition stands. Implemented by the pipeline over the target
/// table's commit log, so positions are always read from the lake, never from a side file.
#[async_trait::async_trait]
pub trait Checkpoints: Send + Sync {
    /// Committed offsets of these partitions, read fresh (absent = nothing committed).
    async fn committed(&self, partitions: &[String]) -> Result<HashMap<String, Offset>>;
}

/// Every shard of the stream, open and closed, following ListShards' pagination.
pub async fn list_shards(client: &aws_sdk_kinesis::Client, stream: &str) -> Result<Vec<Shard>> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let req = match &token {
            // With a token the stream name must not be given again.
            Some(t) => client.list_shards().next_token(t),
            None => client.list_shards().stream_name(stream),
        };
        let out = req.send().await.map_err(|e| aws_error("ListShards", e))?;
        shards.extend(out.shards().iter().cloned());
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(shards)
}

/// Error codes the service uses for throttling and its own faults: worth retrying.
const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "InternalFailureException",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ThrottlingException",
    "Throttling",
    "KMSThrottlingException",
    "RequestLimitExceeded",
    "SlowDown",
];

/// Turns an SDK error into ours, with the error code in the message and a transient flag
/// (network faults, timeouts, throttling and 5xx are transient; the rest are not).
pub fn aws_error<E, R>(operation: &'static str, e: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let code = e.code().map(str::to_string);
    let transient = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(_) => code
            .as_deref()
            .map(|c| TRANSIENT_CODES.contains(&c))
            .unwrap_or(false),
        _ => false,
    };
    let message = match (&code, e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.clone(),
        _ => aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string(),
    };
    Error::Aws {
        service: "Kinesis",
        operation,
        message,
        transient,
    }
}

/// The error code at the start of an `Error::Aws` message, if any.
pub(crate) fn error_code(e: &Error) -> Option<&str> {
    match e {
        Error::Aws { message, .. } => message.split(':').next(),
        _ => None,
    }
}
