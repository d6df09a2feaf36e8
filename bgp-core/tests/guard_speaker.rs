//! The import guard in a running speaker: a node speaker (127.104.T.1, AS
//! 65000, port 11183) admits pods from a dynamic range whose template carries
//! an `ImportGuard`, and the pods (bgp-core speakers at 127.104.T.H with private
//! 4-byte ASes) announce routes over real TCP on loopback. One T per test so
//! tests run in parallel. Also: connections nobody admits are closed at once.

// A failed expectation in a test is a panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{eventually, route, status};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bgp_core::fsm::{RemoteAs, State};
use bgp_core::policy::{
    Action, GuardReason, ImportGuard, Match, PrefixEntry, PrefixSet, RouteMap, Set, Term,
};
use bgp_core::speaker::{
    DynamicRange, Event, NeighborConfig, NeighborStatus, Speaker, SpeakerConfig, SpeakerHandle,
};
use bgp_core::wire::{AsPath, Origin, PathAttributes, Segment, SegmentType};
use ipnet::IpNet;
use tokio::io::AsyncReadExt;
use tokio::sync::broadcast;

const PORT: u16 = 11183;
const NODE_AS: u32 = 65000;

fn addr(t: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 104, t, host))
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn pod_as(host: u8) -> u32 {
    4_200_000_000 + u32::from(host)
}

async fn speaker(t: u8, host: u8, asn: u32) -> SpeakerHandle {
    let mut c = SpeakerConfig::new(asn, Ipv4Addr::new(10, 254, t, host));
    c.listen = vec![SocketAddr::new(addr(t, host), PORT)];
    Speaker::start(c).await.unwrap()
}

/// The guard of the pod group: cluster CIDRs and the default route
/// forbidden, /32 VIPs of 198.51.100.0/24 and /128s of 2001:db8:100::/64
/// allowed, the pod's own next hop and AS.
fn guard(max_prefixes: Option<u32>) -> ImportGuard {
    ImportGuard {
        forbidden: vec![net("10.244.0.0/16"), net("0.0.0.0/0"), net("::/0")],
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
        ]),
        next_hop_is_peer: true,
        as_path_is_peer: true,
        max_prefixes,
    }
}

/// The template of pods admitted from 127.104.T.0/24: external, guarded, no
/// import route map (the guard is the import policy, RFC 8212).
fn template(t: u8, guard: ImportGuard) -> NeighborConfig {
    let mut n = NeighborConfig::new(addr(t, 0), RemoteAs::External);
    n.port = PORT;
    n.hold_time = 9;
    n.guard = Some(Arc::new(guard));
    n.export = Some(RouteMap::accept_all("to-pods"));
    n
}

/// The node, admitting pods of 127.104.T.0/24 under `guard`.
async fn node(t: u8, guard: ImportGuard) -> SpeakerHandle {
    let node = speaker(t, 1, NODE_AS).await;
    node.add_dynamic_range(DynamicRange {
        prefix: format!("127.104.{t}.0/24").parse().unwrap(),
        template: template(t, guard),
        limit: 10,
    })
    .await
    .unwrap();
    node
}

/// A pod at 127.104.T.`host` peering with the node. Its IPv6 routes carry the
/// IPv4-mapped form of its own address as next hop; `export` decides what else
/// it sends.
async fn pod(t: u8, host: u8, export: RouteMap) -> SpeakerHandle {
    let pod = speaker(t, host, pod_as(host)).await;
    let mut n = NeighborConfig::new(addr(t, 1), RemoteAs::External);
    n.port = PORT;
    n.source_address = Some(addr(t, host));
    n.connect_retry = Duration::from_secs(1);
    n.hold_time = 9;
    n.import = Some(RouteMap::accept_all("from-node"));
    n.export = Some(export);
    n.next_hop_v6 = Some(Ipv4Addr::new(127, 104, t, host).to_ipv6_mapped());
    pod.add_neighbor(n).await.unwrap();
    pod
}

/// Attributes of a route the pod originates; its AS is prepended on export.
fn attrs(path: AsPath, med: u32) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(path),
        med: Some(med),
        ..Default::default()
    }
}

