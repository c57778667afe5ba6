//! Trino's `format(pattern, args…)`: Java's `String.format` over SQL values. Supported:
//! `%s %S %b %B %d %x %X %o %f %e %E %c %n %%`, the flags `- 0 + space , ( #`, widths,
//! precisions, argument indexes (`%2$s`, `%<s`), and the dates `%tF %tT %tY %tm %td %te
//! %tA %tB %tr`. Anything else, or a value of the wrong kind, fails as Java would.

use arrow::array::{ArrayRef, StringBuilder};
use arrow::datatypes::DataType;
use arrow::datatypes::DecimalType;
use chrono::{NaiveDateTime, Timelike};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::ScalarUDF;

use super::udf::{arc, stringy, udf, utf8};

pub fn function() -> ScalarUDF {
    udf("format", args, utf8, format_kernel)
}

fn args(t: &[DataType]) -> Result<Vec<DataType>> {
    let Some((first, rest)) = t.split_first() else {
        return plan_err!("format takes a pattern and values");
    };
    if !stringy(first) {
        return plan_err!("Type of first argument to format() must be VARCHAR (actual: {first})");
    }
    let mut out = vec![DataType::Utf8];
    for r in rest {
        out.push(match r {
            t if stringy(t) => DataType::Utf8,
            DataType::List(_)
            | DataType::LargeList(_)
            | DataType::Map(..)
            | DataType::Struct(_) => {
                return plan_err!("Type not supported for formatting: {r}");
            }
            other => other.clone(),
        });
    }
    Ok(out)
}

fn format_kernel(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let mut out = StringBuilder::new();
    for r in 0..rows {
        let pattern = ScalarValue::try_from_array(&a[0], r)?;
        let ScalarValue::Utf8(Some(pattern)) = pattern else {
            out.append_null();
            continue;
        };
        let values = a[1..]
            .iter()
            .map(|c| ScalarValue::try_from_array(c, r))
            .collect::<Result<Vec<_>>>()?;
        match format(&pattern, &values) {
            Ok(s) => out.append_value(s),
            Err(why) => return exec_err!("Invalid format string: {pattern} ({why})"),
        }
    }
    Ok(arc(out.finish()))
}

#[derive(Default)]
struct Spec {
    index: Option<usize>,
    previous: bool,
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    group: bool,
    paren: bool,
    alt: bool,
    width: Option<usize>,
    precision: Option<usize>,
    time: bool,
    conv: char,
}

fn parse_spec(it: &mut std::iter::Peekable<std::str::Chars>) -> Result<Spec, String> {
    let mut s = Spec::default();
    let mut digits = String::new();
    // argument index: digits followed by '$'
    let rest: String = it.clone().collect();
    if let Some(end) = rest.find('$')
        && end > 0
        && rest[..end].chars().all(|c| c.is_ascii_digit())
    {
        s.index = rest[..end].parse().ok();
        for _ in 0..=end {
            it.next();
        }
    }
    if it.peek() == Some(&'<') {
        s.previous = true;
        it.next();
    }
    while let Some(&c) = it.peek() {
        let flag = match c {
            '-' => &mut s.left,
            '0' => &mut s.zero,
            '+' => &mut s.plus,
            ' ' => &mut s.space,
            ',' => &mut s.group,
            '(' => &mut s.paren,
            '#' => &mut s.alt,
            _ => break,
        };
        if *flag {
            return Err(format!("DuplicateFormatFlagsException: Flags = '{c}'"));
        }
        *flag = true;
        it.next();
    }
    while let Some(&c) = it.peek().filter(|c| c.is_ascii_digit()) {
        digits.push(c);
        it.next();
    }
    s.width = digits.parse().ok();
    if it.peek() == Some(&'.') {
        it.next();
        let mut p = String::new();
        while let Some(&c) = it.peek().filter(|c| c.is_ascii_digit()) {
            p.push(c);
            it.next();
        }
        s.precision = Some(
            p.parse()
                .map_err(|_| "IllegalFormatPrecision".to_string())?,
        );
    }
    let Some(c) = it.next() else {
        return Err("UnknownFormatConversion: '%'".into());
    };
    if c == 't' || c == 'T' {
        s.time = true;
        s.conv = it.next().ok_or("UnknownFormatConversion: 't'")?;
    } else {
        s.conv = c;
    }
    if (s.left || s.zero) && s.width.is_none() {
        return Err(format!(
            "MissingFormatWidth: %{}{}",
            if s.left { "-" } else { "0" },
            s.conv
        ));
    }
    if s.left && s.zero {
        return Err("IllegalFormatFlags: Flags = '-0'".into());
    }
    Ok(s)
}

