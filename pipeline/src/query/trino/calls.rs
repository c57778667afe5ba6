//! Trino calls that are another expression in DataFusion: `mod(a, b)` is `a % b`,
//! `date(x)` is `CAST(x AS DATE)`, `levenshtein_distance` is `levenshtein` as BIGINT,
//! `contains(array, x)` is `array_has` with Trino's NULL rule, `slice(a, start, length)`
//! is `array_slice` over Trino's start and length.

use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, CaseWhen, CastKind, DataType as SqlType, Expr, Value,
};
use datafusion::sql::sqlparser::tokenizer::Span;

use super::rewrite::call;

fn cast(e: Expr, t: SqlType) -> Expr {
    Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(e),
        data_type: t,
        array: false,
        format: None,
    }
}

fn bin(l: Expr, op: BinaryOperator, r: Expr) -> Expr {
    Expr::BinaryOp {
        left: Box::new(l),
        op,
        right: Box::new(r),
    }
}

fn lit(v: Value) -> Expr {
    Expr::Value(v.with_span(Span::empty()))
}

fn num(n: i64) -> Expr {
    lit(Value::Number(n.to_string(), false))
}

fn case(conditions: Vec<(Expr, Expr)>, otherwise: Expr) -> Expr {
    Expr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: None,
        conditions: conditions
            .into_iter()
            .map(|(condition, result)| CaseWhen { condition, result })
            .collect(),
        else_result: Some(Box::new(otherwise)),
    }
}

/// Whether an array holds a NULL: fewer elements once NULLs are dropped.
fn has_null(a: &Expr) -> Expr {
    bin(
        call("cardinality", vec![a.clone()]),
        BinaryOperator::Gt,
        call("cardinality", vec![call("array_compact", vec![a.clone()])]),
    )
}

/// The value looked for in an array, checked as Trino checks an array value (no NULL
/// inside; elements.rs); any other value as it is.
pub(super) fn comparable_value(x: &Expr) -> Expr {
    call("trino_comparable_value", vec![x.clone()])
}

pub fn rewrite_call(e: &mut Expr) {
    let Some((name, a)) = super::rewrite::call_parts(e) else {
        return;
    };
    let null = lit(Value::Null);
    *e = match (name.as_str(), a.as_slice()) {
        ("mod", [x, y]) => {
            Expr::Nested(Box::new(bin(x.clone(), BinaryOperator::Modulo, y.clone())))
        }
        ("date", [x]) => cast(x.clone(), SqlType::Date),
        ("levenshtein_distance", [x, y]) => cast(
            call("levenshtein", vec![x.clone(), y.clone()]),
            SqlType::BigInt(None),
        ),
        // NULL when x is not found but the array holds a NULL (it might be x).
        ("contains", [arr, x]) => case(
            vec![
                (
                    bin(
                        Expr::IsNull(Box::new(arr.clone())),
                        BinaryOperator::Or,
                        Expr::IsNull(Box::new(x.clone())),
                    ),
                    null.clone(),
                ),
                (
                    call(
                        "array_has",
                        vec![
                            call("trino_comparable_elements", vec![arr.clone()]),
                            comparable_value(x),
                        ],
                    ),
                    lit(Value::Boolean(true)),
                ),
                (has_null(arr), null),
            ],
            lit(Value::Boolean(false)),
        ),
        // slice(a, start, length): start 1-based or negative from the end.
        ("slice", [arr, start, length]) => {
            let from = case(
                vec![(
                    bin(start.clone(), BinaryOperator::Gt, num(0)),
                    start.clone(),
                )],
                bin(
                    bin(
                        call("cardinality", vec![arr.clone()]),
                        BinaryOperator::Plus,
                        start.clone(),
                    ),
                    BinaryOperator::Plus,
                    num(1),
                ),
            );
            let to = bin(
                bin(from.clone(), BinaryOperator::Plus, length.clone()),
                BinaryOperator::Minus,
                num(1),
            );
            call(
                "array_slice",
                vec![
                    arr.clone(),
                    call(
                        "trino_slice_start",
                        vec![start.clone(), length.clone(), from],
                    ),
                    to,
                ],
            )
        }
        _ => return,
    };
}

/// `trino_slice_start(start, length, from)`: `from` after Trino's checks on `slice`'s
/// arguments; a start before the array's first element slices nothing.
pub fn slice_start() -> datafusion::logical_expr::ScalarUDF {
    use arrow::array::{Array, AsArray, Int64Array};
    use arrow::datatypes::{DataType, Int64Type};
    use datafusion::common::{exec_err, plan_err};
    super::udf::udf(
        "trino_slice_start",
        |t| {
            if t.len() == 3 && t.iter().all(super::udf::integral) {
                Ok(vec![DataType::Int64; 3])
            } else {
                plan_err!("slice takes (array, bigint, bigint)")
            }
        },
        super::udf::int64,
        |a, rows, _| {
            let (s, l, f) = (
                a[0].as_primitive::<Int64Type>(),
                a[1].as_primitive::<Int64Type>(),
                a[2].as_primitive::<Int64Type>(),
            );
            let mut out = Vec::with_capacity(rows);
            for r in 0..rows {
                if s.is_null(r) || l.is_null(r) || f.is_null(r) {
                    out.push(None);
                    continue;
                }
                if s.value(r) == 0 {
                    return exec_err!("SQL array indices start at 1");
                }
                if l.value(r) < 0 {
                    return exec_err!("length must be greater than or equal to 0");
                }
                out.push(Some(if f.value(r) < 1 { i64::MAX } else { f.value(r) }));
            }
            Ok(std::sync::Arc::new(Int64Array::from(out)) as arrow::array::ArrayRef)
        },
    )
}
