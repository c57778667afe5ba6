//! Sources and AWS settings: raw TOML → typed connector configs, with each key checked
//! against the source type it was given to.

use std::path::Path;
use std::time::Duration;

use toml::Spanned;
use tributary_connectors::SourceKind;
use tributary_connectors::aws::{AwsSettings, parse_s3_url};
use tributary_connectors::file::FileSourceConfig;
use tributary_connectors::kinesis::{KinesisSourceConfig, StartPosition};
use tributary_connectors::s3::S3SourceConfig;

use super::Storage;
use super::raw::{RawAws, RawSource};
use crate::diag::{Diagnostic, Diagnostics, SourceFile, did_you_mean};

const SOURCE_KEYS: &[(&str, &[&str])] = &[
    ("file", &["path"]),
    (
        "kinesis",
        &[
            "stream",
            "start",
            "timestamp",
            "max_records_per_call",
            "idle_poll_ms",
            "lease_ttl_secs",
            "discovery_interval_secs",
        ],
    ),
    ("s3", &["url", "poll_interval_secs"]),
];

pub(super) fn validate_aws(
    file: &SourceFile,
    raw: Option<&Spanned<RawAws>>,
    diags: &mut Diagnostics,
) -> AwsSettings {
    let Some(raw) = raw else {
        return AwsSettings::default();
    };
    let r = raw.get_ref();
    let mut out = AwsSettings {
        endpoint: None,
        region: r.region.as_ref().map(|s| s.get_ref().clone()),
        allow_http: r.allow_http,
    };
    if let Some(e) = &r.endpoint {
        match url::Url::parse(e.get_ref()) {
            Ok(u) if u.scheme() == "https" || (u.scheme() == "http" && r.allow_http) => {
                out.endpoint = Some(e.get_ref().trim_end_matches('/').to_string());
            }
            Ok(u) if u.scheme() == "http" => diags.push(
                file.error(
                    e.span(),
                    format!("endpoint `{}` is plain HTTP", e.get_ref()),
                )
                .with_hint("add `allow_http = true` (for local test servers only)"),
            ),
            _ => diags.push(
                file.error(
                    e.span(),
                    format!("endpoint `{}` is not an http(s) URL", e.get_ref()),
                )
                .with_hint("e.g. endpoint = \"http://127.0.0.1:5055\""),
            ),
        }
    }
    out
}

/// The keys set on a raw source, with their spans.
fn keys_set(s: &RawSource) -> Vec<(&'static str, std::ops::Range<usize>)> {
    let mut v = Vec::new();
    macro_rules! key {
        ($($f:ident),*) => {$(
            if let Some(x) = &s.$f { v.push((stringify!($f), x.span())); }
        )*};
    }
    key!(
        path,
        stream,
        start,
        timestamp,
        max_records_per_call,
        idle_poll_ms,
        lease_ttl_secs,
        discovery_interval_secs,
        url,
        poll_interval_secs
    );
    v
}

