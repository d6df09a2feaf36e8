//! The import guard's per-route checks, one route at a time: each reason, the
//! order they are checked in, ge/le edges, next hops of both families and
//! IPv4-mapped peers, and AS paths.

// A failed expectation in a test is a panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bgp_core::policy::{GuardReason, GuardRefusal, ImportGuard, PrefixEntry, PrefixSet};
use bgp_core::rib::RouteAttrs;
use bgp_core::wire::{AsPath, NextHop, PathAttributes, Segment, SegmentType};
use ipnet::IpNet;

const POD: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 5);
const POD_AS: u32 = 4_200_000_001;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn pod() -> IpAddr {
    IpAddr::V4(POD)
}

/// The node's usual guard: cluster CIDRs and the default route forbidden,
/// /32 VIPs of 198.51.100.0/24 and /128s of 2001:db8:100::/64 allowed.
fn guard() -> ImportGuard {
    ImportGuard {
        forbidden: vec![
            net("10.244.0.0/16"),
            net("10.96.0.0/12"),
            net("0.0.0.0/0"),
            net("::/0"),
            net("fd00:10:244::/48"),
        ],
        allowed: PrefixSet::new(vec![
            PrefixEntry {
                prefix: net("198.51.100.0/24"),
                ge: Some(32),
                le: Some(32),
            },
            PrefixEntry {
                prefix: net("2001:db8:100::/64"),
                ge: Some(128),
                le: None,
            },
            // Wider than a forbidden prefix: forbidden must still win.
            PrefixEntry::orlonger(net("10.0.0.0/8")),
            PrefixEntry::orlonger(net("0.0.0.0/0")),
        ]),
        next_hop_is_peer: true,
        as_path_is_peer: true,
        max_prefixes: Some(16),
    }
}

fn attrs(next_hop: NextHop, path: Option<AsPath>) -> RouteAttrs {
    RouteAttrs {
        attributes: PathAttributes {
            as_path: path,
            ..Default::default()
        },
        next_hop: Some(next_hop),
    }
}

/// A route from the pod with its own next hop and AS path.
fn good() -> RouteAttrs {
    attrs(NextHop::V4(POD), Some(AsPath::from_sequence([POD_AS])))
}

fn check(g: &ImportGuard, prefix: &str, a: &RouteAttrs) -> Result<(), GuardReason> {
    g.check(&net(prefix), a, pod(), POD_AS)
}

#[test]
fn a_vip_from_the_pod_passes() {
    assert_eq!(check(&guard(), "198.51.100.10/32", &good()), Ok(()));
}

#[test]
fn forbidden_prefixes_and_anything_more_specific() {
    let g = guard();
    for p in [
        "10.244.0.0/16",
        "10.244.1.0/24",
        "10.244.1.5/32",
        "10.96.0.1/32",
    ] {
        assert_eq!(check(&g, p, &good()), Err(GuardReason::Forbidden), "{p}");
    }
    // Less specific than a forbidden prefix, or beside it: not forbidden (here
    // allowed by 10.0.0.0/8 le 32, so the route passes).
    for p in ["10.0.0.0/8", "10.244.0.0/15", "10.245.0.0/16"] {
        assert_eq!(check(&g, p, &good()), Ok(()), "{p}");
    }
    // The refusal names the forbidden prefix that covers the route.
    let why = g
        .check_detailed(&net("10.244.7.0/24"), &good(), pod(), POD_AS)
        .unwrap_err();
    assert_eq!(why, GuardRefusal::Forbidden(net("10.244.0.0/16")));
    assert_eq!(why.to_string(), "forbidden prefix 10.244.0.0/16");
}

