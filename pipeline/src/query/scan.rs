//! Counting (and capping) the bytes a query reads from the lake, like Athena's "data
//! scanned": the lake's object store is wrapped so every read is counted, and a read that
//! would pass the cap fails the query with an error naming the limit.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// Bytes read by the current query, the cap (0 = none), and the data files it opened.
#[derive(Debug, Default)]
pub struct ScanMeter {
    pub read: AtomicU64,
    pub limit: AtomicU64,
    pub files: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl ScanMeter {
    pub fn reset(&self, limit: u64) {
        self.read.store(0, Ordering::Relaxed);
        self.limit.store(limit, Ordering::Relaxed);
        if let Ok(mut f) = self.files.lock() {
            f.clear();
        }
    }

    pub fn files_read(&self) -> usize {
        self.files.lock().map(|f| f.len()).unwrap_or(0)
    }

    fn note(&self, location: &Path) {
        if location.as_ref().ends_with(".parquet")
            && let Ok(mut f) = self.files.lock()
        {
            f.insert(location.to_string());
        }
    }

    fn charge(&self, n: u64) -> Result<()> {
        let total = self.read.fetch_add(n, Ordering::Relaxed) + n;
        let limit = self.limit.load(Ordering::Relaxed);
        if limit > 0 && total > limit {
            return Err(object_store::Error::Generic {
                store: "lake",
                source: format!(
                    "query cancelled: it would scan more than {limit} bytes (query.max_bytes_scanned)"
                )
                .into(),
            });
        }
        Ok(())
    }
}

pub struct MeteredStore {
    inner: Arc<dyn ObjectStore>,
    meter: Arc<ScanMeter>,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn ObjectStore>, meter: Arc<ScanMeter>) -> Self {
        Self { inner, meter }
    }
}

impl fmt::Debug for MeteredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MeteredStore({})", self.inner)
    }
}

impl fmt::Display for MeteredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MeteredStore({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for MeteredStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let head = options.head;
        let r = self.inner.get_opts(location, options).await?;
        if !head {
            self.meter.note(location);
            self.meter.charge(r.range.end - r.range.start)?;
        }
        Ok(r)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.meter.note(location);
        self.meter
            .charge(ranges.iter().map(|r| r.end - r.start).sum())?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
