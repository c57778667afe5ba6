//! The lake: a folder (or object-store prefix) of Delta Lake tables, one per name.
//! The table's own log is the pipeline's checkpoint store: each commit carries Delta `txn`
//! entries (`tributary/<pipeline>/<source partition>` → committed offset).

mod partition;
mod sink;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::{DeltaTable, DeltaTableError};
use url::Url;

pub use partition::{PartBatch, add_partition_columns, split_by_partition};
pub use sink::{CommitStats, TableSink, WriterSettings, dlq_batch, dlq_schema};

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Lake {
    root: PathBuf,
}

impl Lake {
    /// A lake rooted at a local folder (created if missing).
    pub fn open(location: &str) -> Result<Self> {
        let root = PathBuf::from(location);
        std::fs::create_dir_all(&root)
            .map_err(|e| Error::io(format!("cannot create lake folder {}", root.display()), e))?;
        let root = std::fs::canonicalize(&root).unwrap_or(root);
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn table_path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn table_url(&self, name: &str) -> Result<Url> {
        let path = self.table_path(name);
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::io(format!("cannot create table folder {}", path.display()), e))?;
        Url::from_directory_path(&path)
            .map_err(|_| Error::Internal(format!("not an absolute path: {}", path.display())))
    }

    /// Names of the Delta tables in the lake, sorted.
    pub fn tables(&self) -> Result<Vec<String>> {
        let mut names = BTreeSet::new();
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(Error::io(format!("cannot list {}", self.root.display()), e)),
        };
        for entry in rd.flatten() {
            if entry.path().join("_delta_log").is_dir()
                && let Some(n) = entry.file_name().to_str()
            {
                names.insert(n.to_string());
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Opens an existing table; `None` if there is none of that name.
    pub async fn load(&self, name: &str) -> Result<Option<DeltaTable>> {
        if !self.table_path(name).join("_delta_log").is_dir() {
            return Ok(None);
        }
        let url = self.table_url(name)?;
        match deltalake::open_table(url).await {
            Ok(t) => Ok(Some(t)),
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens a table, creating it with `schema` and `partitions` if it does not exist.
    /// An existing table whose columns differ is refused (evolution is explicit).
    pub async fn open_or_create(
        &self,
        name: &str,
        schema: &SchemaRef,
        partitions: &[String],
        description: Option<&str>,
    ) -> Result<DeltaTable> {
        if let Some(t) = self.load(name).await? {
            check_compatible(name, &t, schema, partitions)?;
            return Ok(t);
        }
        let kernel: StructType = schema.as_ref().try_into_kernel().map_err(|e| {
            Error::Internal(format!(
                "table `{name}`: schema has no Delta equivalent: {e}"
            ))
        })?;
        // Built, not loaded: there is no log yet to load.
        let table = deltalake::DeltaTableBuilder::from_url(self.table_url(name)?)?.build()?;
        let mut create = table
            .create()
            .with_table_name(name)
            .with_columns(kernel.fields().cloned())
            .with_partition_columns(partitions.iter().cloned());
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

fn check_compatible(
    name: &str,
    table: &DeltaTable,
    schema: &SchemaRef,
    partitions: &[String],
) -> Result<()> {
    let snapshot = table.snapshot()?;
    let existing: Vec<String> = snapshot
        .schema()
        .fields()
        .map(|f| f.name().to_string())
        .collect();
    let wanted: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let parts = snapshot.metadata().partition_columns().to_vec();
    if existing != wanted || parts != partitions {
        return Err(Error::Usage(format!(
            "table `{name}` exists with columns [{}] partitioned by [{}], but its schema now says [{}] partitioned by [{}]; schema changes need a migration (write to a new table, or move the old one aside)",
            existing.join(", "),
            parts.join(", "),
            wanted.join(", "),
            partitions.join(", ")
        )));
    }
    Ok(())
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
