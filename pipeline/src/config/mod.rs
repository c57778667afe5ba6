//! Project configuration (`tributary.toml`): parsed raw (`raw`), then validated into the
//! typed model below. Validation builds every transform against its input schema, so a
//! config that passes `tributary validate` cannot fail later on a name or a type.

pub mod lambda;
mod raw;
mod source;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use toml::Spanned;

use crate::diag::{Diagnostic, Diagnostics, SourceFile, did_you_mean};
use crate::schema::{TableSchema, toml_error, types};
use crate::transform::{self, BuildError, Transform, TransformSpec};
use raw::{RawConfig, RawPipeline, RawTransform};
use source::validate_aws;
use tributary_connectors::SourceKind;
use tributary_connectors::aws::{AwsSettings, parse_s3_url};

/// What happens to a record that cannot be decoded or does not fit the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRecordPolicy {
    /// Write it to the pipeline's dead-letter table (raw payload, position, reason, time).
    Dlq,
    /// Drop it, counted.
    Drop,
    /// Stop the run with an error naming the record.
    Fail,
}

#[derive(Debug, Clone)]
pub struct SinkSettings {
    pub target_file_bytes: u64,
    pub max_file_rows: u64,
    pub flush_rows: u64,
    pub flush_interval: std::time::Duration,
    pub row_group_rows: usize,
    pub zstd_level: i32,
}

#[derive(Debug)]
pub struct Pipeline {
    pub name: String,
    pub table: TableSchema,
    /// Schema records are decoded with.
    pub input: SchemaRef,
    pub on_bad_record: BadRecordPolicy,
    pub source: SourceKind,
    pub transforms: Vec<Arc<dyn Transform>>,
    pub batch_size: usize,
    pub parallelism: usize,
    pub max_record_bytes: usize,
    /// Field whose repeats within a batch are dead-lettered as duplicates.
    pub dedupe_key: Option<String>,
    pub sink: SinkSettings,
    /// How `tributary deploy sam` runs this pipeline as a function.
    pub lambda: lambda::LambdaSettings,
    /// The transform stage's worker pool bounds (min, max) when run as its own process.
    pub transform_workers: (usize, usize),
    /// Staged raw segments at which the ingest stage pauses (`None`: never).
    pub ingest_max_backlog: Option<usize>,
}

impl Pipeline {
    pub fn dlq_table(&self) -> String {
        format!("{}_dlq", self.name)
    }
}

#[derive(Debug)]
pub struct Project {
    pub name: String,
    /// The lake's location: an absolute local path or an object-store URL.
    pub lake: String,
    pub schemas_dir: PathBuf,
    pub jobs_dir: PathBuf,
}

/// `[scheduler]`.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub max_concurrent_runs: usize,
    pub grace: std::time::Duration,
    pub heartbeat_ttl: std::time::Duration,
}

/// How AWS services are reached (overrides of the standard AWS chain).
#[derive(Debug, Clone, Default)]
pub struct Storage {
    pub s3: AwsSettings,
    pub kinesis: AwsSettings,
}

/// `[server]`: where the query API listens and how it is guarded.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bind: std::net::SocketAddr,
    /// Environment variable holding the bearer token (read when the server starts).
    pub token_env: String,
    pub concurrency: usize,
    pub reuse_results: Option<std::time::Duration>,
    /// Where Arrow Flight SQL listens.
    pub flight_bind: std::net::SocketAddr,
    /// Queries that may wait for a slot; more are refused (429 / RESOURCE_EXHAUSTED).
    pub queue: usize,
    /// Stored results and history entries older than these are deleted.
    pub results_retention: std::time::Duration,
    pub history_retention: std::time::Duration,
}

impl Default for ServerConfig {
    /// `serve` without a tributary.toml: the defaults of `[server]`.
    fn default() -> Self {
        let raw = raw::RawServer::default();
        Self {
            bind: std::net::SocketAddr::from(([127, 0, 0, 1], 8484)),
            token_env: "TRIBUTARY_TOKEN".into(),
            concurrency: raw.concurrency,
            reuse_results: None,
            flight_bind: std::net::SocketAddr::from(([127, 0, 0, 1], 8485)),
            queue: raw.queue,
            results_retention: std::time::Duration::from_secs_f64(
                raw.results_retention_hours.get_ref() * 3600.0,
            ),
            history_retention: std::time::Duration::from_secs_f64(
                raw.history_retention_days.get_ref() * 86400.0,
            ),
        }
    }
}

