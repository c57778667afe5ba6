//! SQL over the lake: every Delta table in the lake registered by name in one DataFusion
//! session (partition pruning and file statistics via the Delta table provider).

mod athena;
mod unnest;

use std::io::Write;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::diag::did_you_mean;
use crate::error::{Error, Result};
use crate::lake::Lake;

pub struct QueryEngine {
    ctx: SessionContext,
    tables: Vec<String>,
    /// Every column name of every table, for "did you mean" on unknown columns.
    columns: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// An aligned text table.
    Table,
    Csv,
    /// JSON lines: one object per row.
    Json,
    /// A Parquet file (needs --output).
    Parquet,
}

/// A query's answer.
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

pub fn session_config() -> SessionConfig {
    let mut config = SessionConfig::new().with_information_schema(true);
    config.options_mut().execution.time_zone = Some("UTC".into());
    config
}

impl QueryEngine {
    /// A session with every table of the lake registered.
    pub async fn open(lake: &Lake) -> Result<Self> {
        let ctx = SessionContext::new_with_config(session_config());
        athena::register(&ctx);
        // Data files of an S3 lake are read through the lake's own store (its endpoint and
        // credentials).
        if let Some((url, store)) = lake.object_store() {
            ctx.runtime_env().register_object_store(&url, store);
        }
        let mut tables = Vec::new();
        let mut columns = Vec::new();
        for name in lake.tables().await? {
            let Some(table) = lake.load(&name).await? else {
                continue;
            };
            table.update_datafusion_session(&ctx.state())?;
            let provider = table.table_provider().await?;
            columns.extend(provider.schema().fields().iter().map(|f| f.name().clone()));
            ctx.register_table(name.as_str(), provider)?;
            tables.push(name);
        }
        columns.sort();
        columns.dedup();
        Ok(Self {
            ctx,
            tables,
            columns,
        })
    }

    pub fn tables(&self) -> &[String] {
        &self.tables
    }

    /// Runs a read-only statement (queries, EXPLAIN, SHOW, DESCRIBE).
    pub async fn sql(&self, sql: &str) -> Result<QueryResult> {
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let rewritten = unnest::rewrite(sql);
        let sql = rewritten.as_deref().unwrap_or(sql);
        let df = self
            .ctx
            .sql_with_options(sql, options)
            .await
            .map_err(|e| self.explain(e))?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(|e| self.explain(e))?;
        Ok(QueryResult { schema, batches })
    }

    /// DataFusion's error, with the lake's table names suggested for an unknown table.
    fn explain(&self, e: datafusion::error::DataFusionError) -> Error {
        let msg = e.strip_backtrace();
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

/// Writes a result in the chosen format.
pub fn write_result(result: &QueryResult, format: OutputFormat, out: &mut dyn Write) -> Result<()> {
    let io = |e| Error::io("cannot write query output", e);
    match format {
        OutputFormat::Table => {
            let text = arrow::util::pretty::pretty_format_batches(&result.batches)?;
            if result.batches.is_empty() {
                let names: Vec<&str> = result
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                writeln!(out, "{}", names.join(" | ")).map_err(io)?;
            } else {
                writeln!(out, "{text}").map_err(io)?;
            }
            writeln!(out, "({} rows)", result.num_rows()).map_err(io)?;
        }
        OutputFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            if result.batches.is_empty() {
                w.write(&RecordBatch::new_empty(result.schema.clone()))?;
            }
            for b in &result.batches {
                w.write(b)?;
            }
        }
        OutputFormat::Json => {
            let mut w = arrow_json::LineDelimitedWriter::new(&mut *out);
            for b in &result.batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        OutputFormat::Parquet => {
            let mut buf = Vec::new();
            let mut w =
                parquet::arrow::ArrowWriter::try_new(&mut buf, result.schema.clone(), None)?;
            for b in &result.batches {
                w.write(b)?;
            }
            w.close()?;
            out.write_all(&buf).map_err(io)?;
        }
    }
    Ok(())
}
