//! The vertical slice end to end: podpeer-sidecar in pods, podpeer-node on the
//! node, FRR as the fabric, a client behind it, each in its own network
//! namespace (see `podlab`). The node and sidecars are the real binaries
//! (`cargo test --workspace` builds them); every assertion reads real state:
//! the node's kernel table, FRR's RIB and kernel, HTTP answers through the VIP.

// A failed expectation in a test is a panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bgp_core::fsm::RemoteAs;
use bgp_core::policy::{Action, Match, PrefixEntry, PrefixSet, RouteMap, Set, Term};
use bgp_core::speaker::{NeighborConfig, SpeakerConfig};
use nix::sys::signal::Signal;
use podpeer_interop_tests::ours::{attrs, net};
use podpeer_interop_tests::podlab::{
    self, HIJACK, NODE_IP, Options, POD_GATEWAY, PodLab, VIP, VIP_TABLE, peer_list,
};
use podpeer_interop_tests::{Netns, NsSpeaker, skip_unless_runnable, veth};
use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(30);

fn start(options: Options) -> PodLab {
    let mut lab = PodLab::start(options).expect("the lab starts");
    lab.wait_sessions(PATIENCE).expect("sessions come up");
    let all: Vec<usize> = (0..lab.pods.len()).collect();
    lab.wait_next_hops(&all, PATIENCE)
        .expect("the VIP is installed with a next hop per pod");
    lab
}

fn peer(lab: &PodLab, address: &str) -> Option<Value> {
    peer_list(&lab.node_peers().unwrap())
        .into_iter()
        .find(|p| p["address"] == address)
}

