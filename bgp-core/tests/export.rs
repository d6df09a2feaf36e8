//! Export rules, with five speakers on loopback around one router R (AS 65000):
//! I1 and I3 are internal non-clients, I2 an internal route reflector client,
//! E (AS 65001) and E2 (AS 65002, seen by R under local AS 65099) external.

// A failed expectation in a test is a panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{eventually, route};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgp_core::fsm::{RemoteAs, State};
use bgp_core::policy::{Action, Match, PrefixEntry, PrefixSet, RouteMap, Set, Term};
use bgp_core::speaker::{NeighborConfig, Speaker, SpeakerConfig, SpeakerHandle};
use bgp_core::wire::{AsPath, Community, NextHop, Origin, PathAttributes};

const PORT: u16 = 11181;
const T: u8 = 1;

fn addr(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 102, T, host))
}

async fn speaker(host: u8, asn: u32) -> SpeakerHandle {
    let mut c = SpeakerConfig::new(asn, Ipv4Addr::new(10, 102, T, host));
    c.listen = vec![SocketAddr::new(addr(host), PORT)];
    Speaker::start(c).await.unwrap()
}

fn neighbor(me: u8, them: u8, remote: RemoteAs) -> NeighborConfig {
    let mut n = NeighborConfig::new(addr(them), remote);
    n.port = PORT;
    n.source_address = Some(addr(me));
    n.connect_retry = Duration::from_secs(1);
    n.import = Some(RouteMap::accept_all("in"));
    n.export = Some(RouteMap::accept_all("out"));
    n.families = vec![bgp_core::wire::AfiSafi::IPV4_UNICAST];
    n
}

fn attrs(med: Option<u32>, communities: Vec<Community>) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        med,
        communities,
        ..Default::default()
    }
}

async fn all_established(s: &SpeakerHandle, n: usize) {
    eventually("sessions", || async {
        let up = s
            .neighbors()
            .await
            .unwrap()
            .iter()
            .filter(|n| n.state == State::Established)
            .count();
        (up == n).then_some(())
    })
    .await;
}