/// Java's text of a value for `%s`.
fn text(v: &ScalarValue) -> String {
    use ScalarValue as S;
    match v {
        v if v.is_null() => "null".into(),
        S::Float64(Some(x)) => super::tojson::java_double(*x),
        S::Float32(Some(x)) => {
            super::tojson::java_double(x.to_string().parse().unwrap_or(*x as f64))
        }
        S::TimestampMicrosecond(..)
        | S::TimestampMillisecond(..)
        | S::TimestampNanosecond(..)
        | S::TimestampSecond(..) => match date_time(v) {
            Some(t) => {
                let base = t.format("%Y-%m-%dT%H:%M").to_string();
                let (sec, nanos) = (t.second(), t.nanosecond());
                if sec == 0 && nanos == 0 {
                    base
                } else if nanos == 0 {
                    format!("{base}:{sec:02}")
                } else {
                    format!("{base}:{}", t.format("%S%.f"))
                }
            }
            None => v.to_string(),
        },
        other => other.to_string(),
    }
}

fn date_time(v: &ScalarValue) -> Option<NaiveDateTime> {
    use ScalarValue as S;
    match v {
        S::Date32(Some(d)) => {
            arrow::datatypes::Date32Type::to_naive_date_opt(*d).and_then(|d| d.and_hms_opt(0, 0, 0))
        }
        S::TimestampMicrosecond(Some(us), _) => {
            chrono::DateTime::from_timestamp_micros(*us).map(|t| t.naive_utc())
        }
        S::TimestampMillisecond(Some(ms), _) => {
            chrono::DateTime::from_timestamp_millis(*ms).map(|t| t.naive_utc())
        }
        S::TimestampNanosecond(Some(ns), _) => {
            Some(chrono::DateTime::from_timestamp_nanos(*ns).naive_utc())
        }
        S::TimestampSecond(Some(s), _) => {
            chrono::DateTime::from_timestamp(*s, 0).map(|t| t.naive_utc())
        }
        _ => None,
    }
}

fn integer(v: &ScalarValue) -> Option<i128> {
    use ScalarValue as S;
    match v {
        S::Int8(Some(x)) => Some(*x as i128),
        S::Int16(Some(x)) => Some(*x as i128),
        S::Int32(Some(x)) => Some(*x as i128),
        S::Int64(Some(x)) => Some(*x as i128),
        _ => None,
    }
}

/// A number's plain decimal digits (`-12.5`), for `%f`: exact for DECIMAL and integers,
/// the shortest round-trip text for a DOUBLE (as Java formats it).
fn decimal_text(v: &ScalarValue) -> Option<String> {
    use ScalarValue as S;
    match v {
        S::Float64(Some(x)) if x.is_finite() => Some(plain(&format!("{x:e}"))),
        S::Float32(Some(x)) if x.is_finite() => Some(plain(&format!("{x:e}"))),
        S::Decimal128(Some(x), _, s) => {
            Some(arrow::datatypes::Decimal128Type::format_decimal(*x, 38, *s))
        }
        v => integer(v).map(|i| i.to_string()),
    }
}

/// `1.25e2` → `125`, `-3e-2` → `-0.03`.
fn plain(sci: &str) -> String {
    let (m, e) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i64 = e.parse().unwrap_or(0);
    let neg = m.starts_with('-');
    let m = m.trim_start_matches('-');
    let (int, frac) = m.split_once('.').unwrap_or((m, ""));
    let digits = format!("{int}{frac}");
    let point = int.len() as i64 + exp;
    let s = if point <= 0 {
        format!("0.{}{}", "0".repeat((-point) as usize), digits)
    } else if point as usize >= digits.len() {
        format!("{}{}", digits, "0".repeat(point as usize - digits.len()))
    } else {
        format!(
            "{}.{}",
            &digits[..point as usize],
            &digits[point as usize..]
        )
    };
    if neg { format!("-{s}") } else { s }
}

