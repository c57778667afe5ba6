//! Results that hold only their own bytes.
//!
//! A string-view column points into shared data buffers: a filtered, limited or top-K
//! result of a few rows can still hold the whole 30 MB buffers its rows were cut from, and
//! Arrow IPC sends a view array's buffers whole. So a 500-id answer went over Flight SQL
//! as one 32 MB message (past gRPC's 16 MB default) and the server kept every such buffer
//! alive for as long as it kept the result. Results are compacted as they are collected,
//! and cut into messages of bounded size before they are encoded.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, GenericListArray, StructArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{BinaryViewType, ByteViewType, DataType, FieldRef, StringViewType};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

/// Rows per IPC message are chosen so that each holds about this many bytes: well under
/// gRPC's 16 MB message limit and arrow-flight's own 2 MB split point (which slices
/// batches, and a sliced view array still carries all its buffers).
pub const MESSAGE_BYTES: usize = 1 << 20;

/// Whether a type holds view arrays anywhere inside.
fn has_views(t: &DataType) -> bool {
    match t {
        DataType::Utf8View | DataType::BinaryView => true,
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            has_views(f.data_type())
        }
        DataType::Struct(fields) => fields.iter().any(|f| has_views(f.data_type())),
        DataType::Map(f, _) => has_views(f.data_type()),
        _ => false,
    }
}

/// `a` with its view arrays holding only the bytes its rows use. Copies only where the
/// buffers are less than half used (a result built from whole pages is left as it is).
pub fn compact_array(a: &ArrayRef) -> ArrayRef {
    compact_with(a, false)
}

/// `compact_array`; with `force`, top-level view arrays are copied whatever their use.
fn compact_with(a: &ArrayRef, force: bool) -> ArrayRef {
    if !has_views(a.data_type()) {
        return a.clone();
    }
    match a.data_type() {
        DataType::Utf8View => gc_views::<StringViewType>(a, force),
        DataType::BinaryView => gc_views::<BinaryViewType>(a, force),
        DataType::Struct(fields) => {
            let s = a.as_struct();
            let columns = s.columns().iter().map(compact_array).collect();
            match StructArray::try_new(fields.clone(), columns, s.nulls().cloned()) {
                Ok(s) => Arc::new(s),
                Err(_) => a.clone(),
            }
        }
        DataType::List(field) => relist::<i32>(a, field),
        DataType::LargeList(field) => relist::<i64>(a, field),
        // Maps and fixed-size lists of views are rare in results: sent as they are.
        _ => a.clone(),
    }
}

/// A view array copied into buffers of its own, if `force` or if it uses less than half
/// of the buffers it holds.
fn gc_views<T: ByteViewType>(a: &ArrayRef, force: bool) -> ArrayRef {
    let v = a.as_byte_view::<T>();
    let held: usize = v.data_buffers().iter().map(|b| b.len()).sum();
    if force || (held > 0 && v.total_buffer_bytes_used() * 2 < held) {
        Arc::new(v.gc())
    } else {
        a.clone()
    }
}

/// A list (or large list) rebuilt over its values cut to the rows' range and compacted.
fn relist<O: arrow::array::OffsetSizeTrait>(a: &ArrayRef, field: &FieldRef) -> ArrayRef {
    let l = a.as_list::<O>();
    let (offsets, values) = rebased(l.offsets(), l.values());
    match GenericListArray::<O>::try_new(field.clone(), offsets, values, l.nulls().cloned()) {
        Ok(l) => Arc::new(l),
        Err(_) => a.clone(),
    }
}

/// A list's offsets starting at 0 and its values cut to the range they address, compacted.
fn rebased<O: arrow::array::OffsetSizeTrait>(
    offsets: &OffsetBuffer<O>,
    values: &ArrayRef,
) -> (OffsetBuffer<O>, ArrayRef) {
    let first = offsets.first().copied().unwrap_or_default();
    let last = offsets.last().copied().unwrap_or_default();
    let start = first.as_usize();
    let values = values.slice(start, last.as_usize() - start);
    let shifted = offsets.iter().map(|o| *o - first).collect::<Vec<O>>();
    (OffsetBuffer::new(shifted.into()), compact_array(&values))
}

/// A batch whose columns hold only their own bytes.
pub fn compact(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| has_views(f.data_type()))
    {
        return Ok(batch.clone());
    }
    compact_columns(batch, false)
}

