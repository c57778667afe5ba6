//! Transforms implemented directly on Arrow arrays: `rename`, `cast`, `hash`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringBuilder};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::util::display::FormatOptions;
use sha2::{Digest, Sha256};

use super::{BuildError, Signature, Transform};
use crate::error::Result;

#[derive(Debug)]
pub struct RenameTransform {
    sig: Signature,
}

impl RenameTransform {
    pub fn new(
        label: String,
        input: SchemaRef,
        mapping: &[(String, String)],
    ) -> Result<Self, BuildError> {
        let fields: Vec<Field> = input
            .fields()
            .iter()
            .map(
                |f| match mapping.iter().find(|(from, _)| from == f.name()) {
                    Some((_, to)) => f.as_ref().clone().with_name(to),
                    None => f.as_ref().clone(),
                },
            )
            .collect();
        for (i, f) in fields.iter().enumerate() {
            if fields[..i].iter().any(|g| g.name() == f.name()) {
                return Err(BuildError::new(format!(
                    "renaming produces two columns named `{}`",
                    f.name()
                )));
            }
        }
        Ok(Self {
            sig: Signature {
                label,
                input,
                output: Arc::new(Schema::new(fields)),
            },
        })
    }
}

impl Transform for RenameTransform {
    fn signature(&self) -> &Signature {
        &self.sig
    }
    fn apply(&self, batch: RecordBatch) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(
            self.sig.output.clone(),
            batch.columns().to_vec(),
        )?)
    }
}

#[derive(Debug)]
pub struct CastTransform {
    sig: Signature,
    /// Per input column: the type to cast to, if any.
    targets: Vec<Option<DataType>>,
}

impl CastTransform {
    pub fn new(
        label: String,
        input: SchemaRef,
        columns: &[(String, DataType)],
    ) -> Result<Self, BuildError> {
        let mut targets = Vec::new();
        let mut fields = Vec::new();
        for f in input.fields() {
            match columns.iter().find(|(c, _)| c == f.name()) {
                Some((_, t)) => {
                    if !arrow::compute::can_cast_types(f.data_type(), t) {
                        return Err(BuildError {
                            message: format!(
                                "cannot cast `{}` from {} to {}",
                                f.name(),
                                crate::schema::types::format_type(f.data_type()),
                                crate::schema::types::format_type(t)
                            ),
                            name: Some(f.name().clone()),
                            hint: None,
                        });
                    }
                    targets.push(Some(t.clone()));
                    fields.push(f.as_ref().clone().with_data_type(t.clone()));
                }
                None => {
                    targets.push(None);
                    fields.push(f.as_ref().clone());
                }
            }
        }
        Ok(Self {
            sig: Signature {
                label,
                input,
                output: Arc::new(Schema::new(fields)),
            },
            targets,
        })
    }
}

impl Transform for CastTransform {
    fn signature(&self) -> &Signature {
        &self.sig
    }
    fn apply(&self, batch: RecordBatch) -> Result<RecordBatch> {
        // Strict casts: a value that does not convert fails the batch (and dead-letters it)
        // rather than silently becoming null.
        let opts = CastOptions {
            safe: false,
            format_options: FormatOptions::default(),
        };
        let cols = batch
            .columns()
            .iter()
            .zip(&self.targets)
            .map(|(c, t)| match t {
                Some(t) => cast_with_options(c, t, &opts),
                None => Ok(c.clone()),
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(RecordBatch::try_new(self.sig.output.clone(), cols)?)
    }
}

/// One-way hash of PII columns: hex SHA-256 of `salt || value`. Nulls stay null; the column
/// becomes a string column.
#[derive(Debug)]
pub struct HashTransform {
    sig: Signature,
    hashed: Vec<bool>,
    salt: String,
}

impl HashTransform {
    pub fn new(label: String, input: SchemaRef, columns: &[String], salt: String) -> Self {
        let hashed: Vec<bool> = input
            .fields()
            .iter()
            .map(|f| columns.contains(f.name()))
            .collect();
        let fields: Vec<Field> = input
            .fields()
            .iter()
            .zip(&hashed)
            .map(|(f, h)| {
                if *h {
                    f.as_ref().clone().with_data_type(DataType::Utf8)
                } else {
                    f.as_ref().clone()
                }
            })
            .collect();
        Self {
            sig: Signature {
                label,
                input,
                output: Arc::new(Schema::new(fields)),
            },
            hashed,
            salt,
        }
    }

    fn hash_column(&self, col: &ArrayRef) -> Result<ArrayRef> {
        let strings = cast_with_options(col, &DataType::Utf8, &CastOptions::default())?;
        let strings = strings
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .ok_or_else(|| {
                crate::error::Error::Internal("cast to Utf8 gave another type".into())
            })?;
        let mut out = StringBuilder::with_capacity(strings.len(), strings.len() * 64);
        let mut hex_buf = [0u8; 64];
        for v in strings.iter() {
            match v {
                Some(v) => {
                    let mut h = Sha256::new();
                    h.update(self.salt.as_bytes());
                    h.update(v.as_bytes());
                    let digest = h.finalize();
                    hex::encode_to_slice(digest, &mut hex_buf)
                        .map_err(|e| crate::error::Error::Internal(e.to_string()))?;
                    out.append_value(std::str::from_utf8(&hex_buf).unwrap_or_default());
                }
                None => out.append_null(),
            }
        }
        Ok(Arc::new(out.finish()))
    }
}

impl Transform for HashTransform {
    fn signature(&self) -> &Signature {
        &self.sig
    }
    fn apply(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let cols = batch
            .columns()
            .iter()
            .zip(&self.hashed)
            .map(|(c, h)| {
                if *h {
                    self.hash_column(c)
                } else {
                    Ok(c.clone())
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(self.sig.output.clone(), cols)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array, StringArray};

    #[test]
    fn hash_is_salted_and_keeps_nulls() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("email", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("a@x"), None])),
                Arc::new(Int64Array::from(vec![1, 2])),
            ],
        )
        .unwrap();
        let t = HashTransform::new("hash".into(), schema, &["email".into()], "s".into());
        let out = t.apply(b).unwrap();
        let col = out.column(0).as_string::<i32>();
        let expect = hex::encode(Sha256::digest(b"sa@x"));
        assert_eq!(col.value(0), expect);
        assert!(col.is_null(1));
    }

    #[test]
    fn strict_cast_fails_on_bad_values() {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Utf8, true)]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec!["1", "x"]))],
        )
        .unwrap();
        let t =
            CastTransform::new("cast".into(), schema, &[("v".into(), DataType::Int64)]).unwrap();
        assert!(t.apply(b).is_err());
    }
}