/// A plain decimal rounded half up to `places` fractional digits.
fn round_half_up(d: &str, places: usize) -> String {
    let neg = d.starts_with('-');
    let d = d.trim_start_matches('-');
    let (int, frac) = d.split_once('.').unwrap_or((d, ""));
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
    let keep = int.len() + places;
    let mut frac_len = frac.len();
    if frac_len > places {
        let round_up = digits[keep] >= 5;
        digits.truncate(keep);
        frac_len = places;
        if round_up {
            let mut i = digits.len();
            loop {
                if i == 0 {
                    digits.insert(0, 1);
                    break;
                }
                i -= 1;
                if digits[i] == 9 {
                    digits[i] = 0;
                } else {
                    digits[i] += 1;
                    break;
                }
            }
        }
    }
    while frac_len < places {
        digits.push(0);
        frac_len += 1;
    }
    let s: String = digits.iter().map(|d| (b'0' + d) as char).collect();
    let (i, f) = s.split_at(s.len() - frac_len);
    let i = if i.is_empty() { "0" } else { i };
    let body = if f.is_empty() {
        i.to_string()
    } else {
        format!("{i}.{f}")
    };
    let zero = body.chars().all(|c| c == '0' || c == '.');
    if neg && !zero {
        format!("-{body}")
    } else {
        body
    }
}