#[test]
fn forbidden_is_checked_before_allowed_and_the_rest() {
    let g = guard();
    // Forbidden and also not allowed, with a foreign next hop and a transit
    // path: the first check in the order reports.
    let bad = attrs(
        NextHop::V4(Ipv4Addr::new(10, 0, 0, 9)),
        Some(AsPath::from_sequence([POD_AS, 64512])),
    );
    let nothing_allowed = ImportGuard {
        allowed: PrefixSet::default(),
        ..g.clone()
    };
    assert_eq!(
        check(&nothing_allowed, "10.244.1.0/24", &bad),
        Err(GuardReason::Forbidden)
    );
    // Not allowed is reported before the next hop and the AS path.
    assert_eq!(
        check(&g, "203.0.113.0/24", &bad),
        Err(GuardReason::NextHop),
        "203.0.113.0/24 is allowed by 0.0.0.0/0 le 32"
    );
    assert_eq!(
        check(&nothing_allowed, "203.0.113.0/24", &bad),
        Err(GuardReason::NotAllowed)
    );
    // The next hop before the AS path.
    assert_eq!(
        check(&g, "198.51.100.10/32", &bad),
        Err(GuardReason::NextHop)
    );
}

#[test]
fn a_forbidden_default_route_forbids_only_itself() {
    let g = guard();
    assert_eq!(check(&g, "0.0.0.0/0", &good()), Err(GuardReason::Forbidden));
    let v6 = attrs(
        NextHop::V6 {
            global: "2001:db8::5".parse().unwrap(),
            link_local: None,
        },
        Some(AsPath::from_sequence([POD_AS])),
    );
    assert_eq!(
        g.check(&net("::/0"), &v6, "2001:db8::5".parse().unwrap(), POD_AS),
        Err(GuardReason::Forbidden)
    );
    // Everything else is more specific than the default route and not
    // forbidden by it.
    assert_eq!(check(&g, "203.0.113.0/24", &good()), Ok(()));
}

#[test]
fn allowed_ge_le_edges() {
    let g = ImportGuard {
        allowed: PrefixSet::new(vec![PrefixEntry {
            prefix: net("198.51.100.0/24"),
            ge: Some(26),
            le: Some(28),
        }]),
        ..guard()
    };
    for (p, ok) in [
        ("198.51.100.0/24", false),
        ("198.51.100.0/25", false),
        ("198.51.100.0/26", true),
        ("198.51.100.64/27", true),
        ("198.51.100.240/28", true),
        ("198.51.100.240/29", false),
        ("198.51.100.1/32", false),
        ("198.51.101.0/26", false),
        ("198.51.0.0/16", false),
    ] {
        let want = if ok {
            Ok(())
        } else {
            Err(GuardReason::NotAllowed)
        };
        assert_eq!(check(&g, p, &good()), want, "{p}");
    }
    // An exact entry admits its own length only.
    let exact = ImportGuard {
        allowed: PrefixSet::new(vec![PrefixEntry::exact(net("198.51.100.0/24"))]),
        ..guard()
    };
    assert_eq!(check(&exact, "198.51.100.0/24", &good()), Ok(()));
    assert_eq!(
        check(&exact, "198.51.100.0/25", &good()),
        Err(GuardReason::NotAllowed)
    );
    // No allowed entries: nothing passes.
    let none = ImportGuard {
        allowed: PrefixSet::default(),
        ..guard()
    };
    assert_eq!(
        check(&none, "198.51.100.10/32", &good()),
        Err(GuardReason::NotAllowed)
    );
    let why = none
        .check_detailed(&net("198.51.100.10/32"), &good(), pod(), POD_AS)
        .unwrap_err();
    assert_eq!(why.to_string(), "outside the allowed prefixes");
}

