//! Table schemas: one TOML file per lake table under `schemas/`, turned into Arrow schemas.
//!
//! ```toml
//! name = "orders"
//! [[fields]]
//! name = "event_time"
//! type = "timestamp(ms, UTC)"
//! required = true
//! [[partitions]]
//! name = "dt"            # a Hive-style folder dt=2024-06-03/
//! from = "event_time"    # derived from event time, never from wall-clock time
//! transform = "day"      # day | hour | month | year | identity
//! ```

pub mod infer;
pub mod types;

use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::Deserialize;
use toml::Spanned;

use crate::diag::{Diagnostic, Diagnostics, SourceFile, did_you_mean};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchema {
    name: Option<Spanned<String>>,
    #[serde(default)]
    description: Option<String>,
    fields: Spanned<Vec<Spanned<RawField>>>,
    #[serde(default)]
    partitions: Vec<Spanned<RawPartition>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: Spanned<String>,
    #[serde(rename = "type")]
    ty: Spanned<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    #[allow(dead_code)] // documentation for readers of the schema file
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartition {
    name: Spanned<String>,
    #[serde(default)]
    from: Option<Spanned<String>>,
    #[serde(default = "default_partition_transform")]
    transform: Spanned<String>,
}

fn default_partition_transform() -> Spanned<String> {
    Spanned::new(0..0, "identity".to_string())
}

/// How a partition column's value is derived from a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionTransform {
    /// The field's own value (e.g. `country=DE`).
    Identity,
    Year,
    Month,
    Day,
    Hour,
}

