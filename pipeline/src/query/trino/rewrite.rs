//! Trino forms rewritten in the parsed statement, before DataFusion plans it.
//!
//! - `1.5E0`: a DOUBLE in Trino (only literals without an exponent are DECIMAL).
//! - `IF(c, a [, b])`: `CASE WHEN c THEN a [ELSE b] END`.
//! - `TIMESTAMP '… +02:00'`, `TIMESTAMP '… Asia/Tokyo'`: a timestamp with that zone
//!   (DataFusion moved the time to UTC and dropped the zone).
//! - `CAST(x AS CHAR(n))`: refused (no type with CHAR's padding semantics).
//! - `a IS [NOT] DISTINCT FROM b OR c`: sqlparser binds the comparison looser than
//!   `AND`/`OR`; Trino (and the SQL standard) bind it like `=`.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, CaseWhen, CastKind, DataType as SqlType, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, Statement, Value, visit_expressions_mut,
};
use datafusion::sql::sqlparser::tokenizer::Span;

/// Rewrites `statement` in place, or says which Trino form is not supported.
pub fn rewrite(statement: &mut Statement) -> Result<(), String> {
    // TRY first, before its argument is rewritten into something it cannot see through.
    let tried = visit_expressions_mut(statement, |e| match super::tryexpr::try_of(e) {
        Ok(()) => ControlFlow::Continue(()),
        Err(why) => ControlFlow::Break(why),
    });
    if let ControlFlow::Break(why) = tried {
        return Err(why);
    }
    let flow = visit_expressions_mut(statement, |e| {
        if let Expr::Cast { data_type, .. } = e
            && let Some(why) = unsupported_type(data_type)
        {
            return ControlFlow::Break(why);
        }
        // TIMESTAMP '… +07:09' / '… Europe/Paris': DataFusion reads the zone and drops it
        // (the time moves to UTC), which would answer differently: refused.
        if let Expr::TypedString(ts) = e
            && matches!(ts.data_type, SqlType::Timestamp(..))
            && let Some((wall, zone)) = zoned_literal(&text_of(&ts.value.value))
        {
            // A timestamp with its zone (zones.rs).
            *e = call(
                "trino_timestamp_tz",
                vec![
                    Expr::Value(Value::SingleQuotedString(wall).with_span(Span::empty())),
                    Expr::Value(Value::SingleQuotedString(zone).with_span(Span::empty())),
                ],
            );
            return ControlFlow::Continue(());
        }
        rewrite_expr(e);
        ControlFlow::Continue(())
    });
    match flow {
        ControlFlow::Break(why) => Err(why),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Trino types whose semantics DataFusion has no type for: refused rather than read as
/// another type that answers differently.
fn unsupported_type(t: &SqlType) -> Option<String> {
    match t {
        SqlType::Char(_) | SqlType::Character(_) => Some(format!(
            "CAST to {t} is not supported: Trino's CHAR(n) pads with blanks and compares \
             without them, which Arrow has no type for; use VARCHAR"
        )),
        _ => None,
    }
}

/// A TIMESTAMP literal's wall time and zone, when it names one (`… +07:09`, `…Z`,
/// `… UTC`, `… Asia/Tokyo`).
fn zoned_literal(text: &str) -> Option<(String, String)> {
    let t = text.trim();
    if let Some(wall) = t.strip_suffix('Z').or_else(|| t.strip_suffix('z')) {
        return Some((wall.trim().to_string(), "UTC".into()));
    }
    if let Some((wall, zone)) = t.rsplit_once(' ')
        && (zone.starts_with(['+', '-']) || zone.chars().any(|c| c.is_ascii_alphabetic()))
    {
        return Some((wall.trim().to_string(), zone.to_string()));
    }
    // `2024-06-04T00:00:00+02:00`: an offset right after the time.
    let time_at = t.find(['T', ' '])?;
    let off = t[time_at..].rfind(['+', '-'])? + time_at;
    Some((t[..off].to_string(), t[off..].to_string()))
}

/// A literal's text (`'1.50'` → `1.50`).
fn text_of(v: &Value) -> String {
    match v {
        Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The precision and scale of a DECIMAL literal's text, as Trino types it: its digits
/// without leading zeros, and those after the point.
fn decimal_shape(text: &str) -> Option<(u64, u64)> {
    let t = text.trim();
    let t = t.strip_prefix(['-', '+']).unwrap_or(t);
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty()
        || !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let int_digits = int.trim_start_matches('0').len() as u64;
    let scale = frac.len() as u64;
    let precision = (int_digits + scale).max(1);
    (precision <= 38).then_some((precision, scale))
}

/// A call's name in lower case and its arguments, when all are plain expressions.
pub(super) fn call_parts(e: &Expr) -> Option<(String, Vec<Expr>)> {
    let Expr::Function(f) = e else {
        return None;
    };
    Some((
        f.name.to_string().to_ascii_lowercase(),
        plain_args(&f.args)?,
    ))
}

/// A function's arguments when all are plain expressions.
pub(super) fn plain_args(args: &FunctionArguments) -> Option<Vec<Expr>> {
    let FunctionArguments::List(list) = args else {
        return None;
    };
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => Some(x.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn call(name: &str, args: Vec<Expr>) -> Expr {
    use datafusion::sql::sqlparser::ast::{
        Function, FunctionArgumentList, Ident, ObjectName, ObjectNamePart,
    };
    Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// `x -> body` as a lambda. sqlparser's generic dialect reads `->` as the JSON operator,
/// which binds tighter than anything else, so `x -> x % 2 = 1` arrives as
/// `((x -> x) % 2) = 1`: the arrow sits on the leftmost spine of the argument. The lambda
/// is that argument with the arrow replaced by its right side, over the arrow's parameters.
fn lambda_of(arg: &Expr) -> Option<Expr> {
    use datafusion::sql::sqlparser::ast::{
        LambdaFunction, LambdaFunctionParameter, LambdaSyntax, OneOrManyWithParens,
    };
    let mut body = arg.clone();
    let params = take_arrow(&mut body)?;
    let params: Vec<LambdaFunctionParameter> = params
        .into_iter()
        .map(|name| LambdaFunctionParameter {
            name,
            data_type: None,
        })
        .collect();
    let params = if params.len() == 1 {
        OneOrManyWithParens::One(params.into_iter().next()?)
    } else {
        OneOrManyWithParens::Many(params)
    };
    Some(Expr::Lambda(LambdaFunction {
        params,
        body: Box::new(body),
        syntax: LambdaSyntax::Arrow,
    }))
}

/// Replaces the `params -> right` node on `e`'s leftmost spine by `right`; its parameters.
fn take_arrow(e: &mut Expr) -> Option<Vec<datafusion::sql::sqlparser::ast::Ident>> {
    if let Expr::BinaryOp {
        left,
        op: BinaryOperator::Arrow,
        right,
    } = e
    {
        let params = match left.as_ref() {
            Expr::Identifier(i) => vec![i.clone()],
            Expr::Tuple(items) => items
                .iter()
                .map(|x| match x {
                    Expr::Identifier(i) => Some(i.clone()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?,
            Expr::Nested(inner) => match inner.as_ref() {
                Expr::Identifier(i) => vec![i.clone()],
                _ => return None,
            },
            _ => return None,
        };
        *e = (**right).clone();
        return Some(params);
    }
    let next: &mut Expr = match e {
        Expr::BinaryOp { left, .. } => left,
        Expr::IsNull(x)
        | Expr::IsNotNull(x)
        | Expr::IsTrue(x)
        | Expr::IsFalse(x)
        | Expr::IsNotTrue(x)
        | Expr::IsNotFalse(x)
        | Expr::IsDistinctFrom(x, _)
        | Expr::IsNotDistinctFrom(x, _) => x,
        Expr::Between { expr, .. }
        | Expr::InList { expr, .. }
        | Expr::Like { expr, .. }
        | Expr::ILike { expr, .. }
        | Expr::Cast { expr, .. } => expr,
        Expr::CompoundFieldAccess { root, .. } => root,
        _ => return None,
    };
    take_arrow(next)
}

/// `trino_cast(expr, CAST(NULL AS type))`: Trino's cast of `expr` to `type` (cast.rs).
pub(super) fn trino_cast(expr: &Expr, data_type: &SqlType) -> Expr {
    let null = Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(Expr::Value(Value::Null.with_span(Span::empty()))),
        data_type: data_type.clone(),
        array: false,
        format: None,
    };
    call("trino_cast", vec![expr.clone(), null])
}

/// Whether a SQL type is an array or a row: Trino casts to them by position, and from
/// JSON text by parsing it.
fn has_row(t: &SqlType) -> bool {
    matches!(t, SqlType::Struct(..) | SqlType::Array(_))
}

fn rewrite_expr(e: &mut Expr) {
    if let Expr::Cast {
        kind: CastKind::Cast,
        expr,
        data_type: SqlType::JSON,
        ..
    } = e
    {
        *e = call("trino_to_json", vec![(**expr).clone()]);
        return;
    }
    if let Expr::Cast {
        kind: CastKind::Cast,
        expr,
        data_type,
        ..
    } = e
        && has_row(data_type)
    {
        *e = trino_cast(expr, data_type);
        return;
    }
    if let Expr::Function(f) = e
        && let FunctionArguments::List(list) = &mut f.args
    {
        for a in list.args.iter_mut() {
            if let FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) = a
                && let Some(l) = lambda_of(x)
            {
                *x = l;
            }
        }
        super::lambdas::rewrite_call(e);
        super::arrays::rewrite_call(e);
        super::calls::rewrite_call(e);
        super::aggregates::rewrite_call(e);
    }
    match e {
        // SUBSTRING(s FROM a FOR b) and SUBSTR(…): Trino's substr (negative starts count
        // from the end), not DataFusion's, which the planner would call for this syntax.
        Expr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            let mut args = vec![(**expr).clone()];
            args.extend(substring_from.as_deref().cloned());
            if let Some(n) = substring_for {
                if args.len() == 1 {
                    args.push(Expr::Value(
                        Value::Number("1".into(), false).with_span(Span::empty()),
                    ));
                }
                args.push((**n).clone());
            }
            *e = call("substr", args);
        }
        Expr::Value(v) => {
            if let Value::Number(n, _) = &v.value
                && n.contains(['e', 'E'])
            {
                *e = Expr::Cast {
                    kind: CastKind::Cast,
                    expr: Box::new(Expr::Value(
                        Value::SingleQuotedString(n.clone()).with_span(Span::empty()),
                    )),
                    data_type: SqlType::Double(
                        datafusion::sql::sqlparser::ast::ExactNumberInfo::None,
                    ),
                    array: false,
                    format: None,
                };
            }
        }
        // DECIMAL '123.00' is DECIMAL(5,2), its precision and scale from its digits
        // (DataFusion reads it as DECIMAL(38,10)).
        Expr::TypedString(ts)
            if matches!(
                ts.data_type,
                SqlType::Decimal(_) | SqlType::Numeric(_) | SqlType::Dec(_)
            ) && decimal_shape(&text_of(&ts.value.value)).is_some() =>
        {
            let text = text_of(&ts.value.value);
            let Some((p, sc)) = decimal_shape(&text) else {
                return;
            };
            *e = Expr::Cast {
                kind: CastKind::Cast,
                expr: Box::new(Expr::Value(
                    Value::SingleQuotedString(text.trim().to_string()).with_span(Span::empty()),
                )),
                data_type: SqlType::Decimal(
                    datafusion::sql::sqlparser::ast::ExactNumberInfo::PrecisionAndScale(
                        p, sc as i64,
                    ),
                ),
                array: false,
                format: None,
            };
        }
        // EXTRACT(field FROM date or timestamp): Trino's field functions (BIGINT; DOW is
        // ISO, Monday = 1). Intervals keep DataFusion's.
        Expr::Extract { field, expr, .. } if !matches!(**expr, Expr::Interval(_)) => {
            use datafusion::sql::sqlparser::ast::DateTimeField as F;
            let f = match field {
                F::Year => "year",
                F::Quarter => "quarter",
                F::Month => "month",
                F::Week(None) | F::IsoWeek => "week",
                F::Day => "day",
                F::DayOfWeek | F::Dow | F::Isodow => "day_of_week",
                F::DayOfYear | F::Doy => "day_of_year",
                F::Hour => "hour",
                F::Minute => "minute",
                F::Second => "second",
                F::Isoyear => "year_of_week",
                _ => return,
            };
            *e = call(f, vec![(**expr).clone()]);
        }
        // POSITION(a IN b) is strpos(b, a): BIGINT.
        Expr::Position { expr, r#in } => {
            *e = call("strpos", vec![(**r#in).clone(), (**expr).clone()]);
        }
        // JSON '…' is the text parsed as JSON (Trino's JSON values are JSON text here).
        Expr::TypedString(ts) if matches!(ts.data_type, SqlType::JSON) => {
            let text = Expr::Value(ts.value.clone());
            *e = call("json_parse", vec![text]);
        }
        // least/greatest are NULL when any argument is (DataFusion's skip NULLs).
        Expr::Function(f)
            if ["least", "greatest"]
                .iter()
                .any(|n| f.name.to_string().eq_ignore_ascii_case(n)) =>
        {
            let Some(args) = plain_args(&f.args) else {
                return;
            };
            let any_null = args
                .iter()
                .map(|a| Expr::IsNull(Box::new(a.clone())))
                .reduce(|a, b| Expr::BinaryOp {
                    left: Box::new(a),
                    op: BinaryOperator::Or,
                    right: Box::new(b),
                });
            let Some(any_null) = any_null else {
                return;
            };
            // NaN is passed over, as in Trino (NULL inside DataFusion's, which skips them),
            // unless every argument is NaN.
            let mut skipping = f.clone();
            if let FunctionArguments::List(l) = &mut skipping.args {
                for a in l.args.iter_mut() {
                    if let FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) = a {
                        *x = call("trino_nan_null", vec![x.clone()]);
                    }
                }
            }
            let original = call("coalesce", vec![Expr::Function(skipping), e.clone()]);
            *e = Expr::Case {
                case_token: AttachedToken::empty(),
                end_token: AttachedToken::empty(),
                operand: None,
                conditions: vec![CaseWhen {
                    condition: any_null,
                    result: Expr::Value(Value::Null.with_span(Span::empty())),
                }],
                else_result: Some(Box::new(original)),
            };
        }
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("if") => {
            let FunctionArguments::List(list) = &f.args else {
                return;
            };
            let args: Vec<Expr> = list
                .args
                .iter()
                .filter_map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => Some(x.clone()),
                    _ => None,
                })
                .collect();
            if args.len() != list.args.len() || !(2..=3).contains(&args.len()) {
                return;
            }
            let mut args = args.into_iter();
            let (Some(condition), Some(result)) = (args.next(), args.next()) else {
                return;
            };
            *e = Expr::Case {
                case_token: AttachedToken::empty(),
                end_token: AttachedToken::empty(),
                operand: None,
                conditions: vec![CaseWhen { condition, result }],
                else_result: args.next().map(Box::new),
            };
        }
        Expr::IsDistinctFrom(_, b) | Expr::IsNotDistinctFrom(_, b)
            if matches!(
                b.as_ref(),
                Expr::BinaryOp {
                    op: BinaryOperator::Or | BinaryOperator::And,
                    ..
                }
            ) =>
        {
            // `a IS DISTINCT FROM b OR c` parsed as `a IS DISTINCT FROM (b OR c)`: an
            // unparenthesised boolean operator on the right belongs above the comparison.
            let placeholder = Expr::Value(Value::Null.with_span(Span::empty()));
            let (negated, a, b) = match std::mem::replace(e, placeholder) {
                Expr::IsDistinctFrom(a, b) => (false, a, b),
                Expr::IsNotDistinctFrom(a, b) => (true, a, b),
                _ => return,
            };
            let Expr::BinaryOp { left, op, right } = *b else {
                return;
            };
            let mut cmp = if negated {
                Expr::IsNotDistinctFrom(a, left)
            } else {
                Expr::IsDistinctFrom(a, left)
            };
            rewrite_expr(&mut cmp);
            *e = Expr::BinaryOp {
                left: Box::new(cmp),
                op,
                right,
            };
        }
        _ => {}
    }
}
