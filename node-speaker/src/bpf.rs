//! The tc-eBPF router on the node: loaded when the configuration names
//! interfaces for it (`bpfInterfaces` and the VRFs' members), kept attached by
//! a watcher while the daemon runs, detached on shutdown; its state for
//! `/status` and its counters for `/metrics`.
//!
//! When the program cannot be loaded (no `CAP_BPF`/`CAP_NET_ADMIN`, a kernel
//! without BPF), the daemon logs an error and runs on without it: forwarding
//! then takes the kernel's path, as it would without podpeer. `/readyz` does
//! not depend on it (BGP and the FIB work either way); `/status` says
//! `notLoaded` with the reason and `podpeer_bpf_loaded` is 0, which is the
//! thing to alert on.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use podpeer_bpf::watcher::lock;
use podpeer_bpf::{Outcome, Router, SharedRouter, Watcher};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::config::NodeConfig;

/// The router as the daemon holds it.
#[derive(Debug)]
pub struct NodeBpf {
    wanted: Vec<String>,
    loaded: Result<SharedRouter, String>,
}

impl NodeBpf {
    /// Loads the router if the configuration wants it and starts the watcher
    /// that keeps it attached until `stop` turns true (then it detaches).
    /// `None` when no interface is configured.
    pub fn start(
        config: &NodeConfig,
        mut stop: watch::Receiver<bool>,
    ) -> Option<(Arc<Self>, Option<JoinHandle<()>>)> {
        let wanted = config.bpf_attach_list();
        if wanted.is_empty() {
            return None;
        }
        let router = match Router::load() {
            Ok(r) => Arc::new(Mutex::new(r)),
            Err(e) => {
                error!(
                    interfaces = ?wanted,
                    "cannot load the tc-eBPF router, forwarding stays with the kernel: {e}"
                );
                return Some((Arc::new(Self::not_loaded(wanted, e.to_string())), None));
            }
        };
        info!(interfaces = ?wanted, "tc-eBPF router loaded");
        let mut watcher = Watcher::new(Arc::clone(&router), wanted.iter().cloned());
        for (member, vrf) in config.bpf_lookup_from() {
            watcher = watcher.lookup_from(member, vrf);
        }
        let task = tokio::spawn(async move {
            let stopped = async move {
                while !*stop.borrow_and_update() {
                    if stop.changed().await.is_err() {
                        break;
                    }
                }
            };
            if let Err(e) = watcher.run(stopped).await {
                error!("the tc-eBPF router's link watcher failed: {e}");
            }
        });
        Some((
            Arc::new(Self {
                wanted,
                loaded: Ok(router),
            }),
            Some(task),
        ))
    }

    /// A router that could not be loaded, for `wanted`, because of `error`.
    pub fn not_loaded(wanted: Vec<String>, error: String) -> Self {
        Self {
            wanted,
            loaded: Err(error),
        }
    }

    /// What `/status` shows.
    pub fn view(&self) -> BpfView {
        let router = match &self.loaded {
            Ok(r) => r,
            Err(e) => {
                return BpfView {
                    state: "notLoaded".into(),
                    error: Some(e.clone()),
                    interfaces: self
                        .wanted
                        .iter()
                        .map(|n| BpfInterfaceView {
                            name: n.clone(),
                            attached: false,
                            ifindex: None,
                            hook: None,
                        })
                        .collect(),
                    packets: BTreeMap::new(),
                };
            }
        };
        let router = lock(router);
        let attachments = router.attachments();
        let (packets, error) = match router.counters() {
            Ok(c) => (
                c.iter().map(|(o, n)| (o.name().to_owned(), n)).collect(),
                None,
            ),
            Err(e) => (BTreeMap::new(), Some(e.to_string())),
        };
        BpfView {
            state: "loaded".into(),
            error,
            interfaces: self
                .wanted
                .iter()
                .map(|n| {
                    let a = attachments.iter().find(|a| &a.ifname == n);
                    BpfInterfaceView {
                        name: n.clone(),
                        attached: a.is_some(),
                        ifindex: a.map(|a| a.ifindex),
                        hook: a.map(|a| a.hook.to_string()),
                    }
                })
                .collect(),
            packets,
        }
    }

