//! Trino's functions over an array's elements: `array_max`/`array_min` (NULL with a NULL
//! element, NaN passed over), `array_join` (elements as Trino casts them to VARCHAR), and
//! `trino_nan_null`, which lets `greatest`/`least` pass over NaN.

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::ScalarUDF;

use super::udf::{arc, list, str_arg, stringy, udf, utf8};

pub fn functions() -> Vec<ScalarUDF> {
    let mut f = extremes();
    f.extend(comparable());
    f.push(array_join());
    f.push(udf(
        "trino_nan_null",
        |t| Ok(t.to_vec()),
        |t| Ok(t[0].clone()),
        nan_null,
    ));
    f
}

fn is_list(t: &DataType) -> bool {
    matches!(
        t,
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
    )
}

/// `trino_nan_null(x)`: NULL where `x` is NaN or holds one (greatest/least pass over
/// NaN in Trino); `x` otherwise.
fn nan_null(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let x = &a[0];
    if !matches!(
        x.data_type(),
        DataType::Float32 | DataType::Float64 | DataType::List(_)
    ) {
        return Ok(x.clone());
    }
    let mut keep = Vec::with_capacity(rows);
    for r in 0..rows {
        let v = datafusion::common::ScalarValue::try_from_array(x, r)?;
        keep.push(!has_nan(&v));
    }
    Ok(arrow::compute::nullif(
        x,
        &arrow::compute::not(&arrow::array::BooleanArray::from(keep))?,
    )?)
}

/// Trino's `array_max`/`array_min`: NULL when any element is; NaN (or an element holding
/// one) is passed over unless every element is NaN.
fn extremes() -> Vec<ScalarUDF> {
    vec![
        udf("array_max", element_args, element_type, |a, n, _| {
            extreme(a, n, true)
        }),
        udf("array_min", element_args, element_type, |a, n, _| {
            extreme(a, n, false)
        }),
    ]
}

fn element_args(t: &[DataType]) -> Result<Vec<DataType>> {
    match t {
        [DataType::List(_)] => Ok(t.to_vec()),
        [DataType::LargeList(f)] | [DataType::FixedSizeList(f, _)] => {
            Ok(vec![DataType::List(f.clone())])
        }
        _ => plan_err!("takes an array, not ({})", list(t)),
    }
}

fn element_type(t: &[DataType]) -> Result<DataType> {
    match t {
        [DataType::List(f)] => Ok(f.data_type().clone()),
        _ => plan_err!("takes an array, not ({})", list(t)),
    }
}

fn has_nan(v: &datafusion::common::ScalarValue) -> bool {
    use datafusion::common::ScalarValue as S;
    match v {
        S::Float64(Some(x)) => x.is_nan(),
        S::Float32(Some(x)) => x.is_nan(),
        S::List(l) => {
            let values = l.values();
            (0..values.len()).any(|i| S::try_from_array(values, i).is_ok_and(|x| has_nan(&x)))
        }
        _ => false,
    }
}

fn extreme(a: &[ArrayRef], rows: usize, max: bool) -> Result<ArrayRef> {
    use datafusion::common::ScalarValue as S;
    let l = a[0].as_list::<i32>();
    let DataType::List(f) = a[0].data_type() else {
        return exec_err!("expected an array");
    };
    let mut out = Vec::with_capacity(rows);
    for r in 0..rows {
        if l.is_null(r) {
            out.push(S::try_from(f.data_type())?);
            continue;
        }
        let items = l.value(r);
        let mut best: Option<S> = None;
        let mut first_nan: Option<S> = None;
        let mut null = false;
        for i in 0..items.len() {
            if items.is_null(i) {
                null = true;
                break;
            }
            let v = S::try_from_array(&items, i)?;
            if has_nan(&v) {
                first_nan.get_or_insert(v);
                continue;
            }
            let better = match &best {
                None => true,
                Some(b) => match v.partial_cmp(b) {
                    Some(o) => {
                        (o == std::cmp::Ordering::Greater) == max && o != std::cmp::Ordering::Equal
                    }
                    None => false,
                },
            };
            if better {
                best = Some(v);
            }
        }
        out.push(match (null, best, first_nan) {
            (true, _, _) | (false, None, None) => S::try_from(f.data_type())?,
            (false, Some(b), _) => b,
            (false, None, Some(nan)) => nan,
        });
    }
    if out.is_empty() {
        return Ok(arrow::array::new_empty_array(f.data_type()));
    }
    S::iter_to_array(out)
}

