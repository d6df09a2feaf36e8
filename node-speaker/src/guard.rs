//! From the node configuration to bgp-core policy: the import guard and route
//! maps of each pod group, the dynamic ranges that admit pods, and the fabric
//! neighbors' policies.
//!
//! Pod routes are tagged on import with a large community of our own
//! ([`pod_marker`]); the fabric export policy passes only routes carrying it
//! (and within some group's allowed prefixes) and strips it on the way out.
//! The fabric import policy strips it too, so no route from one fabric
//! neighbor can pass as a pod route to another.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bgp_core::policy::{Action, ImportGuard, Match, PrefixEntry, PrefixSet, RouteMap, Set, Term};
use bgp_core::speaker::{DynamicRange, NeighborConfig};
use bgp_core::wire::LargeCommunity;
use ipnet::IpNet;

use crate::config::{FabricNeighbor, NodeConfig, PodGroup};

/// The second field of the [`pod_marker`] large community ("podp").
pub const POD_MARKER: u32 = 0x706f_6470;

/// LOCAL_PREF given to pod routes so they win over the same prefix heard
/// from the fabric (never sent to external neighbors).
pub const POD_LOCAL_PREF: u32 = 200;

/// The most dynamic neighbors one range admits at once.
pub const RANGE_LIMIT: usize = 65_536;

/// The large community `LOCAL_AS:0x706f6470:0` that marks routes learned from
/// pods inside this speaker; stripped before anything leaves it.
pub fn pod_marker(local_as: u32) -> LargeCommunity {
    LargeCommunity::new(local_as, POD_MARKER, 0)
}

/// A group's allowed prefixes as a prefix set.
pub fn allowed_set(group: &PodGroup) -> PrefixSet {
    PrefixSet::new(
        group
            .allowed_prefixes
            .iter()
            .map(|a| PrefixEntry {
                prefix: a.prefix,
                ge: a.ge,
                le: a.le,
            })
            .collect(),
    )
}

/// What pods of `group` may announce: never the forbidden prefixes, only the
/// group's allowed ones, next hop and AS path their own, at most
/// `maxPrefixes`.
pub fn import_guard(config: &NodeConfig, group: &PodGroup) -> ImportGuard {
    ImportGuard {
        forbidden: config.forbidden_prefixes.clone(),
        allowed: allowed_set(group),
        next_hop_is_peer: true,
        as_path_is_peer: true,
        max_prefixes: group.max_prefixes,
    }
}

/// The import route map of a pod group: accept, adding the group's
/// communities (they go out to the fabric), the pod marker and a LOCAL_PREF
/// that prefers pods over the fabric.
pub fn pod_import(config: &NodeConfig, group: &PodGroup) -> RouteMap {
    let mut large = group.large_communities.clone();
    large.push(pod_marker(config.local_as));
    let mut sets = vec![
        Set::AddLargeCommunities(large),
        Set::LocalPref(POD_LOCAL_PREF),
    ];
    if !group.communities.is_empty() {
        sets.insert(0, Set::AddCommunities(group.communities.clone()));
    }
    RouteMap {
        name: format!("pods-{}-in", group.name),
        terms: vec![Term {
            name: "tag".into(),
            matches: Vec::new(),
            sets,
            action: Action::Accept,
        }],
        default_accept: false,
    }
}

/// The export route map towards pods: nothing (also for pods in our own AS).
pub fn pod_export(group: &PodGroup) -> RouteMap {
    RouteMap {
        name: format!("pods-{}-out", group.name),
        terms: Vec::new(),
        default_accept: false,
    }
}

/// The neighbor template of a group's dynamic ranges: passive, the group's
/// AS rule, hold time, guard, policies, TCP-MD5 key and GTSM.
pub fn pod_template(config: &NodeConfig, group: &PodGroup) -> NeighborConfig {
    let unspecified = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
    let mut n = NeighborConfig::new(unspecified, group.peer_as.clone());
    n.description = format!("pod group {}", group.name);
    n.passive = true;
    n.hold_time = hold_secs(group.hold_time);
    n.guard = Some(Arc::new(import_guard(config, group)));
    n.import = Some(pod_import(config, group));
    n.export = Some(pod_export(group));
    // In a range's template bgp-core makes the password one prefix key for
    // the whole range.
    n.password = group.password.clone();
    n.ttl_security = group.ttl_security_hops;
    n
}

/// One dynamic range per peer range of every group.
pub fn dynamic_ranges(config: &NodeConfig) -> Vec<DynamicRange> {
    config
        .pod_groups
        .iter()
        .flat_map(|g| {
            let template = pod_template(config, g);
            g.peers.iter().map(move |&prefix| DynamicRange {
                prefix,
                template: template.clone(),
                limit: range_size(prefix),
            })
        })
        .collect()
}

/// How many addresses a range holds, capped at [`RANGE_LIMIT`].
fn range_size(prefix: IpNet) -> usize {
    let host_bits = u32::from(prefix.max_prefix_len() - prefix.prefix_len());
    if host_bits >= 16 {
        RANGE_LIMIT
    } else {
        1usize << host_bits
    }
}

