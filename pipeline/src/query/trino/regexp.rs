//! Trino's regular-expression functions: `regexp_extract`, `regexp_extract_all`,
//! `regexp_replace` (every match; `$1`/`${name}` in the replacement, as Java's) and
//! `regexp_count`. Patterns are compiled once per distinct pattern in a batch.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, ListBuilder, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Int64Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::ScalarUDF;
use regex::Regex;

use super::udf::{arc, i64_arg, int64, integral, list, str_arg, stringy, udf, utf8, utf8_list};

pub fn functions() -> Vec<ScalarUDF> {
    vec![
        udf("regexp_extract", extract_args, utf8, regexp_extract),
        udf(
            "regexp_extract_all",
            extract_args,
            utf8_list,
            regexp_extract_all,
        ),
        udf(
            "regexp_replace",
            |t| super::udf::strings(t, 2, 3, "regexp_replace"),
            utf8,
            regexp_replace,
        ),
        udf(
            "regexp_count",
            |t| super::udf::strings(t, 2, 2, "regexp_count"),
            int64,
            regexp_count,
        ),
        udf(
            "regexp_split",
            |t| super::udf::strings(t, 2, 2, "regexp_split"),
            utf8_list,
            regexp_split,
        ),
        udf(
            "regexp_position",
            position_args,
            |_| Ok(DataType::Int32),
            regexp_position,
        ),
    ]
}

fn extract_args(t: &[DataType]) -> Result<Vec<DataType>> {
    match t {
        [s, p] if stringy(s) && stringy(p) => Ok(vec![DataType::Utf8; 2]),
        [s, p, g] if stringy(s) && stringy(p) && integral(g) => {
            Ok(vec![DataType::Utf8, DataType::Utf8, DataType::Int64])
        }
        _ => plan_err!(
            "regexp_extract takes (varchar, varchar [, bigint]), not ({})",
            list(t)
        ),
    }
}

/// Compiled patterns of one batch.
#[derive(Default)]
struct Patterns(HashMap<String, Regex>);

impl Patterns {
    fn get(&mut self, p: &str) -> Result<&Regex> {
        if !self.0.contains_key(p) {
            let re = match Regex::new(p) {
                Ok(r) => r,
                Err(e) => return exec_err!("invalid regular expression {p:?}: {e}"),
            };
            self.0.insert(p.to_string(), re);
        }
        Ok(&self.0[p])
    }
}

fn group_of(re: &Regex, g: i64) -> Result<usize> {
    if g < 0 || g as usize >= re.captures_len() {
        return exec_err!(
            "Pattern has {} groups. Cannot access group {g}",
            re.captures_len() - 1
        );
    }
    Ok(g as usize)
}

struct Args<'a> {
    s: &'a StringArray,
    p: &'a StringArray,
    g: Option<ArrayRef>,
}

fn args(a: &[ArrayRef]) -> Result<Args<'_>> {
    Ok(Args {
        s: str_arg(&a[0])?,
        p: str_arg(&a[1])?,
        g: a.get(2).map(i64_arg).transpose()?,
    })
}

impl Args<'_> {
    /// The row's text, pattern and group, or `None` if any is NULL.
    fn row(&self, r: usize) -> Option<(&str, &str, i64)> {
        let g = match &self.g {
            Some(g) if g.is_null(r) => return None,
            Some(g) => g.as_primitive::<Int64Type>().value(r),
            None => 0,
        };
        (self.s.is_valid(r) && self.p.is_valid(r)).then(|| (self.s.value(r), self.p.value(r), g))
    }
}

fn regexp_extract(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let a = args(a)?;
    let mut pats = Patterns::default();
    let mut out = StringBuilder::new();
    for r in 0..rows {
        let Some((s, p, g)) = a.row(r) else {
            out.append_null();
            continue;
        };
        let re = pats.get(p)?;
        let g = group_of(re, g)?;
        out.append_option(re.captures(s).and_then(|c| c.get(g)).map(|m| m.as_str()));
    }
    Ok(arc(out.finish()))
}

fn regexp_extract_all(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let a = args(a)?;
    let mut pats = Patterns::default();
    let mut out = ListBuilder::new(StringBuilder::new());
    for r in 0..rows {
        let Some((s, p, g)) = a.row(r) else {
            out.append_null();
            continue;
        };
        let re = pats.get(p)?;
        let g = group_of(re, g)?;
        for c in re.captures_iter(s) {
            out.values().append_option(c.get(g).map(|m| m.as_str()));
        }
        out.append(true);
    }
    Ok(arc(out.finish()))
}

