//! Athena/Trino query forms DataFusion cannot plan, rewritten in the SQL syntax tree.
//!
//! Field access on a function's result or an element (`element_at(items, 1).sku`,
//! `items[1].sku`) becomes a subscript (`…['sku']`).
//!
//! Trino/Athena's `CROSS JOIN UNNEST(arr) AS t(x)` (and `FROM tbl, UNNEST(arr) AS t(x)`),
//! which DataFusion cannot plan (a lateral reference to the left table), rewritten to what it
//! can: a derived table `(SELECT a.*, unnest(arr) AS x FROM tbl AS a) AS a`, with `t.x` read
//! as `a.x`. Rows whose array is NULL or empty are dropped (DataFusion's unnest does), as
//! Trino does.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    AccessExpr, Expr, Ident, JoinOperator, ObjectNamePart, Query, SetExpr, Statement, Subscript,
    TableFactor, TableWithJoins, Value, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// The rewritten statement text, or `None` if there is nothing to rewrite (or the text does
/// not parse: DataFusion then reports the error itself); an error for a form that is
/// refused.
pub fn rewrite(sql: &str) -> Result<Option<String>, String> {
    let lower = sql.to_ascii_lowercase();
    let unnest = lower.contains("unnest");
    let dots = sql.contains(").") || sql.contains("].");
    if !unnest && !dots {
        return Ok(None);
    }
    let Ok(mut stmts) = Parser::parse_sql(&GenericDialect {}, sql) else {
        return Ok(None);
    };
    let mut renames: Vec<(String, String)> = Vec::new();
    let mut refused = None;
    for s in &mut stmts {
        // EXPLAIN [ANALYZE] of a query too: it must plan what the query plans.
        let s = match s {
            Statement::Explain { statement, .. } => statement.as_mut(),
            s => s,
        };
        if let Statement::Query(q) = s {
            rewrite_query(q, &mut renames, &mut refused);
        }
    }
    if let Some(why) = refused {
        return Err(why);
    }
    let mut changed = !renames.is_empty();
    if dots {
        for s in &mut stmts {
            let _ = visit_expressions_mut(s, |e| {
                if let Expr::CompoundFieldAccess { root, access_chain } = e {
                    // A field after a call or a subscript (`items[1].qty`) is a subscript
                    // by name; before them, a dot is the column or table it names.
                    let mut after = matches!(**root, Expr::Function(_));
                    for a in access_chain.iter_mut() {
                        if matches!(a, AccessExpr::Subscript(_)) {
                            after = true;
                            continue;
                        }
                        if !after {
                            continue;
                        }
                        if let AccessExpr::Dot(Expr::Identifier(field)) = a {
                            *a = AccessExpr::Subscript(Subscript::Index {
                                index: Expr::Value(
                                    Value::SingleQuotedString(field.value.clone()).into(),
                                ),
                            });
                            changed = true;
                        }
                    }
                }
                ControlFlow::<()>::Continue(())
            });
        }
    }
    if !changed {
        return Ok(None);
    }
    for s in &mut stmts {
        let _ = visit_expressions_mut(s, |e| {
            if let Expr::CompoundIdentifier(parts) = e
                && parts.len() >= 2
                && let Some((_, to)) = renames.iter().find(|(from, _)| parts[0].value == *from)
            {
                parts[0] = Ident::new(to.clone());
            }
            ControlFlow::<()>::Continue(())
        });
    }
    Ok(Some(
        stmts
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(";\n"),
    ))
}

fn rewrite_query(q: &mut Query, renames: &mut Vec<(String, String)>, refused: &mut Option<String>) {
    if let Some(with) = &mut q.with {
        for cte in &mut with.cte_tables {
            rewrite_query(&mut cte.query, renames, refused);
        }
    }
    rewrite_set(&mut q.body, renames, refused);
}

