//! A pipeline split into stage processes (`tributary run NAME --stage ingest|transform|sink`),
//! each started, scaled and restarted on its own, handing work over through durable staging:
//! Arrow IPC segments under `<lake>/_tributary/staging/<pipeline>/`.
//!
//! - **ingest** reads the source and writes `raw/<seq>.arrow` (one chunk of input lines and
//!   the source position it ends at), numbered in read order;
//! - **transform** decodes, dedupes, transforms and partitions each raw segment into
//!   `out/<seq>.arrow` (table layout) and `out/<seq>.dlq.arrow` (bad records), then deletes
//!   the raw one; a pool of workers grows and shrinks with the backlog;
//! - **sink** commits `out/` segments in sequence order to the table and its DLQ, each commit
//!   carrying the last sequence number (a Delta app transaction) and the source positions,
//!   then deletes them.
//!
//! Exactly once: segments are created with create-only puts (a re-done step finds its output
//! there and moves on), a transform's output is a pure function of its input, and the sink
//! skips any segment at or below the sequence number committed in each table. Ingest resumes
//! after the furthest of the committed positions and the staged segments.

mod ingest;
mod sink;
mod transform;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

pub use ingest::ingest;
pub use sink::sink;
pub use transform::{TransformOptions, transform, transform_segments};

use crate::error::{Error, Result};
use crate::lake::Lake;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StageKind {
    /// Read the source into raw segments.
    Ingest,
    /// Decode, transform and partition raw segments (a pool of workers).
    Transform,
    /// Commit transformed segments to the table and its DLQ, in order.
    Sink,
}

/// What a stage did, for its closing line.
#[derive(Debug, Default)]
pub struct StageSummary {
    pub stage: &'static str,
    pub segments: u64,
    pub records: u64,
    pub bytes: u64,
    pub dead_lettered: u64,
    pub commits: u64,
    pub max_workers: usize,
    pub elapsed: std::time::Duration,
}

impl std::fmt::Display for StageSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} segments, {} records ({:.1} MB), {} dead-lettered, {} commits, {:.2} s",
            self.stage,
            self.segments,
            self.records,
            self.bytes as f64 / 1e6,
            self.dead_lettered,
            self.commits,
            self.elapsed.as_secs_f64()
        )?;
        if self.max_workers > 0 {
            write!(f, ", up to {} workers", self.max_workers)?;
        }
        Ok(())
    }
}

/// What a segment carries besides its rows (kept in the IPC schema's metadata).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SegmentMeta {
    pub seq: u64,
    /// The source partition (file or object id) and where in it the chunk starts and ends.
    pub partition: String,
    pub start: u64,
    pub end: u64,
    /// Input lines and bytes of the chunk.
    pub lines: u64,
    pub bytes: u64,
    /// After transform: rows filtered out, and bad records (in the `.dlq.arrow` twin).
    #[serde(default)]
    pub filtered: u64,
    #[serde(default)]
    pub dead: u64,
}

const META_KEY: &str = "tributary.segment";
/// The Delta app transaction (per table) holding the last committed segment.
pub(crate) fn stage_txn_id(pipeline: &str) -> String {
    crate::lake::app_id(pipeline, "_staged")
}

/// How long a stage's lease lasts unrenewed: a killed ingest or sink blocks its successor
/// for at most this long.
const LEASE_TTL_MS: i64 = 10_000;

/// One ingest and one sink per pipeline: each holds a lease in the lake
/// (`_tributary/leases/<pipeline>-stages/`), renewed as it works. A second one waits until the
/// first's lease is released, or has expired (a killed process's).
pub(crate) struct StageLease {
    leases: tributary_connectors::kinesis::Leases,
    stage: &'static str,
    renewed: std::time::Instant,
}

