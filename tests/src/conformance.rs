//! The Trino conformance suite's machinery: cases carried over from Trino's own function
//! tests as data (`tests/sql/trino/*.jsonl`, written by `scripts/trino_cases.py`), run
//! through the query engine, and judged against Trino's answer.
//!
//! A case passes when its value and type match Trino's (or, where Trino fails, when the
//! query fails too). Otherwise it is an *error* (the query fails: an unsupported form, never
//! a wrong answer), *type* (the value matches but its type does not), or *wrong* (a
//! different value, or a value where Trino fails). Each case records the outcome it is
//! allowed (`status`): none means it must pass, `unsupported` that it may fail with an
//! error; the suite fails if any case does worse than its record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, TimeUnit};
use serde_json::{Value, json};
use tributary::query::{QueryEngine, QueryResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Pass,
    Error,
    Type,
    Wrong,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Error => "unsupported",
            Outcome::Type => "type",
            Outcome::Wrong => "wrong",
        }
    }
    /// The outcome a case's recorded status allows at worst.
    pub fn allowed(status: Option<&str>) -> Outcome {
        match status {
            None => Outcome::Pass,
            Some("unsupported") => Outcome::Error,
            Some("type") => Outcome::Type,
            _ => Outcome::Wrong,
        }
    }
}

pub fn cases_dir() -> PathBuf {
    crate::repo_root().join("tests/sql/trino")
}

/// Every cases file: (test class, its cases in file order).
pub fn load() -> Vec<(String, Vec<Value>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let cases = std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            (f.file_stem().unwrap().to_string_lossy().into_owned(), cases)
        })
        .collect()
}

pub fn save(class: &str, cases: &[Value]) {
    let mut text = String::new();
    for c in cases {
        text.push_str(&serde_json::to_string(c).unwrap());
        text.push('\n');
    }
    std::fs::write(cases_dir().join(format!("{class}.jsonl")), text).unwrap();
}

/// The statement a case runs: a query as written; an expression as `SELECT expr`, over a
/// one-row VALUES of its bindings (as Trino's test harness binds them).
pub fn statement(case: &Value) -> String {
    let sql = case["sql"].as_str().unwrap();
    if case["kind"] == "query" {
        return sql.to_string();
    }
    expression_statement(sql, case["bindings"].as_array().map(Vec::as_slice))
}

fn expression_statement(sql: &str, bindings: Option<&[Value]>) -> String {
    match bindings {
        Some(b) if !b.is_empty() => {
            let names: Vec<&str> = b.iter().map(|x| x[0].as_str().unwrap()).collect();
            let values: Vec<&str> = b.iter().map(|x| x[1].as_str().unwrap()).collect();
            format!(
                "SELECT {sql} FROM (VALUES ({})) AS t({})",
                values.join(", "),
                names.join(", ")
            )
        }
        _ => format!("SELECT {sql}"),
    }
}

/// A result's rows as JSON values (each row an array), and its column types in Trino's
/// names.
pub fn rows(result: &QueryResult) -> (Vec<Value>, Vec<String>) {
    let types = result
        .schema
        .fields()
        .iter()
        .map(|f| trino_type(f.data_type()))
        .collect();
    let mut out = Vec::new();
    for b in &result.batches {
        for r in 0..b.num_rows() {
            out.push(Value::Array(
                b.columns().iter().map(|c| cell(c, r)).collect(),
            ));
        }
    }
    (out, types)
}

/// An Arrow type by Trino's name for it.
pub fn trino_type(t: &DataType) -> String {
    match t {
        DataType::Null => "unknown".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "real".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "varchar".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "varbinary".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(unit, tz) => {
            let p = match unit {
                TimeUnit::Second => 0,
                TimeUnit::Millisecond => 3,
                TimeUnit::Microsecond => 6,
                TimeUnit::Nanosecond => 9,
            };
            match tz {
                Some(_) => format!("timestamp({p}) with time zone"),
                None => format!("timestamp({p})"),
            }
        }
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            format!("array({})", trino_type(f.data_type()))
        }
        DataType::Struct(fs) => format!(
            "row({})",
            fs.iter()
                .map(|f| trino_type(f.data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        DataType::Map(f, _) => match f.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "map({}, {})",
                trino_type(kv[0].data_type()),
                trino_type(kv[1].data_type())
            ),
            other => format!("map?{other}"),
        },
        other => format!("{other}"),
    }
}

