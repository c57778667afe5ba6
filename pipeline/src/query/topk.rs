//! Per-partition top-K for `ROW_NUMBER()` / `RANK() OVER (PARTITION BY … ORDER BY …)`
//! filtered to `rn <= K` ("the three largest orders per country", "the latest row per id"),
//! without sorting every row when the partitions are few, and without DataFusion's failure
//! mode when they are many.
//!
//! DataFusion 55 has the rewrite (`WindowTopN` → `PartitionedTopKExec`), off by default
//! because its heaps grow without bound with the number of partition keys: on the benchmark's
//! 2 M events, `PARTITION BY customer_id` (200 k keys) asked for 8 GB and failed. This rule
//! applies DataFusion's rewrite, then runs each `PartitionedTopKExec` as
//! [`AdaptiveTopKExec`]: it keeps, per partition key, only rows that can still be in the
//! top K (one hash lookup and one byte comparison per row once a partition has K rows), and
//! if the partition keys or the rows kept outgrow their budget (or the memory pool says no),
//! it hands the rows still in play plus the rest of its input to a `SortExec` (which spills)
//! and keeps the first K of each partition from the sorted stream. Both paths emit rows
//! sorted by (partition keys, order keys), the ordering `PartitionedTopKExec` declares.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::physical_expr::{LexOrdering, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::window_topn::WindowTopN;
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::sorts::partitioned_topk::{PartitionedTopKExec, WindowFnKind};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, PlanProperties,
    SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};

/// Distinct partition keys one operator instance tracks before it sorts instead.
const MAX_PARTITIONS: usize = 100_000;
/// Rows it keeps in play before it sorts instead.
const MAX_ROWS: usize = 1_000_000;
/// The heap path pays when most rows fail their partition's bound; measured over each
/// window of this many input rows, a pass rate above `MAX_PASS_RATE` means the partitions
/// hold few rows each (`PARTITION BY id`), where one sort is cheaper.
const PASS_WINDOW: usize = 65_536;
const MAX_PASS_RATE: f64 = 0.25;

/// The physical optimizer rule (placed where DataFusion's `WindowTopN` runs).
#[derive(Debug, Default)]
pub struct AdaptiveWindowTopN;