fn own() -> AsPath {
    AsPath::default()
}

async fn established(s: &SpeakerHandle, peer: IpAddr) -> NeighborStatus {
    eventually("Established", || async {
        status(s, peer)
            .await
            .filter(|n| n.state == State::Established)
    })
    .await
}

async fn absent(s: &SpeakerHandle, prefix: &str) {
    assert!(route(s, prefix).await.is_none(), "{prefix} in the Loc-RIB");
}

/// The events received so far.
fn drain(events: &mut broadcast::Receiver<Event>) -> Vec<Event> {
    let mut v = Vec::new();
    while let Ok(e) = events.try_recv() {
        v.push(e);
    }
    v
}

/// The `Rejected` events among `events`: (prefix, guard reason, sentence).
fn rejections(events: &[Event]) -> Vec<(IpNet, Option<GuardReason>, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Rejected {
                prefix,
                guard,
                reason,
                ..
            } => Some((*prefix, *guard, reason.clone())),
            _ => None,
        })
        .collect()
}

/// Whether any event shows the session leaving Established.
fn session_dropped(events: &[Event]) -> bool {
    events.iter().any(|e| {
        matches!(
            e,
            Event::NeighborState {
                from: State::Established,
                ..
            }
        )
    })
}

#[tokio::test]
async fn guard_accepts_the_good_and_refuses_each_bad_route_with_its_reason() {
    let t = 1;
    let node = node(t, guard(Some(16))).await;
    let mut events = node.subscribe();
    // The pod sends one route with someone else's next hop.
    let foreign_next_hop = RouteMap {
        name: "out".into(),
        terms: vec![Term {
            name: "elsewhere".into(),
            matches: vec![Match::Prefix(PrefixSet::new(vec![PrefixEntry::exact(
                net("198.51.100.3/32"),
            )]))],
            sets: vec![Set::NextHop(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)))],
            action: Action::Accept,
        }],
        default_accept: true,
    };
    let p = addr(t, 2);
    let pod = pod(t, 2, foreign_next_hop).await;
    established(&node, p).await;

    let set = AsPath {
        segments: vec![Segment {
            kind: SegmentType::Set,
            asns: vec![64512, 64513],
        }],
    };
    let announce = [
        // Good: a VIP, a prepended VIP, an IPv6 VIP over the IPv4 session.
        ("198.51.100.1/32", own()),
        ("198.51.100.2/32", AsPath::from_sequence([pod_as(2); 2])),
        ("2001:db8:100::1/128", own()),
        // Bad, one of each reason.
        ("10.244.1.0/24", own()),
        ("0.0.0.0/0", own()),
        ("203.0.113.0/24", own()),
        ("198.51.100.3/32", own()),
        ("198.51.100.4/32", AsPath::from_sequence([64512])),
        ("198.51.100.5/32", set),
    ];
    for (prefix, path) in announce {
        pod.announce(net(prefix), attrs(path, 0)).await.unwrap();
    }
    let s = eventually("six refused, three accepted", || async {
        status(&node, p)
            .await
            .filter(|s| s.counters.rejected == 6 && s.counters.accepted == 3)
    })
    .await;

    for good in ["198.51.100.1/32", "198.51.100.2/32", "2001:db8:100::1/128"] {
        let e = route(&node, good).await.expect(good);
        assert_eq!(e.paths[0].neighbor, Some(p), "{good}");
    }
    for bad in [
        "10.244.1.0/24",
        "0.0.0.0/0",
        "203.0.113.0/24",
        "198.51.100.3/32",
        "198.51.100.4/32",
        "198.51.100.5/32",
    ] {
        absent(&node, bad).await;
    }

    // Counted by reason, and the session is up all along.
    let by: Vec<(&str, u64)> = s
        .counters
        .rejected_by_reason
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        by,
        [
            ("as-path", 2),
            ("forbidden", 2),
            ("next-hop", 1),
            ("not-allowed", 1)
        ]
    );
    assert_eq!(s.state, State::Established);
    let last = s.last_rejection.expect("a last rejection");
    assert!(last.guard.is_some(), "{last:?}");

    // One Rejected event per refused prefix, with the guard's reason as data
    // and a sentence naming the culprit; the session never left Established.
    let all = drain(&mut events);
    assert!(!session_dropped(&all));
    let mut got = rejections(&all);
    got.sort();
    let want: Vec<(IpNet, Option<GuardReason>, String)> = vec![
        (
            net("0.0.0.0/0"),
            Some(GuardReason::Forbidden),
            "forbidden prefix 0.0.0.0/0".into(),
        ),
        (
            net("10.244.1.0/24"),
            Some(GuardReason::Forbidden),
            "forbidden prefix 10.244.0.0/16".into(),
        ),
        (
            net("198.51.100.3/32"),
            Some(GuardReason::NextHop),
            format!("next hop 10.0.0.9 is not the peer {p}"),
        ),
        (
            net("198.51.100.4/32"),
            Some(GuardReason::AsPath),
            format!(
                "AS path {} 64512 is not just the peer's AS {}",
                pod_as(2),
                pod_as(2)
            ),
        ),
        (
            net("198.51.100.5/32"),
            Some(GuardReason::AsPath),
            format!(
                "AS path {} {{64512,64513}} is not just the peer's AS {}",
                pod_as(2),
                pod_as(2)
            ),
        ),
        (
            net("203.0.113.0/24"),
            Some(GuardReason::NotAllowed),
            "outside the allowed prefixes".into(),
        ),
    ];
    assert_eq!(got, want);

    // The same counts in Prometheus form.
    let mut registry = prometheus_client::registry::Registry::default();
    node.metrics().register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for (reason, n) in [
        ("forbidden", 2),
        ("not-allowed", 1),
        ("next-hop", 1),
        ("as-path", 2),
    ] {
        let line =
            format!("bgp_rejected_prefixes_total{{neighbor=\"{p}\",reason=\"{reason}\"}} {n}");
        assert!(text.contains(&line), "{line} in\n{text}");
    }
    assert!(
        text.contains(&format!(
            "bgp_prefixes_rejected_total{{neighbor=\"{p}\"}} 6"
        )),
        "{text}"
    );

    pod.shutdown(None).await.unwrap();
    node.shutdown(None).await.unwrap();
}

