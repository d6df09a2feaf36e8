//! What the daemon reports: the JSON of `/status`, `/peers` and `/routes`
//! (read back by `podpeer-node status|peers|routes`), the rejection record
//! behind them, and the node's own Prometheus metrics.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::bpf::BpfView;

/// `/status`: the node at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    /// Our AS.
    pub local_as: u32,
    /// Our router id.
    pub router_id: String,
    /// Sessions Established.
    pub peers_up: usize,
    /// Neighbors known (fabric and pods connected now).
    pub peers_total: usize,
    /// Pod sessions Established.
    pub pods_up: usize,
    /// Fabric sessions Established.
    pub fabric_up: usize,
    /// Fabric neighbors configured.
    pub fabric_total: usize,
    /// Routes in the kernel per table (the key is the table number).
    pub routes_installed: BTreeMap<u32, usize>,
    /// Routes waiting to be written or retried.
    pub routes_pending: usize,
    /// Rejected prefixes by reason, all peers.
    pub rejected: BTreeMap<String, u64>,
    /// The routes of an earlier run were read and the invalid ones removed.
    pub fib_reconciled: bool,
    /// Routes of an earlier run are still kept for their peers to come back.
    pub reconcile_holding: bool,
    /// What `/readyz` says.
    pub ready: bool,
    /// The tc-eBPF router, when interfaces are configured for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf: Option<BpfView>,
}

/// One entry of `/peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerView {
    /// The neighbor's address.
    pub address: IpAddr,
    /// `pod` or `fabric`.
    pub kind: String,
    /// The pod group (pods only).
    pub group: Option<String>,
    /// The configured description.
    pub description: String,
    /// The peer's AS, once known.
    pub remote_as: Option<u32>,
    /// Session state (`Established`, `Active`, ...).
    pub state: String,
    /// Seconds in this state.
    pub since_secs: u64,
    /// Prefixes received (counting repeats).
    pub received: u64,
    /// Prefixes accepted now.
    pub accepted: u64,
    /// Prefixes refused, all reasons.
    pub rejected: u64,
    /// Prefixes refused, by reason (`forbidden`, `next-hop`, ...).
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// The most recent refusal.
    pub last_rejection: Option<LastRejection>,
    /// The last session error.
    pub last_error: Option<String>,
}

/// The most recent refusal of a peer's route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastRejection {
    /// The prefix.
    pub prefix: IpNet,
    /// The reason label.
    pub reason: String,
    /// The speaker's full explanation.
    pub detail: String,
    /// When (seconds since the Unix epoch).
    pub at_unix: u64,
}

/// How many distinct (prefix, reason) pairs are logged per peer before the
/// rest are only counted (a hostile pod must not fill the memory or the log).
pub const LOG_ONCE_LIMIT: usize = 10_000;

#[derive(Debug, Default)]
struct PeerRejections {
    by_reason: BTreeMap<String, u64>,
    last: Option<LastRejection>,
    logged: HashSet<(IpNet, String)>,
}

/// Rejections per peer and reason, and which have been logged.
#[derive(Debug, Default)]
pub struct Rejections {
    peers: HashMap<IpAddr, PeerRejections>,
}

/// Whether to log a rejection just recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogIt {
    /// First time for this peer, prefix and reason: log it.
    First,
    /// The per-peer limit was just reached: say so once.
    LimitReached,
    /// Logged before (or past the limit): only counted.
    No,
}

impl Rejections {
    /// Records a refusal; says whether to log it.
    pub fn record(&mut self, peer: IpAddr, prefix: IpNet, reason: &str, detail: &str) -> LogIt {
        let p = self.peers.entry(peer).or_default();
        *p.by_reason.entry(reason.to_owned()).or_default() += 1;
        p.last = Some(LastRejection {
            prefix,
            reason: reason.to_owned(),
            detail: detail.to_owned(),
            at_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        });
        let key = (prefix, reason.to_owned());
        if p.logged.contains(&key) {
            return LogIt::No;
        }
        match p.logged.len() {
            n if n < LOG_ONCE_LIMIT => {
                p.logged.insert(key);
                LogIt::First
            }
            n if n == LOG_ONCE_LIMIT => {
                // One more entry, a marker that the limit was announced.
                p.logged.insert((IpNet::default(), String::new()));
                LogIt::LimitReached
            }
            _ => LogIt::No,
        }
    }

