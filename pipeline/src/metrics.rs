//! Prometheus text exposition (format 0.0.4) of what the daemons do: per pipeline (from
//! `tributary run --metrics-addr`) records in and out, bytes, dead letters, commits and
//! their latency, the last commit's time, and per Kinesis shard the records read and
//! milliseconds behind the stream's tip; `tributary serve` adds its queries.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// One pipeline's counters, updated by its run.
#[derive(Default)]
pub struct PipelineMetrics {
    pub records_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub records_out: AtomicU64,
    pub records_filtered: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub commits: AtomicU64,
    pub commit_micros: AtomicU64,
    pub last_commit_ms: AtomicI64,
    /// The Kinesis source's per-shard figures, once it runs.
    pub shards: Mutex<Option<tributary_connectors::kinesis::MetricsMap>>,
    /// Whether the source (stream, polled prefix) is caught up, and which of its calls
    /// are failing now.
    pub source: Mutex<Option<Arc<tributary_connectors::caught_up::CaughtUp>>>,
}

impl PipelineMetrics {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// A commit that took `took`.
    pub fn committed(&self, took: std::time::Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.commit_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.last_commit_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
    }
}

fn load(c: &AtomicU64) -> f64 {
    c.load(Ordering::Relaxed) as f64
}

/// Reads one figure of a pipeline.
type Getter = dyn Fn(&PipelineMetrics) -> f64;

/// Every pipeline of the process.
#[derive(Default)]
pub struct Metrics {
    pipelines: Mutex<BTreeMap<String, Arc<PipelineMetrics>>>,
}

/// Label values escaped as the exposition format asks.
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Appends one metric family: `# HELP`, `# TYPE`, then a sample per (labels, value).
pub fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, v) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

impl Metrics {
    pub fn pipeline(&self, name: &str) -> Arc<PipelineMetrics> {
        let mut map = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(name.to_string()).or_default().clone()
    }

    pub fn render(&self) -> String {
        let map = self
            .pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut out = String::new();
        let per = |f: &dyn Fn(&PipelineMetrics) -> f64| -> Vec<(String, f64)> {
            map.iter()
                .map(|(n, m)| (format!("pipeline=\"{}\"", label(n)), f(m)))
                .collect()
        };
        let counters: [(&str, &str, &Getter); 6] = [
            (
                "tributary_records_in_total",
                "Input records read (lines, good and bad).",
                &|m| load(&m.records_in),
            ),
            ("tributary_bytes_in_total", "Input bytes read.", &|m| {
                load(&m.bytes_in)
            }),
            (
                "tributary_records_out_total",
                "Rows committed to the pipeline's table.",
                &|m| load(&m.records_out),
            ),
            (
                "tributary_records_filtered_total",
                "Records removed by filter transforms.",
                &|m| load(&m.records_filtered),
            ),
            (
                "tributary_dead_lettered_total",
                "Bad records committed to the DLQ table.",
                &|m| load(&m.dead_lettered),
            ),
            ("tributary_commits_total", "Delta commits made.", &|m| {
                load(&m.commits)
            }),
        ];
        for (name, help, f) in counters {
            family(&mut out, name, "counter", help, &per(f));
        }
        family(
            &mut out,
            "tributary_commit_duration_seconds_sum",
            "counter",
            "Time spent committing (closing files and writing the Delta log entry).",
            &per(&|m| m.commit_micros.load(Ordering::Relaxed) as f64 / 1e6),
        );
        family(
            &mut out,
            "tributary_last_commit_timestamp_seconds",
            "gauge",
            "Unix time of the last commit (0: none yet).",
            &per(&|m| m.last_commit_ms.load(Ordering::Relaxed) as f64 / 1e3),
        );
        let (mut up, mut caught_up, mut failing) = (Vec::new(), Vec::new(), Vec::new());
        for (n, m) in &map {
            let source = m.source.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let Some(source) = source else { continue };
            let l = format!("pipeline=\"{}\"", label(n));
            let down = source.failing();
            up.push((l.clone(), if down.is_empty() { 1.0 } else { 0.0 }));
            let at_tip = source.caught_up_for().is_some();
            caught_up.push((l, if at_tip { 1.0 } else { 0.0 }));
            for (part, _) in down {
                let l = format!("pipeline=\"{}\",part=\"{}\"", label(n), label(&part));
                failing.push((l, 1.0));
            }
        }
        family(
            &mut out,
            "tributary_source_up",
            "gauge",
            "1 while the source's last calls succeeded; 0 while a dependency is down (calls failing or the circuit open).",
            &up,
        );
        family(
            &mut out,
            "tributary_source_caught_up",
            "gauge",
            "1 when every part of the source (shards, the prefix listing) is at its tip with no failed call since.",
            &caught_up,
        );
        family(
            &mut out,
            "tributary_source_part_failing",
            "gauge",
            "Parts of a source whose last call failed (a shard, shard discovery, a prefix listing).",
            &failing,
        );
        let mut behind = Vec::new();
        let mut shard_records = Vec::new();
        for (n, m) in &map {
            let shards = m.shards.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let Some(shards) = shards else { continue };
            let shards = shards.lock().unwrap_or_else(|e| e.into_inner()).clone();
            for (shard, s) in shards {
                let l = format!("pipeline=\"{}\",shard=\"{}\"", label(n), label(&shard));
                behind.push((l.clone(), s.millis_behind.load(Ordering::Relaxed) as f64));
                shard_records.push((l, s.records.load(Ordering::Relaxed) as f64));
            }
        }
        family(
            &mut out,
            "tributary_kinesis_millis_behind_latest",
            "gauge",
            "How far a shard's reader is behind the stream's tip (Kinesis MillisBehindLatest).",
            &behind,
        );
        family(
            &mut out,
            "tributary_kinesis_records_total",
            "counter",
            "Records read from a Kinesis shard.",
            &shard_records,
        );
        out
    }
}