#[test]
fn next_hop_must_be_the_peer_v4() {
    let g = guard();
    let other = attrs(
        NextHop::V4(Ipv4Addr::new(10, 0, 0, 9)),
        Some(AsPath::from_sequence([POD_AS])),
    );
    let why = g
        .check_detailed(&net("198.51.100.10/32"), &other, pod(), POD_AS)
        .unwrap_err();
    assert_eq!(why.reason(), GuardReason::NextHop);
    assert_eq!(
        why.to_string(),
        "next hop 10.0.0.9 is not the peer 10.244.1.5"
    );
    // No next hop at all.
    let mut none = good();
    none.next_hop = None;
    assert_eq!(
        check(&g, "198.51.100.10/32", &none),
        Err(GuardReason::NextHop)
    );
    // Without the check, any next hop passes.
    let lax = ImportGuard {
        next_hop_is_peer: false,
        ..g
    };
    assert_eq!(check(&lax, "198.51.100.10/32", &other), Ok(()));
}

#[test]
fn next_hop_must_be_the_peer_v6() {
    let g = guard();
    let peer: Ipv6Addr = "2001:db8::5".parse().unwrap();
    let ll: Ipv6Addr = "fe80::5".parse().unwrap();
    let path = Some(AsPath::from_sequence([POD_AS]));
    let vip = net("2001:db8:100::10/128");
    let with =
        |global: Ipv6Addr, link_local| attrs(NextHop::V6 { global, link_local }, path.clone());
    let c = |a: &RouteAttrs, peer: IpAddr| g.check(&vip, a, peer, POD_AS);
    // The global address, or either of a global + link-local pair.
    assert_eq!(c(&with(peer, None), IpAddr::V6(peer)), Ok(()));
    assert_eq!(c(&with(peer, Some(ll)), IpAddr::V6(peer)), Ok(()));
    // An unnumbered peer known by its link-local address.
    let other: Ipv6Addr = "2001:db8::9".parse().unwrap();
    assert_eq!(c(&with(other, Some(ll)), IpAddr::V6(ll)), Ok(()));
    assert_eq!(c(&with(ll, None), IpAddr::V6(ll)), Ok(()));
    // Someone else's.
    assert_eq!(
        c(&with(other, None), IpAddr::V6(peer)),
        Err(GuardReason::NextHop)
    );
    assert_eq!(
        c(
            &with(other, Some("fe80::9".parse().unwrap())),
            IpAddr::V6(peer)
        ),
        Err(GuardReason::NextHop)
    );
    // An IPv4 next hop never equals an IPv6 peer.
    assert_eq!(
        c(&attrs(NextHop::V4(POD), path.clone()), IpAddr::V6(peer)),
        Err(GuardReason::NextHop)
    );
    let why = g
        .check_detailed(&vip, &with(other, Some(ll)), IpAddr::V6(peer), POD_AS)
        .unwrap_err();
    assert_eq!(
        why.to_string(),
        "next hop 2001:db8::9 (link-local fe80::5) is not the peer 2001:db8::5"
    );
}

#[test]
fn next_hop_of_an_ipv4_mapped_peer() {
    let g = guard();
    let mapped = IpAddr::V6(POD.to_ipv6_mapped());
    // A session accepted on a dual-stack socket reports ::ffff:10.244.1.5.
    assert_eq!(
        g.check(&net("198.51.100.10/32"), &good(), mapped, POD_AS),
        Ok(())
    );
    // An IPv6 route over the IPv4 session with the mapped form as next hop.
    let v6 = attrs(
        NextHop::V6 {
            global: POD.to_ipv6_mapped(),
            link_local: None,
        },
        Some(AsPath::from_sequence([POD_AS])),
    );
    assert_eq!(
        g.check(&net("2001:db8:100::10/128"), &v6, pod(), POD_AS),
        Ok(())
    );
    assert_eq!(
        g.check(&net("2001:db8:100::10/128"), &v6, mapped, POD_AS),
        Ok(())
    );
    // The mapped form of another address is not the peer.
    let other = attrs(
        NextHop::V6 {
            global: Ipv4Addr::new(10, 244, 1, 6).to_ipv6_mapped(),
            link_local: None,
        },
        Some(AsPath::from_sequence([POD_AS])),
    );
    assert_eq!(
        g.check(&net("2001:db8:100::10/128"), &other, pod(), POD_AS),
        Err(GuardReason::NextHop)
    );
}

