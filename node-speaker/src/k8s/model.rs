//! From what the cluster says to what the node does: pure functions from a
//! snapshot of the objects (this node's pods, the PodPeerings, the
//! NodeBGPConfigs, nodes, namespaces, services) to a [`Plan`]: the node
//! configuration to run (the same [`NodeConfig`] file mode uses, each
//! PodPeering a pod group whose peers are its pods' addresses) and what to
//! report for each PodPeering.
//!
//! The CRD values are checked by the file-mode validator itself: each
//! NodeBGPConfig and PodPeering is written out as a configuration document
//! and parsed with [`NodeConfig::parse`], so both modes accept and refuse
//! the same things, with the field named in the resource's own terms.
//!
//! Rules:
//! - a pod is a peer while its phase is Running and it has an address (all
//!   of its `podIPs`), also while it terminates (its sidecar withdraws and
//!   drains first); host-network pods never are (their address is the
//!   node's);
//! - a pod that several PodPeerings select belongs to one: a PodPeering of
//!   its own namespace before a cluster-wide one (namespace selector), then
//!   the oldest, then by namespace/name. A new policy never takes pods from
//!   an existing one; both report a `Conflict` condition;
//! - the node's NodeBGPConfig is the one whose `nodeSelector` matches its
//!   labels; none, or more than one, is reported and nothing is guessed;
//! - forbidden to pods: every node's `spec.podCIDRs`, every node's
//!   InternalIPs, the service CIDRs (ServiceCIDR objects, the flag, the
//!   NodeBGPConfig), every Service's cluster IPs outside them, and the
//!   NodeBGPConfig's own list.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::networking::v1::ServiceCIDR;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use serde_json::{Value, json};

use super::crd::{Mode, NodeBGPConfig, PodPeering};
use super::secret::{self, Secrets};
use super::selector;
use crate::config::{NodeConfig, PodGroup};

/// Node-local settings that do not come from the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// This node's name.
    pub node_name: String,
    /// BGP listen addresses.
    pub listen: Vec<SocketAddr>,
    /// The HTTP server's address.
    pub http: SocketAddr,
    /// How long routes of an earlier run wait for their pods.
    pub reconcile_after: Duration,
    /// Service CIDRs given on the command line.
    pub service_cidrs: Vec<IpNet>,
}

/// A snapshot of the objects the node watches.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Every node (pod CIDRs and addresses are forbidden; ours is chosen by name).
    pub nodes: Vec<Arc<Node>>,
    /// The pods on this node.
    pub pods: Vec<Arc<Pod>>,
    /// Every namespace (for namespace selectors).
    pub namespaces: Vec<Arc<Namespace>>,
    /// Every PodPeering.
    pub peerings: Vec<Arc<PodPeering>>,
    /// Every NodeBGPConfig.
    pub node_configs: Vec<Arc<NodeBGPConfig>>,
    /// Every Service (cluster IPs are forbidden).
    pub services: Vec<Arc<Service>>,
    /// Every ServiceCIDR (Kubernetes 1.33 and later; forbidden).
    pub service_cidrs: Vec<Arc<ServiceCIDR>>,
    /// The Secrets labelled for BGP keys (`passwordSecretRef`), by
    /// `namespace/name`; `Debug` shows key names only.
    pub secrets: Secrets,
}

/// `namespace/name`.
pub type Key = String;

/// What the node makes of a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The configuration to run, or why there is none.
    pub config: Result<NodeConfig, NodeProblem>,
    /// The NodeBGPConfig chosen (when exactly one matches).
    pub node_config_name: Option<String>,
    /// Every NodeBGPConfig matching this node, when more than one does.
    pub conflicting_configs: Vec<String>,
    /// One report per PodPeering that selects a pod on this node.
    pub peerings: BTreeMap<Key, PeeringReport>,
}

/// Why the node has no configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeProblem {
    /// `NoNodeConfig`, `NodeConfigConflict`, `InvalidNodeConfig`,
    /// `Unsupported` or `NoNode`.
    pub reason: String,
    /// Says what to do.
    pub message: String,
}

/// What a node reports about one PodPeering.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeeringReport {
    /// Its generation.
    pub generation: Option<i64>,
    /// Why it is not applied (`InvalidSpec`, `SecretNotFound`,
    /// `InvalidSecret`, `NoNodeConfig`), with the message.
    pub problem: Option<(String, String)>,
    /// `Conflict` condition: reason and message, when it shares a pod.
    pub conflict: Option<(String, String)>,
    /// The selected pods on this node, by `namespace/name`.
    pub pods: BTreeMap<Key, PodEntry>,
}

