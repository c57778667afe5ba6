//! Trino's casts where DataFusion's differ:
//! - `CAST(ROW(…) AS ROW(a T, b U))` (and arrays of rows) match fields by position, not
//!   by name; a value that does not fit fails the query instead of becoming NULL.
//! - A DOUBLE, REAL or DECIMAL cast to an integer type rounds half away from zero
//!   (`CAST(2.5E0 AS BIGINT)` is 3), where DataFusion truncates.
//! - A DOUBLE or REAL cast to VARCHAR is written as Trino writes it (`2.56E1`).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, ListArray, StructArray, new_null_array};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::DataType;
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{Cast, Expr, ExprSchemable, ScalarUDF, TryCast};

use super::udf::arc;

/// `trino_cast(value, CAST(NULL AS type))`: `value` cast to the second argument's type,
/// named `CAST(value AS type)` (DataFusion names a cast by its operand alone, so two casts
/// of one column to different types would collide in one SELECT).
pub fn function() -> ScalarUDF {
    ScalarUDF::from(TrinoCast {
        signature: datafusion::logical_expr::Signature::any(
            2,
            datafusion::logical_expr::Volatility::Immutable,
        ),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TrinoCast {
    signature: datafusion::logical_expr::Signature,
}

impl datafusion::logical_expr::ScalarUDFImpl for TrinoCast {
    fn name(&self) -> &str {
        "trino_cast"
    }
    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        let to = match args.get(1) {
            Some(Expr::Cast(c)) => c.field.data_type().to_string(),
            _ => "?".into(),
        };
        let value = args
            .first()
            .map(|a| a.schema_name().to_string())
            .unwrap_or_default();
        Ok(format!("CAST({value} AS {to})"))
    }
    fn return_type(&self, t: &[DataType]) -> Result<DataType> {
        Ok(t.get(1).cloned().unwrap_or(DataType::Null))
    }
    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> Result<datafusion::logical_expr::ColumnarValue> {
        use datafusion::logical_expr::ColumnarValue;
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let value = args.args[0].to_array(args.number_rows)?;
        let out = positional(&value, args.return_field.data_type())?;
        Ok(if scalar {
            ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}

fn strict() -> CastOptions<'static> {
    CastOptions {
        safe: false,
        ..Default::default()
    }
}

/// `a` cast to `to`, struct fields by position.
pub fn positional(a: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    Ok(match (a.data_type(), to) {
        (DataType::Null, _) => new_null_array(to, a.len()),
        // JSON text to an array, a row or a map: the text parsed (Trino's CAST(json AS …)).
        (
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8,
            DataType::List(_) | DataType::Struct(_) | DataType::Map(..),
        ) => from_json(a, to)?,
        (DataType::Struct(from), DataType::Struct(fields)) if from.len() == fields.len() => {
            let s = a.as_struct();
            let columns = s
                .columns()
                .iter()
                .zip(fields.iter())
                .map(|(c, f)| positional(c, f.data_type()))
                .collect::<Result<Vec<_>>>()?;
            arc(StructArray::try_new(
                fields.clone(),
                columns,
                s.nulls().cloned(),
            )?)
        }
        (DataType::Struct(from), DataType::Struct(fields)) => {
            return datafusion::common::exec_err!(
                "Cannot cast a row of {} fields to a row of {}",
                from.len(),
                fields.len()
            );
        }
        (DataType::List(_), DataType::List(field)) => {
            let l = a.as_list::<i32>();
            let values = positional(l.values(), field.data_type())?;
            arc(ListArray::try_new(
                field.clone(),
                l.offsets().clone(),
                values,
                l.nulls().cloned(),
            )?)
        }
        // Trino rounds a fraction cast to an integer.
        (from, to) if fractional(from) && to.is_integer() => {
            let rounded = super::math::round_array(a)?;
            cast_with_options(&rounded, to, &strict())?
        }
        _ => cast_with_options(a, to, &strict())?,
    })
}

/// JSON texts decoded into `to`, one value per row; `null` or NULL is NULL. Numbers and
/// booleans read into VARCHAR elements as their text; a value that does not fit fails.
fn from_json(a: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    let text = arrow::compute::cast(a, &DataType::Utf8)?;
    let text = text.as_string::<i32>();
    // Numbers are read exactly (as decimals) and then cast, so that a fraction rounds into
    // an integer or a narrower decimal as Trino rounds it (arrow-json would truncate).
    let reading = exact(to);
    let schema = Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("v", reading.clone(), true),
    ]));
    let mut decoder = arrow_json::ReaderBuilder::new(schema)
        .with_coerce_primitive(true)
        .with_strict_mode(true)
        .build_decoder()?;
    let mut buf = String::new();
    for v in text.iter() {
        buf.push_str("{\"v\":");
        match v {
            Some(j) if !j.trim().is_empty() => {
                if serde_json::from_str::<serde_json::Value>(j).is_err() {
                    return datafusion::common::exec_err!("Cannot cast to {to}: not JSON: {j}");
                }
                buf.push_str(j);
            }
            _ => buf.push_str("null"),
        }
        buf.push_str("}\n");
    }
    decoder.decode(buf.as_bytes())?;
    match decoder.flush()? {
        Some(batch) if batch.num_rows() == a.len() => {
            if &reading == to {
                Ok(batch.column(0).clone())
            } else {
                positional(batch.column(0), to)
            }
        }
        _ => datafusion::common::exec_err!("Cannot cast JSON to {to}"),
    }
}

/// `t` with integers and decimals read as wide decimals.
fn exact(t: &DataType) -> DataType {
    use arrow::datatypes::Field;
    match t {
        t if t.is_integer() => DataType::Decimal128(38, 10),
        DataType::Decimal128(p, s) => {
            let spare = 38u8.saturating_sub(*p).min(10) as i8;
            DataType::Decimal128(38, s + spare)
        }
        DataType::List(f) => DataType::List(Arc::new(Field::new(
            f.name(),
            exact(f.data_type()),
            f.is_nullable(),
        ))),
        DataType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| Field::new(f.name(), exact(f.data_type()), f.is_nullable()))
                .collect::<Vec<_>>()
                .into(),
        ),
        other => other.clone(),
    }
}