pub(super) fn validate_source(
    file: &SourceFile,
    dir: &Path,
    storage: &Storage,
    s: &Spanned<RawSource>,
) -> Result<SourceKind, Diagnostic> {
    let src = s.get_ref();
    let kind = src.kind.get_ref().as_str();
    let Some((_, allowed)) = SOURCE_KEYS.iter().find(|(k, _)| *k == kind) else {
        return Err(file
            .error(src.kind.span(), format!("unknown source type `{kind}`"))
            .with_hint(did_you_mean(kind, SOURCE_KEYS.iter().map(|(k, _)| *k))));
    };
    for (key, span) in keys_set(src) {
        if !allowed.contains(&key) {
            let owner = SOURCE_KEYS
                .iter()
                .find(|(_, keys)| keys.contains(&key))
                .map(|(k, _)| *k)
                .unwrap_or("another");
            return Err(file
                .error(span, format!("`{key}` is not a setting of a {kind} source (it belongs to {owner} sources)"))
                .with_hint(format!("a {kind} source takes: {}", allowed.join(", "))));
        }
    }
    let missing = |key: &str, example: &str| {
        file.error(s.span(), format!("a {kind} source needs `{key}`"))
            .with_hint(format!("e.g. source = {{ type = \"{kind}\", {example} }}"))
    };
    match kind {
        "file" => {
            let path = src
                .path
                .as_ref()
                .ok_or_else(|| missing("path", "path = \"data/orders/*.ndjson\""))?;
            Ok(SourceKind::File(FileSourceConfig {
                path: path.get_ref().clone(),
                base_dir: dir.to_path_buf(),
            }))
        }
        "kinesis" => {
            let stream = src
                .stream
                .as_ref()
                .ok_or_else(|| missing("stream", "stream = \"orders\""))?;
            let mut cfg = KinesisSourceConfig::new(stream.get_ref());
            cfg.aws = storage.kinesis.clone();
            cfg.start = match src.start.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
                None | Some(("trim_horizon", _)) => StartPosition::TrimHorizon,
                Some(("latest", _)) => StartPosition::Latest,
                Some(("at_timestamp", span)) => {
                    let ts = src.timestamp.as_ref().ok_or_else(|| {
                        file.error(span, "start = \"at_timestamp\" needs `timestamp`")
                            .with_hint("e.g. timestamp = \"2026-11-01T00:00:00Z\"")
                    })?;
                    let t = chrono::DateTime::parse_from_rfc3339(ts.get_ref()).map_err(|e| {
                        file.error(
                            ts.span(),
                            format!("`{}` is not an RFC 3339 time: {e}", ts.get_ref()),
                        )
                        .with_hint("e.g. timestamp = \"2026-11-01T00:00:00Z\"")
                    })?;
                    StartPosition::AtTimestamp(t.timestamp_millis())
                }
                Some((other, span)) => {
                    return Err(file
                        .error(span, format!("unknown start position `{other}`"))
                        .with_hint(did_you_mean(
                            other,
                            ["trim_horizon", "latest", "at_timestamp"],
                        )));
                }
            };
            if let (Some(ts), false) = (
                &src.timestamp,
                matches!(cfg.start, StartPosition::AtTimestamp(_)),
            ) {
                return Err(file
                    .error(
                        ts.span(),
                        "`timestamp` is only used with start = \"at_timestamp\"",
                    )
                    .with_hint("remove it, or set start = \"at_timestamp\""));
            }
            if let Some(n) = &src.max_records_per_call {
                if !(1..=10_000).contains(n.get_ref()) {
                    return Err(file
                        .error(
                            n.span(),
                            format!("max_records_per_call = {} is out of range", n.get_ref()),
                        )
                        .with_hint("GetRecords returns 1 to 10000 records per call"));
                }
                cfg.max_records_per_call = *n.get_ref() as i32;
            }
            if let Some(v) = &src.idle_poll_ms {
                cfg.idle_poll = Duration::from_millis((*v.get_ref()).max(200));
            }
            if let Some(v) = &src.lease_ttl_secs {
                if *v.get_ref() < 2 {
                    return Err(file
                        .error(v.span(), "lease_ttl_secs must be at least 2")
                        .with_hint(
                            "leases are renewed a few times per lifetime; 20–60 s is usual",
                        ));
                }
                cfg.lease_ttl = Duration::from_secs(*v.get_ref());
            }
            if let Some(v) = &src.discovery_interval_secs {
                cfg.discovery_interval = Duration::from_secs((*v.get_ref()).max(1));
            }
            // Leases are renewed every discovery round: it must come well within their life.
            if cfg.discovery_interval * 3 > cfg.lease_ttl {
                cfg.discovery_interval = cfg.lease_ttl / 3;
            }
            Ok(SourceKind::Kinesis(cfg))
        }
        "s3" => {
            let url = src
                .url
                .as_ref()
                .ok_or_else(|| missing("url", "url = \"s3://bucket/incoming/orders/\""))?;
            let (bucket, prefix) = parse_s3_url(url.get_ref()).ok_or_else(|| {
                file.error(
                    url.span(),
                    format!("`{}` is not an s3:// URL with a bucket", url.get_ref()),
                )
                .with_hint("e.g. url = \"s3://bucket/incoming/orders/\"")
            })?;
            Ok(SourceKind::S3(S3SourceConfig {
                url: url.get_ref().clone(),
                bucket,
                prefix,
                aws: storage.s3.clone(),
                poll_interval: src
                    .poll_interval_secs
                    .as_ref()
                    .map(|v| *v.get_ref())
                    .filter(|v| *v > 0)
                    .map(Duration::from_secs),
            }))
        }
        _ => unreachable!("source kinds come from SOURCE_KEYS"),
    }
}
