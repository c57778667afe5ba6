//! How long a query service keeps what it stores: results and history entries expire, and on
//! a local lake only the server's user can read them meanwhile (both may hold personal data:
//! the SQL text and its parameters, the rows).

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use super::QueryService;
use crate::error::{Error, Result};

/// How long stored results and history entries are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub results: Duration,
    pub history: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            results: Duration::from_secs(24 * 3600),
            history: Duration::from_secs(30 * 86400),
        }
    }
}

impl QueryService {
    /// Deletes results and history entries past their retention, now and then every while.
    pub fn expire_forever(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        let every = self
            .retention
            .results
            .min(self.retention.history)
            .div_f64(10.0)
            .clamp(Duration::from_secs(1), Duration::from_secs(600));
        tokio::spawn(async move {
            loop {
                if let Err(e) = me.expire().await {
                    tracing::warn!(error = %e, "expiring query results and history");
                }
                tokio::time::sleep(every).await;
            }
        })
    }

    /// One pass of `expire_forever`: what was written before its retention is deleted
    /// (a live query's history entry stays).
    pub async fn expire(&self) -> Result<()> {
        let now = chrono::Utc::now();
        for (prefix, keep) in [
            (&self.results, self.retention.results),
            (&self.history, self.retention.history),
        ] {
            let cutoff = now - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
            let objects: Vec<_> = self.store.list(Some(prefix)).try_collect().await?;
            for o in objects {
                if o.last_modified >= cutoff {
                    continue;
                }
                let id = o.location.filename().and_then(|f| f.split('.').next());
                let live = id
                    .is_some_and(|id| self.live.lock().map(|l| l.contains_key(id)).unwrap_or(true));
                if live {
                    continue;
                }
                match self.store.delete(&o.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }
}

/// A folder only its owner can enter (results and history of a local lake).
pub(super) fn owner_only_dir(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(format!("cannot restrict {}", dir.display()), e))?;
    }
    Ok(())
}