/// Trino's `array_join(array, delimiter [, null_replacement])`: each element as Trino casts
/// it to VARCHAR (a DOUBLE as `2.1E0`), NULL elements left out unless replaced; an array of
/// arrays is refused.
fn array_join() -> ScalarUDF {
    udf(
        "array_join",
        |t| match t {
            [DataType::List(f), rest @ ..]
                if rest.len() <= 2 && rest.iter().all(stringy) && !is_list(f.data_type()) =>
            {
                let mut v = vec![t[0].clone()];
                v.extend(rest.iter().map(|_| DataType::Utf8));
                Ok(v)
            }
            _ => plan_err!(
                "array_join takes (array of scalars, varchar [, varchar]), not ({})",
                list(t)
            ),
        },
        utf8,
        array_join_kernel,
    )
}

/// A value as Trino casts it to VARCHAR.
fn varchar_text(v: &datafusion::common::ScalarValue) -> String {
    use datafusion::common::ScalarValue as S;
    match v {
        S::Float64(Some(x)) => super::cast::trino_double(*x),
        S::Float32(Some(x)) => {
            super::cast::trino_double(x.to_string().parse().unwrap_or(*x as f64))
        }
        S::Utf8(Some(s)) | S::Utf8View(Some(s)) | S::LargeUtf8(Some(s)) => s.clone(),
        other => other.to_string(),
    }
}

fn array_join_kernel(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    use datafusion::common::ScalarValue as S;
    let l = a[0].as_list::<i32>();
    let sep = str_arg(&a[1])?;
    let repl = a.get(2).map(str_arg).transpose()?;
    let mut out = StringBuilder::new();
    for r in 0..rows {
        if l.is_null(r) || sep.is_null(r) || repl.is_some_and(|x| x.is_null(r)) {
            out.append_null();
            continue;
        }
        let items = l.value(r);
        let mut parts = Vec::with_capacity(items.len());
        for i in 0..items.len() {
            if items.is_null(i) {
                if let Some(x) = repl {
                    parts.push(x.value(r).to_string());
                }
                continue;
            }
            parts.push(varchar_text(&S::try_from_array(&items, i)?));
        }
        out.append_value(parts.join(sep.value(r)));
    }
    Ok(arc(out.finish()))
}

/// `trino_comparable_elements(a)` and `trino_comparable_value(x)`: their argument, after
/// Trino's check that arrays compared for equality hold no NULL (`contains`,
/// `array_position` and `array_remove` over arrays of arrays fail there in Trino, where
/// DataFusion would answer).
pub fn comparable() -> Vec<ScalarUDF> {
    vec![
        udf(
            "trino_comparable_elements",
            |t| Ok(t.to_vec()),
            |t| Ok(t[0].clone()),
            |a, rows, _| check_nested(&a[0], rows, true),
        ),
        udf(
            "trino_comparable_value",
            |t| Ok(t.to_vec()),
            |t| Ok(t[0].clone()),
            |a, rows, _| check_nested(&a[0], rows, false),
        ),
    ]
}

fn check_nested(x: &ArrayRef, rows: usize, elements: bool) -> Result<ArrayRef> {
    let DataType::List(f) = x.data_type() else {
        return Ok(x.clone());
    };
    let l = x.as_list::<i32>();
    for r in 0..rows.min(l.len()) {
        if l.is_null(r) {
            continue;
        }
        let items = l.value(r);
        let holds_null = |a: &ArrayRef| (0..a.len()).any(|i| a.is_null(i));
        let bad = if elements {
            matches!(f.data_type(), DataType::List(_)) && {
                let inner = items.as_list::<i32>();
                (0..inner.len()).any(|i| inner.is_valid(i) && holds_null(&inner.value(i)))
            }
        } else {
            holds_null(&items)
        };
        if bad {
            return exec_err!("ARRAY comparison not supported for arrays with null elements");
        }
    }
    Ok(x.clone())
}
