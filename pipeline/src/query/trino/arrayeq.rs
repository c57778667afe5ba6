//! Trino's `=` and `<>` on arrays: unequal when any pair of elements differs (or the
//! lengths do), otherwise NULL when a pair holds a NULL (it could be either), else equal.
//! DataFusion counts NULL elements equal to each other.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray};
use arrow::datatypes::DataType;
use datafusion::common::{DFSchema, Result, ScalarValue, plan_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, Operator, ScalarUDF};

use super::udf::{arc, udf};

fn is_list(t: &DataType) -> bool {
    matches!(
        t,
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
    )
}

pub fn function() -> ScalarUDF {
    udf(
        "trino_array_eq",
        |t| match t {
            [a, b] if is_list(a) && a == b => Ok(t.to_vec()),
            _ => plan_err!(
                "array comparison of ({}) and ({})",
                t[0],
                t.get(1).unwrap_or(&DataType::Null)
            ),
        },
        |_| Ok(DataType::Boolean),
        |a, rows, _| {
            let mut out = Vec::with_capacity(rows);
            for r in 0..rows {
                let (x, y) = (
                    ScalarValue::try_from_array(&a[0], r)?,
                    ScalarValue::try_from_array(&a[1], r)?,
                );
                out.push(eq3(&x, &y)?);
            }
            Ok(arc(BooleanArray::from(out)))
        },
    )
}

/// Three-valued equality: `None` when undecided because of a NULL.
fn eq3(x: &ScalarValue, y: &ScalarValue) -> Result<Option<bool>> {
    if x.is_null() || y.is_null() {
        return Ok(None);
    }
    let (ScalarValue::List(a), ScalarValue::List(b)) = (x, y) else {
        // Floats as IEEE compares them (NaN is not equal to itself; -0 equals 0), not by
        // ScalarValue's total order.
        return Ok(Some(match (x, y) {
            (ScalarValue::Float64(Some(a)), ScalarValue::Float64(Some(b))) => a == b,
            (ScalarValue::Float32(Some(a)), ScalarValue::Float32(Some(b))) => a == b,
            _ => x == y,
        }));
    };
    let (a, b): (ArrayRef, ArrayRef) = (a.value(0), b.value(0));
    if a.len() != b.len() {
        return Ok(Some(false));
    }
    let mut undecided = false;
    for i in 0..a.len() {
        match eq3(
            &ScalarValue::try_from_array(&a, i)?,
            &ScalarValue::try_from_array(&b, i)?,
        )? {
            Some(false) => return Ok(Some(false)),
            None => undecided = true,
            Some(true) => {}
        }
    }
    Ok(if undecided { None } else { Some(true) })
}

/// `=`/`<>` between arrays as `trino_array_eq` (applied after type coercion, `typed.rs`).
#[derive(Debug)]
pub struct ArrayEquality {
    eq: Arc<ScalarUDF>,
}

impl ArrayEquality {
    pub fn new() -> Self {
        Self {
            eq: Arc::new(function()),
        }
    }
}

impl ArrayEquality {
    /// `e` as `trino_array_eq` when it is `=` or `<>` between arrays.
    pub fn rewrite(&self, e: &Expr, schema: &DFSchema) -> Option<Expr> {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
            return None;
        };
        if !matches!(op, Operator::Eq | Operator::NotEq) {
            return None;
        }
        let (l, r) = (left.get_type(schema).ok()?, right.get_type(schema).ok()?);
        if !is_list(&l) || l != r {
            return None;
        }
        let call = Expr::ScalarFunction(ScalarFunction::new_udf(
            self.eq.clone(),
            vec![(**left).clone(), (**right).clone()],
        ));
        Some(if *op == Operator::Eq {
            call
        } else {
            Expr::Not(Box::new(call))
        })
    }
}
