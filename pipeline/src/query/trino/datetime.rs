//! Trino date and time functions DataFusion lacks or spells differently, so the same query text
//! runs on Athena and here: `from_iso8601_timestamp`, `date_add`,
//! `date_diff`, `element_at` (arrays, 1-based, negative from the end, NULL out of range;
//! maps by key) and `approx_percentile`. (`date_trunc`, `regexp_like`, `cardinality` are
//! DataFusion's own.)

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, TimeUnit, TimestampMicrosecondType};
use chrono::{DateTime, Datelike, Months, NaiveDateTime, TimeDelta, Utc};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// Registers the functions in `ctx`.
pub fn register(ctx: &SessionContext) {
    for f in [
        ScalarUDF::from(Fun::new("from_iso8601_timestamp")),
        super::keepdate::keep_date(Arc::new(ScalarUDF::from(Fun::new("date_add"))), 2),
        super::keepdate::keep_date(datafusion::functions::datetime::date_trunc(), 1),
        ScalarUDF::from(Fun::new("date_diff")),
        ScalarUDF::from(Fun::new("element_at")),
    ] {
        ctx.register_udf(f);
    }
    let approx =
        datafusion::functions_aggregate::approx_percentile_cont::approx_percentile_cont_udaf();
    ctx.register_udaf(approx.as_ref().clone().with_aliases(["approx_percentile"]));
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Fun {
    name: &'static str,
    signature: Signature,
}

impl Fun {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

const TS: DataType = DataType::Timestamp(TimeUnit::Microsecond, None);

fn ts_like(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
        _ => TS,
    }
}

impl ScalarUDFImpl for Fun {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        let n = t.len();
        match (self.name, n) {
            ("from_iso8601_timestamp", 1) => Ok(vec![DataType::Utf8]),
            ("date_add", 3) => Ok(vec![DataType::Utf8, DataType::Int64, ts_like(&t[2])]),
            ("date_diff", 3) => Ok(vec![DataType::Utf8, ts_like(&t[1]), ts_like(&t[2])]),
            ("element_at", 2) => match &t[0] {
                // The key as the map's key type (a map of Utf8View keys takes 'DE').
                DataType::Map(f, _) => match f.data_type() {
                    DataType::Struct(kv) if kv.len() == 2 => {
                        Ok(vec![t[0].clone(), kv[0].data_type().clone()])
                    }
                    _ => Ok(t.to_vec()),
                },
                DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
                    Ok(vec![t[0].clone(), DataType::Int64])
                }
                other => plan_err!("element_at takes an array or a map, not {other}"),
            },
            (name, _) => plan_err!("{name} does not take {n} arguments"),
        }
    }

    fn return_type(&self, t: &[DataType]) -> Result<DataType> {
        Ok(match self.name {
            "from_iso8601_timestamp" => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
            "date_add" => ts_like(&t[2]),
            "date_diff" => DataType::Int64,
            _ => match &t[0] {
                DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                    f.data_type().clone()
                }
                DataType::Map(f, _) => match f.data_type() {
                    DataType::Struct(kv) if kv.len() == 2 => kv[1].data_type().clone(),
                    other => return plan_err!("unexpected map layout {other}"),
                },
                other => return plan_err!("element_at takes an array or a map, not {other}"),
            },
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if self.name == "element_at" {
            return element_at(args);
        }
        let n = args.number_rows;
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let out: ArrayRef = match self.name {
            "from_iso8601_timestamp" => {
                let s = arrays[0].as_string::<i32>();
                let v: Vec<Option<i64>> = (0..s.len())
                    .map(|i| {
                        if s.is_null(i) {
                            return Ok(None);
                        }
                        parse_iso8601(s.value(i)).map(Some).ok_or_else(|| {
                            datafusion::error::DataFusionError::Execution(format!(
                                "from_iso8601_timestamp: `{}` is not an ISO 8601 time",
                                s.value(i)
                            ))
                        })
                    })
                    .collect::<Result<_>>()?;
                Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
            }
            "date_add" => {
                let unit = arrays[0].as_string::<i32>();
                let k = arrays[1].as_primitive::<arrow::datatypes::Int64Type>();
                let t = arrays[2].as_primitive::<TimestampMicrosecondType>();
                let v: Vec<Option<i64>> = (0..t.len())
                    .map(|i| {
                        if unit.is_null(i) || k.is_null(i) || t.is_null(i) {
                            return Ok(None);
                        }
                        add(unit.value(i), k.value(i), t.value(i)).map(Some)
                    })
                    .collect::<Result<_>>()?;
                let tz = match arrays[2].data_type() {
                    DataType::Timestamp(_, tz) => tz.clone(),
                    _ => None,
                };
                Arc::new(TimestampMicrosecondArray::from(v).with_timezone_opt(tz))
            }
            "date_diff" => {
                let unit = arrays[0].as_string::<i32>();
                let a = arrays[1].as_primitive::<TimestampMicrosecondType>();
                let b = arrays[2].as_primitive::<TimestampMicrosecondType>();
                let v: Vec<Option<i64>> = (0..a.len())
                    .map(|i| {
                        if unit.is_null(i) || a.is_null(i) || b.is_null(i) {
                            return Ok(None);
                        }
                        diff(unit.value(i), a.value(i), b.value(i)).map(Some)
                    })
                    .collect::<Result<_>>()?;
                Arc::new(Int64Array::from(v))
            }
            other => return exec_err!("unknown function {other}"),
        };
        if scalar && n <= 1 && out.len() == 1 {
            return Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&out, 0)?,
            ));
        }
        Ok(ColumnarValue::Array(out))
    }
}

