//! Loc-RIB: best path per RFC 4271 section 9.1.2 and its usual tie-breakers,
//! multipath sets for the FIB, implicit withdraws and interned attributes.

// A failed expectation in a test is a panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use bgp_core::rib::{BestPathConfig, Change, LOCAL, PeerId, PeerMeta, Rib, RouteAttrs, SourceKind};
use bgp_core::wire::{AsPath, NextHop, Nlri, Origin, PathAttributes};
use ipnet::{Ipv4Net, Ipv6Net};

fn meta(last: u8, kind: SourceKind) -> PeerMeta {
    PeerMeta {
        address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)),
        router_id: Ipv4Addr::new(192, 0, 2, last),
        kind,
    }
}

fn rib(config: BestPathConfig) -> Rib {
    Rib::new(config, meta(1, SourceKind::Local))
}

fn attrs(path: &[u32], f: impl FnOnce(&mut PathAttributes)) -> RouteAttrs {
    let mut a = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence(path.iter().copied())),
        ..Default::default()
    };
    f(&mut a);
    RouteAttrs {
        attributes: a,
        next_hop: Some(NextHop::V4(Ipv4Addr::new(10, 0, 0, 9))),
    }
}

const P: &str = "203.0.113.0/24";

fn prefix() -> Vec<Nlri<Ipv4Net>> {
    vec![Nlri::new(P.parse().unwrap())]
}

fn announce(rib: &mut Rib, peer: PeerId, a: RouteAttrs) -> Vec<Change<Ipv4Net>> {
    let a = rib.intern(a);
    let mut changes = Vec::new();
    rib.announce(peer, &a, &prefix(), &mut changes);
    changes
}

fn best_peer(rib: &Rib) -> PeerId {
    rib.table::<Ipv4Net>().paths(&P.parse().unwrap())[0].peer
}

fn multipath_peers(rib: &Rib) -> Vec<PeerId> {
    let mut v: Vec<PeerId> = rib
        .table::<Ipv4Net>()
        .multipath(&P.parse().unwrap())
        .iter()
        .map(|r| r.peer)
        .collect();
    v.sort();
    v
}

/// Two paths that differ in one respect: the one `winner` names must be best,
/// whichever arrives first.
fn prefer(winner: u8, a: (SourceKind, RouteAttrs), b: (SourceKind, RouteAttrs)) {
    for order in [false, true] {
        let mut r = rib(BestPathConfig {
            max_paths: 1,
            ..Default::default()
        });
        let pa = r.add_peer(meta(2, a.0));
        let pb = r.add_peer(meta(3, b.0));
        if order {
            announce(&mut r, pb, b.1.clone());
            announce(&mut r, pa, a.1.clone());
        } else {
            announce(&mut r, pa, a.1.clone());
            announce(&mut r, pb, b.1.clone());
        }
        let want = if winner == 0 { pa } else { pb };
        assert_eq!(best_peer(&r), want, "order swapped: {order}");
    }
}

use SourceKind::{External as EBGP, Internal as IBGP};

#[test]
fn higher_local_pref_wins() {
    prefer(
        1,
        (IBGP, attrs(&[], |a| a.local_pref = Some(100))),
        (IBGP, attrs(&[], |a| a.local_pref = Some(200))),
    );
    // Missing LOCAL_PREF counts as the default (100), so 150 beats it.
    prefer(
        1,
        (EBGP, attrs(&[65001], |_| {})),
        (EBGP, attrs(&[65002], |a| a.local_pref = Some(150))),
    );
}

#[test]
fn shorter_as_path_wins() {
    prefer(
        0,
        (EBGP, attrs(&[65001], |_| {})),
        (EBGP, attrs(&[65002, 65003], |_| {})),
    );
}

#[test]
fn lower_origin_wins() {
    prefer(
        0,
        (EBGP, attrs(&[65001], |a| a.origin = Some(Origin::Igp))),
        (
            EBGP,
            attrs(&[65002], |a| a.origin = Some(Origin::Incomplete)),
        ),
    );
    prefer(
        1,
        (
            EBGP,
            attrs(&[65001], |a| a.origin = Some(Origin::Incomplete)),
        ),
        (EBGP, attrs(&[65002], |a| a.origin = Some(Origin::Egp))),
    );
}

