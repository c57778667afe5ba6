//! Partition columns derived from event time (never wall-clock time): `dt=2024-06-03/`.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, StringBuilder};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::schema::{PartitionSpec, PartitionTransform};

/// Computes the value of a time-derived partition column from its source column.
fn derive(spec: &PartitionSpec, src: &ArrayRef) -> Result<ArrayRef> {
    if spec.transform == PartitionTransform::Day {
        // Vectorised: timestamp → UTC date → "YYYY-MM-DD".
        let date = cast(src, &DataType::Date32)?;
        return Ok(cast(&date, &DataType::Utf8)?);
    }
    let fmt = spec
        .transform
        .format()
        .ok_or_else(|| Error::Internal("identity partitions are not derived".into()))?;
    let us = cast(
        src,
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    )?;
    let us = us.as_primitive::<TimestampMicrosecondType>();
    let mut out = StringBuilder::with_capacity(us.len(), us.len() * 10);
    for v in us.iter() {
        match v.and_then(chrono::DateTime::from_timestamp_micros) {
            Some(t) => out.append_value(t.format(fmt).to_string()),
            None => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// Fills the derived partition columns of a batch already in table layout (where they
/// are placeholders).
pub fn add_partition_columns(batch: RecordBatch, specs: &[PartitionSpec]) -> Result<RecordBatch> {
    let schema = batch.schema();
    let mut cols = batch.columns().to_vec();
    for spec in specs {
        if spec.transform == PartitionTransform::Identity {
            continue;
        }
        let src = batch.column(schema.index_of(&spec.from)?);
        let idx = schema.index_of(&spec.name)?;
        cols[idx] = derive(spec, src)?;
    }
    Ok(RecordBatch::try_new(schema, cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn day_and_hour_from_event_time() {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("dt", DataType::Utf8, true),
            Field::new("hr", DataType::Utf8, true),
        ]));
        // 2024-06-03T23:59:59.999Z and a null
        let ts = TimestampMicrosecondArray::from(vec![Some(1_717_459_199_999_000), None])
            .with_timezone("UTC");
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(ts),
                Arc::new(StringArray::new_null(2)),
                Arc::new(StringArray::new_null(2)),
            ],
        )
        .unwrap();
        let specs = [
            PartitionSpec {
                name: "dt".into(),
                from: "t".into(),
                transform: PartitionTransform::Day,
            },
            PartitionSpec {
                name: "hr".into(),
                from: "t".into(),
                transform: PartitionTransform::Hour,
            },
        ];
        let out = add_partition_columns(b, &specs).unwrap();
        assert_eq!(out.column(1).as_string::<i32>().value(0), "2024-06-03");
        assert_eq!(out.column(2).as_string::<i32>().value(0), "2024-06-03T23");
        assert!(out.column(1).is_null(1));
    }
}
