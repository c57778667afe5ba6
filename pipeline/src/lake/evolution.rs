//! Schema evolution: how a table's schema in `schemas/` may differ from the table in the
//! lake. Adding nullable columns evolves the table (old files read them as null); dropping a
//! nullable column keeps it in the table (new rows null). Everything that would make old data
//! wrong or unreadable — a type change, a dropped required column, a rename, a new required
//! column, a nullability change, other partitions — is refused with a suggested migration,
//! by `validate` and again before a run writes anything.

use deltalake::kernel::{DataType as KType, StructField, StructType};

/// What the schema file asks of an existing table.
#[derive(Debug)]
pub enum Verdict {
    Same,
    /// New nullable columns to add to the table.
    AddColumns(Vec<StructField>),
    Refused(Vec<Refusal>),
}

/// One incompatible change, and how to migrate instead.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The column of the schema file it concerns (for pointing at it).
    pub column: String,
    pub message: String,
    pub migration: String,
}

fn rank(t: &KType) -> Option<(u8, u8)> {
    // (family, width): integers and floats widen within their family.
    [
        (KType::BYTE, (0, 1)),
        (KType::SHORT, (0, 2)),
        (KType::INTEGER, (0, 4)),
        (KType::LONG, (0, 8)),
        (KType::FLOAT, (1, 4)),
        (KType::DOUBLE, (1, 8)),
    ]
    .into_iter()
    .find(|(k, _)| k == t)
    .map(|(_, r)| r)
}

fn migrate_table(table: &str) -> String {
    format!(
        "migrate explicitly: point the pipeline at a new table (`{table}_v2`) with the new schema, and copy the history with a job (jobs/migrate_{table}.toml: sql = \"SELECT … FROM {table}\", target = \"{table}_v2\", mode = \"overwrite\")"
    )
}

