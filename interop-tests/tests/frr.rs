//! bgp-core against FRR (zebra + bgpd), each test in its own pair of network
//! namespaces: our speaker in one, FRR in the other, one veth link between.
//! Each test checks our view (the SpeakerHandle) and FRR's (vtysh JSON).

// A failed expectation in a test is a panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bgp_core::fsm::{RemoteAs, State};
use bgp_core::policy::RouteMap;
use bgp_core::speaker::{DynamicRange, MaxPrefixes};
use podpeer_interop_tests::ours::{self, PATIENCE, asns, attrs, net, status, wait_daemon};
use podpeer_interop_tests::{FRR_BINARIES, Frr, Lab, NsSpeaker, eventually, skip_unless_runnable};
use serde_json::Value;

const OUR_AS: u32 = 65001;
const FRR_AS: u32 = 65002;

/// FRR's bgpd configuration: AS `asn`, us as neighbor with `remote-as
/// {peer_as}` and the `neighbor` lines given (`{us}` replaced by our address),
/// IPv4 and IPv6 unicast activated, and `networks` originated with route-map
/// SET4 or SET6 (MED, communities, large community, LOCAL_PREF for iBGP).
fn frr_config(lab: &Lab, asn: u32, peer_as: &str, neighbor: &[&str], networks: &[&str]) -> String {
    let us = lab.our_v4();
    let mut c = format!(
        "route-map SET4 permit 10
 set metric 50
 set community 65002:200
 set large-community 65002:3:4
 set local-preference 300
exit
route-map SET6 permit 10
 set metric 60
 set community 65002:600
 set local-preference 300
exit
router bgp {asn}
 bgp router-id {them}
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor {us} remote-as {peer_as}
 neighbor {us} timers connect 1
 neighbor {us} advertisement-interval 0
",
        them = lab.their_v4()
    );
    for line in neighbor {
        c += &format!(" {}\n", line.replace("{us}", &us.to_string()));
    }
    for (family, map) in [("ipv4", "SET4"), ("ipv6", "SET6")] {
        c += &format!(" address-family {family} unicast\n");
        for n in networks
            .iter()
            .filter(|n| n.contains(':') == (family == "ipv6"))
        {
            c += &format!("  network {n} route-map {map}\n");
        }
        c += &format!(
            "  neighbor {us} activate\n  neighbor {us} send-community all\n exit-address-family\n"
        );
    }
    c + "exit\n"
}

/// FRR's paths for `prefix` once it has some.
async fn frr_has(frr: &Frr, prefix: &str) -> Vec<Value> {
    wait_daemon(&format!("{prefix} at FRR"), || {
        frr.paths(prefix).ok().filter(|p| !p.is_empty())
    })
    .await
}

/// Waits until FRR no longer has `prefix`.
async fn frr_lacks(frr: &Frr, prefix: &str) {
    wait_daemon(&format!("{prefix} gone at FRR"), || {
        frr.paths(prefix).ok().filter(|p| p.is_empty()).map(drop)
    })
    .await
}

/// FRR's neighbor object for us once Established.
async fn frr_established(frr: &Frr, lab: &Lab) -> Value {
    let us = lab.our_v4().to_string();
    wait_daemon("FRR's session Established", || {
        frr.neighbor(&us)
            .ok()
            .filter(|n| n["bgpState"] == "Established")
    })
    .await
}

fn counter(n: &Value, name: &str) -> u64 {
    n["messageStats"][name].as_u64().unwrap_or(0)
}