/// A retention in hours or days: positive and finite.
fn retention(
    file: &crate::diag::SourceFile,
    value: &toml::Spanned<f64>,
    unit_secs: f64,
    diags: &mut crate::diag::Diagnostics,
) -> std::time::Duration {
    let v = *value.get_ref();
    match std::time::Duration::try_from_secs_f64(v * unit_secs) {
        Ok(d) if v > 0.0 => d,
        _ => {
            diags.push(
                file.error(value.span(), format!("`{v}` is not a retention"))
                    .with_hint("a positive number, e.g. results_retention_hours = 24"),
            );
            std::time::Duration::from_secs(86400)
        }
    }
}

#[derive(Debug)]
pub struct Config {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub project: Project,
    pub storage: Storage,
    pub query: crate::query::QueryLimits,
    pub server: ServerConfig,
    pub scheduler: SchedulerConfig,
    /// `[lambda]`: function settings for `deploy sam` (pipelines may override them).
    pub lambda: lambda::LambdaSettings,
    pub pipelines: Vec<Pipeline>,
    pub jobs: Vec<crate::jobs::Job>,
}

impl Config {
    /// Reads and validates a config file. `lake_override` replaces `project.lake`.
    pub async fn load(path: &Path, lake_override: Option<&str>) -> Result<Config, Diagnostics> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostic::file_level(path, format!("cannot read config: {e}"))
                .with_hint("run in a project folder with a tributary.toml, or pass --config FILE")
        })?;
        Self::parse(path, &text, lake_override).await
    }

    pub async fn parse(
        path: &Path,
        text: &str,
        lake_override: Option<&str>,
    ) -> Result<Config, Diagnostics> {
        let file = SourceFile::new(path, text);
        let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(&file, &e))?;
        let dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        let mut diags = Diagnostics::default();

        let lake_raw = lake_override.unwrap_or(raw.project.lake.get_ref());
        let lake = match resolve_lake(&dir, lake_raw) {
            Ok(l) => l,
            Err((msg, hint)) => {
                diags.push(file.error(raw.project.lake.span(), msg).with_hint(hint));
                String::new()
            }
        };
        let schemas_dir = dir.join(raw.project.schemas.get_ref());
        let server = {
            let r = &raw.server;
            let bind = r.bind.get_ref().parse().unwrap_or_else(|e| {
                diags.push(
                    file.error(
                        r.bind.span(),
                        format!("`{}` is not an address: {e}", r.bind.get_ref()),
                    )
                    .with_hint("e.g. bind = \"127.0.0.1:8484\""),
                );
                std::net::SocketAddr::from(([127, 0, 0, 1], 8484))
            });
            let token_env = match &r.token {
                None => "TRIBUTARY_TOKEN".to_string(),
                Some(t) => match t
                    .get_ref()
                    .strip_prefix("${env:")
                    .and_then(|x| x.strip_suffix('}'))
                {
                    Some(name) => name.to_string(),
                    None => {
                        diags.push(
                            file.error(t.span(), "the server token is written inline")
                                .with_hint("reference it: token = \"${env:TRIBUTARY_TOKEN}\" (secrets never go in config files)"),
                        );
                        String::new()
                    }
                },
            };
            let flight_bind = r.flight_bind.get_ref().parse().unwrap_or_else(|e| {
                diags.push(
                    file.error(
                        r.flight_bind.span(),
                        format!("`{}` is not an address: {e}", r.flight_bind.get_ref()),
                    )
                    .with_hint("e.g. flight_bind = \"127.0.0.1:8485\""),
                );
                std::net::SocketAddr::from(([127, 0, 0, 1], 8485))
            });
            ServerConfig {
                bind,
                flight_bind,
                token_env,
                concurrency: r.concurrency.max(1),
                reuse_results: (r.reuse_results_secs > 0)
                    .then(|| std::time::Duration::from_secs(r.reuse_results_secs)),
                queue: r.queue,
                results_retention: retention(&file, &r.results_retention_hours, 3600.0, &mut diags),
                history_retention: retention(&file, &r.history_retention_days, 86400.0, &mut diags),
            }
        };
        let storage = Storage {
            s3: validate_aws(&file, raw.storage.s3.as_ref(), &mut diags),
            kinesis: validate_aws(&file, raw.storage.kinesis.as_ref(), &mut diags),
        };

        let lambda_global = lambda::resolve(
            &file,
            lambda::LambdaSettings::default(),
            &raw.lambda,
            &mut diags,
        );
        let mut pipelines = Vec::new();
        for (name, p) in &raw.pipelines {
            if !is_ident(name.get_ref()) {
                diags.push(
                    file.error(
                        name.span(),
                        format!("pipeline name `{}` is not a plain name", name.get_ref()),
                    )
                    .with_hint(
                        "use lowercase letters, digits and `_` (it names the dead-letter table)",
                    ),
                );
                continue;
            }
            match validate_pipeline(
                &file,
                &dir,
                &schemas_dir,
                &storage,
                name.get_ref(),
                p,
                &lambda_global,
            )
            .await
            {
                Ok(p) => pipelines.push(p),
                Err(d) => diags.0.extend(d.0),
            }
        }
        let jobs_dir = dir.join(raw.project.jobs.get_ref());
        let mut known: std::collections::BTreeSet<String> =
            [crate::jobs::JOB_RUNS_TABLE.to_string()].into();
        for p in &pipelines {
            known.insert(p.table.name.clone());
            known.insert(p.dlq_table());
        }
        let jobs = match crate::jobs::load_jobs(&jobs_dir, &crate::jobs::KnownTables(known)) {
            Ok(j) => j,
            Err(d) => {
                diags.0.extend(d.0);
                vec![]
            }
        };
        if !diags.is_empty() {
            return Err(diags);
        }
        Ok(Config {
            path: path.to_path_buf(),
            dir,
            project: Project {
                name: raw.project.name,
                lake,
                schemas_dir,
                jobs_dir,
            },
            storage,
            query: crate::query::QueryLimits {
                memory_bytes: (raw.query.memory_mb > 0)
                    .then(|| (raw.query.memory_mb as usize).saturating_mul(1 << 20)),
                timeout: (raw.query.timeout_secs > 0)
                    .then(|| std::time::Duration::from_secs(raw.query.timeout_secs)),
                max_bytes_scanned: (raw.query.max_scanned_mb > 0)
                    .then(|| raw.query.max_scanned_mb.saturating_mul(1 << 20)),
                partitions: None,
                pool: None,
                dialect: raw.query.dialect,
                time_zone: None,
            },
            server,
            scheduler: SchedulerConfig {
                max_concurrent_runs: raw.scheduler.max_concurrent_runs.max(1),
                grace: std::time::Duration::from_secs(raw.scheduler.grace_secs),
                heartbeat_ttl: std::time::Duration::from_secs(
                    raw.scheduler.heartbeat_ttl_secs.max(1),
                ),
            },
            lambda: lambda_global,
            pipelines,
            jobs,
        })
    }

    pub fn pipeline(&self, name: &str) -> Result<&Pipeline, String> {
        self.pipelines
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| {
                format!(
                    "no pipeline `{name}` in {}: {}",
                    self.path.display(),
                    did_you_mean(name, self.pipelines.iter().map(|p| p.name.as_str()))
                )
            })
    }
}

