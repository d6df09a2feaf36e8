//! Stale paths (RFC 4724 section 4.2, RFC 9494 section 4.2): the paths of a
//! neighbor whose session went down, left in the RIB as they were while it
//! restarts.
//!
//! Marking changes nothing in the RIB, so nothing moves for a FIB installer:
//! a path the neighbor sends again with the same attributes replaces itself
//! without a [`Change`], and only the paths it does not send again are
//! withdrawn at its End-of-RIB. [`StalePaths`] is the set of those still
//! waiting; [`Rib::mark_long_lived`] turns them into long-lived stale paths.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use rustc_hash::FxHasher;

use super::{Change, PeerId, Rib, RibPrefix, RouteAttrs};
use crate::wire::{Community, Nlri};

/// The paths of one neighbor in one family that it has not sent again since
/// its session went down, by prefix and path identifier.
#[derive(Debug, Clone)]
pub struct StalePaths<P> {
    paths: HashSet<(P, u32), BuildHasherDefault<FxHasher>>,
}

impl<P> Default for StalePaths<P> {
    fn default() -> Self {
        Self {
            paths: HashSet::default(),
        }
    }
}

fn nlri<P>(prefix: P, path_id: u32) -> Nlri<P> {
    Nlri {
        path_id: (path_id != 0).then_some(path_id),
        prefix,
    }
}

impl<P: RibPrefix> StalePaths<P> {
    /// Marks every path `peer` has in the RIB's table of this family.
    pub fn mark(rib: &Rib, peer: PeerId) -> Self {
        let paths = P::table(rib)
            .iter_all()
            .flat_map(|(p, paths)| {
                paths
                    .iter()
                    .filter(|r| r.peer == peer)
                    .map(move |r| (*p, r.path_id))
            })
            .collect();
        Self { paths }
    }

    /// The neighbor sent this path again (or withdrew it): it is no longer
    /// stale. Returns whether it was.
    pub fn refresh(&mut self, n: &Nlri<P>) -> bool {
        self.paths.remove(&(n.prefix, n.path_id.unwrap_or(0)))
    }

    /// Whether a path is stale.
    pub fn contains(&self, prefix: &P, path_id: u32) -> bool {
        self.paths.contains(&(*prefix, path_id))
    }

    /// How many paths are stale.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Takes every path still stale, for withdrawal (End-of-RIB, or the time
    /// to keep them is over).
    pub fn take(&mut self) -> Vec<Nlri<P>> {
        self.paths.drain().map(|(p, id)| nlri(p, id)).collect()
    }
}

impl Rib {
    /// Turns `peer`'s stale paths into long-lived stale paths (RFC 9494
    /// section 4.2): each gets the LLGR_STALE community, which makes it the
    /// least preferred path to its prefix, except those carrying NO_LLGR:
    /// they leave the set and are returned, for the caller to withdraw.
    pub fn mark_long_lived<P: RibPrefix>(
        &mut self,
        peer: PeerId,
        stale: &mut StalePaths<P>,
        changes: &mut Vec<Change<P>>,
    ) -> Vec<Nlri<P>> {
        let mut dropped = Vec::new();
        // The paths by their attribute set: one RIB call per set.
        let mut groups: Vec<(Arc<RouteAttrs>, Vec<Nlri<P>>)> = Vec::new();
        let table = P::table(self);
        for &(prefix, path_id) in &stale.paths {
            let Some(route) = table
                .paths(&prefix)
                .iter()
                .find(|r| r.peer == peer && r.path_id == path_id)
            else {
                continue;
            };
            let communities = &route.attrs.attributes.communities;
            if communities.contains(&Community::NO_LLGR) {
                dropped.push(nlri(prefix, path_id));
            } else if !communities.contains(&Community::LLGR_STALE) {
                match groups
                    .iter_mut()
                    .find(|(a, _)| Arc::ptr_eq(a, &route.attrs))
                {
                    Some((_, v)) => v.push(nlri(prefix, path_id)),
                    None => groups.push((Arc::clone(&route.attrs), vec![nlri(prefix, path_id)])),
                }
            }
        }
        for (old, prefixes) in groups {
            let mut attrs = (*old).clone();
            attrs.attributes.communities.push(Community::LLGR_STALE);
            let shared = self.intern(attrs);
            self.announce(peer, &shared, &prefixes, changes);
        }
        for n in &dropped {
            stale.refresh(n);
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::{IpAddr, Ipv4Addr};

    use ipnet::Ipv4Net;

    use super::*;
    use crate::rib::{BestPathConfig, LOCAL, PeerMeta, SourceKind};
    use crate::wire::{AsPath, NextHop, Origin, PathAttributes};

    fn meta(host: u8) -> PeerMeta {
        PeerMeta {
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, host)),
            router_id: Ipv4Addr::new(10, 0, 0, host),
            kind: SourceKind::External,
        }
    }

    fn rib() -> (Rib, PeerId, PeerId) {
        let mut rib = Rib::new(BestPathConfig::default(), meta(0));
        let a = rib.add_peer(meta(1));
        let b = rib.add_peer(meta(2));
        (rib, a, b)
    }

