//! `date_format` and `date_parse` with Trino's MySQL-style specifiers, formatted and parsed
//! here field by field (not translated to another library's specifiers, whose meanings
//! differ): `%a %b %c %d %e %f %H %h %I %i %j %k %l %M %m %p %r %S %s %T %W %w %Y %y %%`.
//! `%D %U %u %V %v %w %X %x` are refused, as Trino refuses them. `date_parse` keeps
//! milliseconds (Trino's TIMESTAMP(3)).

use arrow::array::{Array, ArrayRef, StringBuilder, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, TimeUnit};
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::ScalarUDF;

use super::udf::{arc, list, str_arg, stringy, udf, utf8};

pub fn functions() -> Vec<ScalarUDF> {
    vec![
        udf("date_format", format_args, utf8, date_format),
        udf(
            "date_parse",
            |t| super::udf::strings(t, 2, 2, "date_parse"),
            |_| Ok(DataType::Timestamp(TimeUnit::Microsecond, None)),
            date_parse,
        ),
    ]
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

fn format_args(t: &[DataType]) -> Result<Vec<DataType>> {
    match t {
        [DataType::Date32 | DataType::Date64, f] if stringy(f) => Ok(vec![
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Utf8,
        ]),
        [DataType::Timestamp(_, tz), f] if stringy(f) => Ok(vec![
            DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            DataType::Utf8,
        ]),
        _ => plan_err!("date_format takes (timestamp, varchar), not ({})", list(t)),
    }
}

fn unsupported(c: char) -> Result<()> {
    exec_err!("%{c} not supported in date format string")
}

/// `t` formatted by `f`.
pub fn format(t: &NaiveDateTime, f: &str) -> Result<String> {
    let mut out = String::with_capacity(f.len() + 8);
    let mut it = f.chars();
    let h12 = |h: u32| if h.is_multiple_of(12) { 12 } else { h % 12 };
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(d) = it.next() else {
            break;
        };
        let s = match d {
            'a' => DAYS[t.weekday().num_days_from_monday() as usize][..3].to_string(),
            'b' => MONTHS[t.month0() as usize][..3].to_string(),
            'c' => t.month().to_string(),
            'd' => format!("{:02}", t.day()),
            'e' => t.day().to_string(),
            'f' => format!("{:06}", t.nanosecond() / 1000),
            'H' => format!("{:02}", t.hour()),
            'h' | 'I' => format!("{:02}", h12(t.hour())),
            'i' => format!("{:02}", t.minute()),
            'j' => format!("{:03}", t.ordinal()),
            'k' => t.hour().to_string(),
            'l' => h12(t.hour()).to_string(),
            'M' => MONTHS[t.month0() as usize].to_string(),
            'm' => format!("{:02}", t.month()),
            'p' => (if t.hour() < 12 { "AM" } else { "PM" }).to_string(),
            'r' => format!(
                "{:02}:{:02}:{:02} {}",
                h12(t.hour()),
                t.minute(),
                t.second(),
                if t.hour() < 12 { "AM" } else { "PM" }
            ),
            'S' | 's' => format!("{:02}", t.second()),
            'T' => format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second()),
            'W' => DAYS[t.weekday().num_days_from_monday() as usize].to_string(),
            'Y' => format!("{:04}", t.year()),
            'y' => format!("{:02}", t.year().rem_euclid(100)),
            'D' | 'U' | 'u' | 'V' | 'v' | 'w' | 'X' | 'x' => {
                unsupported(d)?;
                String::new()
            }
            other => other.to_string(),
        };
        out.push_str(&s);
    }
    Ok(out)
}

fn date_format(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let times = super::dateparts::local_times(&a[0])?;
    let f = str_arg(&a[1])?;
    let mut out = StringBuilder::new();
    for (r, t) in times.iter().enumerate().take(rows) {
        match (t, f.is_valid(r)) {
            (Some(t), true) => out.append_value(format(t, f.value(r))?),
            _ => out.append_null(),
        }
    }
    Ok(arc(out.finish()))
}

