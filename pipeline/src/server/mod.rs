//! `tributary serve`: the query API shaped like Athena's, over HTTP (axum).
//!
//! Start a query (an id comes back at once), poll its state and statistics, page through
//! its results (≤ 1,000 rows a page, JSON or Arrow IPC; CSV download), cancel it, list the
//! history. Every `/v1` call needs `Authorization: Bearer <token>` (401 without, 403 with a
//! wrong one); the token is never logged. `/openapi.json` describes the API. What a token
//! holder can and cannot do, and the limits: SECURITY.md.

pub mod admission;
pub mod flight;
mod http;
mod openapi;
mod prepared;
mod results;
pub mod service;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::query::QueryLimits;
pub use service::{Params, QueryInfo, QueryService, Retention, State as QueryState};

/// Rows per results page at most (Athena's GetQueryResults allows 1,000).
pub const MAX_PAGE: usize = 1000;

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    pub token: String,
    /// Queries running at once (HTTP and Flight SQL together); more wait in the queue.
    pub concurrency: usize,
    /// Queries waiting at most; more are refused (429 / RESOURCE_EXHAUSTED).
    pub queue: usize,
    pub retention: Retention,
    /// Identical query text within this age reuses the earlier results.
    pub reuse_max_age: Option<Duration>,
    /// Also serve Arrow Flight SQL here.
    pub flight_bind: Option<SocketAddr>,
}

#[derive(Clone)]
struct AppState {
    service: Arc<QueryService>,
    token: Arc<String>,
}

/// The API's routes over `service`, guarded by `token`.
pub fn router(service: Arc<QueryService>, token: String) -> Router {
    let state = AppState {
        service,
        token: Arc::new(token),
    };
    let api = Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/queries", get(list).post(start))
        .route("/v1/queries/{id}", get(status).delete(cancel))
        .route("/v1/queries/{id}/results", get(results))
        // After the routes, so that it covers them all: SQL text is at most 256 KB
        // (`query::check_size`); the JSON around it, a little more.
        .layer(axum::extract::DefaultBodyLimit::max(1 << 20))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state);
    http::hardened(
        Router::new()
            .route(
                "/openapi.json",
                get(|| async { axum::Json(openapi::spec()) }),
            )
            .route("/health", get(|| async { "ok" }))
            .merge(api),
    )
}

/// Serves until `shutdown` completes.
pub async fn serve(
    lake: Lake,
    limits: QueryLimits,
    settings: ServerSettings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    // One stop signal for both servers.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    // One memory pool, one admission control and one result store for both protocols.
    let limits = limits.shared();
    let admission = admission::Admission::new(settings.concurrency, settings.queue);
    let service = QueryService::new(
        lake.clone(),
        limits.clone(),
        admission,
        settings.reuse_max_age,
        settings.retention,
    )?;
    let expiry = service.expire_forever();
    let flight = match settings.flight_bind {
        Some(bind) => Some(tokio::spawn(flight::serve(
            service.clone(),
            lake.clone(),
            limits.clone(),
            settings.token.clone(),
            bind,
            stopped(),
        ))),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(settings.bind)
        .await
        .map_err(|e| Error::io(format!("cannot listen on {}", settings.bind), e))?;
    let addr = http::local_addr(&listener)?;
    tracing::info!(%addr, "query API listening");
    eprintln!("query API on http://{addr} (OpenAPI: http://{addr}/openapi.json)");
    http::serve(listener, router(service, settings.token), stopped()).await?;
    expiry.abort();
    if let Some(f) = flight {
        // A Flight call waiting on a running query ends with it; stop waiting after a while.
        match tokio::time::timeout(Duration::from_secs(10), f).await {
            Ok(joined) => {
                joined.map_err(|e| Error::Internal(format!("Flight SQL task: {e}")))??
            }
            Err(_) => tracing::warn!("Flight SQL calls still open at shutdown were dropped"),
        }
    }
    Ok(())
}

/// Prometheus text: the query service's counters (behind the token like the API: query
/// volumes are not for anyone on the network).
async fn metrics(State(st): State<AppState>) -> Response {
    crate::metrics::text(st.service.metrics_text())
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": msg.into() }))).into_response()
}

fn internal(e: Error) -> Response {
    let status = match (&e, e.class()) {
        (Error::Busy(_), _) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, e.to_string());
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            return r;
        }
        (_, crate::error::ErrorClass::User) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

/// The token of an `Authorization` value: the scheme is matched case-insensitively (RFC
/// 9110), the token exactly, with nothing around it.
pub(crate) fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

/// Compares in constant time, so the token cannot be guessed byte by byte from timings.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    match given {
        None => {
            let mut r = error(StatusCode::UNAUTHORIZED, "missing bearer token");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            r
        }
        Some(t) if same(t.as_bytes(), st.token.as_bytes()) => next.run(req).await,
        Some(_) => error(StatusCode::FORBIDDEN, "invalid bearer token"),
    }
}

#[derive(Deserialize)]
struct StartBody {
    sql: String,
    /// SQL literals for the query's `?` placeholders, in order (Athena's
    /// ExecutionParameters).
    #[serde(default)]
    parameters: Vec<String>,
    /// `trino` (Athena's, the default) or `datafusion`.
    #[serde(default)]
    dialect: Option<String>,
}

