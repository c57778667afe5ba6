//! Shard leases kept in the lake's object store, so several `tributary run` processes share
//! a stream's shards with no extra service.
//!
//! A lease is a sequence of objects `<prefix>/<shard>/<epoch>.json`, each created with a
//! create-only put (`If-None-Match: *` on S3, `O_EXCL` locally): whoever creates epoch n+1
//! owns the shard from then on, so two processes can never both win the same step. Renewing
//! and releasing are new epochs too. Expiry is by wall clock; a process whose lease expired
//! is also stopped at its next commit, which checks the shard's committed position.
//!
//! Workers announce themselves under `<prefix>/_workers/`, so each can take a fair share.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseRecord {
    pub owner: String,
    /// Wall-clock milliseconds; 0 = released.
    pub expires_ms: i64,
}

/// The lease objects of one pipeline.
#[derive(Clone)]
pub struct LeaseStore {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
}

/// What this process holds: shard → epoch it last wrote.
pub struct Leases {
    pub store: LeaseStore,
    pub owner: String,
    pub held: HashMap<String, u64>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl LeaseStore {
    pub fn new(store: Arc<dyn ObjectStore>, prefix: ObjectPath) -> Self {
        Self { store, prefix }
    }

    fn epoch_path(&self, shard: &str, epoch: u64) -> ObjectPath {
        self.prefix
            .clone()
            .join(shard)
            .join(format!("{epoch:020}.json").as_str())
    }

    /// The current lease of every shard that has one: shard → (epoch, record).
    pub async fn read_all(&self) -> Result<BTreeMap<String, (u64, LeaseRecord)>> {
        let objects: Vec<_> = self.store.list(Some(&self.prefix)).try_collect().await?;
        let mut latest: BTreeMap<String, (u64, ObjectPath)> = BTreeMap::new();
        for o in objects {
            let parts: Vec<_> = o
                .location
                .prefix_match(&self.prefix)
                .into_iter()
                .flatten()
                .collect();
            let [shard, file] = parts.as_slice() else {
                continue;
            };
            let shard = shard.as_ref().to_string();
            if shard == "_workers" {
                continue;
            }
            let Some(epoch) = file
                .as_ref()
                .strip_suffix(".json")
                .and_then(|e| e.parse::<u64>().ok())
            else {
                continue;
            };
            let e = latest.entry(shard).or_insert((epoch, o.location.clone()));
            if epoch >= e.0 {
                *e = (epoch, o.location.clone());
            }
        }
        let mut out = BTreeMap::new();
        for (shard, (epoch, _)) in latest {
            if let Some(current) = self.read_from(&shard, epoch).await? {
                out.insert(shard, current);
            }
        }
        Ok(out)
    }

    /// Reads the lease of `shard` at `epoch`, or at a later one: between listing and reading,
    /// another process may have renewed the lease and pruned the epoch that was listed.
    async fn read_from(&self, shard: &str, mut epoch: u64) -> Result<Option<(u64, LeaseRecord)>> {
        for _ in 0..16 {
            let path = self.epoch_path(shard, epoch);
            match self.store.get(&path).await {
                Ok(r) => {
                    let bytes = r.bytes().await?;
                    let record: LeaseRecord = serde_json::from_slice(&bytes).map_err(|e| {
                        Error::Config(format!("lease object {path} is not a lease: {e}"))
                    })?;
                    return Ok(Some((epoch, record)));
                }
                Err(object_store::Error::NotFound { .. }) => {
                    match self.latest_epoch(shard).await? {
                        Some(latest) if latest > epoch => epoch = latest,
                        // Pruned with nothing newer: the shard's lease objects are gone.
                        Some(_) | None => return Ok(None),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Renewed faster than we can read: report it as held by someone, at the last epoch
        // seen, so this round does not try to take it.
        Ok(Some((
            epoch,
            LeaseRecord {
                owner: String::new(),
                expires_ms: i64::MAX,
            },
        )))
    }

    /// Writes epoch `epoch` of `shard`; `false` if another process wrote it first.
    async fn create(&self, shard: &str, epoch: u64, record: &LeaseRecord) -> Result<bool> {
        let body = serde_json::to_vec(record)
            .map_err(|e| Error::Config(format!("cannot encode lease: {e}")))?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.epoch_path(shard, epoch), PutPayload::from(body), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The highest epoch of `shard` in the store.
    async fn latest_epoch(&self, shard: &str) -> Result<Option<u64>> {
        let dir = self.prefix.clone().join(shard);
        let objects: Vec<_> = self.store.list(Some(&dir)).try_collect().await?;
        Ok(objects
            .iter()
            .filter_map(|o| o.location.filename()?.strip_suffix(".json")?.parse().ok())
            .max())
    }

    /// Creates epoch `epoch` and checks it is the latest: old epochs get pruned, so a
    /// holder that fell far behind could otherwise re-create a pruned one and think it won.
    async fn claim(&self, shard: &str, epoch: u64, record: &LeaseRecord) -> Result<bool> {
        if !self.create(shard, epoch, record).await? {
            return Ok(false);
        }
        Ok(self.latest_epoch(shard).await? == Some(epoch))
    }

    /// Removes epochs of `shard` older than `keep_from` (housekeeping; failures ignored).
    async fn prune(&self, shard: &str, keep_from: u64) {
        for epoch in keep_from.saturating_sub(8)..keep_from {
            let _ = self.store.delete(&self.epoch_path(shard, epoch)).await;
        }
    }

    /// Announces `owner` as alive until `expires_ms`.
    pub async fn heartbeat(&self, owner: &str, expires_ms: i64) -> Result<()> {
        let path = self
            .prefix
            .clone()
            .join("_workers")
            .join(format!("{owner}.json").as_str());
        let body = serde_json::to_vec(&LeaseRecord {
            owner: owner.to_string(),
            expires_ms,
        })
        .map_err(|e| Error::Config(format!("cannot encode heartbeat: {e}")))?;
        self.store.put(&path, PutPayload::from(body)).await?;
        Ok(())
    }

    /// Withdraws `owner` from the live workers (on a clean stop), so the others take over
    /// its share at once instead of after its heartbeat expires.
    pub async fn retire(&self, owner: &str) -> Result<()> {
        let path = self
            .prefix
            .clone()
            .join("_workers")
            .join(format!("{owner}.json").as_str());
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Workers whose heartbeat has not expired (stale ones are deleted).
    pub async fn live_workers(&self) -> Result<Vec<String>> {
        let dir = self.prefix.clone().join("_workers");
        let objects: Vec<_> = self.store.list(Some(&dir)).try_collect().await?;
        let mut live = Vec::new();
        for o in objects {
            let Ok(r) = self.store.get(&o.location).await else {
                continue;
            };
            let Ok(bytes) = r.bytes().await else { continue };
            match serde_json::from_slice::<LeaseRecord>(&bytes) {
                Ok(rec) if rec.expires_ms > now_ms() => live.push(rec.owner),
                _ => {
                    let _ = self.store.delete(&o.location).await;
                }
            }
        }
        live.sort();
        Ok(live)
    }
}

impl Leases {
    pub fn new(store: LeaseStore, owner: String) -> Self {
        Self {
            store,
            owner,
            held: HashMap::new(),
        }
    }

    /// Takes `shard` if its lease is free, released, expired or already ours (from an
    /// earlier run of this process). `current` is its lease as last read.
    pub async fn try_acquire(
        &mut self,
        shard: &str,
        current: Option<&(u64, LeaseRecord)>,
        ttl_ms: i64,
    ) -> Result<bool> {
        let next = match current {
            None => 0,
            Some((epoch, rec)) => {
                if rec.owner != self.owner && rec.expires_ms > now_ms() {
                    return Ok(false);
                }
                epoch + 1
            }
        };
        let rec = LeaseRecord {
            owner: self.owner.clone(),
            expires_ms: now_ms() + ttl_ms,
        };
        if self.store.claim(shard, next, &rec).await? {
            self.held.insert(shard.to_string(), next);
            self.store.prune(shard, next).await;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Extends every lease held; returns the shards lost to another process.
    pub async fn renew(&mut self, ttl_ms: i64) -> Result<Vec<String>> {
        let mut lost = Vec::new();
        let shards: Vec<(String, u64)> = self.held.iter().map(|(s, e)| (s.clone(), *e)).collect();
        for (shard, epoch) in shards {
            let rec = LeaseRecord {
                owner: self.owner.clone(),
                expires_ms: now_ms() + ttl_ms,
            };
            if self.store.claim(&shard, epoch + 1, &rec).await? {
                self.held.insert(shard.clone(), epoch + 1);
                self.store.prune(&shard, epoch + 1).await;
            } else {
                self.held.remove(&shard);
                lost.push(shard);
            }
        }
        Ok(lost)
    }

    /// Gives `shard` up (after its work is committed or abandoned).
    pub async fn release(&mut self, shard: &str) -> Result<()> {
        if let Some(epoch) = self.held.remove(shard) {
            let rec = LeaseRecord {
                owner: self.owner.clone(),
                expires_ms: 0,
            };
            self.store.create(shard, epoch + 1, &rec).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_winner_per_epoch_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn ObjectStore> =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let store = LeaseStore::new(fs, ObjectPath::from("leases/p"));
        let mut a = Leases::new(store.clone(), "a".into());
        let mut b = Leases::new(store.clone(), "b".into());
        assert!(a.try_acquire("s0", None, 60_000).await.unwrap());
        // b read "free" before a won: its create of the same epoch loses.
        assert!(!b.try_acquire("s0", None, 60_000).await.unwrap());
        let all = store.read_all().await.unwrap();
        assert_eq!(all["s0"].1.owner, "a");
        // Live: b cannot take it.
        assert!(!b.try_acquire("s0", all.get("s0"), 60_000).await.unwrap());
        assert!(a.renew(60_000).await.unwrap().is_empty());
        // Released: b takes it, and a's next renewal finds it lost.
        a.release("s0").await.unwrap();
        let all = store.read_all().await.unwrap();
        assert!(b.try_acquire("s0", all.get("s0"), 60_000).await.unwrap());
        a.held.insert("s0".into(), all["s0"].0 - 1);
        assert_eq!(a.renew(60_000).await.unwrap(), vec!["s0".to_string()]);
        // Expired leases are taken over.
        let mut c = Leases::new(store.clone(), "c".into());
        assert!(c.try_acquire("s1", None, -1).await.unwrap());
        let all = store.read_all().await.unwrap();
        assert!(b.try_acquire("s1", all.get("s1"), 60_000).await.unwrap());
        store.heartbeat("a", now_ms() + 10_000).await.unwrap();
        store.heartbeat("z", now_ms() - 1).await.unwrap();
        assert_eq!(store.live_workers().await.unwrap(), vec!["a".to_string()]);
    }

    /// Another process may renew and prune between our listing and our read: the read
    /// follows to the newer epoch instead of failing on the pruned one.
    #[tokio::test]
    async fn a_listed_epoch_pruned_before_the_read_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn ObjectStore> =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let store = LeaseStore::new(fs, ObjectPath::from("leases/p"));
        let mut a = Leases::new(store.clone(), "a".into());
        assert!(a.try_acquire("s0", None, 60_000).await.unwrap());
        a.renew(60_000).await.unwrap();
        a.renew(60_000).await.unwrap();
        let (epoch, rec) = store.read_from("s0", 0).await.unwrap().unwrap();
        assert_eq!((epoch, rec.owner.as_str()), (2, "a"));
        assert!(store.read_from("s9", 0).await.unwrap().is_none());
    }
}
