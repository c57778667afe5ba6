//! Trino's aggregate functions written with DataFusion's: `count_if`, `every`,
//! `arbitrary`, `variance`, `geometric_mean`, `max_by`/`min_by` (the value at the
//! largest/smallest key, keys that are NULL passed over), `map_agg`, `histogram`,
//! `listagg … WITHIN GROUP (ORDER BY …)`, and `approx_percentile` with an array of
//! percentages or a weight.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, MapArray, StructArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::ScalarUDF;
use datafusion::sql::sqlparser::ast::{Expr, FunctionArg, FunctionArgExpr, FunctionArguments};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::udf::{list, udf};

/// The call's replacement, or `None` to leave it.
pub fn rewrite_call(e: &mut Expr) {
    let Expr::Function(f) = e else {
        return;
    };
    let name = f.name.to_string().to_ascii_lowercase();
    let FunctionArguments::List(l) = &f.args else {
        return;
    };
    let args: Option<Vec<String>> = l
        .args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => Some(x.to_string()),
            _ => None,
        })
        .collect();
    let Some(a) = args else {
        return;
    };
    let distinct = l.duplicate_treatment.is_some();
    let filter = f.filter.as_ref().map(|x| x.to_string());
    // A FILTER the call had, joined with one the rewrite needs.
    let and_filter = |extra: &str| match &filter {
        Some(f) => format!(" FILTER (WHERE ({f}) AND {extra})"),
        None => format!(" FILTER (WHERE {extra})"),
    };
    let keep_filter = filter
        .as_ref()
        .map(|f| format!(" FILTER (WHERE {f})"))
        .unwrap_or_default();
    if f.over.is_some() || distinct {
        return;
    }
    let text = match (name.as_str(), a.as_slice()) {
        ("count_if", [p]) => format!("count(CASE WHEN {p} THEN 1 END){keep_filter}"),
        ("every", [p]) => format!("bool_and({p}){keep_filter}"),
        ("arbitrary", [x]) => format!("any_value({x}){keep_filter}"),
        ("variance", [x]) => format!("var_samp({x}){keep_filter}"),
        ("geometric_mean", [x]) => format!("exp(avg(ln({x})){keep_filter})"),
        ("max_by", [x, y]) => format!(
            "first_value({x} ORDER BY {y} DESC){}",
            and_filter(&format!("{y} IS NOT NULL"))
        ),
        ("min_by", [x, y]) => format!(
            "first_value({x} ORDER BY {y} ASC){}",
            and_filter(&format!("{y} IS NOT NULL"))
        ),
        ("map_agg", [k, v]) => {
            let only = and_filter(&format!("{k} IS NOT NULL"));
            format!("map(array_agg({k}){only}, array_agg({v}){only})")
        }
        ("histogram", [x]) => format!(
            "trino_histogram(array_agg({x}){})",
            and_filter(&format!("{x} IS NOT NULL"))
        ),
        // Trino's listagg needs WITHIN GROUP, a varchar value and a string separator.
        ("listagg", [x, rest @ ..]) if rest.len() <= 1 && !f.within_group.is_empty() => {
            let sep = rest.first().cloned().unwrap_or_else(|| "''".into());
            if !sep.starts_with('\'') {
                return;
            }
            let order: Vec<String> = f.within_group.iter().map(|o| o.to_string()).collect();
            format!(
                "string_agg(trino_varchar({x}), {sep} ORDER BY {}){keep_filter}",
                order.join(", ")
            )
        }
        ("approx_percentile", [x, p])
            if p.trim_start().to_ascii_uppercase().starts_with("ARRAY[")
                || p.trim_start().starts_with('[') =>
        {
            let Some(Expr::Array(arr)) = arg_expr(l, 1) else {
                return;
            };
            let each: Vec<String> = arr
                .elem
                .iter()
                .map(|q| format!("approx_percentile_cont({x}, {q}){keep_filter}"))
                .collect();
            format!("[{}]", each.join(", "))
        }
        ("approx_percentile", [x, w, p]) => {
            format!("approx_percentile_cont_with_weight({x}, {w}, {p}){keep_filter}")
        }
        _ => return,
    };
    if let Ok(parsed) = Parser::new(&GenericDialect {})
        .try_with_sql(&text)
        .and_then(|mut p| p.parse_expr())
    {
        *e = Expr::Nested(Box::new(parsed));
    }
}

