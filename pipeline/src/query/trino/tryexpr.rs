//! `TRY(x)`: NULL where `x` fails. DataFusion cannot catch an error per row, so the forms
//! whose errors are known are read without them; any other TRY is refused.

use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion::sql::sqlparser::ast::{BinaryOperator, CaseWhen, CastKind, Expr, Value};
use datafusion::sql::sqlparser::tokenizer::Span;

use super::rewrite::plain_args;

/// `TRY(x)`: NULL where `x` fails. DataFusion has no way to catch an error per row, so
/// the forms whose errors are known are read without them: `TRY(CAST(…))` is
/// `TRY_CAST(…)`, `TRY(a / b)` is NULL where `b` is 0. Any other TRY is refused.
pub fn try_of(e: &mut Expr) -> Result<(), String> {
    let Expr::Function(f) = e else {
        return Ok(());
    };
    if !f.name.to_string().eq_ignore_ascii_case("try") {
        return Ok(());
    }
    let args = plain_args(&f.args).unwrap_or_default();
    let [inner] = args.as_slice() else {
        return Err("TRY takes one expression".into());
    };
    let mut inner = inner.clone();
    while let Expr::Nested(x) = inner {
        inner = *x;
    }
    *e = match inner {
        Expr::Cast {
            expr,
            data_type,
            format,
            ..
        } => Expr::Cast {
            kind: CastKind::TryCast,
            expr,
            data_type,
            array: false,
            format,
        },
        Expr::BinaryOp {
            left,
            op: op @ (BinaryOperator::Divide | BinaryOperator::Modulo),
            right,
        } => Expr::Case {
            case_token: AttachedToken::empty(),
            end_token: AttachedToken::empty(),
            operand: None,
            conditions: vec![CaseWhen {
                condition: Expr::BinaryOp {
                    left: right.clone(),
                    op: BinaryOperator::Eq,
                    right: Box::new(Expr::Value(
                        Value::Number("0".into(), false).with_span(Span::empty()),
                    )),
                },
                result: Expr::Value(Value::Null.with_span(Span::empty())),
            }],
            else_result: Some(Box::new(Expr::BinaryOp { left, op, right })),
        },
        other => {
            return Err(format!(
                "TRY({other}) is not supported: TRY works around a CAST or a division here; \
                 for other expressions, test the input first (CASE WHEN …)"
            ));
        }
    };
    Ok(())
}