/// A name usable for tables and jobs: lowercase letters, digits and `_`.
pub(crate) fn is_plain_name(s: &str) -> bool {
    is_ident(s)
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

fn resolve_lake(dir: &Path, lake: &str) -> Result<String, (String, String)> {
    if let Some((scheme, _)) = lake.split_once("://") {
        return match scheme {
            "file" => Ok(lake.trim_start_matches("file://").to_string()),
            "s3" | "s3a" => match parse_s3_url(lake) {
                Some((bucket, prefix)) => Ok(format!("s3://{bucket}/{prefix}")),
                None => Err((
                    format!("lake `{lake}` names no bucket"),
                    "write it as s3://bucket/prefix".into(),
                )),
            },
            other => Err((
                format!("lake URL scheme `{other}` is not supported"),
                "use a local folder (\"lake\"), file:///absolute/path or s3://bucket/prefix".into(),
            )),
        };
    }
    let p = Path::new(lake);
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    };
    Ok(p.display().to_string())
}

/// The column inside a config string where `name` occurs (for pointing at it).
fn span_of_name(file: &SourceFile, s: &Spanned<String>, name: Option<&str>) -> Range<usize> {
    let span = s.span();
    let Some(name) = name else { return span };
    let quote = if file.text[span.start..].starts_with("\"\"\"")
        || file.text[span.start..].starts_with("'''")
    {
        3
    } else {
        1
    };
    match s.get_ref().find(name) {
        Some(i) if span.end > span.start => {
            let at = span.start + quote + i;
            at..at + name.len()
        }
        _ => span,
    }
}

