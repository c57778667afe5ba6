//! An S3-source pipeline as three functions (`[pipelines.x.lambda] split_stages = true`),
//! each scaled by Lambda on its own queue:
//!
//! - **ingest**: the source bucket's notifications → raw segments in the lake's staging area
//!   (at most 2 at once; a lease in the lake lets one stage at a time);
//! - **transform**: the lake bucket's notifications for `staging/<p>/raw/` → one invocation
//!   per batch of segments, up to `[pipelines.x.stages.transform] max_workers` at once;
//! - **sink**: the notifications for `staging/<p>/out/` → commits, in order (one at a time,
//!   by its lease).

use serde_json::{Map, Value, json};
use tributary_connectors::s3::S3SourceConfig;

use super::{
    LakeAccess, function, logical_id, notification_queue, notification_setup, read_source_objects,
};
use crate::config::Pipeline;

/// Lambda's floor for an SQS event source's maximum concurrency.
const MIN_SQS_CONCURRENCY: usize = 2;

fn sqs_events(queue_id: &str, batch_size: u32, window_secs: u32, concurrency: usize) -> Value {
    json!({"Notifications": {"Type": "SQS", "Properties": {
        "Queue": {"Fn::GetAtt": [queue_id, "Arn"]},
        "BatchSize": batch_size,
        "MaximumBatchingWindowInSeconds": window_secs,
        "ScalingConfig": {"MaximumConcurrency": concurrency.clamp(MIN_SQS_CONCURRENCY, 1000)}
    }}})
}

pub(super) fn split_pipeline(
    resources: &mut Map<String, Value>,
    outputs: &mut Map<String, Value>,
    p: &Pipeline,
    source: &S3SourceConfig,
    lake_bucket: &str,
    lake_prefix: &str,
    code_uri: &str,
) {
    let id = logical_id("Pipeline", &p.name);
    let l = &p.lambda;
    let staging = format!("_tributary/staging/{}", p.name);
    let leases = format!("_tributary/leases/{}-stages", p.name);
    let lake_key = |area: &str| {
        if lake_prefix.is_empty() {
            area.to_string()
        } else {
            format!("{lake_prefix}/{area}")
        }
    };
    let access = |read: Vec<String>, write: Vec<String>, delete: Vec<String>| {
        LakeAccess {
            bucket: lake_bucket,
            prefix: lake_prefix,
            read,
            write,
            delete,
        }
        .statements()
    };

    // Ingest: reads the table's positions (and creates the table on the first run).
    let mut st = access(
        vec![],
        vec![p.table.name.clone(), staging.clone(), leases.clone()],
        vec![staging.clone(), leases.clone()],
    );
    let src_prefix = source.prefix.trim_end_matches('/');
    st.push(read_source_objects(source));
    let queue = format!("{id}IngestNotifications");
    st.push(notification_queue(
        resources,
        &queue,
        &source.bucket,
        l.timeout_secs,
    ));
    function(
        resources,
        &format!("{id}Ingest"),
        &format!("{}-ingest", p.name),
        l,
        l.timeout_secs,
        code_uri,
        "s3",
        st,
        sqs_events(&queue, 10, 0, MIN_SQS_CONCURRENCY),
        json!({}),
    );
    outputs.insert(format!("{id}NotificationSetup"), json!({
        "Description": format!("Send {}'s ObjectCreated events under `{src_prefix}` to the ingest function's queue (the bucket lives outside this stack)", source.bucket),
        "Value": notification_setup(&source.bucket, &[(src_prefix, &queue)])
    }));

    // Transform: the table's layout (read), its own segments (read, write, delete).
    let raw_queue = format!("{id}RawSegments");
    let mut st = access(
        vec![p.table.name.clone()],
        vec![staging.clone()],
        vec![staging.clone()],
    );
    st.push(notification_queue(
        resources,
        &raw_queue,
        lake_bucket,
        l.timeout_secs,
    ));
    function(
        resources,
        &format!("{id}Transform"),
        &format!("{}-transform", p.name),
        l,
        l.timeout_secs,
        code_uri,
        "s3",
        st,
        sqs_events(&raw_queue, 4, 0, p.transform_workers.1),
        json!({}),
    );

    // Sink: writes the table and its DLQ, consumes the transformed segments.
    let out_queue = format!("{id}OutSegments");
    let mut st = access(
        vec![],
        vec![
            p.table.name.clone(),
            p.dlq_table(),
            staging.clone(),
            leases.clone(),
        ],
        vec![staging.clone(), leases],
    );
    st.push(notification_queue(
        resources,
        &out_queue,
        lake_bucket,
        l.timeout_secs,
    ));
    function(
        resources,
        &format!("{id}Sink"),
        &format!("{}-sink", p.name),
        l,
        l.timeout_secs,
        code_uri,
        "s3",
        st,
        // Batched for a few seconds: one invocation commits many segments. A sweep every
        // few minutes commits what lost or exhausted notifications would leave staged.
        {
            let mut events = sqs_events(&out_queue, 100, 5, MIN_SQS_CONCURRENCY);
            events["Sweep"] = json!({"Type": "ScheduleV2", "Properties": {
                "ScheduleExpression": "rate(5 minutes)",
                "Input": json!({"tributary": {"stage": "sink", "pipeline": p.name}}).to_string()
            }});
            events
        },
        json!({}),
    );
    let raw_prefix = format!("{}/raw/", lake_key(&staging));
    let out_prefix = format!("{}/out/", lake_key(&staging));
    outputs.insert(format!("{id}StagingNotificationSetup"), json!({
        "Description": format!("Send the lake bucket's ObjectCreated events for {}'s staged segments to its transform and sink queues (merge with the bucket's other notifications)", p.name),
        "Value": notification_setup(lake_bucket, &[(&raw_prefix, &raw_queue), (&out_prefix, &out_queue)])
    }));
}
