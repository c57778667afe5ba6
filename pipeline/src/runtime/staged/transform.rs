//! The transform stage: raw segments → table-layout segments (and their dead letters), on a
//! pool of workers that grows with the backlog and shrinks when idle, between configured
//! bounds. Several transform processes may run too: a segment done twice is created once.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use object_store::path::Path as ObjectPath;
use tributary_connectors::{Offset, Position, SourceBatch};

use super::ingest::raw_records;
use super::{SegmentMeta, StageSummary, Staging, decode, encode};
use crate::config::{BadRecordPolicy, Pipeline};
use crate::error::{Error, Result};
use crate::lake::{self, Lake};
use crate::runtime::stage::Stage;

pub struct TransformOptions {
    pub min_workers: usize,
    pub max_workers: usize,
    pub stop: Arc<AtomicBool>,
    /// Exit once no raw segment has arrived for this long (else: once ingest is done and
    /// everything it staged is transformed).
    pub idle_exit: Option<Duration>,
}

/// A worker with nothing to do for this long leaves the pool (down to `min_workers`).
const IDLE_WORKER: Duration = Duration::from_millis(1000);

#[derive(Default)]
struct Pool {
    queue: Mutex<VecDeque<(u64, ObjectPath)>>,
    /// Segments queued or in hand.
    claimed: Mutex<BTreeSet<u64>>,
    workers: AtomicUsize,
    /// Set when the stage ends: workers leave once the queue is empty.
    closing: AtomicBool,
    failed: Mutex<Option<Error>>,
    segments: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
    dead: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub async fn transform(p: &Pipeline, lake: &Lake, opts: &TransformOptions) -> Result<StageSummary> {
    let started = Instant::now();
    let min = opts.min_workers.max(1);
    let max = opts.max_workers.max(min);
    let staging = Staging::open(lake, &p.name)?;
    let stage = open_stage(p, lake).await?;
    let pool = Arc::new(Pool::default());
    let mut peak = 0;
    let mut last_arrival = Instant::now();
    loop {
        let failed = lock(&pool.failed).take();
        if let Some(e) = failed {
            wait_idle(&pool).await;
            return Err(e);
        }
        if opts.stop.load(Ordering::Relaxed) {
            lock(&pool.queue).clear();
            break;
        }
        // An outage of the staging store is neither the end of the input nor idleness.
        let Some(raw) = staging.list_or_outage("raw", &p.name).await? else {
            last_arrival = Instant::now();
            continue;
        };
        {
            let mut claimed = lock(&pool.claimed);
            let mut queue = lock(&pool.queue);
            for (seq, path) in &raw {
                if claimed.insert(*seq) {
                    queue.push_back((*seq, path.clone()));
                    last_arrival = Instant::now();
                }
            }
        }
        let backlog = lock(&pool.queue).len();
        let workers = pool.workers.load(Ordering::Relaxed);
        let want = backlog.clamp(min, max);
        if want > workers {
            tracing::info!(pipeline = %p.name, backlog, "transform workers {workers} → {want}");
            for _ in workers..want {
                pool.workers.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(worker(
                    p.name.clone(),
                    p.on_bad_record,
                    staging.clone(),
                    stage.clone(),
                    pool.clone(),
                    min,
                ));
            }
        }
        peak = peak.max(pool.workers.load(Ordering::Relaxed));
        if raw.is_empty() && lock(&pool.claimed).is_empty() {
            // Done is read before a second listing: a last segment staged between the first
            // listing and ingest's done mark is then seen, not left behind.
            if staging.done().await?.is_some() && staging.list("raw").await?.is_empty() {
                break;
            }
            if let Some(idle) = opts.idle_exit
                && last_arrival.elapsed() >= idle
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_idle(&pool).await;
    let failed = lock(&pool.failed).take();
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(pool.summary(peak, started))
}

/// The decode → transform → partition work for the table's layout. Transform reads the
/// table (its schema), never writes it: the DLQ is the sink's to create.
async fn open_stage(p: &Pipeline, lake: &Lake) -> Result<Arc<Stage>> {
    let main = crate::runtime::setup::open_main(p, lake).await?;
    Ok(Arc::new(crate::runtime::setup::build_stage(p, &main)))
}

impl Pool {
    fn summary(&self, max_workers: usize, started: Instant) -> StageSummary {
        StageSummary {
            stage: "transform",
            segments: self.segments.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            dead_lettered: self.dead.load(Ordering::Relaxed),
            commits: 0,
            max_workers,
            elapsed: started.elapsed(),
        }
    }
}

/// Transforms just these raw segments, one after another (a transform function's
/// notification: Lambda runs as many invocations at once as the backlog needs). A segment
/// already transformed — a repeated notification — is skipped.
pub async fn transform_segments(p: &Pipeline, lake: &Lake, seqs: &[u64]) -> Result<StageSummary> {
    let started = Instant::now();
    let staging = Staging::open(lake, &p.name)?;
    let stage = open_stage(p, lake).await?;
    let pool = Pool::default();
    for &seq in seqs {
        one(
            &p.name,
            p.on_bad_record,
            &staging,
            &stage,
            &pool,
            seq,
            &staging.raw_path(seq),
        )
        .await?;
    }
    Ok(pool.summary(0, started))
}

/// Lets the workers finish what they hold (the queue is left alone or was cleared).
async fn wait_idle(pool: &Pool) {
    lock(&pool.queue).clear();
    pool.closing.store(true, Ordering::Relaxed);
    while pool.workers.load(Ordering::Relaxed) > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn worker(
    pipeline: String,
    policy: BadRecordPolicy,
    staging: Staging,
    stage: Arc<Stage>,
    pool: Arc<Pool>,
    min: usize,
) {
    let mut idle_since = Instant::now();
    loop {
        let next = lock(&pool.queue).pop_front();
        let Some((seq, path)) = next else {
            if pool.closing.load(Ordering::Relaxed) || lock(&pool.failed).is_some() {
                pool.workers.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            let workers = pool.workers.load(Ordering::Relaxed);
            if idle_since.elapsed() >= IDLE_WORKER
                && workers > min
                && pool
                    .workers
                    .compare_exchange(workers, workers - 1, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::info!(pipeline = %pipeline, "transform workers {workers} → {}", workers - 1);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let r = one(&pipeline, policy, &staging, &stage, &pool, seq, &path).await;
        lock(&pool.claimed).remove(&seq);
        if let Err(e) = r {
            lock(&pool.failed).get_or_insert(e);
            pool.workers.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        idle_since = Instant::now();
    }
}

/// Transforms raw segment `seq`: its output (dead letters first, then rows) is created
/// unless there already, then the raw segment goes.
async fn one(
    pipeline: &str,
    policy: BadRecordPolicy,
    staging: &Staging,
    stage: &Arc<Stage>,
    pool: &Pool,
    seq: u64,
    path: &ObjectPath,
) -> Result<()> {
    let bytes = match staging.read(path).await {
        Ok(b) => b,
        // Another transform process finished it meanwhile.
        Err(Error::ObjectStore(object_store::Error::NotFound { .. })) => return Ok(()),
        Err(e) => return Err(e),
    };
    let (meta, batches) = decode(bytes)?;
    let chunk = SourceBatch {
        records: raw_records(&batches)?,
        start: Position {
            partition: meta.partition.clone(),
            offset: meta.start,
        },
        end: Offset::Bytes(meta.end),
        ids: Vec::new(),
    };
    let st = stage.clone();
    let processed = tokio::task::spawn_blocking(move || st.process(chunk, 0))
        .await
        .map_err(|e| Error::Internal(format!("transform worker panicked: {e}")))?;
    let mut bad = processed.bad;
    match policy {
        BadRecordPolicy::Fail if !bad.is_empty() => {
            let b = &bad[0];
            return Err(Error::BadRecord {
                position: format!("{}@{}", b.partition, b.offset),
                reason: format!("{} ({})", b.reason, b.kind),
            });
        }
        BadRecordPolicy::Drop => bad.clear(),
        _ => {}
    }
    let out = SegmentMeta {
        filtered: processed.filtered,
        dead: bad.len() as u64,
        ..meta
    };
    if !bad.is_empty() {
        let schema = lake::dlq_schema();
        let batch = lake::dlq_batch(pipeline, &bad, &schema)?;
        staging
            .create(&staging.dlq_path(seq), encode(&schema, &[batch], &out)?)
            .await?;
    }
    let rows: Vec<_> = processed.parts.into_iter().map(|p| p.batch).collect();
    staging
        .create(
            &staging.out_path(seq),
            encode(&stage.table_schema, &rows, &out)?,
        )
        .await?;
    staging.delete(path).await?;
    pool.segments.fetch_add(1, Ordering::Relaxed);
    pool.records.fetch_add(out.lines, Ordering::Relaxed);
    pool.bytes.fetch_add(out.bytes, Ordering::Relaxed);
    pool.dead.fetch_add(out.dead, Ordering::Relaxed);
    Ok(())
}