#[tokio::test]
async fn guard_prefix_limit_refuses_new_prefixes_and_frees_slots_on_withdraw() {
    let t = 2;
    let node = node(t, guard(Some(2))).await;
    let mut events = node.subscribe();
    let p = addr(t, 2);
    let pod = pod(t, 2, RouteMap::accept_all("out")).await;
    established(&node, p).await;
    let accepted = |n: u64| {
        let node = node.clone();
        async move {
            status(&node, p)
                .await
                .filter(|s| s.counters.accepted == n)
                .map(|_| ())
        }
    };

    // Two prefixes, one of each family: the limit counts both together.
    pod.announce(net("198.51.100.1/32"), attrs(own(), 0))
        .await
        .unwrap();
    eventually("first accepted", || route(&node, "198.51.100.1/32")).await;
    pod.announce(net("2001:db8:100::1/128"), attrs(own(), 0))
        .await
        .unwrap();
    eventually("second accepted", || route(&node, "2001:db8:100::1/128")).await;
    eventually("two accepted", || accepted(2)).await;

    // A third is refused, without a Cease.
    pod.announce(net("198.51.100.3/32"), attrs(own(), 0))
        .await
        .unwrap();
    let s = eventually("third refused", || async {
        status(&node, p)
            .await
            .filter(|s| s.counters.rejected_by_reason.get("max-prefixes") == Some(&1))
    })
    .await;
    absent(&node, "198.51.100.3/32").await;
    assert_eq!(s.state, State::Established);
    assert_eq!(s.counters.accepted, 2);
    let last = s.last_rejection.unwrap();
    assert_eq!(last.prefix, net("198.51.100.3/32"));
    assert_eq!(last.guard, Some(GuardReason::MaxPrefixes));
    assert_eq!(last.reason, "over the limit of 2 prefixes");
    let all = drain(&mut events);
    assert!(!session_dropped(&all));
    assert_eq!(
        rejections(&all),
        [(
            net("198.51.100.3/32"),
            Some(GuardReason::MaxPrefixes),
            "over the limit of 2 prefixes".to_string()
        )]
    );

    // At the limit, a new version of an accepted prefix still replaces it.
    pod.announce(net("198.51.100.1/32"), attrs(own(), 7))
        .await
        .unwrap();
    eventually("replacement accepted", || async {
        route(&node, "198.51.100.1/32")
            .await
            .filter(|e| e.paths[0].attrs.attributes.med == Some(7))
    })
    .await;
    assert_eq!(
        status(&node, p).await.unwrap().counters.rejected,
        1,
        "a replacement takes no new slot"
    );

    // A withdrawal frees a slot: the third, sent again, now fits.
    pod.withdraw(net("198.51.100.1/32")).await.unwrap();
    eventually("first withdrawn", || async {
        route(&node, "198.51.100.1/32")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    eventually("one accepted", || accepted(1)).await;
    pod.announce(net("198.51.100.3/32"), attrs(own(), 1))
        .await
        .unwrap();
    eventually("third accepted", || route(&node, "198.51.100.3/32")).await;
    eventually("two accepted again", || accepted(2)).await;

    // And the first, announced again, is now the one over the limit.
    pod.announce(net("198.51.100.1/32"), attrs(own(), 0))
        .await
        .unwrap();
    eventually("first refused", || async {
        status(&node, p)
            .await
            .filter(|s| s.counters.rejected_by_reason.get("max-prefixes") == Some(&2))
    })
    .await;
    absent(&node, "198.51.100.1/32").await;
    let s = status(&node, p).await.unwrap();
    assert_eq!(s.state, State::Established);
    assert_eq!(s.counters.accepted, 2);
    pod.shutdown(None).await.unwrap();
    node.shutdown(None).await.unwrap();
}

#[tokio::test]
async fn a_refused_reannouncement_removes_the_accepted_route() {
    let t = 3;
    let node = node(t, guard(Some(16))).await;
    let p = addr(t, 2);
    let pod = pod(t, 2, RouteMap::accept_all("out")).await;
    established(&node, p).await;
    pod.announce(net("198.51.100.7/32"), attrs(own(), 0))
        .await
        .unwrap();
    eventually("VIP accepted", || route(&node, "198.51.100.7/32")).await;
    let mut events = node.subscribe();

    // The same prefix, now passed on from another AS: refused, and the
    // accepted version is gone too (FIB installers hear about it).
    pod.announce(
        net("198.51.100.7/32"),
        attrs(AsPath::from_sequence([64512]), 0),
    )
    .await
    .unwrap();
    eventually("VIP removed", || async {
        route(&node, "198.51.100.7/32")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    let s = status(&node, p).await.unwrap();
    assert_eq!(s.counters.accepted, 0);
    assert_eq!(s.counters.rejected_by_reason.get("as-path"), Some(&1));
    assert_eq!(s.state, State::Established);
    let mut withdrawn = false;
    let mut refused = None;
    while let Ok(e) = events.try_recv() {
        match e {
            Event::Route { prefix, paths } if prefix == net("198.51.100.7/32") => {
                withdrawn = paths.is_empty();
            }
            Event::Rejected { prefix, guard, .. } if prefix == net("198.51.100.7/32") => {
                refused = guard;
            }
            _ => {}
        }
    }
    assert!(withdrawn, "a Route event with no paths");
    assert_eq!(refused, Some(GuardReason::AsPath));

    // Fixed again: accepted again.
    pod.announce(net("198.51.100.7/32"), attrs(own(), 1))
        .await
        .unwrap();
    eventually("VIP back", || route(&node, "198.51.100.7/32")).await;
    pod.shutdown(None).await.unwrap();
    node.shutdown(None).await.unwrap();
}

#[tokio::test]
async fn a_new_guard_applies_to_what_the_pod_already_sent() {
    let t = 4;
    // Only .1 allowed at first; soft reconfiguration keeps what was refused.
    let only = |last: u8| ImportGuard {
        allowed: PrefixSet::new(vec![PrefixEntry::exact(net(&format!(
            "198.51.100.{last}/32"
        )))]),
        ..guard(None)
    };
    let node = speaker(t, 1, NODE_AS).await;
    let mut tpl = template(t, only(1));
    tpl.soft_reconfiguration_inbound = true;
    node.add_dynamic_range(DynamicRange {
        prefix: format!("127.104.{t}.0/24").parse().unwrap(),
        template: tpl.clone(),
        limit: 10,
    })
    .await
    .unwrap();
    let p = addr(t, 2);
    let pod = pod(t, 2, RouteMap::accept_all("out")).await;
    established(&node, p).await;
    for last in [1, 2] {
        pod.announce(net(&format!("198.51.100.{last}/32")), attrs(own(), 0))
            .await
            .unwrap();
    }
    eventually(".2 refused", || async {
        status(&node, p)
            .await
            .filter(|s| s.counters.rejected_by_reason.get("not-allowed") == Some(&1))
    })
    .await;
    assert!(route(&node, "198.51.100.1/32").await.is_some());
    absent(&node, "198.51.100.2/32").await;

    // The pod's group now allows .2 instead of .1: re-applied in place.
    let mut now = tpl;
    now.address = p;
    now.passive = true;
    now.guard = Some(Arc::new(only(2)));
    node.update_neighbor(now).await.unwrap();
    eventually(".2 accepted", || route(&node, "198.51.100.2/32")).await;
    eventually(".1 removed", || async {
        route(&node, "198.51.100.1/32")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    let s = status(&node, p).await.unwrap();
    assert_eq!(s.state, State::Established, "no session reset");
    assert_eq!(s.counters.accepted, 1);
    pod.shutdown(None).await.unwrap();
    node.shutdown(None).await.unwrap();
}

/// Connects from `from` to `to`; returns what came back before the
/// connection closed (`true`) or the first 19 bytes, a BGP header with its
/// type, if it stays open (`false`), and the connection.
async fn first_bytes(from: IpAddr, to: SocketAddr) -> (Vec<u8>, bool, tokio::net::TcpStream) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    let closed = loop {
        match tokio::time::timeout(common::GUARD, stream.read(&mut buf)).await {
            Err(_) => panic!("neither data nor close from {to}"),
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                if got.len() >= 19 {
                    break false;
                }
            }
        }
    };
    (got, closed, stream)
}

#[tokio::test]
async fn connections_nobody_admits_are_closed_before_open() {
    let t = 5;
    let node = speaker(t, 1, NODE_AS).await;
    // Pods from 127.104.5.0/25, one at a time; one static neighbor at .200.
    node.add_dynamic_range(DynamicRange {
        prefix: format!("127.104.{t}.0/25").parse().unwrap(),
        template: template(t, guard(None)),
        limit: 1,
    })
    .await
    .unwrap();
    let mut fixed = NeighborConfig::new(addr(t, 200), RemoteAs::External);
    fixed.port = PORT;
    fixed.passive = true;
    node.add_neighbor(fixed).await.unwrap();
    let listener = SocketAddr::new(addr(t, 1), PORT);

    // In the range: admitted, and the node opens with its OPEN (type 1).
    let (bytes, closed, _admitted) = first_bytes(addr(t, 9), listener).await;
    assert!(!closed, "an admitted connection stays open");
    assert_eq!(bytes[18], 1, "OPEN first: {bytes:?}");
    eventually("dynamic neighbor", || status(&node, addr(t, 9))).await;

    // Outside the range and not a neighbor: closed, nothing sent.
    let (bytes, closed, _) = first_bytes(addr(t, 130), listener).await;
    assert!(closed && bytes.is_empty(), "{bytes:?}");
    // In the range, but the range is full: closed too.
    let (bytes, closed, _) = first_bytes(addr(t, 10), listener).await;
    assert!(closed && bytes.is_empty(), "{bytes:?}");

    let mut known: Vec<IpAddr> = node
        .neighbors()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.address)
        .collect();
    known.sort();
    assert_eq!(known, [addr(t, 9), addr(t, 200)]);
    node.shutdown(None).await.unwrap();
}