/// Compares the table in the lake (`existing`, `existing_parts`) with the schema file's.
pub fn compare(
    table: &str,
    existing: &StructType,
    existing_parts: &[String],
    wanted: &StructType,
    wanted_parts: &[String],
) -> Verdict {
    let mut refused = Vec::new();
    let mut added = Vec::new();
    if existing_parts != wanted_parts {
        refused.push(Refusal {
            column: wanted_parts.first().cloned().unwrap_or_default(),
            message: format!(
                "table `{table}` is partitioned by [{}] in the lake, the schema says [{}]",
                existing_parts.join(", "),
                wanted_parts.join(", ")
            ),
            migration: migrate_table(table),
        });
    }
    let new_fields: Vec<&StructField> = wanted
        .fields()
        .filter(|w| existing.field(w.name()).is_none())
        .collect();
    for e in existing.fields() {
        match wanted.field(e.name()) {
            Some(w) if w.data_type() != e.data_type() => {
                let narrowing = matches!(
                    (rank(e.data_type()), rank(w.data_type())),
                    (Some((fe, we)), Some((fw, ww))) if fe == fw && ww < we
                );
                refused.push(Refusal {
                    column: e.name().to_string(),
                    message: format!(
                        "column `{}` is {} in table `{table}`, the schema says {}{}",
                        e.name(),
                        e.data_type(),
                        w.data_type(),
                        if narrowing {
                            " (a narrowing: existing values may not fit)"
                        } else {
                            " (a type change: existing files keep the old type)"
                        }
                    ),
                    migration: format!(
                        "keep `{}` as {} and add a new nullable column (e.g. `{}_v2`) for the new type, or {}",
                        e.name(),
                        e.data_type(),
                        e.name(),
                        migrate_table(table)
                    ),
                });
            }
            Some(w) if w.is_nullable() != e.is_nullable() => {
                refused.push(Refusal {
                    column: e.name().to_string(),
                    message: format!(
                        "column `{}` is {} in table `{table}`, the schema makes it {}",
                        e.name(),
                        if e.is_nullable() { "nullable" } else { "required" },
                        if w.is_nullable() { "nullable" } else { "required" }
                    ),
                    migration: if e.is_nullable() {
                        format!(
                            "existing rows may hold nulls: keep `{}` nullable (the pipeline can still dead-letter records without it by making a new required column), or {}",
                            e.name(),
                            migrate_table(table)
                        )
                    } else {
                        format!("keep `{}` required, or {}", e.name(), migrate_table(table))
                    },
                });
            }
            Some(_) => {}
            None => {
                let renamed = new_fields
                    .iter()
                    .find(|n| n.data_type() == e.data_type())
                    .map(|n| n.name().to_string());
                if let Some(to) = renamed {
                    refused.push(Refusal {
                        column: to.clone(),
                        message: format!(
                            "column `{}` of table `{table}` is gone and `{to}` of the same type is new: a rename, which would leave every existing row without `{to}`",
                            e.name()
                        ),
                        migration: format!(
                            "keep `{}` and add `{to}` as a new nullable column, or derive it in the pipeline (transform `rename` maps an input field to the table's name), or {}",
                            e.name(),
                            migrate_table(table)
                        ),
                    });
                } else if !e.is_nullable() {
                    refused.push(Refusal {
                        column: e.name().to_string(),
                        message: format!(
                            "required column `{}` of table `{table}` is missing from the schema",
                            e.name()
                        ),
                        migration: format!(
                            "keep `{}` in the schema (make the pipeline produce it), or {}",
                            e.name(),
                            migrate_table(table)
                        ),
                    });
                }
                // A dropped nullable column stays in the table; new rows hold null in it.
            }
        }
    }
    for w in new_fields {
        if refused.iter().any(|r| r.column == *w.name()) {
            continue;
        }
        if w.is_nullable() {
            added.push(w.clone());
        } else {
            refused.push(Refusal {
                column: w.name().to_string(),
                message: format!(
                    "new column `{}` is required, but the rows already in table `{table}` have no value for it",
                    w.name()
                ),
                migration: format!(
                    "add it as nullable (drop `required = true`); or {}",
                    migrate_table(table)
                ),
            });
        }
    }
    if !refused.is_empty() {
        Verdict::Refused(refused)
    } else if !added.is_empty() {
        Verdict::AddColumns(added)
    } else {
        Verdict::Same
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(fields: &[(&str, KType, bool)]) -> StructType {
        StructType::try_new(
            fields
                .iter()
                .map(|(n, t, null)| StructField::new(*n, t.clone(), *null)),
        )
        .unwrap()
    }

    #[test]
    fn added_nullable_columns_evolve_the_table() {
        let old = st(&[("id", KType::STRING, false), ("n", KType::LONG, true)]);
        let new = st(&[
            ("id", KType::STRING, false),
            ("note", KType::STRING, true),
            ("n", KType::LONG, true),
        ]);
        match compare("t", &old, &[], &new, &[]) {
            Verdict::AddColumns(f) => assert_eq!(f[0].name(), "note"),
            v => panic!("{v:?}"),
        }
        assert!(matches!(compare("t", &old, &[], &old, &[]), Verdict::Same));
        // A dropped nullable column is kept in the table.
        let fewer = st(&[("id", KType::STRING, false)]);
        assert!(matches!(
            compare("t", &old, &[], &fewer, &[]),
            Verdict::Same
        ));
    }

    #[test]
    fn incompatible_changes_are_refused_with_a_migration() {
        let old = st(&[("id", KType::STRING, false), ("n", KType::LONG, true)]);
        let refusals = |new: StructType| match compare("t", &old, &[], &new, &[]) {
            Verdict::Refused(r) => r,
            v => panic!("{v:?}"),
        };
        let r = refusals(st(&[
            ("id", KType::STRING, false),
            ("n", KType::INTEGER, true),
        ]));
        assert!(r[0].message.contains("narrowing"), "{r:?}");
        assert!(r[0].migration.contains("t_v2"));
        let r = refusals(st(&[("n", KType::LONG, true)]));
        assert!(r[0].message.contains("required column `id`"), "{r:?}");
        let r = refusals(st(&[
            ("id", KType::STRING, false),
            ("count", KType::LONG, true),
        ]));
        assert!(r[0].message.contains("a rename"), "{r:?}");
        assert_eq!(r[0].column, "count");
        let r = refusals(st(&[
            ("id", KType::STRING, false),
            ("n", KType::LONG, true),
            ("x", KType::LONG, false),
        ]));
        assert!(r[0].message.contains("new column `x` is required"), "{r:?}");
        let r = match compare("t", &old, &["dt".into()], &old, &[]) {
            Verdict::Refused(r) => r,
            v => panic!("{v:?}"),
        };
        assert!(r[0].message.contains("partitioned"));
    }
}
