//! The type language of schema files: `string`, `int64`, `float64`, `bool`, `date`,
//! `timestamp(ms, UTC)`, `decimal(10, 2)`, `list<T>`, `struct<name: T, ...>`, `map<K, V>`.
//! Written to read like Athena/Arrow type names, parsed into Arrow `DataType`s.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};

/// A parse error at a byte offset within the type string.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeError {
    pub offset: usize,
    pub message: String,
}

const NAMES: &[&str] = &[
    "string",
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float32",
    "float64",
    "date",
    "timestamp",
    "decimal",
    "binary",
    "list",
    "struct",
    "map",
];

pub fn parse_type(s: &str) -> Result<DataType, TypeError> {
    let mut p = Parser { s, pos: 0 };
    let t = p.ty()?;
    p.ws();
    if p.pos < s.len() {
        return Err(p.err("unexpected text after the type"));
    }
    Ok(t)
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, m: impl Into<String>) -> TypeError {
        TypeError {
            offset: self.pos,
            message: m.into(),
        }
    }
    fn ws(&mut self) {
        while self.s[self.pos..].starts_with(char::is_whitespace) {
            self.pos += 1;
        }
    }
    fn eat(&mut self, c: char) -> bool {
        self.ws();
        if self.s[self.pos..].starts_with(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: char) -> Result<(), TypeError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.err(format!("expected `{c}`")))
        }
    }
    fn ident(&mut self) -> Result<&str, TypeError> {
        self.ws();
        let start = self.pos;
        while let Some(c) = self.s[self.pos..].chars().next() {
            if c.is_alphanumeric() || c == '_' {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        if start == self.pos {
            return Err(self.err("expected a name"));
        }
        Ok(&self.s[start..self.pos])
    }
    fn number(&mut self) -> Result<u32, TypeError> {
        let at = self.pos;
        let id = self.ident()?;
        id.parse().map_err(|_| TypeError {
            offset: at,
            message: format!("expected a number, found `{id}`"),
        })
    }

    fn ty(&mut self) -> Result<DataType, TypeError> {
        self.ws();
        let at = self.pos;
        let name = self.ident()?.to_ascii_lowercase();
        Ok(match name.as_str() {
            "string" | "utf8" | "varchar" => DataType::Utf8,
            "bool" | "boolean" => DataType::Boolean,
            "int8" | "tinyint" => DataType::Int8,
            "int16" | "smallint" => DataType::Int16,
            "int32" | "int" | "integer" => DataType::Int32,
            "int64" | "bigint" | "long" => DataType::Int64,
            "uint8" => DataType::UInt8,
            "uint16" => DataType::UInt16,
            "uint32" => DataType::UInt32,
            "uint64" => DataType::UInt64,
            "float32" | "float" | "real" => DataType::Float32,
            "float64" | "double" => DataType::Float64,
            "date" => DataType::Date32,
            "binary" => DataType::Binary,
            "timestamp" => {
                if !self.eat('(') {
                    return Ok(DataType::Timestamp(
                        TimeUnit::Millisecond,
                        Some("UTC".into()),
                    ));
                }
                let uat = self.pos;
                let unit = match self.ident()? {
                    "s" => TimeUnit::Second,
                    "ms" => TimeUnit::Millisecond,
                    "us" => TimeUnit::Microsecond,
                    "ns" => TimeUnit::Nanosecond,
                    other => {
                        return Err(TypeError {
                            offset: uat,
                            message: format!("unknown time unit `{other}`: use s, ms, us or ns"),
                        });
                    }
                };
                let tz = if self.eat(',') {
                    self.ws();
                    let start = self.pos;
                    while let Some(c) = self.s[self.pos..].chars().next() {
                        if c == ')' || c.is_whitespace() {
                            break;
                        }
                        self.pos += c.len_utf8();
                    }
                    Some(Arc::from(&self.s[start..self.pos]))
                } else {
                    None
                };
                self.expect(')')?;
                DataType::Timestamp(unit, tz)
            }
            "decimal" => {
                self.expect('(')?;
                let p = self.number()?;
                self.expect(',')?;
                let s = self.number()?;
                self.expect(')')?;
                if !(1..=38).contains(&p) || s > p {
                    return Err(TypeError {
                        offset: at,
                        message: format!(
                            "decimal({p}, {s}) is out of range: precision 1..=38, scale <= precision"
                        ),
                    });
                }
                DataType::Decimal128(p as u8, s as i8)
            }
            "list" | "array" => {
                self.expect('<')?;
                let item = self.ty()?;
                self.expect('>')?;
                DataType::List(Arc::new(Field::new("item", item, true)))
            }
            "struct" => {
                self.expect('<')?;
                let mut fields = Vec::new();
                loop {
                    let fname = self.ident()?.to_string();
                    self.expect(':')?;
                    let t = self.ty()?;
                    // `name: type not null` marks a required nested field.
                    let save = self.pos;
                    let nullable = match self.ident() {
                        Ok(w) if w.eq_ignore_ascii_case("not") => {
                            let w2 = self.ident()?;
                            if !w2.eq_ignore_ascii_case("null") {
                                return Err(self.err("expected `not null`"));
                            }
                            false
                        }
                        _ => {
                            self.pos = save;
                            true
                        }
                    };
                    fields.push(Field::new(fname, t, nullable));
                    if !self.eat(',') {
                        break;
                    }
                }
                self.expect('>')?;
                DataType::Struct(Fields::from(fields))
            }
            "map" => {
                self.expect('<')?;
                let k = self.ty()?;
                self.expect(',')?;
                let v = self.ty()?;
                self.expect('>')?;
                let entries = Field::new(
                    "key_value",
                    DataType::Struct(Fields::from(vec![
                        Field::new("key", k, false),
                        Field::new("value", v, true),
                    ])),
                    false,
                );
                DataType::Map(Arc::new(entries), false)
            }
            other => {
                let hint = crate::diag::did_you_mean(other, NAMES.iter().copied());
                return Err(TypeError {
                    offset: at,
                    message: format!("unknown type `{other}`: {hint}"),
                });
            }
        })
    }
}

/// The schema-file spelling of an Arrow type (inverse of [`parse_type`]).
pub fn format_type(t: &DataType) -> String {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Boolean => "bool".into(),
        DataType::Int8 => "int8".into(),
        DataType::Int16 => "int16".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::UInt8 => "uint8".into(),
        DataType::UInt16 => "uint16".into(),
        DataType::UInt32 => "uint32".into(),
        DataType::UInt64 => "uint64".into(),
        DataType::Float16 | DataType::Float32 => "float32".into(),
        DataType::Float64 => "float64".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        DataType::Timestamp(u, tz) => {
            let u = match u {
                TimeUnit::Second => "s",
                TimeUnit::Millisecond => "ms",
                TimeUnit::Microsecond => "us",
                TimeUnit::Nanosecond => "ns",
            };
            match tz {
                Some(tz) => format!("timestamp({u}, {tz})"),
                None => format!("timestamp({u})"),
            }
        }
        DataType::Decimal128(p, s) => format!("decimal({p}, {s})"),
        DataType::List(f) | DataType::LargeList(f) => {
            format!("list<{}>", format_type(f.data_type()))
        }
        DataType::Struct(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|f| {
                    let nn = if f.is_nullable() { "" } else { " not null" };
                    format!("{}: {}{nn}", f.name(), format_type(f.data_type()))
                })
                .collect();
            format!("struct<{}>", inner.join(", "))
        }
        DataType::Map(f, _) => match f.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "map<{}, {}>",
                format_type(kv[0].data_type()),
                format_type(kv[1].data_type())
            ),
            other => format_type(other),
        },
        DataType::Null => "string".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_round_trip() {
        for s in [
            "string",
            "int64",
            "timestamp(ms, UTC)",
            "decimal(10, 2)",
            "list<struct<sku: string, qty: int32 not null, price: float64>>",
            "struct<city: string, zip: string>",
            "map<string, int64>",
        ] {
            let t = parse_type(s).unwrap();
            assert_eq!(format_type(&t), s, "{s}");
        }
    }

    #[test]
    fn errors_point_into_the_string() {
        let e = parse_type("list<strnig>").unwrap_err();
        assert_eq!(e.offset, 5);
        assert!(e.message.contains("did you mean `string`"), "{}", e.message);
        let e = parse_type("timestamp(xs)").unwrap_err();
        assert_eq!(e.offset, 10);
        assert!(parse_type("int64 extra").is_err());
    }
}
