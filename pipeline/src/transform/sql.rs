//! SQL-defined transforms (`sql`, `filter`, `derive`, `select`): planned once by DataFusion
//! against the input schema, then executed per batch as plain vectorised expression
//! evaluation — no per-batch planning, no async, no state.
//!
//! Only row-wise plans are accepted (projections and filters over `input`): an aggregate,
//! sort, join or window over one batch would silently depend on how input is batched, so it
//! belongs in a scheduled job, not a stream transform.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatchOptions};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::MemTable;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::{BuildError, Signature, Transform};
use crate::error::Result;

#[derive(Debug)]
enum Step {
    Filter {
        predicate: Arc<dyn PhysicalExpr>,
        projection: Option<Vec<usize>>,
    },
    Project {
        exprs: Vec<Arc<dyn PhysicalExpr>>,
        schema: SchemaRef,
    },
}

#[derive(Debug)]
pub struct SqlTransform {
    sig: Signature,
    /// Columns of the input the plan reads (DataFusion prunes unused ones at the scan).
    leaf: Vec<usize>,
    steps: Vec<Step>,
}

fn session() -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(usize::MAX >> 1);
    let opts = config.options_mut();
    opts.sql_parser.map_string_types_to_utf8view = false;
    opts.execution.time_zone = Some("UTC".into());
    SessionContext::new_with_config(config)
}

impl SqlTransform {
    pub async fn compile(label: String, input: SchemaRef, query: &str) -> Result<Self, BuildError> {
        let ctx = session();
        let table = MemTable::try_new(input.clone(), vec![vec![]])
            .map_err(|e| BuildError::new(e.to_string()))?;
        ctx.register_table("input", Arc::new(table))
            .map_err(|e| BuildError::new(e.to_string()))?;
        let df = ctx.sql(query).await.map_err(|e| explain(e, &input))?;
        let plan = df
            .create_physical_plan()
            .await
            .map_err(|e| explain(e, &input))?;
        let output = plan.schema();
        let mut steps = Vec::new();
        let mut node: Arc<dyn ExecutionPlan> = plan;
        let leaf_schema = loop {
            if let Some(p) = node.downcast_ref::<ProjectionExec>() {
                steps.push(Step::Project {
                    exprs: p.expr().iter().map(|e| e.expr.clone()).collect(),
                    schema: p.schema(),
                });
                node = p.input().clone();
            } else if let Some(f) = node.downcast_ref::<FilterExec>() {
                steps.push(Step::Filter {
                    predicate: f.predicate().clone(),
                    projection: f.projection().as_ref().map(|p| p.to_vec()),
                });
                node = f.input().clone();
            } else if matches!(
                node.name(),
                "CoalesceBatchesExec" | "RepartitionExec" | "CoalescePartitionsExec"
            ) && node.children().len() == 1
            {
                // Batching/partitioning plumbing: no effect on rows.
                node = node.children()[0].clone();
            } else if node.downcast_ref::<EmptyExec>().is_some() || node.name() == "DataSourceExec"
            {
                break node.schema();
            } else {
                return Err(BuildError {
                    message: format!(
                        "a stream transform must be row-wise (SELECT expressions FROM input [WHERE ...]); this query needs `{}`",
                        node.name()
                    ),
                    name: None,
                    hint: Some(
                        "aggregates, joins, sorts and windows over a stream depend on batching: run them as a scheduled job over the table instead".into(),
                    ),
                });
            }
        };
        steps.reverse();
        let leaf = leaf_schema
            .fields()
            .iter()
            .map(|f| {
                input
                    .index_of(f.name())
                    .map_err(|e| BuildError::new(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            sig: Signature {
                label,
                input,
                output,
            },
            leaf,
            steps,
        })
    }
}

/// A DataFusion planning error as a message, the name it is about, and a hint.
fn explain(e: datafusion::error::DataFusionError, input: &Schema) -> BuildError {
    let msg = e.strip_backtrace();
    if let Some(name) = crate::diag::unknown_field_in(&msg) {
        return BuildError::unknown_column(&name, input);
    }
    BuildError::new(msg)
}

impl Transform for SqlTransform {
    fn signature(&self) -> &Signature {
        &self.sig
    }

    fn apply(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let mut batch = batch.project(&self.leaf)?;
        for step in &self.steps {
            batch = match step {
                Step::Filter {
                    predicate,
                    projection,
                } => {
                    let mask = predicate.evaluate(&batch)?.into_array(batch.num_rows())?;
                    let filtered = filter_record_batch(&batch, mask.as_boolean())?;
                    match projection {
                        Some(p) => filtered.project(p)?,
                        None => filtered,
                    }
                }
                Step::Project { exprs, schema } => {
                    let n = batch.num_rows();
                    let cols = exprs
                        .iter()
                        .map(|e| e.evaluate(&batch).and_then(|v| v.into_array(n)))
                        .collect::<datafusion::error::Result<Vec<_>>>()?;
                    RecordBatch::try_new_with_options(
                        schema.clone(),
                        cols,
                        &RecordBatchOptions::new().with_row_count(Some(n)),
                    )?
                }
            };
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::{TransformSpec, build};
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("status", DataType::Utf8, true),
            Field::new("amount", DataType::Float64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec![Some("paid"), Some("created"), None])),
                Arc::new(Float64Array::from(vec![150.0, 20.0, 99.0])),
            ],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn filter_and_derive_run_without_state() {
        let b = batch();
        let f = build(
            &TransformSpec::Filter {
                predicate: "status IS NULL OR status <> 'created'".into(),
            },
            b.schema(),
            "filter".into(),
        )
        .await
        .unwrap();
        let out = f.apply(b.clone()).unwrap();
        assert_eq!(out.num_rows(), 2);
        let d = build(
            &TransformSpec::Derive {
                column: "band".into(),
                expr: "CASE WHEN amount >= 100 THEN 'high' ELSE 'low' END".into(),
            },
            out.schema(),
            "derive".into(),
        )
        .await
        .unwrap();
        let out = d.apply(out).unwrap();
        assert_eq!(out.num_columns(), 4);
        let band = out.column(3).as_string::<i32>();
        assert_eq!(band.value(0), "high");
        assert_eq!(band.value(1), "low");
    }

    #[tokio::test]
    async fn sql_projection_and_errors() {
        let b = batch();
        let t = build(
            &TransformSpec::Sql {
                query: "SELECT id, upper(status) AS s FROM input WHERE amount > 50".into(),
            },
            b.schema(),
            "sql".into(),
        )
        .await
        .unwrap();
        let out = t.apply(b.clone()).unwrap();
        assert_eq!(out.num_rows(), 2);
        assert_eq!(out.schema().field(1).name(), "s");

        let e = build(
            &TransformSpec::Filter {
                predicate: "stauts = 'x'".into(),
            },
            b.schema(),
            "filter".into(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.name.as_deref(), Some("stauts"));
        assert!(e.hint.unwrap().contains("status"));

        let e = build(
            &TransformSpec::Sql {
                query: "SELECT status, count(*) FROM input GROUP BY status".into(),
            },
            b.schema(),
            "sql".into(),
        )
        .await
        .unwrap_err();
        assert!(e.message.contains("row-wise"), "{}", e.message);
    }
}