/// Parses `s` by `f`; every character of `s` must be matched.
pub fn parse(s: &str, f: &str) -> Result<NaiveDateTime> {
    let bad = || exec_err!("Invalid format: \"{s}\" (for \"{f}\")");
    let (mut year, mut month, mut day, mut doy) = (1970i32, 1u32, 1u32, None::<u32>);
    let (mut hour, mut minute, mut second, mut micros) = (0u32, 0u32, 0u32, 0u32);
    let (mut pm, mut twelve) = (None::<bool>, false);
    let mut rest = s;
    let mut it = f.chars();
    fn num(rest: &mut &str, max_digits: usize) -> Option<u32> {
        let n = rest
            .chars()
            .take(max_digits)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if n == 0 {
            return None;
        }
        let v = rest[..n].parse().ok()?;
        *rest = &rest[n..];
        Some(v)
    }
    fn name(rest: &mut &str, names: &[&str], abbrev: bool) -> Option<u32> {
        for (i, n) in names.iter().enumerate() {
            let n = if abbrev { &n[..3] } else { n };
            if rest.len() >= n.len() && rest[..n.len()].eq_ignore_ascii_case(n) {
                *rest = &rest[n.len()..];
                return Some(i as u32);
            }
        }
        None
    }
    while let Some(c) = it.next() {
        if c != '%' {
            match rest.strip_prefix(c) {
                Some(r) => rest = r,
                None => return bad(),
            }
            continue;
        }
        let Some(d) = it.next() else {
            return bad();
        };
        let ok = match d {
            'Y' => {
                let neg = rest.starts_with('-');
                if neg {
                    rest = &rest[1..];
                }
                num(&mut rest, 4).map(|y| year = if neg { -(y as i32) } else { y as i32 })
            }
            'y' => {
                num(&mut rest, 2).map(|y| year = 2000 + y as i32 - if y >= 70 { 100 } else { 0 })
            }
            'm' | 'c' => num(&mut rest, 2).map(|m| month = m),
            'd' | 'e' => num(&mut rest, 2).map(|v| day = v),
            'j' => num(&mut rest, 3).map(|v| doy = Some(v)),
            'H' | 'k' => num(&mut rest, 2).map(|v| hour = v),
            'h' | 'I' | 'l' => num(&mut rest, 2).map(|v| {
                hour = v;
                twelve = true;
            }),
            'i' => num(&mut rest, 2).map(|v| minute = v),
            'S' | 's' => num(&mut rest, 2).map(|v| second = v),
            'f' => {
                let n = rest
                    .chars()
                    .take(9)
                    .take_while(|c| c.is_ascii_digit())
                    .count();
                let digits = &rest[..n];
                rest = &rest[n..];
                (n > 0).then(|| {
                    let padded = format!("{digits:0<6}");
                    // TIMESTAMP(3): milliseconds.
                    micros = padded[..3].parse::<u32>().unwrap_or(0) * 1000;
                })
            }
            'p' => {
                if rest.len() >= 2 && rest[..2].eq_ignore_ascii_case("AM") {
                    pm = Some(false);
                } else if rest.len() >= 2 && rest[..2].eq_ignore_ascii_case("PM") {
                    pm = Some(true);
                } else {
                    return bad();
                }
                rest = &rest[2..];
                Some(())
            }
            'M' => name(&mut rest, &MONTHS, false).map(|m| month = m + 1),
            'b' => name(&mut rest, &MONTHS, true).map(|m| month = m + 1),
            'W' => name(&mut rest, &DAYS, false).map(|_| ()),
            'a' => name(&mut rest, &DAYS, true).map(|_| ()),
            'T' => (|| {
                hour = num(&mut rest, 2)?;
                rest = rest.strip_prefix(':')?;
                minute = num(&mut rest, 2)?;
                rest = rest.strip_prefix(':')?;
                second = num(&mut rest, 2)?;
                Some(())
            })(),
            'r' => (|| {
                hour = num(&mut rest, 2)?;
                rest = rest.strip_prefix(':')?;
                minute = num(&mut rest, 2)?;
                rest = rest.strip_prefix(':')?;
                second = num(&mut rest, 2)?;
                rest = rest.trim_start();
                twelve = true;
                let p = rest.get(..2)?;
                pm = Some(p.eq_ignore_ascii_case("PM"));
                rest = &rest[2..];
                Some(())
            })(),
            '%' => rest.strip_prefix('%').map(|r| rest = r),
            'D' | 'U' | 'u' | 'V' | 'v' | 'w' | 'X' | 'x' => {
                return exec_err!("%{d} not supported in date format string");
            }
            other => rest.strip_prefix(other).map(|r| rest = r),
        };
        if ok.is_none() {
            return bad();
        }
    }
    if !rest.is_empty() {
        return bad();
    }
    if twelve {
        if !(1..=12).contains(&hour) {
            return bad();
        }
        hour %= 12;
        if pm == Some(true) {
            hour += 12;
        }
    } else if pm == Some(true) && hour < 12 {
        hour += 12;
    }
    let date = match doy {
        Some(d) => NaiveDate::from_yo_opt(year, d),
        None => NaiveDate::from_ymd_opt(year, month, day),
    };
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros);
    match (date, time) {
        (Some(d), Some(t)) => Ok(d.and_time(t)),
        _ => bad(),
    }
}

fn date_parse(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let (s, f) = (str_arg(&a[0])?, str_arg(&a[1])?);
    let mut out = Vec::with_capacity(rows);
    for r in 0..rows {
        out.push(if s.is_null(r) || f.is_null(r) {
            None
        } else {
            Some(parse(s.value(r), f.value(r))?.and_utc().timestamp_micros())
        });
    }
    Ok(arc(TimestampMicrosecondArray::from(out)))
}