fn rewrite_set(
    body: &mut SetExpr,
    renames: &mut Vec<(String, String)>,
    refused: &mut Option<String>,
) {
    match body {
        SetExpr::Select(select) => {
            // `FROM a, UNNEST(...)`: the UNNEST item joins the item before it.
            let mut from: Vec<TableWithJoins> = Vec::new();
            for item in std::mem::take(&mut select.from) {
                if item.joins.is_empty()
                    && matches!(item.relation, TableFactor::UNNEST { .. })
                    && let Some(prev) = from.last_mut()
                {
                    prev.joins.push(datafusion::sql::sqlparser::ast::Join {
                        relation: item.relation,
                        global: false,
                        join_operator: JoinOperator::CrossJoin(
                            datafusion::sql::sqlparser::ast::JoinConstraint::None,
                        ),
                    });
                } else {
                    from.push(item);
                }
            }
            for twj in &mut from {
                rewrite_joins(twj, renames, refused);
            }
            select.from = from;
        }
        SetExpr::Query(q) => rewrite_query(q, renames, refused),
        SetExpr::SetOperation { left, right, .. } => {
            rewrite_set(left, renames, refused);
            rewrite_set(right, renames, refused);
        }
        _ => {}
    }
}

/// Folds each lateral UNNEST into the relation on its left: `CROSS JOIN UNNEST(…)`, the
/// comma form, and `[INNER|LEFT] JOIN UNNEST(…) ON true`. Several arrays are zipped
/// (the shorter padded with NULLs), `WITH ORDINALITY` adds the 1-based position, an array
/// of rows with one alias per field is spread into columns, and a LEFT JOIN keeps a row
/// whose array is NULL or empty (with NULLs), as Trino does.
fn rewrite_joins(
    twj: &mut TableWithJoins,
    renames: &mut Vec<(String, String)>,
    refused: &mut Option<String>,
) {
    let mut kept = Vec::new();
    for join in std::mem::take(&mut twj.joins) {
        let left_join = match &join.join_operator {
            JoinOperator::CrossJoin(_) | JoinOperator::CrossApply => Some(false),
            JoinOperator::Inner(c) | JoinOperator::Join(c) if on_true(c) => Some(false),
            JoinOperator::LeftOuter(c) | JoinOperator::Left(c) if on_true(c) => Some(true),
            _ => None,
        };
        let TableFactor::UNNEST {
            alias,
            array_exprs,
            with_offset: false,
            with_ordinality,
            ..
        } = &join.relation
        else {
            kept.push(join);
            continue;
        };
        let (Some(left_join), true) = (left_join, kept.is_empty()) else {
            kept.push(join);
            continue;
        };
        let Some(left) = left_alias(&twj.relation) else {
            kept.push(join);
            continue;
        };
        let columns: Vec<String> = alias
            .as_ref()
            .map(|a| a.columns.iter().map(|c| c.name.value.clone()).collect())
            .unwrap_or_default();
        let sql = match lateral_sql(
            &left,
            &with_alias(&twj.relation, &left),
            array_exprs,
            *with_ordinality,
            &columns,
            left_join,
        ) {
            Ok(sql) => sql,
            Err(why) => {
                refused.get_or_insert(why);
                kept.push(join);
                continue;
            }
        };
        let Some(derived) = derived_relation(&sql) else {
            kept.push(join);
            continue;
        };
        twj.relation = derived;
        if let Some(a) = alias {
            renames.push((a.name.value.clone(), left));
        }
    }
    twj.joins = kept;
}

/// `ON true`.
fn on_true(c: &datafusion::sql::sqlparser::ast::JoinConstraint) -> bool {
    matches!(
        c,
        datafusion::sql::sqlparser::ast::JoinConstraint::On(Expr::Value(v))
            if matches!(v.value, Value::Boolean(true))
    )
}

