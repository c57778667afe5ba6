//! Feeding the workers: what each source kind hands the pipeline, as one kind of message.
//! Files and S3 objects are read on a thread of their own (plain blocking reads and
//! decompression); Kinesis shards are read by async tasks of the connector.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use object_store::ObjectStore;
use tokio::sync::mpsc;
use tributary_connectors::SourceBatch;
use tributary_connectors::caught_up::CaughtUp;
use tributary_connectors::file::{FileReader, InputFile};
use tributary_connectors::kinesis::{SourceEvent, StreamSource};
use tributary_connectors::s3::{self, S3SourceConfig};

use crate::error::{Error, Result};

/// Bytes of input handed to one decode worker at a time (at most; `batch_size` caps the
/// records).
pub(super) const CHUNK_BYTES: usize = 4 << 20;

pub(super) enum Msg {
    /// A chunk and the byte offset below which its bad records are already dead-lettered.
    Chunk(SourceBatch, u64),
    Failed(Error),
    /// Start over from the lake's positions; `flush` first if what is in hand may be
    /// committed (a rebalance), not if a lease was lost.
    Restart {
        flush: bool,
        reason: String,
    },
}

/// One input (file or object) to read from an offset.
pub(super) struct Work {
    pub file: InputFile,
    pub offset: u64,
    pub dlq_offset: u64,
}

/// How to open an input for reading.
#[derive(Clone)]
pub(super) enum Opener {
    Local,
    S3(Arc<dyn ObjectStore>, tokio::runtime::Handle),
}

impl Opener {
    fn open(&self, file: &InputFile, offset: u64) -> Result<FileReader> {
        Ok(match self {
            Opener::Local => FileReader::open(file, offset)?,
            Opener::S3(store, handle) => s3::open(store.clone(), file, offset, handle.clone())?,
        })
    }
}

/// Polling for new S3 objects after the first listing.
pub(super) struct Poll {
    pub source: S3SourceConfig,
    pub store: Arc<dyn ObjectStore>,
    pub interval: Duration,
    /// Ids listed already (read, or complete before this run).
    pub seen: HashSet<String>,
    /// Caught up: the last listing succeeded and everything it found was read.
    pub caught_up: Arc<CaughtUp>,
}

/// The part of a polled prefix's caught-up state: its listing.
const LISTING: &str = "listing";

impl Poll {
    /// Behind until a listing after the first inputs finds nothing unread.
    pub fn tracker() -> Arc<CaughtUp> {
        let c = Arc::new(CaughtUp::default());
        c.behind(LISTING);
        c
    }
}

/// Reads the inputs in order from their committed offsets, then (S3 with a poll interval)
/// keeps listing for new objects until stopped.
pub(super) fn spawn_reader(
    work: Vec<Work>,
    opener: Opener,
    poll: Option<Poll>,
    batch_size: usize,
    tx: mpsc::Sender<Msg>,
    stops: [Arc<AtomicBool>; 2],
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        // Stopped by the user (Ctrl-C / SIGTERM) or by the run (idle, error).
        let stopped = || stops.iter().any(|s| s.load(Ordering::Relaxed));
        let read_one = |w: &Work| -> bool {
            let mut reader = match opener.open(&w.file, w.offset) {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.blocking_send(Msg::Failed(e));
                    return false;
                }
            };
            loop {
                if stopped() {
                    return false;
                }
                match reader.next_chunk(CHUNK_BYTES, batch_size) {
                    Ok(Some(chunk)) => {
                        if tx.blocking_send(Msg::Chunk(chunk, w.dlq_offset)).is_err() {
                            return false;
                        }
                    }
                    Ok(None) => return true,
                    Err(e) => {
                        let _ = tx.blocking_send(Msg::Failed(e.into()));
                        return false;
                    }
                }
            }
        };
        for w in &work {
            if !read_one(w) {
                return;
            }
        }
        let (Some(mut poll), Opener::S3(_, handle)) = (poll, &opener) else {
            return;
        };
        loop {
            let until = std::time::Instant::now() + poll.interval;
            while std::time::Instant::now() < until {
                if stopped() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let listed = match handle.block_on(poll.source.list(&poll.store)) {
                Ok(l) => l,
                Err(e) => {
                    // Not idleness: --idle-exit waits until a listing succeeds again.
                    poll.caught_up.failed(LISTING, &e.to_string());
                    tracing::warn!(source = %poll.source.url, error = %e, "listing new objects failed; trying again next poll");
                    continue;
                }
            };
            for file in listed {
                if poll.seen.insert(file.id.clone()) {
                    poll.caught_up.behind(LISTING);
                    tracing::info!(object = %file.id, "new object");
                    let w = Work {
                        file,
                        offset: 0,
                        dlq_offset: 0,
                    };
                    if !read_one(&w) {
                        return;
                    }
                }
            }
            poll.caught_up.at_tip(LISTING);
        }
    })
}

/// Forwards a Kinesis source's events as messages.
pub(super) fn forward_stream(
    mut source: StreamSource,
    tx: mpsc::Sender<Msg>,
) -> tokio::task::JoinHandle<StreamSource> {
    tokio::spawn(async move {
        while let Some(ev) = source.events.recv().await {
            let msg = match ev {
                SourceEvent::Batch(b) => Msg::Chunk(b, 0),
                SourceEvent::Failed(e) => Msg::Failed(e.into()),
                SourceEvent::LeaseLost(s) => Msg::Restart {
                    flush: false,
                    reason: format!("lease lost on {s}"),
                },
                SourceEvent::Rebalance => Msg::Restart {
                    flush: true,
                    reason: "workers changed".into(),
                },
            };
            let end = matches!(msg, Msg::Failed(_) | Msg::Restart { .. });
            if tx.send(msg).await.is_err() || end {
                break;
            }
        }
        source
    })
}
