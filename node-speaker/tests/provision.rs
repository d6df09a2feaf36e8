#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Provisioning against the real kernel, each test in a private network
//! namespace (this kernel has no VRF devices: tables are reached by rules).

use std::path::Path;

use interop_tests::private::{in_private_netns, ip, ip_json};
use podpeer_host::netlink::Netlink;
use podpeer_node::config::NodeConfig;
use podpeer_node::provision::{self, Desired, OperatorConfig};
use serde_json::Value;

/// Name -> `ip -d -j link` entry.
fn links() -> Vec<(String, Value)> {
    ip_json("-d link show")
        .into_iter()
        .map(|l| (l["ifname"].as_str().unwrap().to_owned(), l))
        .collect()
}

fn link(name: &str) -> Option<Value> {
    links().into_iter().find(|(n, _)| n == name).map(|(_, l)| l)
}

/// `iif -> table` of the priority-1000 rules, both families, sorted.
fn rules() -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for (flag, v6) in [("-4", false), ("-6", true)] {
        for r in ip_json(&format!("{flag} rule show")) {
            if r["priority"] == 1000 {
                out.push((
                    r["iif"].as_str().unwrap_or("").to_owned(),
                    r["table"].as_str().unwrap_or("").to_owned(),
                    v6,
                ));
            }
        }
    }
    out.sort();
    out
}

const NODE: &str = "localAs: 65010\nrouterId: 192.0.2.10\nvrfs:\n  - {name: vips, table: 100, interfaces: [eth1]}\n";

fn desired(operator: &str) -> Desired {
    let node = NodeConfig::parse(NODE, Path::new("node.yaml")).unwrap();
    let op = OperatorConfig::parse(operator, Path::new("op.yaml")).unwrap();
    let vrfs = op.vrfs(&node).unwrap();
    provision::desired(&node, &op, &vrfs, false)
}

const FULL: &str = "vnimap: {vips: 200, other: 201, mgmt: 300}\nskipVRFConfig: [mgmt]\ndefaultVeth: [vips]\nmtu: 1450\n";

#[test]
fn vxlan_bridge_veth_and_rules_created_rerun_changes_nothing_removal_only_ours() {
    in_private_netns(|| async {
        // Someone else's devices and rule, which must survive everything.
        ip("link add br.foreign type bridge");
        ip("link add vx.300 type vxlan id 300 dstport 4789");
        ip("link set vx.300 master br.foreign");
        ip("rule add priority 1000 iif eth9 lookup 7");
        let netlink = Netlink::connect().unwrap();

        let outcome = provision::apply(&netlink, &desired(FULL)).await.unwrap();
        assert!(outcome.ok(), "{outcome:?}");

        let vx = link("vx.200").unwrap();
        let data = &vx["linkinfo"]["info_data"];
        assert_eq!(data["id"], 200);
        assert_eq!(data["local"], "192.0.2.10");
        assert_eq!(data["port"], 4789);
        assert_eq!(data["learning"], false);
        assert_eq!(vx["master"], "br.vips");
        assert_eq!(vx["mtu"], 1450);
        assert_eq!(vx["ifalias"], "podpeer");
        assert_eq!(link("vx.201").unwrap()["master"], "br.other");
        for name in [
            "br.vips", "br.other", "vx.200", "vx.201", "vips_def", "def_vips",
        ] {
            let l = link(name).unwrap_or_else(|| panic!("{name} missing"));
            assert!(
                l["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
                "{name} not up: {l}"
            );
            assert_eq!(l["mtu"], 1450, "{name}");
            assert_eq!(l["ifalias"], "podpeer", "{name}");
        }
        assert_eq!(link("vips_def").unwrap()["linkinfo"]["info_kind"], "veth");
        // The skipped VRF gets nothing.
        assert!(link("br.mgmt").is_none());
        let table = |iif: &str, t: &str, v6| (iif.to_owned(), t.to_owned(), v6);
        let mut want = vec![
            table("br.other", "201", false),
            table("br.other", "201", true),
            table("br.vips", "100", false),
            table("br.vips", "100", true),
            table("eth1", "100", false),
            table("eth1", "100", true),
            table("eth9", "7", false),
            table("vips_def", "100", false),
            table("vips_def", "100", true),
        ];
        want.sort();
        assert_eq!(rules(), want);

        // Again: nothing to do.
        let again = provision::apply(&netlink, &desired(FULL)).await.unwrap();
        assert!(again.done.is_empty(), "{:?}", again.done);
        assert!(again.conflicts.is_empty());

        // VRF `other` and the veth go: exactly those devices and rules.
        let fewer = provision::apply(&netlink, &desired("vnimap: {vips: 200}\nmtu: 1450\n"))
            .await
            .unwrap();
        assert!(fewer.ok(), "{fewer:?}");
        for gone in ["br.other", "vx.201", "vips_def", "def_vips"] {
            assert!(link(gone).is_none(), "{gone} still there");
        }
        assert!(link("vx.200").is_some() && link("br.vips").is_some());
        assert_eq!(
            rules()
                .iter()
                .filter(|r| r.0 == "br.other" || r.0 == "vips_def")
                .count(),
            0
        );

        // Nothing wanted: all of ours goes, someone else's stays.
        let none = provision::apply(&netlink, &Desired::default())
            .await
            .unwrap();
        assert!(none.ok(), "{none:?}");
        let left: Vec<String> = links().into_iter().map(|(n, _)| n).collect();
        assert_eq!(left, vec!["lo", "br.foreign", "vx.300"]);
        assert_eq!(link("vx.300").unwrap()["master"], "br.foreign");
        assert_eq!(rules(), vec![table("eth9", "7", false)]);
    });
}

#[test]
fn a_foreign_device_in_the_way_is_reported_and_left_alone() {
    in_private_netns(|| async {
        ip("link add br.vips type bridge");
        ip("link set br.vips mtu 1300");
        let netlink = Netlink::connect().unwrap();
        let outcome = provision::apply(&netlink, &desired("vnimap: {vips: 200}\nmtu: 1450\n"))
            .await
            .unwrap();
        assert!(!outcome.ok());
        assert_eq!(outcome.conflicts.len(), 1, "{:?}", outcome.conflicts);
        assert!(outcome.conflicts[0].contains("br.vips"));
        let br = link("br.vips").unwrap();
        assert_eq!(br["mtu"], 1300);
        assert!(br.get("ifalias").is_none());
        // The VXLAN device is made, but not put into someone else's bridge.
        let vx = link("vx.200").unwrap();
        assert_eq!(vx["ifalias"], "podpeer");
        assert!(vx.get("master").is_none(), "{vx}");
        assert!(ip("link show master br.vips").trim().is_empty());
    });
}