async fn validate_pipeline(
    file: &SourceFile,
    dir: &Path,
    schemas_dir: &Path,
    storage: &Storage,
    name: &str,
    sp: &Spanned<RawPipeline>,
    lambda_global: &lambda::LambdaSettings,
) -> Result<Pipeline, Diagnostics> {
    let p = sp.get_ref();
    let mut diags = Diagnostics::default();
    let lambda = lambda::resolve(file, lambda_global.clone(), &p.lambda, &mut diags);
    let table_name = p.table.get_ref();
    let table = match TableSchema::load(schemas_dir, table_name) {
        Ok(t) => Some(t),
        Err(mut d) => {
            if !schemas_dir.join(format!("{table_name}.toml")).exists() {
                let known = list_schemas(schemas_dir);
                d = file
                    .error(p.table.span(), format!("unknown table `{table_name}`: no {}/{table_name}.toml", schemas_dir.display()))
                    .with_hint(format!(
                        "{}; or create it with `tributary schema infer SAMPLE.ndjson --name {table_name}`",
                        did_you_mean(table_name, known.iter().map(|s| s.as_str()))
                    ))
                    .into();
            }
            diags.0.extend(d.0);
            None
        }
    };
    let input_table = match &p.input_schema {
        Some(s) => match TableSchema::load(schemas_dir, s.get_ref()) {
            Ok(t) => Some(t),
            Err(d) => {
                diags.push(file.error(
                    s.span(),
                    format!("cannot load input schema `{}`", s.get_ref()),
                ));
                diags.0.extend(d.0);
                None
            }
        },
        None => table.clone(),
    };
    let on_bad_record = match p.on_bad_record.get_ref().as_str() {
        "dlq" => BadRecordPolicy::Dlq,
        "drop" => BadRecordPolicy::Drop,
        "fail" => BadRecordPolicy::Fail,
        other => {
            diags.push(
                file.error(
                    p.on_bad_record.span(),
                    format!("unknown on_bad_record policy `{other}`"),
                )
                .with_hint("use \"dlq\" (dead-letter table, the default), \"drop\" or \"fail\""),
            );
            BadRecordPolicy::Dlq
        }
    };
    let source = match source::validate_source(file, dir, storage, &p.source) {
        Ok(s) => Some(s),
        Err(d) => {
            diags.push(d);
            None
        }
    };
    // Split stages hand work over through the lake's staging area on notifications of its
    // bucket: for S3 sources only (a project-wide default leaves the others whole).
    let mut lambda = lambda;
    if lambda.split_stages && !matches!(source, Some(SourceKind::S3(_)) | None) {
        match &p.lambda.split_stages {
            Some(v) => diags.push(
                file.error(
                    v.span(),
                    "split_stages deploys the ingest, transform and sink stages as functions, which only S3-source pipelines can be",
                )
                .with_hint("file sources run where their files are, and Kinesis pipelines scale per shard already (one invocation per shard batch); remove split_stages here"),
            ),
            None => lambda.split_stages = false,
        }
    }
    if *p.batch_size.get_ref() == 0 || *p.batch_size.get_ref() > 1 << 20 {
        diags.push(file.error(
            p.batch_size.span(),
            "batch_size must be between 1 and 1048576",
        ));
    }
    if *p.max_record_bytes.get_ref() == 0 {
        diags.push(file.error(
            p.max_record_bytes.span(),
            "max_record_bytes must be positive",
        ));
    }

    // Transforms, built in order against the schema the previous one produces.
    let mut transforms: Vec<Arc<dyn Transform>> = Vec::new();
    let input: Option<SchemaRef> = input_table.as_ref().map(|t| {
        // Decode with every top-level field nullable: missing required fields are detected
        // after decoding and dead-lettered per record instead of failing the batch.
        let fields: Vec<Field> = t
            .fields
            .iter()
            .map(|f| f.clone().with_nullable(true))
            .collect();
        Arc::new(Schema::new(fields))
    });
    let mut current = input.clone();
    for (i, t) in p.transforms.iter().enumerate() {
        let label = format!("#{} ({})", i + 1, t.get_ref().kind.get_ref());
        let spec = match transform_spec(file, t) {
            Ok(s) => s,
            Err(d) => {
                diags.push(d);
                current = None;
                continue;
            }
        };
        let Some(schema) = current.clone() else {
            continue;
        };
        match transform::build(&spec, schema.clone(), label.clone()).await {
            Ok(built) => {
                current = built.output_schema(&schema).ok();
                transforms.push(built);
            }
            Err(e) => {
                diags.push(build_error_diag(file, t, &label, e));
                current = None;
            }
        }
    }

    // The last transform's output must fit the table.
    if let (Some(table), Some(out)) = (&table, &current) {
        let at = p
            .transforms
            .last()
            .map(|t| t.span())
            .unwrap_or_else(|| p.table.span());
        for f in out.fields() {
            match table.fields.iter().find(|t| t.name() == f.name()) {
                None => diags.push(
                    file.error(
                        at.clone(),
                        format!(
                            "column `{}` is produced for table `{}`, which has no such field",
                            f.name(),
                            table.name
                        ),
                    )
                    .with_hint(format!(
                        "add `{}` to {} or drop it with a `select` transform",
                        f.name(),
                        table.file.path.display()
                    )),
                ),
                Some(t) if !arrow::compute::can_cast_types(f.data_type(), t.data_type()) => diags
                    .push(
                        file.error(
                            at.clone(),
                            format!(
                                "column `{}` is {} but table `{}` declares {}",
                                f.name(),
                                types::format_type(f.data_type()),
                                table.name,
                                types::format_type(t.data_type())
                            ),
                        )
                        .with_hint("add a `cast` transform or change the schema"),
                    ),
                Some(_) => {}
            }
        }
        for t in &table.fields {
            if !t.is_nullable() && out.field_with_name(t.name()).is_err() {
                diags.push(
                    file.error(at.clone(), format!("required field `{}` of table `{}` is not produced by this pipeline", t.name(), table.name))
                        .with_hint("keep the column in your transforms, or make the field optional in the schema"),
                );
            }
        }
    }

    if !diags.is_empty() {
        return Err(diags);
    }
    // `current` (the transforms' output) was checked against the table above.
    if let (Some(k), Some(schema)) = (&p.dedupe_key, &input)
        && schema.field_with_name(k.get_ref()).is_err()
    {
        diags.push(
            file.error(
                k.span(),
                format!("dedupe_key `{}` is not a field of the input", k.get_ref()),
            )
            .with_hint(did_you_mean(
                k.get_ref(),
                schema.fields().iter().map(|f| f.name().as_str()),
            )),
        );
    }
    let (Some(table), Some(input), Some(source), Some(_)) = (table, input, source, current) else {
        return Err(Diagnostics(vec![
            file.error(sp.span(), format!("pipeline `{name}` is invalid")),
        ]));
    };
    let parallelism = if p.parallelism == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        p.parallelism
    };
    let w = &p.stages.transform;
    let min_workers = w.min_workers.as_ref().map(|v| *v.get_ref()).unwrap_or(1);
    let max_workers = w
        .max_workers
        .as_ref()
        .map(|v| *v.get_ref())
        .unwrap_or(parallelism.max(min_workers));
    if let Some(v) = &w.min_workers
        && *v.get_ref() == 0
    {
        return Err(Diagnostics(vec![
            file.error(v.span(), "min_workers must be at least 1")
                .with_hint("the pool keeps this many workers even when idle"),
        ]));
    }
    if let Some(v) = &w.max_workers
        && *v.get_ref() < min_workers
    {
        return Err(Diagnostics(vec![
            file.error(
                v.span(),
                format!(
                    "max_workers ({}) is below min_workers ({min_workers})",
                    v.get_ref()
                ),
            )
            .with_hint("the pool grows from min_workers up to max_workers with its backlog"),
        ]));
    }
    Ok(Pipeline {
        name: name.to_string(),
        transform_workers: (min_workers, max_workers),
        ingest_max_backlog: match p.stages.ingest.max_backlog {
            Some(0) => None,
            Some(n) => Some(n),
            None => Some(64),
        },
        table,
        input,
        on_bad_record,
        source,
        transforms,
        batch_size: *p.batch_size.get_ref(),
        parallelism,
        max_record_bytes: *p.max_record_bytes.get_ref(),
        dedupe_key: p.dedupe_key.as_ref().map(|k| k.get_ref().clone()),
        lambda,
        sink: SinkSettings {
            target_file_bytes: p.sink.target_file_mb.max(1) << 20,
            max_file_rows: p.sink.max_file_rows.max(1),
            flush_rows: p.sink.flush_rows.max(1),
            flush_interval: std::time::Duration::from_secs(p.sink.flush_interval_secs.max(1)),
            row_group_rows: p.sink.row_group_rows.max(1024),
            zstd_level: p.sink.zstd_level.clamp(1, 22),
        },
    })
}

