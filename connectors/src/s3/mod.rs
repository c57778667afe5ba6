//! NDJSON objects under an S3 prefix (plain, `.gz`, `.zst`), read in key order and resumed
//! from the lake's commits by object key + ETag (a rewritten object is a new partition and
//! is read again). Objects are streamed through the same line chunker as local files, never
//! loaded whole.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};

use crate::aws::AwsSettings;
use crate::file::{Compression, FileReader, InputFile};
use crate::{Error, Result};

/// An S3 prefix to read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3SourceConfig {
    /// As written: `s3://bucket/prefix/`.
    pub url: String,
    pub bucket: String,
    /// Key prefix, without a trailing slash ("" for the whole bucket).
    pub prefix: String,
    pub aws: AwsSettings,
    /// Keep polling for new objects this often; `None` reads what is there and stops.
    pub poll_interval: Option<Duration>,
}

impl S3SourceConfig {
    /// The objects under the prefix, in key order, with their ETags in their ids.
    pub async fn list(&self, store: &Arc<dyn ObjectStore>) -> Result<Vec<InputFile>> {
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        let mut objects: Vec<object_store::ObjectMeta> =
            store.list(prefix.as_ref()).try_collect().await?;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(objects
            .into_iter()
            // "Folder" markers and empty objects carry no records.
            .filter(|o| o.size > 0 && !o.location.as_ref().ends_with('/'))
            .map(|o| {
                let key = o.location.to_string();
                let etag = o
                    .e_tag
                    .as_deref()
                    .unwrap_or("")
                    .trim_matches('"')
                    .to_string();
                InputFile {
                    path: key.clone().into(),
                    id: format!("s3://{}/{key}#{etag}", self.bucket),
                    size: o.size,
                    compression: Compression::of(std::path::Path::new(&key)),
                }
            })
            .collect())
    }
}

impl S3SourceConfig {
    /// Just these objects (keys in the bucket), as an S3 notification names them; keys
    /// outside the prefix and objects gone since are left out (and logged).
    pub async fn list_keys(
        &self,
        store: &Arc<dyn ObjectStore>,
        keys: &std::collections::BTreeSet<String>,
    ) -> Result<Vec<InputFile>> {
        let mut out = Vec::new();
        for key in keys {
            if !key.starts_with(&self.prefix) {
                tracing::warn!(key, prefix = %self.prefix, "object outside the pipeline's prefix; ignored");
                continue;
            }
            let meta = match store.head(&ObjectPath::from(key.as_str())).await {
                Ok(m) => m,
                Err(object_store::Error::NotFound { .. }) => {
                    tracing::warn!(key, "object named by the notification is gone; ignored");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if meta.size == 0 {
                continue;
            }
            let etag = meta
                .e_tag
                .as_deref()
                .unwrap_or("")
                .trim_matches('"')
                .to_string();
            out.push(InputFile {
                path: key.clone().into(),
                id: format!("s3://{}/{key}#{etag}", self.bucket),
                size: meta.size,
                compression: Compression::of(std::path::Path::new(key)),
            });
        }
        Ok(out)
    }
}

/// Opens an object for chunked reading from `offset` (in its decompressed stream). Must be
/// called off the async runtime (it blocks on `handle` while reading); plain objects start
/// with a ranged GET, compressed ones decompress from the start and skip.
pub fn open(
    store: Arc<dyn ObjectStore>,
    file: &InputFile,
    offset: u64,
    handle: tokio::runtime::Handle,
) -> Result<FileReader> {
    let key = ObjectPath::from(file.path.to_string_lossy().as_ref());
    let plain = file.compression == Compression::None;
    let opts = GetOptions {
        range: (plain && offset > 0).then_some(GetRange::Offset(offset)),
        ..Default::default()
    };
    let result = handle.block_on(store.get_opts(&key, opts))?;
    let stream = result
        .into_stream()
        .map(|r| r.map_err(std::io::Error::other))
        .boxed();
    let reader = tokio_util::io::SyncIoBridge::new_with_handle(
        tokio_util::io::StreamReader::new(stream),
        handle,
    );
    let skip = if plain { 0 } else { offset };
    FileReader::from_read(file, Box::new(reader), offset, skip).map_err(|e| match e {
        Error::Io { path, source } => Error::Io {
            path: format!("s3://{path}"),
            source,
        },
        other => other,
    })
}
