//! Best-path selection (RFC 4271 section 9.1.2) and the multipath set.
//!
//! Paths to one prefix are ranked by one key per path, after a first pass that
//! applies the MULTI_EXIT_DISC rule of section 9.1.2.2 (c): among paths tied on
//! preference, AS path length and origin, and learned from the same neighboring
//! AS, those with a higher MED are out of the running (unless MEDs are compared
//! across all ASes). Ranking a key instead of comparing pairs keeps the result
//! independent of the order paths arrived in. Before all of it, a long-lived
//! stale path (community LLGR_STALE, RFC 9494 section 4.3) loses to any other.

use std::cmp::Reverse;
use std::net::{IpAddr, Ipv4Addr};

use super::Route;
use crate::wire::{Community, Origin};

/// Where a path came from, as best-path selection needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerMeta {
    /// The neighbor's address (the last tie-breaker).
    pub address: IpAddr,
    /// The neighbor's BGP identifier.
    pub router_id: Ipv4Addr,
    /// Local, internal or external.
    pub kind: SourceKind,
}

/// The kind of source of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceKind {
    /// Originated by this speaker.
    Local,
    /// Learned from an external peer.
    External,
    /// Learned from an internal peer.
    Internal,
}

/// How paths are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BestPathConfig {
    /// Compare MED between paths from different neighboring ASes too.
    pub always_compare_med: bool,
    /// Allow multipath across different neighboring ASes (as-path multipath-relax).
    pub multipath_relax: bool,
    /// The largest multipath set (1 to 64); 1 disables multipath.
    pub max_paths: usize,
    /// LOCAL_PREF assumed when a path has none.
    pub default_local_pref: u32,
}

impl Default for BestPathConfig {
    fn default() -> Self {
        Self {
            always_compare_med: false,
            multipath_relax: true,
            max_paths: 16,
            default_local_pref: 100,
        }
    }
}

/// The part of the ranking that decides multipath equality: paths equal here
/// (and from the same neighbor AS, unless relaxed) share the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Preference {
    /// Long-lived stale paths lose to every other (RFC 9494 section 4.3).
    llgr_stale: bool,
    local_pref: Reverse<u32>,
    not_local: bool,
    as_path_len: usize,
    origin: Origin,
    med_beaten: bool,
    med: u32,
    internal: bool,
}

/// The full key: preference, then the deterministic tie-breakers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    pref: Preference,
    router_id: u32,
    cluster_len: usize,
    address: IpAddr,
    path_id: u32,
}

fn neighbor_as(r: &Route) -> u32 {
    r.attrs
        .attributes
        .as_path
        .as_ref()
        .and_then(|p| p.first_as())
        .unwrap_or(0)
}

/// Orders `paths` best first and returns how many of the first form the
/// multipath set (at least 1 when there is any path).
pub(crate) fn rank(paths: &mut [Route], peers: &[PeerMeta], config: &BestPathConfig) -> usize {
    if paths.len() <= 1 {
        return paths.len();
    }
    let meta = |r: &Route| peers.get(r.peer as usize);
    let tier = |r: &Route| {
        let a = &r.attrs.attributes;
        (
            a.communities.contains(&Community::LLGR_STALE),
            Reverse(a.local_pref.unwrap_or(config.default_local_pref)),
            meta(r).is_none_or(|m| m.kind != SourceKind::Local),
            a.as_path.as_ref().map_or(0, |p| p.len()),
            a.origin.unwrap_or(Origin::Incomplete),
        )
    };
    let med = |r: &Route| r.attrs.attributes.med.unwrap_or(0);
    let mut keyed: Vec<(Key, u32, Route)> = paths
        .iter()
        .map(|r| {
            let t = tier(r);
            let n_as = neighbor_as(r);
            let med_beaten = paths.iter().any(|o| {
                tier(o) == t
                    && med(o) < med(r)
                    && (config.always_compare_med || neighbor_as(o) == n_as)
            });
            let m = meta(r);
            let a = &r.attrs.attributes;
            let key = Key {
                pref: Preference {
                    llgr_stale: t.0,
                    local_pref: t.1,
                    not_local: t.2,
                    as_path_len: t.3,
                    origin: t.4,
                    med_beaten,
                    med: if config.always_compare_med { med(r) } else { 0 },
                    internal: m.is_some_and(|m| m.kind == SourceKind::Internal),
                },
                // RFC 4456 section 9: the ORIGINATOR_ID stands in for the router
                // id of reflected routes.
                router_id: u32::from(
                    a.originator_id
                        .or(m.map(|m| m.router_id))
                        .unwrap_or(Ipv4Addr::UNSPECIFIED),
                ),
                cluster_len: a.cluster_list.len(),
                address: m.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |m| m.address),
                path_id: r.path_id,
            };
            (key, n_as, r.clone())
        })
        .collect();
    keyed.sort_by_key(|k| k.0);
    let (best_pref, best_as) = (keyed[0].0.pref, keyed[0].1);
    let max_paths = config.max_paths.clamp(1, 64);
    // The multipath members move to the front, keeping rank order on both sides.
    let (mut members, mut rest): (Vec<_>, Vec<_>) = (Vec::new(), Vec::new());
    for k in keyed {
        let equal = k.0.pref == best_pref && (config.multipath_relax || k.1 == best_as);
        if equal && members.len() < max_paths {
            members.push(k.2);
        } else {
            rest.push(k.2);
        }
    }
    let n = members.len();
    for (slot, r) in paths.iter_mut().zip(members.into_iter().chain(rest)) {
        *slot = r;
    }
    n
}
