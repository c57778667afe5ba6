//! Trino's array functions where DataFusion's answer differently:
//! - `concat` and `reverse` take arrays as well as strings (DataFusion's turned an array
//!   into its text); a string `concat` is NULL when any argument is, and needs two.
//! - `cardinality` counts an array's own elements (DataFusion's counted nested ones) and
//!   is BIGINT.
//! - `repeat(x, n)` is an array of `n` copies; `array_remove` removes every match;
//!   `array_sort` puts NULLs last; `array_position` is 0 when absent (these are rewrites,
//!   see `rewrite_call`).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion::sql::sqlparser::ast::{
    CaseWhen, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName,
    ObjectNamePart, Value,
};
use datafusion::sql::sqlparser::tokenizer::Span;

use super::udf::{arc, int64, list, str_arg, stringy, udf, utf8};

pub fn functions() -> Vec<ScalarUDF> {
    use datafusion::functions_nested::concat::array_concat_udf;
    use datafusion::functions_nested::reverse::array_reverse_udf;
    vec![
        ScalarUDF::from(Either::new(
            "concat",
            udf("concat", concat_args, utf8, concat),
            array_concat_udf(),
        )),
        ScalarUDF::from(Either::new(
            "reverse",
            udf(
                "reverse",
                |t| super::udf::strings(t, 1, 1, "reverse"),
                utf8,
                reverse,
            ),
            array_reverse_udf(),
        )),
        udf("cardinality", cardinality_args, int64, cardinality),
        udf("trino_repeat_count", repeat_count_args, int64, repeat_count),
    ]
    .into_iter()
    .chain(super::elements::functions())
    .collect()
}

fn is_list(t: &DataType) -> bool {
    matches!(
        t,
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
    )
}

/// One name, two functions: the array one when any argument is an array.
#[derive(Debug)]
struct Either {
    name: &'static str,
    string: Arc<ScalarUDF>,
    array: Arc<ScalarUDF>,
    signature: Signature,
}