fn list_schemas(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.path()
                        .file_stem()
                        .map(|s| s.to_string_lossy().to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

const TRANSFORM_KEYS: &[(&str, &[&str])] = &[
    ("sql", &["query"]),
    ("filter", &["predicate"]),
    ("select", &["columns"]),
    ("rename", &["columns"]),
    ("cast", &["columns"]),
    ("derive", &["column", "expr"]),
    ("hash", &["columns", "salt"]),
];

fn transform_spec(
    file: &SourceFile,
    st: &Spanned<RawTransform>,
) -> Result<TransformSpec, Diagnostic> {
    let t = st.get_ref();
    let kind = t.kind.get_ref().as_str();
    let Some((_, allowed)) = TRANSFORM_KEYS.iter().find(|(k, _)| *k == kind) else {
        return Err(file
            .error(t.kind.span(), format!("unknown transform type `{kind}`"))
            .with_hint(did_you_mean(kind, TRANSFORM_KEYS.iter().map(|(k, _)| *k))));
    };
    let given: [(&str, Option<Range<usize>>); 6] = [
        ("query", t.query.as_ref().map(|v| v.span())),
        ("predicate", t.predicate.as_ref().map(|v| v.span())),
        ("column", t.column.as_ref().map(|v| v.span())),
        ("expr", t.expr.as_ref().map(|v| v.span())),
        ("columns", t.columns.as_ref().map(|v| v.span())),
        ("salt", t.salt.as_ref().map(|v| v.span())),
    ];
    for (key, span) in &given {
        if let Some(span) = span
            && !allowed.contains(key)
        {
            return Err(file
                .error(
                    span.clone(),
                    format!("`{key}` is not a setting of a `{kind}` transform"),
                )
                .with_hint(format!("`{kind}` takes: {}", allowed.join(", "))));
        }
    }
    let missing = |key: &str, example: &str| {
        file.error(st.span(), format!("a `{kind}` transform needs `{key}`"))
            .with_hint(format!("e.g. {example}"))
    };
    let s = |v: &Option<Spanned<String>>| v.as_ref().map(|v| v.get_ref().clone());
    Ok(match kind {
        "sql" => TransformSpec::Sql {
            query: s(&t.query).ok_or_else(|| {
                missing(
                    "query",
                    "query = \"SELECT *, lower(email) AS email_lc FROM input\"",
                )
            })?,
        },
        "filter" => TransformSpec::Filter {
            predicate: s(&t.predicate)
                .ok_or_else(|| missing("predicate", "predicate = \"status <> 'created'\""))?,
        },
        "derive" => TransformSpec::Derive {
            column: s(&t.column).ok_or_else(|| missing("column", "column = \"value_band\""))?,
            expr: s(&t.expr).ok_or_else(|| missing("expr", "expr = \"total_amount * 100\""))?,
        },
        "select" => TransformSpec::Select {
            columns: name_list(file, t.columns.as_ref())
                .map_err(|_| missing("columns", "columns = [\"event_id\", \"status\"]"))?,
        },
        "hash" => {
            let columns = name_list(file, t.columns.as_ref())
                .map_err(|_| missing("columns", "columns = [\"email\"]"))?;
            let salt = match &t.salt {
                None => return Err(missing("salt", "salt = \"${env:PII_SALT}\"")),
                Some(v) => resolve_secret(file, v)?,
            };
            TransformSpec::Hash { columns, salt }
        }
        "rename" => {
            let pairs = name_table(file, t.columns.as_ref())
                .map_err(|_| missing("columns", "columns = { old_name = \"new_name\" }"))?;
            TransformSpec::Rename { mapping: pairs }
        }
        "cast" => {
            let pairs = name_table(file, t.columns.as_ref())
                .map_err(|_| missing("columns", "columns = { customer_id = \"string\" }"))?;
            let mut columns = Vec::new();
            for (c, ty) in pairs {
                let parsed = types::parse_type(&ty).map_err(|e| {
                    file.error(
                        t.columns.as_ref().map(|v| v.span()).unwrap_or(st.span()),
                        format!("column `{c}`: {}", e.message),
                    )
                })?;
                columns.push((c, parsed));
            }
            TransformSpec::Cast { columns }
        }
        other => {
            return Err(file.error(
                t.kind.span(),
                format!("transform type `{other}` has no builder"),
            ));
        }
    })
}

fn name_list(
    file: &SourceFile,
    v: Option<&Spanned<toml::Value>>,
) -> Result<Vec<String>, Diagnostic> {
    let v = v.ok_or_else(|| file.error(0..0, "missing"))?;
    match v.get_ref() {
        toml::Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| file.error(v.span(), "`columns` must be a list of column names"))
            })
            .collect(),
        _ => Err(file.error(
            v.span(),
            "`columns` must be a non-empty list of column names",
        )),
    }
}