fn hold_secs(d: Duration) -> u16 {
    u16::try_from(d.as_secs()).unwrap_or(u16::MAX)
}

/// The union of every group's allowed prefixes.
pub fn all_allowed(config: &NodeConfig) -> PrefixSet {
    PrefixSet::new(
        config
            .pod_groups
            .iter()
            .flat_map(|g| allowed_set(g).entries)
            .collect(),
    )
}

/// Fabric import: accept everything (it is not installed), but strip the pod
/// marker so nothing heard from the fabric passes as a pod route.
pub fn fabric_import(config: &NodeConfig) -> RouteMap {
    RouteMap {
        name: "fabric-in".into(),
        terms: vec![Term {
            name: "unmark".into(),
            matches: Vec::new(),
            sets: vec![Set::RemoveLargeCommunities(vec![pod_marker(
                config.local_as,
            )])],
            action: Action::Accept,
        }],
        default_accept: false,
    }
}

/// Fabric export: only pod routes (marked, within some group's allowed
/// prefixes), the marker stripped; everything else (routes from other fabric
/// neighbors above all) is not passed on.
pub fn fabric_export(config: &NodeConfig) -> RouteMap {
    let marker = pod_marker(config.local_as);
    RouteMap {
        name: "fabric-out".into(),
        terms: vec![Term {
            name: "pods".into(),
            matches: vec![
                Match::LargeCommunity(marker),
                Match::Prefix(all_allowed(config)),
            ],
            sets: vec![Set::RemoveLargeCommunities(vec![marker])],
            action: Action::Accept,
        }],
        default_accept: false,
    }
}

/// A fabric neighbor: active, next hop self (also over iBGP), the fabric
/// policies, its TCP-MD5 key, GTSM and role.
pub fn fabric_neighbor(config: &NodeConfig, f: &FabricNeighbor) -> NeighborConfig {
    let mut n = NeighborConfig::new(f.address, f.remote_as.clone());
    n.port = f.port;
    n.description = if f.description.is_empty() {
        "fabric".into()
    } else {
        f.description.clone()
    };
    n.hold_time = hold_secs(f.hold_time);
    n.connect_retry = Duration::from_secs(2);
    n.next_hop_self = true;
    n.import = Some(fabric_import(config));
    n.export = Some(fabric_export(config));
    n.password = f.password.clone();
    n.ttl_security = f.ttl_security_hops;
    n.role = f.role;
    n.role_strict = f.strict_role;
    n
}

