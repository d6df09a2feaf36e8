//! The real `podpeer-node` binary in a "node" namespace, with pods (bgp-core
//! speakers, several pod addresses on one link) and a fabric router (FRR) in
//! namespaces of their own. Checked in the node namespace's kernel tables
//! (`ip -j route`, `ip -j rule`), through `podpeer-node peers|status --json`,
//! and in FRR.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bgp_core::fsm::{RemoteAs, State};
use bgp_core::policy::{Action, Match, PrefixEntry, PrefixSet, RouteMap, Set, Term};
use bgp_core::speaker::{NeighborConfig, SpeakerConfig};
use bgp_core::wire::{AfiSafi, AsPath, Origin, PathAttributes};
use interop_tests::{FRR_BINARIES, Frr, Netns, NsSpeaker, eventually, skip_unless_runnable, veth};
use ipnet::IpNet;
use serde_json::Value;

mod support;

use support::node::{BIN, NodeProc};
const PATIENCE: Duration = Duration::from_secs(20);
const NODE: &str = "10.244.1.1";
const NODE_AS: u32 = 65010;
const FABRIC: &str = "192.0.2.1";
const FABRIC_AS: u32 = 65000;
const VIP: &str = "198.51.100.10/32";

/// The node's configuration: group `lb` (pods 10.244.1.0/28, table 100 via
/// VRF `vips` whose member is the fabric link) and group `bulk` (pods
/// 10.244.1.32/28, table 101, room for thousands of VIPs).
fn node_config(reconcile_after: &str) -> String {
    format!(
        r#"
localAs: {NODE_AS}
routerId: 192.0.2.10
listen: ["0.0.0.0:179", "[::]:179"]
http: 127.0.0.1:9180
forbiddenPrefixes: [10.244.0.0/16, 10.96.0.0/12, 192.0.2.0/24, 0.0.0.0/0, "::/0"]
reconcileAfter: {reconcile_after}
vrfs:
  - name: vips
    table: 100
    interfaces: [fab0]
fabric:
  - address: {FABRIC}
    remoteAs: {FABRIC_AS}
    description: tor1
    holdTime: 9s
  - address: 192.0.3.1
    remoteAs: 65001
    description: tor2
podGroups:
  - name: lb
    peers: [10.244.1.0/28]
    peerAs: 64512-65534
    allowedPrefixes:
      - {{prefix: 198.51.100.0/24, ge: 32, le: 32}}
      - {{prefix: 10.96.0.0/11, le: 32}}
    maxPrefixes: 8
    vrf: vips
    communities: ["65010:100"]
    holdTime: 9s
  - name: bulk
    peers: [10.244.1.32/28]
    allowedPrefixes:
      - {{prefix: 100.64.0.0/16, ge: 32, le: 32}}
    maxPrefixes: 10000
    table: 101
"#
    )
}

fn json(ns: &Netns, args: &[&str]) -> Value {
    let mut all = vec!["-j"];
    all.extend_from_slice(args);
    let out = match ns.ip(&all) {
        Ok(out) => out,
        // A table with no route yet does not exist.
        Err(e) if e.to_string().contains("table does not exist") => String::new(),
        Err(e) => panic!("{e}"),
    };
    if out.trim().is_empty() {
        return Value::Array(Vec::new());
    }
    serde_json::from_str(&out).unwrap()
}