fn name_table(
    file: &SourceFile,
    v: Option<&Spanned<toml::Value>>,
) -> Result<Vec<(String, String)>, Diagnostic> {
    let v = v.ok_or_else(|| file.error(0..0, "missing"))?;
    match v.get_ref() {
        toml::Value::Table(t) if !t.is_empty() => t
            .iter()
            .map(|(k, val)| {
                val.as_str()
                    .map(|s| (k.clone(), s.to_string()))
                    .ok_or_else(|| file.error(v.span(), format!("`{k}` must map to a string")))
            })
            .collect(),
        _ => Err(file.error(
            v.span(),
            "`columns` must be a table like { name = \"value\" }",
        )),
    }
}

/// Resolves `${env:NAME}` references so secrets never sit in config files.
fn resolve_secret(file: &SourceFile, v: &Spanned<String>) -> Result<String, Diagnostic> {
    let s = v.get_ref();
    if let Some(name) = s.strip_prefix("${env:").and_then(|r| r.strip_suffix('}')) {
        return std::env::var(name).map_err(|_| {
            file.error(
                v.span(),
                format!("environment variable `{name}` is not set"),
            )
            .with_hint(format!("export {name}=... before running"))
        });
    }
    tracing::warn!(
        "a secret is written inline in {}; prefer \"${{env:NAME}}\"",
        file.path.display()
    );
    Ok(s.clone())
}

fn build_error_diag(
    file: &SourceFile,
    t: &Spanned<RawTransform>,
    label: &str,
    e: BuildError,
) -> Diagnostic {
    let raw = t.get_ref();
    // Point at the string the error is about, at the offending name where we can find it.
    let target = raw
        .predicate
        .as_ref()
        .or(raw.expr.as_ref())
        .or(raw.query.as_ref());
    let span = match target {
        Some(s) => span_of_name(file, s, e.name.as_deref()),
        None => raw.columns.as_ref().map(|c| c.span()).unwrap_or(t.span()),
    };
    file.error(span, format!("transform {label}: {}", e.message))
        .with_hint_opt(e.hint)
}

#[cfg(test)]
mod tests;
