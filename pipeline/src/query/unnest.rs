//! Athena/Trino query forms DataFusion cannot plan, rewritten in the SQL syntax tree.
//!
//! Field access on a function's result (`element_at(items, 1).sku`) becomes a subscript
//! (`element_at(items, 1)['sku']`).
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
/// not parse: DataFusion then reports the error itself).
pub fn rewrite(sql: &str) -> Option<String> {
    let lower = sql.to_ascii_lowercase();
    let unnest = lower.contains("unnest");
    let dots = sql.contains(").");
    if !unnest && !dots {
        return None;
    }
    let mut stmts = Parser::parse_sql(&GenericDialect {}, sql).ok()?;
    let mut renames: Vec<(String, String)> = Vec::new();
    for s in &mut stmts {
        // EXPLAIN [ANALYZE] of a query too: it must plan what the query plans.
        let s = match s {
            Statement::Explain { statement, .. } => statement.as_mut(),
            s => s,
        };
        if let Statement::Query(q) = s {
            rewrite_query(q, &mut renames);
        }
    }
    let mut changed = !renames.is_empty();
    if dots {
        for s in &mut stmts {
            let _ = visit_expressions_mut(s, |e| {
                if let Expr::CompoundFieldAccess { root, access_chain } = e
                    && matches!(**root, Expr::Function(_))
                {
                    for a in access_chain.iter_mut() {
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
        return None;
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
    Some(
        stmts
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(";\n"),
    )
}

fn rewrite_query(q: &mut Query, renames: &mut Vec<(String, String)>) {
    if let Some(with) = &mut q.with {
        for cte in &mut with.cte_tables {
            rewrite_query(&mut cte.query, renames);
        }
    }
    rewrite_set(&mut q.body, renames);
}

fn rewrite_set(body: &mut SetExpr, renames: &mut Vec<(String, String)>) {
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
                rewrite_joins(twj, renames);
            }
            select.from = from;
        }
        SetExpr::Query(q) => rewrite_query(q, renames),
        SetExpr::SetOperation { left, right, .. } => {
            rewrite_set(left, renames);
            rewrite_set(right, renames);
        }
        _ => {}
    }
}

/// Folds each `CROSS JOIN UNNEST(expr) AS t(x)` into the relation on its left.
fn rewrite_joins(twj: &mut TableWithJoins, renames: &mut Vec<(String, String)>) {
    let mut kept = Vec::new();
    for join in std::mem::take(&mut twj.joins) {
        let is_cross = matches!(
            join.join_operator,
            JoinOperator::CrossJoin(_) | JoinOperator::CrossApply
        );
        let TableFactor::UNNEST {
            alias: Some(alias),
            array_exprs,
            with_offset: false,
            with_ordinality: false,
            ..
        } = &join.relation
        else {
            kept.push(join);
            continue;
        };
        if !is_cross || !kept.is_empty() || array_exprs.len() != 1 || alias.columns.len() != 1 {
            kept.push(join);
            continue;
        }
        let Some(left) = left_alias(&twj.relation) else {
            kept.push(join);
            continue;
        };
        let expr = &array_exprs[0];
        let column = &alias.columns[0].name;
        let sql = format!(
            // No `WHERE arr IS NOT NULL`: unnest drops NULL and empty arrays itself, and the
            // filter, pushed into the Parquet scan, decoded the array column twice (q07 of
            // bench/queries.sh took twice as long).
            "SELECT * FROM (SELECT {left}.*, unnest({expr}) AS {column} FROM {rel}) AS {left}",
            rel = with_alias(&twj.relation, &left),
        );
        let Ok(mut parsed) = Parser::parse_sql(&GenericDialect {}, &sql) else {
            kept.push(join);
            continue;
        };
        let Some(Statement::Query(q)) = parsed.pop() else {
            kept.push(join);
            continue;
        };
        let SetExpr::Select(mut s) = *q.body else {
            kept.push(join);
            continue;
        };
        let Some(derived) = s.from.pop() else {
            kept.push(join);
            continue;
        };
        twj.relation = derived.relation;
        renames.push((alias.name.value.clone(), left));
    }
    twj.joins = kept;
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

    #[test]
    fn cross_join_unnest_becomes_a_derived_table() {
        let out = rewrite(
            "SELECT o.id, t.x FROM orders o CROSS JOIN UNNEST(o.items) AS t(x) WHERE t.x > 1",
        )
        .unwrap();
        assert_eq!(
            out,
            "SELECT o.id, o.x FROM (SELECT o.*, unnest(o.items) AS x FROM orders o) AS o WHERE o.x > 1"
        );
        let comma = rewrite("SELECT x FROM orders, UNNEST(items) AS t(x)").unwrap();
        assert!(
            comma.contains("unnest(items) AS x FROM orders AS orders"),
            "{comma}"
        );
        assert!(rewrite("SELECT 1").is_none());
        assert_eq!(
            rewrite("SELECT element_at(items, 1).sku FROM t").unwrap(),
            "SELECT element_at(items, 1)['sku'] FROM t"
        );
        assert!(rewrite("SELECT unnest([1,2])").is_none());
        assert_eq!(
            rewrite("EXPLAIN ANALYZE SELECT t.x FROM orders CROSS JOIN UNNEST(items) AS t(x)")
                .unwrap(),
            "EXPLAIN ANALYZE SELECT orders.x FROM (SELECT orders.*, unnest(items) AS x FROM orders AS orders) AS orders"
        );
    }
}
