//! Queries as Athena runs them: started at once (an id comes back), run on a bounded pool
//! with a bounded queue (`admission.rs`, shared with Flight SQL), stateful (QUEUED → RUNNING → SUCCEEDED | FAILED | CANCELLED), results kept
//! under the lake's `_tributary/results/` (like Athena's output location) and the history
//! under `_tributary/queries/`, so both survive restarts. Identical queries within
//! `reuse_max_age` reuse the earlier results. Results are written to their file as they
//! arrive and paged from it (`results.rs`); both results and history expire (`Retention`),
//! and on a local lake only their owner can read them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::scalar::ScalarValue;
use futures::{FutureExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

mod metrics;
mod retention;

use super::admission::{Admission, Place};
use super::results::{ResultFile, ResultWriter};
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::query::trino::Dialect;
use crate::query::{QueryEngine, QueryLimits};
pub use retention::Retention;
use retention::owner_only_dir;

/// A query's parameters: SQL literals (the HTTP API's, Athena's ExecutionParameters) or
/// values already typed (Flight SQL's bound prepared statements).
#[derive(Debug, Clone)]
pub enum Params {
    Literals(Vec<String>),
    Values(Vec<ScalarValue>),
}

impl Params {
    fn shown(&self) -> Vec<String> {
        match self {
            Params::Literals(l) => l.clone(),
            Params::Values(v) => v.iter().map(|v| v.to_string()).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl State {
    pub fn is_done(self) -> bool {
        matches!(self, State::Succeeded | State::Failed | State::Cancelled)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Statistics {
    pub queued_ms: u64,
    pub elapsed_ms: u64,
    /// Planning and running the query (Athena's `EngineExecutionTimeInMillis`): the run
    /// without opening the tables and storing the results.
    #[serde(default)]
    pub engine_ms: u64,
    pub rows: u64,
    pub bytes_scanned: u64,
    pub files_scanned: u64,
    pub files_pruned: u64,
    pub result_bytes: u64,
}

/// What the API says about a query (persisted as JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryInfo {
    pub query_id: String,
    pub sql: String,
    /// Athena-style execution parameters: SQL literals bound to the `?`s, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<String>,
    /// The SQL dialect the query is read in (`trino` unless asked otherwise).
    #[serde(default = "trino_dialect")]
    pub dialect: String,
    pub state: State,
    pub submitted_at: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub statistics: Statistics,
    pub error: Option<String>,
    /// Where the results are, under the lake.
    pub output_location: Option<String>,
    /// The earlier query whose results this one reused.
    pub reused_from: Option<String>,
}

/// What a finished run produced.
struct Done {
    rows: u64,
    engine_ms: u64,
    bytes_scanned: u64,
    files_scanned: u64,
    files_pruned: u64,
    result_bytes: u64,
    location: String,
}

struct Running {
    info: QueryInfo,
    task: Option<tokio::task::AbortHandle>,
}

pub struct QueryService {
    lake: Lake,
    limits: QueryLimits,
    admission: Arc<Admission>,
    reuse_max_age: Option<Duration>,
    retention: Retention,
    /// Bumped whenever a query ends, for waiters (`wait`).
    ended: tokio::sync::watch::Sender<u64>,
    store: Arc<dyn ObjectStore>,
    history: ObjectPath,
    results: ObjectPath,
    live: Mutex<HashMap<String, Running>>,
    /// Finished queries since the server started, for `/metrics`.
    counters: Mutex<metrics::QueryCounters>,
}

fn trino_dialect() -> String {
    Dialect::Trino.name().to_string()
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn ms_between(a: &str, b: &str) -> u64 {
    match (
        chrono::DateTime::parse_from_rfc3339(a),
        chrono::DateTime::parse_from_rfc3339(b),
    ) {
        (Ok(a), Ok(b)) => (b - a).num_milliseconds().max(0) as u64,
        _ => 0,
    }
}

impl QueryService {
    /// `limits` should share one memory pool (`QueryLimits::shared`) across the queries.
    pub fn new(
        lake: Lake,
        limits: QueryLimits,
        admission: Arc<Admission>,
        reuse_max_age: Option<Duration>,
        retention: Retention,
    ) -> Result<Arc<Self>> {
        let (store, history) = lake.meta_store("queries")?;
        let (_, results) = lake.meta_store("results")?;
        if let Some(root) = lake.local_root() {
            for area in [&history, &results] {
                owner_only_dir(&root.join(area.as_ref()))?;
            }
        }
        Ok(Arc::new(Self {
            lake,
            limits,
            admission,
            reuse_max_age,
            retention,
            ended: tokio::sync::watch::channel(0).0,
            store,
            history,
            results,
            live: Mutex::new(HashMap::new()),
            counters: Mutex::default(),
        }))
    }

    fn info_path(&self, id: &str) -> ObjectPath {
        self.history.clone().join(format!("{id}.json").as_str())
    }

    fn result_path(&self, id: &str) -> ObjectPath {
        self.results.clone().join(format!("{id}.arrow").as_str())
    }

    /// Where `path` of the lake's store is on disk, for a local lake (whose store is rooted
    /// at the lake's folder).
    fn on_disk(&self, path: &ObjectPath) -> Option<std::path::PathBuf> {
        self.lake.local_root().map(|root| root.join(path.as_ref()))
    }

    async fn persist(&self, info: &QueryInfo) -> Result<()> {
        let body = serde_json::to_vec(info).map_err(|e| Error::Internal(e.to_string()))?;
        match self.on_disk(&self.info_path(&info.query_id)) {
            // Owner-only from the start: the history holds SQL text and parameters.
            Some(path) => {
                // Unique: a cancel and the query's own end may write the entry at once.
                let tmp = path.with_extension(format!("json.{}.part", uuid::Uuid::new_v4()));
                tokio::task::spawn_blocking(move || -> Result<()> {
                    use std::io::Write;
                    let mut f = super::results::owner_only_file(&tmp)?;
                    f.write_all(&body)
                        .map_err(|e| Error::io("cannot write the query history", e))?;
                    std::fs::rename(&tmp, &path)
                        .map_err(|e| Error::io("cannot write the query history", e))
                })
                .await
                .map_err(|e| Error::Internal(format!("history writer: {e}")))??;
            }
            None => {
                self.store
                    .put(&self.info_path(&info.query_id), PutPayload::from(body))
                    .await?;
            }
        }
        Ok(())
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut QueryInfo)) -> Option<QueryInfo> {
        let mut live = self.live.lock().ok()?;
        let r = live.get_mut(id)?;
        f(&mut r.info);
        Some(r.info.clone())
    }

    /// The dialect queries are read in unless they ask for another (`[query] dialect`).
    pub fn default_dialect(&self) -> Dialect {
        self.limits.dialect
    }

    /// Starts a query; returns its id at once.
    pub async fn submit(
        self: &Arc<Self>,
        sql: &str,
        parameters: &[String],
        dialect: Dialect,
    ) -> Result<QueryInfo> {
        // Parameters are literals, checked now: a bad one is the request's fault (400).
        for p in parameters {
            crate::query::params::literal(p).map_err(Error::Usage)?;
        }
        self.start(sql, Params::Literals(parameters.to_vec()), dialect)
            .await
    }

    /// Starts a query with `params` bound to its placeholders; returns its id at once.
    pub async fn start(
        self: &Arc<Self>,
        sql: &str,
        params: Params,
        dialect: Dialect,
    ) -> Result<QueryInfo> {
        if sql.trim().is_empty() {
            return Err(Error::Usage("the query text is empty".into()));
        }
        // Refused before anything is stored: the history does not keep megabytes of text.
        crate::query::check_size(sql)?;
        let parameters = params.shown();
        let id = uuid::Uuid::new_v4().to_string();
        let mut info = QueryInfo {
            query_id: id.clone(),
            sql: sql.to_string(),
            parameters: parameters.clone(),
            dialect: dialect.name().to_string(),
            state: State::Queued,
            submitted_at: now(),
            started_at: None,
            ended_at: None,
            statistics: Statistics::default(),
            error: None,
            output_location: None,
            reused_from: None,
        };
        if let Some(prev) = self.reusable(sql, &parameters, dialect).await? {
            info.state = State::Succeeded;
            info.started_at = Some(info.submitted_at.clone());
            info.ended_at = Some(info.submitted_at.clone());
            info.statistics = Statistics {
                queued_ms: 0,
                elapsed_ms: 0,
                ..prev.statistics
            };
            info.output_location = prev.output_location.clone();
            info.reused_from = Some(prev.query_id.clone());
            self.persist(&info).await?;
            return Ok(info);
        }
        let place = self.admission.admit()?;
        self.persist(&info).await?;
        if let Ok(mut live) = self.live.lock() {
            live.insert(
                id.clone(),
                Running {
                    info: info.clone(),
                    task: None,
                },
            );
        }
        let me = self.clone();
        let task = tokio::spawn(async move {
            // A panic outside the engine's own guard still ends the query as FAILED.
            let run = std::panic::AssertUnwindSafe(me.clone().execute(id.clone(), place, params));
            if run.catch_unwind().await.is_err() {
                me.end(&id, Err(Error::Internal("the query task panicked".into())))
                    .await;
            }
        });
        if let Ok(mut live) = self.live.lock()
            && let Some(r) = live.get_mut(&info.query_id)
        {
            r.task = Some(task.abort_handle());
        }
        Ok(info)
    }

    /// Runs a query to its end and returns its final state (Flight SQL answers this way);
    /// a caller that goes away cancels it.
    pub async fn run_to_end(
        self: &Arc<Self>,
        sql: &str,
        params: Params,
        dialect: Dialect,
    ) -> Result<QueryInfo> {
        let info = self.start(sql, params, dialect).await?;
        struct CancelOnDrop(Option<(Arc<QueryService>, String)>);
        impl Drop for CancelOnDrop {
            fn drop(&mut self) {
                if let Some((svc, id)) = self.0.take() {
                    tokio::spawn(async move { svc.cancel(&id).await });
                }
            }
        }
        let mut guard = CancelOnDrop(Some((self.clone(), info.query_id.clone())));
        let done = self.wait(&info.query_id).await;
        guard.0 = None;
        done
    }

    /// Waits until query `id` has ended.
    pub async fn wait(&self, id: &str) -> Result<QueryInfo> {
        let mut ended = self.ended.subscribe();
        loop {
            match self.get(id).await? {
                Some(info) if info.state.is_done() => return Ok(info),
                Some(_) => {}
                None => return Err(Error::Usage(format!("no query {id}"))),
            }
            ended
                .changed()
                .await
                .map_err(|_| Error::Internal("the query service stopped".into()))?;
        }
    }

    /// A finished, successful query with the same text within the reuse age.
    async fn reusable(
        &self,
        sql: &str,
        parameters: &[String],
        dialect: Dialect,
    ) -> Result<Option<QueryInfo>> {
        let Some(age) = self.reuse_max_age else {
            return Ok(None);
        };
        let cutoff = chrono::Utc::now() - chrono::Duration::from_std(age).unwrap_or_default();
        Ok(self.list(200).await?.into_iter().find(|q| {
            q.sql == sql
                && q.parameters == parameters
                && q.dialect == dialect.name()
                && q.state == State::Succeeded
                && q.reused_from.is_none()
                && q.ended_at
                    .as_deref()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t >= cutoff)
                    .unwrap_or(false)
        }))
    }

    async fn execute(self: Arc<Self>, id: String, place: Place, params: Params) {
        // Waits in the queue for a free slot; the place is given up when the query ends.
        let Ok(_permit) = place.run().await else {
            return;
        };
        let Some(info) = self.update(&id, |i| {
            i.state = State::Running;
            i.started_at = Some(now());
        }) else {
            return;
        };
        let _ = self.persist(&info).await;
        let dialect = info.dialect.parse().unwrap_or_default();
        let outcome = self.run(&id, &info.sql, params, dialect).await;
        self.end(&id, outcome).await;
        drop(place);
    }

    /// Records the end of a live query.
    async fn end(&self, id: &str, outcome: Result<Done>) {
        let Some(info) = self.update(id, |i| {
            i.ended_at = Some(now());
            i.statistics.queued_ms =
                ms_between(&i.submitted_at, i.started_at.as_deref().unwrap_or(""));
            i.statistics.elapsed_ms = ms_between(
                i.started_at.as_deref().unwrap_or(""),
                i.ended_at.as_deref().unwrap_or(""),
            );
            match outcome {
                Ok(done) => {
                    i.state = State::Succeeded;
                    i.statistics.rows = done.rows;
                    i.statistics.engine_ms = done.engine_ms;
                    i.statistics.bytes_scanned = done.bytes_scanned;
                    i.statistics.files_scanned = done.files_scanned;
                    i.statistics.files_pruned = done.files_pruned;
                    i.statistics.result_bytes = done.result_bytes;
                    i.output_location = Some(done.location);
                }
                Err(e) => {
                    i.state = State::Failed;
                    i.error = Some(e.to_string());
                }
            }
        }) else {
            return;
        };
        let _ = self.persist(&info).await;
        self.count(&info);
        if let Ok(mut live) = self.live.lock() {
            live.remove(id);
        }
        self.ended.send_modify(|n| *n += 1);
        if self.admission.admitted() <= 1 {
            crate::alloc::release_idle_memory();
        }
    }

    /// Runs the query, writing its results to their file as they arrive.
    async fn run(&self, id: &str, sql: &str, params: Params, dialect: Dialect) -> Result<Done> {
        let limits = QueryLimits {
            dialect,
            ..self.limits.clone()
        };
        let engine = QueryEngine::open_with(&self.lake, &limits).await?;
        let values = match params {
            Params::Literals(l) => engine.bind_literals(sql, &l).await?,
            Params::Values(v) => (!v.is_empty()).then_some(v),
        };
        // A local lake's results are written in place; an S3 lake's are spilled to a local
        // file and uploaded in parts.
        let local = match self.on_disk(&self.result_path(id)) {
            Some(path) => path.with_extension("arrow.part"),
            None => std::env::temp_dir().join(format!("tributary-result-{id}.arrow")),
        };
        let (writer, stats) = engine
            .run_into(sql, values, ResultWriter::new(local))
            .await?;
        let rows = stats.rows;
        let (file, bytes) = tokio::task::spawn_blocking({
            let schema = stats.schema.clone();
            move || writer.finish(&schema)
        })
        .await
        .map_err(|e| Error::Internal(format!("result writer: {e}")))??;
        self.publish(id, &file).await?;
        Ok(Done {
            rows,
            engine_ms: stats.elapsed.as_millis() as u64,
            bytes_scanned: stats.bytes_scanned,
            files_scanned: stats.files_scanned,
            files_pruned: stats.files_pruned,
            result_bytes: bytes,
            location: format!("_tributary/results/{id}.arrow"),
        })
    }

    /// Moves a finished result file to its place under the lake.
    async fn publish(&self, id: &str, file: &std::path::Path) -> Result<()> {
        if let Some(to) = self.on_disk(&self.result_path(id)) {
            return std::fs::rename(file, &to)
                .map_err(|e| Error::io(format!("cannot store results {}", to.display()), e));
        }
        let upload = async {
            let upload = self.store.put_multipart(&self.result_path(id)).await?;
            let mut parts = object_store::WriteMultipart::new_with_chunk_size(upload, 8 << 20);
            let mut f = tokio::fs::File::open(file)
                .await
                .map_err(|e| Error::io("result file", e))?;
            let mut buf = vec![0u8; 8 << 20];
            loop {
                let n = tokio::io::AsyncReadExt::read(&mut f, &mut buf)
                    .await
                    .map_err(|e| Error::io("result file", e))?;
                if n == 0 {
                    break;
                }
                parts.wait_for_capacity(2).await?;
                parts.write(&buf[..n]);
            }
            parts.finish().await?;
            Ok::<_, Error>(())
        };
        let r = upload.await;
        let _ = tokio::fs::remove_file(file).await;
        r
    }

    /// A query's current state: live ones from memory, finished ones from the history.
    pub async fn get(&self, id: &str) -> Result<Option<QueryInfo>> {
        if let Ok(live) = self.live.lock()
            && let Some(r) = live.get(id)
        {
            return Ok(Some(r.info.clone()));
        }
        if uuid::Uuid::parse_str(id).is_err() {
            return Ok(None);
        }
        match self.store.get(&self.info_path(id)).await {
            Ok(r) => {
                let bytes = r.bytes().await?;
                let mut info: QueryInfo =
                    serde_json::from_slice(&bytes).map_err(|e| Error::Internal(e.to_string()))?;
                if !info.state.is_done() {
                    // It was queued or running in a server that has since stopped.
                    info.state = State::Failed;
                    info.error = Some("the server stopped before the query finished".into());
                }
                Ok(Some(info))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Cancels a queued or running query; `None` if there is no such query.
    pub async fn cancel(&self, id: &str) -> Result<Option<QueryInfo>> {
        let info = {
            let Ok(mut live) = self.live.lock() else {
                return Ok(None);
            };
            match live.remove(id) {
                Some(mut r) => {
                    if let Some(t) = r.task.take() {
                        t.abort();
                    }
                    r.info.state = State::Cancelled;
                    r.info.ended_at = Some(now());
                    Some(r.info)
                }
                None => None,
            }
        };
        match info {
            Some(info) => {
                self.persist(&info).await?;
                self.count(&info);
                self.ended.send_modify(|n| *n += 1);
                Ok(Some(info))
            }
            // Finished already: cancelling changes nothing.
            None => self.get(id).await,
        }
    }

    /// The history, newest first: only the `limit` most recently written entries are read.
    pub async fn list(&self, limit: usize) -> Result<Vec<QueryInfo>> {
        let mut objects: Vec<_> = self.store.list(Some(&self.history)).try_collect().await?;
        objects.sort_by_key(|o| std::cmp::Reverse(o.last_modified));
        let mut out = Vec::new();
        for o in objects.into_iter().take(limit) {
            let Some(id) = o.location.filename().and_then(|f| f.strip_suffix(".json")) else {
                continue;
            };
            if let Some(info) = self.get(id).await? {
                out.push(info);
            }
        }
        out.sort_by(|a, b| b.submitted_at.cmp(&a.submitted_at));
        Ok(out)
    }

    /// The stored results of a successful query, read a batch at a time.
    pub async fn results(&self, info: &QueryInfo) -> Result<ResultFile> {
        let Some(loc) = &info.output_location else {
            return Err(Error::Usage(format!(
                "query {} has no results (state {:?})",
                info.query_id, info.state
            )));
        };
        let id = loc
            .rsplit('/')
            .next()
            .and_then(|f| f.strip_suffix(".arrow"))
            .unwrap_or(&info.query_id);
        match ResultFile::open(self.store.clone(), self.result_path(id)).await {
            Err(Error::ObjectStore(object_store::Error::NotFound { .. })) => {
                Err(Error::Usage(format!(
                    "the results of query {} have expired ([server] results_retention_hours); \
                     run it again",
                    info.query_id
                )))
            }
            other => other,
        }
    }
}
