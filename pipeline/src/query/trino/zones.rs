//! Timestamps with a time zone, as Trino makes them: `TIMESTAMP '… +07:09'` and
//! `TIMESTAMP '… Asia/Tokyo'` literals, `from_unixtime(x, zone)` and
//! `from_unixtime(x, hours, minutes)`, `at_timezone(ts, zone)` (the same instant, read in
//! `zone`) and `with_timezone(ts, zone)` (the same wall time, in `zone`). The zone is part
//! of the value's type, so it must be a literal. Names (`Asia/Tokyo`) and offsets
//! (`+07:09`) are both zones.

use std::str::FromStr;
use std::sync::Arc;

use arrow::array::timezone::Tz;
use arrow::array::{AsArray, TimestampMicrosecondArray};
use arrow::datatypes::{
    DataType, Field, FieldRef, Float64Type, TimeUnit, TimestampMicrosecondType,
};
use chrono::{NaiveDateTime, TimeZone};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// `trino_timestamp_tz(wall time text, zone)`: a zoned literal.
    Literal,
    FromUnixtime,
    AtTimezone,
    WithTimezone,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Zoned {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

pub fn functions() -> Vec<ScalarUDF> {
    [
        ("trino_timestamp_tz", Kind::Literal),
        ("from_unixtime", Kind::FromUnixtime),
        ("at_timezone", Kind::AtTimezone),
        ("with_timezone", Kind::WithTimezone),
    ]
    .into_iter()
    .map(|(name, kind)| {
        ScalarUDF::from(Zoned {
            name,
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        })
    })
    .collect()
}

/// A zone as Arrow names it: `UTC` for `Z`, an offset as `+HH:MM`.
pub fn zone_name(z: &str) -> Result<String> {
    let z = z.trim();
    let name = if z.eq_ignore_ascii_case("z") {
        "UTC".to_string()
    } else if let Some(h) = z
        .strip_prefix(['+', '-'])
        .filter(|h| h.len() <= 2 && h.chars().all(|c| c.is_ascii_digit()))
    {
        // `+13` → `+13:00`
        format!("{}{:0>2}:00", &z[..1], h)
    } else {
        z.to_string()
    };
    match Tz::from_str(&name) {
        Ok(_) => Ok(name),
        Err(_) => plan_err!("'{z}' is not a time zone"),
    }
}

fn ts(zone: &str) -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(zone.into()))
}

fn literal_text(v: Option<&ScalarValue>) -> Option<String> {
    match v? {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => Some(s.clone()),
        _ => None,
    }
}

fn literal_int(v: Option<&ScalarValue>) -> Option<i64> {
    match v? {
        ScalarValue::Int64(Some(n)) => Some(*n),
        ScalarValue::Int32(Some(n)) => Some(*n as i64),
        ScalarValue::Int16(Some(n)) => Some(*n as i64),
        ScalarValue::Int8(Some(n)) => Some(*n as i64),
        _ => None,
    }
}

impl Zoned {
    /// The zone the call's literal arguments name.
    fn zone(&self, args: &[Option<&ScalarValue>]) -> Result<Option<String>> {
        match (self.kind, args.len()) {
            (Kind::FromUnixtime, 1) => Ok(None),
            (Kind::FromUnixtime, 3) => {
                let (Some(h), Some(m)) = (literal_int(args[1]), literal_int(args[2])) else {
                    return plan_err!(
                        "from_unixtime(x, hours, minutes) takes literal hours and minutes"
                    );
                };
                if !(-14..=14).contains(&h) || !(0..60).contains(&m.abs()) {
                    return plan_err!("Invalid offset minutes {}", h * 60 + m);
                }
                let total = h * 60 + if h < 0 { -m.abs() } else { m };
                let sign = if total < 0 { '-' } else { '+' };
                Ok(Some(format!(
                    "{sign}{:02}:{:02}",
                    total.abs() / 60,
                    total.abs() % 60
                )))
            }
            (_, 2) => match literal_text(args[1]) {
                Some(z) => zone_name(&z).map(Some),
                None => plan_err!("{}: the time zone must be a literal", self.name),
            },
            _ => plan_err!("{} does not take {} arguments", self.name, args.len()),
        }
    }
}