impl StageLease {
    /// Waits for the lease; `None` if stopped while waiting.
    pub async fn acquire(
        lake: &Lake,
        pipeline: &str,
        stage: &'static str,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Result<Option<Self>> {
        let store = lake.lease_store(&format!("{pipeline}-stages"))?;
        let owner = format!(
            "{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let mut leases = tributary_connectors::kinesis::Leases::new(store.clone(), owner);
        let mut told = false;
        loop {
            let all = store.read_all().await?;
            let current = all.get(stage);
            if leases.try_acquire(stage, current, LEASE_TTL_MS).await? {
                return Ok(Some(Self {
                    leases,
                    stage,
                    renewed: std::time::Instant::now(),
                }));
            }
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(None);
            }
            if !told && let Some((_, held)) = current {
                tracing::warn!(
                    pipeline,
                    stage,
                    holder = %held.owner,
                    "another {stage} process of this pipeline holds its lease; waiting until it stops or its lease expires (at most {} s)",
                    LEASE_TTL_MS / 1000
                );
                told = true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    /// Renews the lease when a third of its time has passed; an error if another process
    /// took it over (this one stalled past the lease's time).
    pub async fn keep(&mut self) -> Result<()> {
        if self.renewed.elapsed().as_millis() as i64 >= LEASE_TTL_MS / 3 {
            if !self.leases.renew(LEASE_TTL_MS).await?.is_empty() {
                return Err(Error::Usage(format!(
                    "another {} process took this pipeline's {} lease over (this one stalled longer than {} s); stopping",
                    self.stage,
                    self.stage,
                    LEASE_TTL_MS / 1000
                )));
            }
            self.renewed = std::time::Instant::now();
        }
        Ok(())
    }

    pub async fn release(mut self) -> Result<()> {
        Ok(self.leases.release(self.stage).await?)
    }
}

/// A pipeline's staging area.
#[derive(Clone)]
pub struct Staging {
    store: Arc<dyn ObjectStore>,
    root: ObjectPath,
    /// The staging folder of a local lake (where killed writes leave partial files).
    local: Option<std::path::PathBuf>,
}

/// Written by ingest when its input is read to the end: `{"last_seq": N}`.
const DONE: &str = "ingest.done";

impl Staging {
    pub fn open(lake: &Lake, pipeline: &str) -> Result<Self> {
        let (store, root) = lake.meta_store(&format!("staging/{pipeline}"))?;
        let local = lake
            .local_root()
            .map(|r| r.join("_tributary/staging").join(pipeline));
        Ok(Self { store, root, local })
    }

    /// Removes the partial files that writes killed mid-put leave in a local lake's `dir`
    /// (`<name>#<digits>`: object_store writes there, then links into place; listings skip
    /// them, so nothing reads them, but they would pile up), if at least `min_age` old. Only
    /// a stage that is the sole writer of `dir` may pass zero. S3 puts leave nothing.
    pub fn sweep_partial(&self, dir: &str, min_age: std::time::Duration) -> usize {
        let Some(root) = &self.local else {
            return 0;
        };
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            return 0;
        };
        let mut removed = 0;
        for e in entries.flatten() {
            let name = e.file_name();
            let partial =
                name.to_str()
                    .and_then(|n| n.rsplit_once('#'))
                    .is_some_and(|(_, suffix)| {
                        !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit())
                    });
            let old_enough = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= min_age);
            if partial && old_enough && std::fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(
                dir,
                removed,
                "removed partial staging files left by killed writes"
            );
        }
        removed
    }

    fn path(&self, dir: &str, name: &str) -> ObjectPath {
        self.root.clone().join(dir).join(name)
    }

    pub fn raw_path(&self, seq: u64) -> ObjectPath {
        self.path("raw", &format!("{seq:020}.arrow"))
    }

    pub fn out_path(&self, seq: u64) -> ObjectPath {
        self.path("out", &format!("{seq:020}.arrow"))
    }

    pub fn dlq_path(&self, seq: u64) -> ObjectPath {
        self.path("out", &format!("{seq:020}.dlq.arrow"))
    }

