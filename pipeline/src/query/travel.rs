//! Time travel: a table as it was at a Delta version or a point in time, as table functions
//! (DataFusion has no `AS OF` clause):
//!
//! ```sql
//! SELECT count(*) FROM table_version('orders', 3);
//! SELECT count(*) FROM table_at('orders', '2026-11-27T12:00:00Z');
//! ```

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DataFusionError, Result, ScalarValue, plan_err};
use datafusion::logical_expr::Expr;

use crate::lake::Lake;

#[derive(Debug)]
pub struct TimeTravel {
    pub lake: Lake,
    /// `table_at` (a time) rather than `table_version`.
    pub by_time: bool,
}

fn text(e: &Expr) -> Option<String> {
    match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)), _) => {
            Some(s.clone())
        }
        _ => None,
    }
}

impl TableFunctionImpl for TimeTravel {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let f = if self.by_time {
            "table_at"
        } else {
            "table_version"
        };
        let exprs = args.exprs();
        let (Some(name), Some(at)) = (exprs.first().and_then(text), exprs.get(1)) else {
            return plan_err!(
                "{f}('table', {}) takes a table name and {}",
                if self.by_time {
                    "'2026-11-27T12:00:00Z'"
                } else {
                    "3"
                },
                if self.by_time {
                    "an RFC 3339 time"
                } else {
                    "a version"
                }
            );
        };
        enum At {
            Version(u64),
            Time(chrono::DateTime<chrono::Utc>),
        }
        let at = if self.by_time {
            let s = text(at)
                .ok_or_else(|| DataFusionError::Plan(format!("{f}: the time must be a string")))?;
            let t = chrono::DateTime::parse_from_rfc3339(&s).map_err(|e| {
                DataFusionError::Plan(format!("{f}: `{s}` is not an RFC 3339 time: {e}"))
            })?;
            At::Time(t.with_timezone(&chrono::Utc))
        } else {
            match at {
                Expr::Literal(ScalarValue::Int64(Some(v)), _) if *v >= 0 => At::Version(*v as u64),
                _ => return plan_err!("{f}: the version must be a non-negative integer"),
            }
        };
        let lake = self.lake.clone();
        let load = async move {
            let mut t = lake
                .load(&name)
                .await
                .map_err(|e| DataFusionError::Plan(e.to_string()))?
                .ok_or_else(|| {
                    DataFusionError::Plan(format!("table `{name}` not found in the lake"))
                })?;
            let latest = t.version().unwrap_or(0);
            match at {
                At::Version(v) if v > latest => {
                    return plan_err!("table `{name}` has no version {v} (latest is {latest})");
                }
                At::Version(v) => t.load_version(v).await,
                At::Time(ts) => t.load_with_datetime(ts).await,
            }
            .map_err(|e| DataFusionError::Plan(format!("table `{name}`: {e}")))?;
            super::provider_for(&t)
                .await
                .map_err(|e| DataFusionError::Plan(e.to_string()))
        };
        // Planning is synchronous here; loading a version is not. Blocking in place needs the
        // multi-threaded runtime (the binary's); refuse rather than panic elsewhere.
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|e| DataFusionError::Plan(format!("{f}: no async runtime: {e}")))?;
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return plan_err!("{f} needs the multi-threaded tokio runtime");
        }
        tokio::task::block_in_place(|| handle.block_on(load))
    }
}
