//! Trino's JSON functions over JSON text (Trino's JSON type is carried as VARCHAR holding
//! canonical JSON): `json_parse`, `json_format`, `json_extract`, `json_extract_scalar`,
//! `json_array_length`, `json_array_get`, `json_array_contains`, `json_size`,
//! `is_json_scalar`. Paths are Trino's simple JSONPath: `$`, `.key`, `["key"]`, `[n]`.

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::ScalarUDF;
use serde_json::Value;

use super::udf::{arc, i64_arg, int64, integral, list, str_arg, stringy, udf, utf8};

pub fn functions() -> Vec<ScalarUDF> {
    vec![
        udf(
            "json_parse",
            |t| super::udf::strings(t, 1, 1, "json_parse"),
            utf8,
            json_parse,
        ),
        udf(
            "json_format",
            |t| super::udf::strings(t, 1, 1, "json_format"),
            utf8,
            json_parse,
        ),
        udf(
            "json_extract",
            |t| super::udf::strings(t, 2, 2, "json_extract"),
            utf8,
            json_extract,
        ),
        udf(
            "json_extract_scalar",
            |t| super::udf::strings(t, 2, 2, "json_extract_scalar"),
            utf8,
            json_extract_scalar,
        ),
        udf(
            "json_size",
            |t| super::udf::strings(t, 2, 2, "json_size"),
            int64,
            json_size,
        ),
        udf(
            "json_array_length",
            |t| super::udf::strings(t, 1, 1, "json_array_length"),
            int64,
            json_array_length,
        ),
        udf("json_array_get", array_get_args, utf8, json_array_get),
        udf(
            "json_array_contains",
            contains_args,
            boolean,
            json_array_contains,
        ),
        udf(
            "is_json_scalar",
            |t| super::udf::strings(t, 1, 1, "is_json_scalar"),
            boolean,
            is_json_scalar,
        ),
    ]
}

fn boolean(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::Boolean)
}

fn parse(text: &str) -> Result<Value> {
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(e) => exec_err!("Cannot convert value to JSON: '{text}' ({e})"),
    }
}

/// JSON text, or NULL where the text is not JSON (Trino's extractors answer NULL there).
fn lenient(text: &str) -> Option<Value> {
    serde_json::from_str(text).ok()
}

fn canonical(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

enum Step {
    Key(String),
    Index(usize),
}

fn path(p: &str) -> Result<Vec<Step>> {
    let bad = || exec_err!("Invalid JSON path: '{p}'");
    let Some(mut rest) = p.trim().strip_prefix('$') else {
        return bad();
    };
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return bad();
            }
            steps.push(Step::Key(r[..end].to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(close) = r.find(']') else {
                return bad();
            };
            let inner = r[..close].trim();
            if let Some(q) = inner
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
            {
                steps.push(Step::Key(q.to_string()));
            } else if let Ok(i) = inner.parse::<usize>() {
                steps.push(Step::Index(i));
            } else {
                return bad();
            }
            rest = &r[close + 1..];
        } else {
            return bad();
        }
    }
    Ok(steps)
}

