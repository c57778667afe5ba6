//! SQL over the lake: every Delta table in the lake registered by name in one DataFusion
//! session (partition pruning and file statistics via the Delta table provider).

pub mod compact;
mod coop;
mod flatten;
mod guard;
pub mod isolate;
mod output;
pub mod params;
mod scan;
mod sink;
mod table;
mod topk;
mod travel;
pub mod trino;
mod unnest;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::diag::did_you_mean;
use crate::error::{Error, Result};
use crate::lake::Lake;
pub use output::{OutputFormat, write_result};
use sink::Collect;
pub use sink::{ResultSink, RunStats, memory_pool};

/// Per-query limits, like an Athena workgroup's.
#[derive(Debug, Clone, Default)]
pub struct QueryLimits {
    /// Memory for a query's operators (sorts and aggregations spill to disk beyond it).
    pub memory_bytes: Option<usize>,
    /// The query is cancelled after this long.
    pub timeout: Option<std::time::Duration>,
    /// The query is cancelled once it would read more than this from the lake.
    pub max_bytes_scanned: Option<u64>,
    /// Parallel partitions per query (default: two per core, or
    /// `DATAFUSION_EXECUTION_TARGET_PARTITIONS`).
    pub partitions: Option<usize>,
    /// One pool that every query of a server shares (`memory_pool`), so that concurrent
    /// queries together stay within `memory_bytes`; `None`: a pool per query.
    pub pool: Option<Arc<dyn datafusion::execution::memory_pool::MemoryPool>>,
    /// The SQL dialect queries are read in (Trino's by default, as Athena's).
    pub dialect: trino::Dialect,
    /// The session time zone (default UTC, as Athena's), e.g. `Europe/Paris` or `+02:00`.
    pub time_zone: Option<String>,
}

impl QueryLimits {
    /// These limits with one memory pool of `memory_bytes` shared by every query run under
    /// them (the server's: execution and results count against the same bound).
    pub fn shared(mut self) -> Self {
        if let Some(bytes) = self.memory_bytes {
            self.pool = Some(memory_pool(bytes));
        }
        self
    }
}

pub struct QueryEngine {
    ctx: SessionContext,
    limits: QueryLimits,
    meter: Arc<scan::ScanMeter>,
    /// Partition columns per table, for SHOW PARTITIONS.
    partitions: std::collections::HashMap<String, Vec<String>>,
    /// Data files per table (in the version registered), for files pruned.
    file_counts: std::collections::HashMap<String, u64>,
    tables: Vec<String>,
    /// Every column name of every table, for "did you mean" on unknown columns.
    columns: Vec<String>,
}

/// Only queries: no DDL, DML or other statements (SET, PREPARE …).
fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// A planned query, not run.
pub struct Prepared {
    pub schema: SchemaRef,
    /// Placeholder name (`$1` …) and the type its use implies (`None`: any).
    pub params: Vec<(String, Option<arrow::datatypes::DataType>)>,
}

/// A query's answer.
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// Bytes read from the lake's data files.
    pub bytes_scanned: u64,
    /// Data files read, and files of the queried tables skipped (partition and statistics
    /// pruning).
    pub files_scanned: u64,
    pub files_pruned: u64,
    pub elapsed: std::time::Duration,
}

impl QueryResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// Tributary's DataFusion settings, each overridable by its `DATAFUSION_*` environment
/// variable (DataFusion's own naming: `datafusion.execution.parquet.pushdown_filters` is
/// `DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS`).
const SESSION_DEFAULTS: &[(&str, &str)] = &[
    // Athena answers in UTC.
    ("datafusion.execution.time_zone", "UTC"),
    // Late materialisation: decode a filter's columns first, the others only for the rows
    // that pass (point lookups by id: q09 −30 %, q10 −35 % in bench/queries.sh; a filter
    // that keeps most rows, q02's, pays a few ms).
    ("datafusion.execution.parquet.pushdown_filters", "true"),
    ("datafusion.execution.parquet.reorder_filters", "true"),
];

