//! Tributary: streams of records → stateless Arrow batch transforms → Delta Lake tables of
//! Parquet files → SQL. See DESIGN.md for the map; modules follow the data:
//! `config` → `schema` → `decode` → `transform` → `lake` → `query`, tied by `runtime`.

pub mod alloc;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod decode;
pub mod demo;
pub mod deploy;
pub mod diag;
pub mod error;
pub mod jobs;
pub mod lake;
pub mod lambda;
pub mod metrics;
pub mod package;
pub mod query;
pub mod repl;
pub mod runtime;
pub mod schema;
pub mod send;
pub mod server;
pub mod status;
pub mod transform;

pub use error::{Error, ErrorClass, Result};
// For the fuzz targets and other users building on the library: the arrow we are built with.
pub use arrow;
