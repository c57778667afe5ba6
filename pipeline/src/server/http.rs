//! The HTTP listener: hyper connections with the timeouts axum::serve cannot set, and
//! tower-http's request timeouts and response headers on every answer.
//!
//! A header trickled one byte a second used to hold a connection open indefinitely; an idle
//! keep-alive connection as well. Now both end after `HEADER_TIMEOUT` (hyper starts the
//! header timer as soon as it waits for a request), a request body after `BODY_TIMEOUT`,
//! and a handler after `HANDLER_TIMEOUT`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

use crate::error::{Error, Result};

/// From a connection's first byte (or its last request) to a whole request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// A handler's answer (not its body: a CSV download streams for as long as it takes).
pub const HANDLER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping server waits for open connections.
const DRAIN: Duration = Duration::from_secs(10);

/// `app` with the timeouts and the headers every answer carries: results and history are
/// never cached, and nothing is sniffed as another content type.
pub fn hardened(app: Router) -> Router {
    app.layer(SetResponseHeaderLayer::overriding(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ))
    .layer(SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    ))
    .layer(RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
    .layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        HANDLER_TIMEOUT,
    ))
}

/// Serves `app` on `listener` until `stop` completes, then drains open connections for at
/// most `DRAIN`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 * 1024);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((s, _)) => s,
                    // Out of descriptors or the like: the listener itself is fine.
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = &mut stop => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN) => {}
    }
    Ok(())
}

/// The local address of a bound listener.
pub fn local_addr(listener: &tokio::net::TcpListener) -> Result<SocketAddr> {
    listener
        .local_addr()
        .map_err(|e| Error::io("no local address", e))
}
