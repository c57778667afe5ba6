//! Job definitions validated into typed config: every problem with file:line:col and a hint
//! (schedules, time zones, SQL syntax and table names, modes, dependencies and their cycles),
//! all before anything runs.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use datafusion::sql::sqlparser;
use toml::Spanned;

use super::raw::RawJob;
use super::schedule::{Schedule, parse_tz};
use crate::diag::{Diagnostic, Diagnostics, SourceFile, did_you_mean};
use crate::schema::toml_error;

/// The table every run is recorded in.
pub const JOB_RUNS_TABLE: &str = "job_runs";

#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub file: PathBuf,
    pub description: Option<String>,
    pub schedule: Option<Schedule>,
    pub schedule_text: Option<String>,
    pub tz: Tz,
    pub enabled: bool,
    pub task: Task,
    pub timeout: Duration,
    pub retries: u32,
    pub retry_backoff: Duration,
    pub depends_on: Vec<String>,
    pub overlap: Overlap,
    pub catch_up: CatchUp,
}

#[derive(Debug, Clone)]
pub enum Task {
    Sql(SqlTask),
    /// Rewrites small files into ~target-size ones (a Delta OPTIMIZE commit).
    Compact {
        table: String,
        target_file_bytes: u64,
        partition: Vec<(String, String)>,
    },
    /// Deletes files no version newer than `retention` still needs.
    Vacuum {
        table: String,
        retention: Duration,
    },
    /// Deletes dead-lettered records older than `retention`.
    DlqRetention {
        table: String,
        retention: Duration,
    },
}

impl Task {
    pub fn kind(&self) -> &'static str {
        match self {
            Task::Sql(_) => "sql",
            Task::Compact { .. } => "compact",
            Task::Vacuum { .. } => "vacuum",
            Task::DlqRetention { .. } => "dlq_retention",
        }
    }

    /// The table the job writes.
    pub fn target(&self) -> &str {
        match self {
            Task::Sql(s) => &s.target,
            Task::Compact { table, .. }
            | Task::Vacuum { table, .. }
            | Task::DlqRetention { table, .. } => table,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SqlTask {
    pub sql: String,
    pub target: String,
    pub mode: WriteMode,
    pub partition_by: Vec<String>,
    /// Source tables read incrementally, with what each run sees of them.
    pub incremental: Vec<(String, Incremental)>,
    pub backfill_column: String,
    /// Every lake table the SQL names (for least-privilege deployment policies).
    pub reads: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WriteMode {
    Append,
    /// Replace the target partitions the query's output falls in.
    OverwritePartitions,
    Overwrite,
    /// Upsert on key columns (Delta MERGE).
    Merge {
        on: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incremental {
    /// Rows of the files committed since the last successful run.
    NewRows,
    /// Every row of each partition that changed since the last successful run (for
    /// rollups that overwrite those partitions: the answer equals a full recompute).
    ChangedPartitions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    Skip,
    Queue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Missed slots are skipped; a slot runs only within the grace period after its time.
    None,
    /// Of the missed slots, only the newest runs.
    Latest,
    /// Every missed slot runs, oldest first (up to a bound).
    All,
}

/// Tables a job's SQL may name: the project's pipeline tables, their dead-letter tables,
/// other jobs' targets and the run history.
pub struct KnownTables(pub BTreeSet<String>);

/// Loads and validates every `*.toml` in `dir` (no folder: no jobs).
pub fn load_jobs(dir: &Path, known: &KnownTables) -> Result<Vec<Job>, Diagnostics> {
    let mut diags = Diagnostics::default();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => {
            return Err(
                Diagnostic::file_level(dir, format!("cannot list the jobs folder: {e}")).into(),
            );
        }
    };
    files.sort();
    let mut raws = Vec::new();
    for path in &files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                diags.push(Diagnostic::file_level(path, format!("cannot read: {e}")));
                continue;
            }
        };
        let file = SourceFile::new(path, &text);
        match toml::from_str::<RawJob>(&text) {
            Ok(raw) => raws.push((file, raw)),
            Err(e) => diags.0.extend(toml_error(&file, &e).0),
        }
    }
    let names: Vec<String> = raws.iter().map(|(f, _)| job_name(&f.path)).collect();
    let mut known = known.0.clone();
    for (f, raw) in &raws {
        let name = job_name(&f.path);
        if raw.kind.get_ref() == "sql" {
            known.insert(
                raw.target
                    .as_ref()
                    .map(|t| t.get_ref().clone())
                    .unwrap_or(name),
            );
        }
    }
    let mut jobs = Vec::new();
    for (file, raw) in &raws {
        match validate(file, raw, &names, &known) {
            Ok(j) => jobs.push(j),
            Err(d) => diags.0.extend(d.0),
        }
    }
    if diags.is_empty() {
        check_cycles(&jobs, &raws, &mut diags);
    }
    if diags.is_empty() {
        Ok(jobs)
    } else {
        Err(diags)
    }
}

fn job_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default()
}

