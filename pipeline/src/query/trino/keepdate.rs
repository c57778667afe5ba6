//! Dates stay dates: `date_trunc` and `date_add` on a DATE return a DATE in Trino, where
//! the timestamp functions they wrap would return a timestamp. A DATE takes only date units
//! (day, week, month, quarter, year); a time unit is an error, as in Trino.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, TimeUnit};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

const TS: DataType = DataType::Timestamp(TimeUnit::Microsecond, None);

#[derive(Debug)]
pub struct KeepDate {
    inner: Arc<ScalarUDF>,
    /// Which argument is the date or timestamp; the unit is argument 0.
    at: usize,
    signature: Signature,
}

impl PartialEq for KeepDate {
    fn eq(&self, o: &Self) -> bool {
        self.inner.name() == o.inner.name()
    }
}
impl Eq for KeepDate {}
impl std::hash::Hash for KeepDate {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.name().hash(state);
    }
}

pub fn keep_date(inner: Arc<ScalarUDF>, at: usize) -> ScalarUDF {
    ScalarUDF::from(KeepDate {
        inner,
        at,
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

fn is_date(t: &DataType) -> bool {
    matches!(t, DataType::Date32 | DataType::Date64)
}

impl ScalarUDFImpl for KeepDate {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        let Some(d) = t.get(self.at) else {
            return plan_err!("{} takes {} arguments", self.name(), self.at + 1);
        };
        let mut probe = t.to_vec();
        let date = is_date(d);
        if date {
            probe[self.at] = TS;
        }
        let mut out = self.inner.coerce_types(&probe).or_else(|_| {
            // DataFusion's own functions coerce by signature: keep their arguments.
            Ok::<_, datafusion::error::DataFusionError>(probe.clone())
        })?;
        if date {
            out[self.at] = DataType::Date32;
        }
        Ok(out)
    }
    fn return_type(&self, t: &[DataType]) -> Result<DataType> {
        // Both wrapped functions answer in their date-time argument's type (DataFusion's
        // date_trunc computes its type from the arguments' fields, not from return_type).
        match t.get(self.at) {
            Some(d) if is_date(d) => Ok(DataType::Date32),
            Some(other) => Ok(other.clone()),
            None => plan_err!("{} takes {} arguments", self.name(), self.at + 1),
        }
    }
    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if !args
            .arg_fields
            .get(self.at)
            .is_some_and(|f| is_date(f.data_type()))
        {
            return self.inner.invoke_with_args(args);
        }
        if let ColumnarValue::Scalar(ScalarValue::Utf8(Some(unit))) = &args.args[0]
            && !matches!(
                unit.to_ascii_lowercase().as_str(),
                "day" | "week" | "month" | "quarter" | "year"
            )
        {
            return exec_err!("'{unit}' is not a valid DATE field");
        }
        args.args[self.at] = args.args[self.at].cast_to(&TS, None)?;
        let mut fields = args.arg_fields.clone();
        fields[self.at] = Arc::new(Field::new("t", TS, true));
        // Both wrapped functions answer in their date-time argument's type.
        let ret = TS;
        let out = self.inner.invoke_with_args(ScalarFunctionArgs {
            args: args.args,
            arg_fields: fields,
            number_rows: args.number_rows,
            return_field: Arc::new(Field::new("r", ret, true)),
            config_options: args.config_options,
        })?;
        out.cast_to(&DataType::Date32, None)
    }
}