pub fn session_config() -> Result<SessionConfig> {
    let mut config = SessionConfig::from_env()
        .map_err(|e| Error::Usage(format!("a DATAFUSION_* environment variable: {e}")))?
        .with_information_schema(true);
    for (key, value) in SESSION_DEFAULTS {
        if std::env::var_os(key.to_uppercase().replace('.', "_")).is_none() {
            config
                .options_mut()
                .set(key, value)
                .map_err(|e| Error::Internal(format!("session default {key}: {e}")))?;
        }
    }
    // Two partitions per core, not DataFusion's one: with one, the slowest of the scan's
    // partitions sets the pace while the other core waits. Interleaved on the benchmark's
    // queries (2 cores): 3, 4 and 6 partitions each −5 % geometric mean against 2 (q06,
    // q07, q04, q10 −6 to −14 %).
    if std::env::var_os("DATAFUSION_EXECUTION_TARGET_PARTITIONS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        config = config.with_target_partitions(cores * 2);
    }
    Ok(config)
}

/// A session state with DataFusion's defaults, plus the adaptive per-partition top-K
/// rewrite (`topk.rs`) where DataFusion's own `WindowTopN` rule sits, the flat unnest
/// (`flatten.rs`), and joins that yield (`coop.rs`).
fn session_state(
    config: SessionConfig,
    runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
    dialect: trino::Dialect,
) -> datafusion::execution::SessionState {
    let mut rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
    let at = rules
        .iter()
        .position(|r| r.name() == "WindowTopN")
        .map_or(rules.len(), |i| i + 1);
    rules.insert(at, Arc::new(topk::AdaptiveWindowTopN));
    // Last: earlier rules (projection pushdown, sort pushdown) know UnnestExec, not ours.
    rules.push(Arc::new(flatten::FlatUnnest));
    rules.push(Arc::new(coop::YieldingJoins));
    datafusion::execution::SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_analyzer_rules(trino::analyzer_rules(dialect))
        .with_physical_optimizer_rules(rules)
        .build()
}

/// `node` rebuilt over `children` by its own `with_new_children` (which checks them), for
/// our plan nodes that wrap a DataFusion node (`topk.rs`, `flatten.rs`).
// Deprecated in DataFusion 55 for `replace_children`; it is the method the wrappers
// themselves implement, so they rebuild their inner node the same way.
#[allow(deprecated)]
fn rebuilt<T>(
    node: &T,
    children: Vec<Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
) -> datafusion::common::Result<T>
where
    T: datafusion::physical_plan::ExecutionPlan + Clone + 'static,
{
    Arc::new(node.clone())
        .with_new_children(children)?
        .downcast_ref::<T>()
        .cloned()
        .ok_or_else(|| {
            datafusion::common::DataFusionError::Internal(format!(
                "{} rebuilt as another plan",
                node.name()
            ))
        })
}

/// A table provider for reading `table`'s loaded version: a plain Parquet scan of its files
/// where the table allows one, deltalake's provider otherwise (see `table.rs`).
pub(crate) async fn provider_for(
    table: &deltalake::DeltaTable,
) -> Result<Arc<dyn datafusion::catalog::TableProvider>> {
    let delta = table.table_provider().await?;
    Ok(match table::LakeTable::try_new(table, delta.schema()) {
        Some(t) => Arc::new(t),
        None => delta,
    })
}

impl QueryEngine {
    /// A session with every table of the lake registered, without limits.
    pub async fn open(lake: &Lake) -> Result<Self> {
        Self::open_with(lake, &QueryLimits::default()).await
    }

    /// A session with every table of the lake registered, under `limits`.
    pub async fn open_with(lake: &Lake, limits: &QueryLimits) -> Result<Self> {
        Self::open_tables(lake, limits, None).await
    }