impl Either {
    fn new(name: &'static str, string: ScalarUDF, array: Arc<ScalarUDF>) -> Self {
        Self {
            name,
            string: Arc::new(string),
            array,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
    fn pick(&self, t: &[DataType]) -> &Arc<ScalarUDF> {
        if t.iter().any(is_list) {
            &self.array
        } else {
            &self.string
        }
    }
}

impl PartialEq for Either {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name
    }
}
impl Eq for Either {}
impl std::hash::Hash for Either {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for Either {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        if Arc::ptr_eq(self.pick(t), &self.string) {
            return self.string.coerce_types(t);
        }
        // DataFusion's array functions typed by signature take their arguments as they are.
        self.array.coerce_types(t).or_else(|_| Ok(t.to_vec()))
    }
    fn return_type(&self, t: &[DataType]) -> Result<DataType> {
        self.pick(t).return_type(t)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let f = self.pick(&types);
        if !Arc::ptr_eq(f, &self.array) || self.name != "concat" {
            return f.invoke_with_args(args);
        }
        // Trino's array concat is NULL when any argument is (DataFusion's skips NULLs).
        let rows = args.number_rows;
        let inputs: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<_>>()?;
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let out = f.invoke_with_args(args)?.to_array(rows)?;
        let mut valid = vec![true; rows];
        for i in &inputs {
            for (r, v) in valid.iter_mut().enumerate() {
                *v &= i.is_valid(r) && i.data_type() != &DataType::Null;
            }
        }
        let out = arrow::compute::nullif(
            &out,
            &arrow::compute::not(&arrow::array::BooleanArray::from(valid))?,
        )?;
        Ok(if scalar {
            ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}

fn concat_args(t: &[DataType]) -> Result<Vec<DataType>> {
    if t.len() < 2 {
        return plan_err!("There must be two or more concatenation arguments");
    }
    if !t
        .iter()
        .all(|t| stringy(t) || t.is_numeric() || t.is_temporal() || t == &DataType::Boolean)
    {
        return plan_err!("concat takes varchar or array arguments, not ({})", list(t));
    }
    Ok(vec![DataType::Utf8; t.len()])
}

fn concat(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let parts = a.iter().map(str_arg).collect::<Result<Vec<_>>>()?;
    let mut out = StringBuilder::new();
    let mut buf = String::new();
    for r in 0..rows {
        if parts.iter().any(|p| p.is_null(r)) {
            out.append_null();
            continue;
        }
        buf.clear();
        for p in &parts {
            buf.push_str(p.value(r));
        }
        out.append_value(&buf);
    }
    Ok(arc(out.finish()))
}

fn reverse(a: &[ArrayRef], _: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let s = str_arg(&a[0])?;
    Ok(arc(s
        .iter()
        .map(|v| v.map(|v| v.chars().rev().collect::<String>()))
        .collect::<arrow::array::StringArray>()))
}

fn cardinality_args(t: &[DataType]) -> Result<Vec<DataType>> {
    match t {
        [l] if is_list(l) || matches!(l, DataType::Map(..) | DataType::Null) => Ok(t.to_vec()),
        _ => plan_err!("cardinality takes an array or a map, not ({})", list(t)),
    }
}

fn cardinality(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let x = &a[0];
    let lengths: Vec<Option<i64>> = match x.data_type() {
        DataType::List(_) => {
            let l = x.as_list::<i32>();
            (0..rows)
                .map(|r| l.is_valid(r).then(|| l.value_length(r) as i64))
                .collect()
        }
        DataType::LargeList(_) => {
            let l = x.as_list::<i64>();
            (0..rows)
                .map(|r| l.is_valid(r).then(|| l.value_length(r)))
                .collect()
        }
        DataType::FixedSizeList(_, n) => (0..rows)
            .map(|r| x.is_valid(r).then_some(*n as i64))
            .collect(),
        DataType::Map(..) => {
            let m = x.as_map();
            (0..rows)
                .map(|r| {
                    m.is_valid(r)
                        .then(|| (m.value_offsets()[r + 1] - m.value_offsets()[r]) as i64)
                })
                .collect()
        }
        DataType::Null => vec![None; rows],
        other => return exec_err!("cardinality takes an array or a map, not {other}"),
    };
    Ok(arc(Int64Array::from(lengths)))
}

/// Rewrites calls whose Trino meaning is another DataFusion function.
pub fn rewrite_call(e: &mut Expr) {
    let Some((name, args)) = super::rewrite::call_parts(e) else {
        return;
    };
    let Expr::Function(f) = e else {
        return;
    };
    let FunctionArguments::List(list) = &mut f.args else {
        return;
    };
    let rename = |f: &mut datafusion::sql::sqlparser::ast::Function, to: &str| {
        f.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new(to))]);
    };
    match (name.as_str(), args.len()) {
        ("array_remove", 2) => {
            comparable_args(&mut list.args, &args);
            rename(f, "array_remove_all");
        }
        ("repeat", 2) => {
            // array_repeat, with Trino's bounds on the count.
            list.args[1] = FunctionArg::Unnamed(FunctionArgExpr::Expr(super::rewrite::call(
                "trino_repeat_count",
                vec![args[1].clone()],
            )));
            rename(f, "array_repeat");
        }
        ("arrays_overlap", 2) => {
            // NULL when nothing non-null is shared but either array holds a NULL.
            let has_null = |a: &Expr| Expr::BinaryOp {
                left: Box::new(super::rewrite::call("cardinality", vec![a.clone()])),
                op: datafusion::sql::sqlparser::ast::BinaryOperator::Gt,
                right: Box::new(super::rewrite::call(
                    "cardinality",
                    vec![super::rewrite::call("array_compact", vec![a.clone()])],
                )),
            };
            let or = |l: Expr, r: Expr| Expr::BinaryOp {
                left: Box::new(l),
                op: datafusion::sql::sqlparser::ast::BinaryOperator::Or,
                right: Box::new(r),
            };
            let null = Expr::Value(Value::Null.with_span(Span::empty()));
            let overlap = e.clone();
            *e = Expr::Case {
                case_token: AttachedToken::empty(),
                end_token: AttachedToken::empty(),
                operand: None,
                conditions: vec![
                    CaseWhen {
                        condition: or(
                            Expr::IsNull(Box::new(args[0].clone())),
                            Expr::IsNull(Box::new(args[1].clone())),
                        ),
                        result: null.clone(),
                    },
                    // An empty array shares nothing, NULLs in the other or not.
                    CaseWhen {
                        condition: or(is_empty(&args[0]), is_empty(&args[1])),
                        result: Expr::Value(Value::Boolean(false).with_span(Span::empty())),
                    },
                    CaseWhen {
                        condition: overlap,
                        result: Expr::Value(Value::Boolean(true).with_span(Span::empty())),
                    },
                    CaseWhen {
                        condition: or(has_null(&args[0]), has_null(&args[1])),
                        result: null,
                    },
                ],
                else_result: Some(Box::new(Expr::Value(
                    Value::Boolean(false).with_span(Span::empty()),
                ))),
            };
        }
        ("array_sort", 1) if !matches!(args[0], Expr::Lambda(_)) => {
            list.args.push(text_arg("ASC"));
            list.args.push(text_arg("NULLS LAST"));
        }
        ("array_position", 2) => {
            comparable_args(&mut list.args, &args);
            let either_null = Expr::BinaryOp {
                left: Box::new(Expr::IsNull(Box::new(args[0].clone()))),
                op: datafusion::sql::sqlparser::ast::BinaryOperator::Or,
                right: Box::new(Expr::IsNull(Box::new(args[1].clone()))),
            };
            let position = Expr::Cast {
                kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
                expr: Box::new(e.clone()),
                data_type: datafusion::sql::sqlparser::ast::DataType::BigInt(None),
                array: false,
                format: None,
            };
            let found = super::rewrite::call(
                "coalesce",
                vec![
                    position,
                    Expr::Value(Value::Number("0".into(), false).with_span(Span::empty())),
                ],
            );
            *e = Expr::Case {
                case_token: AttachedToken::empty(),
                end_token: AttachedToken::empty(),
                operand: None,
                conditions: vec![CaseWhen {
                    condition: either_null,
                    result: Expr::Value(Value::Null.with_span(Span::empty())),
                }],
                else_result: Some(Box::new(found)),
            };
        }
        _ => {}
    }
}

fn repeat_count_args(t: &[DataType]) -> Result<Vec<DataType>> {
    match t {
        [n] if super::udf::integral(n) => Ok(vec![DataType::Int64]),
        _ => plan_err!("repeat takes (element, bigint), not ({})", list(t)),
    }
}

/// Trino's bounds on `repeat`'s count: 0 to 10,000.
fn repeat_count(a: &[ArrayRef], _: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let n = a[0].as_primitive::<arrow::datatypes::Int64Type>();
    for v in n.iter().flatten() {
        if v < 0 {
            return exec_err!(
                "count argument of repeat function must be greater than or equal to 0"
            );
        }
        if v > 10_000 {
            return exec_err!(
                "count argument of repeat function must be less than or equal to 10000"
            );
        }
    }
    Ok(a[0].clone())
}

/// An array and the value looked for in it, checked as Trino checks arrays compared for
/// equality (elements.rs).
fn comparable_args(list: &mut [FunctionArg], args: &[Expr]) {
    list[0] = FunctionArg::Unnamed(FunctionArgExpr::Expr(super::rewrite::call(
        "trino_comparable_elements",
        vec![args[0].clone()],
    )));
    list[1] = FunctionArg::Unnamed(FunctionArgExpr::Expr(super::calls::comparable_value(
        &args[1],
    )));
}

fn is_empty(a: &Expr) -> Expr {
    Expr::BinaryOp {
        left: Box::new(super::rewrite::call("cardinality", vec![a.clone()])),
        op: datafusion::sql::sqlparser::ast::BinaryOperator::Eq,
        right: Box::new(Expr::Value(
            Value::Number("0".into(), false).with_span(Span::empty()),
        )),
    }
}

fn text_arg(s: &str) -> FunctionArg {
    FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(
        Value::SingleQuotedString(s.into()).with_span(Span::empty()),
    )))
}