/// element_at(array, i) is DataFusion's array_element (1-based, negative from the end,
/// NULL out of range); element_at(map, key) is the key's value or NULL.
fn element_at(args: ScalarFunctionArgs) -> Result<ColumnarValue> {
    use datafusion::functions_nested::extract::array_element_udf;
    use datafusion::functions_nested::map_extract::map_extract_udf;
    let first = args.arg_fields[0].data_type().clone();
    // Trino: index 0 is an error, not NULL.
    if !matches!(first, DataType::Map(..)) {
        let zero = match &args.args[1] {
            ColumnarValue::Scalar(s) => s.to_string() == "0",
            ColumnarValue::Array(a) => a
                .as_primitive_opt::<arrow::datatypes::Int64Type>()
                .is_some_and(|i| i.iter().any(|v| v == Some(0))),
        };
        if zero {
            return exec_err!("SQL array indices start at 1");
        }
    }
    if let DataType::Map(f, _) = &first {
        let value = match f.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => kv[1].clone(),
            other => return exec_err!("unexpected map layout {other}"),
        };
        let list = Arc::new(Field::new(
            "element_at",
            DataType::List(Arc::new(Field::new_list_field(
                value.data_type().clone(),
                true,
            ))),
            true,
        ));
        let extracted = map_extract_udf().invoke_with_args(ScalarFunctionArgs {
            args: args.args.clone(),
            arg_fields: args.arg_fields.clone(),
            number_rows: args.number_rows,
            return_field: list.clone(),
            config_options: args.config_options.clone(),
        })?;
        let one = ColumnarValue::Scalar(datafusion::common::ScalarValue::Int64(Some(1)));
        return array_element_udf().invoke_with_args(ScalarFunctionArgs {
            args: vec![extracted, one],
            arg_fields: vec![list, Arc::new(Field::new("i", DataType::Int64, false))],
            number_rows: args.number_rows,
            return_field: args.return_field,
            config_options: args.config_options,
        });
    }
    array_element_udf().invoke_with_args(args)
}

fn parse_iso8601(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc).timestamp_micros());
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| {
            d.and_time(chrono::NaiveTime::MIN)
                .and_utc()
                .timestamp_micros()
        })
}

fn to_dt(us: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| {
        datafusion::error::DataFusionError::Execution("timestamp out of range".into())
    })
}

