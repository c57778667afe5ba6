//! `UNNEST` of one list column, one level deep — Athena's `CROSS JOIN UNNEST(items)` — as
//! a slice of the list's values where it can be.
//!
//! DataFusion's `UnnestExec` copies every element out with `take` (for a list of structs
//! of strings, ~40 ns per element: 156 ms of the benchmark's 3.9 M order lines, more than
//! decoding them). But a list column already holds its elements contiguously: when no row
//! has to become a NULL row (no NULL or empty list under `Preserve…` handling) and NULL
//! lists own no elements, the unnested column is just `values[first..last]`. Other columns
//! are repeated with one `take` by the list lengths; batches that need NULL rows get the
//! same `take` treatment for the list column. Same output schema, same semantics.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{NullHandling, Result, UnnestOptions};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::unnest::UnnestExec;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;

/// The physical optimizer rule: single-column, depth-1 `List` unnests become
/// [`FlatUnnestExec`].
#[derive(Debug, Default)]
pub struct FlatUnnest;

impl PhysicalOptimizerRule for FlatUnnest {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(unnest) = node.downcast_ref::<UnnestExec>() else {
                return Ok(Transformed::no(node));
            };
            let [list] = unnest.list_column_indices() else {
                return Ok(Transformed::no(node));
            };
            let input = unnest.input().schema();
            let is_list = matches!(
                input.field(list.index_in_input_schema).data_type(),
                DataType::List(_)
            );
            if list.depth != 1 || !unnest.struct_column_indices().is_empty() || !is_list {
                return Ok(Transformed::no(node));
            }
            let flat = FlatUnnestExec {
                column: list.index_in_input_schema,
                inner: unnest.clone(),
                metrics: ExecutionPlanMetricsSet::new(),
            };
            Ok(Transformed::yes(Arc::new(flat) as Arc<dyn ExecutionPlan>))
        })
        .data()
    }

    fn name(&self) -> &str {
        "FlatUnnest"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// See the module doc. `inner` describes the unnest and supplies the plan properties; it
/// is never executed.
#[derive(Debug)]
pub struct FlatUnnestExec {
    /// The list column's index in the input (and the output) schema.
    column: usize,
    inner: UnnestExec,
    metrics: ExecutionPlanMetricsSet,
}

impl DisplayAs for FlatUnnestExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "FlatUnnestExec: column={}, nulls={:?}",
            self.inner.input().schema().field(self.column).name(),
            self.inner.options().null_handling
        )
    }
}

impl ExecutionPlan for FlatUnnestExec {
    fn name(&self) -> &'static str {
        "FlatUnnestExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.inner.input()]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.inner.apply_expressions(f)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self {
            column: self.column,
            inner: super::rebuilt(&self.inner, children)?,
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.inner.input().execute(partition, context)?;
        let schema = self.inner.schema();
        let column = self.column;
        let options = self.inner.options().clone();
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let out_schema = schema.clone();
        let stream = input.map(move |batch| {
            let batch = batch?;
            let _timer = baseline.elapsed_compute().timer();
            let out = flatten(&batch, column, &options, &out_schema)?;
            baseline.record_output(out.num_rows());
            Ok(out)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// One input batch unnested: the list column at `column` becomes its elements, the other
/// columns repeat.
fn flatten(
    batch: &RecordBatch,
    column: usize,
    options: &UnnestOptions,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let list = batch.column(column).as_list::<i32>();
    let offsets = list.value_offsets();
    let (first, last) = (offsets[0] as usize, offsets[list.len()] as usize);
    // Which rows stand for one NULL output row, and whether NULL lists own elements.
    let null_row = |i: usize| match options.null_handling {
        NullHandling::Drop => false,
        NullHandling::Preserve => list.is_null(i),
        NullHandling::PreserveAndExpandEmpty => list.is_null(i) || list.value_length(i) == 0,
    };
    let any_null_row = (0..list.len()).any(null_row);
    let null_owns = list.null_count() > 0
        && (0..list.len()).any(|i| list.is_null(i) && list.value_length(i) > 0);

    // The output row of each element (or NULL row): input row indices, for the other
    // columns; for the list column, the element's index (None for a NULL row).
    let mut rows = Vec::new();
    let mut elements: Vec<Option<u32>> = Vec::new();
    let slow = any_null_row || null_owns;
    let repeats = batch.num_columns() > 1;
    for i in 0..list.len() {
        if !slow && !repeats {
            break;
        }
        if null_row(i) {
            rows.push(i as u32);
            elements.push(None);
        } else if !list.is_null(i) {
            let (a, b) = (offsets[i] as u32, offsets[i + 1] as u32);
            rows.extend(std::iter::repeat_n(i as u32, (b - a) as usize));
            if slow {
                elements.extend((a..b).map(Some));
            }
        }
    }
    let unnested: ArrayRef = if slow {
        take(list.values().as_ref(), &UInt32Array::from(elements), None)?
    } else {
        list.values().slice(first, last - first)
    };
    let repeat = UInt32Array::from(rows);
    let columns = batch
        .columns()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i == column {
                Ok(unnested.clone())
            } else {
                Ok(take(c.as_ref(), &repeat, None)?)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, ListArray};
    use arrow::datatypes::{Field, Schema};

    fn batch() -> (RecordBatch, SchemaRef) {
        // [1, 2], NULL, [], [3]
        let list = ListArray::from_iter_primitive::<arrow::datatypes::Int32Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            None,
            Some(vec![]),
            Some(vec![Some(3)]),
        ]);
        let id = Int32Array::from(vec![10, 20, 30, 40]);
        let input = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("l", list.data_type().clone(), true),
        ]));
        let out = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("l", DataType::Int32, true),
        ]));
        let b = RecordBatch::try_new(input, vec![Arc::new(id), Arc::new(list)]).unwrap();
        (b, out)
    }

    fn run(handling: NullHandling) -> (Vec<i32>, Vec<Option<i32>>) {
        let (b, schema) = batch();
        let options = UnnestOptions {
            null_handling: handling,
            ..Default::default()
        };
        let out = flatten(&b, 1, &options, &schema).unwrap();
        let ids = out
            .column(0)
            .as_primitive::<arrow::datatypes::Int32Type>()
            .values()
            .to_vec();
        let vals = out
            .column(1)
            .as_primitive::<arrow::datatypes::Int32Type>()
            .iter()
            .collect();
        (ids, vals)
    }

    #[test]
    fn null_handling_as_datafusion() {
        assert_eq!(
            run(NullHandling::Drop),
            (vec![10, 10, 40], vec![Some(1), Some(2), Some(3)])
        );
        assert_eq!(
            run(NullHandling::Preserve),
            (vec![10, 10, 20, 40], vec![Some(1), Some(2), None, Some(3)])
        );
        assert_eq!(
            run(NullHandling::PreserveAndExpandEmpty),
            (
                vec![10, 10, 20, 30, 40],
                vec![Some(1), Some(2), None, None, Some(3)]
            )
        );
    }
}
