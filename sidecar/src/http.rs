//! The HTTP endpoints (axum):
//!
//! - `/healthz`: 200 while the process runs;
//! - `/readyz`: 200 when every session is Established and every VIP that
//!   should be announced is in the node's Adj-RIB-Out; 503 with the reason
//!   otherwise (and from the start of the drain on);
//! - `/metrics`: Prometheus text, bgp-core's metrics and the sidecar's;
//! - `/status`: JSON ([`StatusDoc`](crate::status::StatusDoc)), what
//!   `podpeer-sidecar status` prints.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use tracing::warn;

use crate::daemon::App;

/// The router over `app`.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(app)
}

/// Serves the endpoints on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, app: Arc<App>) {
    if let Err(e) = axum::serve(listener, router(app)).await {
        warn!("HTTP server stopped: {e}");
    }
}

async fn readyz(State(app): State<Arc<App>>) -> (StatusCode, String) {
    match app.readiness().await {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics_text(),
    )
}

async fn status(State(app): State<Arc<App>>) -> Json<crate::status::StatusDoc> {
    Json(app.status().await)
}