fn arg_expr(l: &datafusion::sql::sqlparser::ast::FunctionArgumentList, i: usize) -> Option<Expr> {
    match l.args.get(i)? {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => Some(x.clone()),
        _ => None,
    }
}

/// `trino_varchar(x)`: `x` when it is a string; anything else is refused (Trino does not
/// turn other types into text implicitly).
pub fn varchar_only() -> ScalarUDF {
    udf(
        "trino_varchar",
        |t| match t {
            [x] if super::udf::stringy(x) => Ok(vec![DataType::Utf8]),
            _ => plan_err!("expected a varchar value, not ({})", list(t)),
        },
        super::udf::utf8,
        |a, _, _| Ok(a[0].clone()),
    )
}

/// `trino_histogram(values)`: each distinct value with how often it occurs, as a map.
pub fn histogram() -> ScalarUDF {
    udf(
        "trino_histogram",
        |t| match t {
            [DataType::List(_)] | [DataType::Null] => Ok(t.to_vec()),
            _ => plan_err!("histogram takes values, not ({})", list(t)),
        },
        |t| {
            let key = match &t[0] {
                DataType::List(f) => f.data_type().clone(),
                _ => DataType::Null,
            };
            Ok(map_type(key))
        },
        histogram_kernel,
    )
}

fn map_type(key: DataType) -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("key", key, false),
                Field::new("value", DataType::Int64, true),
            ])),
            false,
        )),
        false,
    )
}

fn histogram_kernel(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let DataType::Map(entries, _) = map_type(match a[0].data_type() {
        DataType::List(f) => f.data_type().clone(),
        _ => DataType::Null,
    }) else {
        return plan_err!("histogram: map type");
    };
    let DataType::Struct(fields) = entries.data_type().clone() else {
        return plan_err!("histogram: entries type");
    };
    let key_type = fields[0].data_type().clone();
    let mut keys: Vec<ScalarValue> = Vec::new();
    let mut counts: Vec<i64> = Vec::new();
    let mut offsets = vec![0i32];
    let mut valid = Vec::with_capacity(rows);
    let l = (a[0].data_type() != &DataType::Null).then(|| a[0].as_list::<i32>());
    for r in 0..rows {
        let Some(l) = l.filter(|l| l.is_valid(r)) else {
            valid.push(false);
            offsets.push(keys.len() as i32);
            continue;
        };
        let values = l.value(r);
        let mut seen: Vec<(ScalarValue, i64)> = Vec::new();
        for i in 0..values.len() {
            let v = ScalarValue::try_from_array(&values, i)?;
            match seen.iter_mut().find(|(k, _)| *k == v) {
                Some((_, n)) => *n += 1,
                None => seen.push((v, 1)),
            }
        }
        for (k, n) in seen {
            keys.push(k);
            counts.push(n);
        }
        valid.push(true);
        offsets.push(keys.len() as i32);
    }
    let key_array = if keys.is_empty() {
        arrow::array::new_empty_array(&key_type)
    } else {
        ScalarValue::iter_to_array(keys)?
    };
    let entries_array = StructArray::try_new(
        fields,
        vec![key_array, Arc::new(Int64Array::from(counts))],
        None,
    )?;
    Ok(Arc::new(MapArray::try_new(
        entries,
        OffsetBuffer::new(offsets.into()),
        entries_array,
        Some(valid.into()),
        false,
    )?))
}