    /// The collector behind the `podpeer_bpf_*` metrics.
    pub fn collector(self: &Arc<Self>) -> BpfCollector {
        BpfCollector(Arc::clone(self))
    }
}

/// `/status`'s `bpf`: the tc-eBPF router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BpfView {
    /// `loaded` or `notLoaded`.
    pub state: String,
    /// Why it is not loaded, or why its counters could not be read.
    pub error: Option<String>,
    /// The interfaces it should be on.
    pub interfaces: Vec<BpfInterfaceView>,
    /// Packets by outcome (`redirected`, `pass_ttl`, ...).
    pub packets: BTreeMap<String, u64>,
}

/// One interface of [`BpfView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BpfInterfaceView {
    /// Its name.
    pub name: String,
    /// Whether the program is on it now (false: it does not exist, yet or
    /// any more).
    pub attached: bool,
    /// Its index when attached.
    pub ifindex: Option<u32>,
    /// `tcx` or `clsact`.
    pub hook: Option<String>,
}

impl BpfView {
    /// Packets the program forwarded itself.
    pub fn forwarded(&self) -> u64 {
        Outcome::ALL
            .iter()
            .filter(|o| o.is_forwarded())
            .filter_map(|o| self.packets.get(o.name()))
            .sum()
    }
}

/// Encodes `podpeer_bpf_loaded`, `podpeer_bpf_attached{interface}` and
/// `podpeer_bpf_packets_total{outcome}` at each scrape.
#[derive(Debug)]
pub struct BpfCollector(Arc<NodeBpf>);

impl Collector for BpfCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let view = self.0.view();
        let loaded = ConstGauge::new(i64::from(view.state == "loaded"));
        loaded.encode(encoder.encode_descriptor(
            "podpeer_bpf_loaded",
            "Whether the tc-eBPF router is loaded (0: it could not be, see the log)",
            None,
            loaded.metric_type(),
        )?)?;
        let mut attached = encoder.encode_descriptor(
            "podpeer_bpf_attached",
            "Whether the tc-eBPF router is attached to the interface",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for i in &view.interfaces {
            let labels = [("interface", i.name.as_str())];
            ConstGauge::new(i64::from(i.attached)).encode(attached.encode_family(&labels)?)?;
        }
        if view.state != "loaded" {
            return Ok(());
        }
        let mut packets = encoder.encode_descriptor(
            "podpeer_bpf_packets",
            "Packets seen by the tc-eBPF router, by outcome (redirected*: forwarded by it; pass_*: left to the kernel)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for o in Outcome::ALL {
            let n = view.packets.get(o.name()).copied().unwrap_or(0);
            let labels = [("outcome", o.name())];
            ConstCounter::new(n).encode(packets.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use prometheus_client::registry::Registry;

    use super::*;

    #[test]
    fn not_loaded_is_visible_in_status_and_metrics() {
        let bpf = Arc::new(NodeBpf::not_loaded(
            vec!["eth1".into(), "vx.200".into()],
            "Operation not permitted".into(),
        ));
        let v = bpf.view();
        assert_eq!(v.state, "notLoaded");
        assert_eq!(v.error.as_deref(), Some("Operation not permitted"));
        assert_eq!(v.interfaces.len(), 2);
        assert!(v.interfaces.iter().all(|i| !i.attached));

        let mut registry = Registry::default();
        registry.register_collector(Box::new(bpf.collector()));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("podpeer_bpf_loaded 0"), "{text}");
        assert!(
            text.contains("podpeer_bpf_attached{interface=\"vx.200\"} 0"),
            "{text}"
        );
        assert!(!text.contains("podpeer_bpf_packets"), "{text}");
    }

    #[test]
    fn forwarded_sums_both_redirects() {
        let v = BpfView {
            state: "loaded".into(),
            error: None,
            interfaces: Vec::new(),
            packets: BTreeMap::from([
                ("redirected".into(), 10),
                ("redirected_neigh".into(), 2),
                ("pass_ttl".into(), 5),
            ]),
        };
        assert_eq!(v.forwarded(), 12);
    }
}