#[tokio::test]
async fn ibgp_ebgp_reflection_and_well_known_communities() {
    let (r, i1, i2, i3, e, e2) = (1u8, 2u8, 3u8, 4u8, 5u8, 6u8);
    let sr = speaker(r, 65000).await;
    let si1 = speaker(i1, 65000).await;
    let si2 = speaker(i2, 65000).await;
    let si3 = speaker(i3, 65000).await;
    let se = speaker(e, 65001).await;
    let se2 = speaker(e2, 65002).await;

    for (me, s) in [(i1, &si1), (i2, &si2), (i3, &si3)] {
        sr.add_neighbor(neighbor(r, me, RemoteAs::Internal))
            .await
            .unwrap();
        s.add_neighbor(neighbor(me, r, RemoteAs::Internal))
            .await
            .unwrap();
    }
    let mut client = neighbor(r, i2, RemoteAs::Internal);
    client.route_reflector_client = true;
    sr.update_neighbor(client).await.unwrap();
    sr.add_neighbor(neighbor(r, e, RemoteAs::External))
        .await
        .unwrap();
    // E tags two of its routes on export, as an operator would.
    let mut e_to_r = neighbor(e, r, RemoteAs::External);
    let tag = |name: &str, prefix: &str, c: Community| Term {
        name: name.into(),
        matches: vec![Match::Prefix(PrefixSet::new(vec![PrefixEntry::exact(
            prefix.parse().unwrap(),
        )]))],
        sets: vec![Set::AddCommunities(vec![c])],
        action: Action::Accept,
    };
    e_to_r.export = Some(RouteMap {
        name: "tag".into(),
        terms: vec![
            tag("no-export", "198.51.101.0/24", Community::NO_EXPORT),
            tag("no-advertise", "198.51.102.0/24", Community::NO_ADVERTISE),
        ],
        default_accept: true,
    });
    se.add_neighbor(e_to_r).await.unwrap();
    let mut to_e2 = neighbor(r, e2, RemoteAs::External);
    to_e2.local_as = Some(65099);
    sr.add_neighbor(to_e2).await.unwrap();
    se2.add_neighbor(neighbor(e2, r, RemoteAs::Number(65099)))
        .await
        .unwrap();
    all_established(&sr, 5).await;

    se.announce("198.51.100.0/24".parse().unwrap(), attrs(Some(50), vec![]))
        .await
        .unwrap();
    se.announce("198.51.101.0/24".parse().unwrap(), attrs(None, vec![]))
        .await
        .unwrap();
    se.announce("198.51.102.0/24".parse().unwrap(), attrs(None, vec![]))
        .await
        .unwrap();
    si1.announce("203.0.113.0/24".parse().unwrap(), attrs(None, vec![]))
        .await
        .unwrap();
    si2.announce("203.0.114.0/24".parse().unwrap(), attrs(None, vec![]))
        .await
        .unwrap();

    // R has everything.
    for p in [
        "198.51.100.0/24",
        "198.51.101.0/24",
        "198.51.102.0/24",
        "203.0.113.0/24",
        "203.0.114.0/24",
    ] {
        eventually(p, || route(&sr, p)).await;
    }

    // eBGP -> iBGP: next hop unchanged, MED kept, LOCAL_PREF added.
    let x = eventually("X at I1", || route(&si1, "198.51.100.0/24")).await;
    let a = &x.paths[0].attrs.attributes;
    assert_eq!(
        x.paths[0].next_hop,
        Some(NextHop::V4(Ipv4Addr::new(127, 102, T, e))),
        "next hop unchanged on iBGP"
    );
    assert_eq!(a.med, Some(50));
    assert_eq!(a.local_pref, Some(100));
    assert_eq!(
        a.as_path,
        Some(AsPath::from_sequence([65001])),
        "no prepend towards iBGP"
    );
    // NO_EXPORT goes to internal peers.
    eventually("NO_EXPORT route at I1", || route(&si1, "198.51.101.0/24")).await;

    // eBGP -> eBGP: prepended with the per-neighbor local AS, next hop self, MED dropped.
    let x = eventually("X at E2", || route(&se2, "198.51.100.0/24")).await;
    let a = &x.paths[0].attrs.attributes;
    assert_eq!(a.as_path, Some(AsPath::from_sequence([65099, 65001])));
    assert_eq!(
        x.paths[0].next_hop,
        Some(NextHop::V4(Ipv4Addr::new(127, 102, T, r)))
    );
    assert_eq!(a.med, None, "MED is not passed from one AS to another");

    // iBGP -> eBGP.
    let w = eventually("I1's route at E", || route(&se, "203.0.113.0/24")).await;
    assert_eq!(
        w.paths[0].attrs.attributes.as_path,
        Some(AsPath::from_sequence([65000]))
    );

    // Reflection: non-client I1's route reaches client I2 with ORIGINATOR_ID and
    // CLUSTER_LIST, but not non-client I3; client I2's route reaches I1 and I3.
    let w = eventually("I1's route reflected to I2", || {
        route(&si2, "203.0.113.0/24")
    })
    .await;
    let a = &w.paths[0].attrs.attributes;
    assert_eq!(a.originator_id, Some(Ipv4Addr::new(10, 102, T, i1)));
    assert_eq!(a.cluster_list, vec![Ipv4Addr::new(10, 102, T, r)]);
    eventually("I2's route at I1", || route(&si1, "203.0.114.0/24")).await;
    eventually("I2's route at I3", || route(&si3, "203.0.114.0/24")).await;

    // Give every update time to arrive, then check what must not have.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        route(&si3, "203.0.113.0/24").await.is_none(),
        "no iBGP to iBGP without a client"
    );
    assert!(
        route(&se2, "198.51.101.0/24").await.is_none(),
        "NO_EXPORT stays in the AS"
    );
    for s in [&si1, &si2, &si3, &se2] {
        assert!(
            route(s, "198.51.102.0/24").await.is_none(),
            "NO_ADVERTISE goes nowhere"
        );
    }
    assert!(
        !sr.advertised(addr(e))
            .await
            .unwrap()
            .iter()
            .any(|(p, _)| p.to_string().starts_with("198.51.10")),
        "nothing goes back to the peer it came from"
    );
    for s in [sr, si1, si2, si3, se, se2] {
        s.shutdown(None).await.unwrap();
    }
}