    /// A session with only `tables` registered (all of the lake's when `None`): a job reads
    /// just the tables its SQL names, and needs access to no others.
    pub async fn open_tables(
        lake: &Lake,
        limits: &QueryLimits,
        only: Option<&[String]>,
    ) -> Result<Self> {
        let mut rt = datafusion::execution::runtime_env::RuntimeEnvBuilder::new();
        match (&limits.pool, limits.memory_bytes) {
            (Some(pool), _) => rt = rt.with_memory_pool(pool.clone()),
            (None, Some(m)) => rt = rt.with_memory_pool(memory_pool(m)),
            (None, None) => {}
        }
        let mut config = session_config()?;
        if let Some(n) = limits.partitions {
            config = config.with_target_partitions(n.max(1));
        }
        if let Some(tz) = &limits.time_zone {
            config.options_mut().execution.time_zone = Some(tz.clone());
        }
        let config = trino::configure(config, limits.dialect);
        let ctx =
            SessionContext::new_with_state(session_state(config, rt.build_arc()?, limits.dialect));
        trino::register(&ctx, limits.dialect);
        for (name, by_time) in [("table_version", false), ("table_at", true)] {
            ctx.register_udtf(
                name,
                Arc::new(travel::TimeTravel {
                    lake: lake.clone(),
                    by_time,
                }),
            );
        }
        let meter = Arc::new(scan::ScanMeter::default());
        let mut tables = Vec::new();
        let mut partitions = std::collections::HashMap::new();
        let mut file_counts = std::collections::HashMap::new();
        let mut columns = Vec::new();
        let names = match only {
            Some(t) => t.to_vec(),
            None => lake.tables().await?,
        };
        for name in names {
            let Some(table) = lake.load_latest(&name).await? else {
                continue;
            };
            table.update_datafusion_session(&ctx.state())?;
            let snapshot = table.snapshot()?;
            partitions.insert(
                name.clone(),
                snapshot.metadata().partition_columns().to_vec(),
            );
            file_counts.insert(name.clone(), snapshot.log_data().iter().count() as u64);
            let provider = provider_for(&table).await?;
            columns.extend(provider.schema().fields().iter().map(|f| f.name().clone()));
            ctx.register_table(name.as_str(), provider)?;
            tables.push(name);
        }
        columns.sort();
        columns.dedup();
        // Data files are read through a store that counts (and caps) the bytes scanned: the
        // lake's own for S3 (its endpoint and credentials), the local file system otherwise.
        let (url, store): (url::Url, Arc<dyn object_store::ObjectStore>) = match lake.object_store()
        {
            Some(s) => s,
            None => (
                url::Url::parse("file://")
                    .map_err(|e| Error::Internal(format!("file URL: {e}")))?,
                Arc::new(object_store::local::LocalFileSystem::new()),
            ),
        };
        ctx.runtime_env().register_object_store(
            &url,
            Arc::new(scan::MeteredStore::new(store, meter.clone())),
        );
        Ok(Self {
            ctx,
            limits: limits.clone(),
            meter,
            partitions,
            file_counts,
            tables,
            columns,
        })
    }

    /// Replaces a table's registration (a job reads an incremental source through a view
    /// of some of its files).
    pub(crate) fn replace_table(
        &mut self,
        name: &str,
        provider: Arc<dyn datafusion::catalog::TableProvider>,
        files: u64,
    ) -> Result<()> {
        self.ctx.deregister_table(name)?;
        self.ctx.register_table(name, provider)?;
        self.file_counts.insert(name.to_string(), files);
        Ok(())
    }

    pub(crate) fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Every function name (and alias) queries can call, in lower case.
    pub fn function_names(&self) -> std::collections::BTreeSet<String> {
        let state = self.ctx.state();
        let scalar = state
            .scalar_functions()
            .values()
            .flat_map(|f| std::iter::once(f.name()).chain(f.aliases().iter().map(|s| s.as_str())))
            .map(str::to_string)
            .collect::<Vec<_>>();
        let aggregate = state
            .aggregate_functions()
            .values()
            .flat_map(|f| std::iter::once(f.name()).chain(f.aliases().iter().map(|s| s.as_str())))
            .map(str::to_string)
            .collect::<Vec<_>>();
        let window = state.window_functions().keys().cloned().collect::<Vec<_>>();
        scalar
            .into_iter()
            .chain(aggregate)
            .chain(window)
            .map(|n| n.to_ascii_lowercase())
            .collect()
    }

    pub fn tables(&self) -> &[String] {
        &self.tables
    }

    /// The Arrow schema of a lake table.
    pub async fn table_schema(&self, name: &str) -> Result<arrow::datatypes::Schema> {
        let provider = self.ctx.table_provider(name).await?;
        Ok(provider.schema().as_ref().clone())
    }

    /// Runs a read-only statement (queries, EXPLAIN, SHOW, DESCRIBE).
    pub async fn sql(&self, sql: &str) -> Result<QueryResult> {
        self.sql_with_params(sql, None).await
    }

