#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Rendered FRR configurations against the real FRR (Debian's 8.4) in a
//! network namespace: `frr-reload.py --test` accepts them, `--reload`
//! applies them, and the running configuration then has podpeer's parts.

use std::path::{Path, PathBuf};

use interop_tests::frr::Frr;
use interop_tests::netns::Netns;
use podpeer_node::config::NodeConfig;
use podpeer_node::frr::reload::{CheckError, FrrPaths};
use podpeer_node::frr::{render, routecfg};
use podpeer_node::provision::attach;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/frr/testdata")
        .join(name)
}

fn node() -> NodeConfig {
    let mut node = NodeConfig::load(&testdata("node.yaml")).unwrap();
    attach(&mut node, &testdata("operator.yaml")).unwrap();
    node
}

fn paths(frr: &Frr) -> FrrPaths {
    FrrPaths {
        confdir: frr.dir().to_path_buf(),
        rundir: frr.dir().to_path_buf(),
        vty_socket: Some(frr.dir().to_path_buf()),
        ..FrrPaths::default()
    }
}

const BOOT: &str = "router bgp 65010\n bgp router-id 192.0.2.10\nexit\n";

#[test]
fn every_rendered_configuration_is_accepted_and_applied_by_frr() {
    let ns = Netns::new("frr").unwrap();
    let frr = Frr::start(&ns, BOOT).unwrap();
    let paths = paths(&frr);
    let template = std::fs::read_to_string(testdata("template.conf")).unwrap();
    let routes = routecfg::load(&testdata("routes.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("frr.conf");
    for (what, configs) in [("bare", &[][..]), ("full", &routes[..])] {
        let rendered = render(&template, &node(), configs).unwrap();
        std::fs::write(&file, &rendered.config).unwrap();
        let diff = paths
            .test(&file, 65010)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(!diff.add.is_empty(), "{what}: nothing to add?");
        paths
            .reload(&file)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    let running = frr.vtysh(&["show running-config"]).unwrap();
    for line in [
        "route-map rm_vips_import permit 10",
        "route-map rm_mgmt_vrf_export permit 30",
        "route-map rm_mgmt_vrf_export deny 65535",
        "ip prefix-list pl_pg_lb seq 15 permit 198.51.100.0/24 ge 32 le 32",
        // The import guard's next hop and AS path checks.
        "ip prefix-list pl_pg_lb_nh seq 5 permit 10.244.1.0/24 le 32",
        "bgp as-path access-list as_pg_lb seq 5 permit ^[0-9]+$",
        "bgp as-path access-list as_pg_edge seq 5 permit ^65100(_65100)*$",
        " match ip next-hop prefix-list pl_pg_lb_nh",
        " match as-path as_pg_edge",
        "router bgp 65010 vrf vips",
        " bgp listen range 10.244.1.0/24 peer-group pg_lb",
        "  import vrf vips",
        "  neighbor pg_lb maximum-prefix 16",
        " vni 200",
    ] {
        assert!(
            running.lines().any(|l| l == line),
            "{line:?} not in the running configuration:\n{running}"
        );
    }
    // The default instance was kept, not deleted and made again.
    assert!(running.contains("router bgp 65010\n bgp router-id 192.0.2.10\n"));
    // Applied: a second test has nothing podpeer rendered left to add.
    let rendered = render(&template, &node(), &routes).unwrap();
    std::fs::write(&file, &rendered.config).unwrap();
    let diff = paths.test(&file, 65010).unwrap();
    // What stays in the diff: the template's hostname, and IPv4 `activate`
    // lines (on by default, so FRR does not show them), with their context.
    let left: Vec<&String> = diff
        .add
        .iter()
        .filter(|l| !l.starts_with("router bgp ") && l.trim() != "address-family ipv4 unicast")
        .filter(|l| !(l.starts_with("  neighbor ") && l.ends_with(" activate")))
        .filter(|l| !l.starts_with("hostname "))
        .collect();
    assert!(left.is_empty(), "{left:?} in {diff:?}");
}

#[test]
fn frr_refuses_bad_syntax_and_a_reload_that_deletes_the_default_instance() {
    let ns = Netns::new("frrbad").unwrap();
    let frr = Frr::start(&ns, BOOT).unwrap();
    let paths = paths(&frr);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("frr.conf");

    std::fs::write(
        &file,
        "router bgp 65010\n neighbor 192.0.2.1 remote-az external\nexit\n",
    )
    .unwrap();
    let refused = paths.test(&file, 65010).unwrap_err();
    assert!(matches!(refused, CheckError::Refused(_)), "{refused}");

    // FRR 8.4 shows `router bgp 65010`; a template saying `vrf default`
    // would make frr-reload delete the instance and make it again.
    let template = std::fs::read_to_string(testdata("template.conf"))
        .unwrap()
        .replace("router bgp 65010\n", "router bgp 65010 vrf default\n");
    let rendered = render(&template, &node(), &[]).unwrap();
    std::fs::write(&file, &rendered.config).unwrap();
    let deletes = paths.test(&file, 65010).unwrap_err();
    assert!(
        matches!(&deletes, CheckError::DeletesDefaultInstance(l) if l == "no router bgp 65010"),
        "{deletes}"
    );

    let missing = FrrPaths {
        reload_script: "/nonexistent/frr-reload.py".into(),
        ..paths
    };
    assert!(matches!(
        missing.test(&file, 65010),
        Err(CheckError::Run { .. })
    ));
}

/// The import guard as FRR enforces it: a pod in group `lb` (listen range
/// 10.244.1.0/24, any external AS) announces three VIPs; FRR keeps the one
/// with the pod's own next hop and AS, and refuses the one whose AS path
/// carries another AS and the one whose next hop (connected, but outside
/// the group's pod range) is not a pod's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_enforces_the_guards_next_hop_and_as_path() {
    use bgp_core::fsm::RemoteAs;
    use bgp_core::policy::{Action, Match, PrefixEntry, PrefixSet, RouteMap, Set, Term};
    use bgp_core::speaker::{NeighborConfig, SpeakerConfig};
    use bgp_core::wire::{AsPath, Origin, PathAttributes};
    use std::net::IpAddr;
    use std::time::Duration;

    let node_ns = Netns::new("frrg").unwrap();
    let pods = Netns::new("frrp").unwrap();
    interop_tests::netns::veth(
        &node_ns,
        "pods0",
        &["10.244.1.1/24", "192.0.3.1/24"],
        &pods,
        "node0",
        &["10.244.1.2/24", "192.0.3.2/24"],
    )
    .unwrap();
    let frr = Frr::start(&node_ns, BOOT).unwrap();
    let paths = paths(&frr);
    let template = std::fs::read_to_string(testdata("template.conf")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("frr.conf");
    let rendered = render(&template, &node(), &[]).unwrap();
    std::fs::write(&file, &rendered.config).unwrap();
    paths.reload(&file).unwrap();

    let mut c = SpeakerConfig::new(4_200_000_001, "10.244.1.2".parse().unwrap());
    c.listen = Vec::new();
    let pod = interop_tests::speaker::NsSpeaker::start(&pods, c).unwrap();
    let exact =
        |p: &str| Match::Prefix(PrefixSet::new(vec![PrefixEntry::exact(p.parse().unwrap())]));
    let mut n = NeighborConfig::new("10.244.1.1".parse().unwrap(), RemoteAs::Number(65010));
    n.source_address = Some("10.244.1.2".parse().unwrap());
    n.connect_retry = Duration::from_secs(1);
    n.import = Some(RouteMap::accept_all("in"));
    n.export = Some(RouteMap {
        name: "out".into(),
        terms: vec![Term {
            name: "foreign-next-hop".into(),
            matches: vec![exact("198.51.100.12/32")],
            sets: vec![Set::NextHop(IpAddr::V4("192.0.3.9".parse().unwrap()))],
            action: Action::Accept,
        }],
        default_accept: true,
    });
    pod.add_neighbor(n).await.unwrap();
    let attrs = |path: AsPath| PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(path),
        ..Default::default()
    };
    for (p, path) in [
        ("198.51.100.10/32", AsPath::default()),
        ("198.51.100.11/32", AsPath::from_sequence([65999])),
        ("198.51.100.12/32", AsPath::default()),
    ] {
        pod.announce(p.parse().unwrap(), attrs(path)).await.unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..200 {
        seen = frr.prefixes("ipv4").unwrap_or_default();
        if seen.iter().any(|p| p == "198.51.100.10/32") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The others had the same time (one UPDATE stream), and a moment more.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen_now = frr.prefixes("ipv4").unwrap();
    assert!(
        seen.iter().any(|p| p == "198.51.100.10/32"),
        "the honest VIP missing: {seen:?}\n{}",
        frr.log()
    );
    let neighbor = frr.neighbor("10.244.1.2").unwrap();
    assert_eq!(seen_now, vec!["198.51.100.10/32".to_string()], "{neighbor}");
}