async fn start(State(st): State<AppState>, body: axum::Json<StartBody>) -> Response {
    let dialect = match body.dialect.as_deref().map(str::parse) {
        None => st.service.default_dialect(),
        Some(Ok(d)) => d,
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, e),
    };
    match st
        .service
        .submit(&body.sql, &body.parameters, dialect)
        .await
    {
        Ok(info) => (StatusCode::OK, axum::Json(info)).into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct ListParams {
    limit: Option<usize>,
}

async fn list(State(st): State<AppState>, Query(p): Query<ListParams>) -> Response {
    match st.service.list(p.limit.unwrap_or(50).min(1000)).await {
        Ok(q) => axum::Json(json!({ "queries": q })).into_response(),
        Err(e) => internal(e),
    }
}

async fn status(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    match st.service.get(&id).await {
        Ok(Some(info)) => axum::Json(info).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no query {id}")),
        Err(e) => internal(e),
    }
}

async fn cancel(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    match st.service.cancel(&id).await {
        Ok(Some(info)) => axum::Json(info).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no query {id}")),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct ResultParams {
    max_results: Option<usize>,
    next_token: Option<String>,
    /// json (default), arrow (IPC stream) or csv (the whole result, as a download).
    format: Option<String>,
}

async fn results(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(p): Query<ResultParams>,
) -> Response {
    let info = match st.service.get(&id).await {
        Ok(Some(i)) => i,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no query {id}")),
        Err(e) => return internal(e),
    };
    if info.state != QueryState::Succeeded {
        return error(
            StatusCode::CONFLICT,
            format!(
                "query {id} is {:?}{}",
                info.state,
                info.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        );
    }
    let file = match st.service.results(&info).await {
        Ok(f) => Arc::new(f),
        Err(e) => return internal(e),
    };
    let schema = file.schema.clone();
    let total = file.rows();
    let format = p.format.as_deref().unwrap_or("json");
    if format == "csv" {
        return csv_download(&id, file);
    }
    let start = match p.next_token.as_deref().map(str::parse::<u64>) {
        None => 0,
        Some(Ok(n)) if n <= total => n,
        Some(_) => return error(StatusCode::BAD_REQUEST, "invalid next_token"),
    };
    let size = p.max_results.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE) as u64;
    // Only the batches the page covers are read from the result file.
    let page = match file.page(start, size).await {
        Ok(p) => p,
        Err(e) => return internal(e),
    };
    let len = page.num_rows() as u64;
    let next = (start + len < total).then(|| (start + len).to_string());
    match format {
        "arrow" => {
            let mut buf = Vec::new();
            let written = (|| -> std::result::Result<(), arrow::error::ArrowError> {
                let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut buf, &schema)?;
                w.write(&page)?;
                w.finish()
            })();
            if let Err(e) = written {
                return internal(e.into());
            }
            let mut r = (
                [(header::CONTENT_TYPE, "application/vnd.apache.arrow.stream")],
                buf,
            )
                .into_response();
            if let Some(n) = next
                && let Ok(v) = header::HeaderValue::from_str(&n)
            {
                r.headers_mut().insert("x-next-token", v);
            }
            r
        }
        "json" => {
            let mut buf = Vec::new();
            {
                let mut w = arrow_json::ArrayWriter::new(&mut buf);
                if let Err(e) = w.write(&page).and_then(|_| w.finish()) {
                    return internal(e.into());
                }
            }
            let rows: serde_json::Value = if buf.is_empty() {
                json!([])
            } else {
                serde_json::from_slice(&buf).unwrap_or(json!([]))
            };
            let columns: Vec<_> = schema
                .fields()
                .iter()
                .map(|f| json!({ "name": f.name(), "type": f.data_type().to_string() }))
                .collect();
            axum::Json(json!({
                "query_id": id,
                "columns": columns,
                "rows": rows,
                "next_token": next,
                "total_rows": total,
            }))
            .into_response()
        }
        other => error(
            StatusCode::BAD_REQUEST,
            format!("unknown format `{other}`: json, arrow or csv"),
        ),
    }
}

/// The whole result as CSV, streamed a batch at a time from its file.
fn csv_download(id: &str, file: Arc<results::ResultFile>) -> Response {
    use futures::StreamExt;
    // An empty result is its header line.
    let header_only = (file.batches() == 0)
        .then(|| arrow::record_batch::RecordBatch::new_empty(file.schema.clone()));
    let batches = futures::stream::iter(header_only.map(Ok)).chain(file.stream());
    let body = batches.enumerate().map(|(i, batch)| {
        let batch = batch.map_err(std::io::Error::other)?;
        let mut buf = Vec::new();
        arrow::csv::WriterBuilder::new()
            .with_header(i == 0)
            .build(&mut buf)
            .write(&batch)
            .map_err(std::io::Error::other)?;
        Ok::<_, std::io::Error>(bytes::Bytes::from(buf))
    });
    (
        [
            (header::CONTENT_TYPE, "text/csv".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.csv\""),
            ),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}
