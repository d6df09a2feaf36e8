//! What the node tells the cluster: its entry in each PodPeering's status,
//! its NodeBGPConfig conflicts, and Events on pods whose routes it refuses.
//!
//! Status ownership: every node writes with server-side apply under a field
//! manager of its own (`podpeer-node/<node>`), and only its own entry of the
//! list-map `status.nodes` (key `name`). The API server merges the entries
//! of all nodes; a node that applies without its entry removes exactly that
//! entry. No node reads, rewrites or overwrites another's, so no retry on
//! conflicts is needed, and a PodPeering's status lists the nodes running
//! its pods. A node applies only when its entry changed.
//!
//! Events are rate-limited per pod: one per prefix and reason in ten
//! minutes, and at most [`EVENTS_PER_MINUTE`] a minute.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter as EventReporter};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tracing::{debug, warn};

use super::crd::{
    NodeBGPConfig, NodeConflict, NodePeeringStatus, PodPeering, PodSession, Rejection,
};
use super::model::{Key, PEER, PeeringReport, Plan, Snapshot};
use crate::status::PeerView;

/// Most Events per pod and minute.
pub const EVENTS_PER_MINUTE: usize = 5;

/// How long the same refusal (prefix and reason) is not reported again.
pub const SAME_EVENT_QUIET: Duration = Duration::from_secs(600);

/// The field manager of `node`.
pub fn field_manager(node: &str) -> String {
    format!("podpeer-node/{node}")
}

/// This node's status entry for one PodPeering: the sessions and the
/// `Ready` and `Conflict` conditions. `previous` keeps the transition times
/// of conditions that did not change.
pub fn node_status(
    node: &str,
    report: &PeeringReport,
    peers: &BTreeMap<IpAddr, PeerView>,
    previous: Option<&NodePeeringStatus>,
    now: &Time,
) -> NodePeeringStatus {
    let mut sessions = Vec::new();
    let mut up = 0;
    let mut total = 0;
    let mut down: Vec<String> = Vec::new();
    for (pod, entry) in &report.pods {
        let mut s = PodSession {
            pod: pod.clone(),
            state: entry.state.clone(),
            ..Default::default()
        };
        if entry.state == PEER {
            total += 1;
            let views: Vec<&PeerView> = entry
                .addresses
                .iter()
                .filter_map(|a| peers.get(a))
                .collect();
            let view = views
                .iter()
                .find(|v| v.state == "Established")
                .or_else(|| views.first())
                .copied();
            s.address = view
                .map(|v| v.address)
                .or_else(|| entry.addresses.first().copied())
                .map(|a| a.to_string());
            match view {
                Some(v) => {
                    s.state = v.state.clone();
                    s.accepted = v.accepted;
                    s.rejected = v.rejected;
                    s.last_rejection = v.last_rejection.as_ref().map(|l| Rejection {
                        prefix: l.prefix.to_string(),
                        reason: l.reason.clone(),
                    });
                }
                None => s.state = "NotConfigured".into(),
            }
            if s.state == "Established" {
                up += 1;
            } else {
                down.push(format!("{pod} ({})", s.state));
            }
        } else {
            down.push(format!("{pod} ({})", s.state));
        }
        sessions.push(s);
    }
    let (status, reason, message) = match &report.problem {
        Some((reason, message)) => ("False", reason.clone(), message.clone()),
        None if total == 0 => (
            "False",
            "NoPeers".into(),
            format!("no selected pod on this node can peer: {}", down.join(", ")),
        ),
        None if up == total => (
            "True",
            "Established".into(),
            format!("{up} of {total} sessions Established"),
        ),
        None => (
            "False",
            "SessionsDown".into(),
            format!(
                "{up} of {total} sessions Established; not: {}",
                down.join(", ")
            ),
        ),
    };
    let mut conditions = vec![condition(
        "Ready",
        status,
        &reason,
        &message,
        report.generation,
        previous,
        now,
    )];
    if let Some((reason, message)) = &report.conflict {
        conditions.push(condition(
            "Conflict",
            "True",
            reason,
            message,
            report.generation,
            previous,
            now,
        ));
    }
    NodePeeringStatus {
        name: node.to_string(),
        observed_generation: report.generation,
        conditions,
        sessions,
    }
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    previous: Option<&NodePeeringStatus>,
    now: &Time,
) -> Condition {
    let since = previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// Whether two entries say the same (transition times aside).
fn same(a: &NodePeeringStatus, b: &NodePeeringStatus) -> bool {
    let strip = |s: &NodePeeringStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_transition_time = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        }
        s
    };
    strip(a) == strip(b)
}

