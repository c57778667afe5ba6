//! One shard's reader: GetRecords in a loop from a resume point, within the service's limits
//! (≤ 10,000 records per call, 5 calls/s/shard), backing off on throttling and faults and
//! re-acquiring expired iterators from the last record read.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;
use tokio::sync::mpsc;

use super::coordinator::{ShardMetrics, SourceEvent};
use super::{KinesisSourceConfig, StartPosition, aws_error, error_code, kpl};
use crate::aws::backoff;
use crate::{Error, Offset, Position, Result, SeqNo, SourceBatch};

/// The service allows 5 GetRecords calls per second per shard.
const MIN_CALL_GAP: Duration = Duration::from_millis(200);

pub(crate) struct ShardReader {
    pub client: aws_sdk_kinesis::Client,
    pub cfg: Arc<KinesisSourceConfig>,
    pub shard_id: String,
    /// Committed position to resume after (`None`: start per `start`).
    pub resume: Option<Offset>,
    /// Where to start with no committed position (children of a split or merge always
    /// start at their beginning, whatever the pipeline's start says).
    pub start: StartPosition,
    pub tx: mpsc::Sender<SourceEvent>,
    pub stop: Arc<AtomicBool>,
    pub metrics: Arc<ShardMetrics>,
    pub breaker: Arc<crate::breaker::CircuitBreaker>,
    /// Told the outcome of every call: at the tip, progressed, or failed.
    pub caught_up: Arc<crate::caught_up::CaughtUp>,
}

impl ShardReader {
    async fn iterator(&self, after: Option<&SeqNo>) -> Result<Option<String>> {
        let mut req = self
            .client
            .get_shard_iterator()
            .stream_name(&self.cfg.stream)
            .shard_id(&self.shard_id);
        req = match (after, &self.start) {
            (Some(seq), _) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq.as_str()),
            (None, StartPosition::TrimHorizon) => {
                req.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
            (None, StartPosition::Latest) => req.shard_iterator_type(ShardIteratorType::Latest),
            (None, StartPosition::AtTimestamp(ms)) => req
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(DateTime::from_millis(*ms)),
        };
        let out = req
            .send()
            .await
            .map_err(|e| aws_error("GetShardIterator", e))?;
        Ok(out.shard_iterator().map(str::to_string))
    }