/// MP-BGP over one IPv4 session, our neighbor configured `RemoteAs::External`
/// (FRR's AS learned from its OPEN); routes both ways with MED, communities
/// and large communities intact; withdrawals both ways.
#[tokio::test]
async fn ebgp_ipv4_and_ipv6_routes_with_attributes_and_withdrawals() {
    skip_unless_runnable!(FRR_BINARIES);
    let lab = Lab::new(1).unwrap();
    let frr = Frr::start(
        &lab.theirs,
        &frr_config(
            &lab,
            FRR_AS,
            &OUR_AS.to_string(),
            &[],
            &["203.0.113.0/24", "2001:db8:200::/48"],
        ),
    )
    .unwrap();
    let us = NsSpeaker::start(&lab.ours, ours::speaker_config(&lab, OUR_AS)).unwrap();
    us.add_neighbor(ours::neighbor(&lab, RemoteAs::External))
        .await
        .unwrap();

    // Our view: Established, FRR's AS learned, both families negotiated.
    let st = ours::established(&us, lab.their_ip()).await;
    assert_eq!(st.remote_as, Some(FRR_AS), "AS learned from the OPEN");
    assert_eq!(st.remote_id, Some(lab.their_v4()));
    assert!(
        st.families.contains(&bgp_core::wire::AfiSafi::IPV4_UNICAST),
        "{:?}",
        st.families
    );
    assert!(
        st.families.contains(&bgp_core::wire::AfiSafi::IPV6_UNICAST),
        "{:?}",
        st.families
    );
    // FRR's view: Established, both families advertised and received.
    let n = frr_established(&frr, &lab).await;
    assert_eq!(n["remoteAs"], OUR_AS);
    for family in ["ipv4Unicast", "ipv6Unicast"] {
        assert_eq!(
            n["neighborCapabilities"]["multiprotocolExtensions"][family]["advertisedAndReceived"],
            true,
            "{family}: {n}"
        );
    }

    // Our routes at FRR, attributes intact.
    us.announce(
        net("198.51.100.0/24"),
        attrs(Some(20), &[(65001, 100)], &[(65001, 1, 2)]),
    )
    .await
    .unwrap();
    us.announce(
        net("2001:db8:100::/48"),
        attrs(Some(21), &[(65001, 101)], &[(65001, 1, 3)]),
    )
    .await
    .unwrap();
    for (prefix, med, community, large, next_hop) in [
        (
            "198.51.100.0/24",
            20,
            "65001:100",
            "65001:1:2",
            lab.our_v4().to_string(),
        ),
        (
            "2001:db8:100::/48",
            21,
            "65001:101",
            "65001:1:3",
            lab.our_v6().to_string(),
        ),
    ] {
        let p = &frr_has(&frr, prefix).await[0];
        assert_eq!(p["aspath"]["string"], "65001", "{prefix}: {p}");
        assert_eq!(p["metric"], med, "{prefix}: {p}");
        assert_eq!(p["community"]["string"], community, "{prefix}: {p}");
        assert_eq!(p["largeCommunity"]["string"], large, "{prefix}: {p}");
        assert_eq!(p["nexthops"][0]["ip"], next_hop.as_str(), "{prefix}: {p}");
        assert_eq!(p["valid"], true, "{prefix}: {p}");
    }

    // FRR's routes at ours, attributes intact.
    ours::check_daemon_routes(&us, &lab, FRR_AS).await;

    // Our withdrawals reach FRR.
    us.withdraw(net("198.51.100.0/24")).await.unwrap();
    us.withdraw(net("2001:db8:100::/48")).await.unwrap();
    frr_lacks(&frr, "198.51.100.0/24").await;
    frr_lacks(&frr, "2001:db8:100::/48").await;

    // FRR's withdrawals reach us.
    frr.configure(&[
        &format!("router bgp {FRR_AS}"),
        "address-family ipv4 unicast",
        "no network 203.0.113.0/24",
        "exit-address-family",
        "address-family ipv6 unicast",
        "no network 2001:db8:200::/48",
        "exit-address-family",
    ])
    .unwrap();
    ours::wait_no_route(&us, "203.0.113.0/24").await;
    ours::wait_no_route(&us, "2001:db8:200::/48").await;
    assert_eq!(
        ours::status(&us, lab.their_ip()).await.unwrap().state,
        State::Established
    );
}

/// iBGP (same AS both sides): LOCAL_PREF passes intact both ways.
#[tokio::test]
async fn ibgp_local_pref_passes_intact() {
    skip_unless_runnable!(FRR_BINARIES);
    let lab = Lab::new(2).unwrap();
    let frr = Frr::start(
        &lab.theirs,
        &frr_config(&lab, OUR_AS, "internal", &[], &["203.0.113.0/24"]),
    )
    .unwrap();
    let us = NsSpeaker::start(&lab.ours, ours::speaker_config(&lab, OUR_AS)).unwrap();
    let mut n = ours::neighbor(&lab, RemoteAs::Internal);
    // Internal: no policy needed (RFC 8212 is about external peers).
    n.import = None;
    n.export = None;
    us.add_neighbor(n).await.unwrap();
    let st = ours::established(&us, lab.their_ip()).await;
    assert_eq!(st.remote_as, Some(OUR_AS));
    let n = frr_established(&frr, &lab).await;
    assert_eq!(n["nbrInternalLink"], true, "{n}");

    let mut a = attrs(Some(20), &[(65001, 100)], &[]);
    a.local_pref = Some(250);
    us.announce(net("198.51.100.0/24"), a).await.unwrap();
    let p = &frr_has(&frr, "198.51.100.0/24").await[0];
    assert_eq!(p["locPrf"], 250, "{p}");
    assert_eq!(p["aspath"]["length"], 0, "no prepend over iBGP: {p}");
    assert_eq!(p["peer"]["type"], "internal", "{p}");

    let e = ours::wait_route(&us, "203.0.113.0/24").await;
    let a = &e.paths[0].attrs.attributes;
    assert_eq!(a.local_pref, Some(300));
    assert_eq!(asns(a.as_path.as_ref()), Vec::<u32>::new());
    assert_eq!(a.med, Some(50));
}

