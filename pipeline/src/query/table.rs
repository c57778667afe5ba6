//! A lake table as a plain DataFusion Parquet scan: the files of one Delta snapshot, with
//! their partition values, read by DataFusion's own Parquet source.
//!
//! Why not deltalake's provider: its scan passes every batch through a per-file kernel
//! expression (partition values, column mapping, deletion vectors), which cost ~40 ms of CPU
//! per million rows here — more than decoding the Parquet. Tables that need that machinery
//! (column mapping, deletion vectors, absolute file paths) keep deltalake's provider.
//!
//! Pruning: filters on partition columns alone are evaluated exactly per partition tuple
//! (and reported `Exact`); the rest prune files with the Delta log's min/max statistics, then
//! go to the Parquet source (row-group statistics, bloom filters, page index) as usual.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::stats::Precision;
use datafusion::common::{Column, DFSchema, Result, ScalarValue, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::listing::helpers::expr_applicable_for_cols;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use deltalake::DeltaTable;
use deltalake::kernel::EagerSnapshot;
use object_store::ObjectMeta;
use object_store::path::Path;

/// One data file of the snapshot.
#[derive(Debug, Clone)]
struct LakeFile {
    meta: ObjectMeta,
    /// In the order of `LakeTable::partition_fields`.
    partition_values: Vec<ScalarValue>,
    /// From the Delta log's statistics, when written.
    rows: Option<usize>,
}

#[derive(Debug)]
pub struct LakeTable {
    /// The table as users see it (deltalake's schema, column order included).
    schema: SchemaRef,
    /// The data columns (the files' part of `schema`).
    file_schema: SchemaRef,
    partition_fields: Vec<FieldRef>,
    /// For each column of `schema`, its index in the scan's schema (data columns, then
    /// partition columns).
    scan_index: Vec<usize>,
    files: Vec<LakeFile>,
    store_url: ObjectStoreUrl,
    /// The snapshot the files came from, for statistics pruning (same file order).
    snapshot: EagerSnapshot,
}

impl LakeTable {
    /// The snapshot of `table` as a Parquet scan with the columns of `schema` (deltalake's
    /// provider's), or `None` when the table needs deltalake's reader.
    pub fn try_new(table: &DeltaTable, schema: SchemaRef) -> Option<Self> {
        let state = table.snapshot().ok()?;
        let props = state.table_config();
        if props
            .column_mapping_mode
            .is_some_and(|m| !matches!(m, delta_kernel::table_features::ColumnMappingMode::None))
        {
            return None;
        }
        let partition_cols = state.metadata().partition_columns().to_vec();
        let schema = nested_as_read(&plain_partition_columns(&schema, &partition_cols));
        let mut file_fields = Vec::new();
        let mut partition_fields = Vec::new();
        for f in schema.fields() {
            if partition_cols.contains(f.name()) {
                partition_fields.push(f.clone());
            } else {
                file_fields.push(f.clone());
            }
        }
        if partition_fields.len() != partition_cols.len() {
            return None;
        }
        let scan_index = schema
            .fields()
            .iter()
            .map(|f| match partition_fields.iter().position(|p| p == f) {
                Some(p) => file_fields.len() + p,
                None => file_fields
                    .iter()
                    .position(|d| d == f)
                    .unwrap_or(usize::MAX),
            })
            .collect::<Vec<_>>();
        if scan_index.contains(&usize::MAX) {
            return None;
        }

        let root = table.table_url();
        let store_url = ObjectStoreUrl::parse(format!(
            "{}://{}",
            root.scheme(),
            &root[url::Position::BeforeHost..url::Position::AfterPort]
        ))
        .ok()?;
        let root_path = Path::from_url_path(root.path()).ok()?;
        let mut files = Vec::new();
        for f in state.log_data().iter() {
            if f.deletion_vector_descriptor().is_some() || f.path().contains("://") {
                return None;
            }
            let location = Path::from_iter(root_path.parts().chain(f.object_store_path().parts()));
            let raw = f.partition_values_map();
            let mut partition_values = Vec::with_capacity(partition_fields.len());
            for field in &partition_fields {
                partition_values.push(partition_value(
                    raw.get(field.name()).cloned().flatten(),
                    field.data_type(),
                )?);
            }
            files.push(LakeFile {
                meta: ObjectMeta {
                    location,
                    last_modified: chrono::DateTime::from_timestamp_millis(f.modification_time())
                        .unwrap_or_default(),
                    size: u64::try_from(f.size()).ok()?,
                    e_tag: None,
                    version: None,
                },
                partition_values,
                rows: f.num_records(),
            });
        }
        Some(Self {
            file_schema: Arc::new(Schema::new(file_fields)),
            schema,
            partition_fields,
            scan_index,
            files,
            store_url,
            snapshot: state.snapshot().clone(),
        })
    }

    /// Whether `filter` reads partition columns only (so `prune_partitions` decides it
    /// exactly, per file).
    fn on_partitions_only(&self, filter: &Expr) -> bool {
        let names: Vec<&str> = self
            .partition_fields
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        !names.is_empty() && expr_applicable_for_cols(&names, filter)
    }

    /// Files kept by filters on partition columns alone, evaluated once per distinct
    /// partition tuple (SQL semantics: NULL is not true).
    fn prune_partitions(
        &self,
        state: &dyn Session,
        filters: &[Expr],
        keep: &mut [bool],
    ) -> Result<()> {
        let Some(predicate) = conjunction(filters.iter().cloned()) else {
            return Ok(());
        };
        let schema = Arc::new(Schema::new(self.partition_fields.clone()));
        let predicate =
            state.create_physical_expr(predicate, &DFSchema::try_from(schema.clone())?)?;
        let mut seen: HashMap<&[ScalarValue], bool> = HashMap::new();
        for (file, keep) in self.files.iter().zip(keep.iter_mut()) {
            if let Some(k) = seen.get(file.partition_values.as_slice()) {
                *keep &= *k;
                continue;
            }
            let columns = file
                .partition_values
                .iter()
                .map(|v| v.to_array_of_size(1))
                .collect::<Result<Vec<ArrayRef>>>()?;
            let batch = RecordBatch::try_new(schema.clone(), columns)?;
            let result = predicate.evaluate(&batch)?.into_array(1)?;
            let k = result
                .as_boolean_opt()
                .is_some_and(|b| b.is_valid(0) && b.value(0));
            seen.insert(file.partition_values.as_slice(), k);
            *keep &= k;
        }
        Ok(())
    }

    /// Files the Delta log's min/max statistics cannot rule out. Best effort: a predicate
    /// the pruner cannot handle keeps every file.
    fn prune_statistics(&self, state: &dyn Session, filters: &[Expr], keep: &mut [bool]) {
        let Some(predicate) = conjunction(filters.iter().cloned()) else {
            return;
        };
        let Ok(df_schema) = DFSchema::try_from(self.schema.clone()) else {
            return;
        };
        let Ok(predicate) = state.create_physical_expr(predicate, &df_schema) else {
            return;
        };
        let Some(pruner) = PruningPredicateBuilder::new()
            .with_file_schema(self.schema.clone())
            .build(predicate)
        else {
            return;
        };
        let stats = LogStatistics {
            snapshot: &self.snapshot,
            schema: &self.schema,
        };
        if let Ok(mask) = pruner.prune(&stats)
            && mask.len() == keep.len()
        {
            for (k, m) in keep.iter_mut().zip(mask) {
                *k &= m;
            }
        }
    }
}

/// `schema` with its partition columns as plain values instead of deltalake's dictionaries
/// (string ones as Utf8View, like the files' strings). DataFusion groups by a dictionary
/// column through its generic row format: `GROUP BY dt` cost ~35 ns a row, 38 ms of q01's
/// 45 ms aggregate, against ~10 ns for a string column. The constant column costs a
/// 16-byte view per row (day names are inline).
fn plain_partition_columns(schema: &SchemaRef, partition_cols: &[String]) -> SchemaRef {
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Dictionary(_, value) if partition_cols.contains(f.name()) => {
                let plain = match value.as_ref() {
                    DataType::Utf8 | DataType::LargeUtf8 => DataType::Utf8View,
                    other => other.clone(),
                };
                Arc::new(f.as_ref().clone().with_data_type(plain))
            }
            _ => f.clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `schema` with the strings nested in lists and structs typed as the Parquet reader
/// returns them. DataFusion reads top-level strings as views but nested ones as plain
/// Utf8, while deltalake's schema has views throughout: the scan then cast every `items`
/// batch (3.9 M order lines on the benchmark) to the table's type, copying each string
/// into a view, and the cast kept the reader from skipping the struct fields a query does
/// not use.
fn nested_as_read(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|f| {
            Arc::new(
                f.as_ref()
                    .clone()
                    .with_data_type(unview(f.data_type(), false)),
            )
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `dt` with view types replaced by their plain forms below the top level.
fn unview(dt: &DataType, nested: bool) -> DataType {
    let field = |f: &FieldRef| {
        Arc::new(
            f.as_ref()
                .clone()
                .with_data_type(unview(f.data_type(), true)),
        )
    };
    match dt {
        DataType::Utf8View if nested => DataType::Utf8,
        DataType::BinaryView if nested => DataType::Binary,
        DataType::List(f) => DataType::List(field(f)),
        DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(field(f), *n),
        DataType::Struct(fs) => DataType::Struct(fs.iter().map(field).collect()),
        DataType::Map(f, sorted) => DataType::Map(field(f), *sorted),
        other => other.clone(),
    }
}

/// A raw Delta partition value (a string, or null) as a value of the column's type.
fn partition_value(raw: Option<String>, ty: &DataType) -> Option<ScalarValue> {
    let (inner, key) = match ty {
        DataType::Dictionary(key, value) => (value.as_ref(), Some(key)),
        other => (other, None),
    };
    let value = match raw {
        None => ScalarValue::try_new_null(inner).ok()?,
        Some(s) => ScalarValue::try_from_string(s, inner).ok()?,
    };
    Some(match key {
        Some(k) => ScalarValue::Dictionary(k.clone(), Box::new(value)),
        None => value,
    })
}

/// The Delta log's per-file statistics, cast to the table's column types (the log's are
/// plain Utf8 where the table reads Utf8View or a dictionary).
struct LogStatistics<'a> {
    snapshot: &'a EagerSnapshot,
    schema: &'a Schema,
}

impl LogStatistics<'_> {
    fn cast(&self, column: &Column, array: Option<ArrayRef>) -> Option<ArrayRef> {
        let array = array?;
        let field = self.schema.field_with_name(&column.name).ok()?;
        if array.data_type() == field.data_type() {
            return Some(array);
        }
        arrow::compute::cast(&array, field.data_type()).ok()
    }
}

impl PruningStatistics for LogStatistics<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.cast(column, self.snapshot.min_values(column))
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.cast(column, self.snapshot.max_values(column))
    }

    fn num_containers(&self) -> usize {
        self.snapshot.num_containers()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        self.snapshot.null_counts(column)
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        self.snapshot.row_counts()
    }

    fn contained(&self, _column: &Column, _values: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}

#[async_trait]
impl TableProvider for LakeTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if self.on_partitions_only(f) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (partition_filters, data_filters): (Vec<Expr>, Vec<Expr>) = filters
            .iter()
            .cloned()
            .partition(|f| self.on_partitions_only(f));
        let mut keep = vec![true; self.files.len()];
        self.prune_partitions(state, &partition_filters, &mut keep)?;
        self.prune_statistics(state, &data_filters, &mut keep);

        let indices: Vec<usize> = match projection {
            Some(p) => p.iter().map(|i| self.scan_index[*i]).collect(),
            None => self.scan_index.clone(),
        };
        let kept: Vec<&LakeFile> = self
            .files
            .iter()
            .zip(&keep)
            .filter_map(|(f, k)| k.then_some(f))
            .collect();
        if kept.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }

        let rows: Option<usize> = kept.iter().map(|f| f.rows).sum();
        // Balanced groups by size, largest first; DataFusion splits large files further
        // (byte ranges) when it repartitions the scan.
        let n = state.config().target_partitions().clamp(1, kept.len());
        let mut order = kept;
        order.sort_by_key(|f| std::cmp::Reverse(f.meta.size));
        let mut groups: Vec<(u64, Vec<PartitionedFile>)> = vec![(0, Vec::new()); n];
        for f in order {
            let g = groups
                .iter_mut()
                .min_by_key(|(bytes, _)| *bytes)
                .ok_or_else(|| {
                    datafusion::error::DataFusionError::Internal("no file group".into())
                })?;
            g.0 += f.meta.size;
            g.1.push(
                PartitionedFile::new_from_meta(f.meta.clone())
                    .with_partition_values(f.partition_values.clone()),
            );
        }

        // Row counts from the log let the planner pick join sides and answer COUNT(*) as
        // DataFusion's own tables do (exact unless a data filter reaches the scan).
        let table_schema = TableSchema::builder(self.file_schema.clone())
            .with_table_partition_cols(self.partition_fields.clone())
            .build();
        let mut statistics = Statistics::new_unknown(table_schema.table_schema());
        statistics.num_rows = match rows {
            Some(n) if data_filters.is_empty() => Precision::Exact(n),
            Some(n) => Precision::Inexact(n),
            None => Precision::Absent,
        };

        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let source = format.file_source(table_schema);
        let config = FileScanConfigBuilder::new(self.store_url.clone(), source)
            .with_file_groups(groups.into_iter().map(|(_, g)| FileGroup::new(g)).collect())
            .with_statistics(statistics)
            .with_projection_indices(Some(indices))?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_columns_lose_their_dictionary_and_keep_their_place() {
        use arrow::datatypes::Field;
        let dict = |v: DataType| DataType::Dictionary(Box::new(DataType::UInt16), Box::new(v));
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8View, false),
            Field::new("tag", dict(DataType::Utf8), true),
            Field::new("dt", dict(DataType::Utf8), true),
            Field::new("n", dict(DataType::Int64), true),
        ]));
        let plain = plain_partition_columns(&schema, &["dt".into(), "n".into()]);
        let types: Vec<_> = plain
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        // `tag` is a data column: as the files have it.
        assert_eq!(
            types,
            [
                DataType::Utf8View,
                dict(DataType::Utf8),
                DataType::Utf8View,
                DataType::Int64
            ]
        );
        assert!(plain.field(2).is_nullable());
    }

    #[test]
    fn nested_strings_are_typed_as_the_reader_returns_them() {
        use arrow::datatypes::Field;
        let item = |s: DataType| {
            DataType::List(Arc::new(Field::new(
                "element",
                DataType::Struct(
                    vec![
                        Field::new("sku", s, true),
                        Field::new("qty", DataType::Int32, true),
                    ]
                    .into(),
                ),
                true,
            )))
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8View, false),
            Field::new("items", item(DataType::Utf8View), true),
        ]));
        let read = nested_as_read(&schema);
        assert_eq!(read.field(0).data_type(), &DataType::Utf8View);
        assert_eq!(read.field(1).data_type(), &item(DataType::Utf8));
        assert_eq!(read.field(1).name(), "items");
    }

    #[test]
    fn partition_values_take_the_column_type() {
        let dict = DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8));
        assert_eq!(
            partition_value(Some("2024-06-02".into()), &dict),
            Some(ScalarValue::Dictionary(
                Box::new(DataType::UInt16),
                Box::new(ScalarValue::Utf8(Some("2024-06-02".into())))
            ))
        );
        assert_eq!(
            partition_value(Some("2024-06-02".into()), &DataType::Utf8View),
            Some(ScalarValue::Utf8View(Some("2024-06-02".into())))
        );
        assert_eq!(
            partition_value(Some("42".into()), &DataType::Int64),
            Some(ScalarValue::Int64(Some(42)))
        );
        assert_eq!(
            partition_value(None, &DataType::Date32),
            Some(ScalarValue::Date32(None))
        );
        // Not a number: the table keeps deltalake's reader rather than guess.
        assert_eq!(partition_value(Some("x".into()), &DataType::Int64), None);
    }
}