/// Whether our type is the type Trino names. Lengths of VARCHAR are not types here (Arrow
/// strings have none), JSON values are strings, and timestamps are compared by instant at
/// our precision (microseconds).
pub fn same_type(expected: &str, ours: &str) -> bool {
    let e = expected.replace(", ", ",");
    let o = ours.replace(", ", ",");
    let norm = |s: &str| {
        let s = regex_lite_varchar(s);
        s.replace("json", "varchar")
    };
    let (e, o) = (norm(&e), norm(&o));
    if e == o {
        return true;
    }
    let ts = |s: &str| {
        s.starts_with("timestamp(")
            .then(|| s.contains("with time zone"))
    };
    matches!((ts(&e), ts(&o)), (Some(a), Some(b)) if a == b)
}

/// `varchar(12)` → `varchar`.
fn regex_lite_varchar(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("varchar(") {
        out.push_str(&rest[..i + 7]);
        let after = &rest[i + 8..];
        let close = after.find(')').map_or(after.len(), |c| c + 1);
        rest = &after[close..];
    }
    out.push_str(rest);
    out
}

/// One value as JSON: numbers as numbers (non-finite floats as strings), decimals as
/// `{"decimal": "1.50"}`, maps as `{"map": [[k, v], …]}`, rows and arrays as arrays, dates
/// and timestamps as ISO text.
pub fn cell(a: &ArrayRef, i: usize) -> Value {
    use arrow::datatypes::*;
    // A NullArray has no null buffer: its values are NULL all the same.
    if a.is_null(i) || a.data_type() == &DataType::Null {
        return Value::Null;
    }
    let float = |v: f64| {
        if v.is_nan() {
            json!("NaN")
        } else if v.is_infinite() {
            json!(if v > 0.0 { "Infinity" } else { "-Infinity" })
        } else {
            json!(v)
        }
    };
    match a.data_type() {
        DataType::Boolean => json!(a.as_boolean().value(i)),
        DataType::Int8 => json!(a.as_primitive::<Int8Type>().value(i)),
        DataType::Int16 => json!(a.as_primitive::<Int16Type>().value(i)),
        DataType::Int32 => json!(a.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => json!(a.as_primitive::<Int64Type>().value(i)),
        DataType::UInt64 => json!(a.as_primitive::<UInt64Type>().value(i)),
        DataType::UInt32 => json!(a.as_primitive::<UInt32Type>().value(i)),
        // A REAL by its shortest decimal text, as Trino's tests write it (2.3, not 2.29999…).
        DataType::Float32 => {
            let v = a.as_primitive::<Float32Type>().value(i);
            float(v.to_string().parse::<f64>().unwrap_or(v as f64))
        }
        DataType::Float64 => float(a.as_primitive::<Float64Type>().value(i)),
        DataType::Decimal128(_, s) => {
            let v = a.as_primitive::<Decimal128Type>().value(i);
            json!({ "decimal": Decimal128Type::format_decimal(v, 38, *s) })
        }
        DataType::Utf8 => json!(a.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => json!(a.as_string::<i64>().value(i)),
        DataType::Utf8View => json!(a.as_string_view().value(i)),
        DataType::List(_) => list(&a.as_list::<i32>().value(i)),
        DataType::LargeList(_) => list(&a.as_list::<i64>().value(i)),
        DataType::FixedSizeList(..) => list(&a.as_fixed_size_list().value(i)),
        DataType::Struct(_) => {
            Value::Array(a.as_struct().columns().iter().map(|c| cell(c, i)).collect())
        }
        DataType::Map(..) => {
            let m = a.as_map().value(i);
            let (k, v) = (m.column(0), m.column(1));
            json!({ "map": (0..m.len()).map(|j| json!([cell(k, j), cell(v, j)])).collect::<Vec<_>>() })
        }
        // A timestamp with a time zone by its instant (UTC), as Trino compares them.
        DataType::Timestamp(unit, Some(_)) => {
            let utc = arrow::compute::cast(
                &a.slice(i, 1),
                &DataType::Timestamp(*unit, Some("UTC".into())),
            )
            .and_then(|u| arrow::compute::cast(&u, &DataType::Timestamp(*unit, None)));
            match utc {
                Ok(u) => cell(&u, 0),
                Err(e) => json!(format!("<{e}>")),
            }
        }
        _ => {
            // Dates, timestamps, binaries …: Arrow's display text.
            let f = arrow::util::display::ArrayFormatter::try_new(
                a.as_ref(),
                &arrow::util::display::FormatOptions::default(),
            );
            match f {
                Ok(f) => json!(f.value(i).to_string()),
                Err(e) => json!(format!("<{e}>")),
            }
        }
    }
}

fn list(a: &ArrayRef) -> Value {
    Value::Array((0..a.len()).map(|j| cell(a, j)).collect())
}

/// Whether `ours` is the value Trino expects: floats to 1e-12 relative, decimals by their
/// text, maps in any order.
pub fn same_value(expected: &Value, ours: &Value) -> bool {
    match (expected, ours) {
        (Value::Number(e), Value::Number(o)) => {
            if e.is_f64() || o.is_f64() {
                let (e, o) = (
                    e.as_f64().unwrap_or(f64::NAN),
                    o.as_f64().unwrap_or(f64::NAN),
                );
                e == o || ((e - o).abs() <= 1e-12 * e.abs().max(o.abs()))
            } else {
                e == o
            }
        }
        // Decimals by value: a different scale is a different type, judged by the type.
        (Value::Object(e), Value::Object(o))
            if e.contains_key("decimal") && o.contains_key("decimal") =>
        {
            decimal_text(&e["decimal"]) == decimal_text(&o["decimal"])
        }
        // A decimal against a number: the same value in another type (judged by the type).
        (Value::Object(d), Value::Number(n)) | (Value::Number(n), Value::Object(d))
            if d.contains_key("decimal") =>
        {
            let text = decimal_text(&d["decimal"]);
            text.parse::<f64>().ok() == n.as_f64()
        }
        (Value::Array(e), Value::Array(o)) => {
            e.len() == o.len() && e.iter().zip(o).all(|(e, o)| same_value(e, o))
        }
        (Value::Object(e), Value::Object(o)) if e.contains_key("map") && o.contains_key("map") => {
            let (Some(e), Some(o)) = (e["map"].as_array(), o["map"].as_array()) else {
                return false;
            };
            e.len() == o.len()
                && e.iter().all(|kv| {
                    o.iter()
                        .any(|okv| same_value(&kv[0], &okv[0]) && same_value(&kv[1], &okv[1]))
                })
        }
        (e, o) => e == o,
    }
}

/// A decimal's text without trailing fractional zeros (`-1.50` → `-1.5`, `0.00` → `0`).
fn decimal_text(v: &Value) -> String {
    let raw = v.as_str().unwrap_or_default();
    // Java's decimal text may carry leading zeros (0000000001.00).
    let (sign, digits) = raw.strip_prefix('-').map_or(("", raw), |d| ("-", d));
    let digits = digits.trim_start_matches('0');
    let digits = if digits.is_empty() || digits.starts_with('.') {
        format!("0{digits}")
    } else {
        digits.to_string()
    };
    let s = format!("{sign}{digits}");
    let s = s.as_str();
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    };
    if s == "-0" { "0".into() } else { s.to_string() }
}

/// One case's outcome, and a line saying why when it did not pass.
pub async fn judge(engine: &QueryEngine, case: &Value) -> (Outcome, String) {
    let sql = statement(case);
    let got = engine.sql(&sql).await;
    let expect = &case["expect"];
    if let Some(message) = expect.get("error") {
        return match got {
            Err(_) => (Outcome::Pass, String::new()),
            Ok(r) => (
                Outcome::Wrong,
                format!(
                    "Trino fails ({}), we answer {:?}",
                    message.as_str().unwrap_or(""),
                    rows(&r).0
                ),
            ),
        };
    }
    let result = match got {
        Ok(r) => r,
        Err(e) => return (Outcome::Error, first_line(&e.to_string())),
    };
    let (rows_got, types) = rows(&result);
    if case["kind"] == "query" {
        return judge_rows(engine, case, rows_got).await;
    }
    let ours = rows_got
        .first()
        .and_then(|r| r.get(0))
        .cloned()
        .unwrap_or(Value::Null);
    let our_type = types.first().cloned().unwrap_or_default();
    let (want, want_type) = if let Some(other) = expect.get("sql") {
        let sql = expression_statement(
            other.as_str().unwrap_or(""),
            case["bindings"].as_array().map(Vec::as_slice),
        );
        match engine.sql(&sql).await {
            Ok(r) => {
                let (v, t) = rows(&r);
                (
                    v.first()
                        .and_then(|r| r.get(0))
                        .cloned()
                        .unwrap_or(Value::Null),
                    t.first().cloned(),
                )
            }
            Err(e) => {
                return (
                    Outcome::Error,
                    format!(
                        "the expected value's SQL fails: {}",
                        first_line(&e.to_string())
                    ),
                );
            }
        }
    } else {
        (
            expect["value"].clone(),
            case["type"].as_str().map(str::to_string),
        )
    };
    if !same_value(&want, &ours) {
        return (Outcome::Wrong, format!("expected {want}, got {ours}"));
    }
    match want_type {
        Some(t) if !same_type(&t, &our_type) => {
            (Outcome::Type, format!("expected type {t}, got {our_type}"))
        }
        _ => (Outcome::Pass, String::new()),
    }
}

async fn judge_rows(engine: &QueryEngine, case: &Value, mut got: Vec<Value>) -> (Outcome, String) {
    let expect = &case["expect"];
    let mut want = match (expect.get("sql"), expect.get("rows")) {
        (Some(sql), _) => match engine.sql(sql.as_str().unwrap_or("")).await {
            Ok(r) => rows(&r).0,
            Err(e) => {
                return (
                    Outcome::Error,
                    format!(
                        "the expected rows' SQL fails: {}",
                        first_line(&e.to_string())
                    ),
                );
            }
        },
        (_, Some(rows)) => rows.as_array().cloned().unwrap_or_default(),
        _ => return (Outcome::Error, "no expectation".into()),
    };
    if case["ordered"] != true {
        let key = |v: &Value| v.to_string();
        got.sort_by_key(key);
        want.sort_by_key(key);
    }
    if want.len() == got.len() && want.iter().zip(&got).all(|(w, g)| same_value(w, g)) {
        (Outcome::Pass, String::new())
    } else {
        (
            Outcome::Wrong,
            format!("expected rows {want:?}, got {got:?}"),
        )
    }
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    line.chars().take(200).collect()
}

/// Pass counts per class: (cases, pass, error, type, wrong).
pub type Tally = BTreeMap<String, [usize; 5]>;

/// The report printed by the test command.
pub fn report(tally: &Tally) -> String {
    let mut out = String::from(
        "Trino conformance (tests/sql/trino: cases from Trino's own function tests)\n",
    );
    out.push_str(&format!(
        "{:<28} {:>6} {:>6} {:>7} {:>6} {:>6} {:>7}\n",
        "test class", "cases", "pass", "unsupp", "type", "wrong", "pass %"
    ));
    let mut total = [0usize; 5];
    for (class, t) in tally {
        for k in 0..5 {
            total[k] += t[k];
        }
        out.push_str(&line(class, t));
    }
    out.push_str(&line("overall", &total));
    out
}

fn line(name: &str, t: &[usize; 5]) -> String {
    format!(
        "{:<28} {:>6} {:>6} {:>7} {:>6} {:>6} {:>6.1}%\n",
        name,
        t[0],
        t[1],
        t[2],
        t[3],
        t[4],
        100.0 * t[1] as f64 / t[0].max(1) as f64
    )
}

/// Where the test command finds the report to print.
pub fn report_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("target"));
    target.join("trino-conformance.txt")
}

