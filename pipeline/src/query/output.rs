//! A query's result written for people and tools: a text table, CSV, JSON lines, Parquet.

use std::io::Write;

use arrow::record_batch::RecordBatch;

use super::QueryResult;
use crate::error::{Error, Result};

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
