//! Trino's integers: a literal that fits is an INTEGER (DataFusion reads every one as
//! BIGINT), and integer `+`, `-` and `*` fail on overflow (DataFusion's wrap around).
//! Both are analyzer rules: the literals before type coercion, the arithmetic after it.
//! Column names stay as DataFusion gave them.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue, plan_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

/// Literals that fit in 32 bits become INTEGER (before type coercion).
#[derive(Debug)]
pub struct IntegerLiterals;

impl AnalyzerRule for IntegerLiterals {
    fn name(&self) -> &str {
        "trino_integer_literals"
    }

    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        // A lambda's parameters are typed when the query is planned: VALUES whose columns a
        // lambda reads must keep their types.
        let lambdas = plan.exists(|node| {
            let mut found = false;
            node.apply_expressions(|e| {
                found |= e.exists(|x| Ok(matches!(x, Expr::HigherOrderFunction(_))))?;
                Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
            })?;
            Ok(found)
        })?;
        plan.transform_up_with_subqueries(|node| {
            // LIMIT and OFFSET take BIGINT.
            if matches!(node, LogicalPlan::Limit(_))
                || (lambdas && matches!(node, LogicalPlan::Values(_)))
            {
                return Ok(Transformed::no(node));
            }
            // VALUES rows: typed when planned, so the node is built again from them.
            if let LogicalPlan::Values(v) = &node {
                let mut changed = false;
                let mut rows: Vec<Vec<Expr>> = Vec::with_capacity(v.values.len());
                for row in &v.values {
                    let mut out = Vec::with_capacity(row.len());
                    for e in row {
                        let t = narrow_literals(e.clone())?;
                        changed |= t.transformed;
                        out.push(t.data);
                    }
                    rows.push(out);
                }
                if !changed {
                    return Ok(Transformed::no(node));
                }
                let rebuilt =
                    datafusion::logical_expr::LogicalPlanBuilder::values(rows)?.build()?;
                // The same column names as before.
                let names: Vec<String> =
                    v.schema.fields().iter().map(|f| f.name().clone()).collect();
                let rebuilt_names: Vec<String> = rebuilt
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                if names != rebuilt_names {
                    return Ok(Transformed::no(node));
                }
                return Ok(Transformed::yes(rebuilt));
            }
            let names = NamePreserver::new(&node);
            let node = node.map_expressions(|e| {
                let saved = names.save(&e);
                let t = narrow_literals(e)?;
                Ok(if t.transformed {
                    Transformed::yes(saved.restore(t.data))
                } else {
                    t
                })
            })?;
            if node.transformed {
                node.map_data(|p| p.recompute_schema())
            } else {
                Ok(node)
            }
        })
        .map(|t| t.data)
    }
}

/// `e` with its literals narrowed (`narrow`).
fn narrow_literals(e: Expr) -> Result<Transformed<Expr>> {
    e.transform_up(|e| match e {
        Expr::Literal(value, meta) => match narrow(&value) {
            Some(n) => Ok(Transformed::yes(Expr::Literal(n, meta))),
            None => Ok(Transformed::no(Expr::Literal(value, meta))),
        },
        other => Ok(Transformed::no(other)),
    })
}

/// A literal's value with its BIGINTs as INTEGERs, arrays and rows of them too, when
/// every one fits; `None` when nothing changes.
fn narrow(v: &ScalarValue) -> Option<ScalarValue> {
    match v {
        ScalarValue::Int64(Some(n)) => i32::try_from(*n).ok().map(|n| ScalarValue::Int32(Some(n))),
        ScalarValue::List(_) | ScalarValue::Struct(_) => {
            let t = v.data_type();
            let to = narrowed(&t)?;
            let array = v.to_array().ok()?;
            let strict = arrow::compute::CastOptions {
                safe: false,
                ..Default::default()
            };
            let cast = arrow::compute::cast_with_options(&array, &to, &strict).ok()?;
            ScalarValue::try_from_array(&cast, 0).ok()
        }
        _ => None,
    }
}

