//! Trino's date and time field functions (`year` … `year_of_week`, ISO weeks and days of
//! the week, all BIGINT), and `last_day_of_month`, `to_iso8601`, `from_iso8601_date`. A timestamp with a time zone is read in its zone.

use arrow::array::{Array, ArrayRef, AsArray, Date32Array, Int64Array, StringBuilder};
use arrow::datatypes::{DataType, Date32Type, TimeUnit, TimestampMicrosecondType};
use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeZone, Timelike};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::ScalarUDF;

use super::udf::{arc, int64, list, str_arg, udf, utf8};

macro_rules! field {
    ($name:literal, $f:expr) => {
        udf($name, datetime_arg, int64, |a, n, _| fields(a, n, $f))
    };
}

pub fn functions() -> Vec<ScalarUDF> {
    vec![
        field!("year", |d| d.year() as i64),
        field!("month", |d| d.month() as i64),
        field!("day", |d| d.day() as i64),
        field!("day_of_month", |d| d.day() as i64),
        field!("hour", |d| d.hour() as i64),
        field!("minute", |d| d.minute() as i64),
        field!("second", |d| d.second() as i64),
        field!("millisecond", |d| (d.nanosecond() / 1_000_000) as i64),
        field!("quarter", |d| (d.month0() / 3 + 1) as i64),
        field!("week", |d| d.iso_week().week() as i64),
        field!("week_of_year", |d| d.iso_week().week() as i64),
        field!("year_of_week", |d| d.iso_week().year() as i64),
        field!("yow", |d| d.iso_week().year() as i64),
        field!("day_of_week", |d| d.weekday().number_from_monday() as i64),
        field!("dow", |d| d.weekday().number_from_monday() as i64),
        field!("day_of_year", |d| d.ordinal() as i64),
        field!("doy", |d| d.ordinal() as i64),
        udf("last_day_of_month", datetime_arg, date32, last_day_of_month),
        udf("to_iso8601", datetime_arg, utf8, to_iso8601),
        udf(
            "from_iso8601_date",
            |t| super::udf::strings(t, 1, 1, "from_iso8601_date"),
            date32,
            from_iso8601_date,
        ),
    ]
}

fn date32(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::Date32)
}

/// A DATE stays a DATE; a timestamp becomes microseconds, keeping its zone.
fn datetime_arg(t: &[DataType]) -> Result<Vec<DataType>> {
    match t {
        [DataType::Date32 | DataType::Date64] => Ok(vec![DataType::Date32]),
        [DataType::Timestamp(_, tz)] => {
            Ok(vec![DataType::Timestamp(TimeUnit::Microsecond, tz.clone())])
        }
        _ => plan_err!("takes a date or a timestamp, not ({})", list(t)),
    }
}

/// Each row as local date-time (a date at midnight; a timestamp with a zone in that zone).
pub(super) fn local_times(a: &ArrayRef) -> Result<Vec<Option<NaiveDateTime>>> {
    match a.data_type() {
        DataType::Date32 => Ok(a
            .as_primitive::<Date32Type>()
            .iter()
            .map(|d| {
                d.and_then(Date32Type::to_naive_date_opt)
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
            })
            .collect()),
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            // Arrow's zones: names (Asia/Tokyo) and offsets (+07:09).
            let tz: Option<arrow::array::timezone::Tz> = match tz {
                None => None,
                Some(name) => match name.parse() {
                    Ok(z) => Some(z),
                    Err(_) => return exec_err!("{name} is not a time zone"),
                },
            };
            Ok(a.as_primitive::<TimestampMicrosecondType>()
                .iter()
                .map(|us| {
                    let utc = chrono::DateTime::from_timestamp_micros(us?)?;
                    Some(match tz {
                        Some(z) => z.from_utc_datetime(&utc.naive_utc()).naive_local(),
                        None => utc.naive_utc(),
                    })
                })
                .collect())
        }
        other => exec_err!("expected a date or timestamp, got {other}"),
    }
}