#[test]
fn as_path_must_be_the_peer_alone() {
    let g = guard();
    let c = |path: Option<AsPath>| check(&g, "198.51.100.10/32", &attrs(NextHop::V4(POD), path));
    // Prepending is fine, also over several sequence segments.
    assert_eq!(c(Some(AsPath::from_sequence([POD_AS; 3]))), Ok(()));
    let two_segments = AsPath {
        segments: vec![
            Segment {
                kind: SegmentType::Sequence,
                asns: vec![POD_AS],
            },
            Segment {
                kind: SegmentType::Sequence,
                asns: vec![POD_AS, POD_AS],
            },
        ],
    };
    assert_eq!(c(Some(two_segments)), Ok(()));
    // Transit: the pod passes on someone else's route.
    assert_eq!(
        c(Some(AsPath::from_sequence([POD_AS, 64512]))),
        Err(GuardReason::AsPath)
    );
    // Someone else's AS only (a spoofed origin).
    assert_eq!(
        c(Some(AsPath::from_sequence([64512]))),
        Err(GuardReason::AsPath)
    );
    // An AS_SET, even of the peer's AS alone.
    let set = |asns: Vec<u32>| AsPath {
        segments: vec![
            Segment {
                kind: SegmentType::Sequence,
                asns: vec![POD_AS],
            },
            Segment {
                kind: SegmentType::Set,
                asns,
            },
        ],
    };
    assert_eq!(c(Some(set(vec![64512, 64513]))), Err(GuardReason::AsPath));
    assert_eq!(c(Some(set(vec![POD_AS]))), Err(GuardReason::AsPath));
    // A confederation segment.
    let confed = AsPath {
        segments: vec![Segment {
            kind: SegmentType::ConfedSequence,
            asns: vec![POD_AS],
        }],
    };
    assert_eq!(c(Some(confed)), Err(GuardReason::AsPath));
    // Empty, or none at all.
    assert_eq!(c(Some(AsPath::default())), Err(GuardReason::AsPath));
    assert_eq!(c(None), Err(GuardReason::AsPath));

    let transit = attrs(
        NextHop::V4(POD),
        Some(AsPath::from_sequence([65001, 64512])),
    );
    let why = g
        .check_detailed(&net("198.51.100.10/32"), &transit, pod(), 64512)
        .unwrap_err();
    assert_eq!(
        why.to_string(),
        "AS path 65001 64512 is not just the peer's AS 64512"
    );
    let empty = attrs(NextHop::V4(POD), Some(AsPath::default()));
    let why = g
        .check_detailed(&net("198.51.100.10/32"), &empty, pod(), POD_AS)
        .unwrap_err();
    assert_eq!(
        why.to_string(),
        format!("an empty AS path is not just the peer's AS {POD_AS}")
    );
    // Without the check, any path passes.
    let lax = ImportGuard {
        as_path_is_peer: false,
        ..g.clone()
    };
    assert_eq!(check(&lax, "198.51.100.10/32", &transit), Ok(()));
}

#[test]
fn reasons_labels_and_sentences() {
    let labels: Vec<&str> = GuardReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(
        labels,
        [
            "forbidden",
            "not-allowed",
            "next-hop",
            "as-path",
            "max-prefixes"
        ]
    );
    // The status JSON spells them as the labels too.
    assert_eq!(
        serde_json::to_string(&GuardReason::NotAllowed).unwrap(),
        "\"not-allowed\""
    );
    // The speaker's reason labels start with the guard's, in order.
    assert_eq!(&bgp_core::speaker::REJECT_REASONS[..5], &labels[..]);
    let over = GuardRefusal::MaxPrefixes(16);
    assert_eq!(over.reason(), GuardReason::MaxPrefixes);
    assert_eq!(over.to_string(), "over the limit of 16 prefixes");
}
