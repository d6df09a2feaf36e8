//! Session security and shutdown against FRR, each test in network
//! namespaces of its own: TCP-MD5 (`neighbor X password`), GTSM (`neighbor X
//! ttl-security hops N`, with a router namespace in between), BGP roles and
//! OTC (`neighbor X local-role`), and graceful shutdown (RFC 8326) both ways.

// A failed expectation in a test is a panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bgp_core::fsm::{RemoteAs, State};
use bgp_core::speaker::{DynamicRange, Event, NeighborConfig, SpeakerConfig};
use bgp_core::wire::{Community, Role};
use podpeer_interop_tests::ours::{self, PATIENCE, attrs, net, status, wait_daemon};
use podpeer_interop_tests::{
    FRR_BINARIES, Frr, Lab, Netns, NsSpeaker, eventually, skip_unless_runnable, veth,
};
use serde_json::Value;

const OUR_AS: u32 = 65001;
const FRR_AS: u32 = 65002;

/// FRR's bgpd configuration: AS 65002, `peer` as neighbor in AS 65001 with
/// the extra `neighbor` lines given (`{peer}` replaced), IPv4 unicast, and
/// `networks` originated.
fn frr_config(
    peer: impl std::fmt::Display,
    router_id: Ipv4Addr,
    neighbor: &[&str],
    networks: &[&str],
) -> String {
    let mut c = format!(
        "router bgp {FRR_AS}
 bgp router-id {router_id}
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor {peer} remote-as {OUR_AS}
 neighbor {peer} timers connect 1
 neighbor {peer} advertisement-interval 0
"
    );
    for line in neighbor {
        c += &format!(" {}\n", line.replace("{peer}", &peer.to_string()));
    }
    c += " address-family ipv4 unicast\n";
    for n in networks {
        c += &format!("  network {n}\n");
    }
    c += &format!(
        "  neighbor {peer} activate\n  neighbor {peer} send-community all\n exit-address-family\nexit\n"
    );
    c
}

/// FRR on a lab's far side, with us as its neighbor.
fn frr_on(lab: &Lab, neighbor: &[&str], networks: &[&str]) -> Frr {
    Frr::start(
        &lab.theirs,
        &frr_config(lab.our_v4(), lab.their_v4(), neighbor, networks),
    )
    .unwrap()
}

/// Our neighbor (the lab's FRR), IPv4 unicast only.
fn our_neighbor(lab: &Lab) -> NeighborConfig {
    let mut n = ours::neighbor(lab, RemoteAs::Number(FRR_AS));
    n.families = vec![bgp_core::wire::AfiSafi::IPV4_UNICAST];
    n
}

