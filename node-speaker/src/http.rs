//! The daemon's HTTP server: `/status`, `/peers`, `/routes` (JSON),
//! `/metrics` (Prometheus text), `/healthz` and `/readyz`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;

use crate::daemon::App;

/// The routes of the HTTP server.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/peers", get(peers))
        .route("/routes", get(routes))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(app)
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response()
}

async fn status(State(app): State<Arc<App>>) -> Response {
    match app.status().await {
        Ok(s) => Json(s).into_response(),
        Err(e) => unavailable(e),
    }
}

async fn peers(State(app): State<Arc<App>>) -> Response {
    match app.peers().await {
        Ok(p) => Json(p).into_response(),
        Err(e) => unavailable(e),
    }
}

async fn routes(State(app): State<Arc<App>>) -> Response {
    Json(app.routes()).into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    metrics_text(&app.registry)
}

/// `registry` in the OpenMetrics text format, as `/metrics` answers.
pub(crate) fn metrics_text(registry: &prometheus_client::registry::Registry) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// 200 while the FIB loop goes round and the speaker answers.
async fn healthz(State(app): State<Arc<App>>) -> Response {
    if !app.alive() {
        return unavailable("the FIB event loop is not running");
    }
    match tokio::time::timeout(std::time::Duration::from_secs(2), app.speaker.neighbors()).await {
        Ok(Ok(_)) => (StatusCode::OK, "ok\n").into_response(),
        Ok(Err(e)) => unavailable(e),
        Err(_) => unavailable("the speaker does not answer"),
    }
}

/// 200 when listening, reconciled and every fabric neighbor is Established.
async fn readyz(State(app): State<Arc<App>>) -> Response {
    match app.not_ready().await {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(why) => unavailable(why),
    }
}