fn validate(
    file: &SourceFile,
    raw: &RawJob,
    names: &[String],
    known: &BTreeSet<String>,
) -> Result<Job, Diagnostics> {
    let mut d = Diagnostics::default();
    let name = job_name(&file.path);
    let top = 0..0;
    if !super::super::config::is_plain_name(&name) {
        d.push(
            file.error(
                top.clone(),
                format!("job name `{name}` (the file's name) is not a plain name"),
            )
            .with_hint("rename the file: lowercase letters, digits and `_`"),
        );
    }
    let schedule = raw.schedule.as_ref().and_then(|s| {
        Schedule::parse(s.get_ref())
            .map_err(|e| {
                let at = inner_span(file, s, e.span.clone());
                d.push(file.error(at, e.message).with_hint(e.hint));
            })
            .ok()
    });
    let tz = parse_tz(raw.timezone.get_ref()).unwrap_or_else(|m| {
        d.push(
            file.error(raw.timezone.span(), m)
                .with_hint("an IANA name such as \"UTC\" or \"Europe/Berlin\""),
        );
        Tz::UTC
    });
    let mut depends_on = Vec::new();
    for dep in &raw.depends_on {
        let n = dep.get_ref();
        if n == &name {
            d.push(file.error(dep.span(), "a job cannot depend on itself"));
        } else if !names.contains(n) {
            d.push(
                file.error(dep.span(), format!("unknown job `{n}` in depends_on"))
                    .with_hint(did_you_mean(n, names.iter().map(|s| s.as_str()))),
            );
        } else {
            depends_on.push(n.clone());
        }
    }
    if raw.schedule.is_none() && raw.depends_on.is_empty() {
        d.push(
            file.error(
                top.clone(),
                format!("job `{name}` has no schedule and no depends_on: it would never run"),
            )
            .with_hint("add schedule = \"cron(15 2 * * ? *)\" or depends_on = [\"other_job\"]"),
        );
    }
    let overlap = match raw.overlap.get_ref().as_str() {
        "skip" => Overlap::Skip,
        "queue" => Overlap::Queue,
        other => {
            d.push(
                file.error(
                    raw.overlap.span(),
                    format!("unknown overlap policy `{other}`"),
                )
                .with_hint(
                    "skip (drop a slot while the previous run goes on) or queue (run it after)",
                ),
            );
            Overlap::Skip
        }
    };
    let catch_up = match raw.catch_up.get_ref().as_str() {
        "none" => CatchUp::None,
        "latest" => CatchUp::Latest,
        "all" => CatchUp::All,
        other => {
            d.push(
                file.error(
                    raw.catch_up.span(),
                    format!("unknown catch_up policy `{other}`"),
                )
                .with_hint(
                    "latest (run the newest missed slot), all (run each, oldest first) or none",
                ),
            );
            CatchUp::Latest
        }
    };
    if !(raw.timeout_secs > 0.0 && raw.timeout_secs.is_finite()) {
        d.push(file.error(
            top.clone(),
            "timeout_secs must be a positive number of seconds",
        ));
    }
    let kind = raw.kind.get_ref().as_str();
    let task = match kind {
        "sql" => sql_task(file, raw, &name, known, &mut d),
        "compact" | "vacuum" | "dlq_retention" => maintenance_task(file, raw, kind, known, &mut d),
        other => {
            d.push(
                file.error(raw.kind.span(), format!("unknown job type `{other}`"))
                    .with_hint(did_you_mean(
                        other,
                        ["sql", "compact", "vacuum", "dlq_retention"],
                    )),
            );
            None
        }
    };
    match task {
        Some(task) if d.is_empty() => Ok(Job {
            name,
            file: file.path.clone(),
            description: raw.description.clone(),
            schedule,
            schedule_text: raw.schedule.as_ref().map(|s| s.get_ref().clone()),
            tz,
            enabled: raw.enabled,
            task,
            timeout: Duration::from_secs_f64(raw.timeout_secs.clamp(0.001, 1e9)),
            retries: raw.retries,
            retry_backoff: Duration::from_secs_f64(raw.retry_backoff_secs.clamp(0.0, 86_400.0)),
            depends_on,
            overlap,
            catch_up,
        }),
        _ => Err(d),
    }
}