fn group(int: &str) -> String {
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Sign, grouping and padding of a number's digits.
fn number(s: &Spec, digits: &str) -> String {
    let neg = digits.starts_with('-');
    let body = digits.trim_start_matches('-');
    let body = if s.group {
        let (i, f) = body
            .split_once('.')
            .map_or((body, None), |(i, f)| (i, Some(f)));
        match f {
            Some(f) => format!("{}.{f}", group(i)),
            None => group(i),
        }
    } else {
        body.to_string()
    };
    let (pre, post) = match (neg, s.paren, s.plus, s.space) {
        (true, true, _, _) => ("(", ")"),
        (true, false, _, _) => ("-", ""),
        (false, _, true, _) => ("+", ""),
        (false, _, _, true) => (" ", ""),
        _ => ("", ""),
    };
    let len = pre.len() + body.len() + post.len();
    match s.width {
        Some(w) if s.zero && w > len => format!("{pre}{}{body}{post}", "0".repeat(w - len)),
        _ => pad(s, &format!("{pre}{body}{post}")),
    }
}

fn pad(s: &Spec, text: &str) -> String {
    let n = text.chars().count();
    match s.width {
        Some(w) if w > n && s.left => format!("{text}{}", " ".repeat(w - n)),
        Some(w) if w > n => format!("{}{text}", " ".repeat(w - n)),
        _ => text.to_string(),
    }
}

fn format(pattern: &str, values: &[ScalarValue]) -> Result<String, String> {
    let mut out = String::new();
    let mut it = pattern.chars().peekable();
    let mut next = 0usize;
    let mut last: Option<usize> = None;
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let s = parse_spec(&mut it)?;
        match s.conv {
            '%' => {
                out.push_str(&pad(&s, "%"));
                continue;
            }
            'n' => {
                if s.width.is_some() {
                    return Err(format!("IllegalFormatWidth: {}", s.width.unwrap_or(0)));
                }
                out.push('\n');
                continue;
            }
            _ => {}
        }
        let i = if s.previous {
            last.ok_or("MissingFormatArgument: Format specifier '%<s'")?
        } else if let Some(n) = s.index {
            n.checked_sub(1).ok_or("IllegalFormatArgumentIndex")?
        } else {
            next += 1;
            next - 1
        };
        last = Some(i);
        let v = values
            .get(i)
            .ok_or_else(|| format!("MissingFormatArgument: Format specifier '%{}'", s.conv))?;
        let piece = if s.time {
            let t = date_time(v).ok_or("IllegalFormatConversion: not a date or time")?;
            let f = match s.conv {
                'F' => "%Y-%m-%d",
                'T' => "%H:%M:%S",
                'Y' => "%Y",
                'm' => "%m",
                'd' => "%d",
                'e' => "%-d",
                'A' => "%A",
                'B' => "%B",
                'r' => "%I:%M:%S %p",
                'H' => "%H",
                'M' => "%M",
                'S' => "%S",
                other => return Err(format!("UnknownFormatConversion: 't{other}'")),
            };
            pad(&s, &t.format(f).to_string())
        } else {
            match s.conv {
                's' | 'S' => {
                    if s.plus || s.space || s.zero || s.group || s.paren {
                        return Err(format!(
                            "FormatFlagsConversionMismatch: Conversion = {}",
                            s.conv
                        ));
                    }
                    let mut t = text(v);
                    if let Some(p) = s.precision {
                        t = t.chars().take(p).collect();
                    }
                    let t = pad(&s, &t);
                    if s.conv == 'S' { t.to_uppercase() } else { t }
                }
                'b' | 'B' => {
                    let t = match v {
                        ScalarValue::Boolean(Some(b)) => b.to_string(),
                        v if v.is_null() => "false".into(),
                        _ => "true".into(),
                    };
                    let t = pad(&s, &t);
                    if s.conv == 'B' { t.to_uppercase() } else { t }
                }
                'c' => match (v, integer(v)) {
                    (_, Some(cp)) => pad(
                        &s,
                        &char::from_u32(cp as u32)
                            .ok_or("IllegalFormatCodePoint")?
                            .to_string(),
                    ),
                    (ScalarValue::Utf8(Some(t)), _) if t.chars().count() == 1 => pad(&s, t),
                    _ => return Err("IllegalFormatConversion: c".into()),
                },
                'd' => {
                    if s.precision.is_some() {
                        return Err(format!(
                            "IllegalFormatPrecisionException: {}",
                            s.precision.unwrap_or(0)
                        ));
                    }
                    if v.is_null() {
                        pad(&s, "null")
                    } else {
                        let n = integer(v).ok_or_else(|| {
                            format!("IllegalFormatConversion: d != {}", v.data_type())
                        })?;
                        number(&s, &n.to_string())
                    }
                }
                'x' | 'X' | 'o' => {
                    let n = integer(v).ok_or_else(|| {
                        format!("IllegalFormatConversion: {} != {}", s.conv, v.data_type())
                    })?;
                    let n = n as i64;
                    let t = match s.conv {
                        'o' => format!("{n:o}"),
                        'X' => format!("{n:X}"),
                        _ => format!("{n:x}"),
                    };
                    number(&Spec { group: false, ..s }, &t)
                }
                'f' | 'e' | 'E' => {
                    let d = decimal_text(v).ok_or_else(|| {
                        format!("IllegalFormatConversion: {} != {}", s.conv, v.data_type())
                    })?;
                    let places = s.precision.unwrap_or(6);
                    if s.conv == 'f' {
                        number(&s, &round_half_up(&d, places))
                    } else {
                        let x: f64 = d.parse().map_err(|_| "IllegalFormatConversion")?;
                        let t = format!("{:.*e}", places, x);
                        let (m, e) = t.split_once('e').unwrap_or((&t, "0"));
                        let e: i32 = e.parse().unwrap_or(0);
                        let t = format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
                        let t = number(&Spec { group: false, ..s }, &t);
                        if s.conv == 'E' { t.to_uppercase() } else { t }
                    }
                }
                other => return Err(format!("UnknownFormatConversion: '{other}'")),
            }
        };
        out.push_str(&piece);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_formats() {
        let s = |v: &str| ScalarValue::Utf8(Some(v.into()));
        let i = |v: i64| ScalarValue::Int64(Some(v));
        let f = |v: f64| ScalarValue::Float64(Some(v));
        assert_eq!(format("%s%%", &[i(123)]).unwrap(), "123%");
        assert_eq!(
            format("%.4f", &[f(std::f64::consts::PI)]).unwrap(),
            "3.1416"
        );
        assert_eq!(format("%03d", &[i(8)]).unwrap(), "008");
        assert_eq!(
            format("%-7s,%7s", &[s("hello"), s("world")]).unwrap(),
            "hello  ,  world"
        );
        assert_eq!(format("%,.2f", &[f(1234567.89)]).unwrap(), "1,234,567.89");
        assert_eq!(format("%.1f", &[f(0.25)]).unwrap(), "0.3");
        assert_eq!(
            format("%1$d %1$x %1$X %1$o", &[i(1234)]).unwrap(),
            "1234 4d2 4D2 2322"
        );
        assert_eq!(
            format("%2$s %s %<s %s", &[s("a"), s("b")]).unwrap(),
            "b a a b"
        );
        assert!(format("%s %d", &[i(8)]).is_err());
        assert!(format("%.4d", &[i(8)]).is_err());
    }
}