fn fields(a: &[ArrayRef], _: usize, f: fn(&NaiveDateTime) -> i64) -> Result<ArrayRef> {
    Ok(arc(local_times(&a[0])?
        .iter()
        .map(|d| d.as_ref().map(f))
        .collect::<Int64Array>()))
}

fn last_day_of_month(a: &[ArrayRef], _: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    Ok(arc(local_times(&a[0])?
        .iter()
        .map(|d| {
            let d = d.as_ref()?.date();
            let first_next = if d.month() == 12 {
                NaiveDate::from_ymd_opt(d.year() + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1)
            }?;
            Some((first_next.pred_opt()? - epoch).num_days() as i32)
        })
        .collect::<Date32Array>()))
}

fn to_iso8601(a: &[ArrayRef], _: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let times = local_times(&a[0])?;
    let mut out = StringBuilder::new();
    let zoned = matches!(a[0].data_type(), DataType::Timestamp(_, Some(_)));
    let offsets: Vec<Option<String>> = if zoned {
        zone_offsets(&a[0])?
    } else {
        vec![None; times.len()]
    };
    for (t, off) in times.iter().zip(offsets) {
        match (t, a[0].data_type()) {
            (None, _) => out.append_null(),
            (Some(t), DataType::Date32) => out.append_value(t.format("%Y-%m-%d").to_string()),
            (Some(t), _) => {
                // Milliseconds when that is all the value has (Trino prints a TIMESTAMP(3)
                // with three digits), microseconds otherwise.
                let fraction = if t.nanosecond() % 1_000_000 == 0 {
                    "%.3f"
                } else {
                    "%.6f"
                };
                let mut s = t
                    .format(&format!("%Y-%m-%dT%H:%M:%S{fraction}"))
                    .to_string();
                if let Some(off) = off {
                    s.push_str(&off);
                }
                out.append_value(s);
            }
        }
    }
    Ok(arc(out.finish()))
}

/// Each zoned timestamp's offset text (`Z`, `+05:30`).
fn zone_offsets(a: &ArrayRef) -> Result<Vec<Option<String>>> {
    let DataType::Timestamp(_, Some(name)) = a.data_type() else {
        return Ok(vec![None; a.len()]);
    };
    let Ok(z) = name.parse::<arrow::array::timezone::Tz>() else {
        return exec_err!("{name} is not a time zone");
    };
    Ok(a.as_primitive::<TimestampMicrosecondType>()
        .iter()
        .map(|us| {
            let utc = chrono::DateTime::from_timestamp_micros(us?)?;
            let off = z
                .from_utc_datetime(&utc.naive_utc())
                .format("%:z")
                .to_string();
            Some(if off == "+00:00" {
                "Z".to_string()
            } else {
                off
            })
        })
        .collect())
}

fn from_iso8601_date(a: &[ArrayRef], _: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let s = str_arg(&a[0])?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let mut out = Vec::with_capacity(s.len());
    for v in s.iter() {
        out.push(match v {
            None => None,
            Some(text) => match parse_iso_date(text) {
                Some(d) => Some((d - epoch).num_days() as i32),
                None => return exec_err!("Invalid format: \"{text}\""),
            },
        });
    }
    Ok(arc(Date32Array::from(out)))
}

/// ISO 8601 dates: `2020-05-10`, `2020-05`, `2020`, `2020-W10-2`, `2020-123`.
fn parse_iso_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(d);
    }
    if let Some((y, w)) = s.split_once("-W") {
        let y: i32 = y.parse().ok()?;
        let (w, d) = w.split_once('-').unwrap_or((w, "1"));
        let wd = chrono::Weekday::try_from(d.parse::<u8>().ok()?.checked_sub(1)?).ok()?;
        return NaiveDate::from_isoywd_opt(y, w.parse().ok()?, wd);
    }
    let parts: Vec<&str> = s.split('-').collect();
    match parts.as_slice() {
        [y] if y.len() == 4 => NaiveDate::from_ymd_opt(y.parse().ok()?, 1, 1),
        [y, m] if m.len() == 2 => NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, 1),
        [y, d] if d.len() == 3 => NaiveDate::from_yo_opt(y.parse().ok()?, d.parse().ok()?),
        _ => None,
    }
}