fn add(unit: &str, k: i64, us: i64) -> Result<i64> {
    let t = to_dt(us)?;
    let months = |m: i64| -> Result<DateTime<Utc>> {
        let r = if m >= 0 {
            t.checked_add_months(Months::new(m as u32))
        } else {
            t.checked_sub_months(Months::new(m.unsigned_abs() as u32))
        };
        r.ok_or_else(|| {
            datafusion::error::DataFusionError::Execution("date_add: out of range".into())
        })
    };
    let delta = |d: Option<TimeDelta>| -> Result<i64> {
        d.and_then(|d| t.checked_add_signed(d))
            .map(|t| t.timestamp_micros())
            .ok_or_else(|| {
                datafusion::error::DataFusionError::Execution("date_add: out of range".into())
            })
    };
    match unit.to_ascii_lowercase().as_str() {
        "millisecond" => delta(TimeDelta::try_milliseconds(k)),
        "second" => delta(TimeDelta::try_seconds(k)),
        "minute" => delta(TimeDelta::try_minutes(k)),
        "hour" => delta(TimeDelta::try_hours(k)),
        "day" => delta(TimeDelta::try_days(k)),
        "week" => delta(TimeDelta::try_weeks(k)),
        "month" => Ok(months(k)?.timestamp_micros()),
        "quarter" => Ok(months(k * 3)?.timestamp_micros()),
        "year" => Ok(months(k * 12)?.timestamp_micros()),
        other => exec_err!(
            "date_add: unknown unit `{other}` (millisecond, second, minute, hour, day, week, month, quarter, year)"
        ),
    }
}

/// Whole units from `a` to `b` (negative if `b` is earlier), as Trino counts them.
fn diff(unit: &str, a: i64, b: i64) -> Result<i64> {
    let d = b - a;
    let months = || -> Result<i64> {
        let (ta, tb) = (to_dt(a)?, to_dt(b)?);
        let mut m = (tb.year() as i64 * 12 + tb.month0() as i64)
            - (ta.year() as i64 * 12 + ta.month0() as i64);
        // A month counts only once its day and time are reached.
        let rest = |t: DateTime<Utc>| (t.day(), t.time());
        if m > 0 && rest(tb) < rest(ta) {
            m -= 1;
        } else if m < 0 && rest(tb) > rest(ta) {
            m += 1;
        }
        Ok(m)
    };
    Ok(match unit.to_ascii_lowercase().as_str() {
        "millisecond" => d / 1_000,
        "second" => d / 1_000_000,
        "minute" => d / 60_000_000,
        "hour" => d / 3_600_000_000,
        "day" => d / 86_400_000_000,
        "week" => d / (7 * 86_400_000_000),
        "month" => months()?,
        "quarter" => months()? / 3,
        "year" => months()? / 12,
        other => {
            return exec_err!(
                "date_diff: unknown unit `{other}` (millisecond, second, minute, hour, day, week, month, quarter, year)"
            );
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(s: &str) -> i64 {
        parse_iso8601(s).unwrap()
    }

    #[test]
    fn calendar_arithmetic() {
        assert_eq!(
            add("month", 1, us("2024-01-31T10:00:00Z")).unwrap(),
            us("2024-02-29T10:00:00Z")
        );
        assert_eq!(
            add("day", -1, us("2024-03-01T00:00:00Z")).unwrap(),
            us("2024-02-29T00:00:00Z")
        );
        assert_eq!(
            diff(
                "month",
                us("2024-01-31T00:00:00Z"),
                us("2024-02-29T00:00:00Z")
            )
            .unwrap(),
            0
        );
        assert_eq!(
            diff(
                "month",
                us("2024-01-15T00:00:00Z"),
                us("2024-03-15T00:00:00Z")
            )
            .unwrap(),
            2
        );
        assert_eq!(
            diff(
                "day",
                us("2024-06-03T12:00:00Z"),
                us("2024-06-01T00:00:00Z")
            )
            .unwrap(),
            -2
        );
        let t = super::super::mysqlfmt::parse("2013-05-17 12:35:10", "%Y-%m-%d %h:%i:%s").unwrap();
        assert_eq!(t.to_string(), "2013-05-17 00:35:10");
        assert_eq!(
            super::super::mysqlfmt::format(&t, "%W %e %M %Y %r %%").unwrap(),
            "Friday 17 May 2013 12:35:10 AM %"
        );
        assert!(super::super::mysqlfmt::parse("2013-05-17", "%Y-%m-%d %H").is_err());
        assert!(add("fortnight", 1, 0).is_err());
    }
}
