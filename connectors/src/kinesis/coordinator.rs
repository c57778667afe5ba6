//! Which shards this process reads, and when: lists the stream's shards (again every
//! `discovery_interval`, so splits and merges are picked up while running), starts a child
//! shard only once its parents are consumed *and committed* (so per-key order survives
//! resharding), and, with leases, takes a fair share of the shards among the live workers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::Shard;
use tokio::sync::mpsc;

use super::lease::Leases;
use super::shard::ShardReader;
use super::{Checkpoints, KinesisSourceConfig, StartPosition, list_shards};
use crate::aws::backoff;
use crate::caught_up::CaughtUp;
use crate::{Error, ErrorClass, Offset, Result, SourceBatch};

/// The part of the caught-up state that stands for listing the stream's shards.
const DISCOVERY: &str = "shard discovery";

/// What the source hands the pipeline.
pub enum SourceEvent {
    Batch(SourceBatch),
    /// The source cannot go on (a non-transient error).
    Failed(Error),
    /// Another process took a shard: what is in hand must not be committed; start over
    /// from the lake's positions.
    LeaseLost(String),
    /// More workers joined: commit what is in hand, then start over (the shards beyond this
    /// process's share are released then).
    Rebalance,
}

/// Live figures of one shard's reader.
#[derive(Debug, Default)]
pub struct ShardMetrics {
    pub records: AtomicU64,
    pub millis_behind: AtomicI64,
    /// Consecutive throttled/failed GetRecords calls (reset on success).
    pub throttled: AtomicU64,
    /// Retried calls in all.
    pub retries: AtomicU64,
}

pub type MetricsMap = Arc<Mutex<BTreeMap<String, Arc<ShardMetrics>>>>;

/// A running Kinesis source: its events arrive on `events`.
pub struct StreamSource {
    pub events: mpsc::Receiver<SourceEvent>,
    pub metrics: MetricsMap,
    /// Whether every shard read here is at its tip with no failed call since (what
    /// `--idle-exit` waits for), and which calls are failing now.
    pub caught_up: Arc<CaughtUp>,
    stop: Arc<AtomicBool>,
    leases: Arc<tokio::sync::Mutex<Option<Leases>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StreamSource {
    /// Starts reading. `leases`: share the shards with other processes (else read all).
    pub fn spawn(
        client: aws_sdk_kinesis::Client,
        cfg: KinesisSourceConfig,
        checkpoints: Arc<dyn Checkpoints>,
        leases: Option<Leases>,
        capacity: usize,
    ) -> Self {
        let (tx, events) = mpsc::channel(capacity.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let metrics: MetricsMap = Arc::default();
        let caught_up = Arc::new(CaughtUp::default());
        // Nothing is known until the first discovery round lists the shards.
        caught_up.behind(DISCOVERY);
        let leases = Arc::new(tokio::sync::Mutex::new(leases));
        let breaker = Arc::new(crate::breaker::CircuitBreaker::for_dependency(format!(
            "Kinesis stream {}",
            cfg.stream
        )));
        let co = Coordinator {
            client,
            breaker,
            cfg: Arc::new(cfg),
            checkpoints,
            leases: leases.clone(),
            tx,
            stop: stop.clone(),
            metrics: metrics.clone(),
            caught_up: caught_up.clone(),
            running: HashMap::new(),
        };
        let task = tokio::spawn(co.run());
        Self {
            events,
            metrics,
            caught_up,
            stop,
            leases,
            task,
        }
    }

    /// A flag that stops the readers when set.
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Stops the readers (what they already sent stays in `events`).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Stops everything and gives the leases up: call after the final commit.
    pub async fn shutdown(mut self) {
        self.stop();
        self.task.abort();
        let _ = (&mut self.task).await;
        if let Some(l) = self.leases.lock().await.as_mut() {
            let held: Vec<String> = l.held.keys().cloned().collect();
            for s in held {
                if let Err(e) = l.release(&s).await {
                    tracing::warn!(shard = %s, error = %e, "cannot release lease");
                }
            }
            if let Err(e) = l.store.retire(&l.owner).await {
                tracing::warn!(error = %e, "cannot withdraw worker heartbeat");
            }
        }
    }
}

/// A source dropped without `shutdown` (its run failed) stops too, leaving its leases to
/// expire: no coordinator outlives its run.
impl Drop for StreamSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.abort();
    }
}

