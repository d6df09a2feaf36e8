//! bgp-core against GoBGP, each test in its own pair of network namespaces:
//! our speaker in one, gobgpd in the other, one veth link between. Each test
//! checks our view (the SpeakerHandle) and GoBGP's (`gobgp -j`).

// A failed expectation in a test is a panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bgp_core::fsm::{RemoteAs, State};
use bgp_core::policy::RouteMap;
use bgp_core::speaker::{DynamicRange, MaxPrefixes};
use bgp_core::wire::{AfiSafi, Community};
use podpeer_interop_tests::gobgp::attr;
use podpeer_interop_tests::ours::{self, PATIENCE, asns, attrs, net, status, wait_daemon};
use podpeer_interop_tests::{
    GOBGP_BINARIES, Gobgp, Lab, NsSpeaker, eventually, skip_unless_runnable,
};
use serde_json::{Value, json};

const OUR_AS: u32 = 65001;
const GOBGP_AS: u32 = 65002;

/// gobgpd's configuration: AS `asn`, us as neighbor in `peer_as`, IPv4 and
/// IPv6 unicast, hold time `hold` (keepalive a third of it), retries after 1 s.
fn gobgp_config(lab: &Lab, asn: u32, peer_as: u32, hold: u32) -> String {
    format!(
        r#"[global.config]
  as = {asn}
  router-id = "{them}"
  port = 179

[[neighbors]]
  [neighbors.config]
    neighbor-address = "{us}"
    peer-as = {peer_as}
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = {hold}
    keepalive-interval = {keepalive}
    idle-hold-time-after-reset = 1
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
"#,
        them = lab.their_v4(),
        us = lab.our_v4(),
        keepalive = (hold / 3).max(1),
    )
}

/// Adds routes to GoBGP's global RIB: IPv4 with MED 50, community 65002:200
/// and large community 65002:3:4; IPv6 (next hop our address) with MED 60 and
/// community 65002:600; `extra` arguments appended (e.g. `local-pref 300`).
fn gobgp_announce(g: &Gobgp, lab: &Lab, prefixes: &[&str], extra: &[&str]) {
    let them6 = lab.their_v6().to_string();
    for p in prefixes {
        let mut args = vec!["global", "rib"];
        if p.contains(':') {
            args.extend([
                "-a", "ipv6", "add", p, "origin", "igp", "nexthop", &them6, "med", "60",
            ]);
            args.extend(["community", "65002:600"]);
        } else {
            args.extend([
                "-a",
                "ipv4",
                "add",
                p,
                "origin",
                "igp",
                "med",
                "50",
                "community",
                "65002:200",
            ]);
            args.extend(["large-community", "65002:3:4"]);
        }
        args.extend(extra);
        g.cli(&args).unwrap();
    }
}

/// GoBGP's path for `prefix` learned from us, once it has one.
async fn gobgp_has(g: &Gobgp, lab: &Lab, prefix: &str) -> Value {
    let us = lab.our_v4().to_string();
    wait_daemon(&format!("{prefix} at GoBGP"), || {
        g.paths(prefix)
            .ok()?
            .into_iter()
            .find(|p| p["neighbor-ip"] == us.as_str())
    })
    .await
}

async fn gobgp_lacks(g: &Gobgp, lab: &Lab, prefix: &str) {
    let us = lab.our_v4().to_string();
    wait_daemon(&format!("{prefix} gone at GoBGP"), || {
        let paths = g.paths(prefix).ok()?;
        paths
            .iter()
            .all(|p| p["neighbor-ip"] != us.as_str())
            .then_some(())
    })
    .await
}

async fn gobgp_established(g: &Gobgp, lab: &Lab) -> Value {
    let us = lab.our_v4().to_string();
    wait_daemon("GoBGP's session Established", || {
        g.neighbor(&us)
            .ok()
            .filter(|n| n["state"]["session_state"] == 6)
    })
    .await
}

fn messages(n: &Value, direction: &str, kind: &str) -> u64 {
    n["state"]["messages"][direction][kind]
        .as_u64()
        .unwrap_or(0)
}

/// The AS numbers of a GoBGP path's AS_PATH.
fn gobgp_asns(path: &Value) -> Vec<u64> {
    attr(path, 2)
        .and_then(|a| a["as_paths"].as_array())
        .map(|segs| {
            segs.iter()
                .flat_map(|s| s["asns"].as_array().cloned().unwrap_or_default())
                .filter_map(|a| a.as_u64())
                .collect()
        })
        .unwrap_or_default()
}