/// The per-reason rejection counters of a peer in `peers --json`.
fn rejected_by_reason(peer: &Value) -> BTreeMap<String, u64> {
    peer["rejectedByReason"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                .filter(|(_, v)| *v > 0)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether any routing table of `ns` has a route for exactly `prefix`.
fn anywhere(ns: &Netns, prefix: &str) -> bool {
    let out = ns
        .ip(&["route", "show", "table", "all", "exact", prefix])
        .unwrap();
    let out6 = ns
        .ip(&["-6", "route", "show", "table", "all", "exact", prefix])
        .unwrap_or_default();
    !(out.trim().is_empty() && out6.trim().is_empty())
}

fn wait(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out after {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

#[test]
fn vip_from_three_pods_is_installed_as_ecmp_and_reachable_from_the_client() {
    skip_unless_runnable!(&[]);
    let lab = start(Options {
        hijack: false,
        ..Options::default()
    });
    // One kernel route, three next hops, podpeer's protocol, in the VIP table.
    let raw = lab
        .node_ns
        .ip(&["-j", "route", "show", "table", &VIP_TABLE.to_string(), VIP])
        .unwrap();
    let routes: Vec<Value> = serde_json::from_str(&raw).unwrap();
    assert_eq!(routes.len(), 1, "{raw}");
    assert_eq!(
        routes[0]["nexthops"].as_array().map(Vec::len),
        Some(3),
        "{raw}"
    );
    // The fabric is reached through the VRF stand-in: a rule for its interface.
    let rules = lab.node_ns.ip(&["rule"]).unwrap();
    assert!(
        rules.contains("iif fabric lookup 100"),
        "no rule for the fabric interface: {rules}"
    );
    // The fabric has the VIP from the node, with the group's community.
    let fabric = wait_fabric(&lab);
    assert_eq!(fabric, [NODE_IP]);
    let path = lab.fabric.path(&format!("{VIP}/32")).unwrap().unwrap();
    assert!(path.communities.contains("65010:100"), "{path:?}");
    assert_eq!(
        path.as_path, "65010 4200000001",
        "the node passes the pod's AS on: {path:?}"
    );
    // The client's requests reach every pod (flows hashed over the next hops).
    let answers = lab.client_requests(60).unwrap();
    assert_eq!(
        answers.keys().cloned().collect::<Vec<_>>(),
        ["pod1", "pod2", "pod3"],
        "{answers:?}"
    );
    // A sidecar tells its own state.
    let sidecar = lab.bins.sidecar.display().to_string();
    let status = lab.pods[0]
        .ns
        .exec(&[&sidecar, "status", "--http", podlab::SIDECAR_HTTP])
        .unwrap();
    assert!(status.contains(POD_GATEWAY), "{status}");
    assert!(status.contains("Established"), "{status}");
    assert!(status.contains(VIP), "{status}");
    // And the node its own.
    let routes = lab.node_cli(&["routes"]).unwrap();
    for p in &lab.pods {
        assert!(routes.contains(&p.ip.to_string()), "{routes}");
    }
}

fn wait_fabric(lab: &PodLab) -> Vec<String> {
    let mut via = None;
    wait("the fabric learns the VIP", PATIENCE, || {
        via = lab.fabric_route(VIP).unwrap();
        via.is_some()
    });
    via.unwrap()
}

#[test]
fn failing_health_check_takes_the_pod_out_and_back() {
    skip_unless_runnable!(&[]);
    let mut lab = start(Options {
        hijack: false,
        ..Options::default()
    });
    wait_fabric(&lab);
    // One pod's server stops: its next hop leaves, the others stay.
    let t = Instant::now();
    lab.stop_http(1);
    lab.wait_next_hops(&[0, 2], PATIENCE).unwrap();
    let one = t.elapsed();
    let answers = lab.client_requests(20).unwrap();
    assert!(!answers.contains_key("pod2"), "{answers:?}");
    // Every pod fails: the VIP leaves the node and then the fabric.
    let t = Instant::now();
    lab.stop_http(0);
    lab.stop_http(2);
    wait("the VIP leaves the node", PATIENCE, || {
        lab.vip_next_hops().unwrap().is_empty()
    });
    let node = t.elapsed();
    wait("the VIP leaves the fabric", PATIENCE, || {
        lab.fabric_route(VIP).unwrap().is_none()
    });
    let fabric = t.elapsed();
    eprintln!(
        "health check failure -> next hop gone from the node's kernel: {:.0} ms; \
         all pods failing -> VIP gone from the node: {:.0} ms, from the fabric's kernel: {:.0} ms \
         (check interval 300 ms, fall 2)",
        one.as_secs_f64() * 1e3,
        node.as_secs_f64() * 1e3,
        fabric.as_secs_f64() * 1e3
    );
    // Servers back: the pods come back.
    for i in 0..3 {
        lab.start_http(i).unwrap();
    }
    lab.wait_next_hops(&[0, 1, 2], PATIENCE).unwrap();
    wait_fabric(&lab);
}

#[test]
fn sigterm_withdraws_before_the_session_closes() {
    skip_unless_runnable!(&[]);
    // A drain long enough for the watcher below to see the next hop leave
    // and ask the node about the session on a loaded machine.
    let mut lab = start(Options {
        hijack: false,
        drain_time: Duration::from_secs(5),
        ..Options::default()
    });
    let pod = lab.pods[0].ip.to_string();
    let pod_ns = lab.pods[0].ns.path();
    assert!(
        lab.pods[0]
            .ns
            .ip(&["addr", "show", "lo"])
            .unwrap()
            .contains(VIP)
    );
    // Watch from another thread: when the next hop leaves the kernel route,
    // the session must still be up (the sidecar's default graceful shutdown
    // marks the VIP with GRACEFUL_SHUTDOWN, the node drops the pod's path
    // from the ECMP set, then drain, then close).
    let bins = lab.bins.node.display().to_string();
    let node_ns = lab.node_ns.name().to_string();
    let watcher = std::thread::spawn(move || {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            let hops = podlab::kernel_routes_by_name(&node_ns, VIP_TABLE).unwrap();
            if !hops.get(VIP).is_some_and(|h| h.contains(&pod)) {
                let out = std::process::Command::new("ip")
                    .args(["netns", "exec", &node_ns, &bins, "peers", "--json"])
                    .args(["--http", podlab::NODE_HTTP])
                    .output()
                    .unwrap();
                let peers: Value = serde_json::from_slice(&out.stdout).unwrap();
                return peer_list(&peers)
                    .into_iter()
                    .find(|p| p["address"] == pod.as_str())
                    .map(|p| p["state"].clone());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    });
    let status = lab.stop_sidecar(0, Signal::SIGTERM).unwrap();
    assert!(status.success(), "the sidecar exits 0 on SIGTERM: {status}");
    let state = watcher.join().unwrap();
    assert_eq!(
        state,
        Some(Value::from("Established")),
        "the route left while the session was still up"
    );
    lab.wait_next_hops(&[1, 2], PATIENCE).unwrap();
    // The VIP it added to lo is gone.
    let lo = podlab::in_namespace(&pod_ns, || {
        Ok(std::process::Command::new("ip")
            .args(["addr", "show", "lo"])
            .output()?
            .stdout)
    })
    .unwrap();
    assert!(!String::from_utf8_lossy(&lo).contains(VIP));
    let log = lab.sidecar_log(0);
    assert!(
        log.contains("marked 1 VIP(s) with GRACEFUL_SHUTDOWN"),
        "{log}"
    );
}

#[test]
fn pod_restarted_with_a_new_address_is_followed() {
    skip_unless_runnable!(&[]);
    let mut lab = start(Options {
        hijack: false,
        ..Options::default()
    });
    let old = lab.pods[0].ip.to_string();
    lab.readdress_pod(0, Ipv4Addr::new(10, 244, 1, 21)).unwrap();
    lab.wait_sessions(PATIENCE).unwrap();
    lab.wait_next_hops(&[0, 1, 2], PATIENCE).unwrap();
    let hops = lab.vip_next_hops().unwrap();
    assert!(hops.contains(&"10.244.1.21".to_string()), "{hops:?}");
    assert!(!hops.contains(&old), "stale next hop {old}: {hops:?}");
    // The old session is gone from the node too (after its hold time at most).
    wait("the old peer leaves", PATIENCE, || {
        peer(&lab, &old).is_none_or(|p| p["state"] != "Established")
    });
}

/// A pod that is a bgp-core speaker, to send what podpeer-sidecar never would:
/// a foreign next hop, a transit AS path.
fn rogue_pod(lab: &PodLab, ip: Ipv4Addr, announce: &[&str]) -> (Netns, NsSpeaker) {
    let ns = Netns::new("rogue").unwrap();
    veth(
        &ns,
        "eth0",
        &[&format!("{ip}/24")],
        &lab.node_ns,
        "vrogue",
        &[],
    )
    .unwrap();
    lab.node_ns
        .ip(&["link", "set", "vrogue", "master", "pods"])
        .unwrap();
    ns.ip(&["route", "add", "default", "via", POD_GATEWAY])
        .unwrap();
    let mut config = SpeakerConfig::new(4_200_000_099, ip);
    config.listen = Vec::new();
    let speaker = NsSpeaker::start(&ns, config).unwrap();
    let term = |prefix: &str, set: Set| Term {
        name: prefix.to_string(),
        matches: vec![Match::Prefix(PrefixSet::new(vec![PrefixEntry::exact(
            net(prefix),
        )]))],
        sets: vec![set],
        action: Action::Accept,
    };
    let mut n = NeighborConfig::new(POD_GATEWAY.parse().unwrap(), RemoteAs::External);
    n.connect_retry = Duration::from_secs(1);
    n.hold_time = 9;
    n.import = Some(RouteMap {
        name: "nothing".into(),
        terms: Vec::new(),
        default_accept: false,
    });
    n.export = Some(RouteMap {
        name: "rogue".into(),
        terms: vec![
            term(
                "198.51.100.31/32",
                Set::NextHop(IpAddr::V4(Ipv4Addr::new(10, 244, 1, 11))),
            ),
            term(
                "198.51.100.32/32",
                Set::Prepend {
                    asn: 64999,
                    times: 1,
                },
            ),
        ],
        default_accept: true,
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        speaker.add_neighbor(n).await.unwrap();
        for p in announce {
            speaker
                .announce(net(p), attrs(None, &[], &[]))
                .await
                .unwrap();
        }
    });
    (ns, speaker)
}

#[test]
fn every_hijack_is_refused_and_never_installed() {
    skip_unless_runnable!(&[]);
    let lab = start(Options::default());
    let refused = [
        ("10.244.0.0/16", "forbidden"),     // the pod CIDR itself
        ("10.96.0.10/32", "forbidden"),     // more specific of the service CIDR
        ("172.30.0.0/25", "forbidden"),     // the node's subnet, more specific
        ("0.0.0.0/0", "forbidden"),         // the default route
        ("203.0.113.1/32", "not-allowed"),  // outside the allowed prefixes
        ("198.51.100.0/25", "not-allowed"), // inside, but le 32 ge 32 says /32 only
        ("198.51.100.31/32", "next-hop"),   // next hop is another pod
        ("198.51.100.32/32", "as-path"),    // a transit AS path
    ];
    let good = [
        "198.51.100.41/32",
        "198.51.100.42/32",
        "198.51.100.43/32",
        "198.51.100.44/32",
        "198.51.100.45/32", // one too many: maxPrefixes is 4
    ];
    let announce: Vec<&str> = refused.iter().map(|(p, _)| *p).chain(good).collect();
    let rogue_ip = Ipv4Addr::new(10, 244, 1, 99);
    let (_ns, _rogue) = rogue_pod(&lab, rogue_ip, &announce);

    // The sidecar's own hijack (pod3 announces kube-dns's address) is refused.
    let pod3 = lab.pods[2].ip.to_string();
    let mut reasons = BTreeMap::new();
    wait("pod3's hijack is counted", PATIENCE, || {
        reasons = peer(&lab, &pod3)
            .map(|p| rejected_by_reason(&p))
            .unwrap_or_default();
        reasons.get("forbidden") == Some(&1)
    });
    // Every rogue route is counted under its reason; the session stays up.
    let mut rogue = Value::Null;
    wait("the rogue pod's routes are all judged", PATIENCE, || {
        rogue = peer(&lab, &rogue_ip.to_string()).unwrap_or(Value::Null);
        rejected_by_reason(&rogue).values().sum::<u64>() >= 9
    });
    let by_reason = rejected_by_reason(&rogue);
    let expected: BTreeMap<String, u64> = [
        ("forbidden", 4),
        ("not-allowed", 2),
        ("next-hop", 1),
        ("as-path", 1),
        ("max-prefixes", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(by_reason, expected, "{rogue}");
    assert_eq!(rogue["state"], "Established", "{rogue}");
    // Nothing refused reaches a kernel table, of the node or of the fabric.
    for (p, _) in refused.iter().chain([&(HIJACK, "")]) {
        if *p == "0.0.0.0/0" {
            let t = podlab::kernel_routes(&lab.node_ns, VIP_TABLE).unwrap();
            assert!(!t.contains_key("default"), "{t:?}");
            continue;
        }
        assert!(
            !podlab::kernel_routes(&lab.node_ns, VIP_TABLE)
                .unwrap()
                .contains_key(p.trim_end_matches("/32")),
            "{p} installed"
        );
        if !p.starts_with("10.244.") && !p.starts_with("172.30.") {
            assert!(!anywhere(&lab.node_ns, p), "{p} is in a node table");
            assert!(!anywhere(&lab.fabric_ns, p), "{p} reached the fabric");
        }
    }
    // Four of the five good ones are installed.
    let table = podlab::kernel_routes(&lab.node_ns, VIP_TABLE).unwrap();
    let installed = good
        .iter()
        .filter(|p| table.contains_key(p.trim_end_matches("/32")))
        .count();
    assert_eq!(installed, 4, "{table:?}");
    // The pods' VIP is untouched by all this.
    assert_eq!(lab.vip_next_hops().unwrap().len(), 3);
}

#[test]
fn a_peer_no_group_admits_is_refused() {
    skip_unless_runnable!(&[]);
    let lab = start(Options {
        hijack: false,
        ..Options::default()
    });
    // 10.244.1.200 is on the pod network but outside the group's 10.244.1.0/25.
    let outsider = Ipv4Addr::new(10, 244, 1, 200);
    let (ns, _speaker) = rogue_pod(&lab, outsider, &["198.51.100.77/32"]);
    // It can reach the node (the network is fine)...
    ns.exec(&["ping", "-c", "1", "-W", "2", POD_GATEWAY])
        .unwrap();
    // ...but BGP connections are refused at accept: no peer, no route.
    let addr = SocketAddr::new(IpAddr::V4(outsider), 0);
    // Once the refusal is logged, the rogue speaker has tried at least once.
    wait("the refusal logged", PATIENCE, || {
        lab.node_log()
            .lines()
            .any(|l| l.contains("connection refused") && l.contains("10.244.1.200"))
    });
    assert!(peer(&lab, &addr.ip().to_string()).is_none());
    assert!(
        !podlab::kernel_routes(&lab.node_ns, VIP_TABLE)
            .unwrap()
            .contains_key("198.51.100.77")
    );
}

#[test]
fn node_restart_leaves_no_stale_and_no_missing_route() {
    skip_unless_runnable!(&[]);
    let mut lab = start(Options {
        hijack: false,
        // Longer than the node's start plus the sidecars' reconnect backoff
        // (1, 2, 4 s) on a loaded machine: the live pods come back within it.
        reconcile_after: Duration::from_secs(10),
        ..Options::default()
    });
    let status = lab.stop_node().unwrap();
    assert!(
        status.success(),
        "podpeer-node exits 0 on SIGTERM: {status}"
    );
    // Its routes stay while it is down: traffic keeps flowing.
    assert_eq!(lab.vip_next_hops().unwrap().len(), 3);
    // pod3 dies while the node is down.
    lab.stop_sidecar(2, Signal::SIGKILL).unwrap();
    lab.start_node().unwrap();
    // pod1 and pod2 never leave the route; pod3's next hop goes once the
    // node has waited reconcileAfter for it.
    let t = Instant::now();
    let keep = [lab.pods[0].ip.to_string(), lab.pods[1].ip.to_string()];
    loop {
        let hops = lab.vip_next_hops().unwrap();
        assert!(
            keep.iter().all(|k| hops.contains(k)),
            "a live pod left the route during the restart: {hops:?}"
        );
        if hops.len() == 2 {
            break;
        }
        assert!(
            t.elapsed() < PATIENCE,
            "pod3's stale next hop stays: {hops:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    lab.wait_sessions(PATIENCE).unwrap();
    // Nothing else of ours anywhere.
    let table = podlab::kernel_routes(&lab.node_ns, VIP_TABLE).unwrap();
    assert_eq!(table.len(), 1, "{table:?}");
    lab.check_processes().unwrap();
}
