//! FRR mode's HTTP server: `/metrics`, `/healthz` and `/readyz`. The
//! sessions and routes are FRR's there, so `vtysh` answers what native
//! mode's `/status`, `/peers` and `/routes` do.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::health::{CheckResult, HealthMetrics};

/// `podpeer_node_frr_reloads_total{result}`: `reloaded`, `restarted`
/// (the reload failed, the restart worked) or `failed`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReloadLabels {
    /// How it went.
    pub result: &'static str,
}

/// FRR mode's metrics.
#[derive(Debug, Default, Clone)]
pub struct FrrMetrics {
    /// Reloads by result.
    pub reloads: Family<ReloadLabels, Counter>,
    /// Rendered configurations written (changed and accepted by
    /// `frr-reload.py --test`).
    pub writes: Counter,
    /// Renders refused (a bad template, `frr-reload.py --test` failing).
    pub render_errors: Counter,
    /// Problems of the last render (conflicting sequence numbers).
    pub problems: Gauge,
}

/// What the HTTP server shows, updated by the FRR mode loop.
#[derive(Debug)]
pub struct FrrHttp {
    registry: Registry,
    /// The metrics, to be recorded by the loop.
    pub metrics: FrrMetrics,
    last_round: Mutex<Option<Vec<CheckResult>>>,
    heartbeat_ms: AtomicU64,
    /// How long the loop may be silent before `/healthz` fails.
    stale_after: Duration,
}

impl FrrHttp {
    /// The server's state with `health` registered beside FRR mode's own
    /// metrics; `/healthz` fails when the loop has not gone round for
    /// `stale_after`.
    pub fn new(health: &HealthMetrics, stale_after: Duration) -> Self {
        let mut registry = Registry::default();
        health.register(&mut registry);
        let metrics = FrrMetrics::default();
        registry.register(
            "podpeer_node_frr_reloads",
            "FRR reloads over D-Bus by result (reloaded, restarted, failed)",
            metrics.reloads.clone(),
        );
        registry.register(
            "podpeer_node_frr_config_writes",
            "Rendered FRR configurations written after frr-reload.py --test accepted them",
            metrics.writes.clone(),
        );
        registry.register(
            "podpeer_node_frr_render_errors",
            "Renders not applied (bad template, frr-reload.py --test refusing)",
            metrics.render_errors.clone(),
        );
        registry.register(
            "podpeer_node_frr_render_problems",
            "Problems of the last render (conflicting VRFRouteConfiguration sequences)",
            metrics.problems.clone(),
        );
        Self {
            registry,
            metrics,
            last_round: Mutex::new(None),
            heartbeat_ms: AtomicU64::new(now_ms()),
            stale_after,
        }
    }

    /// The loop went round, with this health round's results.
    pub fn round(&self, results: Vec<CheckResult>) {
        self.heartbeat_ms.store(now_ms(), Ordering::Relaxed);
        *self
            .last_round
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(results);
    }

    /// Why the node's network is not ready; `None` when every check of the
    /// last round passed.
    pub fn not_ready(&self) -> Option<String> {
        let last = self
            .last_round
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(results) = last.as_ref() else {
            return Some("no health round yet".into());
        };
        let failed: Vec<String> = results
            .iter()
            .filter(|r| !r.ok)
            .map(|r| match r.detail.as_str() {
                "" => r.name.clone(),
                d => format!("{} ({d})", r.name),
            })
            .collect();
        (!failed.is_empty()).then(|| format!("failed: {}", failed.join(", ")))
    }

    fn alive(&self) -> bool {
        let silent = now_ms().saturating_sub(self.heartbeat_ms.load(Ordering::Relaxed));
        u128::from(silent) <= self.stale_after.as_millis()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The routes of FRR mode's HTTP server.
pub fn router(state: Arc<FrrHttp>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(s): State<Arc<FrrHttp>>) -> Response {
    crate::http::metrics_text(&s.registry)
}

/// 200 while the FRR mode loop goes round.
async fn healthz(State(s): State<Arc<FrrHttp>>) -> Response {
    if s.alive() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the FRR mode loop is not running\n",
        )
            .into_response()
    }
}

/// 200 when every network health check passed in the last round.
async fn readyz(State(s): State<Arc<FrrHttp>>) -> Response {
    match s.not_ready() {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn check(name: &str, ok: bool, detail: &str) -> CheckResult {
        CheckResult {
            name: name.into(),
            ok,
            detail: detail.into(),
        }
    }

    #[test]
    fn ready_only_when_the_last_round_passed() {
        let s = FrrHttp::new(&HealthMetrics::default(), Duration::from_secs(30));
        assert_eq!(s.not_ready().as_deref(), Some("no health round yet"));
        s.round(vec![
            check("interface eth0", true, ""),
            check("frr", false, "bgpd not running"),
            check("tcp 192.0.2.1:179", false, ""),
        ]);
        assert_eq!(
            s.not_ready().as_deref(),
            Some("failed: frr (bgpd not running), tcp 192.0.2.1:179")
        );
        s.round(vec![check("frr", true, "")]);
        assert_eq!(s.not_ready(), None);
        assert!(s.alive());
        let stale = FrrHttp::new(&HealthMetrics::default(), Duration::ZERO);
        stale.heartbeat_ms.store(0, Ordering::Relaxed);
        assert!(!stale.alive());
    }
}