impl PartitionTransform {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "identity" => Self::Identity,
            "year" => Self::Year,
            "month" => Self::Month,
            "day" => Self::Day,
            "hour" => Self::Hour,
            _ => return None,
        })
    }
    /// chrono format of a time-derived partition value.
    pub fn format(&self) -> Option<&'static str> {
        match self {
            Self::Identity => None,
            Self::Year => Some("%Y"),
            Self::Month => Some("%Y-%m"),
            Self::Day => Some("%Y-%m-%d"),
            Self::Hour => Some("%Y-%m-%dT%H"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PartitionSpec {
    /// Column name in the table (and folder name in `name=value/`).
    pub name: String,
    /// Field the value comes from.
    pub from: String,
    pub transform: PartitionTransform,
}

/// A validated table schema.
#[derive(Debug, Clone)]
pub struct TableSchema {
    pub name: String,
    pub description: Option<String>,
    /// The record fields (what decode produces and transforms must end with).
    pub fields: Vec<Field>,
    pub partitions: Vec<PartitionSpec>,
    pub file: SourceFile,
}

impl TableSchema {
    /// Loads `schemas_dir/<table>.toml`.
    pub fn load(schemas_dir: &Path, table: &str) -> Result<Self, Diagnostics> {
        let path = schemas_dir.join(format!("{table}.toml"));
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Diagnostic::file_level(&path, format!("cannot read schema of table `{table}`: {e}"))
                .with_hint(format!(
                    "create it by hand or with `tributary schema infer SAMPLE.ndjson --name {table} > {}`",
                    path.display()
                ))
        })?;
        Self::parse(&path, &text, table)
    }

    pub fn parse(path: &Path, text: &str, table: &str) -> Result<Self, Diagnostics> {
        let file = SourceFile::new(path, text);
        let raw: RawSchema = toml::from_str(text).map_err(|e| toml_error(&file, &e))?;
        let mut diags = Diagnostics::default();
        if let Some(n) = &raw.name
            && n.get_ref() != table
        {
            diags.push(
                file.error(
                    n.span(),
                    format!(
                        "schema names table `{}`, but the file is for `{table}`",
                        n.get_ref()
                    ),
                )
                .with_hint(format!(
                    "rename the file to {}.toml or set name = \"{table}\"",
                    n.get_ref()
                )),
            );
        }
        let mut fields: Vec<Field> = Vec::new();
        if raw.fields.get_ref().is_empty() {
            diags.push(file.error(raw.fields.span(), "a schema needs at least one field"));
        }
        for f in raw.fields.get_ref() {
            let f = f.get_ref();
            let name = f.name.get_ref();
            if name.is_empty() {
                diags.push(file.error(f.name.span(), "field name is empty"));
                continue;
            }
            if fields.iter().any(|x| x.name() == name) {
                diags.push(file.error(f.name.span(), format!("field `{name}` is declared twice")));
                continue;
            }
            match types::parse_type(f.ty.get_ref()) {
                Ok(t) => {
                    fields.push(Field::new(name, t, !f.required));
                }
                Err(e) => {
                    // +1 skips the opening quote of the TOML string.
                    let at = f.ty.span().start + 1 + e.offset;
                    diags.push(file.error(at..at + 1, e.message).with_hint(
                        "types: string, bool, int32, int64, float64, date, timestamp(ms, UTC), decimal(p, s), list<T>, struct<a: T, ...>, map<K, V>",
                    ));
                }
            }
        }
        let mut partitions = Vec::new();
        for p in &raw.partitions {
            let p = p.get_ref();
            let Some(transform) = PartitionTransform::parse(p.transform.get_ref()) else {
                diags.push(
                    file.error(
                        p.transform.span(),
                        format!("unknown partition transform `{}`", p.transform.get_ref()),
                    )
                    .with_hint("use one of: identity, year, month, day, hour"),
                );
                continue;
            };
            let from = p
                .from
                .as_ref()
                .map(|f| f.get_ref().clone())
                .unwrap_or_else(|| p.name.get_ref().clone());
            let from_span = p
                .from
                .as_ref()
                .map(|f| f.span())
                .unwrap_or_else(|| p.name.span());
            let Some(src) = fields.iter().find(|f| f.name() == &from) else {
                diags.push(
                    file.error(
                        from_span,
                        format!(
                            "partition `{}` derives from unknown field `{from}`",
                            p.name.get_ref()
                        ),
                    )
                    .with_hint(did_you_mean(
                        &from,
                        fields.iter().map(|f| f.name().as_str()),
                    )),
                );
                continue;
            };
            if transform == PartitionTransform::Identity {
                if p.name.get_ref() != &from {
                    diags.push(
                        file.error(
                            p.name.span(),
                            "an identity partition must be named like its field",
                        )
                        .with_hint(format!("set name = \"{from}\" or choose a time transform")),
                    );
                    continue;
                }
                if !matches!(
                    src.data_type(),
                    DataType::Utf8
                        | DataType::Int32
                        | DataType::Int64
                        | DataType::Date32
                        | DataType::Boolean
                        | DataType::Int16
                        | DataType::Int8
                ) {
                    diags.push(
                        file.error(
                            from_span,
                            format!(
                                "cannot partition by `{from}` of type {}",
                                types::format_type(src.data_type())
                            ),
                        )
                        .with_hint("partition by a string, integer, bool or date field"),
                    );
                    continue;
                }
            } else {
                if !matches!(src.data_type(), DataType::Timestamp(..) | DataType::Date32) {
                    diags.push(file.error(
                        from_span,
                        format!(
                            "`{}` partitions need a timestamp field; `{from}` is {}",
                            p.transform.get_ref(),
                            types::format_type(src.data_type())
                        ),
                    ));
                    continue;
                }
                if fields.iter().any(|f| f.name() == p.name.get_ref()) {
                    diags.push(file.error(p.name.span(), format!("partition column `{}` clashes with a field of that name", p.name.get_ref()))
                        .with_hint("derived partition columns are added to the table; name it differently (e.g. `dt`)"));
                    continue;
                }
            }
            partitions.push(PartitionSpec {
                name: p.name.get_ref().clone(),
                from,
                transform,
            });
        }
        if !diags.is_empty() {
            return Err(diags);
        }
        Ok(TableSchema {
            name: table.to_string(),
            description: raw.description,
            fields,
            partitions,
            file,
        })
    }

    /// Schema of the records (before derived partition columns are added).
    pub fn record_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(self.fields.clone()))
    }

    /// Schema of the lake table: record fields, then derived partition columns. Timestamps
    /// are microseconds, as Delta Lake stores them.
    pub fn table_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .fields
            .iter()
            .map(|f| f.clone().with_data_type(delta_type(f.data_type())))
            .collect();
        for p in &self.partitions {
            if p.transform != PartitionTransform::Identity {
                fields.push(Field::new(&p.name, DataType::Utf8, true));
            }
        }
        Arc::new(Schema::new(fields))
    }

    pub fn partition_columns(&self) -> Vec<String> {
        self.partitions.iter().map(|p| p.name.clone()).collect()
    }
}

