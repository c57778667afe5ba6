//! Tributary sources. One folder per connector; [`SourceKind`] is the closed set of kinds.
//!
//! A source never decides commits: it is told where to resume (a [`Position`] read back from
//! the lake's own commits) and yields [`SourceBatch`]es that say which range they cover.

pub mod file;

use std::fmt;

/// Errors of the connectors crate, each with the class that decides retry vs dead-letter vs bug.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("source path pattern `{pattern}` is invalid: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot decompress `{path}` at byte {offset}: {source}")]
    Decompress {
        path: String,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
}

/// How an error should be handled: user input is never retried, transient faults are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    User,
    Transient,
    Internal,
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::BadPattern { .. } | Error::Decompress { .. } => ErrorClass::User,
            Error::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                    ErrorClass::User
                }
                _ => ErrorClass::Transient,
            },
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The closed set of source kinds a pipeline may read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// NDJSON files (plain, `.gz`, `.zst`) matched by a glob or under a directory.
    File(file::FileSourceConfig),
}

impl SourceKind {
    pub fn name(&self) -> &'static str {
        match self {
            SourceKind::File(_) => "file",
        }
    }
}

/// A resumable checkpoint within one source partition (for files: one file).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// Stable identity of the partition (for files: the canonical path).
    pub partition: String,
    /// Offset within the partition's (decompressed) byte stream.
    pub offset: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.partition, self.offset)
    }
}

/// A run of complete records read from one source partition.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    /// Newline-delimited records, each line complete (the last may lack its `\n` at EOF).
    pub records: Vec<u8>,
    /// Offset of the first byte of `records` in the partition.
    pub start: Position,
    /// Offset just past the last byte of `records`: resuming here skips exactly this batch.
    pub end: u64,
}
