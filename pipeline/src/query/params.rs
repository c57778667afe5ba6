//! Query parameters (Flight SQL prepared statements): JDBC and ADBC send `?` placeholders,
//! DataFusion binds `$1, $2, …`; the `?`s are numbered in order, outside string literals,
//! quoted identifiers and comments.

/// `sql` with every `?` placeholder as `$n`; `None` if it has none.
pub fn number_placeholders(sql: &str) -> Option<String> {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        match b[i] {
            // 'it''s' and "a ""quoted"" name": the doubled quote stays inside.
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if b.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b'?' => {
                n += 1;
                out.push_str(&sql[copied..i]);
                out.push_str(&format!("${n}"));
                i += 1;
                copied = i;
            }
            _ => i += 1,
        }
    }
    if n == 0 {
        return None;
    }
    out.push_str(&sql[copied.min(sql.len())..]);
    Some(out)
}

use arrow::datatypes::DataType;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser;

/// An Athena-style execution parameter — a SQL literal as text (`42`, `-1.5`, `'DE'`,
/// `TRUE`, `NULL`) — as a value. Anything else (a column, a function call, a subquery) is
/// refused: parameters are values, never SQL.
pub fn literal(text: &str) -> Result<ScalarValue, String> {
    use sqlparser::ast::{Expr, UnaryOperator, Value};
    use sqlparser::tokenizer::Token;
    let dialect = sqlparser::dialect::GenericDialect {};
    let mut parser = sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(text)
        .map_err(|e| format!("parameter `{text}`: {e}"))?;
    let expr = parser
        .parse_expr()
        .map_err(|e| format!("parameter `{text}`: {e}"))?;
    if parser.peek_token().token != Token::EOF {
        return Err(format!("parameter `{text}` is more than one value"));
    }
    let (negative, expr) = match expr {
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => (true, *expr),
        e => (false, e),
    };
    let not_literal = || {
        format!(
            "parameter `{text}` is not a literal: give a number, a 'quoted string', TRUE, FALSE or NULL"
        )
    };
    let Expr::Value(v) = expr else {
        return Err(not_literal());
    };
    let number = |n: &str| -> Result<ScalarValue, String> {
        let n = if negative {
            format!("-{n}")
        } else {
            n.to_string()
        };
        match n.parse::<i64>() {
            Ok(i) => Ok(ScalarValue::Int64(Some(i))),
            Err(_) => n
                .parse::<f64>()
                .map(|f| ScalarValue::Float64(Some(f)))
                .map_err(|e| format!("parameter `{text}`: {e}")),
        }
    };
    match (v.value, negative) {
        (Value::Number(n, _), _) => number(&n),
        (Value::SingleQuotedString(s), false) => Ok(ScalarValue::Utf8(Some(s))),
        (Value::Boolean(b), false) => Ok(ScalarValue::Boolean(Some(b))),
        (Value::Null, false) => Ok(ScalarValue::Null),
        _ => Err(not_literal()),
    }
}

/// `values` cast to the types their placeholders' uses imply (`None`: as given).
pub fn cast_to_planned(
    values: Vec<ScalarValue>,
    types: &[Option<DataType>],
) -> Result<Vec<ScalarValue>, String> {
    if values.len() != types.len() {
        return Err(format!(
            "the statement has {} parameters, {} were given",
            types.len(),
            values.len()
        ));
    }
    values
        .into_iter()
        .zip(types)
        .enumerate()
        .map(|(i, (v, t))| match t {
            Some(t) if v.data_type() != *t => v.cast_to(t).map_err(|e| {
                format!(
                    "parameter {} ({}) does not fit its use ({t}): {e}",
                    i + 1,
                    v.data_type()
                )
            }),
            _ => Ok(v),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::number_placeholders as n;
    use super::*;

    #[test]
    fn parameters_are_literals_and_nothing_else() {
        assert_eq!(literal("42"), Ok(ScalarValue::Int64(Some(42))));
        assert_eq!(literal("-1.5"), Ok(ScalarValue::Float64(Some(-1.5))));
        assert_eq!(
            literal("'it''s'"),
            Ok(ScalarValue::Utf8(Some("it's".into())))
        );
        assert_eq!(literal("TRUE"), Ok(ScalarValue::Boolean(Some(true))));
        assert_eq!(literal("NULL"), Ok(ScalarValue::Null));
        for bad in [
            "country",
            "(SELECT 1)",
            "1; DROP TABLE t",
            "upper('x')",
            "1 + 1",
            "-'x'",
            "",
        ] {
            assert!(literal(bad).is_err(), "{bad}");
        }
        let cast = cast_to_planned(
            vec![
                ScalarValue::Int64(Some(7)),
                ScalarValue::Utf8(Some("DE".into())),
            ],
            &[Some(DataType::Int32), Some(DataType::Utf8View)],
        )
        .unwrap();
        assert_eq!(cast[0], ScalarValue::Int32(Some(7)));
        assert_eq!(cast[1].data_type(), DataType::Utf8View);
        assert!(cast_to_planned(vec![], &[None]).is_err());
        assert!(
            cast_to_planned(
                vec![ScalarValue::Utf8(Some("x".into()))],
                &[Some(DataType::Int64)]
            )
            .is_err()
        );
    }

    #[test]
    fn question_marks_become_numbered_outside_strings_and_comments() {
        assert_eq!(n("SELECT 1"), None);
        assert_eq!(
            n("SELECT * FROM t WHERE a = ? AND b > ?").as_deref(),
            Some("SELECT * FROM t WHERE a = $1 AND b > $2")
        );
        assert_eq!(
            n("SELECT '?', 'it''s ?', \"col?\" FROM t -- why?\nWHERE x = ? /* ? */").as_deref(),
            Some("SELECT '?', 'it''s ?', \"col?\" FROM t -- why?\nWHERE x = $1 /* ? */")
        );
        assert_eq!(n("SELECT 'unterminated ?"), None);
        assert_eq!(n("SELECT ?").as_deref(), Some("SELECT $1"));
    }
}
