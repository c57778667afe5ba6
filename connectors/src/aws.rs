//! Reaching AWS: one credential and region chain (the SDK's standard one: environment,
//! profile, SSO-less web identity, IMDS) shared by Kinesis and S3, with an endpoint override
//! for local S3/Kinesis-compatible servers.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AwsCredential};
use tokio::sync::Mutex;

use crate::{Error, Result};

/// Where AWS services are reached. Unset fields come from the standard AWS chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsSettings {
    /// e.g. `http://127.0.0.1:5055` for a local server.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Plain HTTP to the endpoint (local servers only).
    pub allow_http: bool,
}

/// The region used when neither the settings nor the chain name one.
const FALLBACK_REGION: &str = "us-east-1";

/// SDK configuration from the standard chain plus the overrides in `settings`.
pub async fn sdk_config(settings: &AwsSettings) -> aws_config::SdkConfig {
    let region =
        RegionProviderChain::first_try(settings.region.clone().map(aws_config::Region::new))
            .or_default_provider()
            .or_else(FALLBACK_REGION);
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
    if let Some(e) = &settings.endpoint {
        loader = loader.endpoint_url(e);
    }
    loader.load().await
}

/// An S3 object store for `bucket` using the SDK's credential chain. Conditional puts use
/// `If-None-Match`/`If-Match` (object_store's default `etag` mode), which is what makes
/// Delta commits safe without a lock service.
pub async fn s3_store(bucket: &str, settings: &AwsSettings) -> Result<Arc<dyn ObjectStore>> {
    let conf = sdk_config(settings).await;
    let region = conf
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| FALLBACK_REGION.to_string());
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(region)
        .with_allow_http(settings.allow_http)
        .with_virtual_hosted_style_request(false);
    if let Some(e) = &settings.endpoint {
        b = b.with_endpoint(e);
    }
    if let Some(provider) = conf.credentials_provider() {
        b = b.with_credentials(Arc::new(SdkCredentials {
            provider,
            cached: Mutex::new(None),
        }));
    } else {
        b = b.with_skip_signature(true);
    }
    let store = b
        .build()
        .map_err(|e| Error::Config(format!("S3 bucket `{bucket}`: {e}")))?;
    Ok(Arc::new(store))
}

/// Hands the SDK chain's credentials to object_store, cached until shortly before expiry.
#[derive(Debug)]
struct SdkCredentials {
    provider: SharedCredentialsProvider,
    cached: Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

#[async_trait::async_trait]
impl object_store::CredentialProvider for SdkCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut cached = self.cached.lock().await;
        if let Some((c, expiry)) = cached.as_ref() {
            let fresh = expiry
                .map(|t| t > SystemTime::now() + Duration::from_secs(300))
                .unwrap_or(true);
            if fresh {
                return Ok(c.clone());
            }
        }
        let creds = self.provider.provide_credentials().await.map_err(|e| {
            object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            }
        })?;
        let c = Arc::new(AwsCredential {
            key_id: creds.access_key_id().to_string(),
            secret_key: creds.secret_access_key().to_string(),
            token: creds.session_token().map(str::to_string),
        });
        *cached = Some((c.clone(), creds.expiry()));
        Ok(c)
    }
}

/// Splits `s3://bucket/some/prefix` into bucket and prefix (without slashes at the ends).
pub fn parse_s3_url(url: &str) -> Option<(String, String)> {
    let rest = url
        .strip_prefix("s3://")
        .or_else(|| url.strip_prefix("s3a://"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return None;
    }
    Some((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

/// Jittered exponential backoff: attempt 0 waits about `base`, doubling up to `max`
/// ("full jitter" between half and all of the step, so retrying clients spread out).
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let step = base.saturating_mul(1u32 << attempt.min(16)).min(max);
    let half = step / 2;
    half + Duration::from_micros(fastrand::u64(0..=half.as_micros() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        assert_eq!(
            parse_s3_url("s3://b/x/y/"),
            Some(("b".into(), "x/y".into()))
        );
        assert_eq!(parse_s3_url("s3://b"), Some(("b".into(), "".into())));
        assert_eq!(parse_s3_url("file:///x"), None);
        assert_eq!(parse_s3_url("s3:///x"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let max = Duration::from_secs(5);
        for attempt in 0..30 {
            let d = backoff(attempt, Duration::from_millis(100), max);
            assert!(d <= max);
        }
        assert!(backoff(0, Duration::from_millis(100), max) <= Duration::from_millis(100));
        assert!(backoff(6, Duration::from_millis(100), max) >= Duration::from_millis(2500));
    }
}
