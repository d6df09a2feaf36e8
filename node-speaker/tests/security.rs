//! Session security of the real `podpeer-node` binary in a "node" namespace:
//! a fabric FRR that wants a TCP-MD5 password peers only once the node's
//! `passwordFile` holds it; pods peer into a group with a password (and
//! GTSM) only with the password (and TTL 255); and in FRR mode the rendered
//! peer group does the same. A refused attempt is seen in the kernel's own
//! counters (`TcpExtTCPMD5*`, `TcpExtTCPMinTTLDrop` in `/proc/net/netstat`
//! of the namespace), so no test waits out a fixed time to prove a
//! negative.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use bgp_core::fsm::{RemoteAs, State};
use bgp_core::policy::RouteMap;
use bgp_core::speaker::{NeighborConfig, Password, SpeakerConfig};
use interop_tests::{FRR_BINARIES, Frr, Netns, NsSpeaker, eventually, skip_unless_runnable, veth};

mod support;

use support::node::{BIN, NodeProc};
/// Generous: the machine is small and busy.
const PATIENCE: Duration = Duration::from_secs(30);
const NODE: &str = "10.244.1.1";
const NODE_AS: u32 = 65010;
const FABRIC: &str = "192.0.2.1";
const FABRIC_AS: u32 = 65000;
const TOR_KEY: &str = "s3cret-tor-key";
const POD_KEY: &str = "pod-group-key";

/// A `TcpExt` counter of the namespace; 0 when the kernel has none.
fn tcp_counter(ns: &Netns, name: &str) -> u64 {
    ns.tcp_ext(name).unwrap_or(0)
}

/// Waits until the namespace's counter `name` has grown past `from`.
async fn counter_grows(ns: &Netns, name: &str, from: u64) {
    eventually(&format!("TcpExt{name} to grow"), PATIENCE, || {
        std::future::ready((tcp_counter(ns, name) > from).then_some(()))
    })
    .await
}

