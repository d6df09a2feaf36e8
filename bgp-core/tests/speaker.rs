//! Two bgp-core speakers over real TCP on loopback addresses (127.0.0.0/8, one
//! pair per test so tests run in parallel): sessions, route exchange with
//! attributes, withdrawals, RFC 8212, dynamic neighbors, max-prefix, removal.

// A failed expectation in a test is a panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{eventually, route, status};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgp_core::fsm::{RemoteAs, State};
use bgp_core::policy::{Action, Match, PrefixEntry, PrefixSet, RouteMap, Set, Term};
use bgp_core::speaker::{
    DynamicRange, Event, MaxPrefixes, NeighborConfig, NeighborStatus, RibEntry, Speaker,
    SpeakerConfig, SpeakerHandle,
};
use bgp_core::wire::{AsPath, Community, LargeCommunity, NextHop, Origin, PathAttributes};

const PORT: u16 = 11179;

fn addr(test: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 100, test, host))
}

async fn speaker(test: u8, host: u8, asn: u32) -> SpeakerHandle {
    let mut c = SpeakerConfig::new(asn, Ipv4Addr::new(10, 255, test, host));
    c.listen = vec![SocketAddr::new(addr(test, host), PORT)];
    Speaker::start(c).await.unwrap()
}

fn neighbor(test: u8, me: u8, them: u8, remote: RemoteAs) -> NeighborConfig {
    let mut n = NeighborConfig::new(addr(test, them), remote);
    n.port = PORT;
    n.source_address = Some(addr(test, me));
    n.connect_retry = Duration::from_secs(1);
    n.import = Some(RouteMap::accept_all("in"));
    n.export = Some(RouteMap::accept_all("out"));
    n.next_hop_v6 = Some(format!("fd00::{me}").parse().unwrap());
    n
}

fn attrs(communities: Vec<Community>) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        med: Some(20),
        communities,
        large_communities: vec![LargeCommunity::new(65001, 1, 2)],
        ..Default::default()
    }
}

async fn established(s: &SpeakerHandle, peer: IpAddr) -> NeighborStatus {
    eventually("Established", || async {
        status(s, peer)
            .await
            .filter(|n| n.state == State::Established)
    })
    .await
}

/// A (AS 65001, .1) connecting to B (AS 65002, .2, passive, its side of the
/// session adjusted by `b_side`); returns once B sees the session up.
async fn pair(t: u8, b_side: impl FnOnce(&mut NeighborConfig)) -> (SpeakerHandle, SpeakerHandle) {
    let a = speaker(t, 1, 65001).await;
    let b = speaker(t, 2, 65002).await;
    let mut nb = neighbor(t, 2, 1, RemoteAs::External);
    nb.passive = true;
    b_side(&mut nb);
    a.add_neighbor(neighbor(t, 1, 2, RemoteAs::External))
        .await
        .unwrap();
    b.add_neighbor(nb).await.unwrap();
    established(&b, addr(t, 1)).await;
    (a, b)
}

