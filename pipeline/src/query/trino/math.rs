//! Trino's rounding functions keep their argument's type: `floor`, `ceil`/`ceiling`,
//! `round` and `truncate` of an INTEGER are an INTEGER, of a DOUBLE a DOUBLE, of a
//! DECIMAL(p, s) a DECIMAL(p - s + min(s, 1), 0) (`round(x, d)`: DECIMAL(p + 1, s));
//! `sign` likewise. Also `is_nan`, `is_finite`, `is_infinite`, `nan()`, `infinity()`.

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Float64Array};
use arrow::datatypes::{DataType, Decimal128Type, Float32Type, Float64Type, Int64Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::ScalarUDF;

use super::udf::{arc, list, udf};

#[derive(Clone, Copy)]
enum Op {
    Floor,
    Ceil,
    Round,
    Trunc,
    Sign,
}

macro_rules! op {
    ($name:literal, $op:expr) => {
        udf(
            $name,
            one_number,
            |t| returns(t, $op),
            |a, _, _| apply(a, $op),
        )
    };
}

pub fn functions() -> Vec<ScalarUDF> {
    vec![
        op!("floor", Op::Floor),
        op!("ceil", Op::Ceil),
        op!("ceiling", Op::Ceil),
        op!("truncate", Op::Trunc),
        op!("sign", Op::Sign),
        round_function(),
        udf("is_nan", one_double, boolean, |a, _, _| {
            test(a, f64::is_nan)
        }),
        udf("is_finite", one_double, boolean, |a, _, _| {
            test(a, f64::is_finite)
        }),
        udf("is_infinite", one_double, boolean, |a, _, _| {
            test(a, f64::is_infinite)
        }),
        udf("nan", none, double, |_, n, _| {
            Ok(arc(Float64Array::from(vec![f64::NAN; n])))
        }),
        udf("infinity", none, double, |_, n, _| {
            Ok(arc(Float64Array::from(vec![f64::INFINITY; n])))
        }),
    ]
}

/// An array rounded half away from zero, in its own type.
pub fn round_array(a: &ArrayRef) -> Result<ArrayRef> {
    apply(std::slice::from_ref(a), Op::Round)
}

/// Trino's `round`, keeping its argument's type.
pub fn round_function() -> ScalarUDF {
    udf("round", round_args, round_returns, round)
}

fn boolean(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::Boolean)
}
fn double(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::Float64)
}
fn none(t: &[DataType]) -> Result<Vec<DataType>> {
    if !t.is_empty() {
        return plan_err!("takes no arguments, not ({})", list(t));
    }
    Ok(vec![])
}
fn one_double(t: &[DataType]) -> Result<Vec<DataType>> {
    match t {
        [n] if n.is_numeric() || n.is_null() => Ok(vec![DataType::Float64]),
        _ => plan_err!("takes a number, not ({})", list(t)),
    }
}

fn one_number(t: &[DataType]) -> Result<Vec<DataType>> {
    match t {
        [DataType::Null] => Ok(vec![DataType::Float64]),
        [DataType::Decimal256(p, s)] => Ok(vec![DataType::Decimal128((*p).min(38), *s)]),
        [n] if n.is_integer() || n.is_floating() || matches!(n, DataType::Decimal128(..)) => {
            Ok(vec![n.clone()])
        }
        _ => plan_err!("takes a number, not ({})", list(t)),
    }
}

/// Integral digits of a DECIMAL(p, s) rounded to scale 0.
fn whole(p: u8, s: i8, op: Op) -> DataType {
    let s = s.max(0) as u8;
    let p = match op {
        Op::Trunc => p - s,
        _ => p - s + s.min(1),
    };
    DataType::Decimal128(p.clamp(1, 38), 0)
}

fn returns(t: &[DataType], op: Op) -> Result<DataType> {
    Ok(match (&t[0], op) {
        (DataType::Decimal128(..), Op::Sign) => DataType::Decimal128(1, 0),
        (DataType::Decimal128(p, s), _) => whole(*p, *s, op),
        (other, _) => other.clone(),
    })
}

fn f64_op(v: f64, op: Op) -> f64 {
    match op {
        Op::Floor => v.floor(),
        Op::Ceil => v.ceil(),
        Op::Round => v.round(),
        Op::Trunc => v.trunc(),
        Op::Sign if v.is_nan() => v,
        Op::Sign if v == 0.0 => 0.0,
        Op::Sign => v.signum(),
    }
}

/// `v` (at scale `s`) to scale 0.
fn dec_op(v: i128, s: i8, op: Op) -> i128 {
    if s <= 0 {
        return if matches!(op, Op::Sign) {
            v.signum()
        } else {
            v
        };
    }
    let f = 10i128.pow(s as u32);
    let (q, r) = (v / f, v % f);
    match op {
        Op::Floor if r < 0 => q - 1,
        Op::Ceil if r > 0 => q + 1,
        Op::Round if r.abs() * 2 >= f => q + v.signum(),
        Op::Sign => v.signum(),
        _ => q,
    }
}

