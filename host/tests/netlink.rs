#![allow(clippy::unwrap_used, clippy::expect_used)]
//! podpeer-host's netlink against the real kernel, each test in a private
//! network namespace of its own (see [`in_netns`]); nothing touches the root
//! namespace.

use std::net::IpAddr;

use interop_tests::private::{in_private_netns, ip, ip_json};
use ipnet::IpNet;
use podpeer_host::netlink::{
    Netlink, NetlinkError, NextHop, Pipeline, RTPROT_PODPEER, Route, Rule,
};
use serde_json::Value;

/// veth0 (192.0.2.1/24, 2001:db8::1/64) paired with veth1, both up.
/// Returns veth0's index.
fn veth() -> u32 {
    ip("link add veth0 type veth peer name veth1");
    ip("link set veth0 up");
    ip("link set veth1 up");
    ip("addr add 192.0.2.1/24 dev veth0");
    ip("-6 addr add 2001:db8::1/64 dev veth0 nodad");
    let links = ip_json("link show dev veth0");
    links[0]["ifindex"].as_u64().unwrap() as u32
}

fn hop(gateway: &str, ifindex: Option<u32>) -> NextHop {
    NextHop {
        gateway: gateway.parse().unwrap(),
        ifindex,
    }
}

fn route(table: u32, prefix: &str, hops: &[NextHop]) -> Route {
    Route {
        table,
        prefix: prefix.parse().unwrap(),
        next_hops: hops.to_vec(),
    }
}

fn all_ok(results: Vec<Result<(), NetlinkError>>) {
    for r in results {
        r.unwrap();
    }
}

/// The routes of `ip [-6] -j route show table T`, keyed by dst.
fn shown(family: &str, table: u32) -> Vec<Value> {
    ip_json(&format!("{family} route show table {table}"))
}

fn find<'a>(routes: &'a [Value], dst: &str) -> Option<&'a Value> {
    routes.iter().find(|r| r["dst"] == dst)
}

/// The gateways of a shown route: `nexthops[].gateway`, or `gateway`, or
/// `via.host`, sorted.
fn gateways(route: &Value) -> Vec<String> {
    let one = |v: &Value| {
        v["gateway"]
            .as_str()
            .or(v["via"]["host"].as_str())
            .unwrap()
            .to_owned()
    };
    let mut gws: Vec<String> = match route["nexthops"].as_array() {
        Some(hops) => hops.iter().map(one).collect(),
        None => vec![one(route)],
    };
    gws.sort();
    gws
}

#[test]
fn default_gateways_v4_then_v6_by_metric_with_link_local() {
    in_private_netns(|| async {
        let idx = veth();
        ip("route add default via 192.0.2.254 dev veth0 metric 100");
        ip("route add default via 192.0.2.253 dev veth0 metric 50");
        ip("-6 route add default via fe80::1 dev veth0 metric 10");
        ip("-6 route add default via 2001:db8::fe dev veth0 metric 5");
        // Not defaults of the main table: ignored.
        ip("route add default via 192.0.2.9 dev veth0 table 100");
        ip("route add 198.51.100.0/24 via 192.0.2.8 dev veth0");
        let nl = Netlink::connect().unwrap();
        let gws = nl.default_gateways().await.unwrap();
        let got: Vec<(IpAddr, u32, &str)> = gws
            .iter()
            .map(|g| (g.address, g.ifindex, g.ifname.as_str()))
            .collect();
        let want: Vec<(IpAddr, u32, &str)> =
            ["192.0.2.253", "192.0.2.254", "2001:db8::fe", "fe80::1"]
                .iter()
                .map(|a| (a.parse().unwrap(), idx, "veth0"))
                .collect();
        assert_eq!(got, want);
    });
}

