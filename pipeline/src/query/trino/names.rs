//! Trino's names for unaliased expressions, `_col0`, `_col1`, …: a query whose
//! expressions DataFusion would name alike is planned again with them.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{CastKind, Expr, Statement, visit_expressions_mut};

use super::rewrite::trino_cast;

/// Names every unaliased expression of every SELECT `_colN` (its 0-based position), as
/// Trino names them.
pub fn name_columns(statement: &mut Statement) {
    use datafusion::sql::sqlparser::ast::{
        Ident, Query, SelectItem, SetExpr, visit_statements_mut,
    };
    fn set(body: &mut SetExpr) {
        match body {
            SetExpr::Select(select) => {
                for (i, item) in select.projection.iter_mut().enumerate() {
                    if let SelectItem::UnnamedExpr(e) = item
                        && !matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
                    {
                        *item = SelectItem::ExprWithAlias {
                            expr: e.clone(),
                            alias: Ident::new(format!("_col{i}")),
                        };
                    }
                }
            }
            SetExpr::Query(q) => query(q),
            SetExpr::SetOperation { left, right, .. } => {
                set(left);
                set(right);
            }
            _ => {}
        }
    }
    fn query(q: &mut Query) {
        if let Some(with) = &mut q.with {
            for cte in &mut with.cte_tables {
                query(&mut cte.query);
            }
        }
        set(&mut q.body);
    }
    let _ = visit_statements_mut(statement, |s| {
        if let Statement::Query(q) = s {
            query(q);
        }
        ControlFlow::<()>::Continue(())
    });
    // Casts named with their type, so that two casts of one column differ.
    let _ = visit_expressions_mut(statement, |e| {
        if let Expr::Cast {
            kind: CastKind::Cast,
            expr,
            data_type,
            ..
        } = e
        {
            *e = trino_cast(expr, data_type);
        }
        ControlFlow::<()>::Continue(())
    });
}
