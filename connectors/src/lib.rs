//! Tributary sources. One folder per connector; [`SourceKind`] is the closed set of kinds.
//!
//! A source never decides commits: it is told where to resume (a [`Position`] read back from
//! the lake's own commits) and yields [`SourceBatch`]es that say which range they cover.

pub mod aws;
pub mod breaker;
pub mod caught_up;
pub mod file;
pub mod kinesis;
pub mod s3;

use std::cmp::Ordering;
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
    /// A call to an AWS service failed; `transient` says whether retrying may help.
    #[error("{service} {operation} failed: {message}")]
    Aws {
        service: &'static str,
        operation: &'static str,
        message: String,
        transient: bool,
    },
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("{0}")]
    Config(String),
    /// Another process took over a shard's lease (or committed its positions).
    #[error("lease lost: {0}")]
    LeaseLost(String),
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
            Error::BadPattern { .. } | Error::Decompress { .. } | Error::Config(_) => {
                ErrorClass::User
            }
            Error::Aws { transient, .. } => {
                if *transient {
                    ErrorClass::Transient
                } else {
                    ErrorClass::User
                }
            }
            Error::ObjectStore(e) => match e {
                object_store::Error::NotFound { .. }
                | object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
                | object_store::Error::InvalidPath { .. } => ErrorClass::User,
                _ => ErrorClass::Transient,
            },
            Error::LeaseLost(_) => ErrorClass::Transient,
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
    /// Every shard of a Kinesis data stream, one JSON document per record.
    Kinesis(kinesis::KinesisSourceConfig),
    /// NDJSON objects (plain, `.gz`, `.zst`) under an S3 prefix, in key order.
    S3(s3::S3SourceConfig),
}

impl SourceKind {
    pub fn name(&self) -> &'static str {
        match self {
            SourceKind::File(_) => "file",
            SourceKind::Kinesis(_) => "kinesis",
            SourceKind::S3(_) => "s3",
        }
    }

    /// What the source reads, for messages: `Kinesis stream orders`, `s3://b/in/`.
    pub fn describe(&self) -> String {
        match self {
            SourceKind::File(f) => format!("files {}", f.path),
            SourceKind::Kinesis(k) => format!("Kinesis stream {}", k.stream),
            SourceKind::S3(s) => s.url.clone(),
        }
    }
}

/// A Kinesis sequence number: a decimal string of up to 128 bits' worth of digits, ordered
/// numerically (not as text).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeqNo(String);

impl SeqNo {
    /// Kinesis's own bound on a sequence number (`0|([1-9]\d{0,128})`).
    pub const MAX_DIGITS: usize = 129;

    /// `None` unless `s` is all ASCII digits, at most [`Self::MAX_DIGITS`] of them: a
    /// 5,000-digit number committed as a shard's position would skip every real record
    /// after it.
    pub fn parse(s: &str) -> Option<Self> {
        if s.is_empty() || s.len() > Self::MAX_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let t = s.trim_start_matches('0');
        Some(SeqNo(if t.is_empty() { "0".into() } else { t.into() }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Ord for SeqNo {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for SeqNo {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SeqNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How far a source partition has been consumed: what a commit records and a restart
/// resumes after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offset {
    /// Bytes of the (decompressed) stream of a file or object consumed.
    Bytes(u64),
    /// The last Kinesis record consumed in a shard; `closed` once the shard has ended
    /// (SHARD_END) and everything in it is consumed, which lets its children start.
    Sequence { seq: SeqNo, closed: bool },
    /// A shard that ended before any record of it was read (nothing to resume after).
    ClosedEmpty,
}

impl Offset {
    /// True if `self` is at or past `other` (same partition).
    pub fn at_or_past(&self, other: &Offset) -> bool {
        match (self, other) {
            (Offset::Bytes(a), Offset::Bytes(b)) => a >= b,
            (Offset::ClosedEmpty, _) => true,
            (Offset::Sequence { closed: true, .. }, _) => true,
            (Offset::Sequence { seq: a, .. }, Offset::Sequence { seq: b, closed }) => {
                a > b || (a == b && !closed)
            }
            _ => false,
        }
    }

    pub fn is_closed(&self) -> bool {
        matches!(
            self,
            Offset::ClosedEmpty | Offset::Sequence { closed: true, .. }
        )
    }

    pub fn bytes(&self) -> u64 {
        match self {
            Offset::Bytes(b) => *b,
            _ => 0,
        }
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Offset::Bytes(b) => write!(f, "byte {b}"),
            Offset::Sequence { seq, closed } => {
                write!(
                    f,
                    "seq {seq}{}",
                    if *closed { " (shard ended)" } else { "" }
                )
            }
            Offset::ClosedEmpty => write!(f, "shard ended (empty)"),
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
    /// Offset of the first byte of `records` in the partition (0 for streams).
    pub start: Position,
    /// Where the batch ends: resuming after it skips exactly this batch.
    pub end: Offset,
    /// For stream records, `(byte offset in records, record id)` of each record, in order:
    /// the id (Kinesis `sequence[:sub-sequence]`) names a bad record in the DLQ.
    pub ids: Vec<(u32, String)>,
}

impl SourceBatch {
    /// The record id of the record starting at byte `offset` of `records` (if the source
    /// has ids).
    pub fn record_id(&self, offset: u64) -> Option<&str> {
        let rel = offset.checked_sub(self.start.offset)?;
        let i = self.ids.partition_point(|(o, _)| u64::from(*o) <= rel);
        i.checked_sub(1).map(|i| self.ids[i].1.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_order_numerically() {
        let a = SeqNo::parse("49590338271490256608559692538361571095921575989136588898").unwrap();
        let b = SeqNo::parse("9").unwrap();
        assert!(a > b);
        assert_eq!(SeqNo::parse("007").unwrap(), SeqNo::parse("7").unwrap());
        assert!(SeqNo::parse("12a").is_none());
        let at = |s: &str, closed| Offset::Sequence {
            seq: SeqNo::parse(s).unwrap(),
            closed,
        };
        assert!(at("10", false).at_or_past(&at("9", false)));
        assert!(!at("9", false).at_or_past(&at("10", false)));
        assert!(at("9", true).at_or_past(&at("10", false)));
        assert!(!at("9", false).at_or_past(&at("9", true)));
    }
}