/// A prefix that leaves the table frees its place, which the next new prefix
/// takes: the neighbor must hear the first withdrawn and the second announced,
/// and the Adj-RIB-Out view must follow, also across a route refresh.
#[tokio::test]
async fn a_withdrawn_prefix_and_the_next_new_one_both_reach_the_neighbor() {
    let (a, b) = (11u8, 12u8);
    let sa = speaker(a, 65011).await;
    let sb = speaker(b, 65012).await;
    sa.add_neighbor(neighbor(a, b, RemoteAs::External))
        .await
        .unwrap();
    sb.add_neighbor(neighbor(b, a, RemoteAs::External))
        .await
        .unwrap();
    all_established(&sa, 1).await;
    for p in ["198.51.110.0/24", "198.51.111.0/24"] {
        sa.announce(p.parse().unwrap(), attrs(None, vec![]))
            .await
            .unwrap();
    }
    eventually("both at B", || async {
        (route(&sb, "198.51.111.0/24").await.is_some()
            && route(&sb, "198.51.110.0/24").await.is_some())
        .then_some(())
    })
    .await;

    sa.withdraw("198.51.110.0/24".parse().unwrap())
        .await
        .unwrap();
    sa.announce("198.51.112.0/24".parse().unwrap(), attrs(Some(7), vec![]))
        .await
        .unwrap();
    eventually("the withdrawal and the new one at B", || async {
        (route(&sb, "198.51.110.0/24").await.is_none()
            && route(&sb, "198.51.112.0/24").await.is_some())
        .then_some(())
    })
    .await;
    let med = route(&sb, "198.51.112.0/24").await.unwrap().paths[0]
        .attrs
        .attributes
        .med;
    assert_eq!(med, Some(7));
    let sent = |s: &SpeakerHandle| {
        let s = s.clone();
        async move {
            let mut v: Vec<String> = s
                .advertised(addr(b))
                .await
                .unwrap()
                .iter()
                .map(|(p, _)| p.to_string())
                .collect();
            v.sort();
            v
        }
    };
    assert_eq!(sent(&sa).await, ["198.51.111.0/24", "198.51.112.0/24"]);
    assert_eq!(
        sb.neighbors().await.unwrap()[0].counters.accepted,
        2,
        "B holds exactly the two"
    );
}

/// Two pods in one AS behind a node: neither is sent the other's VIP, which
/// it would drop as a loop, unless the node is told to send it anyway.
#[tokio::test]
async fn routes_are_not_sent_to_a_neighbor_whose_as_is_in_their_path() {
    let (r, p1, p2) = (21u8, 22u8, 23u8);
    let sr = speaker(r, 65020).await;
    let s1 = speaker(p1, 65021).await;
    let s2 = speaker(p2, 65021).await;
    for (me, s) in [(p1, &s1), (p2, &s2)] {
        sr.add_neighbor(neighbor(r, me, RemoteAs::External))
            .await
            .unwrap();
        s.add_neighbor(neighbor(me, r, RemoteAs::External))
            .await
            .unwrap();
    }
    all_established(&sr, 2).await;
    s1.announce("198.51.120.0/24".parse().unwrap(), attrs(None, vec![]))
        .await
        .unwrap();
    eventually("the VIP at the node", || async {
        route(&sr, "198.51.120.0/24").await.map(|_| ())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        sr.advertised(addr(p2)).await.unwrap().is_empty(),
        "sent to a neighbor in the AS it came through"
    );

    // Turned off for p2: sent, and p2's own loop check drops it.
    let mut to_p2 = neighbor(r, p2, RemoteAs::External);
    to_p2.sender_loop_check = false;
    sr.update_neighbor(to_p2).await.unwrap();
    eventually("advertised to p2", || async {
        let sent = sr.advertised(addr(p2)).await.unwrap();
        (sent.len() == 1).then_some(())
    })
    .await;
    assert!(route(&s2, "198.51.120.0/24").await.is_none());
}
