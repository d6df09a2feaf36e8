//! BGP unnumbered: sessions on interfaces that have only IPv6 link-local
//! addresses, peers learned from Router Advertisements, IPv4 routes over IPv6
//! next hops (RFC 8950). Against FRR (`neighbor eth0 interface`) and between
//! two bgp-core speakers, in namespaces joined by one veth link with no
//! configured address at all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use bgp_core::fsm::State;
use bgp_core::policy::RouteMap;
use bgp_core::speaker::{InterfaceNeighbor, NeighborStatus, SpeakerConfig, SpeakerHandle};
use bgp_core::unnumbered::Discovery;
use bgp_core::wire::NextHop;
use podpeer_interop_tests::ours::{PATIENCE, attrs, net, route};
use podpeer_interop_tests::{
    FRR_BINARIES, Frr, Netns, NsSpeaker, eventually, skip_unless_runnable, veth,
};
use serde_json::Value;

const OUR_AS: u32 = 4_200_000_001;
const FRR_AS: u32 = 65002;

/// Joins `a` and `b` by `eth0` on both sides, no address configured: each end
/// has only the link-local address the kernel gives it.
fn link(a: &Netns, b: &Netns) {
    veth(a, "eth0", &[], b, "eth0", &[]).unwrap();
}

fn ifindex(ns: &Netns) -> u32 {
    let out = ns.ip(&["-o", "link", "show", "dev", "eth0"]).unwrap();
    out.split(':').next().unwrap().trim().parse().unwrap()
}

/// A loopback address for the routes' ends (the ping goes between these).
fn loopback(ns: &Netns, v4: &str, v6: &str) {
    ns.ip(&["addr", "add", v4, "dev", "lo"]).unwrap();
    ns.ip(&["addr", "add", v6, "dev", "lo"]).unwrap();
}

/// Our speaker in `ns` with an interface neighbor on `eth0`: accept-all
/// policies, hold time 9 s, advertisements every 3 s (as FRR is told below),
/// silent peers forgotten after 6 s.
async fn our_speaker(ns: &Netns, asn: u32, router_id: Ipv4Addr) -> (NsSpeaker, Instant) {
    // The discovery and the sessions, shown when a test fails (RUST_LOG
    // overrides).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("bgp_core=debug"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
    let mut config = SpeakerConfig::new(asn, router_id);
    config.listen = vec![SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 179)];
    let s = NsSpeaker::start(ns, config).unwrap();
    let start = Instant::now();
    let mut n = InterfaceNeighbor::new("eth0");
    n.template.import = Some(RouteMap::accept_all("in"));
    n.template.export = Some(RouteMap::accept_all("out"));
    n.template.hold_time = 9;
    n.template.connect_retry = Duration::from_secs(1);
    n.discovery = Discovery {
        interval: Duration::from_secs(3),
        expire_after: Duration::from_secs(6),
        ..Discovery::default()
    };
    s.add_interface_neighbor(n).await.unwrap();
    (s, start)
}

/// The established neighbor at `peer`, once it is.
async fn established_with(s: &SpeakerHandle, peer: Ipv6Addr) -> NeighborStatus {
    eventually(&format!("session with {peer}"), PATIENCE, || async {
        s.neighbors()
            .await
            .ok()?
            .into_iter()
            .find(|n| n.address == IpAddr::V6(peer) && n.state == State::Established)
    })
    .await
}

/// FRR's bgpd for an unnumbered peer on eth0, originating a v4 and a v6 route.
fn frr_config(asn: u32, router_id: &str, v4: &str, v6: &str) -> String {
    format!(
        "router bgp {asn}
 bgp router-id {router_id}
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor eth0 interface remote-as external
 neighbor eth0 timers 3 9
 neighbor eth0 timers connect 1
 neighbor eth0 advertisement-interval 0
 address-family ipv4 unicast
  network {v4}
 exit-address-family
 address-family ipv6 unicast
  network {v6}
  neighbor eth0 activate
 exit-address-family
exit
"
    )
}