/// Rate limit of Events per pod.
#[derive(Debug, Default)]
pub struct EventLimiter {
    recent: HashMap<String, VecDeque<Instant>>,
    same: HashMap<(String, String, String), Instant>,
}

impl EventLimiter {
    /// Whether an Event for `pod` refusing `prefix` for `reason` may go out
    /// at `now` (and if so, counts it).
    pub fn allow(&mut self, pod: &str, prefix: &str, reason: &str, now: Instant) -> bool {
        let key = (pod.to_string(), prefix.to_string(), reason.to_string());
        if self
            .same
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < SAME_EVENT_QUIET)
        {
            return false;
        }
        let recent = self.recent.entry(pod.to_string()).or_default();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            recent.pop_front();
        }
        if recent.len() >= EVENTS_PER_MINUTE {
            return false;
        }
        recent.push_back(now);
        self.same.insert(key, now);
        if self.same.len() > 10_000 {
            self.same
                .retain(|_, t| now.duration_since(*t) < SAME_EVENT_QUIET);
        }
        true
    }
}

/// Writes the node's status entries and Events.
pub struct Reporter {
    client: Client,
    node: String,
    manager: String,
    written: BTreeMap<Key, NodePeeringStatus>,
    conflicts: BTreeMap<String, Vec<String>>,
    recorder: Recorder,
    limiter: EventLimiter,
}

