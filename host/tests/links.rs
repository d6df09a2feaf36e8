#![allow(clippy::unwrap_used, clippy::expect_used)]
//! podpeer-host's device operations against the real kernel, each test in a
//! private network namespace of its own; nothing touches the root namespace.

use interop_tests::private::{in_private_netns, ip};
use podpeer_host::netlink::{LinkChange, LinkSpec, Netlink, Vxlan};
use serde_json::Value;

/// `ip -d -j link show dev NAME`.
fn link_json(name: &str) -> Value {
    let text = ip(&format!("-d -j link show dev {name}"));
    let links: Vec<Value> = serde_json::from_str(&text).unwrap();
    links[0].clone()
}

#[test]
fn vxlan_in_bridge_with_mtu_is_marked_and_seen_by_ip() {
    in_private_netns(|| async {
        let netlink = Netlink::connect().unwrap();
        let bridge = netlink
            .create_link("br.vips", &LinkSpec::Bridge, Some(1450))
            .await
            .unwrap();
        let vxlan = Vxlan {
            vni: 200,
            local: Some("192.0.2.10".parse().unwrap()),
            port: 4789,
            learning: false,
        };
        netlink
            .create_link("vx.200", &LinkSpec::Vxlan(vxlan.clone()), Some(1450))
            .await
            .unwrap();
        netlink
            .set_link(
                "vx.200",
                &LinkChange {
                    master: Some(Some(bridge)),
                    up: Some(true),
                    ..LinkChange::default()
                },
            )
            .await
            .unwrap();

        // What ip(8) sees.
        let shown = link_json("vx.200");
        assert_eq!(shown["ifalias"], "podpeer");
        assert_eq!(shown["master"], "br.vips");
        assert_eq!(shown["mtu"], 1450);
        let data = &shown["linkinfo"]["info_data"];
        assert_eq!(data["id"], 200);
        assert_eq!(data["local"], "192.0.2.10");
        assert_eq!(data["port"], 4789);
        assert_eq!(data["learning"], false);

        // What Netlink::links sees.
        let links = netlink.links().await.unwrap();
        let vx = links.iter().find(|l| l.name == "vx.200").unwrap();
        assert!(vx.is_ours());
        assert!(vx.up);
        assert_eq!(vx.master, Some(bridge));
        assert_eq!(vx.vxlan, Some(vxlan));
        let br = netlink.link("br.vips").await.unwrap().unwrap();
        assert_eq!(br.kind.as_deref(), Some("bridge"));
        assert_eq!(br.mtu, Some(1450));
        assert!(br.is_ours());
        assert!(netlink.link("nothere").await.unwrap().is_none());

        // MTU change and release from the bridge.
        netlink
            .set_link(
                "vx.200",
                &LinkChange {
                    mtu: Some(1400),
                    master: Some(None),
                    ..LinkChange::default()
                },
            )
            .await
            .unwrap();
        let vx = netlink.link("vx.200").await.unwrap().unwrap();
        assert_eq!((vx.mtu, vx.master), (Some(1400), None));
    });
}

#[test]
fn veth_pair_both_ends_marked_and_deleted_together() {
    in_private_netns(|| async {
        let netlink = Netlink::connect().unwrap();
        let spec = LinkSpec::Veth {
            peer: "def_vips".into(),
        };
        netlink
            .create_link("vips_def", &spec, Some(1400))
            .await
            .unwrap();
        let peer = netlink.link("def_vips").await.unwrap().unwrap();
        assert!(peer.is_ours());
        assert_eq!(peer.mtu, Some(1400));
        // A second create of the same name fails, changing nothing.
        let again = netlink.create_link("vips_def", &spec, None).await;
        assert!(again.is_err(), "{again:?}");
        assert!(netlink.delete_link("def_vips").await.unwrap());
        assert!(netlink.link("vips_def").await.unwrap().is_none());
        assert!(!netlink.delete_link("vips_def").await.unwrap());
    });
}

#[test]
fn foreign_devices_are_never_deleted() {
    in_private_netns(|| async {
        ip("link add br.foreign type bridge");
        ip("link add vx.300 type vxlan id 300 dstport 4789");
        let netlink = Netlink::connect().unwrap();
        for name in ["br.foreign", "vx.300"] {
            let link = netlink.link(name).await.unwrap().unwrap();
            assert!(!link.is_ours());
            let refused = netlink.delete_link(name).await;
            assert!(
                refused
                    .as_ref()
                    .unwrap_err()
                    .to_string()
                    .contains("not podpeer's"),
                "{refused:?}"
            );
            assert!(netlink.link(name).await.unwrap().is_some());
        }
    });
}

#[test]
fn vrf_creation_reports_unsupported_kernel_clearly() {
    in_private_netns(|| async {
        let netlink = Netlink::connect().unwrap();
        if netlink.has_vrf().await {
            let index = netlink
                .create_link("vips", &LinkSpec::Vrf { table: 100 }, None)
                .await
                .unwrap();
            let vrf = netlink.link("vips").await.unwrap().unwrap();
            assert_eq!((vrf.index, vrf.vrf_table), (index, Some(100)));
            assert!(vrf.is_ours());
        } else {
            let error = netlink
                .create_link("vips", &LinkSpec::Vrf { table: 100 }, None)
                .await
                .unwrap_err();
            assert!(error.to_string().contains("VRF"), "{error}");
            assert!(netlink.link("vips").await.unwrap().is_none());
        }
    });
}