/// FRR's state of its session with `peer`.
fn frr_state(frr: &Frr, peer: &str) -> String {
    frr.neighbor(peer)
        .ok()
        .and_then(|n| n["bgpState"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// FRR's neighbor object once Established.
async fn frr_established(frr: &Frr, peer: &str) -> Value {
    wait_daemon("FRR's session Established", || {
        frr.neighbor(peer)
            .ok()
            .filter(|n| n["bgpState"] == "Established")
    })
    .await
}

/// Neither side reaches Established for `d`.
async fn stays_down(us: &NsSpeaker, frr: &Frr, peer: IpAddr, frr_peer: &str, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        let st = status(us, peer).await.map(|s| s.state);
        assert_ne!(st, Some(State::Established), "our session came up");
        assert_ne!(frr_state(frr, frr_peer), "Established", "FRR's came up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A TcpExt counter of a namespace (`/proc/net/netstat`).
fn tcp_ext(ns: &Netns, name: &str) -> u64 {
    ns.tcp_ext(name)
        .unwrap_or_else(|| panic!("no TcpExt {name}"))
}

/// FRR with `neighbor X password`: the same password on our side brings the
/// session up (FRR connecting to our listener, which carries the key); a
/// different one never does, and the kernel counts the bad signatures.
#[tokio::test]
async fn md5_password_interoperates_and_a_wrong_one_never_establishes() {
    skip_unless_runnable!(FRR_BINARIES);
    let lab = Lab::new(81).unwrap();
    let frr = frr_on(
        &lab,
        &["neighbor {peer} password s3cret-pw"],
        &["203.0.113.0/24"],
    );
    let us = NsSpeaker::start(&lab.ours, ours::speaker_config(&lab, OUR_AS)).unwrap();
    let mut n = our_neighbor(&lab);
    n.password = Some("s3cret-pw".into());
    n.passive = true;
    us.add_neighbor(n).await.unwrap();
    ours::established(&us, lab.their_ip()).await;
    let f = frr_established(&frr, &lab.our_v4().to_string()).await;
    assert_eq!(f["portForeign"], 179, "FRR connected to our listener: {f}");
    ours::wait_route(&us, "203.0.113.0/24").await;

    // Wrong password, now connecting both ways: nothing comes up.
    let mut n = our_neighbor(&lab);
    n.password = Some("not-the-pw".into());
    us.update_neighbor(n).await.unwrap();
    frr.vtysh(&[&format!("clear bgp {}", lab.our_v4())])
        .unwrap();
    let before = tcp_ext(&lab.ours, "TCPMD5Failure") + tcp_ext(&lab.theirs, "TCPMD5Failure");
    stays_down(
        &us,
        &frr,
        lab.their_ip(),
        &lab.our_v4().to_string(),
        Duration::from_secs(6),
    )
    .await;
    let after = tcp_ext(&lab.ours, "TCPMD5Failure") + tcp_ext(&lab.theirs, "TCPMD5Failure");
    assert!(
        after > before,
        "the kernels saw bad signatures ({before} -> {after})"
    );
    ours::wait_no_route(&us, "203.0.113.0/24").await;
}

/// A dynamic range with a password: its prefix key on our listener admits
/// FRR's signed connection.
#[tokio::test]
async fn md5_range_key_admits_frr() {
    skip_unless_runnable!(FRR_BINARIES);
    let lab = Lab::new(82).unwrap();
    let frr = frr_on(
        &lab,
        &["neighbor {peer} password range-pw"],
        &["203.0.113.0/24"],
    );
    let us = NsSpeaker::start(&lab.ours, ours::speaker_config(&lab, OUR_AS)).unwrap();
    let mut template = our_neighbor(&lab);
    template.password = Some("range-pw".into());
    us.add_dynamic_range(DynamicRange {
        prefix: lab.subnet_v4(),
        template,
        limit: 4,
    })
    .await
    .unwrap();
    let st = ours::established(&us, lab.their_ip()).await;
    assert_eq!(st.dynamic_range, Some(lab.subnet_v4()));
    frr_established(&frr, &lab.our_v4().to_string()).await;
    ours::wait_route(&us, "203.0.113.0/24").await;
}

/// Three namespaces, ours - router - FRR's, so FRR is 2 hops away: its
/// packets reach us with TTL 254. FRR has `ttl-security hops 2`. With our
/// `ttl_security` 1 the kernel drops FRR's packets (TCPMinTTLDrop counts
/// them) and nothing comes up; with 2 the session is up.
#[tokio::test]
async fn ttl_security_refuses_a_peer_two_hops_away_with_hops_1() {
    skip_unless_runnable!(FRR_BINARIES);
    let ours_ns = Netns::new("a").unwrap();
    let router = Netns::new("r").unwrap();
    let theirs = Netns::new("b").unwrap();
    veth(
        &ours_ns,
        "to-r",
        &["10.98.1.1/24"],
        &router,
        "to-a",
        &["10.98.1.254/24"],
    )
    .unwrap();
    veth(
        &router,
        "to-b",
        &["10.98.2.254/24"],
        &theirs,
        "to-r",
        &["10.98.2.2/24"],
    )
    .unwrap();
    router
        .exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        .unwrap();
    ours_ns
        .ip(&["route", "add", "10.98.2.0/24", "via", "10.98.1.254"])
        .unwrap();
    theirs
        .ip(&["route", "add", "10.98.1.0/24", "via", "10.98.2.254"])
        .unwrap();
    let (us_ip, frr_ip) = (Ipv4Addr::new(10, 98, 1, 1), Ipv4Addr::new(10, 98, 2, 2));
    let frr = Frr::start(
        &theirs,
        &frr_config(
            us_ip,
            frr_ip,
            &["neighbor {peer} ttl-security hops 2"],
            &["203.0.113.0/24"],
        ),
    )
    .unwrap();
    let mut c = SpeakerConfig::new(OUR_AS, us_ip);
    c.listen = vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 179)];
    let us = NsSpeaker::start(&ours_ns, c).unwrap();
    let neighbor = |hops| {
        let mut n = NeighborConfig::new(IpAddr::V4(frr_ip), RemoteAs::Number(FRR_AS));
        n.connect_retry = Duration::from_secs(1);
        n.hold_time = 9;
        n.families = vec![bgp_core::wire::AfiSafi::IPV4_UNICAST];
        n.import = Some(bgp_core::policy::RouteMap::accept_all("in"));
        n.export = Some(bgp_core::policy::RouteMap::accept_all("out"));
        n.ttl_security = Some(hops);
        n
    };
    // Hops 1: FRR is one hop too far.
    let drops = tcp_ext(&ours_ns, "TCPMinTTLDrop");
    us.add_neighbor(neighbor(1)).await.unwrap();
    stays_down(
        &us,
        &frr,
        IpAddr::V4(frr_ip),
        &us_ip.to_string(),
        Duration::from_secs(6),
    )
    .await;
    let now = tcp_ext(&ours_ns, "TCPMinTTLDrop");
    assert!(now > drops, "dropped by the minimum TTL ({drops} -> {now})");
    // Hops 2: up, routes flow.
    us.update_neighbor(neighbor(2)).await.unwrap();
    ours::established(&us, IpAddr::V4(frr_ip)).await;
    frr_established(&frr, &us_ip.to_string()).await;
    ours::wait_route(&us, "203.0.113.0/24").await;
    drop(us);
    drop(frr);
}

/// FRR as our provider (`local-role provider`), we its customer: the session
/// is up, FRR's route reaches us with OTC = FRR's AS (FRR adds it towards a
/// customer), and FRR reports both roles. The same role on both sides is
/// refused with Role Mismatch.
#[tokio::test]
async fn roles_match_with_frr_and_a_mismatch_is_refused() {
    skip_unless_runnable!(FRR_BINARIES);
    let lab = Lab::new(83).unwrap();
    let frr = frr_on(
        &lab,
        &["neighbor {peer} local-role provider"],
        &["203.0.113.0/24"],
    );
    let us = NsSpeaker::start(&lab.ours, ours::speaker_config(&lab, OUR_AS)).unwrap();
    let mut n = our_neighbor(&lab);
    n.role = Some(Role::Customer);
    n.role_strict = true;
    us.add_neighbor(n).await.unwrap();
    let st = ours::established(&us, lab.their_ip()).await;
    assert!(
        st.remote_capabilities
            .contains(&bgp_core::wire::Capability::Role(Role::Provider)),
        "{:?}",
        st.remote_capabilities
    );
    let f = frr_established(&frr, &lab.our_v4().to_string()).await;
    println!(
        "FRR's view of the roles: localRole {} remoteRole {}",
        f["localRole"], f["remoteRole"]
    );
    assert_eq!(f["localRole"], "provider", "{f}");
    assert_eq!(f["remoteRole"], "customer", "{f}");
    let e = ours::wait_route(&us, "203.0.113.0/24").await;
    assert_eq!(e.paths[0].attrs.attributes.otc, Some(FRR_AS));
    // Ours (no OTC) goes up to FRR, unmarked.
    us.announce(net("198.51.100.0/24"), attrs(None, &[], &[]))
        .await
        .unwrap();
    let p = wait_daemon("our route at FRR", || {
        frr.paths("198.51.100.0/24").ok().filter(|p| !p.is_empty())
    })
    .await;
    assert!(p[0].get("otc").is_none(), "{}", p[0]);

    // FRR says customer too: refused.
    frr.configure(&[
        &format!("router bgp {FRR_AS}"),
        &format!("neighbor {} local-role customer", lab.our_v4()),
    ])
    .unwrap();
    let why = eventually("a Role Mismatch", PATIENCE, || async {
        status(&us, lab.their_ip())
            .await
            .filter(|s| s.state != State::Established)
            .and_then(|s| s.last_error)
            .filter(|e| e.contains("Role Mismatch"))
    })
    .await;
    assert!(why.ends_with("OPEN Message Error/Role Mismatch"), "{why}");
    stays_down(
        &us,
        &frr,
        lab.their_ip(),
        &lab.our_v4().to_string(),
        Duration::from_secs(4),
    )
    .await;
    let f = frr.neighbor(&lab.our_v4().to_string()).unwrap();
    // FRR refuses our OPEN as well.
    assert_eq!(
        f["lastNotificationReason"], "OPEN Message Error/Role Mismatch",
        "{f}"
    );
}

/// A route leak through FRR: an upstream speaker (AS 65099, a second address
/// in our namespace) gives FRR a route already marked with OTC; FRR, with no
/// role towards us, passes it on; we, FRR's provider, reject it as a leak
/// and keep FRR's own route.
#[tokio::test]
async fn a_leak_from_frr_is_rejected() {
    skip_unless_runnable!(FRR_BINARIES);
    let lab = Lab::new(84).unwrap();
    let upstream_ip = Ipv4Addr::new(10, 99, 84, 3);
    lab.ours
        .ip(&["addr", "add", "10.99.84.3/24", "dev", "to-b"])
        .unwrap();
    let frr = frr_on(
        &lab,
        &[
            &format!("neighbor {upstream_ip} remote-as 65099"),
            &format!("neighbor {upstream_ip} timers connect 1"),
            &format!("neighbor {upstream_ip} advertisement-interval 0"),
        ],
        &["203.0.113.0/24"],
    );
    let us = NsSpeaker::start(&lab.ours, ours::speaker_config(&lab, OUR_AS)).unwrap();
    let mut events = us.subscribe();
    let mut n = our_neighbor(&lab);
    n.role = Some(Role::Provider);
    us.add_neighbor(n).await.unwrap();
    // The upstream: no listener (ours has port 179), connects from .3.
    let mut c = SpeakerConfig::new(65099, upstream_ip);
    c.listen = Vec::new();
    let upstream = NsSpeaker::start(&lab.ours, c).unwrap();
    let mut n = NeighborConfig::new(lab.their_ip(), RemoteAs::Number(FRR_AS));
    n.source_address = Some(IpAddr::V4(upstream_ip));
    n.connect_retry = Duration::from_secs(1);
    n.families = vec![bgp_core::wire::AfiSafi::IPV4_UNICAST];
    n.export = Some(bgp_core::policy::RouteMap::accept_all("out"));
    n.import = Some(bgp_core::policy::RouteMap::accept_all("in"));
    upstream.add_neighbor(n).await.unwrap();
    ours::established(&upstream, lab.their_ip()).await;
    let mut leaked = attrs(None, &[], &[]);
    leaked.otc = Some(65099);
    upstream
        .announce(net("192.0.2.0/24"), leaked)
        .await
        .unwrap();
    // FRR has it, with the OTC, and passes it to us.
    let p = wait_daemon("the marked route at FRR", || {
        frr.paths("192.0.2.0/24").ok().filter(|p| !p.is_empty())
    })
    .await;
    println!("the route at FRR: {}", p[0]);
    ours::established(&us, lab.their_ip()).await;
    ours::wait_route(&us, "203.0.113.0/24").await;
    let reason = eventually("the leak rejected", PATIENCE, || {
        let mut found = None;
        while let Ok(ev) = events.try_recv() {
            if let Event::Rejected { prefix, reason, .. } = ev
                && prefix == net("192.0.2.0/24")
            {
                found = Some(reason);
            }
        }
        std::future::ready(found)
    })
    .await;
    assert_eq!(
        reason,
        "route leak: OTC 65099 from a customer or route server client (RFC 9234)"
    );
    assert!(ours::route(&us, "192.0.2.0/24").await.is_none());
    let st = status(&us, lab.their_ip()).await.unwrap();
    assert_eq!(st.counters.rejected_by_reason.get("route-leak"), Some(&1));
    assert_eq!(st.state, State::Established);
}

/// Our graceful shutdown as FRR sees it: the route marked with
/// GRACEFUL_SHUTDOWN while the session still stands, then Cease /
/// Administrative Shutdown with our message.
#[tokio::test]
async fn graceful_shutdown_is_seen_by_frr_before_the_cease() {
    skip_unless_runnable!(FRR_BINARIES);
    let lab = Lab::new(85).unwrap();
    let frr = frr_on(&lab, &[], &[]);
    let us = NsSpeaker::start(&lab.ours, ours::speaker_config(&lab, OUR_AS)).unwrap();
    us.add_neighbor(our_neighbor(&lab)).await.unwrap();
    ours::established(&us, lab.their_ip()).await;
    us.announce(net("198.51.100.0/24"), attrs(None, &[], &[]))
        .await
        .unwrap();
    let peer = lab.our_v4().to_string();
    wait_daemon("our route at FRR", || {
        frr.paths("198.51.100.0/24").ok().filter(|p| !p.is_empty())
    })
    .await;
    let handle = us.handle().clone();
    // Long enough for the blocking vtysh polls below to see the marked route
    // and the session still up within it on a loaded machine.
    let drain = Duration::from_secs(8);
    let shutdown = tokio::spawn(async move {
        handle
            .graceful_shutdown(drain, Some("podpeer: node maintenance".into()))
            .await
    });
    let p = wait_daemon("the marked route at FRR", || {
        frr.paths("198.51.100.0/24")
            .ok()
            .and_then(|p| p.into_iter().next())
            .filter(|p| p["community"]["string"] == "graceful-shutdown")
    })
    .await;
    assert_eq!(
        frr_state(&frr, &peer),
        "Established",
        "still up while draining"
    );
    println!("the marked route at FRR: {p}");
    shutdown.await.unwrap().unwrap();
    let f = wait_daemon("FRR's session down", || {
        frr.neighbor(&peer)
            .ok()
            .filter(|n| n["bgpState"] != "Established")
    })
    .await;
    println!(
        "FRR: lastNotificationReason {} lastShutdownDescription {}",
        f["lastNotificationReason"], f["lastShutdownDescription"]
    );
    let reason = f["lastNotificationReason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("Administrative Shutdown") || reason.contains("Administratively Shutdown"),
        "{f}"
    );
    assert_eq!(
        f["lastShutdownDescription"], "podpeer: node maintenance",
        "{f}"
    );
    wait_daemon("our route gone at FRR", || {
        frr.paths("198.51.100.0/24").ok().filter(|p| p.is_empty())
    })
    .await;
}

/// FRR's graceful shutdown (`bgp graceful-shutdown`) as we see it: its route
/// arrives again with the community, and we lower its LOCAL_PREF to 0.
#[tokio::test]
async fn frr_graceful_shutdown_lowers_our_local_pref() {
    skip_unless_runnable!(FRR_BINARIES);
    let lab = Lab::new(86).unwrap();
    let frr = frr_on(&lab, &[], &["203.0.113.0/24"]);
    let us = NsSpeaker::start(&lab.ours, ours::speaker_config(&lab, OUR_AS)).unwrap();
    us.add_neighbor(our_neighbor(&lab)).await.unwrap();
    let e = ours::wait_route(&us, "203.0.113.0/24").await;
    assert_eq!(e.paths[0].attrs.attributes.local_pref, None);
    frr.configure(&[&format!("router bgp {FRR_AS}"), "bgp graceful-shutdown"])
        .unwrap();
    let e = eventually("the marked route", PATIENCE, || async {
        ours::route(&us, "203.0.113.0/24").await.filter(|e| {
            e.paths[0]
                .attrs
                .attributes
                .communities
                .contains(&Community::GRACEFUL_SHUTDOWN)
        })
    })
    .await;
    assert_eq!(e.paths[0].attrs.attributes.local_pref, Some(0));
    assert_eq!(
        status(&us, lab.their_ip()).await.unwrap().state,
        State::Established
    );
}

/// MD5 over an IPv6 session: FRR connects to our IPv6 listener (keyed for
/// its IPv6 address), and we connect to it.
#[tokio::test]
async fn md5_over_ipv6_both_directions() {
    skip_unless_runnable!(FRR_BINARIES);
    let lab = Lab::new(87).unwrap();
    let frr = Frr::start(
        &lab.theirs,
        &frr_config(
            lab.our_v6(),
            lab.their_v4(),
            &["neighbor {peer} password v6-pw"],
            &["203.0.113.0/24"],
        ),
    )
    .unwrap();
    let us = NsSpeaker::start(&lab.ours, ours::speaker_config(&lab, OUR_AS)).unwrap();
    let them = IpAddr::V6(lab.their_v6());
    let neighbor = |passive| {
        let mut n = NeighborConfig::new(them, RemoteAs::Number(FRR_AS));
        n.connect_retry = Duration::from_secs(1);
        n.hold_time = 9;
        n.families = vec![bgp_core::wire::AfiSafi::IPV4_UNICAST];
        n.import = Some(bgp_core::policy::RouteMap::accept_all("in"));
        n.next_hop_v4 = Some(lab.our_v4());
        n.password = Some("v6-pw".into());
        n.passive = passive;
        n
    };
    us.add_neighbor(neighbor(true)).await.unwrap();
    ours::established(&us, them).await;
    let f = frr_established(&frr, &lab.our_v6().to_string()).await;
    assert_eq!(f["portForeign"], 179, "FRR connected to us: {f}");
    // Now we connect (FRR passive), with the key on our outgoing socket.
    frr.configure(&[
        &format!("router bgp {FRR_AS}"),
        &format!("neighbor {} passive", lab.our_v6()),
    ])
    .unwrap();
    us.update_neighbor(neighbor(false)).await.unwrap();
    ours::established(&us, them).await;
    let f = frr_established(&frr, &lab.our_v6().to_string()).await;
    assert_eq!(f["portLocal"], 179, "we connected to FRR: {f}");
}