/// One selected pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEntry {
    /// Its addresses (the peers) when it is one.
    pub addresses: Vec<IpAddr>,
    /// `Peer` or why it is not (`PodNotRunning`, `NoAddress`,
    /// `HostNetwork`, `SelectedByOther`, `InvalidSpec`).
    pub state: String,
}

/// The state of a pod that is a peer.
pub const PEER: &str = "Peer";

fn key_of<K: ResourceExt>(o: &K) -> Key {
    format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
}

fn problem(reason: &str, message: impl Into<String>) -> NodeProblem {
    NodeProblem {
        reason: reason.into(),
        message: message.into(),
    }
}

/// The plan for `snap` under `settings`.
pub fn plan(snap: &Snapshot, settings: &Settings) -> Plan {
    let mut out = Plan {
        config: Err(problem("NoNode", "")),
        node_config_name: None,
        conflicting_configs: Vec::new(),
        peerings: BTreeMap::new(),
    };
    let node = node_level(snap, settings, &mut out);
    let selections = select_pods(snap, settings);
    let mut groups = Vec::new();
    for p in snap.peerings.iter().map(|p| &**p) {
        let key = key_of(p);
        let mut report = PeeringReport {
            generation: p.metadata.generation,
            ..Default::default()
        };
        let chosen = selections.get(&key).cloned().unwrap_or_default();
        if let Some(e) = &chosen.error {
            report.problem = Some(("InvalidSpec".into(), e.clone()));
        }
        report.conflict = chosen.conflict.clone();
        report.pods = chosen.pods.clone();
        let peers: Vec<IpAddr> = report
            .pods
            .values()
            .filter(|e| e.state == PEER)
            .flat_map(|e| e.addresses.iter().copied())
            .collect();
        // Never a session without the password asked for.
        let password = match &p.spec.password_secret_ref {
            Some(r) if report.problem.is_none() => {
                let ns = p.namespace().unwrap_or_default();
                match secret::password(&snap.secrets, &ns, r) {
                    Ok(pw) => Some(pw),
                    Err(e) => {
                        report.problem = Some((e.reason.into(), e.message));
                        None
                    }
                }
            }
            _ => None,
        };
        match (&node, &report.problem) {
            (_, Some(_)) => {}
            (Err(np), None) => {
                report.problem = Some((
                    "NoNodeConfig".into(),
                    format!("the node has no BGP configuration: {}", np.message),
                ));
            }
            (Ok(base), None) if !peers.is_empty() => match group(p, &key, base, &peers) {
                Ok(mut g) => {
                    g.password = password;
                    groups.push(g);
                }
                Err(e) => report.problem = Some(("InvalidSpec".into(), e)),
            },
            (Ok(_), None) => {}
        }
        if report.problem.is_some() {
            for e in report.pods.values_mut() {
                if e.state == PEER {
                    e.state = "InvalidSpec".into();
                }
            }
        }
        // Only where it selects pods: a thousand nodes do not each report a
        // PodPeering that concerns none of them (the API server's CEL rules
        // refuse what is invalid everywhere).
        if !report.pods.is_empty() {
            out.peerings.insert(key, report);
        }
    }
    out.config = node.map(|mut c| {
        c.pod_groups = groups;
        c
    });
    out
}

#[derive(Debug, Clone, Default)]
struct Selection {
    error: Option<String>,
    conflict: Option<(String, String)>,
    pods: BTreeMap<Key, PodEntry>,
}