impl ScalarUDFImpl for Zoned {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        let text = |t: &DataType| {
            matches!(
                t,
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null
            )
        };
        match (self.kind, t) {
            (Kind::Literal, [a, b]) if text(a) && text(b) => Ok(vec![DataType::Utf8; 2]),
            (Kind::FromUnixtime, [x]) if x.is_numeric() || x.is_null() => {
                Ok(vec![DataType::Float64])
            }
            (Kind::FromUnixtime, [x, z]) if (x.is_numeric() || x.is_null()) && text(z) => {
                Ok(vec![DataType::Float64, DataType::Utf8])
            }
            (Kind::FromUnixtime, [x, h, m])
                if x.is_numeric() && h.is_integer() && m.is_integer() =>
            {
                Ok(vec![DataType::Float64, DataType::Int64, DataType::Int64])
            }
            (Kind::AtTimezone | Kind::WithTimezone, [DataType::Timestamp(_, tz), z]) if text(z) => {
                Ok(vec![
                    DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
                    DataType::Utf8,
                ])
            }
            (Kind::AtTimezone | Kind::WithTimezone, [DataType::Date32 | DataType::Date64, z])
                if text(z) =>
            {
                Ok(vec![
                    DataType::Timestamp(TimeUnit::Microsecond, None),
                    DataType::Utf8,
                ])
            }
            _ => plan_err!(
                "{} does not take ({})",
                self.name,
                t.iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        plan_err!("{}'s type comes from its time zone argument", self.name)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let zone = self
            .zone(args.scalar_arguments)?
            .unwrap_or_else(|| "UTC".into());
        Ok(Arc::new(Field::new(self.name, ts(&zone), true)))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, scalar) = super::udf::arrays_of(&args)?;
        let rows = if scalar { 1 } else { args.number_rows };
        let DataType::Timestamp(_, Some(zone)) = args.return_field.data_type() else {
            return exec_err!("{}: no zone in its type", self.name);
        };
        let tz = Tz::from_str(zone)
            .map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))?;
        let a = &arrays[0];
        let micros: Vec<Option<i64>> = match self.kind {
            Kind::Literal => {
                let s = a.as_string::<i32>();
                let mut out = Vec::with_capacity(rows);
                for v in s.iter() {
                    out.push(match v {
                        None => None,
                        Some(text) => Some(wall_to_utc(&tz, parse_wall(text)?)?),
                    });
                }
                out
            }
            Kind::FromUnixtime => {
                let x = a.as_primitive::<Float64Type>();
                let mut out = Vec::with_capacity(rows);
                for v in x.iter() {
                    out.push(match v {
                        None => None,
                        Some(s) => {
                            let us = (s * 1e6).round();
                            if !us.is_finite() || us.abs() > 9.2e18 {
                                return exec_err!("Millis overflow: {s}");
                            }
                            Some(us as i64)
                        }
                    });
                }
                out
            }
            Kind::AtTimezone => a
                .as_primitive::<TimestampMicrosecondType>()
                .iter()
                .collect(),
            Kind::WithTimezone => {
                let t = a.as_primitive::<TimestampMicrosecondType>();
                let mut out = Vec::with_capacity(rows);
                for v in t.iter() {
                    out.push(match v {
                        None => None,
                        Some(us) => {
                            let Some(wall) = chrono::DateTime::from_timestamp_micros(us) else {
                                return exec_err!("timestamp out of range");
                            };
                            Some(wall_to_utc(&tz, wall.naive_utc())?)
                        }
                    });
                }
                out
            }
        };
        let out: arrow::array::ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(micros).with_timezone(zone.as_ref()));
        super::udf::value_of(out, scalar)
    }
}

fn parse_wall(text: &str) -> Result<NaiveDateTime> {
    let t = text.trim().replace('T', " ");
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(&t, f) {
            return Ok(d);
        }
    }
    match chrono::NaiveDate::parse_from_str(&t, "%Y-%m-%d") {
        Ok(d) => Ok(d.and_time(chrono::NaiveTime::MIN)),
        Err(_) => exec_err!("'{text}' is not a timestamp"),
    }
}

/// A wall time in `tz` as microseconds since the epoch (a time skipped by a DST change
/// is refused; one repeated takes the earlier).
fn wall_to_utc(tz: &Tz, wall: NaiveDateTime) -> Result<i64> {
    match tz.from_local_datetime(&wall).earliest() {
        Some(t) => Ok(t.timestamp_micros()),
        None => exec_err!("{wall} does not exist in that time zone"),
    }
}