/// Starts FRR in `ns`. FRR 8.4 needs nothing in zebra's configuration for
/// unnumbered peers: bgpd has zebra send Router Advertisements on the
/// interface by itself, and learns the peer from ours (lifetime 0).
fn start_frr(ns: &Netns, asn: u32, router_id: &str, v4: &str, v6: &str) -> Frr {
    Frr::start(ns, &frr_config(asn, router_id, v4, v6)).unwrap()
}

fn frr_established(frr: &Frr) -> bool {
    frr.established("eth0")
}

/// FRR's kernel route (zebra's RIB) for `prefix`.
fn frr_rib(frr: &Frr, prefix: &str) -> Option<Value> {
    let family = if prefix.contains(':') { "ipv6" } else { "ip" };
    let v = frr
        .json(&format!("show {family} route {prefix} json"))
        .ok()?;
    v.get(prefix)?.as_array()?.first().cloned()
}

/// Installs `prefix` via `gateway` on `ifindex` in `ns`'s main table with
/// podpeer-host's netlink, on a thread of that namespace.
fn install(ns: &Netns, prefix: &str, gateway: IpAddr, ifindex: u32) {
    let path = ns.path();
    let prefix = net(prefix);
    std::thread::spawn(move || {
        let f = std::fs::File::open(path).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let nl = podpeer_host::netlink::Netlink::connect().unwrap();
            let r = podpeer_host::netlink::Route {
                table: 254,
                prefix,
                next_hops: vec![podpeer_host::netlink::NextHop {
                    gateway,
                    ifindex: Some(ifindex),
                }],
            };
            for res in nl.replace_routes(&[r]).await {
                res.unwrap();
            }
        });
    })
    .join()
    .unwrap();
}

/// Whether `to` answers a ping from `from`, with a few tries: a lost first
/// packet on a loaded machine (or neighbor discovery just starting) is not a
/// failure.
fn ping(ns: &Netns, from: &str, to: &str) -> bool {
    (0..3).any(|_| {
        ns.exec(&["ping", "-c", "1", "-W", "1", "-I", from, to])
            .is_ok()
    })
}