    /// `list`, through an outage of the staging store: a transient failure is logged and
    /// waited out (half a second) and answers `None`, so the stage retries and restarts its
    /// idle window instead of failing or taking the outage for idleness.
    pub async fn list_or_outage(
        &self,
        dir: &str,
        pipeline: &str,
    ) -> Result<Option<BTreeMap<u64, ObjectPath>>> {
        match self.list(dir).await {
            Ok(listed) => Ok(Some(listed)),
            Err(e) if e.class() == crate::error::ErrorClass::Transient => {
                tracing::warn!(pipeline, dir, error = %e, "listing staged segments failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Sequence numbers of the complete segments in `dir` (`raw` or `out`), in order.
    pub async fn list(&self, dir: &str) -> Result<BTreeMap<u64, ObjectPath>> {
        let prefix = self.root.clone().join(dir);
        let objects: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        Ok(objects
            .into_iter()
            .filter_map(|o| {
                let name = o.location.filename()?;
                let seq = name.strip_suffix(".arrow")?.parse::<u64>().ok()?;
                Some((seq, o.location))
            })
            .collect())
    }

    /// Creates `path` unless it exists; `false` if it did (a re-done step: the earlier
    /// output stands, and is identical).
    pub async fn create(&self, path: &ObjectPath, bytes: Vec<u8>) -> Result<bool> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(path, PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn read(&self, path: &ObjectPath) -> Result<bytes::Bytes> {
        Ok(self.store.get(path).await?.bytes().await?)
    }

    pub async fn delete(&self, path: &ObjectPath) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The last segment of a finished ingest, if ingest has finished.
    pub async fn done(&self) -> Result<Option<u64>> {
        match self.store.get(&self.path("", DONE)).await {
            Ok(r) => {
                let v: serde_json::Value = serde_json::from_slice(&r.bytes().await?)
                    .map_err(|e| Error::Internal(format!("{DONE}: {e}")))?;
                Ok(v["last_seq"].as_u64())
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn set_done(&self, last_seq: Option<u64>) -> Result<()> {
        let path = self.path("", DONE);
        match last_seq {
            Some(n) => {
                let body = serde_json::json!({ "last_seq": n }).to_string();
                self.store
                    .put(&path, PutPayload::from(body.into_bytes()))
                    .await?;
                Ok(())
            }
            None => self.delete(&path).await,
        }
    }
}

/// One IPC file: `batches` (all of `schema`) with `meta` in the schema's metadata.
pub fn encode(schema: &SchemaRef, batches: &[RecordBatch], meta: &SegmentMeta) -> Result<Vec<u8>> {
    let mut md: HashMap<String, String> = schema.metadata().clone();
    md.insert(
        META_KEY.into(),
        serde_json::to_string(meta).map_err(|e| Error::Internal(format!("segment meta: {e}")))?,
    );
    let schema = Arc::new(schema.as_ref().clone().with_metadata(md));
    let mut out = Vec::new();
    {
        let mut w = arrow::ipc::writer::FileWriter::try_new(&mut out, &schema)?;
        for b in batches {
            w.write(&b.clone().with_schema(schema.clone())?)?;
        }
        w.finish()?;
    }
    Ok(out)
}

/// Reads back what `encode` wrote.
pub fn decode(bytes: bytes::Bytes) -> Result<(SegmentMeta, Vec<RecordBatch>)> {
    let r = arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None)?;
    let meta = r
        .schema()
        .metadata()
        .get(META_KEY)
        .and_then(|m| serde_json::from_str::<SegmentMeta>(m).ok())
        .ok_or_else(|| Error::Internal("a staged segment without its metadata".into()))?;
    let batches = r.collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((meta, batches))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BinaryArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::time::Duration;

    #[tokio::test]
    async fn partial_files_of_killed_writes_are_swept_and_never_listed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("staging");
        std::fs::create_dir_all(root.join("raw")).unwrap();
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let staging = Staging {
            store: Arc::new(fs),
            root: ObjectPath::from("staging"),
            local: Some(root.clone()),
        };
        assert!(
            staging
                .create(&staging.raw_path(1), b"x".to_vec())
                .await
                .unwrap()
        );
        let partial = root.join("raw").join(format!("{:020}.arrow#3", 2));
        std::fs::write(&partial, b"half").unwrap();
        std::fs::write(root.join("raw/notes#draft"), b"kept").unwrap();
        assert_eq!(staging.list("raw").await.unwrap().len(), 1);
        // Too young for a one-hour minimum age: a live write's, perhaps.
        assert_eq!(staging.sweep_partial("raw", Duration::from_secs(3600)), 0);
        assert_eq!(staging.sweep_partial("raw", Duration::ZERO), 1);
        assert!(!partial.exists());
        assert!(root.join("raw/notes#draft").exists());
        assert_eq!(staging.list("raw").await.unwrap().len(), 1);
        assert_eq!(staging.sweep_partial("out", Duration::ZERO), 0);
    }

    #[test]
    fn segments_round_trip_with_their_metadata() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])
            .unwrap();
        let meta = SegmentMeta {
            seq: 7,
            partition: "/in/a.ndjson".into(),
            start: 10,
            end: 99,
            lines: 2,
            bytes: 89,
            filtered: 0,
            dead: 1,
        };
        let (m, batches) = decode(encode(&schema, &[b.clone(), b], &meta).unwrap().into()).unwrap();
        assert_eq!(m, meta);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[1].num_rows(), 2);
        let raw = Arc::new(Schema::new(vec![Field::new("r", DataType::Binary, false)]));
        let b = RecordBatch::try_new(
            raw.clone(),
            vec![Arc::new(BinaryArray::from(vec![b"{}".as_ref()]))],
        )
        .unwrap();
        assert!(decode(bytes::Bytes::from_static(b"not arrow")).is_err());
        let (_, back) = decode(encode(&raw, &[b], &meta).unwrap().into()).unwrap();
        assert_eq!(back[0].num_rows(), 1);
    }
}
