//! `tributary deploy sam`: an AWS SAM template for the project — one function per Kinesis or
//! S3 pipeline and per scheduled job, each with its own least-privilege role (actions and
//! resources named: the stream, the source prefix, the lake tables it reads and writes, its
//! log group), Kinesis event source mappings with partial-batch responses and an on-failure
//! queue, S3 notifications through an SQS queue, and EventBridge Scheduler schedules.
//! Roles are explicit so that SAM adds no managed policies with `*` resources.

mod stages;

use serde_json::{Map, Value, json};
use tributary_connectors::SourceKind;
use tributary_connectors::aws::parse_s3_url;

use crate::config::Config;
use crate::config::lambda::LambdaSettings;
use crate::error::{Error, Result};
use crate::jobs::{JOB_RUNS_TABLE, Task};

pub struct SamOptions {
    /// The `bootstrap` zip the functions run (`tributary package` builds it).
    pub code_uri: String,
    /// Add the query function: the HTTP query API behind a Function URL.
    pub query_function: bool,
}

fn logical_id(prefix: &str, name: &str) -> String {
    let mut out = prefix.to_string();
    for part in name.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut cs = part.chars();
        if let Some(c) = cs.next() {
            out.push(c.to_ascii_uppercase());
            out.extend(cs);
        }
    }
    out
}

fn sub(s: String) -> Value {
    json!({ "Fn::Sub": s })
}

/// What one function may do in the lake: read and/or write these tables (and meta areas).
struct LakeAccess<'a> {
    bucket: &'a str,
    prefix: &'a str,
    read: Vec<String>,
    write: Vec<String>,
    delete: Vec<String>,
}

impl LakeAccess<'_> {
    fn key(&self, table: &str) -> String {
        if self.prefix.is_empty() {
            table.to_string()
        } else {
            format!("{}/{table}", self.prefix)
        }
    }

    fn statements(&self) -> Vec<Value> {
        let obj = |t: &String| {
            sub(format!(
                "arn:${{AWS::Partition}}:s3:::{}/{}/*",
                self.bucket,
                self.key(t)
            ))
        };
        let mut st = Vec::new();
        let all: Vec<&String> = self.read.iter().chain(&self.write).collect();
        if !all.is_empty() {
            let prefixes: Vec<String> = all
                .iter()
                .flat_map(|t| [format!("{}/*", self.key(t)), self.key(t)])
                .collect();
            st.push(json!({
                "Sid": "ListLakeTables", "Effect": "Allow", "Action": ["s3:ListBucket"],
                "Resource": sub(format!("arn:${{AWS::Partition}}:s3:::{}", self.bucket)),
                "Condition": {"StringLike": {"s3:prefix": prefixes}}
            }));
            st.push(json!({
                "Sid": "ReadLakeTables", "Effect": "Allow", "Action": ["s3:GetObject"],
                "Resource": all.iter().map(|t| obj(t)).collect::<Vec<_>>()
            }));
        }
        if !self.write.is_empty() {
            st.push(json!({
                "Sid": "WriteLakeTables", "Effect": "Allow", "Action": ["s3:PutObject"],
                "Resource": self.write.iter().map(obj).collect::<Vec<_>>()
            }));
        }
        if !self.delete.is_empty() {
            st.push(json!({
                "Sid": "DeleteLakeFiles", "Effect": "Allow", "Action": ["s3:DeleteObject"],
                "Resource": self.delete.iter().map(obj).collect::<Vec<_>>()
            }));
        }
        st
    }
}

/// The role, log group and function of one deployed unit.
#[allow(clippy::too_many_arguments)]
fn function(
    resources: &mut Map<String, Value>,
    id: &str,
    name: &str,
    settings: &LambdaSettings,
    timeout_secs: u32,
    code_uri: &str,
    handler: &str,
    mut statements: Vec<Value>,
    events: Value,
    extra_env: Value,
) {
    let fn_name = format!("${{AWS::StackName}}-{name}");
    let log_group = format!("/aws/lambda/{fn_name}");
    statements.push(json!({
        "Sid": "OwnLogs", "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": sub(format!("arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{log_group}:*"))
    }));
    resources.insert(
        format!("{id}Logs"),
        json!({"Type": "AWS::Logs::LogGroup",
               "Properties": {"LogGroupName": sub(log_group), "RetentionInDays": 30}}),
    );
    resources.insert(
        format!("{id}Role"),
        json!({"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole"}]},
            "Policies": [{"PolicyName": format!("tributary-{name}"),
                          "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}]
        }}),
    );
    let mut env = json!({"TRIBUTARY_CONFIG": "tributary.toml", "TRIBUTARY_HANDLER": handler, "TRIBUTARY_LOG": "info", "TRIBUTARY_LOG_FORMAT": "json"});
    if let (Some(e), Some(x)) = (env.as_object_mut(), extra_env.as_object()) {
        e.extend(x.clone());
    }
    let mut props = json!({
        "FunctionName": sub(fn_name),
        "CodeUri": code_uri,
        "Handler": "bootstrap",
        "Runtime": "provided.al2023",
        "Architectures": [settings.architecture],
        "MemorySize": settings.memory_mb,
        "Timeout": timeout_secs,
        "Role": {"Fn::GetAtt": [format!("{id}Role"), "Arn"]},
        "LoggingConfig": {"LogFormat": "JSON", "LogGroup": {"Ref": format!("{id}Logs")}},
        "Environment": {"Variables": env},
        "Events": events
    });
    if let (Some(r), Some(p)) = (settings.reserved_concurrency, props.as_object_mut()) {
        p.insert("ReservedConcurrentExecutions".into(), json!(r));
    }
    resources.insert(
        format!("{id}Function"),
        json!({"Type": "AWS::Serverless::Function", "Properties": props}),
    );
}