#[test]
fn lower_med_wins_only_within_one_neighbor_as() {
    // Same neighbor AS: MED decides.
    prefer(
        1,
        (EBGP, attrs(&[65001], |a| a.med = Some(50))),
        (EBGP, attrs(&[65001], |a| a.med = Some(10))),
    );
    // Different neighbor AS: MED is ignored and the lower router id (peer 2) wins.
    prefer(
        0,
        (EBGP, attrs(&[65001], |a| a.med = Some(50))),
        (EBGP, attrs(&[65002], |a| a.med = Some(10))),
    );
}

#[test]
fn always_compare_med() {
    let mut r = rib(BestPathConfig {
        always_compare_med: true,
        max_paths: 1,
        ..Default::default()
    });
    let a = r.add_peer(meta(2, EBGP));
    let b = r.add_peer(meta(3, EBGP));
    announce(&mut r, a, attrs(&[65001], |a| a.med = Some(50)));
    announce(&mut r, b, attrs(&[65002], |a| a.med = Some(10)));
    assert_eq!(best_peer(&r), b);
}

#[test]
fn missing_med_is_zero() {
    prefer(
        0,
        (EBGP, attrs(&[65001], |_| {})),
        (EBGP, attrs(&[65001], |a| a.med = Some(1))),
    );
}

#[test]
fn med_elimination_is_independent_of_arrival_order() {
    // The classic non-transitive trio: A (AS1, MED 10) beats B (AS1, MED 20) on
    // MED; C (AS2) is compared to them by router id only. The outcome must not
    // depend on the order they arrive in.
    let paths = [(2u8, 65001u32, 10u32), (3, 65001, 20), (4, 65002, 0)];
    let mut winners = Vec::new();
    for perm in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [1, 0, 2]] {
        let mut r = rib(BestPathConfig {
            max_paths: 1,
            ..Default::default()
        });
        let ids: Vec<PeerId> = paths.iter().map(|p| r.add_peer(meta(p.0, EBGP))).collect();
        for i in perm {
            let (_, asn, med) = paths[i];
            announce(&mut r, ids[i], attrs(&[asn], |a| a.med = Some(med)));
        }
        winners.push(best_peer(&r));
    }
    assert!(winners.windows(2).all(|w| w[0] == w[1]), "{winners:?}");
    assert_eq!(
        winners[0], 1,
        "A: lowest router id among those MED did not eliminate"
    );
}

#[test]
fn external_beats_internal() {
    prefer(
        1,
        (IBGP, attrs(&[65001], |_| {})),
        (EBGP, attrs(&[65002], |_| {})),
    );
}

#[test]
fn lower_router_id_then_originator_id() {
    prefer(
        0,
        (IBGP, attrs(&[65001], |_| {})),
        (IBGP, attrs(&[65001], |_| {})),
    );
    // A reflected route ranks by its ORIGINATOR_ID instead of the reflector's id.
    prefer(
        1,
        (IBGP, attrs(&[65001], |_| {})),
        (
            IBGP,
            attrs(&[65001], |a| {
                a.originator_id = Some(Ipv4Addr::new(1, 1, 1, 1))
            }),
        ),
    );
}

#[test]
fn shorter_cluster_list_wins() {
    let id = Some(Ipv4Addr::new(1, 1, 1, 1));
    prefer(
        1,
        (
            IBGP,
            attrs(&[65001], |a| {
                a.originator_id = id;
                a.cluster_list = vec![Ipv4Addr::new(9, 9, 9, 9), Ipv4Addr::new(8, 8, 8, 8)];
            }),
        ),
        (
            IBGP,
            attrs(&[65001], |a| {
                a.originator_id = id;
                a.cluster_list = vec![Ipv4Addr::new(9, 9, 9, 9)];
            }),
        ),
    );
}

#[test]
fn local_routes_beat_learned_ones_of_equal_preference() {
    let mut r = rib(BestPathConfig::default());
    let p = r.add_peer(meta(0, EBGP));
    announce(&mut r, p, attrs(&[], |_| {}));
    announce(&mut r, LOCAL, attrs(&[], |_| {}));
    assert_eq!(best_peer(&r), LOCAL);
}

