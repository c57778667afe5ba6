//! The engine's error type. Each error says its class, which decides what happens to it:
//! `User` (bad input or config: never retried), `Transient` (network, throttling, commit
//! conflicts: retried with backoff), `Internal` (a bug).

use crate::diag::Diagnostics;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    User,
    Transient,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Configuration or schema problems, each with file:line:col and a hint.
    #[error("{0}")]
    Config(Diagnostics),
    #[error("{0}")]
    Source(#[from] tributary_connectors::Error),
    #[error("lake: {0}")]
    Lake(#[from] deltalake::DeltaTableError),
    #[error("{0}")]
    Query(String),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("{0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A bad record under `on_bad_record = "fail"`.
    #[error(
        "bad record at {position}: {reason} (on_bad_record = \"fail\" stops the run; use \"dlq\" to dead-letter it)"
    )]
    BadRecord { position: String, reason: String },
    #[error("{0}")]
    Usage(String),
    /// The query service is at its limit (queue full): try again later (HTTP 429, Flight
    /// RESOURCE_EXHAUSTED).
    #[error("{0}")]
    Busy(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Config(_) | Error::BadRecord { .. } | Error::Usage(_) | Error::Query(_) => {
                ErrorClass::User
            }
            Error::Source(e) => match e.class() {
                tributary_connectors::ErrorClass::User => ErrorClass::User,
                tributary_connectors::ErrorClass::Transient => ErrorClass::Transient,
                tributary_connectors::ErrorClass::Internal => ErrorClass::Internal,
            },
            Error::Lake(e) => match e {
                deltalake::DeltaTableError::Transaction { .. }
                | deltalake::DeltaTableError::VersionAlreadyExists(_)
                | deltalake::DeltaTableError::ObjectStore { .. } => ErrorClass::Transient,
                _ => ErrorClass::Internal,
            },
            Error::ObjectStore(_) | Error::Io { .. } | Error::Busy(_) => ErrorClass::Transient,
            Error::DataFusion(_) => ErrorClass::User,
            Error::Arrow(_) | Error::Parquet(_) | Error::Internal(_) => ErrorClass::Internal,
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