#[tokio::test]
async fn routes_flow_both_ways_with_attributes() {
    let t = 1;
    let a = speaker(t, 1, 65001).await;
    let b = speaker(t, 2, 65002).await;
    // Both sides connect: one connection survives collision resolution.
    a.add_neighbor(neighbor(t, 1, 2, RemoteAs::Number(65002)))
        .await
        .unwrap();
    b.add_neighbor(neighbor(t, 2, 1, RemoteAs::External))
        .await
        .unwrap();
    let sa = established(&a, addr(t, 2)).await;
    let sb = established(&b, addr(t, 1)).await;
    assert_eq!(sb.remote_as, Some(65001));
    assert_eq!(sa.remote_id, Some(Ipv4Addr::new(10, 255, t, 2)));
    assert_eq!(
        sa.families.len(),
        2,
        "IPv4 and IPv6 unicast over one session"
    );

    let mut events = b.subscribe();
    a.announce(
        "192.0.2.0/24".parse().unwrap(),
        attrs(vec![Community::new(65001, 100)]),
    )
    .await
    .unwrap();
    a.announce("2001:db8:1::/48".parse().unwrap(), attrs(vec![]))
        .await
        .unwrap();
    b.announce("198.51.100.0/24".parse().unwrap(), attrs(vec![]))
        .await
        .unwrap();

    let e = eventually("IPv4 route at B", || route(&b, "192.0.2.0/24")).await;
    let p = &e.paths[0];
    assert_eq!(p.neighbor, Some(addr(t, 1)));
    assert_eq!(
        p.next_hop,
        Some(NextHop::V4(Ipv4Addr::new(127, 100, t, 1))),
        "next hop self on eBGP"
    );
    let at = &p.attrs.attributes;
    assert_eq!(
        at.as_path,
        Some(AsPath::from_sequence([65001])),
        "our AS prepended"
    );
    assert_eq!(at.communities, vec![Community::new(65001, 100)]);
    assert_eq!(at.large_communities, vec![LargeCommunity::new(65001, 1, 2)]);
    assert_eq!(at.med, Some(20), "a locally originated MED is sent");
    assert_eq!(at.local_pref, None, "no LOCAL_PREF to an external peer");

    let e = eventually("IPv6 route at B", || route(&b, "2001:db8:1::/48")).await;
    assert_eq!(
        e.paths[0].next_hop,
        Some(NextHop::V6 {
            global: "fd00::1".parse().unwrap(),
            link_local: None
        }),
        "IPv6 over an IPv4 session uses the configured next hop"
    );
    eventually("route at A", || route(&a, "198.51.100.0/24")).await;

    // B tells subscribers (the FIB installer) about the new best path.
    let got = eventually("Route event", || {
        let r = events.try_recv().ok();
        async move { r.filter(|e| matches!(e, Event::Route { prefix, .. } if prefix.to_string() == "192.0.2.0/24")) }
    })
    .await;
    assert!(matches!(got, Event::Route { paths, .. } if paths.len() == 1));

    // A's Adj-RIB-Out towards B holds what it sent, and B's counters agree.
    let out = a.advertised(addr(t, 2)).await.unwrap();
    assert_eq!(out.len(), 2);
    let sb = status(&b, addr(t, 1)).await.unwrap();
    assert_eq!(sb.counters.accepted, 2);

    // The same figures in Prometheus form.
    let mut registry = prometheus_client::registry::Registry::default();
    b.metrics().register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let peer = addr(t, 1);
    assert!(
        text.contains(&format!("bgp_session_state{{neighbor=\"{peer}\"}} 6")),
        "{text}"
    );
    assert!(
        text.contains(&format!("bgp_prefixes_accepted{{neighbor=\"{peer}\"}} 2")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "bgp_messages_received_total{{neighbor=\"{peer}\",type=\"UPDATE\"}}"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "bgp_messages_sent_total{{neighbor=\"{peer}\",type=\"OPEN\"}} 1"
        )),
        "{text}"
    );

    // Withdraw: gone at B, and B's subscribers hear about it.
    a.withdraw("192.0.2.0/24".parse().unwrap()).await.unwrap();
    eventually("withdrawal at B", || async {
        route(&b, "192.0.2.0/24").await.is_none().then_some(())
    })
    .await;
    let gone = eventually("withdraw event", || {
        let r = events.try_recv().ok();
        async move { r.filter(|e| matches!(e, Event::Route { prefix, paths } if prefix.to_string() == "192.0.2.0/24" && paths.is_empty())) }
    })
    .await;
    drop(gone);
    a.shutdown(Some("test over".into())).await.unwrap();
    let down = eventually("session down at B", || async {
        status(&b, addr(t, 1))
            .await
            .filter(|n| n.state != State::Established)
    })
    .await;
    assert!(
        down.last_error.unwrap_or_default().contains("test over"),
        "RFC 9003 message reached B"
    );
    eventually("A's routes gone at B", || async {
        route(&b, "2001:db8:1::/48").await.is_none().then_some(())
    })
    .await;
    b.shutdown(None).await.unwrap();
}

