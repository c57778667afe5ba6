//! The scheduler: fires jobs on their schedules, runs dependents after their dependencies
//! succeed, and runs independent jobs concurrently up to a limit.
//!
//! Its state lives in the lake, so it survives restarts and never runs a slot twice:
//! under `_tributary/jobs/<job>/`, `since.json` (when the scheduler first saw the job: no
//! slot before it runs), `cursor.json` (the newest slot considered) and one
//! `slots/<time>.json` per slot run, written with a create-only put before the run starts.
//! A second scheduler (or the same one after a crash) finds the slot taken. Runs left
//! RUNNING by a crashed scheduler are marked FAILED when it starts again; their data was
//! not committed (or, if it was, the bookmark moved with it), so the next slot picks up.
//!
//! Time comes in as an argument (`tick(now)`), so tests drive it with any clock.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tokio::sync::{Mutex, Semaphore};

use super::config::{CatchUp, Job, Overlap};
use super::history::{self, RunRecord, RunState};
use super::run::{self, Scope, Trigger};
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::query::QueryLimits;

/// At most this many missed slots run under catch_up = "all".
const MAX_CATCH_UP: usize = 100;

pub struct Scheduler {
    lake: Lake,
    limits: QueryLimits,
    jobs: Vec<Job>,
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    permits: Arc<Semaphore>,
    locks: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// A slot this late still counts as on time (catch_up = "none").
    grace: chrono::Duration,
    /// This process, as its runs name it, and where schedulers announce they are alive: a
    /// run left RUNNING by a scheduler whose heartbeat stopped was abandoned.
    owner: String,
    beats: tributary_connectors::kinesis::LeaseStore,
    heartbeat_ttl: std::time::Duration,
}