/// Trino's casts on DataFusion's (`typed.rs` applies them after type coercion, when every
/// expression's type is known).
#[derive(Debug)]
pub struct RoundingCasts {
    round: Arc<ScalarUDF>,
    double_text: Arc<ScalarUDF>,
}

impl RoundingCasts {
    pub fn new() -> Self {
        Self {
            round: Arc::new(ScalarUDF::from(RoundHalf {
                signature: datafusion::logical_expr::Signature::any(
                    1,
                    datafusion::logical_expr::Volatility::Immutable,
                ),
            })),
            double_text: Arc::new(double_text()),
        }
    }
}

/// A DOUBLE or REAL as Trino writes it in a cast to VARCHAR: `2.56E1`, `1.0E0`, `NaN`,
/// `Infinity`.
pub fn trino_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let s = format!("{v:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    if mantissa.contains('.') {
        format!("{mantissa}E{exp}")
    } else {
        format!("{mantissa}.0E{exp}")
    }
}

fn double_text() -> ScalarUDF {
    super::udf::udf(
        "trino_double_text",
        |t| Ok(t.to_vec()),
        super::udf::utf8,
        |a, _, _| {
            let out: arrow::array::StringArray = match a[0].data_type() {
                DataType::Float32 => a[0]
                    .as_primitive::<arrow::datatypes::Float32Type>()
                    .iter()
                    .map(|v| v.map(|v| trino_double(v.to_string().parse().unwrap_or(v as f64))))
                    .collect(),
                _ => a[0]
                    .as_primitive::<arrow::datatypes::Float64Type>()
                    .iter()
                    .map(|v| v.map(trino_double))
                    .collect(),
            };
            Ok(arc(out))
        },
    )
}

/// Rounding half away from zero that keeps its operand's name: the analyzer inserts it
/// after the names of a plan's columns are fixed, so it must not change them.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RoundHalf {
    signature: datafusion::logical_expr::Signature,
}

impl datafusion::logical_expr::ScalarUDFImpl for RoundHalf {
    fn name(&self) -> &str {
        "trino_round_half"
    }
    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(args
            .first()
            .map(|a| a.schema_name().to_string())
            .unwrap_or_default())
    }
    fn return_type(&self, t: &[DataType]) -> Result<DataType> {
        Ok(t.first().cloned().unwrap_or(DataType::Null))
    }
    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> Result<datafusion::logical_expr::ColumnarValue> {
        use datafusion::logical_expr::ColumnarValue;
        Ok(match &args.args[0] {
            ColumnarValue::Scalar(s) => {
                let a = s.to_array()?;
                ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(
                    &super::math::round_array(&a)?,
                    0,
                )?)
            }
            ColumnarValue::Array(a) => ColumnarValue::Array(super::math::round_array(a)?),
        })
    }
}

fn fractional(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
    )
}

impl RoundingCasts {
    /// `e` with Trino's cast semantics, when it is a cast that needs them.
    pub fn rewrite(&self, e: &Expr, schema: &DFSchema) -> Option<Expr> {
        let (inner, field, tried) = match e {
            Expr::Cast(Cast { expr, field }) => (expr, field, false),
            Expr::TryCast(TryCast { expr, field }) => (expr, field, true),
            _ => return None,
        };
        let from = inner.get_type(schema).ok()?;
        let to = field.data_type();
        // A DOUBLE or REAL as text is Trino's scientific notation (2.56E1); a fraction into
        // an integer is rounded first.
        let f = if matches!(from, DataType::Float32 | DataType::Float64)
            && matches!(
                to,
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
            ) {
            &self.double_text
        } else if to.is_integer() && fractional(&from) {
            &self.round
        } else {
            return None;
        };
        let operand = Box::new(Expr::ScalarFunction(ScalarFunction::new_udf(
            f.clone(),
            vec![(**inner).clone()],
        )));
        let field = field.clone();
        Some(if tried {
            Expr::TryCast(TryCast::new_from_field(operand, field))
        } else {
            Expr::Cast(Cast::new_from_field(operand, field))
        })
    }
}
