//! bgp-core against BIRD 2, each test in its own pair of network namespaces:
//! our speaker in one, BIRD in the other, one veth link between. Each test
//! checks our view (the SpeakerHandle) and BIRD's (birdc text output).

// A failed expectation in a test is a panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bgp_core::fsm::{RemoteAs, State};
use bgp_core::policy::RouteMap;
use bgp_core::speaker::{DynamicRange, MaxPrefixes};
use bgp_core::wire::{AfiSafi, AsPath};
use podpeer_interop_tests::ours::{self, PATIENCE, asns, attrs, net, status, wait_daemon};
use podpeer_interop_tests::{
    BIRD_BINARIES, Bird, BirdRoute, Lab, NsSpeaker, eventually, skip_unless_runnable,
};

const OUR_AS: u32 = 65001;
const BIRD_AS: u32 = 65002;

/// What BIRD runs: static routes to announce, and the BGP session with us.
struct BirdSetup<'a> {
    asn: u32,
    peer_as: u32,
    /// Extra lines in `protocol bgp x`.
    session: &'a str,
    /// IPv4 networks announced (static protocol `s4`), attributes set on export.
    v4: &'a [&'a str],
    /// IPv6 networks announced (static protocol `s6`).
    v6: &'a [&'a str],
    /// Extra statements for the IPv4 export filter, before `accept`.
    v4_export: &'a str,
    /// Extra options of both channels.
    channel: &'a str,
}

impl Default for BirdSetup<'_> {
    fn default() -> Self {
        Self {
            asn: BIRD_AS,
            peer_as: OUR_AS,
            session: "",
            v4: &[],
            v6: &[],
            v4_export: "",
            channel: "",
        }
    }
}

fn bird_config(lab: &Lab, s: &BirdSetup) -> String {
    let (us, them, them6) = (lab.our_v4(), lab.their_v4(), lab.their_v6());
    let statics = |name: &str, kind: &str, nets: &[&str]| {
        let routes: String = nets
            .iter()
            .map(|n| format!(" route {n} blackhole;"))
            .collect();
        format!("protocol static {name} {{ {kind};{routes} }}\n")
    };
    let v4_export = s.v4_export;
    let (asn, peer_as, session, channel) = (s.asn, s.peer_as, s.session, s.channel);
    format!(
        r#"router id {them};
protocol device {{ scan time 10; }}
{s4}{s6}
protocol bgp x {{
  local {them} as {asn};
  neighbor {us} as {peer_as};
  hold time 9;
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 2;
  {session}
  ipv4 {{
    import all;
    {channel}
    export filter {{
      if proto = "s4" then {{
        bgp_med = 50; bgp_community.add((65002, 200)); bgp_large_community.add((65002, 3, 4));
        bgp_local_pref = 300;
        {v4_export}
        accept;
      }}
      reject;
    }};
  }};
  ipv6 {{
    import all;
    {channel}
    export filter {{
      if proto = "s6" then {{ bgp_med = 60; bgp_community.add((65002, 600)); bgp_local_pref = 300; accept; }}
      reject;
    }};
    next hop address {them6};
  }};
}}
"#,
        s4 = statics("s4", "ipv4", s.v4),
        s6 = statics("s6", "ipv6", s.v6),
    )
}

/// The route BIRD learned from us for `prefix`, once it has it.
async fn bird_has(bird: &Bird, prefix: &str) -> BirdRoute {
    wait_daemon(&format!("{prefix} at BIRD"), || {
        bird.route(prefix)
            .ok()?
            .into_iter()
            .find(|r| r.protocol() == "x")
    })
    .await
}

async fn bird_lacks(bird: &Bird, prefix: &str) {
    wait_daemon(&format!("{prefix} gone at BIRD"), || {
        let routes = bird.route(prefix).ok()?;
        routes.iter().all(|r| r.protocol() != "x").then_some(())
    })
    .await
}

async fn bird_established(bird: &Bird) -> String {
    wait_daemon("BIRD's session Established", || {
        bird.established("x")
            .then(|| bird.protocol("x").ok())
            .flatten()
    })
    .await
}

