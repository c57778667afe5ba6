//! `trino_field(row, n)`: a row's n-th field (1-based), for UNNEST's spreading of an
//! array of rows into columns by position (`query/unnest.rs`), as Trino binds them.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

#[derive(Debug, PartialEq, Eq, Hash)]
struct RowField {
    signature: Signature,
}

pub fn function() -> ScalarUDF {
    ScalarUDF::from(RowField {
        signature: Signature::any(2, Volatility::Immutable),
    })
}

/// The 0-based field index the literal second argument names.
fn index(args: &[Option<&ScalarValue>], fields: usize) -> Result<usize> {
    let n = match args.get(1).copied().flatten() {
        Some(ScalarValue::Int64(Some(n))) => *n,
        Some(ScalarValue::Int32(Some(n))) => *n as i64,
        _ => return plan_err!("trino_field takes a literal field number"),
    };
    if n < 1 || n as usize > fields {
        return plan_err!("UNNEST names {n} columns, but the array's rows have {fields} fields");
    }
    Ok(n as usize - 1)
}

impl ScalarUDFImpl for RowField {
    fn name(&self) -> &str {
        "trino_field"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        plan_err!("trino_field's type comes from its arguments")
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let DataType::Struct(fields) = args.arg_fields[0].data_type() else {
            return plan_err!(
                "UNNEST … AS t(a, b, …) spreads an array of rows, not of {}: name one column",
                args.arg_fields[0].data_type()
            );
        };
        let i = index(args.scalar_arguments, fields.len())?;
        Ok(Arc::new(Field::new(
            fields[i].name(),
            fields[i].data_type().clone(),
            true,
        )))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = match &args.args[1] {
            ColumnarValue::Scalar(ScalarValue::Int64(Some(n))) => *n as usize,
            ColumnarValue::Scalar(ScalarValue::Int32(Some(n))) => *n as usize,
            _ => return exec_err!("trino_field takes a literal field number"),
        };
        let row = args.args[0].to_array(args.number_rows)?;
        let s = row.as_struct();
        if n < 1 || n > s.num_columns() {
            return exec_err!("no field {n}");
        }
        let column = s.column(n - 1).clone();
        // A NULL row's fields are NULL.
        let column = match s.nulls() {
            Some(nulls) => {
                let mask = arrow::array::BooleanArray::new(nulls.inner().clone(), None);
                arrow::compute::nullif(&column, &arrow::compute::not(&mask)?)?
            }
            None => column,
        };
        Ok(match &args.args[0] {
            ColumnarValue::Scalar(_) => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&column, 0)?)
            }
            ColumnarValue::Array(_) => ColumnarValue::Array(column),
        })
    }
}