#[test]
fn multipath_across_pods_announcing_one_vip() {
    // Three pods, each its own AS (remote-as external), announce the same VIP.
    let mut r = rib(BestPathConfig::default());
    let pods: Vec<PeerId> = (2..5).map(|i| r.add_peer(meta(i, EBGP))).collect();
    for (i, &p) in pods.iter().enumerate() {
        let changes = announce(&mut r, p, attrs(&[65100 + i as u32], |_| {}));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].paths.len(), i + 1, "each pod joins the ECMP set");
    }
    assert_eq!(multipath_peers(&r), pods);

    // Without multipath-relax, only paths from the best's neighbor AS share.
    let mut strict = rib(BestPathConfig {
        multipath_relax: false,
        ..Default::default()
    });
    let a = strict.add_peer(meta(2, EBGP));
    let b = strict.add_peer(meta(3, EBGP));
    let c = strict.add_peer(meta(4, EBGP));
    announce(&mut strict, a, attrs(&[65100], |_| {}));
    announce(&mut strict, b, attrs(&[65101], |_| {}));
    announce(&mut strict, c, attrs(&[65100], |_| {}));
    assert_eq!(multipath_peers(&strict), vec![a, c]);

    // A longer path never joins; max_paths caps the set.
    let mut capped = rib(BestPathConfig {
        max_paths: 2,
        ..Default::default()
    });
    let ids: Vec<PeerId> = (2..6).map(|i| capped.add_peer(meta(i, EBGP))).collect();
    announce(&mut capped, ids[0], attrs(&[1, 2], |_| {}));
    for &p in &ids[1..] {
        announce(&mut capped, p, attrs(&[3], |_| {}));
    }
    assert_eq!(multipath_peers(&capped), vec![ids[1], ids[2]]);
}

#[test]
fn implicit_withdraw_and_withdraw() {
    let mut r = rib(BestPathConfig::default());
    let a = r.add_peer(meta(2, EBGP));
    let b = r.add_peer(meta(3, EBGP));
    announce(&mut r, a, attrs(&[65001], |_| {}));
    announce(&mut r, b, attrs(&[65002, 65003], |_| {}));
    assert_eq!(best_peer(&r), a);
    // The same announcement again changes nothing.
    assert!(announce(&mut r, a, attrs(&[65001], |_| {})).is_empty());
    // A new announcement from A replaces its old path (implicit withdraw).
    let changes = announce(&mut r, a, attrs(&[65001, 65004, 65005], |_| {}));
    assert_eq!(changes.len(), 1);
    assert_eq!(best_peer(&r), b);
    assert_eq!(r.table::<Ipv4Net>().paths(&P.parse().unwrap()).len(), 2);
    // Withdrawing B leaves A; withdrawing A empties the prefix.
    let mut changes = Vec::new();
    r.withdraw(b, &prefix(), &mut changes);
    assert_eq!(changes[0].best().unwrap().peer, a);
    changes.clear();
    r.withdraw(a, &prefix(), &mut changes);
    assert_eq!(changes.len(), 1);
    assert!(changes[0].paths.is_empty());
    assert!(r.table::<Ipv4Net>().is_empty());
    // Withdrawing what is not there reports nothing.
    changes.clear();
    r.withdraw(a, &prefix(), &mut changes);
    assert!(changes.is_empty());
}

#[test]
fn add_path_ids_are_separate_paths() {
    let mut r = rib(BestPathConfig::default());
    let a = r.add_peer(meta(2, IBGP));
    let shared = r.intern(attrs(&[65001], |_| {}));
    let mut changes = Vec::new();
    let p: Ipv4Net = P.parse().unwrap();
    r.announce(
        a,
        &shared,
        &[Nlri::with_path_id(p, 1), Nlri::with_path_id(p, 2)],
        &mut changes,
    );
    assert_eq!(r.table::<Ipv4Net>().paths(&p).len(), 2);
    changes.clear();
    r.withdraw(a, &[Nlri::with_path_id(p, 1)], &mut changes);
    assert_eq!(r.table::<Ipv4Net>().paths(&p)[0].path_id, 2);
}

#[test]
fn peer_down_removes_its_routes_only() {
    let mut r = rib(BestPathConfig::default());
    let a = r.add_peer(meta(2, EBGP));
    let b = r.add_peer(meta(3, EBGP));
    let shared_a = r.intern(attrs(&[65001], |_| {}));
    let shared_b = r.intern(attrs(&[65002], |_| {}));
    let many: Vec<Nlri<Ipv6Net>> = (0..100u16)
        .map(|i| Nlri::new(format!("2001:db8:{i:x}::/48").parse().unwrap()))
        .collect();
    let mut changes = Vec::new();
    r.announce(a, &shared_a, &many, &mut changes);
    r.announce(b, &shared_b, &many[..10], &mut changes);
    changes.clear();
    r.withdraw_peer(a, &mut changes);
    assert_eq!(changes.len(), 100);
    assert_eq!(changes.iter().filter(|c| c.paths.is_empty()).count(), 90);
    assert_eq!(r.table::<Ipv6Net>().len(), 10);
}

