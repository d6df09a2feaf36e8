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
