//! The lake: a folder (or object-store prefix) of Delta Lake tables, one per name.
//! The table's own log is the pipeline's checkpoint store: each commit carries Delta `txn`
//! entries (`tributary/<pipeline>/<source partition>` → committed offset).

mod partition;
mod sink;

mod checkpoint;
pub mod evolution;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::{DeltaTable, DeltaTableError};
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use tributary_connectors::aws::{AwsSettings, parse_s3_url};
use tributary_connectors::kinesis::LeaseStore;
use url::Url;

pub use checkpoint::{LakeCheckpoints, committed_offsets, offset_txns, txn};

pub use partition::{PartBatch, add_partition_columns, split_by_partition};
pub use sink::{CommitStats, TableSink, WriterSettings, dlq_batch, dlq_schema};

use crate::error::{Error, Result};

/// Where the lake lives.
#[derive(Clone)]
enum Location {
    Local(PathBuf),
    /// `store` is the bucket's root store; tables live under `prefix`.
    S3 {
        bucket: String,
        prefix: String,
        store: Arc<dyn ObjectStore>,
    },
}

#[derive(Clone)]
pub struct Lake {
    location: Location,
    /// Tables loaded for queries, kept so a long-lived process (the query server) reads
    /// only the commits made since, not the whole log, for each query.
    loaded: Arc<tokio::sync::Mutex<HashMap<String, DeltaTable>>>,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lake({})", self.display())
    }
}

impl Lake {
    /// A lake at a local folder (created if missing) or at `s3://bucket/prefix` (reached
    /// with `s3`, the standard AWS chain plus overrides).
    pub async fn open(location: &str, s3: &AwsSettings) -> Result<Self> {
        if let Some((bucket, prefix)) = parse_s3_url(location) {
            let store = tributary_connectors::aws::s3_store(&bucket, s3).await?;
            return Ok(Self {
                location: Location::S3 {
                    bucket,
                    prefix,
                    store,
                },
                loaded: Default::default(),
            });
        }
        let root = PathBuf::from(location.trim_start_matches("file://"));
        std::fs::create_dir_all(&root)
            .map_err(|e| Error::io(format!("cannot create lake folder {}", root.display()), e))?;
        let root = std::fs::canonicalize(&root).unwrap_or(root);
        Ok(Self {
            location: Location::Local(root),
            loaded: Default::default(),
        })
    }

    /// The lake's location, for messages.
    pub fn display(&self) -> String {
        match &self.location {
            Location::Local(p) => p.display().to_string(),
            Location::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// The object path of `name` under an S3 lake's prefix.
    fn s3_path(prefix: &str, name: &str) -> ObjectPath {
        if prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{prefix}/{name}"))
        }
    }

    pub fn table_url(&self, name: &str) -> Result<Url> {
        check_table_name(name)?;
        match &self.location {
            Location::Local(root) => {
                let path = root.join(name);
                std::fs::create_dir_all(&path).map_err(|e| {
                    Error::io(format!("cannot create table folder {}", path.display()), e)
                })?;
                Url::from_directory_path(&path).map_err(|_| {
                    Error::Internal(format!("not an absolute path: {}", path.display()))
                })
            }
            Location::S3 { bucket, prefix, .. } => {
                Url::parse(&format!("s3://{bucket}/{}/", Self::s3_path(prefix, name)))
                    .map_err(|e| Error::Internal(format!("table URL: {e}")))
            }
        }
    }

    /// For DataFusion: the URL prefix data files are read under, and its store (`None` for
    /// local lakes, which DataFusion reads by itself).
    pub fn object_store(&self) -> Option<(Url, Arc<dyn ObjectStore>)> {
        match &self.location {
            Location::Local(_) => None,
            Location::S3 { bucket, store, .. } => Url::parse(&format!("s3://{bucket}"))
                .ok()
                .map(|u| (u, store.clone())),
        }
    }

    /// The lake's folder, for a local lake.
    pub fn local_root(&self) -> Option<&std::path::Path> {
        match &self.location {
            Location::Local(root) => Some(root),
            Location::S3 { .. } => None,
        }
    }

    /// The lake's own bookkeeping area `<lake>/_tributary/<area>/` (leases, query history,
    /// query results), as a store and the path prefix within it.
    pub fn meta_store(&self, area: &str) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
        match &self.location {
            Location::Local(root) => {
                let fs = object_store::local::LocalFileSystem::new_with_prefix(root)?;
                Ok((Arc::new(fs), ObjectPath::from(format!("_tributary/{area}"))))
            }
            Location::S3 { prefix, store, .. } => Ok((
                store.clone(),
                Self::s3_path(prefix, &format!("_tributary/{area}")),
            )),
        }
    }

    /// Where a pipeline's shard leases live: `<lake>/_tributary/leases/<pipeline>/`.
    pub fn lease_store(&self, pipeline: &str) -> Result<LeaseStore> {
        let (store, prefix) = self.meta_store(&format!("leases/{pipeline}"))?;
        Ok(LeaseStore::new(store, prefix))
    }