/// Against FRR: the session comes up on link-local addresses only, IPv4 and
/// IPv6 routes go both ways, FRR installs ours with our link-local address as
/// next hop, ours installs FRR's (IPv4 via IPv6, RTA_VIA) and a ping crosses.
/// Also measures the time to Established beside FRR-to-FRR on the same link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_unnumbered_both_ways_and_ping() {
    skip_unless_runnable!(FRR_BINARIES);
    // FRR to FRR first: FRR in c, then FRR in d; time until both say Established.
    let frr_to_frr = {
        let c = Netns::new("c").unwrap();
        let d = Netns::new("d").unwrap();
        link(&c, &d);
        let _one = start_frr(
            &c,
            FRR_AS + 1,
            "10.200.3.1",
            "10.200.3.1/32",
            "2001:db8:3::/48",
        );
        let start = Instant::now();
        let two = start_frr(
            &d,
            FRR_AS + 2,
            "10.200.4.1",
            "10.200.4.1/32",
            "2001:db8:4::/48",
        );
        eventually("FRR to FRR", PATIENCE, || async {
            frr_established(&two).then_some(())
        })
        .await;
        start.elapsed()
    };

    let a = Netns::new("a").unwrap();
    let b = Netns::new("b").unwrap();
    link(&a, &b);
    loopback(&a, "10.200.1.1/32", "2001:db8:1::1/128");
    loopback(&b, "10.200.2.1/32", "2001:db8:2::1/128");
    let (our_ll, their_ll) = (a.link_local("eth0").unwrap(), b.link_local("eth0").unwrap());
    let frr = start_frr(&b, FRR_AS, "10.200.2.1", "10.200.2.1/32", "2001:db8:2::/48");
    let (us, start) = our_speaker(&a, OUR_AS, Ipv4Addr::new(10, 200, 1, 1)).await;
    let st = established_with(&us, their_ll).await;
    eventually("FRR established", PATIENCE, || async {
        frr_established(&frr).then_some(())
    })
    .await;
    let ours = start.elapsed();
    println!(
        "time to Established on a fresh unnumbered link: bgp-core to FRR {:.2} s, FRR to FRR {:.2} s",
        ours.as_secs_f64(),
        frr_to_frr.as_secs_f64()
    );
    assert!(
        st.remote_capabilities
            .iter()
            .any(|c| matches!(c, bgp_core::wire::Capability::ExtendedNextHop(_))),
        "FRR advertises extended next hop to an interface peer"
    );
    // Ours must not be much slower. Both are single runs on a shared
    // machine, so only a gross difference (a missed timer, a wait for a
    // retry) counts.
    assert!(
        ours <= frr_to_frr * 2 + Duration::from_secs(5),
        "bgp-core took {ours:?}, FRR {frr_to_frr:?}"
    );

    us.announce(net("10.200.1.1/32"), attrs(None, &[], &[]))
        .await
        .unwrap();
    us.announce(net("2001:db8:1::/48"), attrs(None, &[], &[]))
        .await
        .unwrap();

    // FRR's routes at ours: IPv4 with FRR's link-local address as next hop.
    let e = eventually("10.200.2.1/32 at ours", PATIENCE, || {
        route(&us, "10.200.2.1/32")
    })
    .await;
    let p = &e.paths[0];
    assert!(
        matches!(p.next_hop, Some(NextHop::V6 { global, link_local }) if global == their_ll || link_local == Some(their_ll)),
        "IPv4 via FRR's link-local address: {:?}",
        p.next_hop
    );
    let our_if = ifindex(&a);
    assert_eq!(p.gateway(), Some((IpAddr::V6(their_ll), Some(our_if))));
    let e6 = eventually("2001:db8:2::/48 at ours", PATIENCE, || {
        route(&us, "2001:db8:2::/48")
    })
    .await;
    assert_eq!(
        e6.paths[0].gateway(),
        Some((IpAddr::V6(their_ll), Some(our_if)))
    );

    // Ours at FRR: installed by zebra with our link-local address.
    let r = podpeer_interop_tests::ours::wait_daemon("10.200.1.1/32 installed by FRR", || {
        frr_rib(&frr, "10.200.1.1/32").filter(|r| r["installed"] == Value::Bool(true))
    })
    .await;
    let nh = &r["nexthops"][0];
    assert_eq!(nh["interfaceName"], "eth0", "{r}");
    assert_eq!(nh["afi"], "ipv6", "IPv4 route over an IPv6 next hop: {r}");
    assert_eq!(nh["ip"], our_ll.to_string(), "{r}");
    let r6 = podpeer_interop_tests::ours::wait_daemon("2001:db8:1::/48 installed by FRR", || {
        frr_rib(&frr, "2001:db8:1::/48").filter(|r| r["installed"] == Value::Bool(true))
    })
    .await;
    assert_eq!(r6["nexthops"][0]["ip"], our_ll.to_string(), "{r6}");

    // Our side installs FRR's route the way a FIB would (RTA_VIA), and a ping
    // crosses the link that has no IPv4 address.
    let (gw, ifx) = p.gateway().unwrap();
    install(&a, "10.200.2.1/32", gw, ifx.unwrap());
    let kernel = a.ip(&["route", "show", "10.200.2.1/32"]).unwrap();
    assert!(kernel.contains("via inet6 fe80"), "{kernel}");
    assert!(
        ping(&a, "10.200.1.1", "10.200.2.1"),
        "ping over IPv4 via IPv6 next hops"
    );

    // FRR's interface comes back with another MAC and link-local address:
    // ours follows without reconfiguration.
    b.ip(&["link", "set", "eth0", "down"]).unwrap();
    b.ip(&["link", "set", "eth0", "address", "02:00:00:00:6e:0b"])
        .unwrap();
    b.ip(&["link", "set", "eth0", "up"]).unwrap();
    let moved = Instant::now();
    let their_new = b.link_local("eth0").unwrap();
    assert_ne!(their_new, their_ll);
    established_with(&us, their_new).await;
    eventually("FRR established again", PATIENCE, || async {
        frr_established(&frr).then_some(())
    })
    .await;
    println!(
        "session with FRR back after its address change in {:.2} s",
        moved.elapsed().as_secs_f64()
    );
    eventually("10.200.2.1/32 via FRR's new address", PATIENCE, || async {
        route(&us, "10.200.2.1/32").await.filter(|e| {
            e.paths
                .iter()
                .all(|p| p.gateway() == Some((IpAddr::V6(their_new), Some(our_if))))
        })
    })
    .await;
}

