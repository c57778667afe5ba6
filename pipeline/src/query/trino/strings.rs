//! Trino's string functions where DataFusion's differ: lengths and positions are BIGINT,
//! `substr` counts a negative start from the end, `split_part` is NULL past the last part,
//! `split` returns an array, trims strip whitespace only, `replace` with an empty search
//! string inserts between characters, and padding needs a non-empty pad.

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, ListBuilder, StringBuilder};
use arrow::datatypes::{DataType, Int64Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::ScalarUDF;

use super::udf::{
    arc, i64_arg, int64, integral, list, map_str, str_arg, stringy, udf, utf8, utf8_list,
};

pub fn functions() -> Vec<ScalarUDF> {
    vec![
        udf("length", |t| one_string(t, "length"), int64, length),
        udf("strpos", |t| strings2(t, "strpos"), int64, strpos),
        udf("substr", substr_args, utf8, substr),
        udf("substring", substr_args, utf8, substr),
        udf("split_part", split_part_args, utf8, split_part),
        udf("split", split_args, utf8_list, split),
        udf("ltrim", |t| trim_args(t, "ltrim"), utf8, ltrim),
        udf("rtrim", |t| trim_args(t, "rtrim"), utf8, rtrim),
        udf("btrim", |t| trim_args(t, "trim"), utf8, btrim),
        udf("replace", replace_args, utf8, replace),
        udf("lpad", |t| pad_args(t, "lpad"), utf8, lpad),
        udf(
            "hamming_distance",
            |t| strings2(t, "hamming_distance"),
            int64,
            hamming,
        ),
        udf("rpad", |t| pad_args(t, "rpad"), utf8, rpad),
    ]
}

fn one_string(t: &[DataType], name: &str) -> Result<Vec<DataType>> {
    super::udf::strings(t, 1, 1, name)
}
fn strings2(t: &[DataType], name: &str) -> Result<Vec<DataType>> {
    super::udf::strings(t, 2, 2, name)
}

fn length(a: &[ArrayRef], _: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let s = str_arg(&a[0])?;
    Ok(arc(s
        .iter()
        .map(|v| v.map(|v| v.chars().count() as i64))
        .collect::<Int64Array>()))
}

fn strpos(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let (s, sub) = (str_arg(&a[0])?, str_arg(&a[1])?);
    Ok(arc((0..rows)
        .map(|r| {
            (s.is_valid(r) && sub.is_valid(r)).then(|| {
                let (s, sub) = (s.value(r), sub.value(r));
                s.find(sub).map_or(0, |i| s[..i].chars().count() as i64 + 1)
            })
        })
        .collect::<Int64Array>()))
}

fn substr_args(t: &[DataType]) -> Result<Vec<DataType>> {
    match t {
        [s, a] if stringy(s) && integral(a) => Ok(vec![DataType::Utf8, DataType::Int64]),
        [s, a, b] if stringy(s) && integral(a) && integral(b) => {
            Ok(vec![DataType::Utf8, DataType::Int64, DataType::Int64])
        }
        _ => plan_err!(
            "substr takes (varchar, bigint [, bigint]), not ({})",
            list(t)
        ),
    }
}

/// Trino's substr: 1-based in characters; a negative start counts from the end; start 0 or
/// past either end gives ''.
fn substr(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    map_str(a, rows, |s, n| {
        let chars: Vec<char> = s[0].chars().collect();
        let len = chars.len() as i64;
        let mut start = n[0];
        if start == 0 || start.abs() > len {
            return Ok(Some(String::new()));
        }
        if start < 0 {
            start += len + 1;
        }
        let from = (start - 1) as usize;
        let take = match n.get(1) {
            Some(l) if *l <= 0 => return Ok(Some(String::new())),
            Some(l) => (*l).min(len - from as i64) as usize,
            None => chars.len() - from,
        };
        Ok(Some(chars[from..from + take].iter().collect()))
    })
}

fn split_part_args(t: &[DataType]) -> Result<Vec<DataType>> {
    match t {
        [s, d, i] if stringy(s) && stringy(d) && integral(i) => {
            Ok(vec![DataType::Utf8, DataType::Utf8, DataType::Int64])
        }
        _ => plan_err!(
            "split_part takes (varchar, varchar, bigint), not ({})",
            list(t)
        ),
    }
}

fn split_part(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    map_str(a, rows, |s, n| {
        let index = n[0];
        if index <= 0 {
            return exec_err!("Index must be greater than zero");
        }
        let (text, delim) = (s[0], s[1]);
        let part = if delim.is_empty() {
            // Trino: an empty delimiter splits into characters.
            text.chars().nth(index as usize - 1).map(String::from)
        } else {
            text.split(delim)
                .nth(index as usize - 1)
                .map(str::to_string)
        };
        Ok(part)
    })
}

fn split_args(t: &[DataType]) -> Result<Vec<DataType>> {
    match t {
        [s, d] if stringy(s) && stringy(d) => Ok(vec![DataType::Utf8, DataType::Utf8]),
        [s, d, l] if stringy(s) && stringy(d) && integral(l) => {
            Ok(vec![DataType::Utf8, DataType::Utf8, DataType::Int64])
        }
        _ => plan_err!(
            "split takes (varchar, varchar [, bigint]), not ({})",
            list(t)
        ),
    }
}

fn split(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let (s, d) = (str_arg(&a[0])?, str_arg(&a[1])?);
    let limit = a.get(2).map(i64_arg).transpose()?;
    let limit = limit.as_ref().map(|l| l.as_primitive::<Int64Type>());
    let mut out = ListBuilder::new(StringBuilder::new());
    for r in 0..rows {
        if s.is_null(r) || d.is_null(r) || limit.is_some_and(|l| l.is_null(r)) {
            out.append_null();
            continue;
        }
        let (text, delim) = (s.value(r), d.value(r));
        if delim.is_empty() {
            return exec_err!("The delimiter may not be the empty string");
        }
        let parts: Vec<&str> = match limit.map(|l| l.value(r)) {
            Some(l) if l <= 0 => return exec_err!("Limit must be positive"),
            Some(l) if l > i32::MAX as i64 => return exec_err!("Limit is too large"),
            Some(l) => text.splitn(l as usize, delim).collect(),
            None => text.split(delim).collect(),
        };
        for p in parts {
            out.values().append_value(p);
        }
        out.append(true);
    }
    Ok(arc(out.finish()))
}

fn trim_args(t: &[DataType], name: &str) -> Result<Vec<DataType>> {
    super::udf::strings(t, 1, 2, name)
}

fn trim_with(a: &[ArrayRef], rows: usize, left: bool, right: bool) -> Result<ArrayRef> {
    map_str(a, rows, |s, _| {
        let (mut text, chars): (&str, Option<Vec<char>>) =
            (s[0], s.get(1).map(|c| c.chars().collect()));
        let strip = |c: char| match &chars {
            Some(set) => set.contains(&c),
            None => c.is_whitespace(),
        };
        if left {
            text = text.trim_start_matches(strip);
        }
        if right {
            text = text.trim_end_matches(strip);
        }
        Ok(Some(text.to_string()))
    })
}

fn ltrim(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    trim_with(a, rows, true, false)
}
fn rtrim(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    trim_with(a, rows, false, true)
}
fn btrim(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    trim_with(a, rows, true, true)
}

fn replace_args(t: &[DataType]) -> Result<Vec<DataType>> {
    super::udf::strings(t, 2, 3, "replace")
}

/// `replace(s, search [, with])`: every occurrence; an empty search string matches
/// between every two characters and at both ends (Trino's, as Java's String.replace).
fn replace(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    map_str(a, rows, |s, _| {
        let with = s.get(2).copied().unwrap_or("");
        if s[1].is_empty() {
            let mut out = String::with_capacity(s[0].len() * (with.len() + 1) + with.len());
            out.push_str(with);
            for c in s[0].chars() {
                out.push(c);
                out.push_str(with);
            }
            return Ok(Some(out));
        }
        Ok(Some(s[0].replace(s[1], with)))
    })
}

fn pad_args(t: &[DataType], name: &str) -> Result<Vec<DataType>> {
    match t {
        [s, n, p] if stringy(s) && integral(n) && stringy(p) => {
            Ok(vec![DataType::Utf8, DataType::Int64, DataType::Utf8])
        }
        _ => plan_err!("{name} takes (varchar, bigint, varchar), not ({})", list(t)),
    }
}

fn pad(a: &[ArrayRef], rows: usize, left: bool) -> Result<ArrayRef> {
    map_str(a, rows, |s, n| {
        let (text, padding, size) = (s[0], s[1], n[0]);
        if size < 0 {
            return exec_err!("Target length must be in the range [0..{}]", i32::MAX);
        }
        if padding.is_empty() {
            return exec_err!("Padding string must not be empty");
        }
        let chars: Vec<char> = text.chars().collect();
        let size = size as usize;
        if chars.len() >= size {
            return Ok(Some(chars[..size].iter().collect()));
        }
        let fill: String = padding.chars().cycle().take(size - chars.len()).collect();
        Ok(Some(if left {
            fill + text
        } else {
            text.to_string() + &fill
        }))
    })
}

fn lpad(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    pad(a, rows, true)
}
fn rpad(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    pad(a, rows, false)
}

fn hamming(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let (x, y) = (str_arg(&a[0])?, str_arg(&a[1])?);
    let mut out = Vec::with_capacity(rows);
    for r in 0..rows {
        if x.is_null(r) || y.is_null(r) {
            out.push(None);
            continue;
        }
        let (p, q): (Vec<char>, Vec<char>) =
            (x.value(r).chars().collect(), y.value(r).chars().collect());
        if p.len() != q.len() {
            return exec_err!(
                "The input strings to hamming_distance function must have the same length"
            );
        }
        out.push(Some(p.iter().zip(&q).filter(|(a, b)| a != b).count() as i64));
    }
    Ok(arc(Int64Array::from(out)))
}

/// `to_base`, `from_base` (radix 2 to 36) and `codepoint` (of a one-character string).
pub fn radix() -> Vec<ScalarUDF> {
    vec![
        udf("to_base", base_args, utf8, to_base),
        udf(
            "from_base",
            |t| match t {
                [s, r] if stringy(s) && integral(r) => Ok(vec![DataType::Utf8, DataType::Int64]),
                _ => plan_err!("from_base takes (varchar, bigint), not ({})", list(t)),
            },
            int64,
            from_base,
        ),
        udf(
            "codepoint",
            |t| one_string(t, "codepoint"),
            |_| Ok(DataType::Int32),
            codepoint,
        ),
    ]
}

fn base_args(t: &[DataType]) -> Result<Vec<DataType>> {
    match t {
        [n, r] if integral(n) && integral(r) => Ok(vec![DataType::Int64, DataType::Int64]),
        _ => plan_err!("to_base takes (bigint, bigint), not ({})", list(t)),
    }
}

fn radix_of(r: i64) -> Result<u32> {
    if !(2..=36).contains(&r) {
        return exec_err!("Radix must be between 2 and 36");
    }
    Ok(r as u32)
}

fn to_base(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let (n, r) = (i64_arg(&a[0])?, i64_arg(&a[1])?);
    let (n, r) = (n.as_primitive::<Int64Type>(), r.as_primitive::<Int64Type>());
    let mut out = StringBuilder::new();
    for i in 0..rows {
        if n.is_null(i) || r.is_null(i) {
            out.append_null();
            continue;
        }
        let radix = radix_of(r.value(i))?;
        let v = n.value(i);
        let mut digits = Vec::new();
        let mut m = v.unsigned_abs();
        loop {
            digits.push(std::char::from_digit((m % radix as u64) as u32, radix).unwrap_or('?'));
            m /= radix as u64;
            if m == 0 {
                break;
            }
        }
        if v < 0 {
            digits.push('-');
        }
        out.append_value(digits.iter().rev().collect::<String>());
    }
    Ok(arc(out.finish()))
}

fn from_base(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let s = str_arg(&a[0])?;
    let r = i64_arg(&a[1])?;
    let r = r.as_primitive::<Int64Type>();
    let mut out = Vec::with_capacity(rows);
    for i in 0..rows {
        if s.is_null(i) || r.is_null(i) {
            out.push(None);
            continue;
        }
        let radix = radix_of(r.value(i))?;
        match i64::from_str_radix(s.value(i), radix) {
            Ok(v) => out.push(Some(v)),
            Err(_) => return exec_err!("Not a valid base-{radix} number: {}", s.value(i)),
        }
    }
    Ok(arc(Int64Array::from(out)))
}

fn codepoint(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let s = str_arg(&a[0])?;
    let mut out = Vec::with_capacity(rows);
    for i in 0..rows {
        if s.is_null(i) {
            out.push(None);
            continue;
        }
        let mut chars = s.value(i).chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => out.push(Some(c as i32)),
            _ => return exec_err!("Input string must be a single character string"),
        }
    }
    Ok(arc(arrow::array::Int32Array::from(out)))
}