    /// Names of the Delta tables in the lake, sorted.
    pub async fn tables(&self) -> Result<Vec<String>> {
        let mut names = BTreeSet::new();
        match &self.location {
            Location::Local(root) => {
                let rd = match std::fs::read_dir(root) {
                    Ok(rd) => rd,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
                    Err(e) => {
                        return Err(Error::io(format!("cannot list {}", root.display()), e));
                    }
                };
                for entry in rd.flatten() {
                    if entry.path().join("_delta_log").is_dir()
                        && let Some(n) = entry.file_name().to_str()
                    {
                        names.insert(n.to_string());
                    }
                }
            }
            Location::S3 { prefix, store, .. } => {
                let root = (!prefix.is_empty()).then(|| ObjectPath::from(prefix.as_str()));
                let listing = store.list_with_delimiter(root.as_ref()).await?;
                for dir in listing.common_prefixes {
                    let Some(name) = dir.filename().map(str::to_string) else {
                        continue;
                    };
                    if name.starts_with('_') {
                        continue;
                    }
                    if self.has_log(&name).await? {
                        names.insert(name);
                    }
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    async fn has_log(&self, name: &str) -> Result<bool> {
        check_table_name(name)?;
        match &self.location {
            Location::Local(root) => Ok(root.join(name).join("_delta_log").is_dir()),
            Location::S3 { prefix, store, .. } => {
                let log = Self::s3_path(prefix, &format!("{name}/_delta_log"));
                let listing = store.list_with_delimiter(Some(&log)).await?;
                Ok(!listing.objects.is_empty() || !listing.common_prefixes.is_empty())
            }
        }
    }

    /// A handle on a table's location (not loaded).
    fn handle(&self, name: &str) -> Result<DeltaTable> {
        let url = self.table_url(name)?;
        match &self.location {
            Location::Local(_) => Ok(deltalake::DeltaTableBuilder::from_url(url)?.build()?),
            Location::S3 { prefix, store, .. } => {
                // The default log store commits with a create-only put (`If-None-Match: *`),
                // which the S3 server enforces: no lock service, no unsafe rename.
                let prefixed: Arc<dyn ObjectStore> =
                    Arc::new(PrefixStore::new(store.clone(), Self::s3_path(prefix, name)));
                let log_store = deltalake::logstore::default_logstore(
                    prefixed,
                    store.clone(),
                    &url,
                    &deltalake::logstore::StorageConfig::default(),
                );
                Ok(DeltaTable::new(log_store))
            }
        }
    }

    /// A handle on a table that may not exist yet (for writers that create it).
    pub fn unloaded(&self, name: &str) -> Result<DeltaTable> {
        self.handle(name)
    }

    /// Opens an existing table; `None` if there is none of that name.
    pub async fn load(&self, name: &str) -> Result<Option<DeltaTable>> {
        if !self.has_log(name).await? {
            return Ok(None);
        }
        let mut table = self.handle(name)?;
        match table.load().await {
            Ok(()) => Ok(Some(table)),
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The latest version of a table, for reading: loaded once, then brought up to date
    /// with the commits since (one listing of its log). `None` if there is no such table.
    pub async fn load_latest(&self, name: &str) -> Result<Option<DeltaTable>> {
        let cached = self.loaded.lock().await.get(name).cloned();
        let table = match cached {
            Some(mut t) => {
                // The version held must still be in the log (a table dropped and created
                // again starts over), else load it afresh.
                let held = match t.version() {
                    Some(v) => t.log_store().read_commit_entry(v).await.ok().flatten(),
                    None => None,
                };
                match (held, t.update_state().await) {
                    (Some(_), Ok(())) => Some(t),
                    _ => self.load(name).await?,
                }
            }
            None => self.load(name).await?,
        };
        let mut loaded = self.loaded.lock().await;
        match &table {
            Some(t) => loaded.insert(name.to_string(), t.clone()),
            None => loaded.remove(name),
        };
        Ok(table)
    }

    /// Opens a table, creating it with `schema` and `partitions` if it does not exist. An
    /// existing table gains the schema's new nullable columns; incompatible changes are
    /// refused with a migration to follow (`evolution`).
    pub async fn open_or_create(
        &self,
        name: &str,
        schema: &SchemaRef,
        partitions: &[String],
        description: Option<&str>,
    ) -> Result<DeltaTable> {
        let kernel: StructType = schema.as_ref().try_into_kernel().map_err(|e| {
            Error::Internal(format!(
                "table `{name}`: schema has no Delta equivalent: {e}"
            ))
        })?;
        if let Some(t) = self.load(name).await? {
            return evolve(name, t, &kernel, partitions).await;
        }
        // Built, not loaded: there is no log yet to load.
        let table = self.handle(name)?;
        let mut create = table
            .create()
            .with_table_name(name)
            .with_columns(kernel.fields().cloned())
            .with_partition_columns(partitions.iter().cloned())
            // Version 0 or nothing: retried at a later version, a losing create would commit
            // a second CREATE over the winner's table.
            .with_commit_properties(
                deltalake::kernel::transaction::CommitProperties::default().with_max_retries(0),
            );
        if let Some(d) = description {
            create = create.with_comment(d);
        }
        match create.await {
            Ok(t) => Ok(t),
            // Another writer created it first: use theirs.
            Err(e) => match self.load(name).await? {
                Some(theirs) => Ok(theirs),
                None => Err(e.into()),
            },
        }
    }
}

/// What `open_or_create` does with an existing table whose schema file changed.
/// A table is one folder directly under the lake: a name that would resolve elsewhere (an
/// absolute path, `..`, a separator) or into the lake's bookkeeping is refused, so no query
/// (time travel takes a name as text) reads outside the lake's tables.
pub fn check_table_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.starts_with('.')
        || name == "_tributary"
        || name.len() > 255
        || name
            .chars()
            .any(|c| matches!(c, '/' | '\\' | ':') || c.is_control());
    if bad {
        return Err(Error::Query(format!(
            "`{}` is not a table name: a table is named by its folder directly under the lake \
             (no paths)",
            name.escape_debug()
        )));
    }
    Ok(())
}

pub fn schema_verdict(
    name: &str,
    table: &DeltaTable,
    schema: &SchemaRef,
    partitions: &[String],
) -> Result<evolution::Verdict> {
    let kernel: StructType = schema
        .as_ref()
        .try_into_kernel()
        .map_err(|e| Error::Internal(format!("table `{name}`: no Delta schema: {e}")))?;
    let snapshot = table.snapshot()?;
    Ok(evolution::compare(
        name,
        snapshot.schema().as_ref(),
        snapshot.metadata().partition_columns(),
        &kernel,
        partitions,
    ))
}

/// Applies the schema file to an existing table: nothing, new columns, or a refusal.
async fn evolve(
    name: &str,
    table: DeltaTable,
    wanted: &StructType,
    partitions: &[String],
) -> Result<DeltaTable> {
    let snapshot = table.snapshot()?;
    let verdict = evolution::compare(
        name,
        snapshot.schema().as_ref(),
        snapshot.metadata().partition_columns(),
        wanted,
        partitions,
    );
    match verdict {
        evolution::Verdict::Same => Ok(table),
        evolution::Verdict::AddColumns(fields) => {
            let names: Vec<String> = fields.iter().map(|f| f.name().to_string()).collect();
            tracing::info!(table = name, columns = ?names, "schema evolution: adding nullable columns");
            Ok(table.add_columns().with_fields(fields).await?)
        }
        evolution::Verdict::Refused(r) => Err(Error::Usage(
            r.iter()
                .map(|r| format!("{}\n  migration: {}", r.message, r.migration))
                .collect::<Vec<_>>()
                .join("\n"),
        )),
    }
}

/// Committed offset per source partition for a pipeline, read from a table's `txn` entries.
pub async fn committed_offset(table: &DeltaTable, app_id: &str) -> Result<u64> {
    let snapshot = table.snapshot()?;
    let v = snapshot
        .transaction_version(table.log_store().as_ref(), app_id)
        .await?;
    Ok(v.map(|v| v.max(0) as u64).unwrap_or(0))
}

pub fn app_id(pipeline: &str, partition: &str) -> String {
    format!("tributary/{pipeline}/{partition}")
}

/// Facts about one table for `tributary tables`.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub name: String,
    pub version: i64,
    pub rows: u64,
    pub files: usize,
    pub bytes: u64,
    pub partitions: usize,
    pub last_commit_ms: Option<i64>,
}

pub async fn table_info(name: &str, table: &DeltaTable) -> Result<TableInfo> {
    let snapshot = table.snapshot()?;
    let mut rows = 0u64;
    let mut bytes = 0u64;
    let mut files = 0usize;
    let mut parts = BTreeSet::new();
    for f in snapshot.log_data().iter() {
        files += 1;
        bytes += f.size().max(0) as u64;
        rows += f.num_records().unwrap_or(0) as u64;
        let pv = f.partition_values_map();
        if !pv.is_empty() {
            let mut kv: Vec<_> = pv.into_iter().collect();
            kv.sort();
            parts.insert(format!("{kv:?}"));
        }
    }
    let version = snapshot.version();
    Ok(TableInfo {
        name: name.to_string(),
        version: version as i64,
        rows,
        files,
        bytes,
        partitions: parts.len(),
        last_commit_ms: snapshot.version_timestamp(version),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_names_stay_in_the_lake() {
        for bad in [
            "/etc",
            "../outside/t",
            "a/b",
            "..",
            ".hidden",
            "_tributary",
            "c:\\x",
            "",
        ] {
            assert!(super::check_table_name(bad).is_err(), "{bad}");
        }
        for ok in ["orders", "daily_revenue", "events-2026", "t.v2"] {
            assert!(super::check_table_name(ok).is_ok(), "{ok}");
        }
    }
}
