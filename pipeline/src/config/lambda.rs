//! `[lambda]` and `[pipelines.x.lambda]`: how `tributary deploy sam` runs things as
//! functions. A pipeline's settings override the project's, which override the defaults.

use toml::Spanned;

use super::raw::RawLambda;
use crate::diag::{Diagnostics, SourceFile};

#[derive(Debug, Clone)]
pub struct LambdaSettings {
    pub memory_mb: u32,
    pub timeout_secs: u32,
    /// x86_64 | arm64
    pub architecture: String,
    pub reserved_concurrency: Option<u32>,
    pub batch_size: u32,
    pub max_batching_window_secs: u32,
    pub parallelization_factor: u32,
    pub bisect_on_error: bool,
    pub max_retry_attempts: i32,
    pub max_record_age_secs: i32,
    /// Deploy the pipeline's stages as three functions (S3 sources).
    pub split_stages: bool,
}

impl Default for LambdaSettings {
    fn default() -> Self {
        Self {
            memory_mb: 1024,
            timeout_secs: 300,
            architecture: "x86_64".into(),
            reserved_concurrency: None,
            batch_size: 1000,
            max_batching_window_secs: 5,
            parallelization_factor: 1,
            bisect_on_error: true,
            max_retry_attempts: 10,
            max_record_age_secs: 86_400,
            split_stages: false,
        }
    }
}

/// `raw` over `base`, each value checked against Lambda's limits.
pub fn resolve(
    file: &SourceFile,
    base: LambdaSettings,
    raw: &RawLambda,
    diags: &mut Diagnostics,
) -> LambdaSettings {
    let mut s = base;
    {
        let mut range = |v: &Option<Spanned<u32>>, lo: u32, hi: u32, what: &str, out: &mut u32| {
            if let Some(v) = v {
                let x = *v.get_ref();
                if x < lo || x > hi {
                    diags.push(
                        file.error(v.span(), format!("{what} must be between {lo} and {hi}"))
                            .with_hint("Lambda's own limit"),
                    );
                } else {
                    *out = x;
                }
            }
        };
        range(&raw.memory_mb, 128, 10_240, "memory_mb", &mut s.memory_mb);
        range(
            &raw.timeout_secs,
            1,
            900,
            "timeout_secs",
            &mut s.timeout_secs,
        );
        range(&raw.batch_size, 1, 10_000, "batch_size", &mut s.batch_size);
        range(
            &raw.max_batching_window_secs,
            0,
            300,
            "max_batching_window_secs",
            &mut s.max_batching_window_secs,
        );
        let mut pf = s.parallelization_factor;
        range(
            &raw.parallelization_factor,
            1,
            10,
            "parallelization_factor",
            &mut pf,
        );
        if pf != 1
            && let Some(v) = &raw.parallelization_factor
        {
            diags.push(
                file.error(v.span(), "parallelization_factor above 1 splits a shard's records across concurrent batches, which the exactly-once positions (one per shard) cannot order")
                    .with_hint("keep 1 and add shards to scale, or raise batch_size"),
            );
        }
        if let Some(v) = &raw.reserved_concurrency {
            let x = *v.get_ref();
            s.reserved_concurrency = (x > 0).then_some(x);
        }
        if let Some(a) = &raw.architecture {
            match a.get_ref().as_str() {
                "x86_64" | "arm64" => s.architecture = a.get_ref().clone(),
                other => diags.push(
                    file.error(a.span(), format!("unknown architecture `{other}`"))
                        .with_hint("x86_64 or arm64"),
                ),
            }
        }
        if let Some(v) = &raw.split_stages {
            s.split_stages = *v.get_ref();
        }
        if let Some(b) = raw.bisect_on_error {
            s.bisect_on_error = b;
        }
        if let Some(v) = &raw.max_retry_attempts {
            let x = *v.get_ref();
            if !(-1..=10_000).contains(&x) {
                diags.push(file.error(
                    v.span(),
                    "max_retry_attempts must be -1 (forever) or 0..=10000",
                ));
            } else {
                s.max_retry_attempts = x;
            }
        }
        if let Some(v) = &raw.max_record_age_secs {
            let x = *v.get_ref();
            if x != -1 && !(60..=604_800).contains(&x) {
                diags.push(file.error(
                    v.span(),
                    "max_record_age_secs must be -1 (forever) or 60..=604800",
                ));
            } else {
                s.max_record_age_secs = x;
            }
        }
    }
    s
}