fn compact_columns(batch: &RecordBatch, force: bool) -> Result<RecordBatch, ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .map(|c| compact_with(c, force))
        .collect();
    RecordBatch::try_new(batch.schema(), columns)
}

/// Bytes a compacted batch holds (what its IPC message will about weigh).
fn weight(batch: &RecordBatch) -> usize {
    batch.get_array_memory_size()
}

/// `batches` cut and compacted into pieces of about `target` bytes each, for messages of
/// bounded size (Flight SQL's DoGet, HTTP Arrow pages, stored results).
pub fn for_messages(
    batches: &[RecordBatch],
    target: usize,
) -> Result<Vec<RecordBatch>, ArrowError> {
    let mut out = Vec::new();
    for b in batches {
        let whole = compact(b)?;
        let size = weight(&whole);
        let rows = whole.num_rows();
        if size <= target || rows <= 1 {
            out.push(whole);
            continue;
        }
        let pieces = size.div_ceil(target).min(rows);
        let per = rows.div_ceil(pieces);
        let mut at = 0;
        while at < rows {
            let n = per.min(rows - at);
            // Each piece compacted again: a slice of a view array still holds all of it.
            out.push(compact_all(&whole.slice(at, n))?);
            at += n;
        }
    }
    Ok(out)
}

/// Like `compact`, but copies view columns whatever their use (for slices cut here, and
/// rows taken out of a batch).
pub(crate) fn compact_all(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    compact_columns(batch, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringViewArray};
    use arrow::datatypes::{Field, Schema};

    fn big_batch(rows: usize) -> RecordBatch {
        let ids: Vec<String> = (0..rows)
            .map(|i| format!("event-{i:08}-with-a-long-enough-suffix"))
            .collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8View, false),
            Field::new("n", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringViewArray::from_iter_values(ids)),
                Arc::new(Int64Array::from_iter_values(0..rows as i64)),
            ],
        )
        .unwrap()
    }

    fn ipc_bytes(b: &RecordBatch) -> usize {
        let mut buf = Vec::new();
        let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut buf, &b.schema()).unwrap();
        w.write(b).unwrap();
        w.finish().unwrap();
        buf.len()
    }

    #[test]
    fn a_few_rows_cut_from_a_big_batch_encode_to_their_own_size() {
        let big = big_batch(200_000);
        let few = big.slice(1_000, 500);
        // Sliced, the view column still carries every buffer of the big batch.
        assert!(ipc_bytes(&few) > 5_000_000, "{}", ipc_bytes(&few));
        let small = compact(&few).unwrap();
        assert!(ipc_bytes(&small) < 50_000, "{}", ipc_bytes(&small));
        assert_eq!(small, few);
    }

    #[test]
    fn big_results_are_cut_into_bounded_messages_with_every_row() {
        let big = big_batch(200_000);
        let pieces = for_messages(std::slice::from_ref(&big), MESSAGE_BYTES).unwrap();
        assert!(pieces.len() > 4);
        assert_eq!(pieces.iter().map(|p| p.num_rows()).sum::<usize>(), 200_000);
        for p in &pieces {
            assert!(ipc_bytes(p) < 2 * MESSAGE_BYTES, "{}", ipc_bytes(p));
        }
        let again = arrow::compute::concat_batches(&big.schema(), &pieces).unwrap();
        assert_eq!(again, big);
    }

    #[test]
    fn views_inside_lists_and_structs_are_compacted_too() {
        use arrow::array::{ListArray, StructArray};
        use arrow::buffer::OffsetBuffer;
        let values: ArrayRef = Arc::new(StringViewArray::from_iter_values(
            (0..100_000).map(|i| format!("sku-{i:010}-padding-padding")),
        ));
        let field = Arc::new(Field::new("s", DataType::Utf8View, false));
        let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(10, 10_000));
        let list: ArrayRef = Arc::new(ListArray::new(field, offsets, values.clone(), None));
        let st: ArrayRef = Arc::new(StructArray::from(vec![(
            Arc::new(Field::new("v", DataType::Utf8View, false)),
            values,
        )]));
        for a in [list.slice(5, 3), st.slice(7, 3)] {
            let c = compact_array(&a);
            assert_eq!(c.to_data(), a.to_data());
            assert!(
                c.get_array_memory_size() < 10_000,
                "{}",
                c.get_array_memory_size()
            );
        }
    }
}