/// Which PodPeering each pod on this node belongs to.
fn select_pods(snap: &Snapshot, settings: &Settings) -> BTreeMap<Key, Selection> {
    let ns_labels: BTreeMap<String, BTreeMap<String, String>> = snap
        .namespaces
        .iter()
        .map(|n| (n.name_any(), n.labels().clone()))
        .collect();
    let mut out: BTreeMap<Key, Selection> = BTreeMap::new();
    // The order that decides: own namespace first, then oldest, then name.
    let mut peerings: Vec<&PodPeering> = snap.peerings.iter().map(|p| &**p).collect();
    peerings.sort_by_key(|p| {
        (
            p.spec.namespace_selector.is_some(),
            p.metadata.creation_timestamp.clone().map(|t| t.0),
            key_of(*p),
        )
    });
    for p in &peerings {
        out.insert(key_of(*p), Selection::default());
    }
    for pod in snap.pods.iter().map(|p| &**p) {
        if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(&settings.node_name) {
            continue;
        }
        let pod_ns = pod.namespace().unwrap_or_default();
        let mut selecting: Vec<Key> = Vec::new();
        for p in &peerings {
            let k = key_of(*p);
            let covers = match &p.spec.namespace_selector {
                None => p.namespace().as_deref() == Some(pod_ns.as_str()),
                Some(sel) => {
                    let empty = BTreeMap::new();
                    match selector::matches(sel, ns_labels.get(&pod_ns).unwrap_or(&empty)) {
                        Ok(m) => m,
                        Err(e) => {
                            if let Some(s) = out.get_mut(&k) {
                                s.error = Some(format!("namespaceSelector: {e}"));
                            }
                            false
                        }
                    }
                }
            };
            if !covers {
                continue;
            }
            match selector::matches(&p.spec.pod_selector, pod.labels()) {
                Ok(true) => selecting.push(k),
                Ok(false) => {}
                Err(e) => {
                    if let Some(s) = out.get_mut(&k) {
                        s.error = Some(format!("podSelector: {e}"));
                    }
                }
            }
        }
        let Some((winner, others)) = selecting.split_first() else {
            continue;
        };
        let pod_key = key_of(pod);
        if let Some(s) = out.get_mut(winner) {
            s.pods.insert(pod_key.clone(), pod_entry(pod));
            if !others.is_empty() {
                s.conflict = Some((
                    "PodSharedWithOther".into(),
                    format!(
                        "pod {pod_key} is also selected by {}; this PodPeering takes it (own namespace first, then the oldest)",
                        others.join(", ")
                    ),
                ));
            }
        }
        for o in others {
            if let Some(s) = out.get_mut(o) {
                s.pods.insert(
                    pod_key.clone(),
                    PodEntry {
                        addresses: Vec::new(),
                        state: "SelectedByOther".into(),
                    },
                );
                s.conflict = Some((
                    "PodTakenByOther".into(),
                    format!(
                        "pod {pod_key} is also selected by {winner}, which takes it (own namespace first, then the oldest)"
                    ),
                ));
            }
        }
    }
    out
}

fn pod_entry(pod: &Pod) -> PodEntry {
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let status = pod.status.as_ref();
    let running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
    let mut addresses: Vec<IpAddr> = status
        .and_then(|s| s.pod_ips.as_ref())
        .map(|ips| ips.iter().filter_map(|i| i.ip.parse().ok()).collect())
        .unwrap_or_default();
    if addresses.is_empty()
        && let Some(ip) = status
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|s| s.parse().ok())
    {
        addresses.push(ip);
    }
    let state = if host_network {
        "HostNetwork"
    } else if !running {
        "PodNotRunning"
    } else if addresses.is_empty() {
        "NoAddress"
    } else {
        PEER
    };
    if state != PEER {
        addresses.clear();
    }
    PodEntry {
        addresses,
        state: state.into(),
    }
}

/// The node-level configuration from the NodeBGPConfig that selects this
/// node.
fn node_level(
    snap: &Snapshot,
    settings: &Settings,
    out: &mut Plan,
) -> Result<NodeConfig, NodeProblem> {
    let Some(node) = snap
        .nodes
        .iter()
        .find(|n| n.name_any() == settings.node_name)
        .map(|n| &**n)
    else {
        return Err(problem(
            "NoNode",
            format!(
                "no Node object named {:?} (is NODE_NAME right?)",
                settings.node_name
            ),
        ));
    };
    let mut matching: Vec<&NodeBGPConfig> = Vec::new();
    for c in snap.node_configs.iter().map(|c| &**c) {
        match selector::matches(&c.spec.node_selector, node.labels()) {
            Ok(true) => matching.push(c),
            Ok(false) => {}
            Err(e) => {
                return Err(problem(
                    "InvalidNodeConfig",
                    format!("NodeBGPConfig {}: nodeSelector: {e}", c.name_any()),
                ));
            }
        }
    }
    let config = match matching.as_slice() {
        [] => {
            return Err(problem(
                "NoNodeConfig",
                format!(
                    "no NodeBGPConfig selects node {} (labels {:?})",
                    settings.node_name,
                    node.labels()
                ),
            ));
        }
        [one] => *one,
        many => {
            let mut names: Vec<String> = many.iter().map(|c| c.name_any()).collect();
            names.sort();
            out.conflicting_configs = names.clone();
            return Err(problem(
                "NodeConfigConflict",
                format!(
                    "NodeBGPConfigs {} all select node {}: make their nodeSelectors exclusive",
                    names.join(", "),
                    settings.node_name
                ),
            ));
        }
    };
    let name = config.name_any();
    out.node_config_name = Some(name.clone());
    if config.spec.mode == Some(Mode::Frr) {
        return Err(problem(
            "Unsupported",
            format!("NodeBGPConfig {name}: mode frr is not supported by this podpeer-node yet"),
        ));
    }
    let router_id = router_id(config.spec.router_id.as_deref(), node, &settings.node_name)
        .map_err(|e| {
            problem(
                "InvalidNodeConfig",
                format!("NodeBGPConfig {name}: routerID: {e}"),
            )
        })?;
    let mut service_cidrs: Vec<IpNet> = settings.service_cidrs.clone();
    let forbidden = forbidden(snap, &mut service_cidrs, &config.spec.service_cidrs);
    let mut forbidden_text: Vec<String> = forbidden.iter().map(ToString::to_string).collect();
    forbidden_text.extend(config.spec.forbidden_prefixes.iter().cloned());
    let doc = json!({
        "localAs": config.spec.local_asn,
        "routerId": router_id.to_string(),
        "listen": settings.listen.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "http": settings.http.to_string(),
        "reconcileAfter": format!("{}ms", settings.reconcile_after.as_millis()),
        "forbiddenPrefixes": forbidden_text,
        "vrfs": config.spec.vrfs.iter().map(|v| json!({
            "name": v.name, "table": v.table, "interfaces": v.interfaces,
        })).collect::<Vec<_>>(),
        "fabric": config.spec.fabric.iter().map(|f| {
            let mut o = json!({"address": f.address, "remoteAs": int_or_string(&f.remote_asn)});
            if let Some(p) = f.port { o["port"] = json!(p); }
            if let Some(d) = &f.description { o["description"] = json!(d); }
            if let Some(h) = &f.hold_time { o["holdTime"] = json!(h); }
            o
        }).collect::<Vec<_>>(),
    });
    parse(&doc, &format!("NodeBGPConfig {name}")).map_err(|e| problem("InvalidNodeConfig", e))
}