#[tokio::test]
async fn rfc8212_external_neighbor_without_policy_exchanges_nothing() {
    let t = 2;
    let a = speaker(t, 1, 65001).await;
    let b = speaker(t, 2, 65002).await;
    let mut na = neighbor(t, 1, 2, RemoteAs::External);
    na.export = None; // A will not advertise
    let mut nb = neighbor(t, 2, 1, RemoteAs::External);
    nb.import = None; // B will not accept
    nb.passive = true;
    a.add_neighbor(na).await.unwrap();
    b.add_neighbor(nb).await.unwrap();
    established(&a, addr(t, 2)).await;
    let mut events = a.subscribe();
    a.announce("192.0.2.0/24".parse().unwrap(), attrs(vec![]))
        .await
        .unwrap();
    b.announce("198.51.100.0/24".parse().unwrap(), attrs(vec![]))
        .await
        .unwrap();
    // B's route reaches A (B exports), A's never reaches B (A has no export).
    eventually("B's route at A", || route(&a, "198.51.100.0/24")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(route(&b, "192.0.2.0/24").await.is_none());
    assert!(a.advertised(addr(t, 2)).await.unwrap().is_empty());
    // Now give B an import policy too: still nothing, since A has no export.
    drop(events.try_recv());
    a.set_policy(
        addr(t, 2),
        Some(RouteMap::accept_all("in")),
        Some(RouteMap::accept_all("out")),
    )
    .await
    .unwrap();
    eventually("A's route at B after A gets an export policy", || async {
        let s = status(&b, addr(t, 1)).await?;
        (s.counters.rejected > 0).then_some(())
    })
    .await;
    assert!(
        route(&b, "192.0.2.0/24").await.is_none(),
        "B still has no import policy"
    );
    a.shutdown(None).await.unwrap();
    b.shutdown(None).await.unwrap();
}

#[tokio::test]
async fn import_policy_rejects_and_modifies() {
    let t = 3;
    let a = speaker(t, 1, 65001).await;
    let b = speaker(t, 2, 65002).await;
    let mut nb = neighbor(t, 2, 1, RemoteAs::External);
    nb.passive = true;
    nb.soft_reconfiguration_inbound = true;
    // Pods may announce 192.0.2.0/24 le 32 only, and get LOCAL_PREF 200.
    let allowed = PrefixSet::new(vec![PrefixEntry {
        prefix: "192.0.2.0/24".parse().unwrap(),
        ge: None,
        le: Some(32),
    }]);
    nb.import = Some(RouteMap {
        name: "pods".into(),
        terms: vec![Term {
            name: "vips".into(),
            matches: vec![Match::Prefix(allowed)],
            sets: vec![Set::LocalPref(200)],
            action: Action::Accept,
        }],
        default_accept: false,
    });
    a.add_neighbor(neighbor(t, 1, 2, RemoteAs::External))
        .await
        .unwrap();
    b.add_neighbor(nb).await.unwrap();
    established(&b, addr(t, 1)).await;
    let mut events = b.subscribe();
    a.announce("192.0.2.10/32".parse().unwrap(), attrs(vec![]))
        .await
        .unwrap();
    a.announce("10.0.0.0/8".parse().unwrap(), attrs(vec![]))
        .await
        .unwrap();
    let e = eventually("VIP at B", || route(&b, "192.0.2.10/32")).await;
    assert_eq!(e.paths[0].attrs.attributes.local_pref, Some(200));
    let rejected = eventually("rejection event", || {
        let r = events.try_recv().ok();
        async move { r.filter(|e| matches!(e, Event::Rejected { .. })) }
    })
    .await;
    let Event::Rejected {
        prefix,
        reason,
        neighbor,
        guard,
        label,
    } = rejected
    else {
        unreachable!()
    };
    assert_eq!(prefix.to_string(), "10.0.0.0/8");
    assert_eq!(neighbor, addr(t, 1));
    assert!(reason.contains("pods"), "{reason}");
    assert_eq!(guard, None, "a route map rejection is not the guard's");
    assert_eq!(label, "policy");
    let s = status(&b, addr(t, 1)).await.unwrap();
    assert_eq!(s.counters.rejected_by_reason.get("policy"), Some(&1));
    let last = s.last_rejection.unwrap();
    assert_eq!(
        (last.prefix.to_string(), last.guard),
        ("10.0.0.0/8".into(), None)
    );
    assert!(route(&b, "10.0.0.0/8").await.is_none());

    // A new policy applies at once through the soft-reconfiguration copy.
    b.set_policy(
        addr(t, 1),
        Some(RouteMap::accept_all("all")),
        Some(RouteMap::accept_all("out")),
    )
    .await
    .unwrap();
    eventually("10/8 accepted after policy change", || {
        route(&b, "10.0.0.0/8")
    })
    .await;
    let e = route(&b, "192.0.2.10/32").await.unwrap();
    assert_eq!(
        e.paths[0].attrs.attributes.local_pref, None,
        "old changes undone"
    );
    a.shutdown(None).await.unwrap();
    b.shutdown(None).await.unwrap();
}

#[tokio::test]
async fn dynamic_range_accepts_pods_and_forgets_them() {
    let t = 4;
    let node = speaker(t, 1, 65000).await;
    let mut template = neighbor(t, 1, 0, RemoteAs::External);
    template.import = Some(RouteMap::accept_all("pods"));
    node.add_dynamic_range(DynamicRange {
        prefix: "127.100.4.0/24".parse().unwrap(),
        template,
        limit: 10,
    })
    .await
    .unwrap();
    // Two pods with their own private ASes announce the same VIP: ECMP.
    let mut pods = Vec::new();
    for host in [2u8, 3] {
        let pod = speaker(t, host, 4_200_000_000 + u32::from(host)).await;
        pod.add_neighbor(neighbor(t, host, 1, RemoteAs::External))
            .await
            .unwrap();
        pod.announce("192.0.2.80/32".parse().unwrap(), attrs(vec![]))
            .await
            .unwrap();
        pods.push(pod);
    }
    let e = eventually("ECMP over both pods", || async {
        route(&node, "192.0.2.80/32")
            .await
            .filter(|e| e.multipath == 2)
    })
    .await;
    let mut via: Vec<_> = e.paths.iter().map(|p| p.neighbor.unwrap()).collect();
    via.sort();
    assert_eq!(via, vec![addr(t, 2), addr(t, 3)]);
    let n = status(&node, addr(t, 2)).await.unwrap();
    assert_eq!(n.dynamic_range, Some("127.100.4.0/24".parse().unwrap()));

    // One pod goes away: its path goes, and so does the dynamic neighbor.
    pods.remove(0).shutdown(None).await.unwrap();
    eventually("one path left", || async {
        route(&node, "192.0.2.80/32")
            .await
            .filter(|e| e.paths.len() == 1)
    })
    .await;
    eventually("dynamic neighbor forgotten", || async {
        status(&node, addr(t, 2)).await.is_none().then_some(())
    })
    .await;
    for p in pods {
        p.shutdown(None).await.unwrap();
    }
    node.shutdown(None).await.unwrap();
}

#[tokio::test]
async fn max_prefixes_ceases_the_session() {
    let t = 5;
    let (a, b) = pair(t, |nb| {
        nb.max_prefixes = Some(MaxPrefixes {
            limit: 3,
            warning_only: false,
            restart: None,
        })
    })
    .await;
    for i in 0..5u8 {
        a.announce(format!("192.0.2.{}/32", i).parse().unwrap(), attrs(vec![]))
            .await
            .unwrap();
    }
    let s = eventually("A sees the Cease", || async {
        status(&a, addr(t, 2)).await.filter(|s| {
            s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("Maximum Number of Prefixes"))
        })
    })
    .await;
    assert!(
        s.last_error.unwrap().contains("limit 3"),
        "RFC 4486 data: family and limit"
    );
    // Without a restart time B stays down, though A keeps trying to connect.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = status(&b, addr(t, 1)).await.unwrap();
    assert_eq!(s.state, State::Idle, "no restart after a max-prefix cease");
    a.shutdown(None).await.unwrap();
    b.shutdown(None).await.unwrap();
}