impl Reporter {
    /// A reporter for `node`; `snap` tells which PodPeerings and
    /// NodeBGPConfigs already carry an entry of this node (from an earlier
    /// run), so that stale ones are removed.
    pub fn new(client: Client, node: &str, snap: &Snapshot) -> Self {
        let mut written = BTreeMap::new();
        for p in &snap.peerings {
            if let Some(e) = p
                .status
                .as_ref()
                .and_then(|s| s.nodes.iter().find(|n| n.name == node))
            {
                written.insert(
                    format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()),
                    e.clone(),
                );
            }
        }
        let mut conflicts = BTreeMap::new();
        for c in &snap.node_configs {
            if let Some(e) = c
                .status
                .as_ref()
                .and_then(|s| s.conflicts.iter().find(|n| n.node == node))
            {
                conflicts.insert(c.name_any(), e.configs.clone());
            }
        }
        let recorder = Recorder::new(
            client.clone(),
            EventReporter {
                controller: "podpeer-node".into(),
                instance: Some(node.to_string()),
            },
        );
        Self {
            client,
            node: node.to_string(),
            manager: field_manager(node),
            written,
            conflicts,
            recorder,
            limiter: EventLimiter::default(),
        }
    }

    /// Applies this node's entry of every PodPeering whose entry changed,
    /// and removes the entries of those no longer concerned.
    pub async fn peerings(&mut self, plan: &Plan, peers: &BTreeMap<IpAddr, PeerView>) {
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let mut keys: Vec<Key> = plan.peerings.keys().cloned().collect();
        keys.extend(
            self.written
                .keys()
                .filter(|k| !plan.peerings.contains_key(*k))
                .cloned(),
        );
        for key in keys {
            let previous = self.written.get(&key);
            let entry = plan
                .peerings
                .get(&key)
                .map(|r| node_status(&self.node, r, peers, previous, &now));
            let unchanged = match (&entry, previous) {
                (Some(e), Some(p)) => same(e, p),
                (None, None) => true,
                _ => false,
            };
            if unchanged {
                continue;
            }
            let Some((ns, name)) = key.split_once('/') else {
                continue;
            };
            let body = json!({
                "apiVersion": "podpeer.io/v1alpha1",
                "kind": "PodPeering",
                "metadata": {"name": name, "namespace": ns},
                "status": {"nodes": entry.iter().collect::<Vec<_>>()},
            });
            let api: Api<PodPeering> = Api::namespaced(self.client.clone(), ns);
            match api
                .patch_status(
                    name,
                    &PatchParams::apply(&self.manager).force(),
                    &Patch::Apply(&body),
                )
                .await
            {
                Ok(_) => {
                    debug!(peering = key, "status applied");
                    match entry {
                        Some(e) => self.written.insert(key, e),
                        None => self.written.remove(&key),
                    };
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    self.written.remove(&key);
                }
                Err(e) => warn!(peering = key, "cannot write status: {e}"),
            }
        }
    }

    /// Reports a conflict (several NodeBGPConfigs select this node) in the
    /// status of each of them; removes it where it is gone.
    pub async fn node_configs(&mut self, conflicting: &[String]) {
        let mut names: Vec<String> = conflicting.to_vec();
        names.extend(
            self.conflicts
                .keys()
                .filter(|k| !conflicting.contains(k))
                .cloned(),
        );
        for name in names {
            let entry = conflicting.contains(&name).then(|| NodeConflict {
                node: self.node.clone(),
                configs: conflicting.to_vec(),
            });
            if entry.as_ref().map(|e| &e.configs) == self.conflicts.get(&name) {
                continue;
            }
            let body = json!({
                "apiVersion": "podpeer.io/v1alpha1",
                "kind": "NodeBGPConfig",
                "metadata": {"name": name},
                "status": {"conflicts": entry.iter().collect::<Vec<_>>()},
            });
            let api: Api<NodeBGPConfig> = Api::all(self.client.clone());
            match api
                .patch_status(
                    &name,
                    &PatchParams::apply(&self.manager).force(),
                    &Patch::Apply(&body),
                )
                .await
            {
                Ok(_) => match entry {
                    Some(e) => {
                        self.conflicts.insert(name, e.configs);
                    }
                    None => {
                        self.conflicts.remove(&name);
                    }
                },
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    self.conflicts.remove(&name);
                }
                Err(e) => warn!(config = name, "cannot write status: {e}"),
            }
        }
    }

    /// An Event on `pod` for a refused route, unless rate-limited.
    pub async fn rejected(
        &mut self,
        pod: &ObjectReference,
        prefix: &str,
        reason: &str,
        detail: &str,
    ) {
        let who = format!(
            "{}/{}",
            pod.namespace.as_deref().unwrap_or_default(),
            pod.name.as_deref().unwrap_or_default()
        );
        if !self.limiter.allow(&who, prefix, reason, Instant::now()) {
            return;
        }
        let ev = Event {
            type_: EventType::Warning,
            reason: "RouteRejected".into(),
            note: Some(format!(
                "{prefix} refused by node {} ({reason}): {detail}",
                self.node
            )),
            action: "Import".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, pod).await {
            warn!(pod = who, "cannot publish an Event: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::k8s::model::PodEntry;

    fn report(pods: &[(&str, &str, &[&str])]) -> PeeringReport {
        PeeringReport {
            generation: Some(3),
            pods: pods
                .iter()
                .map(|(k, state, ips)| {
                    (
                        k.to_string(),
                        PodEntry {
                            addresses: ips.iter().map(|i| i.parse().unwrap()).collect(),
                            state: state.to_string(),
                        },
                    )
                })
                .collect(),
            ..Default::default()
        }
    }

    fn view(ip: &str, state: &str, accepted: u64) -> (IpAddr, PeerView) {
        let v: PeerView = serde_json::from_value(json!({
            "address": ip, "kind": "pod", "group": "ns/pp", "description": "",
            "remoteAs": 4200000001u32, "state": state, "sinceSecs": 1, "received": accepted,
            "accepted": accepted, "rejected": 0, "rejectedByReason": {},
            "lastRejection": null, "lastError": null,
        }))
        .unwrap();
        (ip.parse().unwrap(), v)
    }

    fn t(s: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn ready_when_every_peer_is_established() {
        let r = report(&[
            ("ns/a", PEER, &["10.0.0.1"]),
            ("ns/b", "PodNotRunning", &[]),
        ]);
        let peers = BTreeMap::from([view("10.0.0.1", "Established", 2)]);
        let s = node_status("n1", &r, &peers, None, &t(10));
        assert_eq!(s.name, "n1");
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.conditions.len(), 1);
        let c = &s.conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "Established")
        );
        assert_eq!(c.message, "1 of 1 sessions Established");
        assert_eq!(s.sessions[0].state, "Established");
        assert_eq!(s.sessions[0].accepted, 2);
        assert_eq!(s.sessions[0].address.as_deref(), Some("10.0.0.1"));
        assert_eq!(s.sessions[1].state, "PodNotRunning");
    }

    #[test]
    fn sessions_down_and_transition_times_kept() {
        let r = report(&[("ns/a", PEER, &["10.0.0.1"])]);
        let peers = BTreeMap::from([view("10.0.0.1", "Active", 0)]);
        let first = node_status("n1", &r, &peers, None, &t(10));
        let c = &first.conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "SessionsDown")
        );
        assert_eq!(c.message, "0 of 1 sessions Established; not: ns/a (Active)");
        // Same status later: the transition time stays.
        let again = node_status("n1", &r, &peers, Some(&first), &t(20));
        assert_eq!(again.conditions[0].last_transition_time, t(10));
        assert!(same(&first, &again));
        // Up: a new transition.
        let peers = BTreeMap::from([view("10.0.0.1", "Established", 1)]);
        let up = node_status("n1", &r, &peers, Some(&again), &t(30));
        assert_eq!(up.conditions[0].last_transition_time, t(30));
        assert!(!same(&up, &again));
    }

    #[test]
    fn problems_and_conflicts_become_conditions() {
        let mut r = report(&[("ns/a", "SelectedByOther", &[])]);
        r.conflict = Some(("PodTakenByOther".into(), "pod ns/a ...".into()));
        let s = node_status("n1", &r, &BTreeMap::new(), None, &t(1));
        assert_eq!(s.conditions[0].reason, "NoPeers");
        assert_eq!(s.conditions[1].type_, "Conflict");
        assert_eq!(s.conditions[1].reason, "PodTakenByOther");
        r.problem = Some(("InvalidSpec".into(), "bad".into()));
        let s = node_status("n1", &r, &BTreeMap::new(), None, &t(1));
        assert_eq!(s.conditions[0].reason, "InvalidSpec");
        assert_eq!(s.conditions[0].message, "bad");
    }

    #[test]
    fn events_are_rate_limited_per_pod() {
        let mut l = EventLimiter::default();
        let t0 = Instant::now();
        assert!(l.allow("ns/a", "10.96.0.10/32", "forbidden", t0));
        // The same refusal again: quiet for ten minutes.
        assert!(!l.allow(
            "ns/a",
            "10.96.0.10/32",
            "forbidden",
            t0 + Duration::from_secs(60)
        ));
        assert!(l.allow("ns/a", "10.96.0.10/32", "forbidden", t0 + SAME_EVENT_QUIET));
        // Different prefixes: at most five a minute per pod.
        let mut l = EventLimiter::default();
        let sent = (0..20)
            .filter(|i| l.allow("ns/a", &format!("203.0.113.{i}/32"), "not-allowed", t0))
            .count();
        assert_eq!(sent, EVENTS_PER_MINUTE);
        assert!(
            l.allow("ns/b", "203.0.113.1/32", "not-allowed", t0),
            "other pods have their own budget"
        );
        assert!(l.allow(
            "ns/a",
            "203.0.113.99/32",
            "not-allowed",
            t0 + Duration::from_secs(61)
        ));
    }
}