/// `ip -j route show table T` in the node namespace.
fn table(ns: &Netns, t: u32) -> Vec<Value> {
    json(ns, &["route", "show", "table", &t.to_string()])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn dst(prefix: &str) -> &str {
    prefix.strip_suffix("/32").unwrap_or(prefix)
}

fn find(routes: &[Value], prefix: &str) -> Option<Value> {
    routes.iter().find(|r| r["dst"] == dst(prefix)).cloned()
}

/// The gateways of a shown route, sorted.
fn gateways(route: &Value) -> Vec<String> {
    let mut g: Vec<String> = match route["nexthops"].as_array() {
        Some(hops) => hops
            .iter()
            .map(|h| h["gateway"].as_str().unwrap().to_owned())
            .collect(),
        None => vec![route["gateway"].as_str().unwrap_or_default().to_owned()],
    };
    g.sort();
    g
}

/// Waits until `prefix` in table `t` has exactly `want` as gateways (none:
/// absent).
async fn wait_gateways(ns: &Netns, t: u32, prefix: &str, want: &[&str]) -> Option<Value> {
    let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    eventually(
        &format!("{prefix} in table {t} via {want:?}"),
        PATIENCE,
        || {
            let r = find(&table(ns, t), prefix);
            let ok = match &r {
                None => want.is_empty(),
                Some(r) => gateways(r) == want,
            };
            std::future::ready(ok.then(|| r.clone()))
        },
    )
    .await
}

/// `podpeer-node ARGS --json` run in the node namespace.
fn cli(ns: &Netns, args: &[&str]) -> Value {
    let out = ns
        .command(BIN)
        .args(args)
        .args(["--json", "--http", "127.0.0.1:9180"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "podpeer-node {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn cli_text(ns: &Netns, args: &[&str]) -> String {
    let out = ns
        .command(BIN)
        .args(args)
        .args(["--http", "127.0.0.1:9180"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn http_status(ns: &Netns, path: &str) -> Option<u16> {
    let out = ns
        .command("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:9180{path}"))
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn peer<'a>(peers: &'a Value, addr: &str) -> Option<&'a Value> {
    peers
        .as_array()?
        .iter()
        .find(|p| p["address"].as_str() == Some(addr))
}

fn ip4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn origin_attrs(path: AsPath) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(path),
        ..Default::default()
    }
}

/// A pod: a bgp-core speaker in AS `asn` on `addr` (in the pods'
/// namespace), connecting to the node; `export` decides what it sends.
async fn pod(ns: &Netns, addr: &str, asn: u32, export: RouteMap) -> NsSpeaker {
    let mut c = SpeakerConfig::new(asn, ip4(addr));
    c.listen = Vec::new();
    let s = NsSpeaker::start(ns, c).unwrap();
    let mut n = NeighborConfig::new(IpAddr::V4(ip4(NODE)), RemoteAs::Number(NODE_AS));
    n.source_address = Some(IpAddr::V4(ip4(addr)));
    n.connect_retry = Duration::from_secs(1);
    n.hold_time = 9;
    n.import = Some(RouteMap::accept_all("in"));
    n.export = Some(export);
    s.add_neighbor(n).await.unwrap();
    s
}

async fn announce(s: &NsSpeaker, prefix: &str) {
    s.announce(net(prefix), origin_attrs(AsPath::default()))
        .await
        .unwrap();
}

async fn pod_up(s: &NsSpeaker) {
    eventually("pod session Established", PATIENCE, || async {
        let n = s.neighbors().await.ok()?;
        n.first()
            .filter(|n| n.state == State::Established)
            .map(drop)
    })
    .await
}

struct Lab {
    node: Netns,
    pods: Netns,
    fabric: Netns,
    fabric2: Netns,
    dir: tempfile::TempDir,
}

impl Lab {
    /// node <-> pods (10.244.1.0/24, pod addresses added as asked) and
    /// node <-> fabric (192.0.2.0/24, FRR) and node <-> fabric2
    /// (192.0.3.0/24, a bgp-core speaker).
    fn new(pod_addrs: &[&str]) -> Self {
        let node = Netns::new("node").unwrap();
        let pods = Netns::new("pods").unwrap();
        let fabric = Netns::new("fab").unwrap();
        let fabric2 = Netns::new("fab2").unwrap();
        let addrs: Vec<String> = pod_addrs.iter().map(|a| format!("{a}/24")).collect();
        let addrs: Vec<&str> = addrs.iter().map(String::as_str).collect();
        veth(&node, "pods0", &["10.244.1.1/24"], &pods, "node0", &addrs).unwrap();
        veth(
            &node,
            "fab0",
            &["192.0.2.10/24"],
            &fabric,
            "node0",
            &["192.0.2.1/24"],
        )
        .unwrap();
        veth(
            &node,
            "fab1",
            &["192.0.3.10/24"],
            &fabric2,
            "node0",
            &["192.0.3.1/24"],
        )
        .unwrap();
        let dir = tempfile::Builder::new()
            .prefix("pp-node-")
            .tempdir()
            .unwrap();
        Self {
            node,
            pods,
            fabric,
            fabric2,
            dir,
        }
    }

    fn write_config(&self, reconcile_after: &str) -> PathBuf {
        let path = self.dir.path().join("node.yaml");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(node_config(reconcile_after).as_bytes())
            .unwrap();
        path
    }

    fn start_node(&self, config: &Path) -> NodeProc {
        NodeProc::start(
            &self.node,
            config,
            &self.dir.path().join("node.log"),
            "info,podpeer_node=debug",
        )
    }

    fn frr(&self) -> Frr {
        Frr::start(
            &self.fabric,
            &format!(
                "router bgp {FABRIC_AS}\n bgp router-id {FABRIC}\n no bgp ebgp-requires-policy\n \
                 no bgp network import-check\n \
                 neighbor 192.0.2.10 remote-as {NODE_AS}\n neighbor 192.0.2.10 timers 3 9\n \
                 neighbor 192.0.2.10 timers connect 1\n address-family ipv4 unicast\n  \
                 network 203.0.113.0/24\n  neighbor 192.0.2.10 activate\n exit-address-family\n"
            ),
        )
        .unwrap()
    }

    async fn wait_http(&self) {
        eventually("the node's HTTP server", PATIENCE, || {
            std::future::ready(http_status(&self.node, "/healthz").filter(|&c| c == 200))
        })
        .await;
    }
}

/// Export of a hijacking pod: every route as it is, but 198.51.100.50/32
/// with another pod's address as next hop.
fn hijacker_export() -> RouteMap {
    RouteMap {
        name: "hijack".into(),
        terms: vec![Term {
            name: "foreign-next-hop".into(),
            matches: vec![Match::Prefix(PrefixSet::new(vec![PrefixEntry::exact(
                net("198.51.100.50/32"),
            )]))],
            sets: vec![Set::NextHop(IpAddr::V4(ip4("10.244.1.11")))],
            action: Action::Accept,
        }],
        default_accept: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_fabric_guard_fib_and_restart() {
    skip_unless_runnable!(FRR_BINARIES);
    let lab = Lab::new(&[
        "10.244.1.11",
        "10.244.1.12",
        "10.244.1.13",
        "10.244.1.14",
        "10.244.1.15",
        "10.244.1.100",
    ]);
    let frr = lab.frr();
    let config = lab.write_config("8s");
    let mut node = lab.start_node(&config);
    lab.wait_http().await;

    // A second fabric neighbor: a bgp-core speaker in AS 65001.
    let mut c = SpeakerConfig::new(65001, ip4("192.0.3.1"));
    c.listen = Vec::new();
    let tor2 = NsSpeaker::start(&lab.fabric2, c).unwrap();
    let mut n = NeighborConfig::new(IpAddr::V4(ip4("192.0.3.10")), RemoteAs::Number(NODE_AS));
    n.connect_retry = Duration::from_secs(1);
    n.import = Some(RouteMap::accept_all("in"));
    n.export = Some(RouteMap::accept_all("out"));
    tor2.add_neighbor(n).await.unwrap();

    // Fabric up; then ready.
    eventually("fabric session", PATIENCE, || {
        std::future::ready(frr.established("192.0.2.10").then_some(()))
    })
    .await;
    eventually("/readyz 200", PATIENCE, || {
        std::future::ready(http_status(&lab.node, "/readyz").filter(|&c| c == 200))
    })
    .await;

    // The VRF member interface looks up the VRF's table (no VRF devices here).
    let rules = json(&lab.node, &["rule", "show"]);
    assert!(
        rules
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["iif"] == "fab0" && r["table"] == "100" && r["priority"] == 1000),
        "{rules}"
    );

    // Three pods announce the same VIP: one route, three next hops, proto 201.
    let accept = || RouteMap::accept_all("out");
    let p1 = pod(&lab.pods, "10.244.1.11", 64601, accept()).await;
    let p2 = pod(&lab.pods, "10.244.1.12", 64602, accept()).await;
    let p3 = pod(&lab.pods, "10.244.1.13", 64603, accept()).await;
    for p in [&p1, &p2, &p3] {
        pod_up(p).await;
        announce(p, VIP).await;
    }
    let r = wait_gateways(
        &lab.node,
        100,
        VIP,
        &["10.244.1.11", "10.244.1.12", "10.244.1.13"],
    )
    .await
    .unwrap();
    assert_eq!(r["protocol"], "201", "{r}");
    assert_eq!(r["nexthops"].as_array().unwrap().len(), 3, "{r}");
    assert!(
        find(&table(&lab.node, 254), VIP).is_none(),
        "only in the group's table"
    );

    // The fabric hears it: next hop the node, with the group's community and
    // without our internal marker.
    let paths = eventually("the VIP in FRR", PATIENCE, || {
        std::future::ready(frr.paths(VIP).ok().filter(|p| !p.is_empty()))
    })
    .await;
    let p = &paths[0];
    assert_eq!(p["nexthops"][0]["ip"], "192.0.2.10", "{p}");
    assert_eq!(p["community"]["string"], "65010:100", "{p}");
    assert!(p.get("largeCommunity").is_none(), "{p}");
    // The other fabric neighbor hears it too, but never FRR's route.
    let e = eventually("the VIP at tor2", PATIENCE, || async {
        let v = tor2.routes().await.ok()?;
        v.into_iter().find(|e| e.prefix == net(VIP))
    })
    .await;
    let a = &e.paths[0].attrs;
    assert_eq!(
        e.paths[0].next_hop,
        Some(bgp_core::wire::NextHop::V4(ip4("192.0.3.10")))
    );
    assert_eq!(
        a.attributes.communities,
        vec![bgp_core::wire::Community::new(65010, 100)]
    );
    assert!(a.attributes.large_communities.is_empty());
    // The node has FRR's route (accepted, not installed) ...
    eventually("FRR's route accepted by the node", PATIENCE, || {
        let peers = cli(&lab.node, &["peers"]);
        let ok = peer(&peers, FABRIC)
            .is_some_and(|p| p["kind"] == "fabric" && p["accepted"].as_u64().unwrap_or(0) >= 1);
        std::future::ready(ok.then_some(()))
    })
    .await;
    // ... and does not pass it on.
    assert!(
        tor2.routes()
            .await
            .unwrap()
            .iter()
            .all(|e| e.prefix != net("203.0.113.0/24")),
        "a fabric route was passed to another fabric neighbor"
    );
    // The fabric's own route is not installed anywhere by us.
    for t in [100, 101, 254] {
        assert!(find(&table(&lab.node, t), "203.0.113.0/24").is_none());
    }

    // One pod withdraws: two next hops.
    p3.withdraw(net(VIP)).await.unwrap();
    wait_gateways(&lab.node, 100, VIP, &["10.244.1.11", "10.244.1.12"]).await;
    // One pod's session goes: its next hop leaves.
    drop(p2);
    wait_gateways(&lab.node, 100, VIP, &["10.244.1.11"]).await;

    // A hijacking pod: each bad route is refused, with its reason; the
    // session stays up and its one good VIP is installed.
    let h = pod(&lab.pods, "10.244.1.14", 64604, hijacker_export()).await;
    pod_up(&h).await;
    let bad = [
        ("10.244.0.0/16", "forbidden"), // the pod CIDR
        ("10.96.0.10/32", "forbidden"), // more specific of a forbidden one (though allowed)
        ("203.0.113.99/32", "not-allowed"),
        ("198.51.100.0/25", "not-allowed"), // outside ge/le
        ("198.51.100.50/32", "next-hop"),
    ];
    for (prefix, _) in bad {
        announce(&h, prefix).await;
    }
    h.announce(
        net("198.51.100.51/32"),
        origin_attrs(AsPath::from_sequence([65099])),
    )
    .await
    .unwrap();
    // Ten allowed VIPs for a limit of 8: two refused.
    for i in 60..70 {
        announce(&h, &format!("198.51.100.{i}/32")).await;
    }
    let peers = eventually("the hijacker's rejections", PATIENCE, || {
        let peers = cli(&lab.node, &["peers"]);
        let done = peer(&peers, "10.244.1.14").is_some_and(|p| p["rejected"].as_u64() == Some(8));
        std::future::ready(done.then_some(peers))
    })
    .await;
    let hp = peer(&peers, "10.244.1.14").unwrap();
    assert_eq!(hp["state"], "Established", "{hp}");
    assert_eq!(hp["group"], "lb");
    assert_eq!(hp["kind"], "pod");
    assert_eq!(hp["accepted"], 8, "{hp}");
    let by = &hp["rejectedByReason"];
    assert_eq!(by["forbidden"], 2, "{hp}");
    assert_eq!(by["not-allowed"], 2, "{hp}");
    assert_eq!(by["next-hop"], 1, "{hp}");
    assert_eq!(by["as-path"], 1, "{hp}");
    assert_eq!(by["max-prefixes"], 2, "{hp}");
    assert!(hp["lastRejection"]["prefix"].is_string(), "{hp}");
    // Eight of the ten (which eight depends on the order they came in).
    eventually("eight of the hijacker's VIPs installed", PATIENCE, || {
        let n = table(&lab.node, 100)
            .iter()
            .filter(|r| r["gateway"] == "10.244.1.14")
            .count();
        std::future::ready((n == 8).then_some(()))
    })
    .await;
    let installed: Vec<String> = table(&lab.node, 100)
        .iter()
        .filter_map(|r| r["dst"].as_str().map(str::to_owned))
        .collect();
    for (prefix, _) in bad.iter().chain(&[("198.51.100.51/32", "as-path")]) {
        assert!(
            !installed.contains(&dst(prefix).to_owned()),
            "{prefix} installed"
        );
        for t in [101, 254] {
            assert!(
                find(&table(&lab.node, t), prefix).is_none(),
                "{prefix} in {t}"
            );
        }
        assert!(
            frr.paths(prefix).unwrap().is_empty(),
            "{prefix} reached the fabric"
        );
    }
    let hijack_vips = installed
        .iter()
        .filter(|d| d.starts_with("198.51.100.6"))
        .count();
    assert_eq!(hijack_vips, 8, "{installed:?}");
    // Each (peer, prefix, reason) logged once, at warn.
    let log = node.log();
    let lines = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("route rejected") && l.contains("10.244.1.14"))
        .count();
    assert_eq!(lines, 8, "{log}");
    let status = cli(&lab.node, &["status"]);
    assert_eq!(status["rejected"]["forbidden"], 2, "{status}");
    assert_eq!(status["routesInstalled"]["100"], 9, "{status}");
    let text = cli_text(&lab.node, &["peers"]);
    assert!(text.contains("forbidden=2"), "{text}");
    let metrics = lab
        .node
        .exec(&["curl", "-s", "http://127.0.0.1:9180/metrics"])
        .unwrap();
    assert!(
        metrics.contains(
            "podpeer_node_rejected_total{group=\"lb\",peer=\"10.244.1.14\",reason=\"next-hop\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("podpeer_node_fib_routes_installed{table=\"100\"} 9"),
        "{metrics}"
    );

    // A peer no group admits is refused at accept.
    let stranger = pod(&lab.pods, "10.244.1.100", 64700, accept()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let st = stranger.neighbors().await.unwrap();
    assert_ne!(st[0].state, State::Established, "{st:?}");
    assert!(peer(&cli(&lab.node, &["peers"]), "10.244.1.100").is_none());
    drop(stranger);

    // The hijacker leaves (its routes with it, while the node runs).
    drop(h);
    eventually("the hijacker's routes gone", PATIENCE, || {
        let t = table(&lab.node, 100);
        std::future::ready(
            t.iter()
                .all(|r| r["gateway"] != "10.244.1.14")
                .then_some(()),
        )
    })
    .await;

    // Restart: routes stay in the kernel while the node is down; a pod that
    // goes away meanwhile loses its route after reconcileAfter (8s); the
    // others are never removed (no flap) and nothing stale remains.
    let p5 = pod(&lab.pods, "10.244.1.15", 64605, accept()).await;
    pod_up(&p5).await;
    announce(&p5, "198.51.100.20/32").await;
    wait_gateways(&lab.node, 100, "198.51.100.20/32", &["10.244.1.15"]).await;
    let before: Vec<Value> = table(&lab.node, 100);
    let monitor = lab
        .node
        .command("ip")
        .args(["monitor", "route"])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    node.stop();
    drop(p5);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        table(&lab.node, 100),
        before,
        "routes left in place while down"
    );
    // Graceful restart: the node left without a NOTIFICATION and the fabric
    // keeps its routes, stale, while it is down (once FRR has seen the
    // session go).
    eventually("the fabric keeps the VIP stale", PATIENCE, || {
        let stale = frr
            .paths(VIP)
            .ok()
            .is_some_and(|p| p.first().is_some_and(|p| p["stale"] == true));
        std::future::ready(stale.then_some(()))
    })
    .await;
    let started = Instant::now();
    let mut node = lab.start_node(&config);
    lab.wait_http().await;
    // Well within reconcileAfter: the gone pod's route is still there.
    assert!(find(&table(&lab.node, 100), "198.51.100.20/32").is_some());
    wait_gateways(&lab.node, 100, "198.51.100.20/32", &[]).await;
    let gone_after = started.elapsed();
    assert!(
        gone_after >= Duration::from_secs(8),
        "removed after {gone_after:?}"
    );
    println!("FIGURE: the gone pod's route was removed {gone_after:?} after the restart");
    // The fabric has the VIP fresh again after the node's End-of-RIB, and no
    // longer the gone pod's.
    eventually("the VIP fresh at the fabric", PATIENCE, || {
        let fresh = frr
            .paths(VIP)
            .ok()
            .and_then(|p| p.first().cloned())
            .is_some_and(|p| p["stale"] != true);
        std::future::ready(fresh.then_some(()))
    })
    .await;
    eventually("the gone pod's VIP gone from the fabric", PATIENCE, || {
        std::future::ready(
            frr.paths("198.51.100.20/32")
                .is_ok_and(|p| p.is_empty())
                .then_some(()),
        )
    })
    .await;
    // The rest is as before.
    wait_gateways(&lab.node, 100, VIP, &["10.244.1.11"]).await;
    let after: Vec<Value> = table(&lab.node, 100);
    let expect: Vec<Value> = before
        .into_iter()
        .filter(|r| r["dst"] != "198.51.100.20")
        .collect();
    assert_eq!(after, expect);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let out = monitor.wait_with_output().unwrap();
    let events = String::from_utf8_lossy(&out.stdout);
    let deleted: Vec<&str> = events
        .lines()
        .filter(|l| l.starts_with("Deleted"))
        .collect();
    assert_eq!(deleted.len(), 1, "only the gone pod's route: {events}");
    assert!(deleted[0].contains("198.51.100.20"), "{events}");
    let added = events.lines().filter(|l| !l.starts_with("Deleted")).count();
    assert_eq!(added, 0, "nothing rewritten: {events}");
    let status = cli(&lab.node, &["status"]);
    assert_eq!(status["reconcileHolding"], false, "{status}");
    let routes = cli(&lab.node, &["routes"]);
    assert!(
        routes
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["installed"] == true),
        "{routes}"
    );
    node.stop();
    drop((p1, p3, tor2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_rate_for_2000_vips_from_one_pod() {
    skip_unless_runnable!(&[]);
    let lab = Lab::new(&["10.244.1.33"]);
    let config = lab.write_config("1s");
    let mut node = lab.start_node(&config);
    lab.wait_http().await;
    let p = pod(&lab.pods, "10.244.1.33", 64633, RouteMap::accept_all("out")).await;
    pod_up(&p).await;
    const N: u32 = 2000;
    let start = Instant::now();
    for i in 0..N {
        let a = Ipv4Addr::from(u32::from(ip4("100.64.0.0")) + i);
        p.announce(IpNet::from(IpAddr::V4(a)), origin_attrs(AsPath::default()))
            .await
            .unwrap();
    }
    let announced = start.elapsed();
    eventually("2000 routes in table 101", Duration::from_secs(60), || {
        std::future::ready((table(&lab.node, 101).len() as u32 >= N).then_some(()))
    })
    .await;
    let took = start.elapsed();
    println!(
        "FIGURE: {N} VIPs from one pod installed in {took:?} ({:.0} routes/s end to end; \
         announcing took {announced:?})",
        f64::from(N) / took.as_secs_f64()
    );
    let t = table(&lab.node, 101);
    assert!(
        t.iter()
            .all(|r| r["protocol"] == "201" && r["gateway"] == "10.244.1.33")
    );
    // Withdraw all: gone again.
    let start = Instant::now();
    drop(p);
    eventually("table 101 empty", Duration::from_secs(60), || {
        std::future::ready(table(&lab.node, 101).is_empty().then_some(()))
    })
    .await;
    println!(
        "FIGURE: {N} routes removed after the pod's session closed in {:?}",
        start.elapsed()
    );
    node.stop();
}

#[test]
fn config_errors_exit_2_and_name_field_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.yaml");
    std::fs::write(
        &path,
        node_config("10s").replace(
            "{prefix: 100.64.0.0/16, ge: 32, le: 32}",
            "{prefix: 100.64.0.0/16, le: 33}",
        ),
    )
    .unwrap();
    for sub in ["run", "check"] {
        let out = Command::new(BIN)
            .args([sub, "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{sub}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "podGroups[1].allowedPrefixes[0].le: 33 is longer than an IPv4 prefix can be ({})",
                path.display()
            )),
            "{err}"
        );
    }
    std::fs::write(&path, node_config("10s")).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("[default: /etc/podpeer/node.yaml]"), "{help}");
}

/// The fabric neighbor unnumbered (`interface: fab0`) against FRR's
/// `neighbor node0 interface`, on a link with link-local addresses only: the
/// node becomes ready, and FRR gets the pod's VIP with the node's link-local
/// address as next hop (RFC 8950) and installs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnumbered_fabric_neighbor_with_frr() {
    skip_unless_runnable!(FRR_BINARIES);
    let node = Netns::new("node").unwrap();
    let pods = Netns::new("pods").unwrap();
    let fabric = Netns::new("fab").unwrap();
    veth(
        &node,
        "pods0",
        &["10.244.1.1/24"],
        &pods,
        "node0",
        &["10.244.1.2/24"],
    )
    .unwrap();
    veth(&node, "fab0", &[], &fabric, "node0", &[]).unwrap();
    let node_ll = eventually("the node's link-local address", PATIENCE, || {
        let out = node
            .ip(&["-6", "-o", "addr", "show", "dev", "fab0", "scope", "link"])
            .unwrap_or_default();
        std::future::ready(
            out.split_whitespace()
                .skip_while(|w| *w != "inet6")
                .nth(1)
                .and_then(|a| a.split('/').next())
                .map(str::to_owned),
        )
    })
    .await;
    let dir = tempfile::Builder::new()
        .prefix("pp-node-")
        .tempdir()
        .unwrap();
    let config = dir.path().join("node.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
localAs: {NODE_AS}
routerId: 192.0.2.10
listen: ["0.0.0.0:179", "[::]:179"]
http: 127.0.0.1:9180
forbiddenPrefixes: [10.244.0.0/16]
fabric:
  - interface: fab0
    remoteAs: {FABRIC_AS}
    description: tor1
    holdTime: 9s
podGroups:
  - name: lb
    peers: [10.244.1.0/28]
    allowedPrefixes:
      - {{prefix: 198.51.100.0/24, ge: 32, le: 32}}
    table: 101
"#
        ),
    )
    .unwrap();
    let frr = Frr::start(
        &fabric,
        &format!(
            "router bgp {FABRIC_AS}\n bgp router-id {FABRIC}\n no bgp ebgp-requires-policy\n \
             neighbor node0 interface remote-as {NODE_AS}\n neighbor node0 timers 3 9\n \
             neighbor node0 timers connect 1\n"
        ),
    )
    .unwrap();
    let mut proc = NodeProc::start(
        &node,
        &config,
        &dir.path().join("node.log"),
        "info,podpeer_node=debug",
    );
    let s = pod(&pods, "10.244.1.2", 64600, RouteMap::accept_all("out")).await;
    pod_up(&s).await;
    announce(&s, VIP).await;
    eventually("the node ready (fabric Established)", PATIENCE, || {
        std::future::ready(http_status(&node, "/readyz").filter(|&c| c == 200))
    })
    .await;
    let route = eventually("the VIP installed by FRR", PATIENCE, || {
        let v = frr.json(&format!("show ip route {VIP} json")).ok();
        std::future::ready(
            v.and_then(|v| v.get(VIP)?.as_array()?.first().cloned())
                .filter(|r| r["installed"] == Value::Bool(true)),
        )
    })
    .await;
    let nh = &route["nexthops"][0];
    assert_eq!(nh["afi"], "ipv6", "{route}");
    assert_eq!(nh["ip"].as_str(), Some(node_ll.as_str()), "{route}");
    assert_eq!(nh["interfaceName"], "node0", "{route}");
    let peers = cli(&node, &["peers"]);
    assert!(
        peers
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["kind"] == "fabric" && p["state"] == "Established"),
        "{peers}"
    );
    proc.stop();
}

