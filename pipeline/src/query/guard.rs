//! Limits on the query text, checked before planning: a hostile or generated query must be
//! refused with a clear error, not take the process down.
//!
//! `SELECT 1+1+…` with 2,000 terms is 4 KB, parses without recursion (sqlparser loops over
//! infix operators), and then recursed ~2,000 frames deep in every pass over the expression
//! tree: typing, coercion, simplification, physical planning, evaluation. That overflowed
//! the stack and aborted the server. DataFusion's `recursive_protection` now moves deep
//! recursion to the heap, and queries run on threads with large stacks (`isolate.rs`); these
//! limits bound the work any one query text can ask for. Athena's own limit on the text is
//! 256 KB.

use std::ops::ControlFlow;

use datafusion::common::{DataFusionError, Result};
use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast::{Expr, Visit, Visitor};

/// Longest query text accepted (Athena's limit).
pub const MAX_SQL_BYTES: usize = 256 * 1024;

/// Deepest expression nesting accepted; a tree deeper than this is refused before planning.
/// Planning time grows with the square of the depth (DataFusion's passes revisit subtrees):
/// in a debug build 250 terms plan in 0.2 s, 1,000 in 3.4 s, 2,000 in 14 s. Planning cannot
/// be interrupted by the timeout, so the bound keeps one query's planning short.
pub const MAX_EXPRESSION_DEPTH: usize = 1_000;

/// Refuses query text longer than [`MAX_SQL_BYTES`].
pub fn check_size(sql: &str) -> std::result::Result<(), String> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(format!(
            "query refused: its text is {} KB, over the {} KB limit",
            sql.len().div_ceil(1024),
            MAX_SQL_BYTES / 1024
        ));
    }
    Ok(())
}

/// The expression nesting at the visitor's current node.
struct Depth(usize);

impl Visitor for Depth {
    type Break = ();

    fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.0 += 1;
        // Stops the walk at once: the visit itself recurses, so it goes no deeper.
        if self.0 > MAX_EXPRESSION_DEPTH {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.0 -= 1;
        ControlFlow::Continue(())
    }
}

/// Stack for dropping a statement refused as too deep: Rust drops a tree recursively, one
/// frame per level, and text within [`MAX_SQL_BYTES`] nests up to ~131,000 levels.
const DROP_STACK_BYTES: usize = 1 << 30;

/// Drops a statement refused by [`check_depth`] on a thread whose stack holds its depth
/// (address space reserved, only the pages touched are used, and freed when it ends).
pub fn drop_deep(statement: Statement) {
    let spawned = std::thread::Builder::new()
        .name("tributary-drop".into())
        .stack_size(DROP_STACK_BYTES)
        .spawn(move || drop(statement));
    if let Ok(t) = spawned {
        let _ = t.join();
    }
}

/// Refuses a statement whose expressions nest deeper than [`MAX_EXPRESSION_DEPTH`].
pub fn check_depth(statement: &Statement) -> Result<()> {
    let mut depth = Depth(0);
    let stopped = match statement {
        Statement::Statement(s) => s.visit(&mut depth).is_break(),
        Statement::Explain(e) => return check_depth(&e.statement),
        Statement::CopyTo(c) => match &c.source {
            datafusion::sql::parser::CopyToSource::Query(q) => q.visit(&mut depth).is_break(),
            datafusion::sql::parser::CopyToSource::Relation(_) => false,
        },
        _ => false,
    };
    if stopped {
        return Err(DataFusionError::Plan(format!(
            "query refused: its expressions nest more than {MAX_EXPRESSION_DEPTH} levels deep \
             (a chain of {MAX_EXPRESSION_DEPTH}+ operators); split it, or use IN (…) for long \
             lists of alternatives"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sql: &str) -> Statement {
        let dialect = datafusion::sql::sqlparser::dialect::GenericDialect {};
        let mut p = datafusion::sql::parser::DFParserBuilder::new(sql)
            .with_dialect(&dialect)
            .build()
            .and_then(|mut p| p.parse_statements())
            .map(|s| s.into_iter().collect::<Vec<_>>());
        match p.as_mut().map(|s| s.pop()) {
            Ok(Some(s)) => s,
            other => panic!("{sql}: {:?}", other.err()),
        }
    }

    fn chain(terms: usize) -> String {
        format!("SELECT {}", vec!["1"; terms].join("+"))
    }

    #[test]
    fn long_chains_pass_up_to_the_limit() {
        assert!(check_depth(&parse(&chain(MAX_EXPRESSION_DEPTH - 1))).is_ok());
        assert!(check_depth(&parse("EXPLAIN SELECT 1+1")).is_ok());
    }

    #[test]
    fn deeper_chains_are_refused_with_the_limit() {
        let e = check_depth(&parse(&chain(MAX_EXPRESSION_DEPTH + 2)))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("nest more than 1000 levels"), "{e}");
        let e = check_depth(&parse(&format!(
            "EXPLAIN {}",
            chain(MAX_EXPRESSION_DEPTH + 2)
        )));
        assert!(e.is_err());
        // As deep as text within the size limit goes: the walk stops at the limit, and the
        // tree is dropped on a stack that holds it.
        let deepest = parse(&chain(MAX_SQL_BYTES / 2));
        assert!(check_depth(&deepest).is_err());
        drop_deep(deepest);
    }

    #[test]
    fn long_text_is_refused() {
        assert!(check_size(&"x".repeat(MAX_SQL_BYTES)).is_ok());
        let e = check_size(&"x".repeat(MAX_SQL_BYTES + 1))
            .err()
            .map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("over the 256 KB limit"));
    }
}