#[tokio::test]
async fn max_prefixes_restart_after_the_configured_time() {
    let t = 7;
    let a = speaker(t, 1, 65001).await;
    let b = speaker(t, 2, 65002).await;
    let mut nb = neighbor(t, 2, 1, RemoteAs::External);
    nb.max_prefixes = Some(MaxPrefixes {
        limit: 1,
        warning_only: false,
        restart: Some(Duration::from_secs(1)),
    });
    let mut events = b.subscribe();
    a.add_neighbor(neighbor(t, 1, 2, RemoteAs::External))
        .await
        .unwrap();
    b.add_neighbor(nb).await.unwrap();
    a.announce("192.0.2.1/32".parse().unwrap(), attrs(vec![]))
        .await
        .unwrap();
    a.announce("192.0.2.2/32".parse().unwrap(), attrs(vec![]))
        .await
        .unwrap();
    // Established, ceased, and Established again on its own.
    let mut established = 0;
    eventually("two sessions", || {
        while let Ok(e) = events.try_recv() {
            if matches!(
                e,
                Event::NeighborState {
                    to: State::Established,
                    ..
                }
            ) {
                established += 1;
            }
        }
        let done = established >= 2;
        async move { done.then_some(()) }
    })
    .await;
    a.shutdown(None).await.unwrap();
    b.shutdown(None).await.unwrap();
}