    /// A peer's counts by reason.
    pub fn by_reason(&self, peer: IpAddr) -> BTreeMap<String, u64> {
        self.peers
            .get(&peer)
            .map(|p| p.by_reason.clone())
            .unwrap_or_default()
    }

    /// A peer's last refusal.
    pub fn last(&self, peer: IpAddr) -> Option<LastRejection> {
        self.peers.get(&peer).and_then(|p| p.last.clone())
    }

    /// Counts by reason over all peers.
    pub fn totals(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for p in self.peers.values() {
            for (r, n) in &p.by_reason {
                *m.entry(r.clone()).or_default() += n;
            }
        }
        m
    }
}

/// Labels of `podpeer_node_rejected_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    /// The pod group (`fabric` for fabric neighbors).
    pub group: String,
    /// The peer's address.
    pub peer: String,
    /// The reason label.
    pub reason: String,
}

/// Labels of per-table metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabels {
    /// The table number.
    pub table: String,
}

/// Labels of kernel write metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    /// `replace` or `delete`.
    pub op: String,
}

/// The node's own metrics (beside bgp-core's), under `podpeer_node_`.
#[derive(Debug, Default)]
pub struct NodeMetrics {
    /// Prefixes refused, by group, peer and reason.
    pub rejected: Family<RejectLabels, Counter>,
    /// Routes in the kernel per table.
    pub fib_routes: Family<TableLabels, Gauge>,
    /// Kernel route writes made.
    pub fib_writes: Family<OpLabels, Counter>,
    /// Kernel route writes that failed.
    pub fib_write_errors: Family<OpLabels, Counter>,
    /// Routes of an earlier run removed by the start-up reconciliation.
    pub reconcile_removed: Counter,
}

impl NodeMetrics {
    /// Adds the metrics to `registry` under `podpeer_node_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("podpeer_node");
        r.register(
            "rejected",
            "Prefixes refused from a peer, by reason",
            self.rejected.clone(),
        );
        r.register(
            "fib_routes_installed",
            "Routes installed in the kernel, per table",
            self.fib_routes.clone(),
        );
        r.register("fib_writes", "Kernel route writes", self.fib_writes.clone());
        r.register(
            "fib_write_errors",
            "Kernel route writes that failed",
            self.fib_write_errors.clone(),
        );
        r.register(
            "reconcile_removed",
            "Routes of an earlier run removed on start",
            self.reconcile_removed.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn rejections_are_logged_once_per_peer_prefix_and_reason() {
        let mut r = Rejections::default();
        let peer: IpAddr = "10.1.0.1".parse().unwrap();
        let p: IpNet = "10.96.0.0/12".parse().unwrap();
        assert_eq!(r.record(peer, p, "forbidden", "x"), LogIt::First);
        assert_eq!(r.record(peer, p, "forbidden", "x"), LogIt::No);
        assert_eq!(r.record(peer, p, "next-hop", "y"), LogIt::First);
        let other: IpAddr = "10.1.0.2".parse().unwrap();
        assert_eq!(r.record(other, p, "forbidden", "x"), LogIt::First);
        assert_eq!(
            r.by_reason(peer),
            BTreeMap::from([("forbidden".into(), 2), ("next-hop".into(), 1)])
        );
        assert_eq!(r.last(peer).unwrap().reason, "next-hop");
        assert_eq!(r.totals()["forbidden"], 3);
    }

    #[test]
    fn log_once_memory_is_bounded() {
        let mut r = Rejections::default();
        let peer: IpAddr = "10.1.0.1".parse().unwrap();
        let mut firsts = 0;
        let mut limit = 0;
        for i in 0..(LOG_ONCE_LIMIT as u32 + 10) {
            let p = IpNet::from(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
            match r.record(peer, p, "not-allowed", "") {
                LogIt::First => firsts += 1,
                LogIt::LimitReached => limit += 1,
                LogIt::No => {}
            }
        }
        assert_eq!((firsts, limit), (LOG_ONCE_LIMIT, 1));
        assert_eq!(r.by_reason(peer)["not-allowed"], LOG_ONCE_LIMIT as u64 + 10);
    }
}
