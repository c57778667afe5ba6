//! The query service's counters, in the Prometheus text format (`/metrics`).

use super::{QueryInfo, QueryService, State};

#[derive(Default)]
pub(super) struct QueryCounters {
    by_state: std::collections::BTreeMap<String, u64>,
    bytes_scanned: u64,
    seconds: f64,
}

impl QueryService {
    pub(super) fn count(&self, info: &QueryInfo) {
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
}