fn int_or_string(v: &IntOrString) -> Value {
    match v {
        IntOrString::Int(n) => json!(n),
        IntOrString::String(s) => json!(s),
    }
}

/// A configuration document through the file-mode validator; errors in the
/// resource's terms (`spec.allowedPrefixes[0].le: ...`).
fn parse(doc: &Value, what: &str) -> Result<NodeConfig, String> {
    let text = doc.to_string();
    NodeConfig::parse(&text, Path::new(what)).map_err(|e| {
        let field = e
            .field
            .replacen("podGroups[0].", "spec.", 1)
            .replace("peerAs", "peerASN")
            .replace("holdTime", "timers.holdTime")
            .replace("remoteAs", "remoteASN")
            .replace("localAs", "spec.localASN");
        let field = match field.split_once('[') {
            Some((head, _)) if ["fabric", "vrfs", "forbiddenPrefixes"].contains(&head) => {
                format!("spec.{field}")
            }
            _ => field,
        };
        if field.is_empty() {
            format!("{what}: {}", e.message)
        } else {
            format!("{what}: {field}: {}", e.message)
        }
    })
}

/// A PodPeering as a pod group of `base`'s node (validated like a file's).
fn group(
    p: &PodPeering,
    key: &str,
    base: &NodeConfig,
    peers: &[IpAddr],
) -> Result<PodGroup, String> {
    let s = &p.spec;
    let mut g = json!({
        "name": key,
        "peers": peers.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "peerAs": int_or_string(&s.peer_asn),
        "allowedPrefixes": s.allowed_prefixes.iter().map(|a| {
            let mut o = json!({"prefix": a.prefix});
            if let Some(ge) = a.ge { o["ge"] = json!(ge); }
            if let Some(le) = a.le { o["le"] = json!(le); }
            o
        }).collect::<Vec<_>>(),
        "communities": s.communities,
    });
    if let Some(m) = s.max_prefixes {
        g["maxPrefixes"] = json!(m);
    }
    if let Some(v) = &s.vrf {
        g["vrf"] = json!(v);
    }
    if let Some(h) = s.timers.as_ref().and_then(|t| t.hold_time.as_ref()) {
        g["holdTime"] = json!(h);
    }
    let doc = json!({
        "localAs": base.local_as,
        "routerId": base.router_id.to_string(),
        "vrfs": base.vrfs.iter().map(|v| json!({"name": v.name, "table": v.table})).collect::<Vec<_>>(),
        "fabric": base.fabric.iter().map(|f| json!({"address": f.address.to_string()})).collect::<Vec<_>>(),
        "podGroups": [g],
    });
    let mut c = parse(&doc, &format!("PodPeering {key}"))?;
    c.pod_groups
        .pop()
        .ok_or_else(|| format!("PodPeering {key}: no group"))
}