/// Two bgp-core speakers unnumbered to each other; then one peer's link-local
/// address and MAC change (its interface goes down, gets a new MAC, comes
/// back) and the session comes back on the new address by itself, at once
/// (both ends end the old session when the link goes down), while the old
/// neighbor goes away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_speakers_follow_an_address_change() {
    skip_unless_runnable!(&[] as &[&str]);
    let c = Netns::new("c").unwrap();
    let d = Netns::new("d").unwrap();
    link(&c, &d);
    let (c_ll, d_ll) = (c.link_local("eth0").unwrap(), d.link_local("eth0").unwrap());
    let (sc, start) = our_speaker(&c, OUR_AS, Ipv4Addr::new(10, 200, 5, 1)).await;
    let (sd, _) = our_speaker(&d, OUR_AS + 1, Ipv4Addr::new(10, 200, 6, 1)).await;
    established_with(&sc, d_ll).await;
    established_with(&sd, c_ll).await;
    println!(
        "time to Established, bgp-core to bgp-core: {:.2} s",
        start.elapsed().as_secs_f64()
    );
    sc.announce(net("10.200.5.1/32"), attrs(None, &[], &[]))
        .await
        .unwrap();
    sd.announce(net("10.200.6.1/32"), attrs(None, &[], &[]))
        .await
        .unwrap();
    sd.announce(net("2001:db8:6::/48"), attrs(None, &[], &[]))
        .await
        .unwrap();
    let e = eventually("10.200.6.1/32 at c", PATIENCE, || {
        route(&sc, "10.200.6.1/32")
    })
    .await;
    assert_eq!(
        e.paths[0].next_hop,
        Some(NextHop::V6 {
            global: d_ll,
            link_local: None
        })
    );
    assert_eq!(
        e.paths[0].gateway(),
        Some((IpAddr::V6(d_ll), Some(ifindex(&c))))
    );
    let e = eventually("10.200.5.1/32 at d", PATIENCE, || {
        route(&sd, "10.200.5.1/32")
    })
    .await;
    assert_eq!(
        e.paths[0].gateway(),
        Some((IpAddr::V6(c_ll), Some(ifindex(&d))))
    );
    eventually("2001:db8:6::/48 at c", PATIENCE, || {
        route(&sc, "2001:db8:6::/48")
    })
    .await;

    // d's interface comes back with another MAC, hence another link-local address.
    d.ip(&["link", "set", "eth0", "down"]).unwrap();
    d.ip(&["link", "set", "eth0", "address", "02:00:00:00:6e:02"])
        .unwrap();
    d.ip(&["link", "set", "eth0", "up"]).unwrap();
    let moved = Instant::now();
    let d_new = d.link_local("eth0").unwrap();
    assert_ne!(d_new, d_ll);
    established_with(&sc, d_new).await;
    let back = moved.elapsed();
    println!(
        "session back after the peer's address change in {:.2} s",
        back.as_secs_f64()
    );
    // Both ends saw the link go down and ended the old session at once (fast
    // failover). The hold timer (9 s, the last keepalive at most 3 s before
    // the flap) could not have ended it in less than 6 s.
    assert!(
        back < Duration::from_secs(5),
        "back after {back:?}: the old session waited for its hold timer"
    );
    established_with(&sd, c_ll).await;
    let e = eventually("10.200.6.1/32 via the new address", PATIENCE, || async {
        route(&sc, "10.200.6.1/32").await.filter(|e| {
            e.paths
                .iter()
                .all(|p| p.gateway().is_some_and(|(gw, _)| gw == IpAddr::V6(d_new)))
        })
    })
    .await;
    assert_eq!(e.paths.len(), 1);
    // The old address's neighbor is gone once its session ended.
    eventually("old neighbor removed", PATIENCE, || async {
        let ns = sc.neighbors().await.ok()?;
        (!ns.iter().any(|n| n.address == IpAddr::V6(d_ll))).then_some(())
    })
    .await;
}