/// From `show protocols all`: the "received" column of a row of the route
/// change statistics ("Import updates", ...) of `channel` (`ipv4`, `ipv6`).
fn route_stat(protocol: &str, channel: &str, row: &str) -> u64 {
    protocol
        .split("Channel ")
        .find(|s| s.starts_with(channel))
        .and_then(|s| s.lines().find(|l| l.trim_start().starts_with(row)))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn import_updates_received(protocol: &str, channel: &str) -> u64 {
    route_stat(protocol, channel, "Import updates:")
}

fn export_updates_received(protocol: &str, channel: &str) -> u64 {
    route_stat(protocol, channel, "Export updates:")
}

/// MP-BGP over one IPv4 session, our neighbor configured `RemoteAs::External`
/// (BIRD's AS learned from its OPEN); routes both ways with MED, communities
/// and large communities intact; withdrawals both ways.
#[tokio::test]
async fn ebgp_ipv4_and_ipv6_routes_with_attributes_and_withdrawals() {
    skip_unless_runnable!(BIRD_BINARIES);
    let lab = Lab::new(11).unwrap();
    let setup = BirdSetup {
        v4: &["203.0.113.0/24"],
        v6: &["2001:db8:200::/48"],
        ..Default::default()
    };
    let bird = Bird::start(&lab.theirs, &bird_config(&lab, &setup)).unwrap();
    let us = NsSpeaker::start(&lab.ours, ours::speaker_config(&lab, OUR_AS)).unwrap();
    us.add_neighbor(ours::neighbor(&lab, RemoteAs::External))
        .await
        .unwrap();

    let st = ours::established(&us, lab.their_ip()).await;
    assert_eq!(st.remote_as, Some(BIRD_AS), "AS learned from the OPEN");
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
    let p = bird_established(&bird).await;
    assert!(p.contains("Session:          external AS4"), "{p}");
    let caps = p.split("Neighbor capabilities").nth(1).unwrap_or_default();
    assert!(caps.contains("AF announced: ipv4 ipv6"), "{p}");
    for channel in ["Channel ipv4", "Channel ipv6"] {
        let section = p.split(channel).nth(1).unwrap_or_default();
        assert!(
            section.trim_start().starts_with("State:          UP"),
            "{channel}: {p}"
        );
    }

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
            "20",
            "(65001,100)",
            "(65001, 1, 2)",
            lab.our_v4().to_string(),
        ),
        (
            "2001:db8:100::/48",
            "21",
            "(65001,101)",
            "(65001, 1, 3)",
            lab.our_v6().to_string(),
        ),
    ] {
        let r = bird_has(&bird, prefix).await;
        assert_eq!(r.attr("BGP.as_path"), Some("65001"), "{r:?}");
        assert_eq!(r.attr("BGP.med"), Some(med), "{r:?}");
        assert_eq!(r.attr("BGP.community"), Some(community), "{r:?}");
        assert_eq!(r.attr("BGP.large_community"), Some(large), "{r:?}");
        assert_eq!(r.attr("BGP.next_hop"), Some(next_hop.as_str()), "{r:?}");
        assert!(r.summary.contains('*'), "BIRD uses it as best: {r:?}");
    }

    ours::check_daemon_routes(&us, &lab, BIRD_AS).await;

    us.withdraw(net("198.51.100.0/24")).await.unwrap();
    us.withdraw(net("2001:db8:100::/48")).await.unwrap();
    bird_lacks(&bird, "198.51.100.0/24").await;
    bird_lacks(&bird, "2001:db8:100::/48").await;

    bird.birdc(&["disable", "s4"]).unwrap();
    bird.birdc(&["disable", "s6"]).unwrap();
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
    skip_unless_runnable!(BIRD_BINARIES);
    let lab = Lab::new(12).unwrap();
    let setup = BirdSetup {
        asn: OUR_AS,
        // Directly connected iBGP neighbor: next hops resolve on the link.
        session: "direct;",
        channel: "gateway direct;",
        v4: &["203.0.113.0/24"],
        ..Default::default()
    };
    let bird = Bird::start(&lab.theirs, &bird_config(&lab, &setup)).unwrap();
    let us = NsSpeaker::start(&lab.ours, ours::speaker_config(&lab, OUR_AS)).unwrap();
    let mut n = ours::neighbor(&lab, RemoteAs::Internal);
    n.import = None;
    n.export = None;
    us.add_neighbor(n).await.unwrap();
    let st = ours::established(&us, lab.their_ip()).await;
    assert_eq!(st.remote_as, Some(OUR_AS));
    let p = bird_established(&bird).await;
    assert!(p.contains("Session:          internal"), "{p}");

    let mut a = attrs(Some(20), &[(65001, 100)], &[]);
    a.local_pref = Some(250);
    us.announce(net("198.51.100.0/24"), a).await.unwrap();
    let r = bird_has(&bird, "198.51.100.0/24").await;
    assert_eq!(r.attr("BGP.local_pref"), Some("250"), "{r:?}");
    assert_eq!(
        r.attr("BGP.as_path"),
        Some(""),
        "no prepend over iBGP: {r:?}"
    );
    assert!(r.summary.contains('*'), "BIRD uses it: {r:?}");

    let e = ours::wait_route(&us, "203.0.113.0/24").await;
    let a = &e.paths[0].attrs.attributes;
    assert_eq!(a.local_pref, Some(300));
    assert_eq!(asns(a.as_path.as_ref()), Vec::<u32>::new());
    assert_eq!(a.med, Some(50));
}

