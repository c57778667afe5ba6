//! Trino's `=` and `<>` on arrays: unequal when any pair of elements differs (or the
//! lengths do), otherwise NULL when a pair holds a NULL (it could be either), else equal.
//! DataFusion counts NULL elements equal to each other.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray};
use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue, plan_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator, ScalarUDF};
use datafusion::optimizer::AnalyzerRule;

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
        return Ok(Some(x == y));
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

/// Rewrites `=`/`<>` between arrays to `trino_array_eq` (after type coercion).
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

impl AnalyzerRule for ArrayEquality {
    fn name(&self) -> &str {
        "trino_array_equality"
    }

    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let mut schema = DFSchema::empty();
            for input in node.inputs() {
                schema.merge(input.schema());
            }
            node.map_expressions(|e| {
                e.transform_up(|e| {
                    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
                        return Ok(Transformed::no(e));
                    };
                    if !matches!(op, Operator::Eq | Operator::NotEq) {
                        return Ok(Transformed::no(e));
                    }
                    let (Ok(l), Ok(r)) = (left.get_type(&schema), right.get_type(&schema)) else {
                        return Ok(Transformed::no(e));
                    };
                    if !is_list(&l) || l != r {
                        return Ok(Transformed::no(e));
                    }
                    let call = Expr::ScalarFunction(ScalarFunction::new_udf(
                        self.eq.clone(),
                        vec![(**left).clone(), (**right).clone()],
                    ));
                    Ok(Transformed::yes(if *op == Operator::Eq {
                        call
                    } else {
                        Expr::Not(Box::new(call))
                    }))
                })
            })
        })
        .map(|t| t.data)
    }
}