/// `t` with BIGINT as INTEGER inside; `None` when it holds no BIGINT.
fn narrowed(t: &DataType) -> Option<DataType> {
    use arrow::datatypes::Field;
    match t {
        DataType::Int64 => Some(DataType::Int32),
        DataType::List(f) => {
            let inner = narrowed(f.data_type())?;
            Some(DataType::List(Arc::new(Field::new(
                f.name(),
                inner,
                f.is_nullable(),
            ))))
        }
        DataType::Struct(fields) => {
            let mut any = false;
            let new: Vec<Field> = fields
                .iter()
                .map(|f| match narrowed(f.data_type()) {
                    Some(t) => {
                        any = true;
                        Field::new(f.name(), t, f.is_nullable())
                    }
                    None => f.as_ref().clone(),
                })
                .collect();
            any.then(|| DataType::Struct(new.into()))
        }
        _ => None,
    }
}

/// Integer `+`, `-`, `*` through checked kernels (applied after type coercion, `typed.rs`).
#[derive(Debug)]
pub struct CheckedArithmetic {
    add: Arc<ScalarUDF>,
    sub: Arc<ScalarUDF>,
    mul: Arc<ScalarUDF>,
}

impl CheckedArithmetic {
    pub fn new() -> Self {
        let f = |op| Arc::new(ScalarUDF::from(Checked::new(op)));
        Self {
            add: f(Operator::Plus),
            sub: f(Operator::Minus),
            mul: f(Operator::Multiply),
        }
    }
}

impl CheckedArithmetic {
    /// `e` through a checked kernel when it is integer `+`, `-` or `*`.
    pub fn rewrite(&self, e: &Expr, schema: &DFSchema) -> Option<Expr> {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
            return None;
        };
        let f = match op {
            Operator::Plus => &self.add,
            Operator::Minus => &self.sub,
            Operator::Multiply => &self.mul,
            _ => return None,
        };
        let (l, r) = (left.get_type(schema).ok()?, right.get_type(schema).ok()?);
        if !l.is_integer() || l != r {
            return None;
        }
        Some(Expr::ScalarFunction(ScalarFunction::new_udf(
            f.clone(),
            vec![(**left).clone(), (**right).clone()],
        )))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Checked {
    name: &'static str,
    symbol: &'static str,
    signature: Signature,
}

impl Checked {
    fn new(op: Operator) -> Self {
        let (name, symbol) = match op {
            Operator::Plus => ("trino_add", "+"),
            Operator::Minus => ("trino_subtract", "-"),
            _ => ("trino_multiply", "*"),
        };
        Self {
            name,
            symbol,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Checked {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    /// Named as the operator it replaces (`a + b`).
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        match args {
            [l, r] => Ok(format!(
                "{} {} {}",
                l.schema_name(),
                self.symbol,
                r.schema_name()
            )),
            _ => plan_err!("{} takes two arguments", self.name),
        }
    }
    fn return_type(&self, t: &[DataType]) -> Result<DataType> {
        Ok(t.first().cloned().unwrap_or(DataType::Null))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, scalar) = super::udf::arrays_of(&args)?;
        let (l, r) = (&arrays[0], &arrays[1]);
        use arrow::compute::kernels::numeric;
        let out: std::result::Result<ArrayRef, _> = match self.symbol {
            "+" => numeric::add(l, r),
            "-" => numeric::sub(l, r),
            _ => numeric::mul(l, r),
        };
        let out = out.map_err(|e| {
            datafusion::error::DataFusionError::Execution(format!(
                "{} {} overflow: {e}",
                l.data_type(),
                match self.symbol {
                    "+" => "addition",
                    "-" => "subtraction",
                    _ => "multiplication",
                }
            ))
        })?;
        super::udf::value_of(out, scalar)
    }
}
