//! Queries run on a runtime of their own, apart from the caller's I/O.
//!
//! A query's operators can keep a worker thread busy for seconds between yields (a
//! nested-loop join, a filter that drops every row). On the server's runtime that froze
//! `/health`, the other queries, SIGTERM, and the query's own timeout timer. Here the query
//! runs on the query runtime while its caller waits on its own runtime: the timeout fires on
//! time, the caller answers at once, and the query's task is aborted (it stops at its next
//! yield, which `coop.rs` makes frequent). A panic inside a query becomes that query's error.
//! The runtime's threads have large stacks for the recursion left in planning
//! (DataFusion's `recursive_protection` grows the stack on the heap beyond them).

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::{Error, Result};

/// Stack of each query thread: room for deep expression trees before `recursive`'s guard
/// has to move them to the heap. Reserved address space; only pages touched use memory.
const STACK_BYTES: usize = 64 << 20;

fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("tributary-query")
                .thread_stack_size(STACK_BYTES)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Internal(format!("cannot start the query runtime: {e}")))
}

/// Aborts the task when the waiter goes away (a cancelled HTTP query, a dropped Flight
/// call, a timeout), so no query runs on without anyone to answer.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `work` on the query runtime and waits for it, at most `timeout`.
pub async fn run<T, F>(work: F, timeout: Option<Duration>) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let task = runtime()?.spawn(work);
    let _abort = AbortOnDrop(task.abort_handle());
    let joined = match timeout {
        Some(t) => tokio::time::timeout(t, task).await.map_err(|_| {
            Error::Query(format!(
                "query cancelled: it ran longer than {} s (query.timeout_secs)",
                t.as_secs_f64()
            ))
        })?,
        None => task.await,
    };
    match joined {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(Error::Internal(format!(
            "the query failed inside the engine: {}",
            panic_text(e.into_panic())
        ))),
        Err(_) => Err(Error::Query("query cancelled".into())),
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_the_query_error() {
        let r: Result<()> = run(async { panic!("offset overflow") }, None).await;
        let e = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("offset overflow"), "{e}");
    }

    #[tokio::test]
    async fn a_busy_loop_times_out_on_time() {
        // Never yields: only a caller on another runtime can give up on it.
        let started = std::time::Instant::now();
        let r: Result<()> = run(
            async {
                let until = std::time::Instant::now() + Duration::from_secs(20);
                while std::time::Instant::now() < until {
                    std::hint::spin_loop();
                }
                Ok(())
            },
            Some(Duration::from_millis(200)),
        )
        .await;
        assert!(r.is_err());
        // The loop runs 20 s; the caller is answered long before it ends.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
}