#[tokio::test]
async fn removing_a_neighbor_withdraws_its_routes() {
    let t = 6;
    let a = speaker(t, 1, 65001).await;
    let b = speaker(t, 2, 65001).await; // iBGP
    let mut na = neighbor(t, 1, 2, RemoteAs::Internal);
    na.import = None; // internal: no policy needed
    na.export = None;
    let mut nb = neighbor(t, 2, 1, RemoteAs::Internal);
    nb.import = None;
    nb.export = None;
    nb.passive = true;
    a.add_neighbor(na).await.unwrap();
    b.add_neighbor(nb).await.unwrap();
    established(&b, addr(t, 1)).await;
    a.announce("192.0.2.0/24".parse().unwrap(), attrs(vec![]))
        .await
        .unwrap();
    let e = eventually("iBGP route", || route(&b, "192.0.2.0/24")).await;
    let at = &e.paths[0].attrs.attributes;
    assert_eq!(at.local_pref, Some(100), "LOCAL_PREF on iBGP");
    assert_eq!(at.as_path, Some(AsPath::default()), "no prepend on iBGP");
    b.remove_neighbor(addr(t, 1), Some("bye".into()))
        .await
        .unwrap();
    assert!(route(&b, "192.0.2.0/24").await.is_none());
    let s = eventually("A sees Cease", || async {
        status(&a, addr(t, 2))
            .await
            .filter(|s| s.last_error.is_some())
    })
    .await;
    assert!(s.last_error.unwrap().contains("bye"));
    a.shutdown(None).await.unwrap();
    b.shutdown(None).await.unwrap();
}

/// Status and RIB dumps serialize (for status commands and APIs).
#[test]
fn state_serializes_to_json() {
    use bgp_core::rib::RouteAttrs;
    use bgp_core::speaker::RoutePath;
    use std::sync::Arc;
    let entry = RibEntry {
        prefix: "192.0.2.0/24".parse().unwrap(),
        paths: vec![RoutePath {
            neighbor: Some(addr(9, 1)),
            next_hop: Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))),
            attrs: Arc::new(RouteAttrs {
                attributes: attrs(vec![Community::NO_EXPORT, Community::new(65001, 7)]),
                next_hop: None,
            }),
            ifindex: None,
        }],
        multipath: 1,
    };
    let json = serde_json::to_value(&entry).unwrap();
    assert_eq!(json["prefix"], "192.0.2.0/24");
    let a = &json["paths"][0]["attrs"]["attributes"];
    assert_eq!(
        a["communities"],
        serde_json::json!(["no-export", "65001:7"])
    );
    assert_eq!(a["large_communities"], serde_json::json!(["65001:1:2"]));
    assert_eq!(a["med"], 20);
    assert_eq!(a["origin"], "Igp");
}

/// Regression: the export cache (one result per attribute set) was shared by
/// both families, so an IPv6 route with the same attributes as an IPv4 route
/// went out with the IPv4 next hop in MP_REACH_NLRI (BIRD refused it:
/// "mismatched address family").
#[tokio::test]
async fn same_attributes_in_both_families_get_each_familys_next_hop() {
    let t = 40;
    let a = speaker(t, 1, 65001).await;
    let b = speaker(t, 2, 65002).await;
    a.add_neighbor(neighbor(t, 1, 2, RemoteAs::External))
        .await
        .unwrap();
    let mut nb = neighbor(t, 2, 1, RemoteAs::External);
    nb.passive = true;
    b.add_neighbor(nb).await.unwrap();
    established(&b, addr(t, 1)).await;
    let shared = attrs(vec![Community::new(65001, 1)]);
    a.announce("192.0.2.0/24".parse().unwrap(), shared.clone())
        .await
        .unwrap();
    a.announce("2001:db8:1::/48".parse().unwrap(), shared)
        .await
        .unwrap();
    let e = eventually("IPv6 route at B", || route(&b, "2001:db8:1::/48")).await;
    assert_eq!(
        e.paths[0].next_hop,
        Some(NextHop::V6 {
            global: "fd00::1".parse().unwrap(),
            link_local: None
        })
    );
    let e = eventually("IPv4 route at B", || route(&b, "192.0.2.0/24")).await;
    assert_eq!(
        e.paths[0].next_hop,
        Some(NextHop::V4(Ipv4Addr::new(127, 100, t, 1)))
    );
    a.shutdown(None).await.unwrap();
    b.shutdown(None).await.unwrap();
}

