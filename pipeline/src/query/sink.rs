//! Where a query's result batches go as they arrive, and the memory they are counted
//! against: one pool per query (the CLI), or one for every query of a server.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::compact;
use crate::error::{Error, Result};

/// A memory pool of `bytes`, naming its largest consumers when it refuses one.
pub fn memory_pool(bytes: usize) -> Arc<dyn datafusion::execution::memory_pool::MemoryPool> {
    use datafusion::execution::memory_pool::{GreedyMemoryPool, TrackConsumersPool};
    Arc::new(TrackConsumersPool::new(
        GreedyMemoryPool::new(bytes),
        std::num::NonZeroUsize::MIN.saturating_add(4),
    ))
}

/// Where a query's result batches go as they arrive (on the query runtime).
pub trait ResultSink: Send + 'static {
    fn write(&mut self, batch: RecordBatch) -> Result<()>;
}

/// Results held in memory, each batch reserved from the query's memory pool: a result
/// larger than `query.memory_mb` is refused instead of growing the process without bound.
pub(super) struct Collect {
    pub(super) batches: Vec<RecordBatch>,
    pub(super) reservation: datafusion::execution::memory_pool::MemoryReservation,
}

impl ResultSink for Collect {
    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        let batch = compact::compact(&batch)?;
        if self
            .reservation
            .try_grow(batch.get_array_memory_size())
            .is_err()
        {
            return Err(Error::Query(format!(
                "query cancelled: its result needs more memory than query.memory_mb allows \
                 ({} MB held so far); add a LIMIT, or page it through `tributary serve`",
                self.reservation.size() >> 20
            )));
        }
        self.batches.push(batch);
        Ok(())
    }
}

/// What a run reports besides its batches.
pub struct RunStats {
    pub schema: SchemaRef,
    pub rows: u64,
    pub bytes_scanned: u64,
    pub files_scanned: u64,
    pub files_pruned: u64,
    pub elapsed: std::time::Duration,
}
