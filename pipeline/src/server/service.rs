//! Queries as Athena runs them: started at once (an id comes back), run on a bounded pool
//! with a queue, stateful (QUEUED → RUNNING → SUCCEEDED | FAILED | CANCELLED), results kept
//! under the lake's `_tributary/results/` (like Athena's output location) and the history
//! under `_tributary/queries/`, so both survive restarts. Identical queries within
//! `reuse_max_age` reuse the earlier results.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::query::{QueryEngine, QueryLimits};

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
    slots: Arc<Semaphore>,
    reuse_max_age: Option<Duration>,
    store: Arc<dyn ObjectStore>,
    history: ObjectPath,
    results: ObjectPath,
    live: Mutex<HashMap<String, Running>>,
    /// Finished queries since the server started, for `/metrics`.
    counters: Mutex<QueryCounters>,
}

#[derive(Default)]
struct QueryCounters {
    by_state: std::collections::BTreeMap<String, u64>,
    bytes_scanned: u64,
    seconds: f64,
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
    pub fn new(
        lake: Lake,
        limits: QueryLimits,
        concurrency: usize,
        reuse_max_age: Option<Duration>,
    ) -> Result<Arc<Self>> {
        let (store, history) = lake.meta_store("queries")?;
        let (_, results) = lake.meta_store("results")?;
        Ok(Arc::new(Self {
            lake,
            limits,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            reuse_max_age,
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

    async fn persist(&self, info: &QueryInfo) -> Result<()> {
        let body = serde_json::to_vec(info).map_err(|e| Error::Internal(e.to_string()))?;
        self.store
            .put(&self.info_path(&info.query_id), PutPayload::from(body))
            .await?;
        Ok(())
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut QueryInfo)) -> Option<QueryInfo> {
        let mut live = self.live.lock().ok()?;
        let r = live.get_mut(id)?;
        f(&mut r.info);
        Some(r.info.clone())
    }

    /// Starts a query; returns its id at once.
    pub async fn submit(self: &Arc<Self>, sql: &str, parameters: &[String]) -> Result<QueryInfo> {
        if sql.trim().is_empty() {
            return Err(Error::Usage("the query text is empty".into()));
        }
        // Parameters are literals, checked now: a bad one is the request's fault (400).
        for p in parameters {
            crate::query::params::literal(p).map_err(Error::Usage)?;
        }
        let id = uuid::Uuid::new_v4().to_string();
        let mut info = QueryInfo {
            query_id: id.clone(),
            sql: sql.to_string(),
            parameters: parameters.to_vec(),
            state: State::Queued,
            submitted_at: now(),
            started_at: None,
            ended_at: None,
            statistics: Statistics::default(),
            error: None,
            output_location: None,
            reused_from: None,
        };
        if let Some(prev) = self.reusable(sql, parameters).await? {
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
        let task = tokio::spawn(async move { me.execute(id).await });
        if let Ok(mut live) = self.live.lock()
            && let Some(r) = live.get_mut(&info.query_id)
        {
            r.task = Some(task.abort_handle());
        }
        Ok(info)
    }

    /// A finished, successful query with the same text within the reuse age.
    async fn reusable(&self, sql: &str, parameters: &[String]) -> Result<Option<QueryInfo>> {
        let Some(age) = self.reuse_max_age else {
            return Ok(None);
        };
        let cutoff = chrono::Utc::now() - chrono::Duration::from_std(age).unwrap_or_default();
        Ok(self.list(200).await?.into_iter().find(|q| {
            q.sql == sql
                && q.parameters == parameters
                && q.state == State::Succeeded
                && q.reused_from.is_none()
                && q.ended_at
                    .as_deref()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t >= cutoff)
                    .unwrap_or(false)
        }))
    }

    async fn execute(self: Arc<Self>, id: String) {
        // Waits in the queue for a free slot.
        let Ok(_permit) = self.slots.clone().acquire_owned().await else {
            return;
        };
        let Some(info) = self.update(&id, |i| {
            i.state = State::Running;
            i.started_at = Some(now());
        }) else {
            return;
        };
        let _ = self.persist(&info).await;
        let outcome = self.run(&id, &info.sql, &info.parameters).await;
        let Some(info) = self.update(&id, |i| {
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
            live.remove(&id);
        }
    }

    fn count(&self, info: &QueryInfo) {
        if let Ok(mut c) = self.counters.lock() {
            *c.by_state
                .entry(format!("{:?}", info.state).to_uppercase())
                .or_default() += 1;
            c.bytes_scanned += info.statistics.bytes_scanned;
            c.seconds += info.statistics.elapsed_ms as f64 / 1e3;
        }
    }

    /// The query side in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        use crate::metrics::family;
        let mut out = String::new();
        let (live, queued) = match self.live.lock() {
            Ok(l) => (
                l.len(),
                l.values().filter(|r| r.info.state == State::Queued).count(),
            ),
            Err(_) => (0, 0),
        };
        let Ok(c) = self.counters.lock() else {
            return out;
        };
        let states: Vec<(String, f64)> = c
            .by_state
            .iter()
            .map(|(s, n)| (format!("state=\"{s}\""), *n as f64))
            .collect();
        family(
            &mut out,
            "tributary_queries_total",
            "counter",
            "Queries finished since the server started, by final state.",
            &states,
        );
        family(
            &mut out,
            "tributary_queries_in_flight",
            "gauge",
            "Queries queued or running.",
            &[(String::new(), live as f64)],
        );
        family(
            &mut out,
            "tributary_queries_queued",
            "gauge",
            "Queries waiting for a concurrency slot.",
            &[(String::new(), queued as f64)],
        );
        family(
            &mut out,
            "tributary_query_bytes_scanned_total",
            "counter",
            "Bytes of Parquet read by finished queries.",
            &[(String::new(), c.bytes_scanned as f64)],
        );
        family(
            &mut out,
            "tributary_query_duration_seconds_sum",
            "counter",
            "Running time of finished queries.",
            &[(String::new(), c.seconds)],
        );
        out
    }

    /// Runs the query and stores its results as an Arrow IPC file.
    async fn run(&self, id: &str, sql: &str, parameters: &[String]) -> Result<Done> {
        let engine = QueryEngine::open_with(&self.lake, &self.limits).await?;
        let r = engine.sql_with_literals(sql, parameters).await?;
        let mut buf = Vec::new();
        {
            let mut w = arrow::ipc::writer::FileWriter::try_new(&mut buf, &r.schema)?;
            // Compacted pieces of ~1 MB: a page read back holds only what it shows.
            let pieces = crate::query::compact::for_messages(
                &r.batches,
                crate::query::compact::MESSAGE_BYTES,
            )?;
            for b in &pieces {
                w.write(b)?;
            }
            w.finish()?;
        }
        let bytes = buf.len() as u64;
        let path = self.result_path(id);
        self.store.put(&path, PutPayload::from(buf)).await?;
        Ok(Done {
            rows: r.num_rows() as u64,
            engine_ms: r.elapsed.as_millis() as u64,
            bytes_scanned: r.bytes_scanned,
            files_scanned: r.files_scanned,
            files_pruned: r.files_pruned,
            result_bytes: bytes,
            location: format!("_tributary/results/{id}.arrow"),
        })
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

    /// The results of a successful query (from its output location).
    pub async fn results(&self, info: &QueryInfo) -> Result<Vec<RecordBatch>> {
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
        let bytes = self.store.get(&self.result_path(id)).await?.bytes().await?;
        let reader =
            arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes.to_vec()), None)?;
        Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
    }
}
