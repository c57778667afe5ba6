//! Trino's `sequence(start, stop [, step])` over BIGINT and DATE: the step defaults to 1
//! (a day for dates) or -1 when stop is before start; a step the wrong way, a zero step, or
//! more than 10,000 entries fail, as in Trino.

use arrow::array::{Array, ArrayRef, AsArray, Date32Builder, Int64Builder, ListBuilder};
use arrow::datatypes::{DataType, Date32Type, Int64Type, IntervalMonthDayNanoType, IntervalUnit};
use chrono::{Months, NaiveDate, TimeDelta};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::ScalarUDF;

use super::udf::{arc, list, udf};

const MAX: i64 = 10_000;

pub fn function() -> ScalarUDF {
    udf("sequence", args, returns, sequence)
}

fn args(t: &[DataType]) -> Result<Vec<DataType>> {
    let int = |t: &DataType| t.is_integer() || t.is_null();
    let date = |t: &DataType| matches!(t, DataType::Date32 | DataType::Date64);
    match t {
        [a, b] if int(a) && int(b) => Ok(vec![DataType::Int64; 2]),
        [a, b, c] if int(a) && int(b) && int(c) => Ok(vec![DataType::Int64; 3]),
        [a, b] if date(a) && date(b) => Ok(vec![DataType::Date32; 2]),
        [a, b, DataType::Interval(_)] if date(a) && date(b) => Ok(vec![
            DataType::Date32,
            DataType::Date32,
            DataType::Interval(IntervalUnit::MonthDayNano),
        ]),
        _ => plan_err!(
            "sequence takes (bigint, bigint [, bigint]) or (date, date [, interval]), not ({})",
            list(t)
        ),
    }
}

fn returns(t: &[DataType]) -> Result<DataType> {
    Ok(DataType::new_list(t[0].clone(), true))
}

fn check(start: i64, stop: i64, step: i64) -> Result<()> {
    if step == 0 {
        return exec_err!("step must not be zero");
    }
    if (step > 0 && stop < start) || (step < 0 && stop > start) {
        return exec_err!(
            "sequence stop value should be greater than or equal to start value if step is \
             greater than zero otherwise stop should be less than or equal to start"
        );
    }
    if (stop as i128 - start as i128) / step as i128 + 1 > MAX as i128 {
        return exec_err!("result of sequence function must not have more than {MAX} entries");
    }
    Ok(())
}

fn sequence(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    if a[0].data_type() == &DataType::Date32 {
        return dates(a, rows);
    }
    let (s, e) = (
        a[0].as_primitive::<Int64Type>(),
        a[1].as_primitive::<Int64Type>(),
    );
    let step = a.get(2).map(|x| x.as_primitive::<Int64Type>());
    let mut out = ListBuilder::new(Int64Builder::new());
    for r in 0..rows {
        if s.is_null(r) || e.is_null(r) || step.is_some_and(|x| x.is_null(r)) {
            out.append_null();
            continue;
        }
        let (start, stop) = (s.value(r), e.value(r));
        let by = step.map_or(if stop >= start { 1 } else { -1 }, |x| x.value(r));
        check(start, stop, by)?;
        let mut v = start;
        while (by > 0 && v <= stop) || (by < 0 && v >= stop) {
            out.values().append_value(v);
            match v.checked_add(by) {
                Some(n) => v = n,
                None => break,
            }
        }
        out.append(true);
    }
    Ok(arc(out.finish()))
}

fn dates(a: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
    let (s, e) = (
        a[0].as_primitive::<Date32Type>(),
        a[1].as_primitive::<Date32Type>(),
    );
    let step = a
        .get(2)
        .map(|x| x.as_primitive::<IntervalMonthDayNanoType>());
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let mut out = ListBuilder::new(Date32Builder::new());
    for r in 0..rows {
        if s.is_null(r) || e.is_null(r) || step.is_some_and(|x| x.is_null(r)) {
            out.append_null();
            continue;
        }
        let (start, stop) = (s.value(r) as i64, e.value(r) as i64);
        let (months, days) = match step.map(|x| x.value(r)) {
            None => (0, if stop >= start { 1 } else { -1 }),
            Some(i) if i.nanoseconds != 0 => {
                return exec_err!(
                    "sequence step must be a day interval if start and end values are dates"
                );
            }
            Some(i) => (i.months as i64, i.days as i64),
        };
        if months != 0 && days != 0 {
            return exec_err!("sequence step must be a whole number of days or of months");
        }
        let first = epoch + TimeDelta::days(start);
        let last = epoch + TimeDelta::days(stop);
        if months == 0 {
            check(start, stop, days)?;
        } else {
            let approx = (last.signed_duration_since(first).num_days()) * 12 / 365 / months;
            check(0, approx.max(0) * months.signum(), months)?;
            if (months > 0 && last < first) || (months < 0 && last > first) {
                check(start, stop, months)?;
            }
        }
        let mut k = 0i64;
        loop {
            let d = if months == 0 {
                first + TimeDelta::days(k * days)
            } else {
                let m = k * months;
                let shifted = if m >= 0 {
                    first.checked_add_months(Months::new(m as u32))
                } else {
                    first.checked_sub_months(Months::new((-m) as u32))
                };
                match shifted {
                    Some(d) => d,
                    None => break,
                }
            };
            let step_sign = if months != 0 { months } else { days };
            if (step_sign > 0 && d > last) || (step_sign < 0 && d < last) || k > MAX {
                break;
            }
            out.values().append_value((d - epoch).num_days() as i32);
            k += 1;
        }
        out.append(true);
    }
    Ok(arc(out.finish()))
}