    /// Plans `sql` without running it (a prepared statement): its result schema, and its
    /// parameters (`?` or `$n`) as `$1, $2, …` with the types inferred from their use.
    pub async fn prepare(&self, sql: &str) -> Result<Prepared> {
        let rewritten = self.rewrite_text(sql)?;
        let sql = rewritten.as_deref().unwrap_or(sql);
        let numbered = params::number_placeholders(sql);
        let sql = numbered.unwrap_or_else(|| sql.to_string());
        let ctx = self.ctx.clone();
        // Planned on the query runtime like a run: deep expressions recurse in planning too.
        let planned = isolate::run(
            async move {
                let df = plan_sql(&ctx, &sql).await?;
                let params = df.logical_plan().get_parameter_types()?;
                Ok((Arc::new(df.schema().as_arrow().clone()), params))
            },
            self.limits.timeout,
        )
        .await;
        let (schema, params) = planned.map_err(|e| self.explain_error(e))?;
        let mut params: Vec<(String, Option<arrow::datatypes::DataType>)> =
            params.into_iter().collect();
        // `$10` after `$9`.
        params.sort_by_key(|(name, _)| name.trim_start_matches('$').parse::<u32>().unwrap_or(0));
        Ok(Prepared { schema, params })
    }

    /// Plans `sql` for a writer to execute as a stream (a job's output, never held whole in
    /// memory): the read-only plan, and the session state to run it in. The scan meter
    /// starts over, as for a query.
    pub async fn plan(
        &self,
        sql: &str,
    ) -> Result<(
        datafusion::logical_expr::LogicalPlan,
        datafusion::execution::SessionState,
    )> {
        let rewritten = self.rewrite_text(sql)?;
        let sql = rewritten.as_deref().unwrap_or(sql);
        self.meter.reset(self.limits.max_bytes_scanned.unwrap_or(0));
        let ctx = self.ctx.clone();
        let sql = sql.to_string();
        let df = isolate::run(
            async move { Ok(plan_sql(&ctx, &sql).await?) },
            self.limits.timeout,
        )
        .await
        .map_err(|e| self.explain_error(e))?;
        // deltalake's writer wraps the plan in nodes of its own, which its planner executes.
        let state = datafusion::execution::SessionStateBuilder::new_from_existing(self.ctx.state())
            .with_query_planner(deltalake::delta_datafusion::planner::DeltaPlanner::new())
            .build();
        Ok((df.logical_plan().clone(), state))
    }

    /// Bytes read from the lake's data files since the last query or plan started.
    pub fn bytes_scanned(&self) -> u64 {
        self.meter.read.load(Ordering::Relaxed)
    }

    /// Runs `sql` with Athena-style execution parameters: SQL literals as text, bound in
    /// order to its `?` placeholders, each cast to the type its use implies.
    pub async fn sql_with_literals(&self, sql: &str, parameters: &[String]) -> Result<QueryResult> {
        let values = self.bind_literals(sql, parameters).await?;
        self.sql_with_params(sql, values).await
    }

