//! The Trino (Athena engine v3) dialect: Trino's SQL semantics and functions on DataFusion,
//! through its extension points only — session options, rewrites of the parsed statement,
//! and functions registered over DataFusion's own. Where a Trino behaviour cannot be
//! matched, the query fails with an error naming the Trino form; it never answers
//! differently. `docs/sql.md` lists every Trino function and where it stands, measured by
//! Trino's own function tests (`tests/sql/trino/`).

mod aggregates;
mod arrayeq;
mod arrays;
mod calls;
mod cast;
mod dateparts;
mod datetime;
mod elements;
mod field;
mod format;
mod integers;
mod json;
mod keepdate;
mod lambdas;
mod math;
mod mysqlfmt;
mod names;
mod regexp;
mod rewrite;
mod sequence;
mod strings;
mod tojson;
mod tryexpr;
mod typed;
mod types;
mod udf;
mod url;
mod zones;

pub use names::name_columns;
pub use rewrite::rewrite;
pub use types::{rewrite as rewrite_types, rewrite_values};

use std::str::FromStr;

use datafusion::prelude::{SessionConfig, SessionContext};

/// Which SQL a query is read as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// Trino's semantics, as Athena (engine v3) answers: the default.
    #[default]
    Trino,
    /// DataFusion's own SQL and functions, unchanged.
    DataFusion,
}

impl Dialect {
    pub const NAMES: &'static [&'static str] = &["trino", "datafusion"];

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Trino => "trino",
            Dialect::DataFusion => "datafusion",
        }
    }
}

impl FromStr for Dialect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "trino" | "athena" => Ok(Dialect::Trino),
            "datafusion" => Ok(Dialect::DataFusion),
            other => Err(format!(
                "unknown SQL dialect `{other}`: expected one of {}",
                Dialect::NAMES.join(", ")
            )),
        }
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Dialect {
    /// The dialect a session was configured with (`configure`).
    pub fn of(state: &datafusion::execution::SessionState) -> Dialect {
        state
            .config()
            .get_extension::<Dialect>()
            .map_or(Dialect::DataFusion, |d| *d)
    }
}

/// The session options a dialect reads SQL with.
pub fn configure(config: SessionConfig, dialect: Dialect) -> SessionConfig {
    let mut config = config.with_extension(std::sync::Arc::new(dialect));
    if dialect != Dialect::Trino {
        return config;
    }
    let sql = &mut config.options_mut().sql_parser;
    // `0.1` is DECIMAL(1,1) in Trino, not DOUBLE: 0.1 + 0.2 = 0.3.
    sql.parse_float_as_decimal = true;
    // NULLS LAST for ASC and DESC alike.
    sql.default_null_ordering = "nulls_last".to_string();
    config
}

/// The analyzer rules a dialect needs before type coercion (DataFusion's own rules after
/// them).
pub fn analyzer_rules(
    dialect: Dialect,
) -> Vec<std::sync::Arc<dyn datafusion::optimizer::AnalyzerRule + Send + Sync>> {
    let mut rules = datafusion::optimizer::Analyzer::new().rules;
    if dialect == Dialect::Trino {
        rules.insert(0, std::sync::Arc::new(integers::IntegerLiterals));
    }
    rules
}

/// Registers the dialect's functions in `ctx`, over DataFusion's where names clash.
pub fn register(ctx: &SessionContext, dialect: Dialect) {
    // UNNEST's spreading of rows into columns (query/unnest.rs) runs in both dialects.
    ctx.register_udf(field::function());
    if dialect != Dialect::Trino {
        return;
    }
    datetime::register(ctx);
    ctx.register_udf(cast::function());
    ctx.register_udf(tojson::function());
    ctx.register_udf(sequence::function());
    ctx.register_udf(format::function());
    ctx.register_udf(calls::slice_start());
    ctx.register_udf(aggregates::histogram());
    ctx.register_udf(aggregates::varchar_only());
    ctx.add_analyzer_rule(std::sync::Arc::new(typed::TypedRewrites::new()));
    let functions = [
        strings::functions(),
        strings::radix(),
        regexp::functions(),
        json::functions(),
        url::functions(),
        dateparts::functions(),
        mysqlfmt::functions(),
        math::functions(),
        zones::functions(),
        arrays::functions(),
    ];
    for f in functions.into_iter().flatten() {
        ctx.register_udf(f);
    }
}
