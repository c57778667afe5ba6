//! Trino's lambda functions on DataFusion's: `transform` and `filter` are DataFusion's
//! `array_transform` and `array_filter`; `all_match` and `none_match` are read through
//! `any_match` with Trino's NULL rules (false wins over NULL); `apply(x, v -> e)` is `e`
//! with `x` for `v`.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion::sql::sqlparser::ast::{
    CaseWhen, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName,
    ObjectNamePart, OneOrManyWithParens, UnaryOperator, Value, visit_expressions_mut,
};
use datafusion::sql::sqlparser::tokenizer::Span;

/// Rewrites a call of a Trino lambda function in place (after its arguments became
/// lambdas).
pub fn rewrite_call(e: &mut Expr) {
    let Expr::Function(f) = e else {
        return;
    };
    let name = f.name.to_string().to_ascii_lowercase();
    let FunctionArguments::List(list) = &mut f.args else {
        return;
    };
    match name.as_str() {
        "transform" | "filter" => {
            f.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new(format!(
                "array_{name}"
            )))]);
        }
        "all_match" | "none_match" if list.args.len() == 2 => {
            let (Some(array), Some(Expr::Lambda(l))) = (arg(&list.args[0]), arg(&list.args[1]))
            else {
                return;
            };
            let with_body = |body: Expr| {
                let mut l = l.clone();
                l.body = Box::new(body);
                Expr::Lambda(l)
            };
            let p = (*l.body).clone();
            let fails = if name == "all_match" {
                Expr::UnaryOp {
                    op: UnaryOperator::Not,
                    expr: Box::new(Expr::Nested(Box::new(p.clone()))),
                }
            } else {
                p.clone()
            };
            let any = |body: Expr| {
                super::rewrite::call("any_match", vec![array.clone(), with_body(body)])
            };
            *e = Expr::Case {
                case_token: AttachedToken::empty(),
                end_token: AttachedToken::empty(),
                operand: None,
                conditions: vec![
                    CaseWhen {
                        condition: Expr::IsNull(Box::new(array.clone())),
                        result: null(),
                    },
                    CaseWhen {
                        condition: any(fails),
                        result: Expr::Value(Value::Boolean(false).with_span(Span::empty())),
                    },
                    CaseWhen {
                        condition: any(Expr::IsNull(Box::new(Expr::Nested(Box::new(p))))),
                        result: null(),
                    },
                ],
                else_result: Some(Box::new(Expr::Value(
                    Value::Boolean(true).with_span(Span::empty()),
                ))),
            };
        }
        "apply" if list.args.len() == 2 => {
            let (Some(value), Some(Expr::Lambda(l))) = (arg(&list.args[0]), arg(&list.args[1]))
            else {
                return;
            };
            let OneOrManyWithParens::One(param) = &l.params else {
                return;
            };
            let mut body = (*l.body).clone();
            let name = param.name.value.clone();
            let value = Expr::Nested(Box::new(value));
            let _ = visit_expressions_mut(&mut body, |x| {
                if matches!(x, Expr::Identifier(i) if i.value == name) {
                    *x = value.clone();
                }
                ControlFlow::<()>::Continue(())
            });
            *e = Expr::Nested(Box::new(body));
        }
        _ => {}
    }
}

fn arg(a: &FunctionArg) -> Option<Expr> {
    match a {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => Some(x.clone()),
        _ => None,
    }
}

fn null() -> Expr {
    Expr::Value(Value::Null.with_span(Span::empty()))
}