    /// Athena-style execution parameters as values: each SQL literal cast to the type its
    /// `?` implies (`None` when there are none).
    pub async fn bind_literals(
        &self,
        sql: &str,
        parameters: &[String],
    ) -> Result<Option<Vec<datafusion::scalar::ScalarValue>>> {
        if parameters.is_empty() {
            return Ok(None);
        }
        let values = parameters
            .iter()
            .map(|p| params::literal(p))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Error::Query)?;
        let types: Vec<_> = self
            .prepare(sql)
            .await?
            .params
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        params::cast_to_planned(values, &types)
            .map(Some)
            .map_err(Error::Query)
    }

    /// Runs `sql` with `params` bound to its placeholders (`?` in order, or `$n`).
    pub async fn sql_with_params(
        &self,
        sql: &str,
        params: Option<Vec<datafusion::scalar::ScalarValue>>,
    ) -> Result<QueryResult> {
        let collect = Collect {
            batches: Vec::new(),
            reservation: datafusion::execution::memory_pool::MemoryConsumer::new("query result")
                .register(&self.ctx.runtime_env().memory_pool),
        };
        let (collect, stats) = self.run_into(sql, params, collect).await?;
        Ok(QueryResult {
            schema: stats.schema,
            batches: collect.batches,
            bytes_scanned: stats.bytes_scanned,
            files_scanned: stats.files_scanned,
            files_pruned: stats.files_pruned,
            elapsed: stats.elapsed,
        })
    }

    /// Runs `sql` on the query runtime (`isolate.rs`) under the limits, handing each result
    /// batch to `sink` as it arrives; returns the sink and the run's statistics.
    pub async fn run_into<S: ResultSink>(
        &self,
        sql: &str,
        params: Option<Vec<datafusion::scalar::ScalarValue>>,
        mut sink: S,
    ) -> Result<(S, RunStats)> {
        let started = std::time::Instant::now();
        let rewritten = self.rewrite_text(sql)?;
        let sql = rewritten.as_deref().unwrap_or(sql);
        let numbered = params
            .as_ref()
            .and_then(|_| params::number_placeholders(sql));
        let sql = numbered.unwrap_or_else(|| sql.to_string());
        self.meter.reset(self.limits.max_bytes_scanned.unwrap_or(0));
        let ctx = self.ctx.clone();
        let run = async move {
            let mut df = plan_sql(&ctx, &sql).await?;
            if let Some(values) = params {
                df = df.with_param_values(values)?;
            }
            let scanned_tables = scanned_tables(df.logical_plan());
            let schema = Arc::new(df.schema().as_arrow().clone());
            let mut stream = df.execute_stream().await?;
            let mut rows = 0;
            while let Some(b) = futures::StreamExt::next(&mut stream).await {
                let b = b?;
                rows += b.num_rows() as u64;
                sink.write(b)?;
            }
            Ok((sink, schema, scanned_tables, rows))
        };
        let (sink, schema, scanned_tables, rows) = isolate::run(run, self.limits.timeout)
            .await
            .map_err(|e| self.explain_error(e))?;
        let files_scanned = self.meter.files_read() as u64;
        let files_total: u64 = scanned_tables
            .iter()
            .filter_map(|t| self.file_counts.get(t))
            .sum();
        Ok((
            sink,
            RunStats {
                schema,
                rows,
                bytes_scanned: self.meter.read.load(Ordering::Relaxed),
                files_scanned,
                files_pruned: files_total.saturating_sub(files_scanned),
                elapsed: started.elapsed(),
            },
        ))
    }

    /// The query text after the rewrites made before parsing: `SHOW PARTITIONS`, Trino's
    /// bare `VALUES` rows, and lateral UNNEST (`unnest.rs`); `None` when unchanged.
    fn rewrite_text(&self, sql: &str) -> Result<Option<String>> {
        if let Some(shown) = self.show_partitions(sql)? {
            return Ok(Some(shown));
        }
        let valued = match self.limits.dialect {
            trino::Dialect::Trino => trino::rewrite_values(sql),
            trino::Dialect::DataFusion => None,
        };
        let text = valued.as_deref().unwrap_or(sql);
        Ok(unnest::rewrite(text).map_err(Error::Query)?.or(valued))
    }

    /// `SHOW PARTITIONS t` (Athena's): the table's distinct partition values, as a query.
    fn show_partitions(&self, sql: &str) -> Result<Option<String>> {
        let words: Vec<&str> = sql
            .trim()
            .trim_end_matches(';')
            .split_whitespace()
            .collect();
        let [show, parts, table] = words.as_slice() else {
            return Ok(None);
        };
        if !show.eq_ignore_ascii_case("show") || !parts.eq_ignore_ascii_case("partitions") {
            return Ok(None);
        }
        let table = table.trim_matches('"');
        let Some(cols) = self.partitions.get(table) else {
            return Err(Error::Query(format!(
                "table `{table}` not found in the lake: {}",
                did_you_mean(table, self.tables.iter().map(|s| s.as_str()))
            )));
        };
        if cols.is_empty() {
            return Err(Error::Query(format!("table `{table}` is not partitioned")));
        }
        let list = cols
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Some(format!(
            "SELECT DISTINCT {list} FROM \"{table}\" ORDER BY {list}"
        )))
    }

    /// An error of a run: DataFusion's explained, the others as they are.
    fn explain_error(&self, e: Error) -> Error {
        match e {
            Error::DataFusion(e) => self.explain(e),
            other => other,
        }
    }

    /// DataFusion's error, with the lake's table names suggested for an unknown table.
    fn explain(&self, e: datafusion::error::DataFusionError) -> Error {
        let msg = e.strip_backtrace();
        // A limit hit deep in a scan: report the limit, not the stack of wrappers around it.
        if let Some(i) = msg.find("query cancelled:") {
            let text = &msg[i..];
            let end = text.find(')').map(|j| j + 1).unwrap_or(text.len());
            return Error::Query(text[..end].to_string());
        }
        if msg.contains("Resources exhausted") {
            return Error::Query(format!(
                "query cancelled: it needs more memory than query.memory_mb allows ({msg})"
            ));
        }
        if let Some(rest) = msg.split("table '").nth(1)
            && msg.contains("not found")
        {
            let name = rest.split('\'').next().unwrap_or("");
            let short = name.rsplit('.').next().unwrap_or(name);
            let hint = if self.tables.is_empty() {
                "the lake has no tables yet: run a pipeline first (`tributary run`)".to_string()
            } else {
                did_you_mean(short, self.tables.iter().map(|s| s.as_str()))
            };
            return Error::Query(format!("table `{short}` not found in the lake: {hint}"));
        }
        if let Some(name) = crate::diag::unknown_field_in(&msg)
            && let Some(s) = crate::diag::suggest(&name, self.columns.iter().map(|c| c.as_str()))
        {
            return Error::Query(format!("{msg}\n  hint: did you mean `{s}`?"));
        }
        if msg.contains("Statement not supported")
            || msg.contains("not supported") && msg.contains("DDL")
        {
            return Error::Query(format!(
                "{msg}\n  hint: queries over the lake are read-only (SELECT, WITH, EXPLAIN, SHOW, DESCRIBE)"
            ));
        }
        Error::Query(msg)
    }
}