impl PhysicalOptimizerRule for AdaptiveWindowTopN {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Someone who turned DataFusion's own rewrite on gets exactly that.
        if config.optimizer.enable_window_topn {
            return Ok(plan);
        }
        let mut on = config.clone();
        on.optimizer.enable_window_topn = true;
        WindowTopN::new()
            .optimize(plan, &on)?
            .transform_up(|node| {
                Ok(match node.downcast_ref::<PartitionedTopKExec>() {
                    Some(topk) => Transformed::yes(
                        Arc::new(AdaptiveTopKExec::new(topk.clone())) as Arc<dyn ExecutionPlan>
                    ),
                    None => Transformed::no(node),
                })
            })
            .data()
    }

    fn name(&self) -> &str {
        "AdaptiveWindowTopN"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// See the module doc. `inner` describes the operation (input, ordering, K, function) and
/// supplies the plan properties; it is never executed.
#[derive(Debug)]
pub struct AdaptiveTopKExec {
    inner: PartitionedTopKExec,
    metrics: ExecutionPlanMetricsSet,
}

impl AdaptiveTopKExec {
    fn new(inner: PartitionedTopKExec) -> Self {
        Self {
            inner,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for AdaptiveTopKExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let expr = self.inner.expr();
        let (partition, order) = expr.split_at(self.inner.partition_prefix_len());
        let list = |e: &[PhysicalSortExpr]| {
            e.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            f,
            "AdaptiveTopKExec: fn={}, fetch={}, partition=[{}], order=[{}]",
            match self.inner.fn_kind() {
                WindowFnKind::RowNumber => "row_number",
                WindowFnKind::Rank => "rank",
            },
            self.inner.fetch(),
            list(partition),
            list(order)
        )
    }
}

impl ExecutionPlan for AdaptiveTopKExec {
    fn name(&self) -> &'static str {
        "AdaptiveTopKExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.properties()
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        self.inner.input_distribution_requirements()
    }

    // Still called by some rules; the same answer.
    #[allow(deprecated)]
    fn required_input_distribution(&self) -> Vec<datafusion::physical_plan::Distribution> {
        self.inner.required_input_distribution()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
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
        Ok(Arc::new(Self::new(super::rebuilt(&self.inner, children)?)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.inner.input().execute(partition, context.clone())?;
        let schema = input.schema();
        let keys = Keys::try_new(
            self.inner.expr(),
            self.inner.partition_prefix_len(),
            &schema,
        )?;
        let reservation = MemoryConsumer::new(format!("AdaptiveTopK[{partition}]"))
            .with_can_spill(true)
            .register(context.memory_pool());
        let run = Run {
            schema: schema.clone(),
            expr: self.inner.expr().clone(),
            keys,
            fetch: self.inner.fetch(),
            rank: matches!(self.inner.fn_kind(), WindowFnKind::Rank),
            batch_size: context.session_config().batch_size(),
            reservation,
            baseline: BaselineMetrics::new(&self.metrics, partition),
            fallbacks: MetricBuilder::new(&self.metrics).counter("sort_fallbacks", partition),
        };
        let stream = futures::stream::once(run.run(input, context)).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// Row encodings of a batch's partition keys and order keys (memcmp order = sort order).
struct Keys {
    partition: Vec<Arc<dyn PhysicalExpr>>,
    order: Vec<Arc<dyn PhysicalExpr>>,
    partition_rows: RowConverter,
    order_rows: RowConverter,
}

impl Keys {
    fn try_new(expr: &LexOrdering, prefix: usize, schema: &SchemaRef) -> Result<Self> {
        let fields = |e: &[PhysicalSortExpr]| -> Result<Vec<SortField>> {
            e.iter()
                .map(|s| {
                    Ok(SortField::new_with_options(
                        s.expr.data_type(schema)?,
                        s.options,
                    ))
                })
                .collect()
        };
        let (p, o) = expr.split_at(prefix);
        Ok(Self {
            partition: p.iter().map(|s| s.expr.clone()).collect(),
            order: o.iter().map(|s| s.expr.clone()).collect(),
            partition_rows: RowConverter::new(fields(p)?)?,
            order_rows: RowConverter::new(fields(o)?)?,
        })
    }

    fn rows(&self, batch: &RecordBatch) -> Result<(Rows, Rows)> {
        let eval = |exprs: &[Arc<dyn PhysicalExpr>]| {
            exprs
                .iter()
                .map(|e| e.evaluate(batch)?.into_array(batch.num_rows()))
                .collect::<Result<Vec<_>>>()
        };
        Ok((
            self.partition_rows
                .convert_columns(&eval(&self.partition)?)?,
            self.order_rows.convert_columns(&eval(&self.order)?)?,
        ))
    }
}

/// Walks rows in (partition, order) order and says which are in their partition's top K.
#[derive(Default)]
struct FirstK {
    partition: Option<Vec<u8>>,
    seen: usize,
    /// The K-th row's order key (RANK keeps rows tied with it).
    kth: Option<Vec<u8>>,
}

impl FirstK {
    /// Whether the next row (of `partition`, with `order`) is kept; `Some(bound)` as well
    /// when this row is its partition's K-th.
    fn keep(&mut self, partition: &[u8], order: &[u8], fetch: usize, rank: bool) -> bool {
        if self.partition.as_deref() != Some(partition) {
            self.partition = Some(partition.to_vec());
            self.seen = 0;
            self.kth = None;
        }
        let keep = self.seen < fetch || (rank && self.kth.as_deref() == Some(order));
        if keep {
            self.seen += 1;
            if self.seen == fetch {
                self.kth = Some(order.to_vec());
            }
        }
        keep
    }
}

struct Run {
    schema: SchemaRef,
    expr: LexOrdering,
    keys: Keys,
    fetch: usize,
    rank: bool,
    batch_size: usize,
    reservation: MemoryReservation,
    baseline: BaselineMetrics,
    fallbacks: Count,
}

/// The rows still in play: `kept` (sorted, at most K per partition, ties for RANK) and
/// `pending` candidates not merged yet; per partition key, the K-th kept order key once
/// there is one (a row must beat it to be a candidate).
#[derive(Default)]
struct InPlay {
    bounds: HashMap<Vec<u8>, Option<Vec<u8>>>,
    kept: Option<RecordBatch>,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    /// Input rows and candidates in the current pass-rate window.
    window_rows: usize,
    window_passed: usize,
}

impl InPlay {
    fn rows(&self) -> usize {
        self.kept.as_ref().map_or(0, |k| k.num_rows()) + self.pending_rows
    }

    fn bytes(&self) -> usize {
        self.kept
            .iter()
            .chain(&self.pending)
            .map(|b| b.get_array_memory_size())
            .sum()
    }

    fn batches(self) -> Vec<RecordBatch> {
        self.kept.into_iter().chain(self.pending).collect()
    }
}

impl Run {
    async fn run(
        self,
        mut input: SendableRecordBatchStream,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let mut play = InPlay::default();
        while let Some(batch) = input.next().await.transpose()? {
            let _timer = self.baseline.elapsed_compute().timer();
            self.offer(&mut play, &batch)?;
            let mut low_yield = false;
            if play.window_rows >= PASS_WINDOW {
                low_yield = play.window_passed as f64 > MAX_PASS_RATE * play.window_rows as f64;
                play.window_rows = 0;
                play.window_passed = 0;
            }
            let over = low_yield
                || play.bounds.len() > MAX_PARTITIONS
                || play.rows() > MAX_ROWS
                || self.reservation.try_resize(play.bytes()).is_err();
            if over {
                drop(_timer);
                return self.sort_instead(play, input, context);
            }
        }
        let _timer = self.baseline.elapsed_compute().timer();
        self.merge(&mut play)?;
        let out: Vec<RecordBatch> = play.kept.into_iter().collect();
        self.reservation.free();
        self.baseline
            .record_output(out.iter().map(|b| b.num_rows()).sum());
        self.baseline.done();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::iter(out.into_iter().map(Ok)),
        )))
    }

    /// Adds `batch`'s rows that may be in the top K to `play`, merging when enough are
    /// pending.
    fn offer(&self, play: &mut InPlay, batch: &RecordBatch) -> Result<()> {
        let (partition, order) = self.keys.rows(batch)?;
        let mut candidates = Vec::new();
        for i in 0..batch.num_rows() {
            let p = partition.row(i);
            let pass = match play.bounds.get(p.as_ref()) {
                None => {
                    play.bounds.insert(p.as_ref().to_vec(), None);
                    true
                }
                Some(None) => true,
                Some(Some(bound)) => {
                    let o = order.row(i);
                    if self.rank {
                        o.as_ref() <= bound.as_slice()
                    } else {
                        o.as_ref() < bound.as_slice()
                    }
                }
            };
            if pass {
                candidates.push(i as u32);
            }
        }
        play.window_rows += batch.num_rows();
        play.window_passed += candidates.len();
        if !candidates.is_empty() {
            let taken = compact(take_record_batch(batch, &UInt32Array::from(candidates))?)?;
            play.pending_rows += taken.num_rows();
            play.pending.push(taken);
        }
        let kept = play.kept.as_ref().map_or(0, |k| k.num_rows());
        if play.pending_rows >= kept.max(self.batch_size) {
            self.merge(play)?;
        }
        Ok(())
    }

    /// Sorts kept and pending rows together, keeps each partition's top K, and records the
    /// K-th order key of each full partition as its bound.
    fn merge(&self, play: &mut InPlay) -> Result<()> {
        if play.pending.is_empty() {
            return Ok(());
        }
        let all = concat_batches(&self.schema, play.kept.iter().chain(play.pending.iter()))?;
        play.pending.clear();
        play.pending_rows = 0;
        let (partition, order) = self.keys.rows(&all)?;
        let mut index: Vec<usize> = (0..all.num_rows()).collect();
        index.sort_unstable_by(|&a, &b| {
            partition
                .row(a)
                .cmp(&partition.row(b))
                .then_with(|| order.row(a).cmp(&order.row(b)))
        });
        let mut walk = FirstK::default();
        let mut keep = Vec::new();
        for i in index {
            let (p, o) = (partition.row(i), order.row(i));
            if walk.keep(p.as_ref(), o.as_ref(), self.fetch, self.rank) {
                keep.push(i as u32);
                if walk.seen == self.fetch {
                    play.bounds
                        .insert(p.as_ref().to_vec(), Some(o.as_ref().to_vec()));
                }
            }
        }
        play.kept = Some(compact(take_record_batch(&all, &UInt32Array::from(keep))?)?);
        Ok(())
    }

    /// Too many partitions or rows for the heap path: sort the rows in play and the rest of
    /// the input (DataFusion's sort spills), then keep each partition's first K.
    fn sort_instead(
        self,
        play: InPlay,
        input: SendableRecordBatchStream,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.fallbacks.add(1);
        self.reservation.free();
        let rest = futures::stream::iter(play.batches().into_iter().map(Ok)).chain(input);
        let source = Once(
            Mutex::new(Some(Box::pin(RecordBatchStreamAdapter::new(
                self.schema.clone(),
                rest,
            )))),
            self.schema.clone(),
        );
        let scan = StreamingTableExec::try_new(
            self.schema.clone(),
            vec![Arc::new(source)],
            None,
            [],
            false,
            None,
        )?;
        let sorted = SortExec::new(self.expr.clone(), Arc::new(scan)).execute(0, context)?;
        let mut walk = FirstK::default();
        let schema = self.schema.clone();
        let kept = sorted.map(move |batch| {
            let batch = batch?;
            let _timer = self.baseline.elapsed_compute().timer();
            let (partition, order) = self.keys.rows(&batch)?;
            let keep: Vec<u32> = (0..batch.num_rows())
                .filter(|&i| {
                    walk.keep(
                        partition.row(i).as_ref(),
                        order.row(i).as_ref(),
                        self.fetch,
                        self.rank,
                    )
                })
                .map(|i| i as u32)
                .collect();
            let out = compact(take_record_batch(&batch, &UInt32Array::from(keep))?)?;
            self.baseline.record_output(out.num_rows());
            Ok(out)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, kept)))
    }
}

/// Rows taken from a batch still point into its string buffers (view arrays): copied out,
/// so the rows kept hold (and the memory pool and the sort count) only their own bytes.
fn compact(batch: RecordBatch) -> Result<RecordBatch> {
    Ok(super::compact::compact_all(&batch)?)
}

/// A stream as a one-partition source, executed once (the sort's input).
struct Once(Mutex<Option<SendableRecordBatchStream>>, SchemaRef);

impl fmt::Debug for Once {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Once")
    }
}

impl PartitionStream for Once {
    fn schema(&self) -> &SchemaRef {
        &self.1
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.0.lock().ok().and_then(|mut s| s.take());
        match taken {
            Some(s) => s,
            None => Box::pin(RecordBatchStreamAdapter::new(
                self.1.clone(),
                futures::stream::once(async {
                    Err(DataFusionError::Internal(
                        "adaptive top-K: sort input executed twice".into(),
                    ))
                }),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_k_keeps_k_rows_per_partition_and_rank_ties() {
        let rows = [
            (b"a", 1u8),
            (b"a", 2),
            (b"a", 2),
            (b"a", 3),
            (b"b", 5),
            (b"b", 5),
            (b"b", 5),
        ];
        let run = |rank: bool| {
            let mut w = FirstK::default();
            rows.iter()
                .map(|(p, o)| w.keep(&p[..], &[*o], 2, rank))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(false), [true, true, false, false, true, true, false]);
        // RANK: the rows tied with the 2nd are ranked 2 as well.
        assert_eq!(run(true), [true, true, true, false, true, true, true]);
    }
}