    /// Retries `f` while it fails transiently, with jittered backoff; stops with `None` when
    /// asked to stop.
    async fn retrying<T, F, Fut>(&self, what: &str, mut f: F) -> Result<Option<T>>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            // While the circuit is open no call goes out; stop requests still end the wait.
            while self.breaker.is_open() && !self.stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if self.stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            match f().await {
                Ok(v) => {
                    self.breaker.success();
                    return Ok(Some(v));
                }
                Err(e) if e.class() == crate::ErrorClass::Transient => {
                    self.breaker.failure(&e);
                    self.caught_up.failed(&self.shard_id, &e.to_string());
                    let wait =
                        backoff(attempt, Duration::from_millis(100), Duration::from_secs(10));
                    self.metrics.retries.fetch_add(1, Ordering::Relaxed);
                    if attempt >= 3 {
                        tracing::warn!(shard = %self.shard_id, error = %e, attempt, "{what} failed; retrying in {wait:?}");
                    } else {
                        tracing::debug!(shard = %self.shard_id, error = %e, attempt, "{what} failed; retrying in {wait:?}");
                    }
                    attempt = attempt.saturating_add(1);
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub async fn run(self) {
        let partition = self.cfg.partition(&self.shard_id);
        if let Err(e) = self.read(&partition).await {
            let _ = self.tx.send(SourceEvent::Failed(e)).await;
        }
    }

    async fn read(&self, partition: &str) -> Result<()> {
        let mut last: Option<SeqNo> = match &self.resume {
            Some(Offset::Sequence { seq, .. }) => Some(seq.clone()),
            _ => None,
        };
        let Some(mut iterator) = self
            .retrying("GetShardIterator", || self.iterator(last.as_ref()))
            .await?
        else {
            return Ok(());
        };
        let mut last_call = Instant::now() - MIN_CALL_GAP;
        loop {
            let Some(it) = iterator.take() else {
                // SHARD_END: everything in the shard has been read.
                let end = match &last {
                    Some(seq) => Offset::Sequence {
                        seq: seq.clone(),
                        closed: true,
                    },
                    None => Offset::ClosedEmpty,
                };
                let batch = SourceBatch {
                    records: Vec::new(),
                    start: Position {
                        partition: partition.to_string(),
                        offset: 0,
                    },
                    end,
                    ids: Vec::new(),
                };
                tracing::info!(shard = %self.shard_id, "shard ended (SHARD_END)");
                self.caught_up.at_tip(&self.shard_id);
                let _ = self.tx.send(SourceEvent::Batch(batch)).await;
                return Ok(());
            };
            let gap = last_call.elapsed();
            if gap < MIN_CALL_GAP {
                tokio::time::sleep(MIN_CALL_GAP - gap).await;
            }
            while self.breaker.is_open() && !self.stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            last_call = Instant::now();
            let res = self
                .client
                .get_records()
                .shard_iterator(&it)
                .limit(self.cfg.max_records_per_call)
                .send()
                .await
                .map_err(|e| aws_error("GetRecords", e));
            let out = match res {
                Ok(out) => out,
                Err(e) if error_code(&e) == Some("ExpiredIteratorException") => {
                    self.caught_up.failed(&self.shard_id, &e.to_string());
                    tracing::info!(shard = %self.shard_id, "shard iterator expired; re-acquiring from the last record read");
                    match self
                        .retrying("GetShardIterator", || self.iterator(last.as_ref()))
                        .await?
                    {
                        Some(i) => iterator = i,
                        None => return Ok(()),
                    }
                    continue;
                }
                Err(e) if e.class() == crate::ErrorClass::Transient => {
                    self.breaker.failure(&e);
                    self.caught_up.failed(&self.shard_id, &e.to_string());
                    let n = self.metrics.throttled.fetch_add(1, Ordering::Relaxed);
                    let wait = backoff(
                        n.min(8) as u32,
                        Duration::from_millis(200),
                        Duration::from_secs(10),
                    );
                    tracing::debug!(shard = %self.shard_id, error = %e, "GetRecords failed; retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                    iterator = Some(it);
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.breaker.success();
            self.metrics.throttled.store(0, Ordering::Relaxed);
            let behind = out.millis_behind_latest().unwrap_or(0);
            self.metrics.millis_behind.store(behind, Ordering::Relaxed);
            iterator = out.next_shard_iterator().map(str::to_string);
            let records = out.records();
            // At the tip: nothing returned and nothing behind it. A closed shard read to
            // its end is at its tip too (its closure is committed next; then it leaves).
            if (records.is_empty() && behind == 0) || iterator.is_none() {
                self.caught_up.at_tip(&self.shard_id);
            } else {
                self.caught_up.behind(&self.shard_id);
            }
            if !records.is_empty() {
                let batch = self.batch(partition, records, &mut last, iterator.is_none())?;
                // A closed shard's last batch carries the closure itself.
                let closed = iterator.is_none();
                if self.tx.send(SourceEvent::Batch(batch)).await.is_err() {
                    return Ok(());
                }
                if closed {
                    tracing::info!(shard = %self.shard_id, "shard ended (SHARD_END)");
                    return Ok(());
                }
            } else if iterator.is_some() && behind == 0 {
                // Caught up: poll less often.
                tokio::time::sleep(self.cfg.idle_poll.saturating_sub(MIN_CALL_GAP)).await;
            }
        }
    }

    fn batch(
        &self,
        partition: &str,
        records: &[aws_sdk_kinesis::types::Record],
        last: &mut Option<SeqNo>,
        closed: bool,
    ) -> Result<SourceBatch> {
        let (batch, user_records) = records_batch(
            partition,
            records
                .iter()
                .map(|r| (r.data().as_ref(), r.sequence_number())),
            last,
            closed,
        )?;
        self.metrics
            .records
            .fetch_add(user_records, Ordering::Relaxed);
        Ok(batch)
    }
}

/// Kinesis records (data, sequence number) as one batch: one line per user record (KPL
/// aggregates de-aggregated, ids `seq` or `seq:sub`), ending at the last sequence number.
/// Record data may contain newlines; they can only be JSON whitespace, so they become spaces
/// (keeping one record per line). Also builds the batches of a Lambda event-source mapping.
/// Returns the batch and its number of user records.
pub fn records_batch<'a>(
    partition: &str,
    records: impl IntoIterator<Item = (&'a [u8], &'a str)>,
    last: &mut Option<SeqNo>,
    closed: bool,
) -> Result<(SourceBatch, u64)> {
    let mut buf = Vec::new();
    let mut ids = Vec::new();
    let mut push = |data: &[u8], id: String| {
        ids.push((buf.len() as u32, id));
        let start = buf.len();
        buf.extend_from_slice(data.trim_ascii_end());
        for b in &mut buf[start..] {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
        buf.push(b'\n');
    };
    let mut user_records = 0u64;
    for (data, seq) in records {
        let seq = SeqNo::parse(seq).ok_or_else(|| Error::Aws {
            service: "Kinesis",
            operation: "GetRecords",
            message: format!("sequence number `{seq}` is not a number"),
            transient: false,
        })?;
        match kpl::deaggregate(data) {
            Some(parts) => {
                for (i, p) in parts.iter().enumerate() {
                    push(p, format!("{seq}:{i}"));
                    user_records += 1;
                }
            }
            None => {
                push(data, seq.to_string());
                user_records += 1;
            }
        }
        *last = Some(seq);
    }
    let seq = last
        .clone()
        .ok_or_else(|| Error::Config("empty batch".into()))?;
    Ok((
        SourceBatch {
            records: buf,
            start: Position {
                partition: partition.to_string(),
                offset: 0,
            },
            end: Offset::Sequence { seq, closed },
            ids,
        },
        user_records,
    ))
}