/// A Java replacement string (`$1`, `${name}`, `\$`) in the regex crate's syntax
/// (`${1}`, `${name}`, `$$`).
fn java_replacement(re: &Regex, r: &str) -> Result<String> {
    let mut out = String::with_capacity(r.len());
    let mut it = r.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => return exec_err!("Illegal replacement sequence: trailing backslash"),
            },
            '$' => {
                if it.peek() == Some(&'{') {
                    it.next();
                    let name: String = it.by_ref().take_while(|c| *c != '}').collect();
                    if !re.capture_names().any(|n| n == Some(name.as_str())) {
                        return exec_err!("No group with name {{{name}}}");
                    }
                    out.push_str(&format!("${{{name}}}"));
                } else {
                    let mut digits = String::new();
                    while let Some(d) = it.peek().filter(|d| d.is_ascii_digit()) {
                        // Java takes the longest group number that exists.
                        let next = format!("{digits}{d}");
                        if !digits.is_empty()
                            && next.parse::<usize>().unwrap_or(usize::MAX) >= re.captures_len()
                        {
                            break;
                        }
                        digits = next;
                        it.next();
                    }
                    if digits.is_empty() {
                        return exec_err!("Illegal group reference");
                    }
                    if digits.parse::<usize>().unwrap_or(usize::MAX) >= re.captures_len() {
                        return exec_err!("No group {digits}");
                    }
                    out.push_str(&format!("${{{digits}}}"));
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

fn regexp_replace(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let s = str_arg(&a[0])?;
    let p = str_arg(&a[1])?;
    let with = a.get(2).map(str_arg).transpose()?;
    let mut pats = Patterns::default();
    let mut out = StringBuilder::new();
    for r in 0..rows {
        if s.is_null(r) || p.is_null(r) || with.is_some_and(|w| w.is_null(r)) {
            out.append_null();
            continue;
        }
        let re = pats.get(p.value(r))?;
        let w = match with {
            Some(w) => java_replacement(re, w.value(r))?,
            None => String::new(),
        };
        out.append_value(re.replace_all(s.value(r), w.as_str()));
    }
    Ok(arc(out.finish()))
}

fn regexp_count(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let a = args(a)?;
    let mut pats = Patterns::default();
    let mut out = Vec::with_capacity(rows);
    for r in 0..rows {
        out.push(match a.row(r) {
            Some((s, p, _)) => Some(pats.get(p)?.find_iter(s).count() as i64),
            None => None,
        });
    }
    Ok(arc(Int64Array::from(out)))
}

fn regexp_split(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let a = args(a)?;
    let mut pats = Patterns::default();
    let mut out = ListBuilder::new(StringBuilder::new());
    for r in 0..rows {
        let Some((s, p, _)) = a.row(r) else {
            out.append_null();
            continue;
        };
        for part in pats.get(p)?.split(s) {
            out.values().append_value(part);
        }
        out.append(true);
    }
    Ok(arc(out.finish()))
}

fn position_args(t: &[DataType]) -> Result<Vec<DataType>> {
    match t {
        [s, p, rest @ ..]
            if stringy(s) && stringy(p) && rest.len() <= 2 && rest.iter().all(integral) =>
        {
            let mut v = vec![DataType::Utf8, DataType::Utf8];
            v.extend(rest.iter().map(|_| DataType::Int64));
            Ok(v)
        }
        _ => plan_err!(
            "regexp_position takes (varchar, varchar [, bigint [, bigint]]), not ({})",
            list(t)
        ),
    }
}

/// The 1-based character position of the `occurrence`-th match at or after `start`; -1
/// when there is none.
fn regexp_position(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let (s, p) = (str_arg(&a[0])?, str_arg(&a[1])?);
    let start = a.get(2).map(i64_arg).transpose()?;
    let occurrence = a.get(3).map(i64_arg).transpose()?;
    let int = |x: &Option<ArrayRef>, r: usize, default: i64| -> Option<i64> {
        match x {
            None => Some(default),
            Some(x) if x.is_null(r) => None,
            Some(x) => Some(x.as_primitive::<Int64Type>().value(r)),
        }
    };
    let mut pats = Patterns::default();
    let mut out = Vec::with_capacity(rows);
    for r in 0..rows {
        let (Some(from), Some(nth)) = (int(&start, r, 1), int(&occurrence, r, 1)) else {
            out.push(None);
            continue;
        };
        if s.is_null(r) || p.is_null(r) {
            out.push(None);
            continue;
        }
        if from < 1 {
            return exec_err!("start position cannot be smaller than 1");
        }
        if nth < 1 {
            return exec_err!("occurrence cannot be smaller than 1");
        }
        let text = s.value(r);
        let chars = text.chars().count() as i64;
        if from > chars + 1 || (from > chars && !text.is_empty() && from != chars + 1) {
            out.push(Some(-1));
            continue;
        }
        let byte = text
            .char_indices()
            .nth((from - 1) as usize)
            .map_or(text.len(), |(i, _)| i);
        let re = pats.get(p.value(r))?;
        let found = re.find_iter(&text[byte..]).nth((nth - 1) as usize);
        out.push(Some(match found {
            Some(m) => text[..byte + m.start()].chars().count() as i32 + 1,
            None => -1,
        }));
    }
    Ok(arc(arrow::array::Int32Array::from(out)))
}
