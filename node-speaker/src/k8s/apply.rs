//! Applies a new [`NodeConfig`] to the running daemon incrementally: only
//! the neighbors that changed are touched. Each pod address is a passive
//! neighbor of its own (connections from any other address are refused);
//! a pod that goes (or stops matching) is removed with a Cease; a changed
//! policy or forbidden list updates the running sessions in place (guard
//! and policies apply without a reset). What cannot change at run time
//! (local AS, router id, listen and HTTP addresses, VRFs) asks for a restart.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use bgp_core::policy::Set;
use bgp_core::speaker::NeighborConfig;
use bgp_core::wire::Community;
use ipnet::IpNet;
use tracing::{info, warn};

use crate::config::{FabricNeighbor, NodeConfig, PodGroup};
use crate::daemon::App;
use crate::guard;

/// What needs a restart of the daemon to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} changed: restarting to apply it (routes stay in the kernel)")]
pub struct RestartNeeded(pub String);

/// What is applied to the speaker now.
#[derive(Debug, Default)]
pub struct Applied {
    pods: BTreeMap<IpAddr, PodNeighbor>,
    fabric: BTreeMap<IpAddr, (FabricNeighbor, Vec<String>)>,
}

#[derive(Debug, Clone, PartialEq)]
struct PodNeighbor {
    group: PodGroup,
    pod: String,
    forbidden: Vec<IpNet>,
}

/// What one apply did (counts).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    /// Neighbors added.
    pub added: usize,
    /// Neighbors removed.
    pub removed: usize,
    /// Neighbors updated in place.
    pub updated: usize,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Applied {
    /// What the daemon applied at start from `config`: its fabric neighbors
    /// without export communities; pod neighbors and the export policy come
    /// with the first [`Applied::apply`].
    pub fn started(config: &NodeConfig) -> Self {
        let key = export_key(config, &[]);
        Self {
            pods: BTreeMap::new(),
            fabric: config
                .fabric
                .iter()
                .map(|f| (f.address, (f.clone(), key.clone())))
                .collect(),
        }
    }

    /// The pod addresses applied, with the pod (`namespace/name`).
    pub fn pods(&self) -> impl Iterator<Item = (IpAddr, &str)> {
        self.pods.iter().map(|(ip, p)| (*ip, p.pod.as_str()))
    }

    /// Brings the daemon to `new`: the configuration swapped, neighbors
    /// added, removed and updated. `pods` names the pod of each address.
    pub async fn apply(
        &mut self,
        app: &App,
        new: NodeConfig,
        pods: &BTreeMap<IpAddr, String>,
        export: &[Community],
    ) -> Result<Changes, RestartNeeded> {
        let old = app.config();
        restart_needed(&old, &new)?;
        let new = Arc::new(new);
        app.set_config(Arc::clone(&new));
        let mut changes = Changes::default();

        let mut want: BTreeMap<IpAddr, PodNeighbor> = BTreeMap::new();
        for g in &new.pod_groups {
            for p in &g.peers {
                let ip = p.addr();
                want.insert(
                    ip,
                    PodNeighbor {
                        group: g.clone(),
                        pod: pods.get(&ip).cloned().unwrap_or_default(),
                        forbidden: new.forbidden_prefixes.clone(),
                    },
                );
            }
        }
        let gone: Vec<IpAddr> = self
            .pods
            .keys()
            .filter(|ip| !want.contains_key(ip))
            .copied()
            .collect();
        for ip in gone {
            let pod = self.pods.remove(&ip).map(|p| p.pod).unwrap_or_default();
            info!(peer = %ip, pod, "pod no longer a peer: removing its neighbor");
            if let Err(e) = app
                .speaker
                .remove_neighbor(ip, Some("pod is no longer selected".into()))
                .await
            {
                warn!(peer = %ip, "cannot remove neighbor: {e}");
            }
            changes.removed += 1;
        }
        let mut retable = false;
        for (ip, n) in want {
            if self.pods.get(&ip) == Some(&n) {
                continue;
            }
            retable |= self
                .pods
                .get(&ip)
                .is_some_and(|old| old.group.table != n.group.table);
            let config = pod_neighbor(&new, &n.group, ip, &n.pod);
            let result = if self.pods.contains_key(&ip) {
                changes.updated += 1;
                app.speaker.update_neighbor(config).await
            } else {
                info!(peer = %ip, pod = n.pod, group = n.group.name, "pod is a peer");
                changes.added += 1;
                app.speaker.add_neighbor(config).await
            };
            match result {
                Ok(()) => {
                    self.pods.insert(ip, n);
                }
                Err(e) => warn!(peer = %ip, "cannot set up neighbor: {e}"),
            }
        }

        if retable {
            // Their routes move to the new table.
            crate::daemon::resync(app).await;
        }

        let key = export_key(&new, export);
        let gone: Vec<IpAddr> = self
            .fabric
            .keys()
            .filter(|a| !new.fabric.iter().any(|f| f.address == **a))
            .copied()
            .collect();
        for a in gone {
            self.fabric.remove(&a);
            if let Err(e) = app
                .speaker
                .remove_neighbor(
                    a,
                    Some("fabric neighbor removed from the NodeBGPConfig".into()),
                )
                .await
            {
                warn!(neighbor = %a, "cannot remove fabric neighbor: {e}");
            }
            changes.removed += 1;
        }
        for f in &new.fabric {
            let state = (f.clone(), key.clone());
            if self.fabric.get(&f.address) == Some(&state) {
                continue;
            }
            let config = fabric_neighbor(&new, f, export);
            let result = if self.fabric.contains_key(&f.address) {
                changes.updated += 1;
                app.speaker.update_neighbor(config).await
            } else {
                changes.added += 1;
                app.speaker.add_neighbor(config).await
            };
            match result {
                Ok(()) => {
                    self.fabric.insert(f.address, state);
                }
                Err(e) => warn!(neighbor = %f.address, "cannot set up fabric neighbor: {e}"),
            }
        }
        Ok(changes)
    }
}