#[test]
fn attributes_are_interned() {
    let mut r = rib(BestPathConfig::default());
    let a = r.add_peer(meta(2, EBGP));
    let b = r.add_peer(meta(3, EBGP));
    let x = r.intern(attrs(&[65001], |_| {}));
    let y = r.intern(attrs(&[65001], |_| {}));
    assert!(Arc::ptr_eq(&x, &y), "equal sets are one allocation");
    let many: Vec<Nlri<Ipv4Net>> = (0..=255u8)
        .map(|i| Nlri::new(Ipv4Net::new(Ipv4Addr::new(10, i, 0, 0), 16).unwrap()))
        .collect();
    let mut changes = Vec::new();
    r.announce(a, &x, &many, &mut changes);
    r.announce(b, &y, &many, &mut changes);
    assert_eq!(r.attribute_sets(), 1);
    drop((x, y));
    changes.clear();
    r.withdraw_peer(a, &mut changes);
    r.withdraw_peer(b, &mut changes);
    assert_eq!(r.attribute_sets(), 1, "the changes still hold B's routes");
    changes.clear();
    assert_eq!(r.collect_garbage(), 1);
    assert_eq!(r.attribute_sets(), 0, "unused sets are collected");
}

#[test]
fn garbage_is_swept_when_the_set_has_doubled() {
    let mut r = rib(BestPathConfig::default());
    let a = r.add_peer(meta(2, EBGP));
    let p: Vec<Nlri<Ipv4Net>> = prefix();
    let mut changes = Vec::new();
    // Each announcement replaces the last one, leaving its set unused.
    for med in 0..600 {
        let x = r.intern(attrs(&[65001], |a| a.med = Some(med)));
        r.announce(a, &x, &p, &mut changes);
        changes.clear();
        r.maybe_collect_garbage();
        assert!(
            r.attribute_sets() <= 513,
            "never more than twice the floor: {}",
            r.attribute_sets()
        );
    }
    r.collect_garbage();
    assert_eq!(r.attribute_sets(), 1, "only the live set is left");
}

#[test]
fn a_prefix_that_leaves_frees_its_place_for_the_next_one() {
    let mut rib = rib(BestPathConfig::default());
    let a = rib.add_peer(meta(2, SourceKind::External));
    let x = rib.intern(attrs(&[65002], |_| {}));
    let n = |s: &str| Nlri::new(s.parse::<Ipv4Net>().unwrap());
    let mut changes = Vec::new();
    rib.announce(a, &x, &[n("10.0.0.0/24"), n("10.0.1.0/24")], &mut changes);
    rib.withdraw(a, &[n("10.0.0.0/24")], &mut changes);
    rib.announce(a, &x, &[n("10.0.2.0/24")], &mut changes);
    let t = rib.table::<Ipv4Net>();
    assert_eq!(t.len(), 2);
    assert!(t.paths(&"10.0.0.0/24".parse().unwrap()).is_empty());
    assert_eq!(t.paths(&"10.0.2.0/24".parse().unwrap()).len(), 1);
    let mut listed: Vec<String> = t.iter().map(|(p, _)| p.to_string()).collect();
    listed.sort();
    assert_eq!(listed, ["10.0.1.0/24", "10.0.2.0/24"]);
    // The withdrawal and the new prefix are reported in order.
    let seen: Vec<(String, usize)> = changes
        .iter()
        .map(|c| (c.prefix.to_string(), c.paths.len()))
        .collect();
    assert_eq!(
        seen,
        [
            ("10.0.0.0/24".to_string(), 1),
            ("10.0.1.0/24".to_string(), 1),
            ("10.0.0.0/24".to_string(), 0),
            ("10.0.2.0/24".to_string(), 1),
        ]
    );
    // Withdrawing what is not there changes nothing.
    let mut none = Vec::new();
    assert_eq!(rib.withdraw(a, &[n("10.0.0.0/24")], &mut none), 0);
    assert!(none.is_empty());
}
