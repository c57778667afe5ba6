//! `CAST(x AS JSON)`: a value as JSON text, as Trino writes it. Arrays are JSON arrays,
//! maps JSON objects with sorted keys, rows JSON objects (an anonymous row's fields have
//! empty names, as in Trino), doubles as Java prints them (`3.14`, `1.0E308`), NaN and
//! infinities as strings.

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::*;
use datafusion::common::config::ConfigOptions;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::ScalarUDF;

use super::udf::{arc, list, udf, utf8};

pub fn function() -> ScalarUDF {
    udf(
        "trino_to_json",
        |t| match t {
            [x] => Ok(vec![x.clone()]),
            _ => plan_err!("CAST AS JSON takes one value, not ({})", list(t)),
        },
        utf8,
        to_json,
    )
}

fn to_json(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let mut out = StringBuilder::new();
    let mut text = String::new();
    for r in 0..rows {
        if a[0].is_null(r) {
            out.append_null();
            continue;
        }
        text.clear();
        write(&a[0], r, &mut text)?;
        out.append_value(&text);
    }
    Ok(arc(out.finish()))
}

/// Java's `Double.toString`: plain between 10⁻³ and 10⁷, else `d.dddE±n`; shortest digits.
pub fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let a = v.abs();
    if (1e-3..1e7).contains(&a) {
        let s = format!("{v}");
        return if s.contains('.') { s } else { format!("{s}.0") };
    }
    let s = format!("{v:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let mantissa = if mantissa.contains('.') {
        mantissa.to_string()
    } else {
        format!("{mantissa}.0")
    };
    format!("{mantissa}E{exp}")
}

fn quote(s: &str, out: &mut String) {
    out.push_str(&serde_json::Value::String(s.to_string()).to_string());
}

fn write(a: &ArrayRef, i: usize, out: &mut String) -> Result<()> {
    if a.is_null(i) || a.data_type() == &DataType::Null {
        out.push_str("null");
        return Ok(());
    }
    let float = |v: f64, out: &mut String| {
        if v.is_finite() {
            out.push_str(&java_double(v));
        } else {
            quote(&java_double(v), out);
        }
    };
    match a.data_type() {
        DataType::Boolean => out.push_str(if a.as_boolean().value(i) {
            "true"
        } else {
            "false"
        }),
        DataType::Int8 => out.push_str(&a.as_primitive::<Int8Type>().value(i).to_string()),
        DataType::Int16 => out.push_str(&a.as_primitive::<Int16Type>().value(i).to_string()),
        DataType::Int32 => out.push_str(&a.as_primitive::<Int32Type>().value(i).to_string()),
        DataType::Int64 => out.push_str(&a.as_primitive::<Int64Type>().value(i).to_string()),
        DataType::Float64 => float(a.as_primitive::<Float64Type>().value(i), out),
        DataType::Float32 => {
            let v = a.as_primitive::<Float32Type>().value(i);
            float(v.to_string().parse().unwrap_or(v as f64), out)
        }
        DataType::Decimal128(_, s) => out.push_str(&Decimal128Type::format_decimal(
            a.as_primitive::<Decimal128Type>().value(i),
            38,
            *s,
        )),
        DataType::Utf8 => quote(a.as_string::<i32>().value(i), out),
        DataType::LargeUtf8 => quote(a.as_string::<i64>().value(i), out),
        DataType::Utf8View => quote(a.as_string_view().value(i), out),
        DataType::List(_) => items(&a.as_list::<i32>().value(i), out)?,
        DataType::LargeList(_) => items(&a.as_list::<i64>().value(i), out)?,
        DataType::Struct(fields) => {
            let s = a.as_struct();
            out.push('{');
            for (n, (f, c)) in fields.iter().zip(s.columns()).enumerate() {
                if n > 0 {
                    out.push(',');
                }
                let anonymous = f.name().starts_with('c')
                    && f.name().len() > 1
                    && f.name()[1..].chars().all(|c| c.is_ascii_digit());
                quote(if anonymous { "" } else { f.name() }, out);
                out.push(':');
                write(c, i, out)?;
            }
            out.push('}');
        }
        DataType::Map(..) => {
            let m = a.as_map().value(i);
            let (k, v) = (m.column(0), m.column(1));
            let mut entries = Vec::with_capacity(m.len());
            for j in 0..m.len() {
                let mut key = String::new();
                match k.data_type() {
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                        let mut q = String::new();
                        write(k, j, &mut q)?;
                        key = q;
                    }
                    _ => {
                        write(k, j, &mut key)?;
                        key = serde_json::Value::String(key).to_string();
                    }
                }
                let mut value = String::new();
                write(v, j, &mut value)?;
                entries.push((key, value));
            }
            entries.sort();
            out.push('{');
            for (n, (k, v)) in entries.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(k);
                out.push(':');
                out.push_str(v);
            }
            out.push('}');
        }
        DataType::Date32 | DataType::Timestamp(..) => {
            let f = arrow::util::display::ArrayFormatter::try_new(
                a.as_ref(),
                &arrow::util::display::FormatOptions::default(),
            )?;
            quote(&f.value(i).to_string().replace('T', " "), out);
        }
        other => return exec_err!("CAST({other} AS JSON) is not supported"),
    }
    Ok(())
}

fn items(a: &ArrayRef, out: &mut String) -> Result<()> {
    out.push('[');
    for j in 0..a.len() {
        if j > 0 {
            out.push(',');
        }
        write(a, j, out)?;
    }
    out.push(']');
    Ok(())
}
