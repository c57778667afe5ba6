//! `tributary schema infer`: a schema TOML from sample NDJSON. Field order follows first
//! appearance; a field is `required` when every sampled record has it non-null; strings
//! that all parse as RFC 3339 become `timestamp(ms, UTC)`.

use std::io::BufRead;

use serde_json::Value;

use super::types::format_type;
use arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Null,
    Bool,
    Int,
    Float,
    Timestamp,
    Str,
    List(Box<Kind>),
    Struct(Vec<(String, Slot)>),
    /// Values of conflicting kinds: kept as the JSON text in a string column.
    Mixed,
}

#[derive(Debug, Clone, PartialEq)]
struct Slot {
    kind: Kind,
    /// Records (or parent objects) in which the key was present and non-null.
    present: usize,
}

fn kind_of(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(n) if n.is_i64() || n.is_u64() => Kind::Int,
        Value::Number(_) => Kind::Float,
        Value::String(s) => {
            if chrono::DateTime::parse_from_rfc3339(s).is_ok() {
                Kind::Timestamp
            } else {
                Kind::Str
            }
        }
        Value::Array(items) => {
            let mut k = Kind::Null;
            for i in items {
                k = merge(k, kind_of(i));
            }
            Kind::List(Box::new(k))
        }
        Value::Object(map) => {
            let mut fields = Vec::new();
            for (name, v) in map {
                fields.push((
                    name.clone(),
                    Slot {
                        kind: kind_of(v),
                        present: usize::from(!v.is_null()),
                    },
                ));
            }
            Kind::Struct(fields)
        }
    }
}

fn merge(a: Kind, b: Kind) -> Kind {
    use Kind::*;
    match (a, b) {
        (Null, x) | (x, Null) => x,
        (Int, Float) | (Float, Int) => Float,
        (Timestamp, Str) | (Str, Timestamp) => Str,
        (List(a), List(b)) => List(Box::new(merge(*a, *b))),
        (Struct(mut a), Struct(b)) => {
            for (name, slot) in b {
                match a.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, s)) => {
                        s.kind = merge(std::mem::replace(&mut s.kind, Null), slot.kind);
                        s.present += slot.present;
                    }
                    None => a.push((name, slot)),
                }
            }
            Struct(a)
        }
        (a, b) if a == b => a,
        _ => Mixed,
    }
}

fn to_arrow(k: &Kind, seen: usize) -> DataType {
    match k {
        Kind::Null | Kind::Str | Kind::Mixed => DataType::Utf8,
        Kind::Bool => DataType::Boolean,
        Kind::Int => DataType::Int64,
        Kind::Float => DataType::Float64,
        Kind::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        Kind::List(item) => DataType::List(Arc::new(Field::new("item", to_arrow(item, 0), true))),
        Kind::Struct(fields) => DataType::Struct(Fields::from(
            fields
                .iter()
                .map(|(n, s)| {
                    Field::new(
                        n,
                        to_arrow(&s.kind, s.present),
                        seen == 0 || s.present < seen,
                    )
                })
                .collect::<Vec<_>>(),
        )),
    }
}

/// Summary of an inference pass, for the header comment.
pub struct Inferred {
    pub toml: String,
    pub records: usize,
    pub skipped: usize,
}

/// Infers a schema from up to `max_records` lines of NDJSON.
pub fn infer(reader: impl BufRead, name: &str, max_records: usize) -> std::io::Result<Inferred> {
    let mut root = Kind::Struct(Vec::new());
    let mut records = 0;
    let mut skipped = 0;
    for line in reader.lines() {
        if records >= max_records {
            break;
        }
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(v @ Value::Object(_)) => {
                root = merge(root, kind_of(&v));
                records += 1;
            }
            _ => skipped += 1,
        }
    }
    let Kind::Struct(fields) = root else {
        return Err(std::io::Error::other("no JSON objects found"));
    };
    let mut out = format!(
        "# Inferred by `tributary schema infer` from {records} records{}.\n# Review types and `required` before use.\nname = \"{name}\"\n",
        if skipped > 0 {
            format!(" ({skipped} lines were not JSON objects and were skipped)")
        } else {
            String::new()
        }
    );
    let mut first_ts = None;
    for (fname, slot) in &fields {
        let t = to_arrow(&slot.kind, slot.present);
        if first_ts.is_none() && matches!(t, DataType::Timestamp(..)) {
            first_ts = Some(fname.clone());
        }
        out.push_str(&format!(
            "\n[[fields]]\nname = {}\ntype = \"{}\"\n",
            toml_string(fname),
            format_type(&t)
        ));
        if slot.present == records && records > 0 {
            out.push_str("required = true\n");
        }
    }
    if let Some(ts) = first_ts {
        out.push_str(&format!(
            "\n[[partitions]]\nname = \"dt\"\nfrom = {}\ntransform = \"day\"\n",
            toml_string(&ts)
        ));
    }
    Ok(Inferred {
        toml: out,
        records,
        skipped,
    })
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::TableSchema;
    use std::path::Path;

    #[test]
    fn infers_nested_and_timestamps_and_round_trips() {
        let data = r#"{"id":"a","ts":"2024-06-03T17:04:11.512Z","n":1,"items":[{"sku":"x","q":2}],"ship":{"city":"B"}}
{"id":"b","ts":"2024-06-03T17:05:11.512Z","n":2.5,"items":[],"ship":null}
not json
"#;
        let inf = infer(data.as_bytes(), "t", 100).unwrap();
        assert_eq!(inf.records, 2);
        assert_eq!(inf.skipped, 1);
        let s = TableSchema::parse(Path::new("t.toml"), &inf.toml, "t").unwrap();
        let names: Vec<&str> = s.fields.iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["id", "ts", "n", "items", "ship"]);
        assert_eq!(s.fields[2].data_type(), &DataType::Float64);
        assert!(!s.fields[0].is_nullable());
        assert!(s.fields[4].is_nullable());
        assert_eq!(s.partition_columns(), vec!["dt"]);
        assert_eq!(
            format_type(s.fields[3].data_type()),
            "list<struct<sku: string, q: int64>>"
        );
    }
}