/// Our dynamic range accepts BIRD's connection: no static neighbor on our side.
#[tokio::test]
async fn dynamic_range_accepts_the_daemons_connection() {
    skip_unless_runnable!(BIRD_BINARIES);
    let lab = Lab::new(13).unwrap();
    let setup = BirdSetup {
        v4: &["203.0.113.0/24"],
        ..Default::default()
    };
    let bird = Bird::start(&lab.theirs, &bird_config(&lab, &setup)).unwrap();
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
    assert_eq!(st.remote_as, Some(BIRD_AS));
    bird_established(&bird).await;
    ours::wait_route(&us, "203.0.113.0/24").await;
    bird_has(&bird, "198.51.100.0/24").await;
}

/// Route refresh both ways. BIRD asks (`birdc reload in x`, a ROUTE-REFRESH
/// per channel): we answer with the whole Adj-RIB-Out (between BoRR and EoRR)
/// and BIRD's table is complete again. We ask (a new import policy, no
/// soft-reconfiguration copy): BIRD answers with its routes.
#[tokio::test]
async fn route_refresh_both_ways() {
    skip_unless_runnable!(BIRD_BINARIES);
    let lab = Lab::new(14).unwrap();
    let setup = BirdSetup {
        v4: &["203.0.113.0/24"],
        v6: &["2001:db8:200::/48"],
        ..Default::default()
    };
    let bird = Bird::start(&lab.theirs, &bird_config(&lab, &setup)).unwrap();
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
        bird_has(&bird, p).await;
    }
    let before = bird.protocol("x").unwrap();
    let out = bird.birdc(&["reload", "in", "x"]).unwrap();
    assert!(out.contains("reload"), "{out}");
    wait_daemon("the routes to arrive again at BIRD", || {
        let now = bird.protocol("x").ok()?;
        (import_updates_received(&now, "ipv4") >= import_updates_received(&before, "ipv4") + 2
            && import_updates_received(&now, "ipv6") > import_updates_received(&before, "ipv6"))
        .then_some(())
    })
    .await;
    // Enhanced route refresh: what was not sent again between BoRR and EoRR is
    // dropped at EoRR. Everything must still be there after it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for p in prefixes {
        let r = bird_has(&bird, p).await;
        assert_eq!(r.attr("BGP.med"), Some("7"), "{r:?}");
    }
    let v6 = bird_has(&bird, "2001:db8:100::/48").await;
    assert_eq!(
        v6.attr("BGP.next_hop"),
        Some(lab.our_v6().to_string().as_str()),
        "{v6:?}"
    );
    assert!(bird.established("x"));

    // We ask BIRD: one ROUTE-REFRESH per family, answered with its routes.
    ours::wait_route(&us, "203.0.113.0/24").await;
    ours::wait_route(&us, "2001:db8:200::/48").await;
    let before = status(&us, lab.their_ip())
        .await
        .unwrap()
        .counters
        .updates_in;
    let p0 = bird.protocol("x").unwrap();
    us.set_policy(
        lab.their_ip(),
        Some(RouteMap::accept_all("in2")),
        Some(RouteMap::accept_all("out")),
    )
    .await
    .unwrap();
    wait_daemon("BIRD to export its routes again", || {
        let p = bird.protocol("x").ok()?;
        (export_updates_received(&p, "ipv4") > export_updates_received(&p0, "ipv4")
            && export_updates_received(&p, "ipv6") > export_updates_received(&p0, "ipv6"))
        .then_some(())
    })
    .await;
    eventually("BIRD's routes sent again", PATIENCE, || async {
        let s = status(&us, lab.their_ip()).await?;
        (s.counters.updates_in >= before + 2).then_some(())
    })
    .await;
    ours::wait_route(&us, "203.0.113.0/24").await;
    ours::wait_route(&us, "2001:db8:200::/48").await;
    assert!(bird.established("x"));
}

/// Our max-prefix limit: BIRD announces more than we allow, we close with
/// Cease / Maximum Number of Prefixes Reached, and BIRD shows it.
#[tokio::test]
async fn max_prefix_cease_is_seen_by_the_daemon() {
    skip_unless_runnable!(BIRD_BINARIES);
    let lab = Lab::new(15).unwrap();
    let nets = [
        "203.0.113.0/26",
        "203.0.113.64/26",
        "203.0.113.128/26",
        "203.0.113.192/26",
    ];
    let setup = BirdSetup {
        v4: &nets,
        ..Default::default()
    };
    let bird = Bird::start(&lab.theirs, &bird_config(&lab, &setup)).unwrap();
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
    let p = wait_daemon("BIRD to show the NOTIFICATION", || {
        bird.protocol("x")
            .ok()
            .filter(|p| p.contains("Received: Maximum number of prefixes reached"))
    })
    .await;
    assert!(!p.contains("BGP state:          Established"), "{p}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    for p in nets {
        assert!(ours::route(&us, p).await.is_none(), "{p} still in our RIB");
    }
    assert!(
        !bird.established("x"),
        "we stay down without a restart time"
    );
}

