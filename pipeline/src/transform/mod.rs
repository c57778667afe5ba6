//! Stateless batch transforms. Each is built once against its input schema (which is when
//! `validate` catches unknown columns and type errors) and then applied with `&self` to any
//! number of batches in parallel: no state is kept between batches.

mod native;
mod sql;

use std::sync::Arc;

use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

pub use native::{CastTransform, HashTransform, RenameTransform};
pub use sql::SqlTransform;

use crate::error::{Error, Result};

pub trait Transform: Send + Sync + std::fmt::Debug {
    /// Its label and the schemas it was built to map between.
    fn signature(&self) -> &Signature;
    fn apply(&self, batch: RecordBatch) -> Result<RecordBatch>;

    /// A short label for errors and logs (`#1 (filter)`).
    fn label(&self) -> &str {
        &self.signature().label
    }
    /// The schema `apply` produces for `input`; errors if `input` is not what it was built for.
    fn output_schema(&self, input: &Schema) -> Result<SchemaRef> {
        let sig = self.signature();
        if sig.input.fields() != input.fields() {
            return Err(Error::Internal(format!(
                "transform {} was built for schema {:?} but was given {input:?}",
                sig.label, sig.input
            )));
        }
        Ok(sig.output.clone())
    }
}

/// What every built transform knows about itself.
#[derive(Debug, Clone)]
pub struct Signature {
    pub label: String,
    pub input: SchemaRef,
    pub output: SchemaRef,
}

/// A transform as declared in config, already checked for its own fields.
#[derive(Debug, Clone)]
pub enum TransformSpec {
    Sql { query: String },
    Filter { predicate: String },
    Select { columns: Vec<String> },
    Rename { mapping: Vec<(String, String)> },
    Cast { columns: Vec<(String, DataType)> },
    Derive { column: String, expr: String },
    Hash { columns: Vec<String>, salt: String },
}

/// Why a transform could not be built, with the name that was wrong (to point at it).
#[derive(Debug, Clone)]
pub struct BuildError {
    pub message: String,
    /// The offending identifier, if the error is about one (unknown column, say).
    pub name: Option<String>,
    pub hint: Option<String>,
}

impl BuildError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            name: None,
            hint: None,
        }
    }
    fn unknown_column(name: &str, schema: &Schema) -> Self {
        Self {
            message: format!("unknown column `{name}`"),
            name: Some(name.to_string()),
            hint: Some(crate::diag::did_you_mean(
                name,
                schema.fields().iter().map(|f| f.name().as_str()),
            )),
        }
    }
}

pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn check_columns<'a>(
    schema: &Schema,
    names: impl IntoIterator<Item = &'a String>,
) -> std::result::Result<(), BuildError> {
    for n in names {
        if schema.field_with_name(n).is_err() {
            return Err(BuildError::unknown_column(n, schema));
        }
    }
    Ok(())
}

/// Builds a transform for `input`; `label` names it in errors.
pub async fn build(
    spec: &TransformSpec,
    input: SchemaRef,
    label: String,
) -> std::result::Result<Arc<dyn Transform>, BuildError> {
    Ok(match spec {
        TransformSpec::Sql { query } => Arc::new(SqlTransform::compile(label, input, query).await?),
        TransformSpec::Filter { predicate } => {
            let q = format!("SELECT * FROM input WHERE {predicate}");
            Arc::new(SqlTransform::compile(label, input, &q).await?)
        }
        TransformSpec::Select { columns } => {
            check_columns(&input, columns)?;
            let cols: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
            let q = format!("SELECT {} FROM input", cols.join(", "));
            Arc::new(SqlTransform::compile(label, input, &q).await?)
        }
        TransformSpec::Derive { column, expr } => {
            let mut cols: Vec<String> = Vec::new();
            let mut replaced = false;
            for f in input.fields() {
                if f.name() == column {
                    cols.push(format!("({expr}) AS {}", quote_ident(column)));
                    replaced = true;
                } else {
                    cols.push(quote_ident(f.name()));
                }
            }
            if !replaced {
                cols.push(format!("({expr}) AS {}", quote_ident(column)));
            }
            let q = format!("SELECT {} FROM input", cols.join(", "));
            Arc::new(SqlTransform::compile(label, input, &q).await?)
        }
        TransformSpec::Rename { mapping } => {
            check_columns(&input, mapping.iter().map(|(from, _)| from))?;
            Arc::new(RenameTransform::new(label, input, mapping)?)
        }
        TransformSpec::Cast { columns } => {
            check_columns(&input, columns.iter().map(|(c, _)| c))?;
            Arc::new(CastTransform::new(label, input, columns)?)
        }
        TransformSpec::Hash { columns, salt } => {
            check_columns(&input, columns)?;
            Arc::new(HashTransform::new(label, input, columns, salt.clone()))
        }
    })
}

/// Runs a chain of transforms over a batch.
pub fn apply_all(transforms: &[Arc<dyn Transform>], mut batch: RecordBatch) -> Result<RecordBatch> {
    for t in transforms {
        batch = t.apply(batch).map_err(|e| match e {
            Error::DataFusion(e) => Error::Query(format!("transform {} failed: {e}", t.label())),
            Error::Arrow(e) => Error::Query(format!("transform {} failed: {e}", t.label())),
            other => other,
        })?;
    }
    Ok(batch)
}
