//! The sidecar's own Prometheus metrics, next to bgp-core's (`bgp_*`):
//!
//! - `podpeer_sidecar_vip_healthy{vip}`: 1 while the VIP is healthy (or has no
//!   check), else 0;
//! - `podpeer_sidecar_vip_announced{vip}`: 1 while the VIP is originated;
//! - `podpeer_sidecar_checks_total{vip,result}`: check runs, `pass` or `fail`;
//! - `podpeer_sidecar_check_duration_seconds{vip}`: how long the runs took;
//! - `podpeer_sidecar_vip_transitions_total{vip}`: health changes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of per-VIP metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VipLabels {
    /// The VIP's prefix.
    pub vip: String,
}

/// Labels of the check counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    /// The VIP's prefix.
    pub vip: String,
    /// `pass` or `fail`.
    pub result: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms to about 16 s.
    Histogram::new(exponential_buckets(0.001, 4.0, 8))
}

/// The sidecar's metrics.
#[derive(Debug)]
pub struct SidecarMetrics {
    /// 1 while healthy or unchecked.
    pub vip_healthy: Family<VipLabels, Gauge>,
    /// 1 while originated.
    pub vip_announced: Family<VipLabels, Gauge>,
    /// Check runs by result.
    pub checks: Family<CheckLabels, Counter>,
    /// Check run durations.
    pub check_duration: Family<VipLabels, Histogram, fn() -> Histogram>,
    /// Health changes.
    pub transitions: Family<VipLabels, Counter>,
}

impl Default for SidecarMetrics {
    fn default() -> Self {
        Self {
            vip_healthy: Family::default(),
            vip_announced: Family::default(),
            checks: Family::default(),
            check_duration: Family::new_with_constructor(latency_histogram),
            transitions: Family::default(),
        }
    }
}

impl SidecarMetrics {
    /// Adds the metrics to `registry` under `podpeer_sidecar_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("podpeer_sidecar");
        r.register(
            "vip_healthy",
            "1 while the VIP is healthy or has no check",
            self.vip_healthy.clone(),
        );
        r.register(
            "vip_announced",
            "1 while the VIP is announced",
            self.vip_announced.clone(),
        );
        r.register("checks", "Health check runs by result", self.checks.clone());
        r.register(
            "check_duration_seconds",
            "How long health check runs took",
            self.check_duration.clone(),
        );
        r.register(
            "vip_transitions",
            "VIP health changes",
            self.transitions.clone(),
        );
    }

    /// The labels of `vip`.
    pub fn vip(vip: &str) -> VipLabels {
        VipLabels {
            vip: vip.to_owned(),
        }
    }
}
