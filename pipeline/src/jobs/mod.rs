//! Scheduled ETL jobs (`jobs/*.toml`): SQL into lake tables on EventBridge-style schedules,
//! incremental by Delta version bookmarks, with run history in the `job_runs` table, and
//! built-in maintenance (compaction, vacuum, dead-letter retention).

pub mod cli;
mod config;
pub mod history;
pub mod incremental;
mod maintenance;
mod raw;
pub mod run;
pub mod schedule;
pub mod scheduler;

pub use config::{
    CatchUp, Incremental, JOB_RUNS_TABLE, Job, KnownTables, Overlap, SqlTask, Task, WriteMode,
    load_jobs,
};
pub use scheduler::Scheduler;