/// The router id a NodeBGPConfig's `routerID` gives this node.
pub fn router_id(source: Option<&str>, node: &Node, node_name: &str) -> Result<Ipv4Addr, String> {
    match source.unwrap_or("nodeIP") {
        "nodeIP" => node_addresses(node)
            .into_iter()
            .find_map(|a| match a {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
            .ok_or_else(|| {
                format!("nodeIP: node {node_name} has no IPv4 InternalIP (use hash or an address)")
            }),
        "hash" => {
            // FNV-1a of the name; never 0.0.0.0.
            let mut h: u32 = 0x811c_9dc5;
            for b in node_name.bytes() {
                h ^= u32::from(b);
                h = h.wrapping_mul(0x0100_0193);
            }
            Ok(Ipv4Addr::from(h.max(1)))
        }
        other => other
            .parse()
            .map_err(|_| format!("{other:?} is not nodeIP, hash or an IPv4 address")),
    }
}

/// A node's InternalIPs.
pub fn node_addresses(node: &Node) -> Vec<IpAddr> {
    node.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .map(|a| {
            a.iter()
                .filter(|a| a.type_ == "InternalIP")
                .filter_map(|a| a.address.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// What the cluster itself forbids: pod CIDRs, node addresses, service
/// CIDRs (`service_cidrs`, extended by `from_config` and the cluster's
/// ServiceCIDR objects), and the cluster IPs of Services outside those.
pub fn forbidden(
    snap: &Snapshot,
    service_cidrs: &mut Vec<IpNet>,
    from_config: &[String],
) -> Vec<IpNet> {
    let mut set: BTreeSet<IpNet> = BTreeSet::new();
    for n in &snap.nodes {
        let spec = n.spec.as_ref();
        let cidrs = spec
            .and_then(|s| s.pod_cidrs.clone())
            .or_else(|| spec.and_then(|s| s.pod_cidr.clone()).map(|c| vec![c]))
            .unwrap_or_default();
        for c in cidrs {
            if let Ok(net) = c.parse::<IpNet>() {
                set.insert(net.trunc());
            }
        }
        for a in node_addresses(n) {
            set.insert(IpNet::from(a));
        }
    }
    let learned = snap
        .service_cidrs
        .iter()
        .filter_map(|s| s.spec.as_ref()?.cidrs.clone())
        .flatten();
    for c in from_config.iter().cloned().chain(learned) {
        if let Ok(net) = c.parse::<IpNet>().map(|n| n.trunc())
            && !service_cidrs.contains(&net)
        {
            service_cidrs.push(net);
        }
    }
    set.extend(service_cidrs.iter().copied());
    for s in &snap.services {
        let Some(spec) = s.spec.as_ref() else {
            continue;
        };
        let ips = spec
            .cluster_ips
            .clone()
            .or_else(|| spec.cluster_ip.clone().map(|i| vec![i]))
            .unwrap_or_default();
        for ip in ips.iter().filter_map(|i| i.parse::<IpAddr>().ok()) {
            if !service_cidrs.iter().any(|c| c.contains(&ip)) {
                set.insert(IpNet::from(ip));
            }
        }
    }
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bgp_core::fsm::RemoteAs;
    use serde_json::json;

    use super::*;

    fn settings() -> Settings {
        Settings {
            node_name: "n1".into(),
            listen: vec!["0.0.0.0:179".parse().unwrap()],
            http: "127.0.0.1:9180".parse().unwrap(),
            reconcile_after: Duration::from_secs(10),
            service_cidrs: vec!["10.96.0.0/12".parse().unwrap()],
        }
    }

    fn obj<T: serde::de::DeserializeOwned>(v: Value) -> Arc<T> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn node(name: &str, labels: Value, cidr: &str, ip: &str) -> Arc<Node> {
        obj(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]},
        }))
    }

    fn pod(ns: &str, name: &str, labels: Value, ip: Option<&str>, phase: &str) -> Arc<Pod> {
        let mut status = json!({"phase": phase});
        if let Some(ip) = ip {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        obj(json!({
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"nodeName": "n1", "containers": []},
            "status": status,
        }))
    }

    fn peering(ns: &str, name: &str, created: &str, spec: Value) -> Arc<PodPeering> {
        obj(json!({
            "apiVersion": "podpeer.io/v1alpha1", "kind": "PodPeering",
            "metadata": {"name": name, "namespace": ns, "generation": 1, "creationTimestamp": created},
            "spec": spec,
        }))
    }

    fn nbc(name: &str, spec: Value) -> Arc<NodeBGPConfig> {
        obj(json!({
            "apiVersion": "podpeer.io/v1alpha1", "kind": "NodeBGPConfig",
            "metadata": {"name": name}, "spec": spec,
        }))
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            nodes: vec![
                node("n1", json!({"rack": "a"}), "10.244.1.0/24", "192.0.2.11"),
                node("n2", json!({"rack": "b"}), "10.244.2.0/24", "192.0.2.12"),
            ],
            pods: vec![
                pod(
                    "web",
                    "lb-1",
                    json!({"app": "lb"}),
                    Some("10.244.1.5"),
                    "Running",
                ),
                pod("web", "lb-2", json!({"app": "lb"}), None, "Pending"),
                pod(
                    "web",
                    "other",
                    json!({"app": "db"}),
                    Some("10.244.1.7"),
                    "Running",
                ),
            ],
            namespaces: vec![obj(
                json!({"metadata": {"name": "web", "labels": {"team": "edge"}}}),
            )],
            peerings: vec![peering(
                "web",
                "lb",
                "2026-01-01T00:00:00Z",
                json!({
                    "podSelector": {"matchLabels": {"app": "lb"}},
                    "peerASN": "64512-65000",
                    "allowedPrefixes": [{"prefix": "198.51.100.0/24", "ge": 32, "le": 32}],
                    "maxPrefixes": 4, "vrf": "vips", "communities": ["65010:100"],
                    "timers": {"holdTime": "6s"},
                }),
            )],
            node_configs: vec![nbc(
                "rack-a",
                json!({
                    "nodeSelector": {"matchLabels": {"rack": "a"}},
                    "localASN": 65010,
                    "fabric": [{"address": "192.0.2.1", "remoteASN": 65000}],
                    "forbiddenPrefixes": ["0.0.0.0/0"],
                    "vrfs": [{"name": "vips", "table": 100, "interfaces": ["eth1"]}],
                }),
            )],
            services: vec![
                obj(
                    json!({"metadata": {"name": "dns", "namespace": "kube-system"}, "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]}}),
                ),
                obj(
                    json!({"metadata": {"name": "odd", "namespace": "web"}, "spec": {"clusterIP": "172.20.0.5"}}),
                ),
                obj(
                    json!({"metadata": {"name": "headless", "namespace": "web"}, "spec": {"clusterIP": "None"}}),
                ),
            ],
            service_cidrs: Vec::new(),
            secrets: Secrets::new(),
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn running_selected_pods_become_a_group_of_the_node_config() {
        let plan = plan(&snapshot(), &settings());
        let c = plan.config.unwrap();
        assert_eq!(plan.node_config_name.as_deref(), Some("rack-a"));
        assert_eq!(
            (c.local_as, c.router_id),
            (65010, Ipv4Addr::new(192, 0, 2, 11))
        );
        assert_eq!(c.fabric[0].remote_as, RemoteAs::Number(65000));
        assert_eq!(c.pod_groups.len(), 1);
        let g = &c.pod_groups[0];
        assert_eq!(g.name, "web/lb");
        assert_eq!(g.peers, vec![net("10.244.1.5/32")]);
        assert_eq!(g.peer_as, RemoteAs::Range(64512, 65000));
        assert_eq!((g.vrf.as_deref(), g.table), (Some("vips"), 100));
        assert_eq!(g.max_prefixes, Some(4));
        assert_eq!(g.hold_time, Duration::from_secs(6));
        let r = &plan.peerings["web/lb"];
        assert_eq!(r.pods["web/lb-1"].state, PEER);
        assert_eq!(r.pods["web/lb-2"].state, "PodNotRunning");
        assert!(!r.pods.contains_key("web/other"));
        assert_eq!(r.problem, None);
    }

    #[test]
    fn forbidden_prefixes_come_from_the_cluster() {
        let c = plan(&snapshot(), &settings()).config.unwrap();
        let f = &c.forbidden_prefixes;
        for want in [
            "10.244.1.0/24",
            "10.244.2.0/24",
            "192.0.2.11/32",
            "192.0.2.12/32",
            "10.96.0.0/12",
            "172.20.0.5/32",
            "0.0.0.0/0",
        ] {
            assert!(f.contains(&net(want)), "{want} missing from {f:?}");
        }
        assert!(
            !f.contains(&net("10.96.0.10/32")),
            "inside the service CIDR already"
        );
        // The service CIDR from the NodeBGPConfig when the flag is not given.
        let mut s = settings();
        s.service_cidrs.clear();
        let mut snap = snapshot();
        snap.node_configs = vec![nbc(
            "all",
            json!({"localASN": 65010, "serviceCIDRs": ["10.100.0.0/16"]}),
        )];
        let f = plan(&snap, &s).config.unwrap().forbidden_prefixes;
        assert!(f.contains(&net("10.100.0.0/16")));
        assert!(
            f.contains(&net("10.96.0.10/32")),
            "outside every known service CIDR"
        );
        // Learned from the cluster's ServiceCIDR objects.
        snap.service_cidrs = vec![obj(json!({"metadata": {"name": "kubernetes"},
            "spec": {"cidrs": ["10.96.0.0/12", "fd00:10:96::/112"]}}))];
        let f = plan(&snap, &s).config.unwrap().forbidden_prefixes;
        assert!(f.contains(&net("10.96.0.0/12")));
        assert!(f.contains(&net("fd00:10:96::/112")));
        assert!(!f.contains(&net("10.96.0.10/32")), "covered now");
    }

    #[test]
    fn a_pod_two_peerings_select_goes_to_the_older_one() {
        let mut snap = snapshot();
        snap.peerings.push(peering(
            "web",
            "newer",
            "2026-02-01T00:00:00Z",
            json!({"podSelector": {}, "allowedPrefixes": [{"prefix": "203.0.113.0/24"}]}),
        ));
        let p = plan(&snap, &settings());
        let c = p.config.unwrap();
        let older = &p.peerings["web/lb"];
        let newer = &p.peerings["web/newer"];
        assert_eq!(older.pods["web/lb-1"].state, PEER);
        assert_eq!(newer.pods["web/lb-1"].state, "SelectedByOther");
        assert_eq!(
            newer.pods["web/other"].state, PEER,
            "only it selects this one"
        );
        assert_eq!(older.conflict.as_ref().unwrap().0, "PodSharedWithOther");
        let (reason, message) = newer.conflict.clone().unwrap();
        assert_eq!(reason, "PodTakenByOther");
        assert!(message.contains("also selected by web/lb"), "{message}");
        assert_eq!(
            c.group_of("10.244.1.5".parse().unwrap()).unwrap().name,
            "web/lb"
        );
        assert_eq!(
            c.group_of("10.244.1.7".parse().unwrap()).unwrap().name,
            "web/newer"
        );
    }

    #[test]
    fn own_namespace_wins_over_a_cluster_wide_policy() {
        let mut snap = snapshot();
        snap.peerings.insert(
            0,
            peering(
                "infra",
                "cluster-wide",
                "2020-01-01T00:00:00Z",
                json!({"podSelector": {"matchLabels": {"app": "lb"}},
                       "namespaceSelector": {"matchLabels": {"team": "edge"}}}),
            ),
        );
        let p = plan(&snap, &settings());
        assert_eq!(p.peerings["web/lb"].pods["web/lb-1"].state, PEER);
        assert_eq!(
            p.peerings["infra/cluster-wide"].pods["web/lb-1"].state,
            "SelectedByOther"
        );
        // Without the namespace's own policy, the cluster-wide one takes it.
        snap.peerings.pop();
        let p = plan(&snap, &settings());
        assert_eq!(
            p.peerings["infra/cluster-wide"].pods["web/lb-1"].state,
            PEER
        );
        // A namespace selector that does not match covers nothing.
        snap.namespaces = vec![obj(
            json!({"metadata": {"name": "web", "labels": {"team": "core"}}}),
        )];
        assert!(plan(&snap, &settings()).peerings.is_empty());
    }

    #[test]
    fn node_config_none_or_two_is_a_problem_not_a_guess() {
        let mut snap = snapshot();
        snap.node_configs
            .push(nbc("everyone", json!({"localASN": 65020})));
        let p = plan(&snap, &settings());
        let e = p.config.unwrap_err();
        assert_eq!(e.reason, "NodeConfigConflict");
        assert!(e.message.contains("everyone, rack-a"), "{}", e.message);
        assert_eq!(p.conflicting_configs, ["everyone", "rack-a"]);
        assert_eq!(
            p.peerings["web/lb"].problem.as_ref().unwrap().0,
            "NoNodeConfig"
        );
        assert_eq!(p.peerings["web/lb"].pods["web/lb-1"].state, "InvalidSpec");
        snap.node_configs.clear();
        assert_eq!(
            plan(&snap, &settings()).config.unwrap_err().reason,
            "NoNodeConfig"
        );
        let mut s = settings();
        s.node_name = "n9".into();
        assert_eq!(plan(&snapshot(), &s).config.unwrap_err().reason, "NoNode");
    }

    #[test]
    fn invalid_specs_are_reported_in_the_resources_terms() {
        let mut snap = snapshot();
        snap.peerings = vec![peering(
            "web",
            "lb",
            "2026-01-01T00:00:00Z",
            json!({"podSelector": {"matchLabels": {"app": "lb"}}, "vrf": "nope",
                   "allowedPrefixes": [{"prefix": "198.51.100.0/24", "le": 33}]}),
        )];
        let p = plan(&snap, &settings());
        let (reason, message) = p.peerings["web/lb"].problem.clone().unwrap();
        assert_eq!(reason, "InvalidSpec");
        assert_eq!(
            message,
            "PodPeering web/lb: spec.allowedPrefixes[0].le: 33 is longer than an IPv4 prefix can be"
        );
        assert!(p.config.unwrap().pod_groups.is_empty());
        // The node's own AS is refused for pods.
        snap.peerings = vec![peering(
            "web",
            "lb",
            "2026-01-01T00:00:00Z",
            json!({"podSelector": {}, "peerASN": 65010}),
        )];
        let (_, message) = plan(&snap, &settings()).peerings["web/lb"]
            .problem
            .clone()
            .unwrap();
        assert!(
            message.starts_with("PodPeering web/lb: spec.peerASN: 65010 is our own localAs"),
            "{message}"
        );
        // A bad NodeBGPConfig.
        snap.node_configs = vec![nbc(
            "bad",
            json!({"localASN": 65010, "vrfs": [{"name": "v", "table": 254}]}),
        )];
        let e = plan(&snap, &settings()).config.unwrap_err();
        assert_eq!(e.reason, "InvalidNodeConfig");
        assert!(
            e.message
                .starts_with("NodeBGPConfig bad: spec.vrfs[0].table: 254 is reserved"),
            "{}",
            e.message
        );
    }

    #[test]
    fn host_network_pods_never_peer() {
        let mut snap = snapshot();
        snap.pods = vec![obj(json!({
            "metadata": {"name": "h", "namespace": "web", "labels": {"app": "lb"}},
            "spec": {"nodeName": "n1", "hostNetwork": true, "containers": []},
            "status": {"phase": "Running", "podIP": "192.0.2.11"},
        }))];
        let p = plan(&snap, &settings());
        assert_eq!(p.peerings["web/lb"].pods["web/h"].state, "HostNetwork");
        assert!(p.config.unwrap().pod_groups.is_empty());
    }

    #[test]
    fn a_password_secret_ref_gives_the_group_its_key_or_no_pod_peers() {
        let mut snap = snapshot();
        snap.peerings = vec![peering(
            "web",
            "lb",
            "2026-01-01T00:00:00Z",
            json!({"podSelector": {}, "passwordSecretRef": {"name": "bgp", "key": "k"}}),
        )];
        // No (labelled) Secret: a problem, no group, no peer.
        let p = plan(&snap, &settings());
        let (reason, message) = p.peerings["web/lb"].problem.clone().unwrap();
        assert_eq!(reason, "SecretNotFound");
        assert!(message.contains("no Secret web/bgp labelled"), "{message}");
        assert_eq!(p.peerings["web/lb"].pods["web/lb-1"].state, "InvalidSpec");
        assert!(p.config.unwrap().pod_groups.is_empty());
        // A Secret of the same name in another namespace does not count.
        snap.secrets.insert(
            "other/bgp".into(),
            secret::SecretKeys::from_pairs([("k", &b"s3cret"[..])]),
        );
        assert_eq!(
            plan(&snap, &settings()).peerings["web/lb"]
                .problem
                .clone()
                .unwrap()
                .0,
            "SecretNotFound"
        );
        // A key that is no TCP-MD5 key.
        snap.secrets.insert(
            "web/bgp".into(),
            secret::SecretKeys::from_pairs([("k", &[b'x'; 81][..])]),
        );
        let p = plan(&snap, &settings());
        assert_eq!(
            p.peerings["web/lb"].problem.clone().unwrap().0,
            "InvalidSecret"
        );
        assert!(p.config.unwrap().pod_groups.is_empty());
        // The key: every pod of the group gets it.
        snap.secrets.insert(
            "web/bgp".into(),
            secret::SecretKeys::from_pairs([("k", &b"s3cret\n"[..])]),
        );
        let p = plan(&snap, &settings());
        assert_eq!(p.peerings["web/lb"].problem, None);
        let c = p.config.unwrap();
        let g = &c.pod_groups[0];
        assert_eq!(g.peers.len(), 2, "{:?}", g.peers);
        assert_eq!(g.password.as_ref().map(|p| p.expose()), Some("s3cret"));
        // Nothing shows it.
        assert!(!format!("{snap:?} {c:?}").contains("s3cret"));
    }

    #[test]
    fn pods_of_other_nodes_are_ignored_and_router_ids() {
        let mut snap = snapshot();
        let mut s = settings();
        s.node_name = "n2".into();
        snap.node_configs = vec![nbc("all", json!({"localASN": 65010, "routerID": "hash"}))];
        let p = plan(&snap, &s);
        assert!(p.peerings.is_empty());
        let c = p.config.unwrap();
        assert_ne!(c.router_id, Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            router_id(Some("hash"), &snap.nodes[1], "n2").unwrap(),
            c.router_id
        );
        assert_eq!(
            router_id(Some("10.1.2.3"), &snap.nodes[1], "n2").unwrap(),
            Ipv4Addr::new(10, 1, 2, 3)
        );
        let v6: Node = serde_json::from_value(json!({"metadata": {"name": "x"},
            "status": {"addresses": [{"type": "InternalIP", "address": "fd00::1"}]}}))
        .unwrap();
        assert!(
            router_id(None, &v6, "x")
                .unwrap_err()
                .contains("no IPv4 InternalIP")
        );
    }
}