/// The statement letting a function read an S3 source's objects (its prefix only).
fn read_source_objects(s: &tributary_connectors::s3::S3SourceConfig) -> Value {
    let src_prefix = s.prefix.trim_end_matches('/');
    let objects = if src_prefix.is_empty() {
        format!("arn:${{AWS::Partition}}:s3:::{}/*", s.bucket)
    } else {
        format!("arn:${{AWS::Partition}}:s3:::{}/{src_prefix}/*", s.bucket)
    };
    json!({"Sid": "ReadSourceObjects", "Effect": "Allow",
        "Action": ["s3:GetObject"], "Resource": sub(objects)})
}

/// An SQS queue (with its own dead-letter queue) that `bucket`'s notifications go to, and
/// the statement letting a function consume it. The bucket lives outside the stack: an
/// output gives the command that points its notifications here.
fn notification_queue(
    resources: &mut Map<String, Value>,
    queue_id: &str,
    bucket: &str,
    timeout_secs: u32,
) -> Value {
    resources.insert(
        format!("{queue_id}Dlq"),
        json!({"Type": "AWS::SQS::Queue",
        "Properties": {"MessageRetentionPeriod": 1_209_600}}),
    );
    resources.insert(
        queue_id.to_string(),
        json!({"Type": "AWS::SQS::Queue",
        "Properties": {
            // Six times the function timeout, as Lambda recommends for SQS sources.
            "VisibilityTimeout": (timeout_secs * 6).min(43_200),
            "RedrivePolicy": {"deadLetterTargetArn":
                {"Fn::GetAtt": [format!("{queue_id}Dlq"), "Arn"]}, "maxReceiveCount": 5}}}),
    );
    let bucket_arn = format!("arn:${{AWS::Partition}}:s3:::{bucket}");
    resources.insert(format!("{queue_id}Policy"), json!({"Type": "AWS::SQS::QueuePolicy",
        "Properties": {"Queues": [{"Ref": queue_id}],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
                "Condition": {"ArnEquals": {"aws:SourceArn": sub(bucket_arn)},
                              "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}}]}}}));
    json!({"Sid": format!("Receive{queue_id}"), "Effect": "Allow",
        "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
        "Resource": {"Fn::GetAtt": [queue_id, "Arn"]}})
}

/// The command that sends `bucket`'s ObjectCreated events under each prefix to its queue
/// (one call: it replaces the bucket's whole notification configuration).
fn notification_setup(bucket: &str, routes: &[(&str, &str)]) -> Value {
    let configs: Vec<String> = routes
        .iter()
        .map(|(prefix, queue_id)| format!("{{\"QueueArn\":\"${{{queue_id}.Arn}}\",\"Events\":[\"s3:ObjectCreated:*\"],\"Filter\":{{\"Key\":{{\"FilterRules\":[{{\"Name\":\"prefix\",\"Value\":\"{prefix}\"}}]}}}}}}"))
        .collect();
    sub(format!(
        "aws s3api put-bucket-notification-configuration --bucket {bucket} --notification-configuration '{{\"QueueConfigurations\":[{}]}}'",
        configs.join(",")
    ))
}

pub fn sam_template(config: &Config, opts: &SamOptions) -> Result<Value> {
    let (bucket, prefix) = parse_s3_url(&config.project.lake).ok_or_else(|| {
        Error::Usage(format!(
            "functions need the lake on S3, not `{}`: set [project] lake = \"s3://bucket/prefix\" (or pass --lake)",
            config.project.lake
        ))
    })?;
    let prefix = prefix.trim_end_matches('/').to_string();
    let mut resources = Map::new();
    let mut outputs = Map::new();
    for p in &config.pipelines {
        let id = logical_id("Pipeline", &p.name);
        let lake = LakeAccess {
            bucket: &bucket,
            prefix: &prefix,
            read: vec![],
            write: vec![p.table.name.clone(), p.dlq_table()],
            delete: vec![],
        };
        let mut st = lake.statements();
        let l = &p.lambda;
        match &p.source {
            SourceKind::Kinesis(k) => {
                let stream = format!(
                    "arn:${{AWS::Partition}}:kinesis:${{AWS::Region}}:${{AWS::AccountId}}:stream/{}",
                    k.stream
                );
                st.push(json!({"Sid": "ReadStream", "Effect": "Allow",
                    "Action": ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary",
                               "kinesis:GetRecords", "kinesis:GetShardIterator",
                               "kinesis:ListShards", "kinesis:SubscribeToShard"],
                    "Resource": sub(stream.clone())}));
                st.push(json!({"Sid": "FailedBatches", "Effect": "Allow",
                    "Action": ["sqs:SendMessage"],
                    "Resource": {"Fn::GetAtt": [format!("{id}Failures"), "Arn"]}}));
                resources.insert(
                    format!("{id}Failures"),
                    json!({"Type": "AWS::SQS::Queue", "Properties": {"MessageRetentionPeriod": 1_209_600}}),
                );
                let start = match &k.start {
                    tributary_connectors::kinesis::StartPosition::Latest => "LATEST",
                    _ => "TRIM_HORIZON",
                };
                let events = json!({"Stream": {"Type": "Kinesis", "Properties": {
                    "Stream": sub(stream),
                    "StartingPosition": start,
                    "BatchSize": l.batch_size,
                    "MaximumBatchingWindowInSeconds": l.max_batching_window_secs,
                    "ParallelizationFactor": l.parallelization_factor,
                    "BisectBatchOnFunctionError": l.bisect_on_error,
                    "MaximumRetryAttempts": l.max_retry_attempts,
                    "MaximumRecordAgeInSeconds": l.max_record_age_secs,
                    "FunctionResponseTypes": ["ReportBatchItemFailures"],
                    "DestinationConfig": {"OnFailure": {"Destination":
                        {"Fn::GetAtt": [format!("{id}Failures"), "Arn"]}}}
                }}});
                function(
                    &mut resources,
                    &id,
                    &p.name,
                    l,
                    l.timeout_secs,
                    &opts.code_uri,
                    "kinesis",
                    st,
                    events,
                    json!({}),
                );
            }
            SourceKind::S3(s) if l.split_stages => stages::split_pipeline(
                &mut resources,
                &mut outputs,
                p,
                s,
                &bucket,
                &prefix,
                &opts.code_uri,
            ),
            SourceKind::S3(s) => {
                let src_prefix = s.prefix.trim_end_matches('/');
                st.push(read_source_objects(s));
                st.push(notification_queue(
                    &mut resources,
                    &format!("{id}Notifications"),
                    &s.bucket,
                    l.timeout_secs,
                ));
                let events = json!({"Notifications": {"Type": "SQS", "Properties": {
                    "Queue": {"Fn::GetAtt": [format!("{id}Notifications"), "Arn"]}, "BatchSize": 10}}});
                function(
                    &mut resources,
                    &id,
                    &p.name,
                    l,
                    l.timeout_secs,
                    &opts.code_uri,
                    "s3",
                    st,
                    events,
                    json!({}),
                );
                outputs.insert(format!("{id}NotificationSetup"), json!({
                    "Description": format!("Send {}'s ObjectCreated events under `{src_prefix}` to the pipeline's queue (the bucket lives outside this stack)", s.bucket),
                    "Value": notification_setup(&s.bucket, &[(src_prefix, &format!("{id}Notifications"))])
                }));
            }
            // Files live on one machine: nothing to deploy.
            SourceKind::File(_) => {}
        }
    }
    for j in &config.jobs {
        let Some(schedule) = j.schedule_text.as_ref().filter(|_| j.enabled) else {
            // depends_on-only jobs run inside their dependency's invocation.
            continue;
        };
        let id = logical_id("Job", &j.name);
        let meta = format!("_tributary/jobs/{}", j.name);
        // Its heartbeat, so that a scheduler elsewhere leaves its runs alone.
        let beats = "_tributary/leases/scheduler".to_string();
        let (read, write, delete) = match &j.task {
            Task::Sql(t) => {
                let mut read = t.reads.clone();
                read.retain(|r| *r != t.target);
                // Dependents run in the same invocation: they need their tables too.
                for d in config
                    .jobs
                    .iter()
                    .filter(|d| d.depends_on.contains(&j.name))
                {
                    if let Task::Sql(dt) = &d.task {
                        read.extend(dt.reads.iter().cloned());
                    }
                }
                read.sort();
                read.dedup();
                let mut write = vec![t.target.clone(), JOB_RUNS_TABLE.to_string(), meta, beats];
                for d in config
                    .jobs
                    .iter()
                    .filter(|d| d.depends_on.contains(&j.name))
                {
                    write.push(d.task.target().to_string());
                    write.push(format!("_tributary/jobs/{}", d.name));
                }
                read.retain(|r| !write.contains(r));
                (read, write, vec![])
            }
            Task::Vacuum { table, .. } => (
                vec![],
                vec![table.clone(), JOB_RUNS_TABLE.into(), meta, beats],
                vec![table.clone()],
            ),
            other => (
                vec![],
                vec![
                    other.target().to_string(),
                    JOB_RUNS_TABLE.into(),
                    meta,
                    beats,
                ],
                vec![],
            ),
        };
        let lake = LakeAccess {
            bucket: &bucket,
            prefix: &prefix,
            read,
            write,
            delete,
        };
        let timeout = (j.timeout.as_secs() as u32).clamp(1, 900);
        let events = json!({"Schedule": {"Type": "ScheduleV2", "Properties": {
            "ScheduleExpression": schedule,
            "ScheduleExpressionTimezone": j.tz.name(),
            "Input": json!({"tributary": {"job": j.name}}).to_string(),
            "RetryPolicy": {"MaximumRetryAttempts": j.retries.min(185)}
        }}});
        function(
            &mut resources,
            &id,
            &j.name,
            &config.lambda,
            timeout,
            &opts.code_uri,
            "schedule",
            lake.statements(),
            events,
            json!({"TRIBUTARY_JOB": j.name}),
        );
    }
    let mut parameters = Map::new();
    if opts.query_function {
        query_function(
            config,
            opts,
            &bucket,
            &prefix,
            &mut resources,
            &mut parameters,
            &mut outputs,
        );
    }
    if resources.is_empty() {
        return Err(Error::Usage(
            "nothing to deploy: no Kinesis or S3 pipeline and no scheduled job".into(),
        ));
    }
    let mut t = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": format!("Tributary project `{}`: generated by `tributary deploy sam`", config.project.name),
        "Resources": resources,
        "Outputs": outputs
    });
    if !parameters.is_empty() {
        t["Parameters"] = Value::Object(parameters);
    }
    Ok(t)
}

/// The query function: every lake table read-only, its own history and results writable,
/// behind a Function URL guarded by the API's bearer token (a NoEcho stack parameter).
fn query_function(
    config: &Config,
    opts: &SamOptions,
    bucket: &str,
    prefix: &str,
    resources: &mut Map<String, Value>,
    parameters: &mut Map<String, Value>,
    outputs: &mut Map<String, Value>,
) {
    let mut read: Vec<String> = config
        .pipelines
        .iter()
        .flat_map(|p| [p.table.name.clone(), p.dlq_table()])
        .chain(config.jobs.iter().map(|j| j.task.target().to_string()))
        .chain([JOB_RUNS_TABLE.to_string()])
        .collect();
    read.sort();
    read.dedup();
    let lake = LakeAccess {
        bucket,
        prefix,
        read,
        write: vec!["_tributary/queries".into(), "_tributary/results".into()],
        delete: vec![],
    };
    parameters.insert(
        "QueryToken".into(),
        json!({"Type": "String", "NoEcho": true, "MinLength": 16,
               "Description": "Bearer token clients of the query function send (Authorization: Bearer ...)"}),
    );
    function(
        resources,
        "Query",
        "query",
        &config.lambda,
        config.lambda.timeout_secs.clamp(1, 900),
        &opts.code_uri,
        "query",
        lake.statements(),
        json!({}),
        json!({"TRIBUTARY_TOKEN": {"Ref": "QueryToken"}}),
    );
    if let Some(f) = resources
        .get_mut("QueryFunction")
        .and_then(|f| f["Properties"].as_object_mut())
    {
        f.insert("FunctionUrlConfig".into(), json!({"AuthType": "NONE"}));
    }
    outputs.insert(
        "QueryUrl".into(),
        json!({"Description": "The query API (POST /v1/queries with a bearer token)",
               "Value": {"Fn::GetAtt": ["QueryFunctionUrl", "FunctionUrl"]}}),
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn logical_ids_are_alphanumeric() {
        assert_eq!(super::logical_id("Job", "daily_revenue"), "JobDailyRevenue");
        assert_eq!(
            super::logical_id("Pipeline", "orders-v2"),
            "PipelineOrdersV2"
        );
    }
}