/// A span inside a TOML string value (skipping its opening quotes).
fn inner_span(file: &SourceFile, s: &Spanned<String>, inner: Range<usize>) -> Range<usize> {
    let span = s.span();
    if span.end <= span.start {
        return span;
    }
    let rest = &file.text[span.start..];
    let mut quote = if rest.starts_with("\"\"\"") || rest.starts_with("'''") {
        3
    } else {
        1
    };
    if quote == 3 && file.text[span.start + 3..].starts_with('\n') {
        quote += 1;
    }
    let at = span.start + quote;
    (at + inner.start).min(span.end)..(at + inner.end).min(span.end)
}

fn wrong_key(file: &SourceFile, span: Range<usize>, key: &str, kind: &str) -> Diagnostic {
    file.error(span, format!("`{key}` does not apply to a `{kind}` job"))
        .with_hint("remove it, or set type = \"…\" to the job type it belongs to")
}

fn sql_task(
    file: &SourceFile,
    raw: &RawJob,
    name: &str,
    known: &BTreeSet<String>,
    d: &mut Diagnostics,
) -> Option<Task> {
    for (key, span) in [
        ("table", raw.table.as_ref().map(|s| s.span())),
        (
            "target_file_mb",
            raw.target_file_mb.as_ref().map(|s| s.span()),
        ),
        (
            "retention_hours",
            raw.retention_hours.as_ref().map(|s| s.span()),
        ),
        (
            "retention_days",
            raw.retention_days.as_ref().map(|s| s.span()),
        ),
        ("partition", raw.partition.as_ref().map(|s| s.span())),
    ] {
        if let Some(span) = span {
            d.push(wrong_key(file, span, key, "sql"));
        }
    }
    // The SQL, and the file (and offset in it) its diagnostics point into.
    let (sql, sql_file, base) = match (&raw.sql, &raw.sql_file) {
        (Some(s), None) => {
            let at = inner_span(file, s, 0..0).start;
            (s.get_ref().clone(), file.clone(), Some(at))
        }
        (None, Some(f)) => {
            let path = file
                .path
                .parent()
                .unwrap_or(Path::new("."))
                .join(f.get_ref());
            match std::fs::read_to_string(&path) {
                Ok(text) => (text.clone(), SourceFile::new(&path, &text), None),
                Err(e) => {
                    d.push(
                        file.error(f.span(), format!("cannot read {}: {e}", path.display()))
                            .with_hint("sql_file is relative to the job file"),
                    );
                    return None;
                }
            }
        }
        (Some(s), Some(_)) => {
            d.push(
                file.error(s.span(), "both sql and sql_file are set")
                    .with_hint("keep one"),
            );
            return None;
        }
        (None, None) => {
            d.push(
                file.error(0..0, format!("job `{name}` has no SQL"))
                    .with_hint(format!(
                        "add sql = \"SELECT …\" or sql_file = \"{name}.sql\""
                    )),
            );
            return None;
        }
    };
    let at = |line: u64, col: u64, len: usize| -> Range<usize> {
        let off = offset_of(&sql, line as usize, col as usize);
        let start = base.unwrap_or(0) + off;
        start..start + len.max(1)
    };
    let referenced = check_sql(&sql, &sql_file, &at, known, d);
    let target = raw
        .target
        .as_ref()
        .map(|t| t.get_ref().clone())
        .unwrap_or_else(|| name.to_string());
    if !super::super::config::is_plain_name(&target) {
        let span = raw.target.as_ref().map(|t| t.span()).unwrap_or(0..0);
        d.push(file.error(span, format!("target `{target}` is not a plain table name")));
    }
    let partition_by: Vec<String> = raw
        .partition_by
        .iter()
        .map(|p| p.get_ref().clone())
        .collect();
    let mode = match raw
        .mode
        .as_ref()
        .map(|m| m.get_ref().as_str())
        .unwrap_or("append")
    {
        "append" => WriteMode::Append,
        "overwrite" => WriteMode::Overwrite,
        "overwrite_partitions" => {
            if partition_by.is_empty() {
                let span = raw.mode.as_ref().map(|m| m.span()).unwrap_or(0..0);
                d.push(
                    file.error(
                        span,
                        "mode = \"overwrite_partitions\" needs a partitioned target",
                    )
                    .with_hint("add partition_by = [\"dt\"]"),
                );
            }
            WriteMode::OverwritePartitions
        }
        "merge" => {
            if raw.merge_on.is_empty() {
                let span = raw.mode.as_ref().map(|m| m.span()).unwrap_or(0..0);
                d.push(
                    file.error(span, "mode = \"merge\" needs key columns")
                        .with_hint("add merge_on = [\"id\"]: rows with the same key are updated, others inserted"),
                );
            }
            WriteMode::Merge {
                on: raw.merge_on.iter().map(|m| m.get_ref().clone()).collect(),
            }
        }
        other => {
            let span = raw.mode.as_ref().map(|m| m.span()).unwrap_or(0..0);
            d.push(
                file.error(span, format!("unknown write mode `{other}`"))
                    .with_hint(did_you_mean(
                        other,
                        ["append", "overwrite_partitions", "overwrite", "merge"],
                    )),
            );
            WriteMode::Append
        }
    };
    if !raw.merge_on.is_empty() && !matches!(mode, WriteMode::Merge { .. }) {
        d.push(wrong_key(
            file,
            raw.merge_on[0].span(),
            "merge_on",
            "non-merge",
        ));
    }
    let mut incremental = Vec::new();
    for (table, how) in &raw.incremental {
        let t = table.get_ref();
        let how = match how.get_ref().as_str() {
            "new_rows" => Incremental::NewRows,
            "changed_partitions" => Incremental::ChangedPartitions,
            other => {
                d.push(
                    file.error(how.span(), format!("unknown incremental mode `{other}`"))
                        .with_hint("new_rows (rows committed since the last run) or changed_partitions (whole partitions that changed)"),
                );
                continue;
            }
        };
        if let Some(refs) = &referenced
            && !refs.contains(t)
        {
            d.push(
                file.error(
                    table.span(),
                    format!("incremental source `{t}` is not read by the job's SQL"),
                )
                .with_hint(did_you_mean(t, refs.iter().map(|s| s.as_str()))),
            );
        }
        incremental.push((t.clone(), how));
    }
    Some(Task::Sql(SqlTask {
        sql,
        target,
        mode,
        partition_by,
        incremental,
        backfill_column: raw.backfill_column.clone(),
        reads: referenced.into_iter().flatten().collect(),
    }))
}

