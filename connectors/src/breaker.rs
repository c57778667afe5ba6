//! A circuit breaker for a remote dependency: after `threshold` consecutive failures it
//! opens, and every caller waits out the open period instead of retrying (so N shard
//! readers do not hammer a dead service N times over); then one caller probes. A success
//! closes it; another failure reopens it for twice as long (up to a cap). Opening and
//! closing are logged as errors/info naming the dependency: that is the report.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct CircuitBreaker {
    name: String,
    threshold: u32,
    base_open: Duration,
    max_open: Duration,
    state: Mutex<State>,
    /// Times the circuit opened (for run summaries and tests).
    pub opened: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    consecutive: u32,
    open_until: Option<Instant>,
    /// Consecutive openings without a success in between (sets the open period).
    reopenings: u32,
    since: Option<Instant>,
}

impl CircuitBreaker {
    pub fn new(
        name: impl Into<String>,
        threshold: u32,
        base_open: Duration,
        max_open: Duration,
    ) -> Self {
        Self {
            name: name.into(),
            threshold: threshold.max(1),
            base_open,
            max_open,
            state: Mutex::new(State::default()),
            opened: AtomicU64::new(0),
        }
    }

    /// For a Kinesis stream or an S3 bucket: opens after 6 failures in a row, for 2 s, then
    /// 4, 8 … up to 60 s.
    pub fn for_dependency(name: impl Into<String>) -> Self {
        Self::new(name, 6, Duration::from_secs(2), Duration::from_secs(60))
    }

    pub fn is_open(&self) -> bool {
        self.state
            .lock()
            .map(|s| s.open_until.is_some_and(|t| t > Instant::now()))
            .unwrap_or(false)
    }

    /// Waits while the circuit is open (no call goes out meanwhile).
    pub async fn wait_closed(&self) {
        loop {
            let until = match self.state.lock() {
                Ok(s) => s.open_until,
                Err(_) => None,
            };
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t.into()).await,
                _ => return,
            }
        }
    }

    pub fn success(&self) {
        let Ok(mut s) = self.state.lock() else { return };
        if s.reopenings > 0 {
            let down = s.since.map(|t| t.elapsed()).unwrap_or_default();
            tracing::info!(dependency = %self.name, down = ?down, "circuit closed: the dependency answers again");
        }
        *s = State::default();
    }

    pub fn failure(&self, error: &dyn std::fmt::Display) {
        let Ok(mut s) = self.state.lock() else { return };
        s.consecutive += 1;
        s.since.get_or_insert_with(Instant::now);
        let open = s.open_until.is_some_and(|t| t > Instant::now());
        if open || s.consecutive < self.threshold {
            return;
        }
        let period = self
            .base_open
            .saturating_mul(1 << s.reopenings.min(16))
            .min(self.max_open);
        s.open_until = Some(Instant::now() + period);
        s.reopenings += 1;
        // The next failure after the probe reopens at once.
        s.consecutive = self.threshold - 1;
        self.opened.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            dependency = %self.name,
            failures_in_a_row = s.consecutive + 1,
            down_for = ?s.since.map(|t| t.elapsed()).unwrap_or_default(),
            pause = ?period,
            error = %error,
            "circuit open: the dependency keeps failing; pausing all calls to it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_after_threshold_and_closes_on_success() {
        let b = CircuitBreaker::new(
            "x",
            3,
            Duration::from_millis(50),
            Duration::from_millis(200),
        );
        for _ in 0..2 {
            b.failure(&"boom");
        }
        assert_eq!(b.opened.load(Ordering::Relaxed), 0);
        b.failure(&"boom");
        assert_eq!(b.opened.load(Ordering::Relaxed), 1);
        let t = Instant::now();
        b.wait_closed().await;
        assert!(t.elapsed() >= Duration::from_millis(45));
        // The probe fails: open again, twice as long.
        b.failure(&"boom");
        assert_eq!(b.opened.load(Ordering::Relaxed), 2);
        let t = Instant::now();
        b.wait_closed().await;
        assert!(t.elapsed() >= Duration::from_millis(90));
        b.success();
        b.failure(&"boom");
        assert_eq!(
            b.opened.load(Ordering::Relaxed),
            2,
            "a success resets the count"
        );
    }
}
