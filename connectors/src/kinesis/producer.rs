//! Putting records on a stream: PutRecords in calls of at most 500 records / 5 MB, re-sending
//! the records a response reports as failed (throttled or internal errors), with backoff.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use super::aws_error;
use crate::aws::backoff;
use crate::{Error, ErrorClass, Result};

const MAX_RECORDS_PER_CALL: usize = 500;
const MAX_BYTES_PER_CALL: usize = 5 << 20;
/// Data plus partition key of one record.
const MAX_RECORD_BYTES: usize = 1 << 20;
/// Attempts per call before giving up on the records still failing.
const MAX_ATTEMPTS: u32 = 12;

#[derive(Debug, Clone, Default)]
pub struct PutStats {
    pub records: u64,
    pub bytes: u64,
    pub calls: u64,
    /// Records re-sent after the service reported them failed.
    pub resent: u64,
    pub elapsed: Duration,
}

pub struct Producer {
    client: aws_sdk_kinesis::Client,
    stream: String,
    pending: Vec<(String, Vec<u8>)>,
    pending_bytes: usize,
    pub stats: PutStats,
    started: Instant,
}

impl Producer {
    pub fn new(client: aws_sdk_kinesis::Client, stream: &str) -> Self {
        Self {
            client,
            stream: stream.to_string(),
            pending: Vec::new(),
            pending_bytes: 0,
            stats: PutStats::default(),
            started: Instant::now(),
        }
    }

    /// Queues one record, sending a call's worth when full. Records over the 1 MB limit are
    /// refused.
    pub async fn put(&mut self, partition_key: String, data: Vec<u8>) -> Result<()> {
        let size = data.len() + partition_key.len();
        if size > MAX_RECORD_BYTES {
            return Err(Error::Config(format!(
                "record of {size} bytes is over Kinesis' 1 MB limit (data + partition key)"
            )));
        }
        if self.pending.len() == MAX_RECORDS_PER_CALL
            || self.pending_bytes + size > MAX_BYTES_PER_CALL
        {
            self.flush().await?;
        }
        self.pending_bytes += size;
        self.pending.push((partition_key, data));
        Ok(())
    }

    /// Sends what is queued, re-sending failed records until all are in.
    pub async fn flush(&mut self) -> Result<()> {
        let mut batch = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let mut attempt = 0;
        while !batch.is_empty() {
            let entries = batch
                .iter()
                .map(|(k, d)| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(k)
                        .data(Blob::new(d.clone()))
                        .build()
                        .map_err(|e| Error::Config(format!("bad record: {e}")))
                })
                .collect::<Result<Vec<_>>>()?;
            self.stats.calls += 1;
            let res = self
                .client
                .put_records()
                .stream_name(&self.stream)
                .set_records(Some(entries))
                .send()
                .await
                .map_err(|e| aws_error("PutRecords", e));
            let failed: Vec<(String, Vec<u8>)> = match res {
                Ok(out) => {
                    if out.failed_record_count().unwrap_or(0) == 0 {
                        self.count(&batch);
                        Vec::new()
                    } else {
                        let mut retry = Vec::new();
                        let mut ok = Vec::new();
                        for (r, rec) in out.records().iter().zip(batch) {
                            if r.error_code().is_some() {
                                retry.push(rec);
                            } else {
                                ok.push(rec);
                            }
                        }
                        self.count(&ok);
                        self.stats.resent += retry.len() as u64;
                        retry
                    }
                }
                Err(e) if e.class() == ErrorClass::Transient => batch,
                Err(e) => return Err(e),
            };
            batch = failed;
            if !batch.is_empty() {
                attempt += 1;
                if attempt >= MAX_ATTEMPTS {
                    return Err(Error::Aws {
                        service: "Kinesis",
                        operation: "PutRecords",
                        message: format!(
                            "{} records still failing after {attempt} attempts",
                            batch.len()
                        ),
                        transient: true,
                    });
                }
                tokio::time::sleep(backoff(
                    attempt,
                    Duration::from_millis(100),
                    Duration::from_secs(5),
                ))
                .await;
            }
        }
        Ok(())
    }

    fn count(&mut self, recs: &[(String, Vec<u8>)]) {
        self.stats.records += recs.len() as u64;
        self.stats.bytes += recs.iter().map(|(_, d)| d.len() as u64).sum::<u64>();
    }

    /// Sends the rest and returns the figures.
    pub async fn finish(mut self) -> Result<PutStats> {
        self.flush().await?;
        self.stats.elapsed = self.started.elapsed();
        Ok(self.stats)
    }
}
