//! Tributary's integration tests: one binary, one module per capability.

mod integration {
    mod athena;
    mod bad_records;
    mod cli;
    mod concurrent_writers;
    mod crash;
    mod demo;
    mod deploy;
    mod dialect;
    mod evolution;
    mod faults;
    mod flight_messages;
    mod hostile;
    mod jobs;
    mod kinesis;
    mod lambda;
    mod lambda_runtime;
    mod metrics;
    mod partitions;
    mod query_limits;
    mod query_plans;
    mod repl;
    mod resume;
    mod s3;
    mod server;
    mod stages;
    mod trino;
}
