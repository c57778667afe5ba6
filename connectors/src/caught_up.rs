//! Whether a source has read everything there is to read, and since when.
//!
//! `--idle-exit` means "caught up", not "nothing arrived": a run whose every call failed
//! while a dependency was down also saw nothing arrive, and must not take that for the end
//! of its input. Each part of a source (a Kinesis shard, an S3 prefix's listing) reports
//! the outcome of each call: at the tip (a successful call with nothing left behind it),
//! behind (records came, or MillisBehindLatest > 0, or it just started), or failed. The
//! source is caught up since the moment its last part reached the tip, provided no call
//! failed after that.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct CaughtUp {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Per part: since when it has been at its tip (`None`: behind, or not read yet).
    parts: BTreeMap<String, Option<Instant>>,
    /// The last failed call of any part (or of the source itself, e.g. discovery).
    failed_at: Option<Instant>,
    /// Parts known to be failing now (a dependency down), for status and metrics.
    failing: BTreeMap<String, String>,
}

impl CaughtUp {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s)
    }

    /// A part starts (or starts over), or a call of it found more to read (records, or
    /// more behind them): behind until a call finds it at its tip.
    pub fn behind(&self, part: &str) {
        self.with(|s| {
            s.parts.insert(part.to_string(), None);
            s.failing.remove(part);
        });
    }

    /// A successful call found nothing more to read in `part`.
    pub fn at_tip(&self, part: &str) {
        self.with(|s| {
            let since = s.parts.entry(part.to_string()).or_insert(None);
            since.get_or_insert_with(Instant::now);
            s.failing.remove(part);
        });
    }

    /// A call of `part` failed: whatever it saw before counts for nothing.
    pub fn failed(&self, part: &str, error: &str) {
        self.with(|s| {
            s.parts.insert(part.to_string(), None);
            s.failed_at = Some(Instant::now());
            s.failing.insert(part.to_string(), error.to_string());
        });
    }

    /// A part that is finished for good (a closed shard read to its end) or no longer
    /// this process's (a lease handed over): it holds nothing back.
    pub fn remove(&self, part: &str) {
        self.with(|s| {
            s.parts.remove(part);
            s.failing.remove(part);
        });
    }

    /// How long the source has been caught up: every part at its tip and no call failed
    /// since. `None` while any part is behind or failing.
    pub fn caught_up_for(&self) -> Option<Duration> {
        self.with(|s| {
            let mut since: Option<Instant> = None;
            for at in s.parts.values() {
                let at = (*at)?;
                since = Some(since.map_or(at, |x: Instant| x.max(at)));
            }
            let since = match (since, s.failed_at) {
                (Some(a), Some(f)) if f >= a => return None,
                (Some(a), _) => a,
                // No parts (none eligible or owned): caught up since the last failure.
                (None, Some(f)) => f,
                (None, None) => return Some(Duration::MAX),
            };
            Some(since.elapsed())
        })
    }

    /// Parts whose last call failed, with the error: a dependency down.
    pub fn failing(&self) -> Vec<(String, String)> {
        self.with(|s| {
            s.failing
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caught_up_only_when_every_part_is_at_its_tip_and_nothing_failed_since() {
        let c = CaughtUp::default();
        c.behind("a");
        c.behind("b");
        assert_eq!(c.caught_up_for(), None);
        c.at_tip("a");
        assert_eq!(c.caught_up_for(), None, "b is still behind");
        c.at_tip("b");
        assert!(c.caught_up_for().is_some());
        // A failure of any part: not caught up, and the dependency is reported down.
        c.failed("a", "500 InternalFailure");
        assert_eq!(c.caught_up_for(), None);
        assert_eq!(c.failing().len(), 1);
        // Repeated failures while the endpoint is dead never add up to idleness.
        c.failed("a", "500 InternalFailure");
        c.failed("b", "500 InternalFailure");
        assert_eq!(c.caught_up_for(), None);
        // Back: once both parts are at their tip again, caught up from then on.
        c.at_tip("a");
        c.at_tip("b");
        let d = c.caught_up_for().expect("caught up");
        assert!(d < Duration::from_secs(5));
        assert!(c.failing().is_empty());
        // Records arriving on a part: behind again.
        c.behind("b");
        assert_eq!(c.caught_up_for(), None);
        c.remove("b");
        assert!(c.caught_up_for().is_some());
    }
}