/// The Delta Lake representation of an Arrow type (timestamps in microseconds, UTC).
pub fn delta_type(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(_, Some(_)) => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        DataType::Timestamp(_, None) => DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::List(f) => DataType::List(Arc::new(
            f.as_ref().clone().with_data_type(delta_type(f.data_type())),
        )),
        DataType::Struct(fs) => DataType::Struct(
            fs.iter()
                .map(|f| f.as_ref().clone().with_data_type(delta_type(f.data_type())))
                .collect(),
        ),
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        DataType::Float16 => DataType::Float32,
        other => other.clone(),
    }
}

/// A TOML syntax or shape error as a diagnostic.
pub fn toml_error(file: &SourceFile, e: &toml::de::Error) -> Diagnostics {
    let span = e.span().unwrap_or(0..0);
    let msg = e.message().trim().to_string();
    let hint = if msg.contains("unknown field") {
        Some("remove the key or fix its spelling; the expected keys are listed above".to_string())
    } else if msg.contains("invalid type") {
        Some("check the value's type (quoted string, number, boolean, table or array)".to_string())
    } else if msg.contains("missing field") {
        Some("add the required key".to_string())
    } else {
        None
    };
    file.error(span, msg).with_hint_opt(hint).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDERS: &str = r#"
name = "orders"
[[fields]]
name = "event_id"
type = "string"
required = true
[[fields]]
name = "event_time"
type = "timestamp(ms, UTC)"
required = true
[[fields]]
name = "items"
type = "list<struct<sku: string, qty: int32, price: float64>>"
[[partitions]]
name = "dt"
from = "event_time"
transform = "day"
"#;

    #[test]
    fn parses_schema_with_partitions() {
        let s = TableSchema::parse(Path::new("orders.toml"), ORDERS, "orders").unwrap();
        assert_eq!(s.fields.len(), 3);
        assert!(!s.fields[0].is_nullable());
        assert_eq!(s.partition_columns(), vec!["dt"]);
        let t = s.table_schema();
        assert_eq!(t.fields().len(), 4);
        assert_eq!(
            t.field(1).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
    }

    #[test]
    fn errors_carry_line_and_column() {
        let bad = ORDERS.replace("list<struct<sku", "list<strct<sku");
        let e = TableSchema::parse(Path::new("orders.toml"), &bad, "orders").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("orders.toml:13:14"), "{s}");
        let bad = ORDERS.replace("from = \"event_time\"", "from = \"event_tme\"");
        let s = TableSchema::parse(Path::new("o.toml"), &bad, "orders")
            .unwrap_err()
            .to_string();
        assert!(s.contains("did you mean `event_time`"), "{s}");
        let bad = ORDERS.replace(
            "required = true\n[[fields]]\nname = \"event_time\"",
            "requird = true\n[[fields]]\nname = \"event_time\"",
        );
        let s = TableSchema::parse(Path::new("o.toml"), &bad, "orders")
            .unwrap_err()
            .to_string();
        assert!(
            s.contains("o.toml:6:1") && s.contains("unknown field"),
            "{s}"
        );
    }
}