#[test]
fn default_gateways_multipath_and_none() {
    in_private_netns(|| async {
        let nl = Netlink::connect().unwrap();
        assert!(nl.default_gateways().await.unwrap().is_empty());
        let idx = veth();
        ip("route add default nexthop via 192.0.2.2 dev veth0 nexthop via 192.0.2.3 dev veth0");
        ip("-6 route add default nexthop via fe80::2 dev veth0 nexthop via fe80::3 dev veth0");
        let gws = nl.default_gateways().await.unwrap();
        let mut got: Vec<IpAddr> = gws.iter().map(|g| g.address).collect();
        got[..2].sort();
        got[2..].sort();
        let want: Vec<IpAddr> = ["192.0.2.2", "192.0.2.3", "fe80::2", "fe80::3"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(got, want);
        assert!(gws.iter().all(|g| g.ifindex == idx && g.ifname == "veth0"));
    });
}

#[test]
fn addresses_on_lo_are_idempotent() {
    in_private_netns(|| async {
        let nl = Netlink::connect().unwrap();
        let lo = nl.link_index("lo").await.unwrap();
        assert_eq!(nl.link_name(lo).await.unwrap(), "lo");
        let v4: IpNet = "198.51.100.10/32".parse().unwrap();
        let v6: IpNet = "2001:db8:ff::10/128".parse().unwrap();
        let on_lo = || {
            let links = ip_json("addr show dev lo");
            links[0]["addr_info"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
                .collect::<Vec<_>>()
        };
        // Added, then there already.
        for added in [true, false] {
            assert_eq!(nl.add_address("lo", v4).await.unwrap(), added);
            assert_eq!(nl.add_address("lo", v6).await.unwrap(), added);
        }
        let shown = on_lo();
        assert_eq!(shown.iter().filter(|a| *a == "198.51.100.10/32").count(), 1);
        assert_eq!(
            shown.iter().filter(|a| *a == "2001:db8:ff::10/128").count(),
            1
        );
        let listed = nl.addresses(lo).await.unwrap();
        assert!(listed.contains(&v4) && listed.contains(&v6), "{listed:?}");
        assert!(listed.contains(&"127.0.0.1/8".parse().unwrap()));
        for _ in 0..2 {
            nl.remove_address("lo", v4).await.unwrap();
            nl.remove_address("lo", v6).await.unwrap();
        }
        let shown = on_lo();
        assert!(
            !shown
                .iter()
                .any(|a| a.starts_with("198.51.100.10") || a.starts_with("2001:db8:ff::10"))
        );
        assert!(shown.contains(&"127.0.0.1/8".to_owned()));
        // An interface that does not exist.
        assert!(matches!(
            nl.add_address("nosuch0", v4).await,
            Err(NetlinkError::NoSuchInterface(name)) if name == "nosuch0"
        ));
        let long = nl.link_index("a-name-far-too-long-for-linux").await;
        assert!(
            matches!(long, Err(NetlinkError::NoSuchInterface(_))),
            "{long:?}"
        );
    });
}

#[test]
fn replace_single_and_ecmp_then_shrink() {
    in_private_netns(|| async {
        let idx = veth();
        let nl = Netlink::connect().unwrap();
        let single = route(100, "198.51.100.10/32", &[hop("192.0.2.2", Some(idx))]);
        let ecmp = route(
            100,
            "198.51.100.20/32",
            &[
                hop("192.0.2.2", Some(idx)),
                hop("192.0.2.3", Some(idx)),
                hop("192.0.2.4", Some(idx)),
            ],
        );
        all_ok(nl.replace_routes(&[single.clone(), ecmp.clone()]).await);

        let table = shown("", 100);
        let s = find(&table, "198.51.100.10").expect("single route");
        assert_eq!(s["protocol"], "201");
        assert_eq!(s["dev"], "veth0");
        assert_eq!(gateways(s), ["192.0.2.2"]);
        let e = find(&table, "198.51.100.20").expect("ECMP route");
        assert_eq!(e["protocol"], "201");
        assert_eq!(e["nexthops"].as_array().unwrap().len(), 3);
        assert_eq!(gateways(e), ["192.0.2.2", "192.0.2.3", "192.0.2.4"]);
        assert_eq!(
            nl.our_routes().await.unwrap(),
            vec![single.clone(), ecmp.clone()]
        );

        // Replace: 3 next hops become 2 (no ifindex given: the kernel
        // finds it, and our_routes reports it).
        let shrunk = route(
            100,
            "198.51.100.20/32",
            &[hop("192.0.2.4", None), hop("192.0.2.3", None)],
        );
        all_ok(nl.replace_routes(std::slice::from_ref(&shrunk)).await);
        let table = shown("", 100);
        assert_eq!(table.len(), 2);
        let e = find(&table, "198.51.100.20").unwrap();
        assert_eq!(gateways(e), ["192.0.2.3", "192.0.2.4"]);
        let want = route(
            100,
            "198.51.100.20/32",
            &[hop("192.0.2.3", Some(idx)), hop("192.0.2.4", Some(idx))],
        );
        assert_eq!(nl.our_routes().await.unwrap(), vec![single.clone(), want]);

        // ECMP back to a single path, and replacing twice changes nothing.
        let back = route(100, "198.51.100.20/32", &[hop("192.0.2.2", Some(idx))]);
        all_ok(nl.replace_routes(&[back.clone(), back.clone()]).await);
        assert_eq!(nl.our_routes().await.unwrap(), vec![single, back]);
        assert!(shown("", 254).iter().all(|r| r["protocol"] != "201"));
    });
}

#[test]
fn delete_removes_exactly_ours() {
    in_private_netns(|| async {
        let idx = veth();
        let nl = Netlink::connect().unwrap();
        // Someone else's routes in the same table: another prefix, and the
        // same prefix as ours with another metric.
        ip("route add 198.51.100.30/32 via 192.0.2.2 dev veth0 proto static table 100");
        ip("route add 198.51.100.10/32 via 192.0.2.3 dev veth0 proto static metric 50 table 100");
        ip(
            "-6 route add 2001:db8:100::10/128 via 2001:db8::3 dev veth0 proto static metric 2000 table 100",
        );
        let ours = vec![
            route(100, "198.51.100.10/32", &[hop("192.0.2.2", Some(idx))]),
            route(
                100,
                "198.51.100.11/32",
                &[hop("192.0.2.2", Some(idx)), hop("192.0.2.4", Some(idx))],
            ),
            route(
                100,
                "2001:db8:100::10/128",
                &[hop("2001:db8::2", Some(idx))],
            ),
        ];
        all_ok(nl.replace_routes(&ours).await);
        assert_eq!(shown("", 100).len(), 4);
        assert_eq!(nl.our_routes().await.unwrap(), ours);

        // Delete ours, plus the other protocol's prefix as if it were ours.
        let mut delete = ours.clone();
        delete.push(route(100, "198.51.100.30/32", &[]));
        all_ok(nl.delete_routes(&delete).await);
        assert!(nl.our_routes().await.unwrap().is_empty());
        let left = shown("", 100);
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.iter().all(|r| r["protocol"] == "static"));
        assert!(find(&left, "198.51.100.30").is_some());
        assert_eq!(find(&left, "198.51.100.10").unwrap()["metric"], 50);
        let left6 = shown("-6", 100);
        assert_eq!(left6.len(), 1, "{left6:?}");
        assert_eq!(left6[0]["protocol"], "static");

        // Gone already: not an error.
        all_ok(nl.delete_routes(&delete).await);
    });
}

#[test]
fn ipv6_ecmp_link_local_and_big_table() {
    in_private_netns(|| async {
        let idx = veth();
        let nl = Netlink::connect().unwrap();
        let ecmp = route(
            100,
            "2001:db8:100::/64",
            &[
                hop("2001:db8::2", Some(idx)),
                hop("2001:db8::3", Some(idx)),
                hop("2001:db8::4", Some(idx)),
            ],
        );
        let link_local = route(1000, "2001:db8:200::1/128", &[hop("fe80::2", Some(idx))]);
        all_ok(nl.replace_routes(&[ecmp.clone(), link_local.clone()]).await);
        let table = shown("-6", 100);
        let e = find(&table, "2001:db8:100::/64").expect("IPv6 ECMP route");
        assert_eq!(e["protocol"], "201");
        assert_eq!(gateways(e), ["2001:db8::2", "2001:db8::3", "2001:db8::4"]);
        let big = shown("-6", 1000);
        assert_eq!(
            gateways(find(&big, "2001:db8:200::1").unwrap()),
            ["fe80::2"]
        );
        assert_eq!(
            nl.our_routes().await.unwrap(),
            vec![ecmp.clone(), link_local.clone()]
        );

        let shrunk = route(
            100,
            "2001:db8:100::/64",
            &[hop("2001:db8::2", Some(idx)), hop("2001:db8::4", Some(idx))],
        );
        all_ok(nl.replace_routes(std::slice::from_ref(&shrunk)).await);
        let table = shown("-6", 100);
        assert_eq!(table.len(), 1, "{table:?}");
        assert_eq!(gateways(&table[0]), ["2001:db8::2", "2001:db8::4"]);
        assert_eq!(
            nl.our_routes().await.unwrap(),
            vec![shrunk.clone(), link_local.clone()]
        );

        all_ok(nl.delete_routes(&[shrunk, link_local]).await);
        assert!(shown("-6", 100).is_empty());
        assert!(shown("-6", 1000).is_empty());
    });
}

#[test]
fn ipv4_route_via_ipv6_gateway() {
    in_private_netns(|| async {
        let idx = veth();
        let nl = Netlink::connect().unwrap();
        let via = route(100, "198.51.100.50/32", &[hop("2001:db8::2", Some(idx))]);
        let via_ecmp = route(
            100,
            "198.51.100.51/32",
            &[hop("fe80::2", Some(idx)), hop("fe80::3", Some(idx))],
        );
        all_ok(nl.replace_routes(&[via.clone(), via_ecmp.clone()]).await);
        let table = shown("", 100);
        let r = find(&table, "198.51.100.50").unwrap();
        assert_eq!(r["via"]["family"], "inet6");
        assert_eq!(gateways(r), ["2001:db8::2"]);
        assert_eq!(
            gateways(find(&table, "198.51.100.51").unwrap()),
            ["fe80::2", "fe80::3"]
        );
        assert_eq!(nl.our_routes().await.unwrap(), vec![via, via_ecmp]);
    });
}

#[test]
fn errors_name_the_route_and_keep_their_place() {
    in_private_netns(|| async {
        let idx = veth();
        let mut nl = Netlink::connect().unwrap();
        let good = |i: u32| {
            route(
                100,
                &format!("198.51.100.{i}/32"),
                &[hop("192.0.2.2", Some(idx))],
            )
        };
        let unreachable = route(100, "198.51.100.200/32", &[hop("203.0.113.1", None)]);
        let no_hop = route(100, "198.51.100.201/32", &[]);
        let results = nl
            .replace_routes(&[unreachable.clone(), good(1), no_hop, good(2)])
            .await;
        let text: Vec<String> = results
            .iter()
            .map(|r| match r {
                Ok(()) => "ok".to_owned(),
                Err(e) => e.to_string(),
            })
            .collect();
        assert_eq!(
            text,
            [
                "replace route 198.51.100.200/32 table 100: Network is unreachable",
                "ok",
                "replace route 198.51.100.201/32 table 100: a route needs a next hop",
                "ok",
            ]
        );
        assert!(matches!(results[0], Err(NetlinkError::Kernel { .. })));

        // Many routes over several datagrams, with failures at known
        // places, in both pipelines.
        for pipeline in [Pipeline::DEFAULT, Pipeline::ONE_AT_A_TIME] {
            nl.set_pipeline(pipeline);
            let routes: Vec<Route> = (0..1000u32)
                .map(|i| {
                    let gw = if i % 97 == 5 {
                        "203.0.113.1"
                    } else {
                        "192.0.2.3"
                    };
                    route(
                        100,
                        &format!("10.{}.{}.0/24", i / 256, i % 256),
                        &[hop(gw, Some(idx))],
                    )
                })
                .collect();
            let results = nl.replace_routes(&routes).await;
            assert_eq!(results.len(), routes.len());
            for (i, r) in results.iter().enumerate() {
                assert_eq!(r.is_err(), i % 97 == 5, "route {i}: {r:?}");
                if let Err(e) = r {
                    assert!(
                        e.to_string()
                            .starts_with(&format!("replace route {} table 100:", routes[i].prefix))
                    );
                }
            }
            let installed = nl.our_routes().await.unwrap();
            assert_eq!(installed.len(), 2 + 1000 - 11);
            all_ok(nl.delete_routes(&routes).await);
            assert_eq!(nl.our_routes().await.unwrap().len(), 2);
        }
    });
}

#[test]
fn rules_are_ensured_once_and_removed() {
    in_private_netns(|| async {
        veth();
        let nl = Netlink::connect().unwrap();
        let iif = Rule {
            priority: 1000,
            iif: Some("veth0".into()),
            to: None,
            from: None,
            table: 100,
            v6: false,
        };
        let to_big = Rule {
            priority: 1001,
            iif: None,
            to: Some("198.51.100.0/24".parse().unwrap()),
            from: Some("10.244.0.0/16".parse().unwrap()),
            table: 1000,
            v6: false,
        };
        let v6 = Rule {
            priority: 1000,
            iif: Some("veth0".into()),
            to: None,
            from: None,
            table: 100,
            v6: true,
        };
        for _ in 0..2 {
            for rule in [&iif, &to_big, &v6] {
                nl.ensure_rule(rule).await.unwrap();
            }
        }
        let rules = ip_json("-d rule show");
        let at = |p: u64| {
            rules
                .iter()
                .filter(|r| r["priority"] == p)
                .collect::<Vec<_>>()
        };
        assert_eq!(at(1000).len(), 1, "{rules:?}");
        assert_eq!(at(1000)[0]["iif"], "veth0");
        assert_eq!(at(1000)[0]["table"], "100");
        assert_eq!(at(1000)[0]["protocol"], RTPROT_PODPEER.to_string());
        assert_eq!(at(1001).len(), 1);
        assert_eq!(at(1001)[0]["table"], "1000");
        assert_eq!(at(1001)[0]["dst"], "198.51.100.0");
        assert_eq!(at(1001)[0]["dstlen"], 24);
        assert_eq!(at(1001)[0]["src"], "10.244.0.0");
        let rules6 = ip_json("-6 rule show");
        assert_eq!(rules6.iter().filter(|r| r["priority"] == 1000).count(), 1);
        let listed = nl.rules(false).await.unwrap();
        assert!(listed.contains(&(iif.clone(), RTPROT_PODPEER)));
        assert!(listed.contains(&(to_big.clone(), RTPROT_PODPEER)));

        // An identical rule someone else added counts as there, and is not
        // ours to remove.
        ip("rule add priority 2000 iif veth1 lookup 200");
        let theirs = Rule {
            priority: 2000,
            iif: Some("veth1".into()),
            table: 200,
            ..iif.clone()
        };
        nl.ensure_rule(&theirs).await.unwrap();
        let rules = ip_json("rule show");
        assert_eq!(rules.iter().filter(|r| r["priority"] == 2000).count(), 1);

        for _ in 0..2 {
            for rule in [&iif, &to_big, &v6, &theirs] {
                nl.remove_rule(rule).await.unwrap();
            }
        }
        let rules = ip_json("rule show");
        let prios: Vec<u64> = rules
            .iter()
            .map(|r| r["priority"].as_u64().unwrap())
            .collect();
        assert_eq!(prios, [0, 2000, 32766, 32767]);
        let prios6: Vec<u64> = ip_json("-6 rule show")
            .iter()
            .map(|r| r["priority"].as_u64().unwrap())
            .collect();
        assert_eq!(prios6, [0, 32766]);
    });
}

#[test]
fn no_vrf_on_this_kernel_and_no_side_effects() {
    in_private_netns(|| async {
        veth();
        let nl = Netlink::connect().unwrap();
        let before = ip("-o link show");
        assert!(!nl.has_vrf().await);
        assert!(matches!(
            nl.ensure_vrf("vips", 100).await,
            Err(NetlinkError::Unsupported(_))
        ));
        // An existing interface that is not a VRF.
        assert!(matches!(
            nl.ensure_vrf("veth0", 100).await,
            Err(NetlinkError::Kernel { .. })
        ));
        assert_eq!(ip("-o link show"), before);
    });
}

#[test]
fn connect_binds_to_the_calling_threads_namespace() {
    in_private_netns(|| async {
        ip("link add veth7 type veth peer name veth8");
        let nl = Netlink::connect().unwrap();
        assert!(nl.link_index("veth7").await.is_ok());
    });
    in_private_netns(|| async {
        let nl = Netlink::connect().unwrap();
        assert!(matches!(
            nl.link_index("veth7").await,
            Err(NetlinkError::NoSuchInterface(_))
        ));
    });
}

#[test]
fn batches_are_capped_so_no_answer_is_lost() {
    in_private_netns(|| async {
        veth();
        let mut nl = Netlink::connect().unwrap();
        // The default, unless the receive buffer is small.
        assert!(nl.pipeline().batch <= Pipeline::DEFAULT.batch);
        assert_eq!(nl.pipeline().in_flight, Pipeline::DEFAULT.in_flight);
        nl.set_pipeline(Pipeline {
            batch: 100_000,
            in_flight: 0,
        });
        let effective = nl.pipeline();
        assert!((16..=512).contains(&effective.batch), "{effective:?}");
        assert_eq!(effective.in_flight, 1);
        // Every request fails: error answers are the larger ones. None may
        // be lost (a lost one would come back as "no answer" after 30 s).
        let routes: Vec<Route> = (0..5000u32)
            .map(|i| {
                route(
                    100,
                    &format!("10.{}.{}.{}/32", i >> 16, (i >> 8) & 255, i & 255),
                    &[hop("203.0.113.1", None)],
                )
            })
            .collect();
        let results = nl.replace_routes(&routes).await;
        for r in &results {
            let e = r.as_ref().unwrap_err().to_string();
            assert!(e.ends_with("Network is unreachable"), "{e}");
        }
    });
}