/// Serves `GET /metrics` on `addr` until the process ends; returns the bound address.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(format!("cannot listen on {addr}"), e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::io("no local address", e))?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = metrics.clone();
            async move { text(m.render()) }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics endpoint failed");
        }
    });
    Ok(bound)
}

/// A Prometheus text response.
pub fn text(body: String) -> axum::response::Response {
    axum::response::IntoResponse::into_response((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let m = Metrics::default();
        let p = m.pipeline("or\"ders");
        PipelineMetrics::add(&p.records_in, 10);
        p.committed(std::time::Duration::from_millis(250));
        let text = m.render();
        assert!(text.contains("# TYPE tributary_records_in_total counter\n"));
        assert!(text.contains("tributary_records_in_total{pipeline=\"or\\\"ders\"} 10\n"));
        assert!(text.contains("tributary_commits_total{pipeline=\"or\\\"ders\"} 1\n"));
        assert!(
            text.contains("tributary_commit_duration_seconds_sum{pipeline=\"or\\\"ders\"} 0.25\n")
        );
        // A source whose calls fail says so.
        let source = Arc::new(tributary_connectors::caught_up::CaughtUp::default());
        *p.source.lock().unwrap() = Some(source.clone());
        source.failed("shardId-000000000001", "500 InternalFailure");
        let text = m.render();
        assert!(
            text.contains("tributary_source_up{pipeline=\"or\\\"ders\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("tributary_source_caught_up{pipeline=\"or\\\"ders\"} 0\n"));
        assert!(text.contains(
            "tributary_source_part_failing{pipeline=\"or\\\"ders\",part=\"shardId-000000000001\"} 1\n"
        ));
        source.at_tip("shardId-000000000001");
        let text = m.render();
        assert!(text.contains("tributary_source_up{pipeline=\"or\\\"ders\"} 1\n"));
        assert!(text.contains("tributary_source_caught_up{pipeline=\"or\\\"ders\"} 1\n"));
    }
}