/// Our dynamic range accepts FRR's connection: no static neighbor on our side,
/// FRR connects, routes flow both ways.
#[tokio::test]
async fn dynamic_range_accepts_the_daemons_connection() {
    skip_unless_runnable!(FRR_BINARIES);
    let lab = Lab::new(3).unwrap();
    let frr = Frr::start(
        &lab.theirs,
        &frr_config(&lab, FRR_AS, &OUR_AS.to_string(), &[], &["203.0.113.0/24"]),
    )
    .unwrap();
    let us = NsSpeaker::start(&lab.ours, ours::speaker_config(&lab, OUR_AS)).unwrap();
    us.announce(net("198.51.100.0/24"), attrs(None, &[], &[]))
        .await
        .unwrap();
    us.add_dynamic_range(DynamicRange {
        prefix: lab.subnet_v4(),
        template: ours::neighbor(&lab, RemoteAs::External),
        limit: 4,
    })
    .await
    .unwrap();
    let st = ours::established(&us, lab.their_ip()).await;
    assert_eq!(st.dynamic_range, Some(lab.subnet_v4()));
    assert_eq!(st.remote_as, Some(FRR_AS));
    let n = frr_established(&frr, &lab).await;
    assert_eq!(n["portForeign"], 179, "FRR connected to us: {n}");
    ours::wait_route(&us, "203.0.113.0/24").await;
    frr_has(&frr, "198.51.100.0/24").await;
}

/// Route refresh. FRR asks (`clear bgp ADDR soft in`, one ROUTE-REFRESH per
/// family): we answer with the whole Adj-RIB-Out (between BoRR and EoRR) and
/// FRR's table is complete again. We ask (a new import policy, no
/// soft-reconfiguration copy): FRR receives the request.
#[tokio::test]
async fn route_refresh_both_ways() {
    skip_unless_runnable!(FRR_BINARIES);
    let lab = Lab::new(4).unwrap();
    let frr = Frr::start(
        &lab.theirs,
        &frr_config(
            &lab,
            FRR_AS,
            &OUR_AS.to_string(),
            &[],
            &["203.0.113.0/24", "2001:db8:200::/48"],
        ),
    )
    .unwrap();
    let us = NsSpeaker::start(&lab.ours, ours::speaker_config(&lab, OUR_AS)).unwrap();
    us.add_neighbor(ours::neighbor(&lab, RemoteAs::External))
        .await
        .unwrap();
    ours::established(&us, lab.their_ip()).await;
    let prefixes = ["198.51.100.0/25", "198.51.100.128/25", "2001:db8:100::/48"];
    for p in prefixes {
        us.announce(net(p), attrs(Some(7), &[(65001, 7)], &[]))
            .await
            .unwrap();
    }
    for p in prefixes {
        frr_has(&frr, p).await;
    }
    let me = lab.our_v4().to_string();
    let before = frr.neighbor(&me).unwrap();
    frr.vtysh(&[&format!("clear bgp {me} soft in")]).unwrap();
    let after = wait_daemon("FRR to send ROUTE-REFRESH and get UPDATEs back", || {
        frr.neighbor(&me).ok().filter(|n| {
            counter(n, "routeRefreshSent") >= counter(&before, "routeRefreshSent") + 2
                && counter(n, "updatesRecv") >= counter(&before, "updatesRecv") + 2
        })
    })
    .await;
    assert_eq!(after["bgpState"], "Established");
    // Enhanced route refresh: whatever was not sent again between BoRR and EoRR
    // is dropped at EoRR. Everything must still be there after it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for p in prefixes {
        let paths = frr.paths(p).unwrap();
        assert_eq!(paths.len(), 1, "{p} after the refresh: {paths:?}");
        assert_eq!(paths[0]["metric"], 7);
    }
    let v6 = &frr.paths("2001:db8:100::/48").unwrap()[0];
    assert_eq!(
        v6["nexthops"][0]["ip"],
        lab.our_v6().to_string().as_str(),
        "{v6}"
    );
    assert_eq!(
        status(&us, lab.their_ip()).await.unwrap().state,
        State::Established
    );

    // We ask FRR: one ROUTE-REFRESH per family. FRR 8.4 takes them but
    // answers a peer that has enhanced route refresh only after it has sent
    // that peer an End-of-RIB, which it sends only to peers with the graceful
    // restart capability: without it (this speaker is configured without
    // graceful restart) the answer never comes (fixed in later FRR), so only
    // the request is checked here. With graceful restart configured FRR
    // answers; tests/graceful_restart.rs checks that.
    ours::wait_route(&us, "203.0.113.0/24").await;
    ours::wait_route(&us, "2001:db8:200::/48").await;
    let n0 = frr.neighbor(&me).unwrap();
    us.set_policy(
        lab.their_ip(),
        Some(RouteMap::accept_all("in2")),
        Some(RouteMap::accept_all("out")),
    )
    .await
    .unwrap();
    wait_daemon("FRR to receive our ROUTE-REFRESH", || {
        let n = frr.neighbor(&me).ok()?;
        (counter(&n, "routeRefreshRecv") >= counter(&n0, "routeRefreshRecv") + 2).then_some(())
    })
    .await;
    ours::wait_route(&us, "203.0.113.0/24").await;
    ours::wait_route(&us, "2001:db8:200::/48").await;
    assert_eq!(
        status(&us, lab.their_ip()).await.unwrap().state,
        State::Established
    );
    assert_eq!(frr.neighbor(&me).unwrap()["bgpState"], "Established");
}