fn walk<'a>(mut v: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    for s in steps {
        v = match (s, v) {
            (Step::Key(k), Value::Object(m)) => m.get(k)?,
            (Step::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

/// A JSON text (and a path, when the function takes one) per row (`udf::map_str`).
fn map_json(
    a: &[ArrayRef],
    rows: usize,
    f: impl Fn(&str, Option<&str>) -> Result<Option<String>>,
) -> Result<ArrayRef> {
    super::udf::map_str(a, rows, |s, _| f(s[0], s.get(1).copied()))
}

fn json_parse(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    map_json(a, rows, |s, _| Ok(Some(canonical(&parse(s)?))))
}

fn json_extract(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    map_json(a, rows, |s, p| {
        let steps = path(p.unwrap_or("$"))?;
        Ok(lenient(s).and_then(|v| walk(&v, &steps).map(canonical)))
    })
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn json_extract_scalar(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    map_json(a, rows, |s, p| {
        let steps = path(p.unwrap_or("$"))?;
        Ok(lenient(s).and_then(|v| walk(&v, &steps).and_then(scalar_text)))
    })
}

fn json_size(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let (s, p) = (str_arg(&a[0])?, str_arg(&a[1])?);
    let mut out = Vec::with_capacity(rows);
    for r in 0..rows {
        if s.is_null(r) || p.is_null(r) {
            out.push(None);
            continue;
        }
        let steps = path(p.value(r))?;
        out.push(lenient(s.value(r)).and_then(|v| {
            walk(&v, &steps).map(|v| match v {
                Value::Array(a) => a.len() as i64,
                Value::Object(m) => m.len() as i64,
                _ => 0,
            })
        }));
    }
    Ok(arc(Int64Array::from(out)))
}

fn json_array_length(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let s = str_arg(&a[0])?;
    Ok(arc((0..rows)
        .map(
            |r| match s.is_valid(r).then(|| lenient(s.value(r))).flatten() {
                Some(Value::Array(a)) => Some(a.len() as i64),
                _ => None,
            },
        )
        .collect::<Int64Array>()))
}

fn array_get_args(t: &[DataType]) -> Result<Vec<DataType>> {
    match t {
        [s, i] if stringy(s) && integral(i) => Ok(vec![DataType::Utf8, DataType::Int64]),
        _ => plan_err!("json_array_get takes (json, bigint), not ({})", list(t)),
    }
}

fn json_array_get(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let s = str_arg(&a[0])?;
    let i = i64_arg(&a[1])?;
    let i = arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(&i);
    let mut out = StringBuilder::new();
    for r in 0..rows {
        let v = match (
            s.is_valid(r).then(|| lenient(s.value(r))).flatten(),
            i.is_valid(r),
        ) {
            (Some(Value::Array(items)), true) => {
                let k = i.value(r);
                let at = if k < 0 { items.len() as i64 + k } else { k };
                usize::try_from(at)
                    .ok()
                    .and_then(|at| items.get(at))
                    .filter(|v| !v.is_null())
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => canonical(other),
                    })
            }
            _ => None,
        };
        out.append_option(v);
    }
    Ok(arc(out.finish()))
}

fn contains_args(t: &[DataType]) -> Result<Vec<DataType>> {
    match t {
        [s, DataType::Boolean] if stringy(s) => Ok(vec![DataType::Utf8, DataType::Boolean]),
        [s, n] if stringy(s) && n.is_integer() => Ok(vec![DataType::Utf8, DataType::Int64]),
        [s, n] if stringy(s) && (n.is_floating() || matches!(n, DataType::Decimal128(..))) => {
            Ok(vec![DataType::Utf8, DataType::Float64])
        }
        [s, v] if stringy(s) && stringy(v) => Ok(vec![DataType::Utf8, DataType::Utf8]),
        _ => plan_err!(
            "json_array_contains takes (json, boolean|bigint|double|varchar), not ({})",
            list(t)
        ),
    }
}

fn json_array_contains(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let s = str_arg(&a[0])?;
    let needle = &a[1];
    let mut out = Vec::with_capacity(rows);
    for r in 0..rows {
        if s.is_null(r) || needle.is_null(r) {
            out.push(None);
            continue;
        }
        let want = scalar_json(needle, r);
        out.push(match lenient(s.value(r)) {
            Some(Value::Array(items)) => Some(items.iter().any(|v| json_eq(v, &want))),
            _ => None,
        });
    }
    Ok(arc(BooleanArray::from(out)))
}

/// Row `r` of a boolean, integer, double or string array as a JSON value.
fn scalar_json(a: &ArrayRef, r: usize) -> Value {
    use arrow::array::AsArray;
    use arrow::datatypes::{Float64Type, Int64Type};
    match a.data_type() {
        DataType::Boolean => Value::Bool(a.as_boolean().value(r)),
        DataType::Int64 => Value::from(a.as_primitive::<Int64Type>().value(r)),
        DataType::Float64 => Value::from(a.as_primitive::<Float64Type>().value(r)),
        _ => Value::String(a.as_string::<i32>().value(r).to_string()),
    }
}

fn json_eq(v: &Value, want: &Value) -> bool {
    match (v, want) {
        (Value::Number(a), Value::Number(b)) if b.is_f64() => {
            a.as_f64() == b.as_f64() && a.is_f64()
        }
        (Value::Number(a), Value::Number(b)) => a.as_i64().is_some() && a.as_i64() == b.as_i64(),
        _ => v == want,
    }
}

fn is_json_scalar(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let s = str_arg(&a[0])?;
    let mut out = Vec::with_capacity(rows);
    for r in 0..rows {
        out.push(match s.is_valid(r) {
            false => None,
            true => Some(!matches!(
                parse(s.value(r))?,
                Value::Array(_) | Value::Object(_)
            )),
        });
    }
    Ok(arc(BooleanArray::from(out)))
}