    fn attrs(rib: &mut Rib, path_len: usize, communities: &[Community]) -> Arc<RouteAttrs> {
        let mut path = AsPath::default();
        path.prepend(65000, path_len);
        rib.intern(RouteAttrs {
            attributes: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(path),
                communities: communities.to_vec(),
                ..Default::default()
            },
            next_hop: Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))),
        })
    }

    fn p(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn n(s: &str) -> Nlri<Ipv4Net> {
        Nlri::new(p(s))
    }

    #[test]
    fn marking_takes_only_the_peers_paths_and_changes_nothing() {
        let (mut rib, a, b) = rib();
        let x = attrs(&mut rib, 1, &[]);
        let mut changes = Vec::new();
        rib.announce(a, &x, &[n("10.0.0.0/24"), n("10.0.1.0/24")], &mut changes);
        rib.announce(b, &x, &[n("10.0.0.0/24"), n("10.0.2.0/24")], &mut changes);
        rib.announce(LOCAL, &x, &[n("10.0.3.0/24")], &mut changes);
        let stale = StalePaths::<Ipv4Net>::mark(&rib, a);
        assert_eq!(stale.len(), 2);
        assert!(stale.contains(&p("10.0.0.0/24"), 0));
        assert!(stale.contains(&p("10.0.1.0/24"), 0));
        assert!(!stale.contains(&p("10.0.2.0/24"), 0));
        assert_eq!(rib.table::<Ipv4Net>().len(), 4, "marking removes nothing");
    }

    #[test]
    fn the_same_path_again_is_no_change_and_the_rest_go_at_the_sweep() {
        let (mut rib, a, _) = rib();
        let x = attrs(&mut rib, 1, &[]);
        let mut changes = Vec::new();
        let all = [n("10.0.0.0/24"), n("10.0.1.0/24"), n("10.0.2.0/24")];
        rib.announce(a, &x, &all, &mut changes);
        let mut stale = StalePaths::<Ipv4Net>::mark(&rib, a);

        // The peer is back: 10.0.0.0/24 the same, 10.0.1.0/24 with other
        // attributes, 10.0.2.0/24 not at all.
        changes.clear();
        let same = attrs(&mut rib, 1, &[]);
        assert!(stale.refresh(&all[0]));
        rib.announce(a, &same, &all[..1], &mut changes);
        assert!(
            changes.is_empty(),
            "an identical path moves nothing: {changes:?}"
        );
        let other = attrs(&mut rib, 2, &[]);
        assert!(stale.refresh(&all[1]));
        rib.announce(a, &other, &all[1..2], &mut changes);
        assert_eq!(changes.len(), 1);
        assert!(Arc::ptr_eq(&changes[0].paths[0].attrs, &other));
        assert!(!stale.refresh(&all[1]), "refreshed once");

        // End-of-RIB: only the one not sent again goes.
        changes.clear();
        let gone = stale.take();
        assert_eq!(gone, vec![all[2]]);
        assert_eq!(rib.withdraw(a, &gone, &mut changes), 1);
        assert_eq!(changes.len(), 1);
        assert!(changes[0].paths.is_empty());
        assert!(stale.is_empty());
        assert_eq!(rib.table::<Ipv4Net>().len(), 2);
    }

    #[test]
    fn add_path_identifiers_are_kept_apart() {
        let (mut rib, a, _) = rib();
        let x = attrs(&mut rib, 1, &[]);
        let mut changes = Vec::new();
        let paths = [
            Nlri::with_path_id(p("10.0.0.0/24"), 1),
            Nlri::with_path_id(p("10.0.0.0/24"), 2),
        ];
        rib.announce(a, &x, &paths, &mut changes);
        let mut stale = StalePaths::<Ipv4Net>::mark(&rib, a);
        assert_eq!(stale.len(), 2);
        stale.refresh(&paths[0]);
        assert_eq!(stale.take(), vec![paths[1]]);
    }

    #[test]
    fn long_lived_stale_paths_get_the_community_lose_to_any_other_and_no_llgr_goes() {
        let (mut rib, a, b) = rib();
        // A's paths are better (shorter AS path) than B's.
        let short = attrs(&mut rib, 1, &[]);
        let no_llgr = attrs(&mut rib, 1, &[Community::NO_LLGR]);
        let long = attrs(&mut rib, 3, &[]);
        let mut changes = Vec::new();
        rib.announce(
            a,
            &short,
            &[n("10.0.0.0/24"), n("10.0.1.0/24")],
            &mut changes,
        );
        rib.announce(a, &no_llgr, &[n("10.0.2.0/24")], &mut changes);
        rib.announce(b, &long, &[n("10.0.0.0/24")], &mut changes);
        assert_eq!(rib.table::<Ipv4Net>().paths(&p("10.0.0.0/24"))[0].peer, a);

        let mut stale = StalePaths::<Ipv4Net>::mark(&rib, a);
        changes.clear();
        let dropped = rib.mark_long_lived(a, &mut stale, &mut changes);
        assert_eq!(
            dropped,
            vec![n("10.0.2.0/24")],
            "NO_LLGR paths are not kept"
        );
        assert_eq!(stale.len(), 2);
        let t = rib.table::<Ipv4Net>();
        // B's longer path now wins: a long-lived stale path is least preferred.
        let both = t.paths(&p("10.0.0.0/24"));
        assert_eq!(both[0].peer, b);
        assert_eq!(both[1].peer, a);
        assert!(
            both[1]
                .attrs
                .attributes
                .communities
                .contains(&Community::LLGR_STALE)
        );
        // The only path to 10.0.1.0/24 stays, marked.
        let only = t.paths(&p("10.0.1.0/24"));
        assert!(
            only[0]
                .attrs
                .attributes
                .communities
                .contains(&Community::LLGR_STALE)
        );
        assert_eq!(changes.len(), 2, "{changes:?}");

        // Marking again does nothing more.
        changes.clear();
        assert!(rib.mark_long_lived(a, &mut stale, &mut changes).is_empty());
        assert!(changes.is_empty());
    }
}
