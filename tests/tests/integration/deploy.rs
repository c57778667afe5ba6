//! `tributary deploy sam`: the generated template passes cfn-lint (the real linter, from
//! PyPI) and every role is scoped to the names it needs — no `*` actions, no `*` resources.

use std::process::Command;

use serde_json::Value;
use tributary_tests::{EVENTS_SCHEMA, TempProject, tributary_bin};

fn cfn_lint() -> String {
    std::env::var("TRIBUTARY_TEST_CFN_LINT").unwrap_or_else(|_| {
        panic!("TRIBUTARY_TEST_CFN_LINT is not set: run the tests with `bash scripts/test.sh`, which installs cfn-lint")
    })
}

/// Every statement of the role of `function` (its logical id prefix).
fn statements<'a>(t: &'a Value, id: &str) -> &'a Vec<Value> {
    t["Resources"][format!("{id}Role")]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
}

#[test]
fn sam_template_lints_and_every_role_is_least_privilege() {
    let config = r#"
[project]
name = "shop"
lake = "s3://lake-bucket/lake"

[lambda]
memory_mb = 1536

[pipelines.orders]
table = "orders"
source = { type = "kinesis", stream = "orders-stream", start = "trim_horizon" }
[pipelines.orders.lambda]
batch_size = 500
max_batching_window_secs = 10
reserved_concurrency = 4
max_retry_attempts = 5

[pipelines.files]
table = "file_events"
source = { type = "s3", url = "s3://in-bucket/incoming/" }
"#;
    let p = TempProject::new(
        config,
        &[
            (
                "orders",
                &EVENTS_SCHEMA.replace("name = \"events\"", "name = \"orders\""),
            ),
            (
                "file_events",
                &EVENTS_SCHEMA.replace("name = \"events\"", "name = \"file_events\""),
            ),
        ],
    );
    std::fs::create_dir_all(p.path().join("jobs")).unwrap();
    std::fs::write(
        p.path().join("jobs/daily.toml"),
        "schedule = \"cron(15 2 * * ? *)\"\ntimezone = \"Europe/Berlin\"\nmode = \"overwrite_partitions\"\npartition_by = [\"dt\"]\nretries = 2\nsql = \"SELECT dt, count(*) AS n FROM orders GROUP BY dt\"\n\n[incremental]\norders = \"changed_partitions\"\n",
    )
    .unwrap();
    std::fs::write(
        p.path().join("jobs/after.toml"),
        "depends_on = [\"daily\"]\nmode = \"overwrite\"\nsql = \"SELECT sum(n) AS n FROM daily\"\n",
    )
    .unwrap();
    std::fs::write(
        p.path().join("jobs/vacuum.toml"),
        "type = \"vacuum\"\ntable = \"orders\"\nschedule = \"rate(7 days)\"\n",
    )
    .unwrap();
    let o = Command::new(tributary_bin())
        .args(["deploy", "sam", "--output", "template.json"])
        .current_dir(p.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("(4 functions)"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // cfn-lint (SAM transform included): no errors.
    let lint = Command::new(cfn_lint())
        .arg(p.path().join("template.json"))
        .output()
        .unwrap();
    let code = lint.status.code().unwrap_or(-1);
    assert!(
        code >= 0 && code & 2 == 0,
        "cfn-lint exit {code}:\n{}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );

    let t: Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("template.json")).unwrap())
            .unwrap();
    // No wildcard actions or resources anywhere.
    for (id, r) in t["Resources"].as_object().unwrap() {
        if r["Type"] != "AWS::IAM::Role" {
            continue;
        }
        for s in r["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap()
        {
            for a in s["Action"].as_array().unwrap() {
                assert!(!a.as_str().unwrap().contains('*'), "{id}: action {a}");
            }
            let text = s["Resource"].to_string();
            assert_ne!(s["Resource"], "*", "{id}");
            assert!(!text.contains("\"*\""), "{id}: {text}");
        }
    }
    let text = |id: &str| serde_json::to_string(statements(&t, id)).unwrap();
    // The Kinesis pipeline: its stream, its tables, its failure queue, its logs.
    let orders = text("PipelineOrders");
    assert!(orders.contains(":stream/orders-stream"), "{orders}");
    assert!(orders.contains("lake-bucket/lake/orders/*"), "{orders}");
    assert!(orders.contains("lake-bucket/lake/orders_dlq/*"), "{orders}");
    assert!(!orders.contains("file_events"), "{orders}");
    assert!(orders.contains("PipelineOrdersFailures"), "{orders}");
    let esm =
        &t["Resources"]["PipelineOrdersFunction"]["Properties"]["Events"]["Stream"]["Properties"];
    assert_eq!(esm["BatchSize"], 500);
    assert_eq!(esm["MaximumBatchingWindowInSeconds"], 10);
    assert_eq!(esm["ParallelizationFactor"], 1);
    assert_eq!(esm["BisectBatchOnFunctionError"], true);
    assert_eq!(esm["MaximumRetryAttempts"], 5);
    assert_eq!(esm["FunctionResponseTypes"][0], "ReportBatchItemFailures");
    assert_eq!(esm["StartingPosition"], "TRIM_HORIZON");
    let f = &t["Resources"]["PipelineOrdersFunction"]["Properties"];
    assert_eq!(f["MemorySize"], 1536);
    assert_eq!(f["ReservedConcurrentExecutions"], 4);
    assert_eq!(f["Runtime"], "provided.al2023");
    // The S3 pipeline: reads only its source prefix; S3 → SQS → function.
    let files = text("PipelineFiles");
    assert!(files.contains("in-bucket/incoming/*"), "{files}");
    assert!(files.contains("lake-bucket/lake/file_events/*"), "{files}");
    assert!(!files.contains("stream/"), "{files}");
    // The job reads what its SQL names, writes its target, its dependent's, the run history.
    let daily = text("JobDaily");
    assert!(daily.contains("lake-bucket/lake/orders/*"), "{daily}");
    assert!(daily.contains("lake-bucket/lake/job_runs/*"), "{daily}");
    assert!(daily.contains("lake-bucket/lake/after/*"), "{daily}");
    assert!(!daily.contains("file_events"), "{daily}");
    assert!(!daily.contains("DeleteObject"), "{daily}");
    let sched =
        &t["Resources"]["JobDailyFunction"]["Properties"]["Events"]["Schedule"]["Properties"];
    assert_eq!(sched["ScheduleExpression"], "cron(15 2 * * ? *)");
    assert_eq!(sched["ScheduleExpressionTimezone"], "Europe/Berlin");
    // The dependent runs inside its dependency's invocation: no function of its own.
    assert!(t["Resources"].get("JobAfterFunction").is_none());
    // Vacuum may delete, in its table only.
    let vacuum = text("JobVacuum");
    assert!(vacuum.contains("s3:DeleteObject"), "{vacuum}");

    // A local lake cannot be deployed.
    std::fs::write(
        p.path().join("tributary.toml"),
        config.replace("s3://lake-bucket/lake", "lake"),
    )
    .unwrap();
    let o = Command::new(tributary_bin())
        .args(["deploy", "sam"])
        .current_dir(p.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("need the lake on S3"));
}