/// `podpeer-node ARGS` in the node namespace: its standard output.
fn cli(ns: &Netns, args: &[&str]) -> String {
    let out = ns
        .command(BIN)
        .args(args)
        .args(["--http", "127.0.0.1:9180"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "podpeer-node {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// A pod: a bgp-core speaker on `addr` in the pods' namespace, connecting
/// to the node (AS `node_as`) with `password` and GTSM `hops`.
async fn pod(
    ns: &Netns,
    addr: &str,
    node_as: u32,
    password: Option<&str>,
    hops: Option<u8>,
) -> NsSpeaker {
    let mut c = SpeakerConfig::new(4_200_000_001, ip4(addr));
    c.listen = Vec::new();
    let s = NsSpeaker::start(ns, c).unwrap();
    let mut n = NeighborConfig::new(IpAddr::V4(ip4(NODE)), RemoteAs::Number(node_as));
    n.source_address = Some(IpAddr::V4(ip4(addr)));
    n.connect_retry = Duration::from_secs(1);
    n.hold_time = 9;
    n.import = Some(RouteMap::accept_all("in"));
    n.export = Some(RouteMap::accept_all("out"));
    n.password = password.map(Password::from);
    n.ttl_security = hops;
    s.add_neighbor(n).await.unwrap();
    s
}

async fn state(s: &NsSpeaker) -> Option<State> {
    s.neighbors().await.ok()?.first().map(|n| n.state)
}

async fn established(what: &str, s: &NsSpeaker) {
    eventually(what, PATIENCE, || async {
        (state(s).await == Some(State::Established)).then_some(())
    })
    .await
}

/// node <-> pods (10.244.1.0/24, the pod addresses given).
fn pods_link(node: &Netns, pods: &Netns, addrs: &[&str]) {
    let addrs: Vec<String> = addrs.iter().map(|a| format!("{a}/24")).collect();
    let addrs: Vec<&str> = addrs.iter().map(String::as_str).collect();
    veth(
        node,
        "pods0",
        &[&format!("{NODE}/24")],
        pods,
        "node0",
        &addrs,
    )
    .unwrap();
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("pp-nodesec-")
        .tempdir()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fabric_session_comes_up_only_with_the_password_in_the_file() {
    skip_unless_runnable!(FRR_BINARIES);
    let node = Netns::new("snode").unwrap();
    let fabric = Netns::new("sfab").unwrap();
    veth(
        &node,
        "fab0",
        &["192.0.2.10/24"],
        &fabric,
        "node0",
        &[&format!("{FABRIC}/24")],
    )
    .unwrap();
    let frr = Frr::start(
        &fabric,
        &format!(
            "router bgp {FABRIC_AS}\n bgp router-id {FABRIC}\n no bgp ebgp-requires-policy\n \
             neighbor 192.0.2.10 remote-as {NODE_AS}\n neighbor 192.0.2.10 password {TOR_KEY}\n \
             neighbor 192.0.2.10 timers 3 9\n neighbor 192.0.2.10 timers connect 1\n"
        ),
    )
    .unwrap();
    let dir = tempdir();
    let key = dir.path().join("tor1.key");
    let config = dir.path().join("node.yaml");
    let log = dir.path().join("node.log");
    // A relative passwordFile: next to the configuration.
    std::fs::write(
        &config,
        format!(
            "localAs: {NODE_AS}\nrouterId: 192.0.2.10\nhttp: 127.0.0.1:9180\n\
             fabric:\n  - {{address: {FABRIC}, remoteAs: {FABRIC_AS}, passwordFile: tor1.key, holdTime: 9s}}\n"
        ),
    )
    .unwrap();

    // A wrong key: both sides' kernels drop the other's segments.
    std::fs::write(&key, "not-the-tor-key\n").unwrap();
    let (fab_before, node_before) = (
        tcp_counter(&fabric, "TCPMD5Failure"),
        tcp_counter(&node, "TCPMD5Failure"),
    );
    let mut n = NodeProc::start(&node, &config, &log, "debug");
    counter_grows(&fabric, "TCPMD5Failure", fab_before).await;
    counter_grows(&node, "TCPMD5Failure", node_before).await;
    assert!(
        !frr.established("192.0.2.10"),
        "up with the wrong key?\n{}",
        frr.log()
    );
    n.stop();

    // The Secret's key, with the newline `kubectl create secret --from-file`
    // keeps.
    std::fs::write(&key, format!("{TOR_KEY}\n")).unwrap();
    let n = NodeProc::start(&node, &config, &log, "debug");
    eventually("the fabric session Established", PATIENCE, || {
        std::future::ready(frr.established("192.0.2.10").then_some(()))
    })
    .await;
    let peers = cli(&node, &["peers", "--json"]);
    assert!(peers.contains("Established"), "{peers}");
    // The keys are nowhere in what the node shows or logs.
    let shown = format!(
        "{peers}{}{}{}",
        cli(&node, &["status", "--json"]),
        cli(&node, &["status"]),
        n.log()
    );
    for secret in [TOR_KEY, "not-the-tor-key"] {
        assert!(!shown.contains(secret), "{secret} shown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_peer_into_a_group_with_a_password_only_with_it() {
    skip_unless_runnable!(&[]);
    let node = Netns::new("snode").unwrap();
    let pods = Netns::new("spods").unwrap();
    pods_link(
        &node,
        &pods,
        &["10.244.1.11", "10.244.1.12", "10.244.1.13", "10.244.1.14"],
    );
    let dir = tempdir();
    let config = dir.path().join("node.yaml");
    std::fs::write(
        &config,
        format!(
            "localAs: {NODE_AS}\nrouterId: 192.0.2.10\nhttp: 127.0.0.1:9180\n\
             podGroups:\n  - name: lb\n    peers: [10.244.1.0/28]\n    password: {POD_KEY}\n    \
             ttlSecurityHops: 1\n    allowedPrefixes: [{{prefix: 198.51.100.0/24, ge: 32, le: 32}}]\n"
        ),
    )
    .unwrap();
    let n = NodeProc::start(&node, &config, &dir.path().join("node.log"), "debug");
    let counters =
        ["TCPMD5NotFound", "TCPMD5Failure", "TCPMinTTLDrop"].map(|c| tcp_counter(&node, c));

    let good = pod(&pods, "10.244.1.11", NODE_AS, Some(POD_KEY), Some(1)).await;
    let unkeyed = pod(&pods, "10.244.1.12", NODE_AS, None, Some(1)).await;
    let wrong = pod(
        &pods,
        "10.244.1.13",
        NODE_AS,
        Some("pod-group-kez"),
        Some(1),
    )
    .await;
    // The key, but TTL 64: the listener's minimum TTL (255, every range
    // uses GTSM) drops its SYN.
    let far = pod(&pods, "10.244.1.14", NODE_AS, Some(POD_KEY), None).await;

    established("the pod with the key Established", &good).await;
    counter_grows(&node, "TCPMD5NotFound", counters[0]).await;
    counter_grows(&node, "TCPMD5Failure", counters[1]).await;
    if std::fs::read_to_string("/proc/net/netstat").is_ok_and(|t| t.contains("TCPMinTTLDrop")) {
        counter_grows(&node, "TCPMinTTLDrop", counters[2]).await;
    }
    for (what, s) in [
        ("without a key", &unkeyed),
        ("with a wrong key", &wrong),
        ("TTL 64", &far),
    ] {
        let st = state(s).await;
        assert_ne!(st, Some(State::Established), "the pod {what} is up");
        assert!(
            !matches!(st, Some(State::OpenSent | State::OpenConfirm)),
            "the pod {what} got past TCP: {st:?}"
        );
    }
    // The node knows one pod.
    let peers = cli(&node, &["peers", "--json"]);
    let peers: serde_json::Value = serde_json::from_str(&peers).unwrap();
    let up: Vec<&str> = peers
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] == "Established")
        .filter_map(|p| p["address"].as_str())
        .collect();
    assert_eq!(up, vec!["10.244.1.11"], "{peers}");
    assert!(!n.log().contains(POD_KEY), "the key is logged");
}

/// FRR mode: the rendered peer group's `password` and `ttl-security hops`
/// key FRR's listen range, so a pod with the key peers and one without
/// does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_peer_group_with_a_password_admits_only_pods_with_it() {
    use podpeer_node::config::NodeConfig;
    use podpeer_node::frr::reload::FrrPaths;

    skip_unless_runnable!(FRR_BINARIES);
    let node = Netns::new("sfrr").unwrap();
    let pods = Netns::new("sfpods").unwrap();
    pods_link(&node, &pods, &["10.244.1.21", "10.244.1.22"]);
    let frr = Frr::start(&node, "router bgp 65010\n bgp router-id 192.0.2.10\nexit\n").unwrap();
    let config = NodeConfig::parse(
        &format!(
            "localAs: 65010\nrouterId: 192.0.2.10\npodGroups:\n  - name: lb\n    peers: [10.244.1.0/24]\n    \
             password: {POD_KEY}\n    ttlSecurityHops: 1\n    allowedPrefixes: [{{prefix: 198.51.100.0/24, le: 32}}]\n"
        ),
        Path::new("node.yaml"),
    )
    .unwrap();
    let template = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/frr/testdata/template.conf"),
    )
    .unwrap();
    let rendered = podpeer_node::frr::render(&template, &config, &[]).unwrap();
    let dir = tempdir();
    let file = dir.path().join("frr.conf");
    std::fs::write(&file, &rendered.config).unwrap();
    let paths = FrrPaths {
        confdir: frr.dir().to_path_buf(),
        rundir: frr.dir().to_path_buf(),
        vty_socket: Some(frr.dir().to_path_buf()),
        ..FrrPaths::default()
    };
    paths.reload(&file).unwrap();
    let running = frr.vtysh(&["show running-config"]).unwrap();
    for line in [
        format!(" neighbor pg_lb password {POD_KEY}"),
        " neighbor pg_lb ttl-security hops 1".to_owned(),
    ] {
        assert!(
            running.lines().any(|l| l == line),
            "{line:?} not in:\n{running}"
        );
    }

    let before = tcp_counter(&node, "TCPMD5NotFound");
    let good = pod(&pods, "10.244.1.21", 65010, Some(POD_KEY), Some(1)).await;
    let unkeyed = pod(&pods, "10.244.1.22", 65010, None, Some(1)).await;
    established("the pod with the key Established with FRR", &good).await;
    counter_grows(&node, "TCPMD5NotFound", before).await;
    assert_ne!(state(&unkeyed).await, Some(State::Established));
    assert!(frr.established("10.244.1.21"), "{}", frr.log());
    assert!(!frr.established("10.244.1.22"), "{}", frr.log());
}