/// A link-local dynamic range (`fe80::/10` on an interface, which FRR
/// refuses): connections from link-local addresses on that interface become
/// neighbors, those on another interface do not. The connecting side is a
/// plain neighbor configured with the link-local address and the interface.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_local_dynamic_range() {
    skip_unless_runnable!(&[] as &[&str]);
    let c = Netns::new("c").unwrap();
    let d = Netns::new("d").unwrap();
    link(&c, &d);
    let (c_ll, d_ll) = (c.link_local("eth0").unwrap(), d.link_local("eth0").unwrap());
    let speaker = |ns: &Netns, asn, id| {
        let mut config = SpeakerConfig::new(asn, id);
        config.listen = vec![SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 179)];
        NsSpeaker::start(ns, config).unwrap()
    };
    let sc = speaker(&c, OUR_AS, Ipv4Addr::new(10, 200, 7, 1));
    let sd = speaker(&d, OUR_AS + 1, Ipv4Addr::new(10, 200, 8, 1));
    let range = |interface: &str| {
        let mut t = bgp_core::speaker::NeighborConfig::new(
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            bgp_core::fsm::RemoteAs::External,
        );
        t.bind_interface = Some(interface.into());
        t.import = Some(RouteMap::accept_all("in"));
        t.export = Some(RouteMap::accept_all("out"));
        t.extended_next_hop = true;
        bgp_core::speaker::DynamicRange {
            prefix: net("fe80::/10"),
            template: t,
            limit: 8,
        }
    };
    // First a range on another interface: not admitted.
    sc.add_dynamic_range(range("lo")).await.unwrap();
    let mut n =
        bgp_core::speaker::NeighborConfig::new(IpAddr::V6(c_ll), bgp_core::fsm::RemoteAs::External);
    n.bind_interface = Some("eth0".into());
    n.connect_retry = Duration::from_secs(1);
    n.import = Some(RouteMap::accept_all("in"));
    n.export = Some(RouteMap::accept_all("out"));
    n.extended_next_hop = true;
    sd.add_neighbor(n).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        sc.neighbors().await.unwrap().is_empty(),
        "a range on lo admits nobody on eth0"
    );
    sc.remove_dynamic_range(net("fe80::/10")).await.unwrap();
    sc.add_dynamic_range(range("eth0")).await.unwrap();
    let st = established_with(&sc, d_ll).await;
    assert_eq!(st.dynamic_range, Some(net("fe80::/10")));
    established_with(&sd, c_ll).await;
    sd.announce(net("10.200.8.1/32"), attrs(None, &[], &[]))
        .await
        .unwrap();
    let e = eventually("10.200.8.1/32 at c", PATIENCE, || {
        route(&sc, "10.200.8.1/32")
    })
    .await;
    assert_eq!(
        e.paths[0].gateway(),
        Some((IpAddr::V6(d_ll), Some(ifindex(&c))))
    );
}

/// Several peers on one link (a bridge): each speaker learns both others and
/// has a session with each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_peers_on_a_bridge() {
    skip_unless_runnable!(&[] as &[&str]);
    let hub = Netns::new("hub").unwrap();
    hub.ip(&["link", "add", "br0", "type", "bridge"]).unwrap();
    hub.ip(&["link", "set", "br0", "up"]).unwrap();
    let nss: Vec<Netns> = ["c", "d", "e"]
        .iter()
        .map(|t| Netns::new(t).unwrap())
        .collect();
    for (i, ns) in nss.iter().enumerate() {
        let port = format!("port{i}");
        veth(ns, "eth0", &[], &hub, &port, &[]).unwrap();
        hub.ip(&["link", "set", &port, "master", "br0"]).unwrap();
    }
    let lls: Vec<Ipv6Addr> = nss
        .iter()
        .map(|ns| ns.link_local("eth0").unwrap())
        .collect();
    let mut speakers = Vec::new();
    for (i, ns) in nss.iter().enumerate() {
        let id = Ipv4Addr::new(10, 200, 9, i as u8 + 1);
        speakers.push(our_speaker(ns, OUR_AS + i as u32, id).await.0);
    }
    for (i, s) in speakers.iter().enumerate() {
        for (j, ll) in lls.iter().enumerate() {
            if i != j {
                established_with(s, *ll).await;
            }
        }
        assert_eq!(s.neighbors().await.unwrap().len(), 2);
    }
}