/// BIRD freezes (SIGSTOP): after 3 s we send Hold Timer Expired, drop the
/// session and BIRD's routes. BIRD resumes (SIGCONT): all comes back.
#[tokio::test]
async fn hold_timer_expiry_and_recovery() {
    skip_unless_runnable!(BIRD_BINARIES);
    let lab = Lab::new(16).unwrap();
    let setup = BirdSetup {
        v4: &["203.0.113.0/24"],
        session: "hold time 3; keepalive time 1;",
        ..Default::default()
    };
    let bird = Bird::start(&lab.theirs, &bird_config(&lab, &setup)).unwrap();
    let us = NsSpeaker::start(&lab.ours, ours::speaker_config(&lab, OUR_AS)).unwrap();
    ours::peer_with_short_hold_time(&us, &lab).await;
    bird_has(&bird, "198.51.100.0/24").await;

    ours::expect_hold_timer_expiry(&us, &lab, || bird.pause().unwrap()).await;

    bird.resume().unwrap();
    ours::established(&us, lab.their_ip()).await;
    ours::wait_route(&us, "203.0.113.0/24").await;
    bird_established(&bird).await;
    bird_has(&bird, "198.51.100.0/24").await;
    let log = bird.log();
    assert!(
        log.contains("x: Received: Hold timer expired"),
        "BIRD got our NOTIFICATION: {log}"
    );
}

/// A 2-octet-only peer (BIRD with `enable as4 off`): its route through a
/// 4-octet AS reaches us with the true AS_PATH (AS4_PATH merged), and ours with
/// 4-octet ASes in the path reaches BIRD intact (we send AS_TRANS + AS4_PATH).
#[tokio::test]
async fn two_octet_peer_gets_and_gives_four_octet_paths() {
    skip_unless_runnable!(BIRD_BINARIES);
    let lab = Lab::new(17).unwrap();
    let setup = BirdSetup {
        session: "enable as4 off;",
        v4: &["203.0.113.0/24"],
        v4_export: "bgp_path.prepend(4200000001);",
        ..Default::default()
    };
    let bird = Bird::start(&lab.theirs, &bird_config(&lab, &setup)).unwrap();
    let us = NsSpeaker::start(&lab.ours, ours::speaker_config(&lab, OUR_AS)).unwrap();
    us.add_neighbor(ours::neighbor(&lab, RemoteAs::External))
        .await
        .unwrap();
    let st = ours::established(&us, lab.their_ip()).await;
    assert_eq!(st.remote_as, Some(BIRD_AS));
    let p = bird_established(&bird).await;
    let session = p
        .lines()
        .find(|l| l.contains("Session:"))
        .unwrap_or_default();
    assert!(!session.contains("AS4"), "a 2-octet session: {p}");

    // BIRD -> us: AS_PATH 65002 23456 + AS4_PATH 65002 4200000001 on the wire.
    let e = ours::wait_route(&us, "203.0.113.0/24").await;
    let a = &e.paths[0].attrs.attributes;
    assert_eq!(asns(a.as_path.as_ref()), vec![BIRD_AS, 4_200_000_001]);
    assert_eq!(a.med, Some(50));

    // us -> BIRD: our path holds 4-octet ASes.
    let mut at = attrs(Some(20), &[(65001, 100)], &[]);
    at.as_path = Some(AsPath::from_sequence([4_200_000_009, 4_200_000_010]));
    us.announce(net("198.51.100.0/24"), at).await.unwrap();
    let r = bird_has(&bird, "198.51.100.0/24").await;
    assert_eq!(
        r.attr("BGP.as_path"),
        Some("65001 4200000009 4200000010"),
        "{r:?}"
    );
    assert_eq!(r.attr("BGP.med"), Some("20"), "{r:?}");
    assert_eq!(r.attr("BGP.community"), Some("(65001,100)"), "{r:?}");
    // And a path of 2-octet ASes only needs no AS4_PATH.
    let mut at = attrs(None, &[], &[]);
    at.as_path = Some(AsPath::from_sequence([64512]));
    us.announce(net("198.51.100.0/25"), at).await.unwrap();
    let r = bird_has(&bird, "198.51.100.0/25").await;
    assert_eq!(r.attr("BGP.as_path"), Some("65001 64512"), "{r:?}");
}