pub fn write_report(text: &str) {
    let p = report_path();
    if let Some(dir) = p.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(Path::new(&p), text);
}

/// Per Trino function: whether queries can call it, and how its cases fare
/// (pass, not pass, of which wrong or a different type).
#[derive(Default)]
pub struct FunctionTally {
    pub cases: usize,
    pub pass: usize,
    pub different: usize,
}

/// The function a case's SQL calls first (`round(…)` → `round`), if it starts with a call.
pub fn called(sql: &str) -> Option<String> {
    let name: String = sql
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let rest = sql.trim_start()[name.len()..].trim_start();
    (!name.is_empty() && rest.starts_with('(')).then(|| name.to_ascii_lowercase())
}

/// docs/sql.md's compatibility matrix: every function of Trino's list
/// (tests/sql/trino/functions.txt) with where it stands here.
pub fn matrix(
    known: &std::collections::BTreeSet<String>,
    tally: &BTreeMap<String, FunctionTally>,
) -> String {
    let list = std::fs::read_to_string(cases_dir().join("functions.txt")).unwrap_or_default();
    let mut out = String::from("| function | here | Trino's cases passed |\n|---|---|---|\n");
    for name in list.lines().filter(|l| !l.trim().is_empty()) {
        let lower = name.to_ascii_lowercase();
        let t = tally.get(&lower);
        let here = match (known.contains(&lower), t) {
            (false, _) => "unsupported",
            (true, Some(t)) if t.different > 0 => "different",
            (true, Some(t)) if t.pass < t.cases => "partial",
            (true, _) => "supported",
        };
        let cases = t.map_or("–".to_string(), |t| format!("{}/{}", t.pass, t.cases));
        out.push_str(&format!("| `{name}` | {here} | {cases} |\n"));
    }
    out
}

/// Replaces the text between `<!-- begin NAME -->` and `<!-- end NAME -->` in docs/sql.md.
pub fn write_doc_section(name: &str, text: &str) {
    let path = crate::repo_root().join("docs/sql.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    let (begin, end) = (
        format!("<!-- begin {name} -->\n"),
        format!("<!-- end {name} -->"),
    );
    let (Some(a), Some(b)) = (doc.find(&begin), doc.find(&end)) else {
        return;
    };
    let updated = format!("{}{begin}{text}{}", &doc[..a], &doc[b..]);
    std::fs::write(path, updated).unwrap();
}