/// MP-BGP over one IPv4 session, our neighbor configured `RemoteAs::External`
/// (GoBGP's AS learned from its OPEN); routes both ways with MED, communities
/// and large communities intact; withdrawals both ways.
#[tokio::test]
async fn ebgp_ipv4_and_ipv6_routes_with_attributes_and_withdrawals() {
    skip_unless_runnable!(GOBGP_BINARIES);
    let lab = Lab::new(21).unwrap();
    let g = Gobgp::start(&lab.theirs, &gobgp_config(&lab, GOBGP_AS, OUR_AS, 9)).unwrap();
    gobgp_announce(&g, &lab, &["203.0.113.0/24", "2001:db8:200::/48"], &[]);
    let us = NsSpeaker::start(&lab.ours, ours::speaker_config(&lab, OUR_AS)).unwrap();
    us.add_neighbor(ours::neighbor(&lab, RemoteAs::External))
        .await
        .unwrap();

    let st = ours::established(&us, lab.their_ip()).await;
    assert_eq!(st.remote_as, Some(GOBGP_AS), "AS learned from the OPEN");
    assert!(
        st.families.contains(&AfiSafi::IPV4_UNICAST),
        "{:?}",
        st.families
    );
    assert!(
        st.families.contains(&AfiSafi::IPV6_UNICAST),
        "{:?}",
        st.families
    );
    let n = gobgp_established(&g, &lab).await;
    let mp = |caps: &Value| {
        caps.as_array()
            .map(|c| {
                c.iter()
                    .filter(|c| {
                        c["type_url"]
                            .as_str()
                            .is_some_and(|t| t.ends_with("MultiProtocolCapability"))
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(
        mp(&n["state"]["remote_cap"]),
        2,
        "we offered IPv4 and IPv6 unicast: {n}"
    );

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
    let p = gobgp_has(&g, &lab, "198.51.100.0/24").await;
    assert_eq!(gobgp_asns(&p), vec![u64::from(OUR_AS)], "{p}");
    assert_eq!(
        attr(&p, 3).map(|a| &a["nexthop"]),
        Some(&json!(lab.our_v4().to_string())),
        "{p}"
    );
    assert_eq!(attr(&p, 4).map(|a| &a["metric"]), Some(&json!(20)), "{p}");
    assert_eq!(
        attr(&p, 8).map(|a| &a["communities"]),
        Some(&json!([Community::new(65001, 100).0])),
        "{p}"
    );
    assert_eq!(
        attr(&p, 32).map(|a| &a["value"]),
        Some(&json!([{"ASN": 65001, "LocalData1": 1, "LocalData2": 2}])),
        "{p}"
    );
    let p = gobgp_has(&g, &lab, "2001:db8:100::/48").await;
    assert_eq!(gobgp_asns(&p), vec![u64::from(OUR_AS)], "{p}");
    assert_eq!(
        attr(&p, 14).map(|a| &a["nexthop"]),
        Some(&json!(lab.our_v6().to_string())),
        "{p}"
    );
    assert_eq!(attr(&p, 4).map(|a| &a["metric"]), Some(&json!(21)), "{p}");
    assert_eq!(
        attr(&p, 8).map(|a| &a["communities"]),
        Some(&json!([Community::new(65001, 101).0])),
        "{p}"
    );
    assert_eq!(
        attr(&p, 32).map(|a| &a["value"]),
        Some(&json!([{"ASN": 65001, "LocalData1": 1, "LocalData2": 3}])),
        "{p}"
    );
    // Both families carry routes on the one session.
    let n = g.neighbor(&lab.our_v4().to_string()).unwrap();
    for f in n["afi_safis"].as_array().unwrap() {
        assert!(f["state"]["received"].as_u64().unwrap_or(0) >= 1, "{f}");
    }

    ours::check_daemon_routes(&us, &lab, GOBGP_AS).await;

    us.withdraw(net("198.51.100.0/24")).await.unwrap();
    us.withdraw(net("2001:db8:100::/48")).await.unwrap();
    gobgp_lacks(&g, &lab, "198.51.100.0/24").await;
    gobgp_lacks(&g, &lab, "2001:db8:100::/48").await;

    g.cli(&["global", "rib", "-a", "ipv4", "del", "203.0.113.0/24"])
        .unwrap();
    g.cli(&["global", "rib", "-a", "ipv6", "del", "2001:db8:200::/48"])
        .unwrap();
    ours::wait_no_route(&us, "203.0.113.0/24").await;
    ours::wait_no_route(&us, "2001:db8:200::/48").await;
    assert_eq!(
        status(&us, lab.their_ip()).await.unwrap().state,
        State::Established
    );
}

/// iBGP (same AS both sides): LOCAL_PREF passes intact both ways.
#[tokio::test]
async fn ibgp_local_pref_passes_intact() {
    skip_unless_runnable!(GOBGP_BINARIES);
    let lab = Lab::new(22).unwrap();
    let g = Gobgp::start(&lab.theirs, &gobgp_config(&lab, OUR_AS, OUR_AS, 9)).unwrap();
    gobgp_announce(&g, &lab, &["203.0.113.0/24"], &["local-pref", "300"]);
    let us = NsSpeaker::start(&lab.ours, ours::speaker_config(&lab, OUR_AS)).unwrap();
    let mut n = ours::neighbor(&lab, RemoteAs::Internal);
    n.import = None;
    n.export = None;
    us.add_neighbor(n).await.unwrap();
    let st = ours::established(&us, lab.their_ip()).await;
    assert_eq!(st.remote_as, Some(OUR_AS));
    let n = gobgp_established(&g, &lab).await;
    // PeerType INTERNAL is 0, which the JSON leaves out.
    assert_eq!(n["state"]["type"].as_u64().unwrap_or(0), 0, "internal: {n}");

    let mut a = attrs(Some(20), &[(65001, 100)], &[]);
    a.local_pref = Some(250);
    us.announce(net("198.51.100.0/24"), a).await.unwrap();
    let p = gobgp_has(&g, &lab, "198.51.100.0/24").await;
    assert_eq!(attr(&p, 5).map(|a| &a["value"]), Some(&json!(250)), "{p}");
    assert_eq!(
        gobgp_asns(&p),
        Vec::<u64>::new(),
        "no prepend over iBGP: {p}"
    );

    let e = ours::wait_route(&us, "203.0.113.0/24").await;
    let a = &e.paths[0].attrs.attributes;
    assert_eq!(a.local_pref, Some(300));
    assert_eq!(asns(a.as_path.as_ref()), Vec::<u32>::new());
    assert_eq!(a.med, Some(50));
}

/// Our dynamic range accepts GoBGP's connection: no static neighbor on our side.
#[tokio::test]
async fn dynamic_range_accepts_the_daemons_connection() {
    skip_unless_runnable!(GOBGP_BINARIES);
    let lab = Lab::new(23).unwrap();
    let g = Gobgp::start(&lab.theirs, &gobgp_config(&lab, GOBGP_AS, OUR_AS, 9)).unwrap();
    gobgp_announce(&g, &lab, &["203.0.113.0/24"], &[]);
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
    assert_eq!(st.remote_as, Some(GOBGP_AS));
    gobgp_established(&g, &lab).await;
    ours::wait_route(&us, "203.0.113.0/24").await;
    gobgp_has(&g, &lab, "198.51.100.0/24").await;
}

/// Route refresh both ways. `gobgp neighbor ADDR softresetin`: GoBGP 3.10
/// re-applies its import policy to its Adj-RIB-In and sends no ROUTE-REFRESH
/// (its server has no code to send one), so all there is to check is that its
/// table is complete afterwards. The other way round, we ask (a new import
/// policy, no soft-reconfiguration copy): GoBGP counts our ROUTE-REFRESH and
/// sends its routes again.
#[tokio::test]
async fn route_refresh_both_ways() {
    skip_unless_runnable!(GOBGP_BINARIES);
    let lab = Lab::new(24).unwrap();
    let g = Gobgp::start(&lab.theirs, &gobgp_config(&lab, GOBGP_AS, OUR_AS, 9)).unwrap();
    gobgp_announce(&g, &lab, &["203.0.113.0/24", "2001:db8:200::/48"], &[]);
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
        gobgp_has(&g, &lab, p).await;
    }
    let me = lab.our_v4().to_string();
    g.cli(&["neighbor", &me, "softresetin"]).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for p in prefixes {
        let path = gobgp_has(&g, &lab, p).await;
        assert_eq!(
            attr(&path, 4).map(|a| &a["metric"]),
            Some(&json!(7)),
            "{path}"
        );
    }
    let v6 = gobgp_has(&g, &lab, "2001:db8:100::/48").await;
    assert_eq!(
        attr(&v6, 14).map(|a| &a["nexthop"]),
        Some(&json!(lab.our_v6().to_string())),
        "{v6}"
    );
    assert_eq!(g.neighbor(&me).unwrap()["state"]["session_state"], 6);

    // We ask GoBGP: one ROUTE-REFRESH per family, answered with its routes.
    ours::wait_route(&us, "203.0.113.0/24").await;
    ours::wait_route(&us, "2001:db8:200::/48").await;
    let before = status(&us, lab.their_ip())
        .await
        .unwrap()
        .counters
        .updates_in;
    let rr_before = messages(&g.neighbor(&me).unwrap(), "received", "refresh");
    us.set_policy(
        lab.their_ip(),
        Some(RouteMap::accept_all("in2")),
        Some(RouteMap::accept_all("out")),
    )
    .await
    .unwrap();
    wait_daemon("GoBGP to receive our ROUTE-REFRESH", || {
        let n = g.neighbor(&me).ok()?;
        (messages(&n, "received", "refresh") >= rr_before + 2).then_some(())
    })
    .await;
    eventually("GoBGP's routes sent again", PATIENCE, || async {
        let s = status(&us, lab.their_ip()).await?;
        (s.counters.updates_in >= before + 2).then_some(())
    })
    .await;
    ours::wait_route(&us, "203.0.113.0/24").await;
    ours::wait_route(&us, "2001:db8:200::/48").await;
    assert_eq!(
        status(&us, lab.their_ip()).await.unwrap().state,
        State::Established
    );
}

/// Our max-prefix limit: GoBGP announces more than we allow, we close with
/// Cease / Maximum Number of Prefixes Reached, and GoBGP shows it.
#[tokio::test]
async fn max_prefix_cease_is_seen_by_the_daemon() {
    skip_unless_runnable!(GOBGP_BINARIES);
    let lab = Lab::new(25).unwrap();
    let nets = [
        "203.0.113.0/26",
        "203.0.113.64/26",
        "203.0.113.128/26",
        "203.0.113.192/26",
    ];
    let g = Gobgp::start(&lab.theirs, &gobgp_config(&lab, GOBGP_AS, OUR_AS, 9)).unwrap();
    gobgp_announce(&g, &lab, &nets, &[]);
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
    let n = wait_daemon("GoBGP to count the NOTIFICATION", || {
        g.neighbor(&me)
            .ok()
            .filter(|n| messages(n, "received", "notification") >= 1)
    })
    .await;
    assert_ne!(n["state"]["session_state"], 6, "{n}");
    // Its log line may follow the counter.
    wait_daemon("GoBGP to log the NOTIFICATION", || {
        g.log()
            .to_lowercase()
            .contains("maximum number of prefixes reached")
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for p in nets {
        assert!(ours::route(&us, p).await.is_none(), "{p} still in our RIB");
    }
    assert!(!g.established(&me), "we stay down without a restart time");
}

/// GoBGP freezes (SIGSTOP): after 3 s we send Hold Timer Expired, drop the
/// session and GoBGP's routes. GoBGP resumes (SIGCONT): all comes back.
#[tokio::test]
async fn hold_timer_expiry_and_recovery() {
    skip_unless_runnable!(GOBGP_BINARIES);
    let lab = Lab::new(26).unwrap();
    let g = Gobgp::start(&lab.theirs, &gobgp_config(&lab, GOBGP_AS, OUR_AS, 3)).unwrap();
    gobgp_announce(&g, &lab, &["203.0.113.0/24"], &[]);
    let us = NsSpeaker::start(&lab.ours, ours::speaker_config(&lab, OUR_AS)).unwrap();
    ours::peer_with_short_hold_time(&us, &lab).await;
    gobgp_has(&g, &lab, "198.51.100.0/24").await;

    ours::expect_hold_timer_expiry(&us, &lab, || g.pause().unwrap()).await;

    // GoBGP waits 5 s in Idle after a reset before it takes a connection.
    g.resume().unwrap();
    ours::established(&us, lab.their_ip()).await;
    ours::wait_route(&us, "203.0.113.0/24").await;
    gobgp_established(&g, &lab).await;
    gobgp_has(&g, &lab, "198.51.100.0/24").await;
    let log = g.log();
    assert!(
        log.contains("code 4(hold timer expired)"),
        "GoBGP got our NOTIFICATION: {log}"
    );
}
