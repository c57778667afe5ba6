//! The rewrites that need every expression's type, in one analyzer pass after type
//! coercion: Trino's casts (`cast.rs`), array equality (`arrayeq.rs`) and checked integer
//! arithmetic (`integers.rs`). Column names stay as DataFusion gave them.

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;

use super::arrayeq::ArrayEquality;
use super::cast::RoundingCasts;
use super::integers::CheckedArithmetic;

#[derive(Debug)]
pub struct TypedRewrites {
    casts: RoundingCasts,
    arrays: ArrayEquality,
    arithmetic: CheckedArithmetic,
}

impl TypedRewrites {
    pub fn new() -> Self {
        Self {
            casts: RoundingCasts::new(),
            arrays: ArrayEquality::new(),
            arithmetic: CheckedArithmetic::new(),
        }
    }

    fn rewrite(&self, e: &Expr, schema: &DFSchema) -> Option<Expr> {
        self.casts
            .rewrite(e, schema)
            .or_else(|| self.arrays.rewrite(e, schema))
            .or_else(|| self.arithmetic.rewrite(e, schema))
    }
}

impl AnalyzerRule for TypedRewrites {
    fn name(&self) -> &str {
        "trino_typed_rewrites"
    }

    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            // A node's expressions read its inputs' columns.
            let mut schema = DFSchema::empty();
            for input in node.inputs() {
                schema.merge(input.schema());
            }
            let names = NamePreserver::new(&node);
            node.map_expressions(|e| {
                let saved = names.save(&e);
                let t = e.transform_up(|e| match self.rewrite(&e, &schema) {
                    Some(new) => Ok(Transformed::yes(new)),
                    None => Ok(Transformed::no(e)),
                })?;
                Ok(if t.transformed {
                    Transformed::yes(saved.restore(t.data))
                } else {
                    t
                })
            })
        })
        .map(|t| t.data)
    }
}