/// An IPv6 VIP to an IPv4 fabric session: a dual-stack pod peers with the
/// node over each family (as podpeer-sidecar does) and announces an IPv6 VIP
/// over its IPv6 session; the node installs it and passes it to FRR over the
/// IPv4 fabric session with its IPv6 address on the fabric link as next hop
/// (nothing configured: the one on the session's interface, as FRR picks
/// it); FRR installs it and the fabric pings the VIP through the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_vip_over_ipv4_sessions() {
    skip_unless_runnable!(FRR_BINARIES);
    const VIP6: &str = "2001:db8:100::1/128";
    let lab = Lab::new(&["10.244.1.11"]);
    let add = |ns: &Netns, addr: &str, dev: &str| {
        ns.ip(&["-6", "addr", "add", addr, "dev", dev, "nodad"])
            .unwrap();
    };
    add(&lab.node, "2001:db8:f::10/64", "fab0");
    add(&lab.fabric, "2001:db8:f::1/64", "node0");
    add(&lab.node, "fd00:244:1::1/64", "pods0");
    add(&lab.pods, "fd00:244:1::11/64", "node0");
    add(&lab.pods, VIP6, "lo");
    lab.pods
        .ip(&["-6", "route", "add", "default", "via", "fd00:244:1::1"])
        .unwrap();
    lab.node
        .exec(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
        .unwrap();
    let frr = Frr::start(
        &lab.fabric,
        &format!(
            "router bgp {FABRIC_AS}\n bgp router-id {FABRIC}\n no bgp ebgp-requires-policy\n \
             neighbor 192.0.2.10 remote-as {NODE_AS}\n neighbor 192.0.2.10 timers 3 9\n \
             neighbor 192.0.2.10 timers connect 1\n address-family ipv6 unicast\n  \
             neighbor 192.0.2.10 activate\n exit-address-family\n"
        ),
    )
    .unwrap();
    let config = lab.dir.path().join("node.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
localAs: {NODE_AS}
routerId: 192.0.2.10
listen: ["0.0.0.0:179", "[::]:179"]
http: 127.0.0.1:9180
forbiddenPrefixes: [10.244.0.0/16, "fd00:244::/32", "::/0"]
vrfs: [{{name: vips, table: 100, interfaces: [fab0]}}]
fabric: [{{address: {FABRIC}, remoteAs: {FABRIC_AS}, holdTime: 9s}}]
podGroups:
  - name: lb
    peers: [10.244.1.0/28, "fd00:244:1::/64"]
    allowedPrefixes: [{{prefix: "2001:db8:100::/48", ge: 128, le: 128}}]
    vrf: vips
"#
        ),
    )
    .unwrap();
    let mut node = lab.start_node(&config);
    lab.wait_http().await;
    let mut c = SpeakerConfig::new(64601, ip4("10.244.1.11"));
    c.listen = Vec::new();
    let p = NsSpeaker::start(&lab.pods, c).unwrap();
    for (node_addr, me, family) in [
        (NODE, "10.244.1.11", AfiSafi::IPV4_UNICAST),
        ("fd00:244:1::1", "fd00:244:1::11", AfiSafi::IPV6_UNICAST),
    ] {
        let mut n = NeighborConfig::new(node_addr.parse().unwrap(), RemoteAs::Number(NODE_AS));
        n.source_address = Some(me.parse().unwrap());
        n.families = vec![family];
        n.connect_retry = Duration::from_secs(1);
        n.import = Some(RouteMap::accept_all("in"));
        n.export = Some(RouteMap::accept_all("out"));
        p.add_neighbor(n).await.unwrap();
    }
    eventually("both pod sessions Established", PATIENCE, || async {
        let n = p.neighbors().await.ok()?;
        (n.len() == 2 && n.iter().all(|n| n.state == State::Established)).then_some(())
    })
    .await;
    announce(&p, VIP6).await;

    // In the node's VRF table, via the pod's IPv6 address.
    let route = eventually("the IPv6 VIP in table 100", PATIENCE, || {
        let t = json(&lab.node, &["-6", "route", "show", "table", "100"]);
        std::future::ready(
            t.as_array()
                .and_then(|t| t.iter().find(|r| r["dst"] == "2001:db8:100::1").cloned()),
        )
    })
    .await;
    assert_eq!(route["gateway"], "fd00:244:1::11", "{route}");
    // At the fabric, with the node's IPv6 address on the link as next hop,
    // and installed.
    let path = eventually("the IPv6 VIP in FRR", PATIENCE, || {
        std::future::ready(frr.paths(VIP6).ok().and_then(|p| p.first().cloned()))
    })
    .await;
    assert_eq!(path["nexthops"][0]["ip"], "2001:db8:f::10", "{path}");
    let installed = eventually("the IPv6 VIP installed by FRR", PATIENCE, || {
        let v = frr.json(&format!("show ipv6 route {VIP6} json")).ok();
        std::future::ready(
            v.and_then(|v| v.get(VIP6)?.as_array()?.first().cloned())
                .filter(|r| r["installed"] == Value::Bool(true)),
        )
    })
    .await;
    assert_eq!(
        installed["nexthops"][0]["ip"], "2001:db8:f::10",
        "{installed}"
    );
    // Traffic: fabric -> node (VRF table via the rule on fab0) -> pod.
    let reached = (0..3).any(|_| {
        lab.fabric
            .exec(&["ping", "-6", "-c", "1", "-W", "2", "2001:db8:100::1"])
            .is_ok()
    });
    assert!(reached, "the fabric does not reach the IPv6 VIP");
    node.stop();
}
