//! `tributary demo`: sample order events (the shape of `../shared/bench/gen_events.py`,
//! with ~1 % bad lines), the demo project's `orders` pipeline, and a query over the result.
//! Deterministic: the same `--records` always writes the same bytes, so running the demo
//! twice adds nothing the second time.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

const COUNTRIES: &[(&str, &[&str])] = &[
    ("US", &["New York", "Chicago", "Seattle"]),
    ("DE", &["Berlin", "Hamburg", "Munich"]),
    ("GB", &["London", "Leeds"]),
    ("FR", &["Paris", "Lyon"]),
    ("IN", &["Mumbai", "Delhi"]),
    ("BR", &["Sao Paulo"]),
    ("JP", &["Tokyo", "Osaka"]),
    ("CA", &["Toronto"]),
    ("ES", &["Madrid"]),
    ("NL", &["Amsterdam"]),
];
const DEVICES: &[&str] = &["ios", "android", "web", "pos"];
const STATUSES: &[&str] = &[
    "paid",
    "shipped",
    "delivered",
    "created",
    "cancelled",
    "refunded",
];
/// 2024-06-01T00:00:00Z in milliseconds.
const START_MS: i64 = 1_717_200_000_000;
const DAYS: i64 = 7;

/// SplitMix64: tiny, fast, and the same on every platform.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Zipf-ish skew towards the first entries.
    fn skewed(&mut self, n: usize) -> usize {
        let a = self.below(n as u64) as usize;
        let b = self.below(n as u64) as usize;
        a.min(b)
    }
}

/// What was generated.
#[derive(Debug, Clone, Default)]
pub struct Generated {
    pub files: usize,
    pub good: u64,
    pub bad: u64,
    pub bytes: u64,
}

/// Writes `records` events (plus bad lines, about 1 in 100) into `files` NDJSON files.
pub fn generate(dir: &Path, records: u64, files: usize, seed: u64) -> Result<Generated> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let mut g = Generated {
        files,
        ..Default::default()
    };
    let per_file = records.div_ceil(files.max(1) as u64);
    let mut n = 0u64;
    for fi in 0..files.max(1) {
        let path = dir.join(format!("events-{fi:03}.ndjson"));
        let f = std::fs::File::create(&path)
            .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
        let mut w = std::io::BufWriter::new(f);
        let mut rng = Rng(seed ^ (fi as u64).wrapping_mul(0x1000_0000_01B3));
        let mut bad_rng = Rng(!seed ^ fi as u64);
        let end = (n + per_file).min(records);
        while n < end {
            let line = event(&mut rng, n, records);
            if bad_rng.below(100) == 0 {
                let bad = bad_line(&mut bad_rng, &line);
                w.write_all(bad.as_bytes())
                    .and_then(|_| w.write_all(b"\n"))
                    .map_err(|e| Error::io("write", e))?;
                g.bad += 1;
                g.bytes += bad.len() as u64 + 1;
            }
            w.write_all(line.as_bytes())
                .and_then(|_| w.write_all(b"\n"))
                .map_err(|e| Error::io("write", e))?;
            g.good += 1;
            g.bytes += line.len() as u64 + 1;
            n += 1;
        }
        w.flush().map_err(|e| Error::io("write", e))?;
    }
    Ok(g)
}

fn event(rng: &mut Rng, n: u64, records: u64) -> String {
    // Event time advances with the record number across DAYS days, with jitter.
    let span = DAYS * 86_400_000;
    let t = START_MS
        + ((n as i128 * span as i128) / records.max(1) as i128) as i64
        + rng.below(60_000) as i64;
    let t = t.min(START_MS + span - 1);
    let ts = chrono::DateTime::from_timestamp_millis(t)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default();
    let (cc, cities) = COUNTRIES[rng.skewed(COUNTRIES.len())];
    let device = DEVICES[rng.skewed(DEVICES.len())];
    let status = STATUSES[rng.skewed(STATUSES.len())];
    let n_items = 1 + rng.skewed(4);
    let mut items = Vec::new();
    let mut total_cents = 0u64;
    for _ in 0..n_items {
        let qty = 1 + rng.skewed(3) as u64;
        let cents = 99 + rng.below(150) * 100;
        total_cents += qty * cents;
        items.push(format!(
            "{{\"sku\":\"SKU-{:05}\",\"qty\":{qty},\"price\":{}.{:02}}}",
            rng.below(5000),
            cents / 100,
            cents % 100
        ));
    }
    let shipping = if device == "pos" {
        "null".to_string()
    } else {
        let city = cities[rng.below(cities.len() as u64) as usize];
        format!(
            "{{\"city\":\"{city}\",\"zip\":\"{:05}\"}}",
            rng.below(100_000)
        )
    };
    format!(
        "{{\"event_id\":\"{:016x}-{n:08x}\",\"event_time\":\"{ts}\",\"customer_id\":{},\"country\":\"{cc}\",\"device\":\"{device}\",\"items\":[{}],\"total_amount\":{}.{:02},\"status\":\"{status}\",\"shipping\":{shipping}}}",
        rng.next(),
        1 + rng.below(20_000),
        items.join(","),
        total_cents / 100,
        total_cents % 100
    )
}

const SEGMENTS: &[&str] = &["consumer", "smb", "enterprise", "vip"];

/// The customers dimension (ids 1..=`n`, as referenced by the events): segment and signup
/// date, one NDJSON file.
pub fn generate_customers(dir: &Path, n: u64, seed: u64) -> Result<u64> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let path = dir.join("customers.ndjson");
    let f = std::fs::File::create(&path)
        .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
    let mut w = std::io::BufWriter::new(f);
    let mut rng = Rng(seed);
    let io = |e| Error::io(format!("cannot write {}", path.display()), e);
    for id in 1..=n {
        let segment = SEGMENTS[rng.skewed(SEGMENTS.len())];
        // Signed up in the two years before the events.
        let day = chrono::DateTime::from_timestamp_millis(START_MS)
            .map(|t| t.date_naive())
            .unwrap_or_default()
            - chrono::Duration::days(1 + rng.below(730) as i64);
        writeln!(
            w,
            "{{\"customer_id\":{id},\"segment\":\"{segment}\",\"signup_date\":\"{day}\"}}"
        )
        .map_err(io)?;
    }
    w.flush().map_err(io)?;
    Ok(n)
}

fn bad_line(rng: &mut Rng, good: &str) -> String {
    match rng.below(3) {
        0 => good[..1 + rng.below(good.len() as u64 - 2) as usize].to_string(),
        1 => good.replacen("\"total_amount\":", "\"total_amount\":\"N/A\",\"x\":", 1),
        _ => good.replacen("\"event_time\":", "\"event_tm\":", 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_well_formed() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let ga = generate(a.path(), 2000, 2, 7).unwrap();
        generate(b.path(), 2000, 2, 7).unwrap();
        assert_eq!(ga.good, 2000);
        assert!(ga.bad > 0);
        let fa = std::fs::read(a.path().join("events-001.ndjson")).unwrap();
        let fb = std::fs::read(b.path().join("events-001.ndjson")).unwrap();
        assert_eq!(fa, fb);
        let text = String::from_utf8(fa).unwrap();
        let parsed = text
            .lines()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
            .count();
        assert!(parsed >= 1000);
    }
}
