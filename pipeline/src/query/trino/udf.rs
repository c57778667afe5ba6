//! A scalar function from plain parts: its name, how its arguments are coerced, its return
//! type, and a kernel over whole argument arrays. The Trino functions are written this way
//! so each is one small kernel, not one trait implementation.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray, StringBuilder};
use arrow::datatypes::DataType;
use arrow::datatypes::Int64Type;
use datafusion::common::config::ConfigOptions;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

pub type Coerce = fn(&[DataType]) -> Result<Vec<DataType>>;
pub type Returns = fn(&[DataType]) -> Result<DataType>;
pub type Kernel = fn(&[ArrayRef], usize, &ConfigOptions) -> Result<ArrayRef>;

#[derive(Debug)]
pub struct Udf {
    name: &'static str,
    aliases: Vec<String>,
    signature: Signature,
    coerce: Coerce,
    returns: Returns,
    kernel: Kernel,
}

// One function per name: the name is its identity.
impl PartialEq for Udf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for Udf {}
impl std::hash::Hash for Udf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

/// A function `name` (and `aliases`) taking the arguments `coerce` accepts.
pub fn udf(name: &'static str, coerce: Coerce, returns: Returns, kernel: Kernel) -> ScalarUDF {
    ScalarUDF::from(Udf {
        name,
        aliases: Vec::new(),
        signature: Signature::user_defined(Volatility::Immutable),
        coerce,
        returns,
        kernel,
    })
}

impl ScalarUDFImpl for Udf {
    fn name(&self) -> &str {
        self.name
    }
    fn aliases(&self) -> &[String] {
        &self.aliases
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        (self.coerce)(t)
    }
    fn return_type(&self, t: &[DataType]) -> Result<DataType> {
        (self.returns)(t)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, scalar) = arrays_of(&args)?;
        let rows = if scalar { 1 } else { args.number_rows };
        let out = (self.kernel)(&arrays, rows, &args.config_options)?;
        if out.data_type() != args.return_field.data_type() {
            return exec_err!(
                "{} returned {}, not {}",
                self.name,
                out.data_type(),
                args.return_field.data_type()
            );
        }
        value_of(out, scalar)
    }
}

/// A call's arguments as arrays (of one row when every argument is a scalar), and whether
/// they were all scalars.
pub fn arrays_of(args: &ScalarFunctionArgs) -> Result<(Vec<ArrayRef>, bool)> {
    let scalar = args
        .args
        .iter()
        .all(|a| matches!(a, ColumnarValue::Scalar(_)));
    let rows = if scalar { 1 } else { args.number_rows };
    let arrays = args
        .args
        .iter()
        .map(|a| a.to_array(rows))
        .collect::<Result<_>>()?;
    Ok((arrays, scalar))
}

/// A kernel's result as the call's value: a scalar when every argument was one.
pub fn value_of(out: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    Ok(if scalar {
        ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
    } else {
        ColumnarValue::Array(out)
    })
}

// ---------------------------------------------------------------- argument shapes

/// Whether `t` is a string type (or NULL, which coerces to one).
pub fn stringy(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    )
}

pub fn integral(t: &DataType) -> bool {
    t.is_integer() || t.is_null()
}

/// `n` string arguments, or `min..=max` of them.
pub fn strings(t: &[DataType], min: usize, max: usize, name: &str) -> Result<Vec<DataType>> {
    if t.len() < min || t.len() > max || !t.iter().all(stringy) {
        return plan_err!(
            "{name} takes {min} to {max} varchar arguments, not ({})",
            list(t)
        );
    }
    Ok(vec![DataType::Utf8; t.len()])
}

pub fn list(t: &[DataType]) -> String {
    t.iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn utf8(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::Utf8)
}
pub fn int64(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::Int64)
}
pub fn utf8_list(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::new_list(DataType::Utf8, true))
}

/// A Utf8 argument (coerced to Utf8 by the function's `coerce`).
pub fn str_arg(a: &ArrayRef) -> Result<&StringArray> {
    match a.as_string_opt::<i32>() {
        Some(s) => Ok(s),
        None => exec_err!("expected a varchar argument, got {}", a.data_type()),
    }
}

/// An Int64 argument.
pub fn i64_arg(a: &ArrayRef) -> Result<ArrayRef> {
    Ok(arrow::compute::cast(a, &DataType::Int64)?)
}

pub fn arc<A: Array + 'static>(a: A) -> ArrayRef {
    Arc::new(a)
}

/// A kernel mapping each row of string arguments (and integer ones) to an optional string;
/// a row with a NULL argument is NULL.
pub fn map_str(
    a: &[ArrayRef],
    rows: usize,
    f: impl Fn(&[&str], &[i64]) -> Result<Option<String>>,
) -> Result<ArrayRef> {
    let (strs, ints) = by_kind(a)?;
    let mut out = StringBuilder::with_capacity(rows, rows * 8);
    let mut s = Vec::with_capacity(strs.len());
    let mut n = Vec::with_capacity(ints.len());
    for r in 0..rows {
        s.clear();
        n.clear();
        if strs.iter().any(|x| x.is_null(r)) || ints.iter().any(|x| x.is_null(r)) {
            out.append_null();
            continue;
        }
        s.extend(strs.iter().map(|x| x.value(r)));
        n.extend(ints.iter().map(|x| x.value(r)));
        out.append_option(f(&s, &n)?);
    }
    Ok(arc(out.finish()))
}

type Split<'a> = (
    Vec<&'a arrow::array::StringArray>,
    Vec<arrow::array::PrimitiveArray<Int64Type>>,
);

fn by_kind(a: &[ArrayRef]) -> Result<Split<'_>> {
    let mut strs = Vec::new();
    let mut ints = Vec::new();
    for x in a {
        if x.data_type() == &DataType::Utf8 {
            strs.push(str_arg(x)?);
        } else {
            ints.push(i64_arg(x)?.as_primitive::<Int64Type>().clone());
        }
    }
    Ok((strs, ints))
}