/// The parts of the configuration that need a restart to change.
fn restart_needed(old: &NodeConfig, new: &NodeConfig) -> Result<(), RestartNeeded> {
    let what = if old.local_as != new.local_as {
        "the local AS"
    } else if old.router_id != new.router_id {
        "the router id"
    } else if old.vrfs != new.vrfs {
        "the VRFs"
    } else if old.listen != new.listen || old.http != new.http {
        "a listen address"
    } else {
        return Ok(());
    };
    Err(RestartNeeded(what.into()))
}

/// What the fabric export policy depends on.
fn export_key(config: &NodeConfig, export: &[Community]) -> Vec<String> {
    let mut key: Vec<String> = guard::all_allowed(config)
        .entries
        .iter()
        .map(|e| format!("{} {:?} {:?}", e.prefix, e.ge, e.le))
        .collect();
    key.sort();
    key.extend(export.iter().map(|c| format!("community {c}")));
    key
}

/// A pod's neighbor: the group's template at the pod's address.
pub fn pod_neighbor(
    config: &NodeConfig,
    group: &PodGroup,
    ip: IpAddr,
    pod: &str,
) -> NeighborConfig {
    let mut n = guard::pod_template(config, group);
    n.address = ip;
    if !pod.is_empty() {
        n.description = format!("pod {pod} ({})", group.name);
    }
    n
}

/// A fabric neighbor with the NodeBGPConfig's export communities added.
pub fn fabric_neighbor(
    config: &NodeConfig,
    f: &FabricNeighbor,
    export: &[Community],
) -> NeighborConfig {
    let mut n = guard::fabric_neighbor(config, f);
    if !export.is_empty()
        && let Some(term) = n.export.as_mut().and_then(|m| m.terms.first_mut())
    {
        term.sets.push(Set::AddCommunities(export.to_vec()));
    }
    n
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use super::*;

    fn config(extra: &str) -> NodeConfig {
        NodeConfig::parse(
            &format!(
                "localAs: 65010\nrouterId: 192.0.2.10\nfabric: [{{address: 192.0.2.1}}]\n{extra}"
            ),
            Path::new("t.yaml"),
        )
        .unwrap()
    }

    #[test]
    fn what_needs_a_restart() {
        let base = config("");
        assert_eq!(restart_needed(&base, &config("")), Ok(()));
        let mut other = base.clone();
        other.forbidden_prefixes.push("10.0.0.0/8".parse().unwrap());
        other.fabric.clear();
        assert_eq!(restart_needed(&base, &other), Ok(()), "run-time changes");
        other.local_as = 65020;
        assert_eq!(restart_needed(&base, &other).unwrap_err().0, "the local AS");
        let vrfs = config("vrfs: [{name: v, table: 100}]");
        assert_eq!(restart_needed(&base, &vrfs).unwrap_err().0, "the VRFs");
    }

    #[test]
    fn export_communities_reach_the_fabric_policy() {
        let c = config(
            "podGroups: [{name: g, peers: [10.0.0.1], allowedPrefixes: [{prefix: 198.51.100.0/24}]}]",
        );
        let community: Community = "65010:1".parse().unwrap();
        let n = fabric_neighbor(&c, &c.fabric[0], &[community]);
        let sets = &n.export.unwrap().terms[0].sets;
        assert!(
            sets.contains(&Set::AddCommunities(vec![community])),
            "{sets:?}"
        );
        assert_ne!(export_key(&c, &[]), export_key(&c, &[community]));
        let p = pod_neighbor(&c, &c.pod_groups[0], "10.0.0.1".parse().unwrap(), "web/a");
        assert_eq!(p.address, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert!(p.passive);
        assert_eq!(p.description, "pod web/a (g)");
    }

    #[test]
    fn a_pod_neighbor_has_its_groups_password_and_gtsm() {
        let c =
            config("podGroups: [{name: g, peers: [10.0.0.1], password: k, ttlSecurityHops: 1}]");
        let p = pod_neighbor(&c, &c.pod_groups[0], "10.0.0.1".parse().unwrap(), "web/a");
        assert_eq!(p.password.as_ref().map(|p| p.expose()), Some("k"));
        assert_eq!(p.ttl_security, Some(1));
    }
}