/// Whether a route of ours found in the kernel (`prefix` in `table`) is one
/// the current configuration could install: some group uses the table and
/// allows the prefix, and it is not forbidden.
pub fn kernel_route_valid(config: &NodeConfig, table: u32, prefix: &IpNet) -> bool {
    // The guard's own reading of "forbidden" (0.0.0.0/0 forbids the default
    // route only).
    let forbidden = ImportGuard {
        forbidden: config.forbidden_prefixes.clone(),
        ..ImportGuard::default()
    }
    .forbidden_by(prefix)
    .is_some();
    !forbidden
        && config
            .pod_groups
            .iter()
            .any(|g| g.table == table && allowed_set(g).matches(prefix))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;
    use std::sync::Arc;

    use bgp_core::fsm::RemoteAs;
    use bgp_core::rib::RouteAttrs;
    use bgp_core::wire::{AsPath, Community, NextHop, PathAttributes};

    use super::*;

    fn config() -> NodeConfig {
        NodeConfig::parse(
            r#"
localAs: 65010
routerId: 192.0.2.10
forbiddenPrefixes: [10.244.0.0/16, 198.51.100.128/25, 0.0.0.0/0]
vrfs: [{name: vips, table: 100, interfaces: [eth1]}]
fabric: [{address: 192.0.2.1, remoteAs: 65000}]
podGroups:
  - name: lb
    peers: [10.245.1.0/24, 10.245.2.9]
    peerAs: 64512-65000
    allowedPrefixes: [{prefix: 198.51.100.0/24, ge: 32, le: 32}]
    maxPrefixes: 16
    vrf: vips
    communities: ["65010:100"]
"#,
            Path::new("test.yaml"),
        )
        .unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn attrs(communities: Vec<Community>, large: Vec<LargeCommunity>) -> RouteAttrs {
        RouteAttrs {
            attributes: PathAttributes {
                as_path: Some(AsPath::default()),
                communities,
                large_communities: large,
                ..Default::default()
            },
            next_hop: Some(NextHop::V4("10.245.1.5".parse().unwrap())),
        }
    }

    #[test]
    fn guard_carries_forbidden_allowed_and_limits() {
        let c = config();
        let g = import_guard(&c, &c.pod_groups[0]);
        assert_eq!(g.forbidden, c.forbidden_prefixes);
        assert!(g.next_hop_is_peer && g.as_path_is_peer);
        assert_eq!(g.max_prefixes, Some(16));
        assert!(g.allowed.matches(&net("198.51.100.7/32")));
        assert!(!g.allowed.matches(&net("198.51.100.0/24")));
    }

    #[test]
    fn ranges_follow_the_peers() {
        let c = config();
        let r = dynamic_ranges(&c);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].prefix, net("10.245.1.0/24"));
        assert_eq!(r[0].limit, 256);
        assert_eq!(r[1].prefix, net("10.245.2.9/32"));
        assert_eq!(r[1].limit, 1);
        let t = &r[0].template;
        assert!(t.passive);
        assert_eq!(t.remote_as, RemoteAs::Range(64512, 65000));
        assert_eq!(t.hold_time, 9);
        assert!(t.guard.is_some());
        assert_eq!(range_size(net("10.0.0.0/8")), RANGE_LIMIT);
    }

    #[test]
    fn pod_import_adds_communities_and_marker() {
        let c = config();
        let m = pod_import(&c, &c.pod_groups[0]);
        let out = m
            .apply(&net("198.51.100.7/32"), &attrs(vec![], vec![]))
            .unwrap()
            .unwrap();
        assert_eq!(out.attributes.communities, vec![Community::new(65010, 100)]);
        assert_eq!(out.attributes.large_communities, vec![pod_marker(65010)]);
        assert_eq!(out.attributes.local_pref, Some(POD_LOCAL_PREF));
        // Nothing goes back to pods.
        assert!(
            pod_export(&c.pod_groups[0])
                .apply(&net("0.0.0.0/0"), &out)
                .is_err()
        );
    }

    #[test]
    fn fabric_export_passes_only_marked_allowed_routes_and_unmarks_them() {
        let c = config();
        let export = fabric_export(&c);
        let pod = attrs(vec![Community::new(65010, 100)], vec![pod_marker(65010)]);
        let out = export
            .apply(&net("198.51.100.7/32"), &pod)
            .unwrap()
            .unwrap();
        assert!(out.attributes.large_communities.is_empty());
        assert_eq!(out.attributes.communities, vec![Community::new(65010, 100)]);
        // A fabric route, even one of an allowed prefix, is not passed on...
        let fabric = attrs(vec![], vec![]);
        assert!(export.apply(&net("198.51.100.7/32"), &fabric).is_err());
        // ... nor one that came with a forged marker: import strips it.
        let forged = attrs(vec![], vec![pod_marker(65010)]);
        let imported = fabric_import(&c)
            .apply(&net("198.51.100.7/32"), &forged)
            .unwrap()
            .unwrap();
        assert!(export.apply(&net("198.51.100.7/32"), &imported).is_err());
        // Marked but outside every allowed set: not passed.
        assert!(export.apply(&net("203.0.113.0/24"), &pod).is_err());
    }

    #[test]
    fn fabric_neighbor_settings() {
        let c = config();
        let n = fabric_neighbor(&c, &c.fabric[0]);
        assert_eq!(n.remote_as, RemoteAs::Number(65000));
        assert!(!n.passive && n.next_hop_self);
        assert_eq!(n.hold_time, 90);
        assert_eq!(n.description, "fabric");
        let _ = Arc::new(n);
    }

    #[test]
    fn security_settings_reach_the_neighbors_and_range_templates() {
        let c = config();
        let n = fabric_neighbor(&c, &c.fabric[0]);
        assert_eq!((n.password, n.ttl_security, n.role), (None, None, None));
        assert!(dynamic_ranges(&c)[0].template.password.is_none());

        let c = NodeConfig::parse(
            r#"
localAs: 65010
routerId: 192.0.2.10
fabric:
  - {address: 192.0.2.1, password: tor-key, ttlSecurityHops: 1, role: customer, strictRole: true}
podGroups:
  - {name: lb, peers: [10.245.1.0/24, 10.245.2.9], password: pod-key, ttlSecurityHops: 2}
"#,
            Path::new("test.yaml"),
        )
        .unwrap();
        let n = fabric_neighbor(&c, &c.fabric[0]);
        assert_eq!(
            n.password.as_ref().map(bgp_core::speaker::Password::expose),
            Some("tor-key")
        );
        assert_eq!(n.ttl_security, Some(1));
        assert_eq!(n.role, Some(bgp_core::wire::Role::Customer));
        assert!(n.role_strict);
        let ranges = dynamic_ranges(&c);
        assert_eq!(ranges.len(), 2);
        for r in &ranges {
            assert_eq!(
                r.template
                    .password
                    .as_ref()
                    .map(bgp_core::speaker::Password::expose),
                Some("pod-key")
            );
            assert_eq!(r.template.ttl_security, Some(2));
            assert_eq!(r.template.role, None);
        }
    }

    #[test]
    fn kernel_routes_valid_only_where_a_group_could_install_them() {
        let c = config();
        assert!(kernel_route_valid(&c, 100, &net("198.51.100.7/32")));
        assert!(
            !kernel_route_valid(&c, 254, &net("198.51.100.7/32")),
            "wrong table"
        );
        assert!(
            !kernel_route_valid(&c, 100, &net("198.51.100.0/24")),
            "not allowed"
        );
        assert!(
            !kernel_route_valid(&c, 100, &net("198.51.100.200/32")),
            "forbidden"
        );
        assert!(
            !kernel_route_valid(&c, 100, &net("203.0.113.1/32")),
            "outside"
        );
    }
}