/// Parses the SQL: one read-only query whose tables exist. Returns the tables it names.
fn check_sql(
    sql: &str,
    file: &SourceFile,
    at: &dyn Fn(u64, u64, usize) -> Range<usize>,
    known: &BTreeSet<String>,
    d: &mut Diagnostics,
) -> Option<BTreeSet<String>> {
    use sqlparser::ast::{Statement, Visit, Visitor};
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;
    let statements = match Parser::parse_sql(&GenericDialect {}, sql) {
        Ok(s) => s,
        Err(e) => {
            let msg = e.to_string();
            // An error at the end of the text names no position: point at its end.
            let (line, col) = parse_line_col(&msg).unwrap_or_else(|| {
                let t = sql.trim_end();
                let line = t.lines().count().max(1);
                let col = t.lines().last().map(|l| l.chars().count() + 1).unwrap_or(1);
                (line as u64, col as u64)
            });
            d.push(
                file.error(at(line, col, 1), format!("SQL does not parse: {msg}"))
                    .with_hint("the job's SQL is one SELECT (or WITH … SELECT) statement"),
            );
            return None;
        }
    };
    let [Statement::Query(query)] = statements.as_slice() else {
        d.push(
            file.error(at(1, 1, 1), "a job's SQL is exactly one SELECT (or WITH … SELECT)")
                .with_hint("the job writes the query's result to its target with `mode`; no INSERT/CREATE/… in the SQL"),
        );
        return None;
    };
    struct Tables {
        ctes: BTreeSet<String>,
        names: Vec<(String, u64, u64)>,
    }
    impl Visitor for Tables {
        type Break = ();
        fn pre_visit_query(&mut self, q: &sqlparser::ast::Query) -> std::ops::ControlFlow<()> {
            if let Some(with) = &q.with {
                for cte in &with.cte_tables {
                    self.ctes.insert(cte.alias.name.value.clone());
                }
            }
            std::ops::ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(
            &mut self,
            t: &sqlparser::ast::TableFactor,
        ) -> std::ops::ControlFlow<()> {
            if let sqlparser::ast::TableFactor::Table {
                name, args: None, ..
            } = t
                && let Some(ident) = name.0.last().and_then(|p| p.as_ident())
            {
                let loc = ident.span.start;
                self.names.push((ident.value.clone(), loc.line, loc.column));
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut v = Tables {
        ctes: BTreeSet::new(),
        names: Vec::new(),
    };
    let _ = query.visit(&mut v);
    let mut out = BTreeSet::new();
    for (t, line, col) in v.names {
        if v.ctes.contains(&t) {
            continue;
        }
        if !known.contains(&t) {
            d.push(
                file.error(at(line, col, t.len()), format!("unknown table `{t}`"))
                    .with_hint(format!(
                        "{} (tables of this project's pipelines, their _dlq tables, job targets and {JOB_RUNS_TABLE})",
                        did_you_mean(&t, known.iter().map(|s| s.as_str()))
                    )),
            );
        }
        out.insert(t);
    }
    Some(out)
}

/// "… at Line: 3, Column: 7" in a sqlparser error.
fn parse_line_col(msg: &str) -> Option<(u64, u64)> {
    let rest = msg.split("Line: ").nth(1)?;
    let line: u64 = rest.split(',').next()?.trim().parse().ok()?;
    let col: u64 = rest
        .split("Column: ")
        .nth(1)?
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()?;
    Some((line, col))
}

/// Byte offset of a 1-based line and column (in characters).
fn offset_of(text: &str, line: usize, col: usize) -> usize {
    let mut off = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            return off
                + l.char_indices()
                    .nth(col.saturating_sub(1))
                    .map(|(b, _)| b)
                    .unwrap_or(l.len());
        }
        off += l.len();
    }
    text.len()
}

fn maintenance_task(
    file: &SourceFile,
    raw: &RawJob,
    kind: &str,
    known: &BTreeSet<String>,
    d: &mut Diagnostics,
) -> Option<Task> {
    for (key, span) in [
        ("sql", raw.sql.as_ref().map(|s| s.span())),
        ("sql_file", raw.sql_file.as_ref().map(|s| s.span())),
        ("target", raw.target.as_ref().map(|s| s.span())),
        ("mode", raw.mode.as_ref().map(|s| s.span())),
        ("partition_by", raw.partition_by.first().map(|s| s.span())),
        ("merge_on", raw.merge_on.first().map(|s| s.span())),
        (
            "incremental",
            raw.incremental.keys().next().map(|s| s.span()),
        ),
        (
            "target_file_mb",
            raw.target_file_mb
                .as_ref()
                .filter(|_| kind != "compact")
                .map(|s| s.span()),
        ),
        (
            "partition",
            raw.partition
                .as_ref()
                .filter(|_| kind != "compact")
                .map(|s| s.span()),
        ),
        (
            "retention_hours",
            raw.retention_hours
                .as_ref()
                .filter(|_| kind != "vacuum")
                .map(|s| s.span()),
        ),
        (
            "retention_days",
            raw.retention_days
                .as_ref()
                .filter(|_| kind != "dlq_retention")
                .map(|s| s.span()),
        ),
    ] {
        if let Some(span) = span {
            d.push(wrong_key(file, span, key, kind));
        }
    }
    let Some(table) = raw.table.as_ref() else {
        d.push(
            file.error(raw.kind.span(), format!("a `{kind}` job needs `table`"))
                .with_hint("table = \"orders\""),
        );
        return None;
    };
    let t = table.get_ref().clone();
    if !known.contains(&t) {
        d.push(
            file.error(table.span(), format!("unknown table `{t}`"))
                .with_hint(did_you_mean(&t, known.iter().map(|s| s.as_str()))),
        );
    }
    Some(match kind {
        "compact" => Task::Compact {
            table: t,
            target_file_bytes: raw
                .target_file_mb
                .as_ref()
                .map(|m| *m.get_ref())
                .unwrap_or(128)
                .max(1)
                << 20,
            partition: raw
                .partition
                .as_ref()
                .map(|p| {
                    p.get_ref()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        },
        "vacuum" => Task::Vacuum {
            table: t,
            retention: Duration::from_secs(
                raw.retention_hours
                    .as_ref()
                    .map(|h| *h.get_ref())
                    .unwrap_or(168)
                    * 3600,
            ),
        },
        _ => {
            if !t.ends_with("_dlq") {
                d.push(
                    file.error(table.span(), format!("`{t}` is not a dead-letter table"))
                        .with_hint("dlq_retention applies to a pipeline's <pipeline>_dlq table"),
                );
            }
            Task::DlqRetention {
                table: t,
                retention: Duration::from_secs(
                    raw.retention_days
                        .as_ref()
                        .map(|h| *h.get_ref())
                        .unwrap_or(30)
                        * 86_400,
                ),
            }
        }
    })
}

/// depends_on must not loop back (a job would wait on itself).
fn check_cycles(jobs: &[Job], raws: &[(SourceFile, RawJob)], d: &mut Diagnostics) {
    let deps: BTreeMap<&str, &[String]> = jobs
        .iter()
        .map(|j| (j.name.as_str(), j.depends_on.as_slice()))
        .collect();
    for (file, raw) in raws {
        let start = job_name(&file.path);
        // Depth-first from `start`; a path back to it is a cycle.
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            for next in deps.get(at.as_str()).copied().unwrap_or(&[]) {
                let mut p = path.clone();
                p.push(next.clone());
                if *next == start {
                    let span = raw.depends_on.first().map(|s| s.span()).unwrap_or(0..0);
                    d.push(
                        file.error(span, format!("depends_on forms a cycle: {}", p.join(" → ")))
                            .with_hint("remove one of the dependencies"),
                    );
                    return;
                }
                if seen.insert(next.clone()) {
                    stack.push((next.clone(), p));
                }
            }
        }
    }
}