/// Our max-prefix limit: FRR announces more than we allow, we close with Cease
/// / Maximum Number of Prefixes Reached, and FRR shows that NOTIFICATION.
#[tokio::test]
async fn max_prefix_cease_is_seen_by_the_daemon() {
    skip_unless_runnable!(FRR_BINARIES);
    let lab = Lab::new(5).unwrap();
    let nets = [
        "203.0.113.0/26",
        "203.0.113.64/26",
        "203.0.113.128/26",
        "203.0.113.192/26",
    ];
    let frr = Frr::start(
        &lab.theirs,
        &frr_config(&lab, FRR_AS, &OUR_AS.to_string(), &[], &nets),
    )
    .unwrap();
    let us = NsSpeaker::start(&lab.ours, ours::speaker_config(&lab, OUR_AS)).unwrap();
    let mut n = ours::neighbor(&lab, RemoteAs::External);
    n.max_prefixes = Some(MaxPrefixes {
        limit: 2,
        warning_only: false,
        restart: None,
    });
    us.add_neighbor(n).await.unwrap();
    let st = eventually("our Cease for too many prefixes", PATIENCE, || async {
        status(&us, lab.their_ip()).await.filter(|s| {
            s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("Maximum Number of Prefixes"))
        })
    })
    .await;
    assert_ne!(st.state, State::Established);
    let me = lab.our_v4().to_string();
    let n = wait_daemon("FRR to record the NOTIFICATION", || {
        frr.neighbor(&me).ok().filter(|n| {
            n["lastNotificationReason"]
                .as_str()
                .is_some_and(|r| r.contains("Maximum Number of Prefixes Reached"))
        })
    })
    .await;
    assert!(counter(&n, "notificationsRecv") >= 1, "{n}");
    assert!(
        n["lastResetDueTo"]
            .as_str()
            .is_some_and(|r| r.contains("Notification received")),
        "{n}"
    );
    // Without a restart time we stay down: no routes, FRR not Established.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for p in nets {
        assert!(ours::route(&us, p).await.is_none(), "{p} still in our RIB");
    }
    assert_ne!(frr.neighbor(&me).unwrap()["bgpState"], "Established");
    assert_ne!(
        status(&us, lab.their_ip()).await.unwrap().state,
        State::Established
    );
}

/// FRR freezes (SIGSTOP): after 3 s we send Hold Timer Expired, drop the session
/// and FRR's routes. FRR resumes (SIGCONT): the session and routes come back.
#[tokio::test]
async fn hold_timer_expiry_and_recovery() {
    skip_unless_runnable!(FRR_BINARIES);
    let lab = Lab::new(6).unwrap();
    let frr = Frr::start(
        &lab.theirs,
        &frr_config(
            &lab,
            FRR_AS,
            &OUR_AS.to_string(),
            &["neighbor {us} timers 1 3"],
            &["203.0.113.0/24"],
        ),
    )
    .unwrap();
    let us = NsSpeaker::start(&lab.ours, ours::speaker_config(&lab, OUR_AS)).unwrap();
    ours::peer_with_short_hold_time(&us, &lab).await;
    frr_has(&frr, "198.51.100.0/24").await;

    ours::expect_hold_timer_expiry(&us, &lab, || frr.pause().unwrap()).await;

    frr.resume().unwrap();
    ours::established(&us, lab.their_ip()).await;
    ours::wait_route(&us, "203.0.113.0/24").await;
    let n = frr_established(&frr, &lab).await;
    assert!(
        n["connectionsEstablished"].as_u64().unwrap_or(0) >= 2,
        "{n}"
    );
    frr_has(&frr, "198.51.100.0/24").await;
}