/// Refuses query text over the size limit before anything else happens to it.
pub fn check_size(sql: &str) -> Result<()> {
    guard::check_size(sql).map_err(Error::Usage)
}

/// Plans `sql` read-only, after the checks on its size and depth (`guard.rs`).
async fn plan_sql(
    ctx: &SessionContext,
    sql: &str,
) -> datafusion::common::Result<datafusion::prelude::DataFrame> {
    let state = ctx.state();
    let trino_dialect = trino::Dialect::of(&state) == trino::Dialect::Trino;
    // Bare VALUES rows were written out before (QueryEngine::rewrite_text); the Trino type
    // syntax is written here, before parsing.
    let typed = if trino_dialect {
        trino::rewrite_types(sql).map_err(datafusion::error::DataFusionError::Plan)?
    } else {
        None
    };
    let sql = typed.as_deref().unwrap_or(sql);
    guard::check_size(sql).map_err(datafusion::error::DataFusionError::Plan)?;
    let parse = || -> datafusion::common::Result<datafusion::sql::parser::Statement> {
        let dialect = state.config().options().sql_parser.dialect;
        let mut statement = state.sql_to_statement(sql, &dialect)?;
        if let Err(e) = guard::check_depth(&statement) {
            guard::drop_deep(statement);
            return Err(e);
        }
        if trino_dialect && let datafusion::sql::parser::Statement::Statement(s) = &mut statement {
            trino::rewrite(s).map_err(datafusion::error::DataFusionError::Plan)?;
        }
        Ok(statement)
    };
    // Trino names an unaliased expression `_colN`; DataFusion names it by its text, and two
    // that print alike (`sum(CAST(x AS DOUBLE))`, `sum(CAST(x AS BIGINT))`) collide. Such a
    // query is parsed and planned again with Trino's names.
    let plan = match state.statement_to_plan(parse()?).await {
        Err(e) if trino_dialect && e.to_string().contains("require unique expression names") => {
            let mut again = parse()?;
            if let datafusion::sql::parser::Statement::Statement(s) = &mut again {
                trino::name_columns(s);
            }
            state.statement_to_plan(again).await?
        }
        other => other?,
    };
    read_only().verify_plan(&plan)?;
    ctx.execute_logical_plan(plan).await
}

/// The lake tables a plan scans (each once), subqueries included.
fn scanned_tables(plan: &datafusion::logical_expr::LogicalPlan) -> Vec<String> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::logical_expr::LogicalPlan;
    let mut names = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let name = scan.table_name.table().to_string();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    names
}