/// Regression: the max-prefix limit (documented per family) was applied to
/// the prefixes of all families together, and the Cease named the first
/// negotiated family rather than the one over the limit.
#[tokio::test]
async fn max_prefixes_counts_each_family_on_its_own() {
    let t = 41;
    let (a, b) = pair(t, |nb| {
        nb.max_prefixes = Some(MaxPrefixes {
            limit: 3,
            warning_only: false,
            restart: None,
        })
    })
    .await;
    // Three of each family: within the limit, six in all.
    for i in 0..3u8 {
        a.announce(format!("192.0.2.{i}/32").parse().unwrap(), attrs(vec![]))
            .await
            .unwrap();
        a.announce(format!("2001:db8::{i}/128").parse().unwrap(), attrs(vec![]))
            .await
            .unwrap();
    }
    eventually("six prefixes accepted", || async {
        status(&b, addr(t, 1))
            .await
            .filter(|s| s.counters.accepted == 6)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = status(&b, addr(t, 1)).await.unwrap();
    assert_eq!(s.state, State::Established, "{:?}", s.last_error);
    // A fourth IPv6 prefix: over the limit, and the Cease says IPv6.
    a.announce("2001:db8::3/128".parse().unwrap(), attrs(vec![]))
        .await
        .unwrap();
    let s = eventually("A sees the Cease", || async {
        status(&a, addr(t, 2)).await.filter(|s| {
            s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("Maximum Number of Prefixes"))
        })
    })
    .await;
    let why = s.last_error.unwrap();
    assert!(why.contains("ipv6-unicast limit 3"), "{why}");
    a.shutdown(None).await.unwrap();
    b.shutdown(None).await.unwrap();
}

#[tokio::test]
async fn update_neighbor_applies_in_place_or_restarts() {
    let t = 8;
    let a = speaker(t, 1, 65001).await;
    let b = speaker(t, 2, 65002).await;
    let mut nb = neighbor(t, 2, 1, RemoteAs::External);
    nb.soft_reconfiguration_inbound = true;
    a.add_neighbor(neighbor(t, 1, 2, RemoteAs::External))
        .await
        .unwrap();
    b.add_neighbor(nb.clone()).await.unwrap();
    a.announce("192.0.2.0/24".parse().unwrap(), attrs(vec![]))
        .await
        .unwrap();
    eventually("route at B", || route(&b, "192.0.2.0/24")).await;
    let s = established(&b, addr(t, 1)).await;
    assert!(
        s.remote_capabilities
            .iter()
            .any(|c| matches!(c, bgp_core::wire::Capability::FourOctetAs(65001)))
    );
    let received = b.received(addr(t, 1)).await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].1.attributes.as_path,
        Some(AsPath::from_sequence([65001])),
        "as received"
    );

    // Description and import policy change: applied to the running session.
    let mut changed = nb.clone();
    changed.description = "pod gateway".into();
    changed.import = Some(RouteMap {
        name: "none".into(),
        terms: vec![],
        default_accept: false,
    });
    b.update_neighbor(changed.clone()).await.unwrap();
    eventually("route rejected", || async {
        route(&b, "192.0.2.0/24").await.is_none().then_some(())
    })
    .await;
    let s = status(&b, addr(t, 1)).await.unwrap();
    assert_eq!(s.description, "pod gateway");
    assert_eq!(s.state, State::Established, "no reset for a policy change");
    assert!(s.since > Duration::from_millis(50) || s.counters.rejected > 0);

    // Hold time change: the session restarts and negotiates the new value.
    changed.hold_time = 30;
    changed.import = Some(RouteMap::accept_all("in"));
    b.update_neighbor(changed).await.unwrap();
    let s = eventually("new session with hold time 30", || async {
        status(&b, addr(t, 1))
            .await
            .filter(|s| s.state == State::Established && s.hold_time == Some(30))
    })
    .await;
    assert_eq!(s.description, "pod gateway");
    eventually("route back", || route(&b, "192.0.2.0/24")).await;
    assert!(b.received("127.100.8.9".parse().unwrap()).await.is_err());
    a.shutdown(None).await.unwrap();
    b.shutdown(None).await.unwrap();
}