/// The derived table that joins `rel` (known as `left`) with the unnested arrays.
fn lateral_sql(
    left: &str,
    rel: &str,
    arrays: &[Expr],
    ordinality: bool,
    columns: &[String],
    left_join: bool,
) -> Result<String, String> {
    if left_join && ordinality {
        return Err("LEFT JOIN UNNEST … WITH ORDINALITY is not supported: \
                    use CROSS JOIN UNNEST … WITH ORDINALITY"
            .into());
    }
    let n = arrays.len();
    let values = columns.len().saturating_sub(usize::from(ordinality));
    // A row's fields spread into columns: one array, one alias per field.
    let spread = n == 1 && values > 1;
    if n > 1 && !columns.is_empty() && values != n {
        return Err(format!(
            "UNNEST of {n} arrays names {} columns: unnest arrays of rows one at a time",
            columns.len()
        ));
    }
    let array = |e: &Expr| {
        if left_join {
            // NULL or empty: one row of NULLs.
            format!("CASE WHEN coalesce(cardinality({e}), 0) = 0 THEN [NULL] ELSE {e} END")
        } else {
            e.to_string()
        }
    };
    let name = |i: usize| {
        columns
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("_col{}", i + 1))
    };
    let mut inner = Vec::new();
    if spread {
        inner.push(format!("unnest({}) AS __unnested", array(&arrays[0])));
    } else {
        for (i, e) in arrays.iter().enumerate() {
            inner.push(format!("unnest({}) AS {}", array(e), name(i)));
        }
    }
    if ordinality {
        let longest = if n == 1 {
            format!("cardinality({})", arrays[0])
        } else {
            let all: Vec<String> = arrays
                .iter()
                .map(|e| format!("coalesce(cardinality({e}), 0)"))
                .collect();
            format!("greatest({})", all.join(", "))
        };
        let ordinal = match columns.last() {
            Some(c) => c.clone(),
            None => format!("_col{}", n + 1),
        };
        inner.push(format!(
            "unnest(generate_series(1, {longest})) AS {ordinal}"
        ));
    }
    // No `WHERE arr IS NOT NULL`: unnest drops NULL and empty arrays itself, and the filter,
    // pushed into the Parquet scan, decoded the array column twice (q07 of
    // bench/queries.sh took twice as long).
    let inner = format!("SELECT {left}.*, {} FROM {rel}", inner.join(", "));
    if !spread {
        return Ok(format!("SELECT * FROM ({inner}) AS {left}"));
    }
    let fields: Vec<String> = (0..values)
        .map(|j| format!("trino_field({left}.__unnested, {}) AS {}", j + 1, name(j)))
        .collect();
    Ok(format!(
        "SELECT * FROM (SELECT {left}.* EXCLUDE (__unnested), {} FROM ({inner}) AS {left}) AS {left}",
        fields.join(", ")
    ))
}

/// The FROM relation of `SELECT * FROM <relation>`.
fn derived_relation(sql: &str) -> Option<TableFactor> {
    let mut parsed = Parser::parse_sql(&GenericDialect {}, sql).ok()?;
    let Some(Statement::Query(q)) = parsed.pop() else {
        return None;
    };
    let SetExpr::Select(mut s) = *q.body else {
        return None;
    };
    Some(s.from.pop()?.relation)
}

/// The name the left relation is referred to by (its alias, else its table name).
fn left_alias(rel: &TableFactor) -> Option<String> {
    match rel {
        TableFactor::Table { name, alias, .. } => match alias {
            Some(a) => Some(a.name.value.clone()),
            None => name.0.last().and_then(|p| match p {
                ObjectNamePart::Identifier(i) => Some(i.value.clone()),
                _ => None,
            }),
        },
        TableFactor::Derived { alias: Some(a), .. } => Some(a.name.value.clone()),
        _ => None,
    }
}

/// The left relation's text, aliased `alias` (so `alias.*` and `alias.col` resolve).
fn with_alias(rel: &TableFactor, alias: &str) -> String {
    match rel {
        TableFactor::Table {
            name, alias: None, ..
        } => format!("{name} AS {alias}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite_ok(sql: &str) -> Option<String> {
        rewrite(sql).unwrap()
    }

    #[test]
    fn cross_join_unnest_becomes_a_derived_table() {
        let out = rewrite_ok(
            "SELECT o.id, t.x FROM orders o CROSS JOIN UNNEST(o.items) AS t(x) WHERE t.x > 1",
        )
        .unwrap();
        assert_eq!(
            out,
            "SELECT o.id, o.x FROM (SELECT o.*, unnest(o.items) AS x FROM orders o) AS o WHERE o.x > 1"
        );
        let comma = rewrite_ok("SELECT x FROM orders, UNNEST(items) AS t(x)").unwrap();
        assert!(
            comma.contains("unnest(items) AS x FROM orders AS orders"),
            "{comma}"
        );
        assert!(rewrite_ok("SELECT 1").is_none());
        assert_eq!(
            rewrite_ok("SELECT element_at(items, 1).sku FROM t").unwrap(),
            "SELECT element_at(items, 1)['sku'] FROM t"
        );
        assert!(rewrite_ok("SELECT unnest([1,2])").is_none());
        assert_eq!(
            rewrite_ok("EXPLAIN ANALYZE SELECT t.x FROM orders CROSS JOIN UNNEST(items) AS t(x)")
                .unwrap(),
            "EXPLAIN ANALYZE SELECT orders.x FROM (SELECT orders.*, unnest(items) AS x FROM orders AS orders) AS orders"
        );
    }
}
