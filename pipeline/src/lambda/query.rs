//! The query function: API Gateway (HTTP API payload 2.0, REST payload 1.0) and Lambda
//! Function URL events go through the same HTTP API as `tributary serve` — same routes, same
//! bearer token, same answers. One difference, because a container is frozen between
//! invocations: `POST /v1/queries` answers once the query has finished (or failed), with its
//! final state. Results and history live in the lake, so any container answers the GETs.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use lambda_runtime::tower::ServiceExt;
use serde_json::{Value, json};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::server::{QueryService, router};

/// Whether `event` is an HTTP request (API Gateway or a Function URL).
pub fn is_http(event: &Value) -> bool {
    event["requestContext"]["http"].is_object() || event["httpMethod"].is_string()
}

pub async fn handle(config: &Config, lake: &Lake, event: &Value) -> Result<Value> {
    let token = std::env::var(&config.server.token_env)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            Error::Usage(format!(
                "the query function needs a bearer token: set {} on the function",
                config.server.token_env
            ))
        })?;
    let method = event["requestContext"]["http"]["method"]
        .as_str()
        .or(event["httpMethod"].as_str())
        .unwrap_or("GET")
        .to_string();
    let path = event["rawPath"]
        .as_str()
        .or(event["path"].as_str())
        .unwrap_or("/");
    let query = match event["rawQueryString"].as_str() {
        Some(q) => q.to_string(),
        None => event["queryStringParameters"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
                    .collect::<Vec<_>>()
                    .join("&")
            })
            .unwrap_or_default(),
    };
    let uri = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    };
    let body = match event["body"].as_str() {
        None => Vec::new(),
        Some(b) if event["isBase64Encoded"] == true => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|e| Error::Usage(format!("the request body is not base64: {e}")))?,
        Some(b) => b.as_bytes().to_vec(),
    };
    let mut req = axum::http::Request::builder()
        .method(method.as_str())
        .uri(&uri);
    if let Some(h) = event["headers"].as_object() {
        for (k, v) in h {
            if let Some(v) = v.as_str() {
                req = req.header(k.as_str(), v);
            }
        }
    }
    let req = req
        .body(axum::body::Body::from(body))
        .map_err(|e| Error::Usage(format!("not a valid HTTP request: {e}")))?;
    let service = QueryService::new(
        lake.clone(),
        config.query.clone(),
        crate::server::admission::Admission::new(config.server.concurrency, config.server.queue),
        config.server.reuse_results,
        crate::server::Retention {
            results: config.server.results_retention,
            history: config.server.history_retention,
        },
    )?;
    let app = router(service.clone(), token.trim().to_string());
    let resp = app
        .oneshot(req)
        .await
        .map_err(|e| Error::Internal(format!("router: {e}")))?;
    let status = resp.status().as_u16();
    let mut headers = BTreeMap::new();
    for (k, v) in resp.headers() {
        if let Ok(v) = v.to_str() {
            headers.insert(k.as_str().to_string(), v.to_string());
        }
    }
    let mut bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .map_err(|e| Error::Internal(format!("response body: {e}")))?
        .to_vec();
    // A started query: wait for its end, within the query timeout.
    if method == "POST" && path == "/v1/queries" && status == 200 {
        let id = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["query_id"].as_str().map(str::to_string));
        if let Some(id) = id {
            // The query's own timeout ends it; the margin covers storing its results.
            let limit = config.query.timeout.unwrap_or(Duration::from_secs(900));
            if let Ok(info) =
                tokio::time::timeout(limit + Duration::from_secs(5), service.wait(&id)).await
            {
                bytes = serde_json::to_vec(&info?)
                    .map_err(|e| Error::Internal(format!("query info: {e}")))?;
            }
        }
    }
    let text = headers
        .get("content-type")
        .is_some_and(|c| c.starts_with("application/json") || c.starts_with("text/"));
    let (body, b64) = if text {
        (String::from_utf8_lossy(&bytes).into_owned(), false)
    } else {
        (
            base64::engine::general_purpose::STANDARD.encode(&bytes),
            true,
        )
    };
    Ok(json!({
        "statusCode": status,
        "headers": headers,
        "body": body,
        "isBase64Encoded": b64
    }))
}