fn apply(a: &[ArrayRef], op: Op) -> Result<ArrayRef> {
    let x = &a[0];
    Ok(match x.data_type() {
        DataType::Float64 => arc(x
            .as_primitive::<Float64Type>()
            .unary::<_, Float64Type>(|v| f64_op(v, op))),
        DataType::Float32 => arc(x
            .as_primitive::<Float32Type>()
            .unary::<_, Float32Type>(|v| f64_op(v as f64, op) as f32)),
        DataType::Decimal128(p, s) => {
            let out: Decimal128Array = x
                .as_primitive::<Decimal128Type>()
                .unary(|v| dec_op(v, *s, op));
            let DataType::Decimal128(p, s) = returns(&[DataType::Decimal128(*p, *s)], op)? else {
                return exec_err!("decimal result expected");
            };
            arc(out.with_precision_and_scale(p, s)?)
        }
        // An integer is its own floor, ceiling, rounding and truncation.
        t if t.is_integer() && !matches!(op, Op::Sign) => x.clone(),
        t if t.is_integer() => {
            let signs = arrow::compute::cast(x, &DataType::Int64)?;
            let signs = signs
                .as_primitive::<Int64Type>()
                .unary::<_, Int64Type>(i64::signum);
            arrow::compute::cast(&arc(signs), t)?
        }
        other => return exec_err!("expected a number, got {other}"),
    })
}

fn round_args(t: &[DataType]) -> Result<Vec<DataType>> {
    match t {
        [x] => one_number(std::slice::from_ref(x)),
        [x, d] if d.is_integer() || d.is_null() => {
            let mut v = one_number(std::slice::from_ref(x))?;
            v.push(DataType::Int64);
            Ok(v)
        }
        _ => plan_err!("round takes (number [, integer]), not ({})", list(t)),
    }
}

fn round_returns(t: &[DataType]) -> Result<DataType> {
    Ok(match t {
        [x] => returns(std::slice::from_ref(x), Op::Round)?,
        [DataType::Decimal128(p, s), _] => DataType::Decimal128((*p + 1).min(38), *s),
        [x, _] => x.clone(),
        _ => return plan_err!("round takes (number [, integer])"),
    })
}

/// Trino's round(x, d) of a double: half away from zero at d decimal places; a value with
/// no digits left to round is itself.
fn round_f64(v: f64, d: i64) -> f64 {
    if !v.is_finite() {
        return v;
    }
    if d < 0 {
        // Rounding to tens, hundreds …: past the value's magnitude it is zero.
        let unit = 10f64.powi((-d).min(400) as i32);
        if !unit.is_finite() || v.abs() / unit < 0.5 {
            return 0.0f64.copysign(v);
        }
        return ((v.abs() / unit).round() * unit).copysign(v);
    }
    let factor = 10f64.powi(d.min(400) as i32);
    let scaled = v * factor;
    if !scaled.is_finite() || scaled.abs() >= 4_503_599_627_370_496.0 {
        return v;
    }
    let r = scaled.abs().round().copysign(v) / factor;
    if r.is_finite() { r } else { v }
}

fn round(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    if a.len() == 1 {
        return apply(a, Op::Round);
    }
    let d = arrow::compute::cast(&a[1], &DataType::Int64)?;
    let d = d.as_primitive::<Int64Type>();
    let x = &a[0];
    let digits = |r: usize| d.is_valid(r).then(|| d.value(r));
    Ok(match x.data_type() {
        DataType::Float64 | DataType::Float32 => {
            let v = arrow::compute::cast(x, &DataType::Float64)?;
            let v = v.as_primitive::<Float64Type>();
            let out: Float64Array = (0..rows)
                .map(|r| Some(round_f64(v.is_valid(r).then(|| v.value(r))?, digits(r)?)))
                .collect();
            arrow::compute::cast(&arc(out), x.data_type())?
        }
        DataType::Decimal128(p, s) => {
            let v = x.as_primitive::<Decimal128Type>();
            let out: Decimal128Array = (0..rows)
                .map(|r| {
                    let (v, d) = (v.is_valid(r).then(|| v.value(r))?, digits(r)?);
                    let drop = (*s as i64 - d).clamp(0, 38) as i8;
                    Some(dec_op(v, drop, Op::Round) * 10i128.pow(drop as u32))
                })
                .collect();
            arc(out.with_precision_and_scale((*p + 1).min(38), *s)?)
        }
        t if t.is_integer() => {
            let v = arrow::compute::cast(x, &DataType::Int64)?;
            let v = v.as_primitive::<Int64Type>();
            let mut out = Vec::with_capacity(rows);
            for r in 0..rows {
                out.push(match (v.is_valid(r).then(|| v.value(r)), digits(r)) {
                    // Trino rounds in BIGINT: a factor past 10^18 overflows.
                    (Some(_), Some(d)) if d < -18 => {
                        return exec_err!("round: 10^{} is out of range for BIGINT", -d);
                    }
                    (Some(v), Some(d)) if d < 0 => {
                        let drop = (-d).min(38) as i8;
                        let f = 10i128.checked_pow(drop as u32).unwrap_or(i128::MAX);
                        let rounded = dec_op(v as i128, drop, Op::Round).saturating_mul(f);
                        match i64::try_from(rounded) {
                            Ok(r) => Some(r),
                            Err(_) => return exec_err!("round: {v} rounded at {d} overflows"),
                        }
                    }
                    (Some(v), Some(_)) => Some(v),
                    _ => None,
                });
            }
            // Out of the type's range fails (a safe cast would answer NULL).
            let strict = arrow::compute::CastOptions {
                safe: false,
                ..Default::default()
            };
            arrow::compute::cast_with_options(&arc(arrow::array::Int64Array::from(out)), t, &strict)
                .map_err(|e| datafusion::error::DataFusionError::Execution(format!("round: {e}")))?
        }
        other => return exec_err!("round takes a number, not {other}"),
    })
}

fn test(a: &[ArrayRef], f: fn(f64) -> bool) -> Result<ArrayRef> {
    let v = a[0].as_primitive::<Float64Type>();
    Ok(arc(v.iter().map(|x| x.map(f)).collect::<BooleanArray>()))
}
