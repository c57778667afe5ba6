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

[pipelines.clicks]
table = "clicks"
source = { type = "s3", url = "s3://click-bucket/raw/" }
[pipelines.clicks.lambda]
split_stages = true
[pipelines.clicks.stages.transform]
max_workers = 12
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
            (
                "clicks",
                &EVENTS_SCHEMA.replace("name = \"events\"", "name = \"clicks\""),
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
        .args([
            "deploy",
            "sam",
            "--output",
            "template.json",
            "--query-function",
        ])
        .current_dir(p.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("(8 functions)"),
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
    // The split pipeline: three functions, each on its own queue, each role only its part.
    let ingest = text("PipelineClicksIngest");
    assert!(ingest.contains("click-bucket/raw/*"), "{ingest}");
    assert!(
        ingest.contains("lake-bucket/lake/_tributary/staging/clicks/*"),
        "{ingest}"
    );
    assert!(!ingest.contains("clicks_dlq"), "{ingest}");
    let transform = text("PipelineClicksTransform");
    assert!(!transform.contains("click-bucket"), "{transform}");
    let puts: Vec<Value> = statements(&t, "PipelineClicksTransform")
        .iter()
        .filter(|s| s.to_string().contains("s3:PutObject"))
        .cloned()
        .collect();
    assert_eq!(puts.len(), 1);
    // It writes its segments only, never the table.
    assert!(
        !puts[0]["Resource"].to_string().contains("lake/clicks/*"),
        "{puts:?}"
    );
    let sink = text("PipelineClicksSink");
    assert!(sink.contains("lake-bucket/lake/clicks_dlq/*"), "{sink}");
    assert!(!sink.contains("click-bucket"), "{sink}");
    let scaling = |f: &str| {
        t["Resources"][format!("PipelineClicks{f}Function")]["Properties"]["Events"]
            ["Notifications"]["Properties"]["ScalingConfig"]["MaximumConcurrency"]
            .clone()
    };
    assert_eq!(scaling("Transform"), 12);
    let sweep = &t["Resources"]["PipelineClicksSinkFunction"]["Properties"]["Events"]["Sweep"]["Properties"];
    assert_eq!(sweep["ScheduleExpression"], "rate(5 minutes)");
    assert!(
        sweep["Input"]
            .as_str()
            .unwrap()
            .contains("\"stage\":\"sink\""),
        "{sweep}"
    );
    assert_eq!(scaling("Sink"), 2);
    assert_eq!(scaling("Ingest"), 2);
    let setup = t["Outputs"]["PipelineClicksStagingNotificationSetup"]["Value"].to_string();
    assert!(
        setup.contains("lake/_tributary/staging/clicks/raw/")
            && setup.contains("lake/_tributary/staging/clicks/out/"),
        "{setup}"
    );
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
    // The query function reads every table and writes only its history and results.
    let q = statements(&t, "Query");
    let read = serde_json::to_string(&q[1]).unwrap();
    for table in ["orders", "orders_dlq", "file_events", "daily", "job_runs"] {
        assert!(
            read.contains(&format!("lake-bucket/lake/{table}/*")),
            "{read}"
        );
    }
    let writes: Vec<&Value> = q
        .iter()
        .filter(|s| s.to_string().contains("s3:PutObject"))
        .collect();
    assert_eq!(writes.len(), 1, "{q:?}");
    let w = writes[0]["Resource"].to_string();
    assert!(
        w.contains("_tributary/queries/*") && w.contains("_tributary/results/*"),
        "{w}"
    );
    assert!(!w.contains("lake/orders"), "{w}");
    assert!(!serde_json::to_string(q).unwrap().contains("DeleteObject"));
    let f = &t["Resources"]["QueryFunction"]["Properties"];
    assert_eq!(f["FunctionUrlConfig"]["AuthType"], "NONE");
    assert_eq!(f["Environment"]["Variables"]["TRIBUTARY_HANDLER"], "query");
    assert_eq!(
        f["Environment"]["Variables"]["TRIBUTARY_TOKEN"]["Ref"],
        "QueryToken"
    );
    assert_eq!(t["Parameters"]["QueryToken"]["NoEcho"], true);

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

fn package(p: &TempProject, args: &[&str]) -> std::process::Output {
    Command::new(tributary_bin())
        .arg("package")
        .args(args)
        .current_dir(p.path())
        .output()
        .unwrap()
}

/// The zip's entries: name → (unix mode, bytes).
fn zip_entries(path: &std::path::Path) -> std::collections::BTreeMap<String, (u32, Vec<u8>)> {
    let mut z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = std::collections::BTreeMap::new();
    for i in 0..z.len() {
        let mut f = z.by_index(i).unwrap();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut body).unwrap();
        out.insert(
            f.name().to_string(),
            (f.unix_mode().unwrap_or(0) & 0o777, body),
        );
    }
    out
}

#[test]
fn package_builds_the_function_zip_and_refuses_binaries_that_cannot_start() {
    let config = "[project]\nlake = \"s3://lake-bucket/lake\"\n\n[pipelines.events]\ntable = \"events\"\nsource = { type = \"s3\", url = \"s3://in-bucket/incoming/\" }\n";
    let p = TempProject::new(config, &[("events", EVENTS_SCHEMA)]);
    std::fs::create_dir_all(p.path().join("jobs")).unwrap();
    std::fs::write(
        p.path().join("jobs/daily.toml"),
        "schedule = \"rate(1 day)\"\nsql_file = \"daily.sql\"\n",
    )
    .unwrap();
    std::fs::write(
        p.path().join("jobs/daily.sql"),
        "SELECT dt, count(*) AS n FROM events GROUP BY dt\n",
    )
    .unwrap();

    // This very binary: packaged if the Lambda runtime's glibc (2.34) can load it, else
    // refused with how to build one that can (Debian 12's toolchain links hypot@GLIBC_2.35).
    let own = tributary::package::inspect(&std::fs::read(tributary_bin()).unwrap()).unwrap();
    let o = package(&p, &["--output", "dist/own.zip"]);
    let err = String::from_utf8_lossy(&o.stderr);
    if own
        .glibc
        .is_some_and(|g| g > tributary::package::AL2023_GLIBC)
    {
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("provided.al2023 has 2.34"), "{err}");
        assert!(err.contains("cargo lambda build"), "{err}");
        assert!(!p.path().join("dist/own.zip").exists());
    } else {
        assert!(o.status.success(), "{err}");
    }

    // A binary the runtime can load (a system tool stands in for a cargo-lambda build):
    // bootstrap executable, the config under the name the functions read, schemas and jobs.
    let loadable = "/usr/bin/true";
    let info = tributary::package::inspect(&std::fs::read(loadable).unwrap()).unwrap();
    assert!(
        info.glibc
            .is_none_or(|g| g <= tributary::package::AL2023_GLIBC)
    );
    let o = package(&p, &["--binary", loadable]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let zip_path = p.path().join("dist/tributary-lambda.zip");
    let entries = zip_entries(&zip_path);
    assert_eq!(
        entries.keys().cloned().collect::<Vec<_>>(),
        [
            "bootstrap",
            "jobs/daily.sql",
            "jobs/daily.toml",
            "schemas/events.toml",
            "tributary.toml"
        ]
    );
    assert_eq!(entries["bootstrap"].0, 0o755);
    assert_eq!(entries["bootstrap"].1, std::fs::read(loadable).unwrap());
    assert_eq!(entries["tributary.toml"].1, config.as_bytes());
    // Same inputs, same bytes: CloudFormation sees no change to deploy.
    let first = std::fs::read(&zip_path).unwrap();
    assert!(package(&p, &["--binary", loadable]).status.success());
    assert_eq!(std::fs::read(&zip_path).unwrap(), first);

    // The wrong architecture, a non-ELF file, a local lake: refused, nothing written.
    std::fs::write(
        p.path().join("tributary.toml"),
        format!("{config}\n[lambda]\narchitecture = \"arm64\"\n"),
    )
    .unwrap();
    let o = package(&p, &["--binary", loadable, "--output", "dist/arm.zip"]);
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("built for x86_64, but the functions run on arm64"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::write(p.path().join("tributary.toml"), config).unwrap();
    let o = package(
        &p,
        &["--binary", "tributary.toml", "--output", "dist/x.zip"],
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an ELF executable"));
    std::fs::write(
        p.path().join("tributary.toml"),
        config.replace("s3://lake-bucket/lake", "lake"),
    )
    .unwrap();
    let o = package(&p, &["--binary", loadable, "--output", "dist/y.zip"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("a Lambda function has no lasting disk"));
    for f in ["arm.zip", "x.zip", "y.zip"] {
        assert!(!p.path().join("dist").join(f).exists(), "{f}");
    }
}