struct Coordinator {
    client: aws_sdk_kinesis::Client,
    cfg: Arc<KinesisSourceConfig>,
    checkpoints: Arc<dyn Checkpoints>,
    leases: Arc<tokio::sync::Mutex<Option<Leases>>>,
    tx: mpsc::Sender<SourceEvent>,
    stop: Arc<AtomicBool>,
    metrics: MetricsMap,
    caught_up: Arc<CaughtUp>,
    /// Shared by every shard reader: a dead stream endpoint pauses them all.
    breaker: Arc<crate::breaker::CircuitBreaker>,
    /// Shards with a reader started in this run (kept until their closure is committed).
    running: HashMap<String, tokio::task::JoinHandle<()>>,
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        for h in self.running.values() {
            h.abort();
        }
    }
}

impl Coordinator {
    async fn run(mut self) {
        let mut attempt = 0u32;
        let mut first = true;
        let mut last_report = Instant::now();
        let mut last_counts: HashMap<String, u64> = HashMap::new();
        while !self.stop.load(Ordering::Relaxed) {
            let round = self.round(first).await;
            match &round {
                Ok(_) => self.caught_up.at_tip(DISCOVERY),
                Err(e) => self.caught_up.failed(DISCOVERY, &e.to_string()),
            }
            match round {
                Ok(true) => {
                    first = false;
                    attempt = 0;
                }
                Ok(false) => return,
                Err(e) if e.class() == ErrorClass::Transient => {
                    let wait =
                        backoff(attempt, Duration::from_millis(500), Duration::from_secs(30));
                    tracing::warn!(stream = %self.cfg.stream, error = %e, "shard discovery failed; retrying in {wait:?}");
                    attempt = attempt.saturating_add(1);
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) => {
                    let _ = self.tx.send(SourceEvent::Failed(e)).await;
                    return;
                }
            }
            if last_report.elapsed() >= Duration::from_secs(10) {
                self.report(last_report.elapsed(), &mut last_counts);
                last_report = Instant::now();
            }
            let until = Instant::now() + self.cfg.discovery_interval;
            while Instant::now() < until && !self.stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Per-shard records/s and MillisBehindLatest, in the log.
    fn report(&self, elapsed: Duration, last: &mut HashMap<String, u64>) {
        let Ok(map) = self.metrics.lock() else { return };
        for (shard, m) in map.iter() {
            let n = m.records.load(Ordering::Relaxed);
            let prev = last.insert(shard.clone(), n).unwrap_or(0);
            tracing::info!(
                stream = %self.cfg.stream,
                shard = %shard,
                records_per_sec = ((n - prev) as f64 / elapsed.as_secs_f64()).round(),
                millis_behind_latest = m.millis_behind.load(Ordering::Relaxed),
                retries = m.retries.load(Ordering::Relaxed),
                "shard metrics"
            );
        }
    }

    /// One round of discovery and assignment; `false` once the pipeline must start over.
    async fn round(&mut self, first: bool) -> Result<bool> {
        let shards = list_shards(&self.client, &self.cfg.stream).await?;
        let listed: BTreeSet<&str> = shards.iter().map(|s| s.shard_id()).collect();
        let partitions: Vec<String> = shards
            .iter()
            .map(|s| self.cfg.partition(s.shard_id()))
            .collect();
        let committed = self.checkpoints.committed(&partitions).await?;
        let closed = |id: &str| {
            committed
                .get(&self.cfg.partition(id))
                .map(Offset::is_closed)
                .unwrap_or(false)
        };
        // A parent that is no longer listed has aged out of the stream: nothing to wait for.
        let ready = |s: &Shard| {
            [s.parent_shard_id(), s.adjacent_parent_shard_id()]
                .into_iter()
                .flatten()
                .all(|p| !listed.contains(p) || closed(p))
        };
        let eligible: Vec<&Shard> = shards
            .iter()
            .filter(|s| !closed(s.shard_id()) && ready(s))
            .collect();
        // Readers of shards whose closure is committed are done for good.
        let done: Vec<String> = self
            .running
            .keys()
            .filter(|id| closed(id))
            .cloned()
            .collect();

        let mut guard = self.leases.lock().await;
        let mut wanted: Vec<&Shard> = Vec::new();
        if let Some(leases) = guard.as_mut() {
            for id in &done {
                leases.release(id).await?;
            }
            let ttl = self.cfg.lease_ttl.as_millis() as i64;
            let now = chrono::Utc::now().timestamp_millis();
            leases.store.heartbeat(&leases.owner, now + ttl).await?;
            let lost = leases.renew(ttl).await?;
            if !lost.is_empty() {
                let _ = self.tx.send(SourceEvent::LeaseLost(lost.join(", "))).await;
                return Ok(false);
            }
            let live = leases.store.live_workers().await?;
            let workers = live.len().max(1);
            let share = eligible.len().div_ceil(workers);
            let mine: Vec<&Shard> = eligible
                .iter()
                .copied()
                .filter(|s| leases.held.contains_key(s.shard_id()))
                .collect();
            if mine.len() > share {
                if !first {
                    tracing::info!(stream = %self.cfg.stream, workers, share, held = mine.len(), "more workers: committing, then handing shards over");
                    let _ = self.tx.send(SourceEvent::Rebalance).await;
                    return Ok(false);
                }
                // Nothing read yet in this run: give the extras up at once.
                for s in &mine[share..] {
                    leases.release(s.shard_id()).await?;
                }
            }
            let all = leases.store.read_all().await?;
            let mut count = mine.len().min(share);
            for s in &eligible {
                let id = s.shard_id();
                if leases.held.contains_key(id) {
                    wanted.push(s);
                } else if count < share && leases.try_acquire(id, all.get(id), ttl).await? {
                    tracing::info!(shard = %id, owner = %leases.owner, "lease acquired");
                    count += 1;
                    wanted.push(s);
                } else {
                    // A live worker's shard is its own business; one left by a dead worker
                    // (its lease not yet expired) or by nobody still waits to be read, so
                    // the stream is not caught up.
                    let alive = all.get(id).is_some_and(|(_, l)| {
                        l.expires_ms > now && l.owner != leases.owner && live.contains(&l.owner)
                    });
                    if alive {
                        self.caught_up.remove(id);
                    } else {
                        self.caught_up.behind(id);
                    }
                }
            }
        } else {
            wanted = eligible;
        }
        drop(guard);

        for id in done {
            self.running.remove(&id);
            self.caught_up.remove(&id);
        }
        for s in wanted {
            let id = s.shard_id().to_string();
            if self.running.contains_key(&id) {
                continue;
            }
            let has_parent =
                s.parent_shard_id().is_some() || s.adjacent_parent_shard_id().is_some();
            let metrics = {
                let mut map = self
                    .metrics
                    .lock()
                    .map_err(|_| Error::Config("metrics lock poisoned".into()))?;
                map.entry(id.clone()).or_default().clone()
            };
            let resume = committed.get(&self.cfg.partition(&id)).cloned();
            tracing::info!(shard = %id, resume = ?resume.as_ref().map(|o| o.to_string()), "reading shard");
            self.caught_up.behind(&id);
            let reader = ShardReader {
                client: self.client.clone(),
                cfg: self.cfg.clone(),
                shard_id: id.clone(),
                resume,
                // A child holds only records written after its parents closed: read it all.
                start: if has_parent {
                    StartPosition::TrimHorizon
                } else {
                    self.cfg.start.clone()
                },
                tx: self.tx.clone(),
                stop: self.stop.clone(),
                metrics,
                breaker: self.breaker.clone(),
                caught_up: self.caught_up.clone(),
            };
            self.running.insert(id, tokio::spawn(reader.run()));
        }
        Ok(true)
    }
}
