//! Our side of a lab: the bgp-core speaker's configuration and what tests ask
//! of it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bgp_core::fsm::{RemoteAs, State};
use bgp_core::policy::RouteMap;
use bgp_core::speaker::{NeighborConfig, NeighborStatus, RibEntry, SpeakerConfig, SpeakerHandle};
use bgp_core::wire::{AsPath, Community, LargeCommunity, NextHop, Origin, PathAttributes};
use ipnet::IpNet;

use crate::eventually;
use crate::netns::Lab;

/// How long a test waits for anything (a guard against hanging, not a
/// measure: things happen within a second or two).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A speaker in `asn` with our address as router id, listening on port 179 of
/// every address of our namespace.
pub fn speaker_config(lab: &Lab, asn: u32) -> SpeakerConfig {
    let mut c = SpeakerConfig::new(asn, lab.our_v4());
    c.listen = vec![SocketAddr::new(
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        179,
    )];
    c
}

/// The daemon as our neighbor: IPv4 session carrying IPv4 and IPv6 unicast,
/// accept-all policies both ways (RFC 8212), connect retry 1 s, hold time 9 s.
/// The next hop of IPv6 routes is not configured: the speaker finds our IPv6
/// address on the session's interface (the tests check it is `our_v6`).
pub fn neighbor(lab: &Lab, remote_as: RemoteAs) -> NeighborConfig {
    let mut n = NeighborConfig::new(lab.their_ip(), remote_as);
    n.connect_retry = Duration::from_secs(1);
    n.hold_time = 9;
    n.import = Some(RouteMap::accept_all("in"));
    n.export = Some(RouteMap::accept_all("out"));
    n
}

/// Attributes of a route we originate: ORIGIN IGP, empty AS_PATH and the rest
/// as given.
pub fn attrs(
    med: Option<u32>,
    communities: &[(u16, u16)],
    large: &[(u32, u32, u32)],
) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        med,
        communities: communities
            .iter()
            .map(|&(a, v)| Community::new(a, v))
            .collect(),
        large_communities: large
            .iter()
            .map(|&(g, a, b)| LargeCommunity::new(g, a, b))
            .collect(),
        ..Default::default()
    }
}

/// A prefix from a string the test wrote.
pub fn net(s: &str) -> IpNet {
    s.parse().unwrap_or_else(|e| panic!("bad prefix {s}: {e}"))
}

/// Our status of `peer`, if it is a neighbor.
pub async fn status(s: &SpeakerHandle, peer: IpAddr) -> Option<NeighborStatus> {
    s.neighbors()
        .await
        .ok()?
        .into_iter()
        .find(|n| n.address == peer)
}

/// Waits until our session with `peer` is Established.
pub async fn established(s: &SpeakerHandle, peer: IpAddr) -> NeighborStatus {
    eventually(
        &format!("our session with {peer} Established"),
        PATIENCE,
        || async {
            status(s, peer)
                .await
                .filter(|n| n.state == State::Established)
        },
    )
    .await
}

/// Our Loc-RIB entry for `prefix`.
pub async fn route(s: &SpeakerHandle, prefix: &str) -> Option<RibEntry> {
    let p = net(prefix);
    s.routes().await.ok()?.into_iter().find(|e| e.prefix == p)
}

/// Waits until we have `prefix`.
pub async fn wait_route(s: &SpeakerHandle, prefix: &str) -> RibEntry {
    eventually(&format!("{prefix} in our RIB"), PATIENCE, || {
        route(s, prefix)
    })
    .await
}

/// Waits until we no longer have `prefix`.
pub async fn wait_no_route(s: &SpeakerHandle, prefix: &str) {
    eventually(&format!("{prefix} gone from our RIB"), PATIENCE, || async {
        route(s, prefix).await.is_none().then_some(())
    })
    .await
}

/// The AS numbers of an AS_PATH, in order, segments flattened.
pub fn asns(path: Option<&AsPath>) -> Vec<u32> {
    path.map(|p| {
        p.segments
            .iter()
            .flat_map(|s| s.asns.iter().copied())
            .collect()
    })
    .unwrap_or_default()
}

/// Polls a (blocking) query of the daemon until it returns `Some`.
pub async fn wait_daemon<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    eventually(what, PATIENCE, || std::future::ready(f())).await
}

/// Checks the two routes every daemon in these tests announces, as we hold them:
/// 203.0.113.0/24 (MED 50, community 65002:200, large community 65002:3:4) and
/// 2001:db8:200::/48 (MED 60, community 65002:600), both with the daemon's AS as
/// the whole path, its addresses as next hops and no LOCAL_PREF over eBGP.
pub async fn check_daemon_routes(us: &SpeakerHandle, lab: &Lab, daemon_as: u32) {
    let e = wait_route(us, "203.0.113.0/24").await;
    let p = &e.paths[0];
    assert_eq!(p.neighbor, Some(lab.their_ip()));
    assert_eq!(p.next_hop, Some(NextHop::V4(lab.their_v4())));
    let a = &p.attrs.attributes;
    assert_eq!(asns(a.as_path.as_ref()), vec![daemon_as]);
    assert_eq!(a.med, Some(50));
    assert_eq!(a.communities, vec![Community::new(65002, 200)]);
    assert_eq!(a.large_communities, vec![LargeCommunity::new(65002, 3, 4)]);
    assert_eq!(a.local_pref, None, "no LOCAL_PREF over eBGP");
    let e = wait_route(us, "2001:db8:200::/48").await;
    let p = &e.paths[0];
    assert!(
        matches!(p.next_hop, Some(NextHop::V6 { global, .. }) if global == lab.their_v6()),
        "{:?}",
        p.next_hop
    );
    let a = &p.attrs.attributes;
    assert_eq!(asns(a.as_path.as_ref()), vec![daemon_as]);
    assert_eq!(a.med, Some(60));
    assert_eq!(a.communities, vec![Community::new(65002, 600)]);
}

/// Peers with the daemon (remote-as external) with a 3 s hold time, waits for
/// its 203.0.113.0/24, and announces 198.51.100.0/24 to it.
pub async fn peer_with_short_hold_time(us: &SpeakerHandle, lab: &Lab) {
    let mut n = neighbor(lab, RemoteAs::External);
    n.hold_time = 3;
    us.add_neighbor(n)
        .await
        .unwrap_or_else(|e| panic!("add neighbor: {e}"));
    let st = established(us, lab.their_ip()).await;
    assert_eq!(st.hold_time, Some(3));
    wait_route(us, "203.0.113.0/24").await;
    us.announce(net("198.51.100.0/24"), attrs(None, &[], &[]))
        .await
        .unwrap_or_else(|e| panic!("announce: {e}"));
}

/// Once the session is up, stops the daemon with `pause` (SIGSTOP): our hold
/// timer expires, we say so in a NOTIFICATION, leave Established and drop its
/// route.
pub async fn expect_hold_timer_expiry(us: &SpeakerHandle, lab: &Lab, pause: impl FnOnce()) {
    // Up right before the pause, its last error cleared: a session that
    // flapped under load before it is not taken for the expiry.
    established(us, lab.their_ip()).await;
    pause();
    // The first down after the pause, with why (reported just after the
    // state may be).
    let down = eventually(
        "Hold Timer Expired on our side",
        Duration::from_secs(20),
        || async {
            status(us, lab.their_ip())
                .await
                .filter(|s| s.state != State::Established && s.last_error.is_some())
        },
    )
    .await;
    let why = down.last_error.unwrap_or_default();
    assert!(why.contains("sent Hold Timer Expired"), "{why}");
    wait_no_route(us, "203.0.113.0/24").await;
}