/// Heartbeats while held; stops them when dropped (a clean stop also retires the owner).
pub struct Alive(tokio::task::JoinHandle<()>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Scheduler {
    pub fn new(
        lake: Lake,
        limits: QueryLimits,
        jobs: Vec<Job>,
        settings: &crate::config::SchedulerConfig,
    ) -> Result<Arc<Self>> {
        let (store, prefix) = lake.meta_store("jobs")?;
        let beats = lake.lease_store("scheduler")?;
        let owner = format!(
            "{}-{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into()),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Ok(Arc::new(Scheduler {
            lake,
            limits,
            jobs,
            store,
            prefix,
            permits: Arc::new(Semaphore::new(settings.max_concurrent_runs.max(1))),
            locks: std::sync::Mutex::new(HashMap::new()),
            grace: chrono::Duration::from_std(settings.grace)
                .unwrap_or(chrono::Duration::minutes(5)),
            owner,
            beats,
            heartbeat_ttl: settings.heartbeat_ttl,
        }))
    }

    /// The scheduler of a project's jobs, with its `[query]` limits and `[scheduler]` settings.
    pub fn for_project(config: &crate::config::Config, lake: &Lake) -> Result<Arc<Self>> {
        Self::new(
            lake.clone(),
            config.query.clone(),
            config.jobs.clone(),
            &config.scheduler,
        )
    }

    /// A trigger for a run of this scheduler.
    fn trigger(&self, kind: &'static str, slot: Option<DateTime<Utc>>) -> Trigger {
        Trigger {
            scheduler: Some(self.owner.clone()),
            ..Trigger::new(kind, slot)
        }
    }

    /// Announces this scheduler alive now, and every third of the heartbeat's lifetime
    /// until the guard is dropped.
    pub async fn keep_alive(&self) -> Result<Alive> {
        let ttl = self.heartbeat_ttl;
        let expires =
            move || Utc::now().timestamp_millis() + ttl.as_millis().min(i64::MAX as u128) as i64;
        self.beats.heartbeat(&self.owner, expires()).await?;
        let (beats, owner) = (self.beats.clone(), self.owner.clone());
        Ok(Alive(tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                if let Err(e) = beats.heartbeat(&owner, expires()).await {
                    tracing::warn!(error = %e, "scheduler heartbeat failed; retrying");
                }
            }
        })))
    }

    /// Withdraws this scheduler's heartbeat (a clean stop).
    pub async fn retire(&self) -> Result<()> {
        Ok(self.beats.retire(&self.owner).await?)
    }

    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// Marks runs a stopped scheduler left RUNNING or STARTING as FAILED: one whose
    /// heartbeat has expired (or, for runs that name none, any other scheduler). Runs of a
    /// live scheduler are left alone.
    pub async fn recover(&self) -> Result<usize> {
        let live = self.beats.live_workers().await?;
        let mut n = 0;
        for mut r in history::latest_runs(&self.lake, None, 10_000).await? {
            if r.state.is_terminal()
                || !matches!(r.trigger.as_str(), "schedule" | "catch_up" | "dependency")
            {
                continue;
            }
            let by: Option<String> = r
                .details
                .as_deref()
                .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                .and_then(|d| d["scheduler"].as_str().map(str::to_string));
            if by.is_some_and(|s| s == self.owner || live.contains(&s)) {
                continue;
            }
            r.state = RunState::Failed;
            r.ended_at = Some(Utc::now());
            r.error = Some("abandoned: the scheduler running it stopped (crash or kill) before it finished; its output was not committed unless target_version is set, and the next run picks up from the bookmark".into());
            history::record(&self.lake, &r).await?;
            tracing::warn!(job = %r.job, run_id = %r.run_id, "marked an abandoned run FAILED");
            n += 1;
        }
        Ok(n)
    }

    /// Fires every slot due at `now` and waits for those runs (and the dependents they
    /// trigger) to end.
    pub async fn tick(self: &Arc<Self>, now: DateTime<Utc>) -> Result<Vec<RunRecord>> {
        let alive = self.keep_alive().await?;
        let runs = async {
            let mut out = Vec::new();
            for h in self.fire_due(now).await? {
                match h.await {
                    Ok(Ok(r)) => out.extend(r),
                    Ok(Err(e)) => return Err(e),
                    Err(e) => return Err(Error::Internal(format!("a job task failed: {e}"))),
                }
            }
            Ok(out)
        }
        .await;
        drop(alive);
        self.retire().await?;
        runs
    }

    /// Claims and starts the slots due at `now`; returns the run tasks.
    pub async fn fire_due(
        self: &Arc<Self>,
        now: DateTime<Utc>,
    ) -> Result<Vec<tokio::task::JoinHandle<Result<Vec<RunRecord>>>>> {
        let mut handles = Vec::new();
        for (i, job) in self.jobs.iter().enumerate() {
            let Some(schedule) = job.schedule.as_ref().filter(|_| job.enabled) else {
                continue;
            };
            let since = self.since(&job.name, now).await?;
            let after = self
                .cursor(&job.name)
                .await?
                .map_or(since, |c| c.max(since));
            let (slots, dropped) = schedule.slots_between(after, now, job.tz, MAX_CATCH_UP);
            let Some(newest) = slots.last().copied() else {
                continue;
            };
            let chosen: Vec<DateTime<Utc>> = match job.catch_up {
                CatchUp::All => slots.clone(),
                CatchUp::Latest => vec![newest],
                CatchUp::None => {
                    if now - newest <= self.grace {
                        vec![newest]
                    } else {
                        vec![]
                    }
                }
            };
            let skipped = slots.len() + dropped - chosen.len();
            if skipped > 0 {
                tracing::warn!(job = %job.name, skipped, catch_up = ?job.catch_up, "missed slots not run");
            }
            // A job's slots run one after another (oldest first); jobs run side by side.
            let mut claimed = Vec::new();
            for slot in chosen {
                let trigger = self.trigger(
                    if now - slot <= self.grace {
                        "schedule"
                    } else {
                        "catch_up"
                    },
                    Some(slot),
                );
                if self
                    .claim(&job.name, &slot_key(slot), &trigger.run_id)
                    .await?
                {
                    claimed.push(trigger);
                } else {
                    tracing::info!(job = %job.name, slot = %slot, "slot already run (claimed earlier)");
                }
            }
            self.set_cursor(&job.name, newest).await?;
            if !claimed.is_empty() {
                let this = self.clone();
                handles.push(tokio::spawn(async move {
                    let mut out = Vec::new();
                    for trigger in claimed {
                        out.extend(this.clone().run_slot(i, trigger).await?);
                    }
                    Ok(out)
                }));
            }
        }
        Ok(handles)
    }

    /// Runs `job` for the slot at `slot` unless that slot was already run (an EventBridge
    /// schedule delivers at least once: a second delivery finds the slot claimed). `None`:
    /// already run.
    pub async fn run_slot_once(
        self: &Arc<Self>,
        job: &str,
        slot: DateTime<Utc>,
    ) -> Result<Option<Vec<RunRecord>>> {
        let i = self
            .jobs
            .iter()
            .position(|j| j.name == job)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "no job `{job}`: {}",
                    crate::diag::did_you_mean(job, self.jobs.iter().map(|j| j.name.as_str()))
                ))
            })?;
        let trigger = self.trigger("schedule", Some(slot));
        if !self.claim(job, &slot_key(slot), &trigger.run_id).await? {
            return Ok(None);
        }
        // (Not retired after: a function may write its heartbeat, not delete it; it expires.)
        let _alive = self.keep_alive().await?;
        Ok(Some(self.clone().run_slot(i, trigger).await?))
    }

    /// The next time any job fires after `now`.
    pub fn next_fire(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.jobs
            .iter()
            .filter(|j| j.enabled)
            .filter_map(|j| j.schedule.as_ref()?.next_after(now, j.tz))
            .min()
    }

    /// Runs until `stop` resolves, firing slots as they come due.
    pub async fn run_forever(
        self: Arc<Self>,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        let _alive = self.keep_alive().await?;
        // Runs of schedulers that died meanwhile (another process) are found as this one
        // goes on, not only when it starts.
        let mut recovered_at: Option<std::time::Instant> = None;
        tokio::pin!(stop);
        loop {
            if recovered_at.is_none_or(|t| t.elapsed() >= self.heartbeat_ttl) {
                match self.recover().await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(
                        runs = n,
                        "runs abandoned by a stopped scheduler were marked FAILED"
                    ),
                    Err(e) => tracing::warn!(error = %e, "could not look for abandoned runs"),
                }
                recovered_at = Some(std::time::Instant::now());
            }
            let now = Utc::now();
            match self.fire_due(now).await {
                Ok(handles) => {
                    for h in handles {
                        tokio::spawn(async move {
                            match h.await {
                                Ok(Err(e)) => {
                                    tracing::error!(error = %e, "job run could not be recorded")
                                }
                                Err(e) => tracing::error!(error = %e, "job task failed"),
                                Ok(Ok(_)) => {}
                            }
                        });
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "scheduler could not fire due jobs; retrying")
                }
            }
            // Sleep to the next slot, but wake at least every 30 s (a lake written by
            // another scheduler, clock adjustments).
            let next = self
                .next_fire(Utc::now())
                .unwrap_or(now + chrono::Duration::seconds(30));
            let wait = (next - Utc::now())
                .to_std()
                .unwrap_or_default()
                .min(std::time::Duration::from_secs(30))
                + std::time::Duration::from_millis(5);
            tokio::select! {
                _ = &mut stop => return self.retire().await,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Runs job `i` for one slot under its overlap policy and the concurrency limit, then
    /// the dependents whose dependencies have now all succeeded.
    async fn run_slot(self: Arc<Self>, i: usize, trigger: Trigger) -> Result<Vec<RunRecord>> {
        let job = &self.jobs[i];
        let lock = {
            let mut locks = self
                .locks
                .lock()
                .map_err(|_| Error::Internal("scheduler lock poisoned".into()))?;
            locks.entry(job.name.clone()).or_default().clone()
        };
        let waiting = |state: RunState, error: Option<String>| RunRecord {
            job: job.name.clone(),
            run_id: trigger.run_id.clone(),
            attempt: 0,
            trigger: trigger.kind.to_string(),
            scheduled_for: trigger.scheduled_for,
            started_at: Utc::now(),
            ended_at: state.is_terminal().then(Utc::now),
            state,
            rows_written: 0,
            bytes_written: 0,
            target_version: None,
            details: trigger.details(),
            error,
        };
        let _guard = match lock.clone().try_lock_owned() {
            Ok(g) => g,
            Err(_) if job.overlap == Overlap::Skip => {
                let r = waiting(
                    RunState::Skipped,
                    Some("the previous run was still going (overlap = \"skip\")".into()),
                );
                history::record(&self.lake, &r).await?;
                return Ok(vec![r]);
            }
            Err(_) => {
                history::record(&self.lake, &waiting(RunState::Starting, None)).await?;
                lock.lock_owned().await
            }
        };
        let _permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                history::record(&self.lake, &waiting(RunState::Starting, None)).await?;
                self.permits
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::Internal("scheduler closed".into()))?
            }
        };
        let rec = run::execute(&self.lake, &self.limits, job, Scope::Incremental, &trigger).await?;
        drop(_permit);
        drop(_guard);
        let ok = rec.state == RunState::Succeeded;
        let mut out = vec![rec];
        if ok {
            for (k, dep) in self.jobs.iter().enumerate() {
                if !dep.enabled || !dep.depends_on.contains(&job.name) {
                    continue;
                }
                if !self.dependencies_met(dep).await? {
                    continue;
                }
                let t = self.trigger("dependency", trigger.scheduled_for);
                let key = format!(
                    "after-{}",
                    trigger
                        .scheduled_for
                        .map(slot_key)
                        .unwrap_or_else(|| trigger.run_id.clone())
                );
                if self.claim(&dep.name, &key, &t.run_id).await? {
                    out.extend(Box::pin(self.clone().run_slot(k, t)).await?);
                }
            }
        }
        Ok(out)
    }

    /// Every dependency's latest run succeeded, and at least one since `job` last started.
    async fn dependencies_met(&self, job: &Job) -> Result<bool> {
        let last_start = history::latest_runs(&self.lake, Some(&job.name), 1)
            .await?
            .first()
            .map(|r| r.started_at);
        let mut newer = last_start.is_none();
        for d in &job.depends_on {
            let Some(r) = history::latest_runs(&self.lake, Some(d), 1)
                .await?
                .into_iter()
                .next()
            else {
                return Ok(false);
            };
            if r.state != RunState::Succeeded {
                return Ok(false);
            }
            if let (Some(end), Some(start)) = (r.ended_at, last_start)
                && end > start
            {
                newer = true;
            }
        }
        Ok(newer)
    }

    fn path(&self, job: &str, rest: &str) -> ObjectPath {
        ObjectPath::from(format!("{}/{job}/{rest}", self.prefix))
    }

    async fn read_time(&self, path: &ObjectPath) -> Result<Option<DateTime<Utc>>> {
        match self.store.get(path).await {
            Ok(r) => {
                let bytes = r.bytes().await?;
                let v: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Internal(format!("{path}: {e}")))?;
                Ok(v.get("time")
                    .and_then(|t| t.as_str())
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// When this lake's scheduler first saw the job (recorded on first sight).
    async fn since(&self, job: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
        let path = self.path(job, "since.json");
        if let Some(t) = self.read_time(&path).await? {
            return Ok(t);
        }
        let body = serde_json::json!({ "time": now.to_rfc3339() }).to_string();
        match self
            .store
            .put_opts(
                &path,
                PutPayload::from(body),
                PutOptions::from(PutMode::Create),
            )
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(self.read_time(&path).await?.unwrap_or(now))
    }

    async fn cursor(&self, job: &str) -> Result<Option<DateTime<Utc>>> {
        self.read_time(&self.path(job, "cursor.json")).await
    }

    async fn set_cursor(&self, job: &str, t: DateTime<Utc>) -> Result<()> {
        let body = serde_json::json!({ "time": t.to_rfc3339() }).to_string();
        self.store
            .put(&self.path(job, "cursor.json"), PutPayload::from(body))
            .await?;
        Ok(())
    }

    /// Takes a slot (create-only): false if someone already has.
    async fn claim(&self, job: &str, key: &str, run_id: &str) -> Result<bool> {
        let body = serde_json::json!({ "run_id": run_id, "claimed_at": Utc::now().to_rfc3339() })
            .to_string();
        match self
            .store
            .put_opts(
                &self.path(job, &format!("slots/{key}.json")),
                PutPayload::from(body),
                PutOptions::from(PutMode::Create),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

fn slot_key(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}
