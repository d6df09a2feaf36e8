//! Session security of the real sidecar binary: a node (a bgp-core speaker
//! in a "node" namespace) that wants a TCP-MD5 key and GTSM from its pods, as
//! a podpeer-node pod group with `password` and `ttlSecurityHops` does, and
//! sidecars in "pod" namespaces with the right key, a wrong key, or no GTSM.
//! A refused attempt is seen in the node's kernel counters
//! (`TcpExtTCPMD5Failure`, `TcpExtTCPMinTTLDrop` in the namespace's
//! `/proc/net/netstat`), so no test waits out a fixed time to prove a
//! negative.
//!
//! Needs root (network namespaces); skipped otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use bgp_core::fsm::{RemoteAs, State};
use bgp_core::policy::RouteMap;
use bgp_core::speaker::{DynamicRange, InterfaceNeighbor, NeighborConfig, Password, SpeakerConfig};
use interop_tests::ours::{PATIENCE, route, status, wait_route};
use interop_tests::{Netns, NsSpeaker, eventually, skip_unless_runnable, veth};

const BIN: &str = env!("CARGO_BIN_EXE_podpeer-sidecar");
const NODE_AS: u32 = 65010;
const KEY: &str = "pod-group-key";
const WRONG_KEY: &str = "pod-group-kez";

/// The sidecar process in a pod namespace, logging everything (to check no
/// key is in it) to a file; killed (and its log printed) if the test ends
/// while it runs.
struct Sidecar {
    child: Option<Child>,
    log: PathBuf,
}

impl Sidecar {
    fn start(pod: &Netns, dir: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).unwrap();
        let mut cmd = pod.command(BIN);
        cmd.args(args)
            .env("RUST_LOG", "debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        Self {
            child: Some(cmd.spawn().unwrap()),
            log,
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() || std::env::var_os("SIDECAR_LOGS").is_some() {
            eprintln!(
                "--- sidecar log {} ---\n{}",
                self.log.display(),
                self.logs()
            );
        }
    }
}

/// A pod namespace joined to `node` by a veth: `eth0` at `10.78.N.2/24` in
/// the pod, `podN` at `10.78.N.1/24` on the node, the pod's default route
/// through the node.
fn pod_link(node: &Netns, n: u8) -> Netns {
    let pod = Netns::new("pod").unwrap();
    veth(
        &pod,
        "eth0",
        &[&format!("10.78.{n}.2/24")],
        node,
        &format!("pod{n}"),
        &[&format!("10.78.{n}.1/24")],
    )
    .unwrap();
    pod.ip(&["route", "add", "default", "via", &format!("10.78.{n}.1")])
        .unwrap();
    pod
}

/// What a node pod group with a password and GTSM sets: the key and
/// `ttl-security hops 1`, remote-as external, import accept-all.
fn pod_group_template(address: IpAddr) -> NeighborConfig {
    let mut t = NeighborConfig::new(address, RemoteAs::External);
    t.import = Some(RouteMap::accept_all("pods-in"));
    t.hold_time = 9;
    t.password = Some(Password::from(KEY));
    t.ttl_security = Some(1);
    t
}

/// The node's speaker, listening on every address.
fn node_speaker(node: &Netns) -> NsSpeaker {
    let mut c = SpeakerConfig::new(NODE_AS, Ipv4Addr::new(10, 78, 0, 1));
    c.listen = vec![SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 179)];
    NsSpeaker::start(node, c).unwrap()
}

/// Waits until the namespace's counter `name` has grown by `by` from `from`.
async fn counter_grows(ns: &Netns, name: &str, from: u64, by: u64) {
    eventually(&format!("TcpExt{name} to grow by {by}"), PATIENCE, || {
        std::future::ready(ns.tcp_ext(name).filter(|v| *v >= from + by).map(|_| ()))
    })
    .await;
}

/// The sidecar's `/readyz` (in its namespace): status and body.
fn readyz(pod: &Netns) -> (u16, String) {
    pod.http_get(9179, "/readyz").unwrap_or((0, String::new()))
}

/// Three pods towards a node range that wants the key and GTSM: the one with
/// both (key from a `passwordFile` relative to its config file, GTSM from the
/// environment) comes up and its VIP reaches the node; the one with a wrong
/// key (`--password-file`) and the one with the key (`PODPEER_PASSWORD`) but
/// no GTSM never get past TCP, as the node's kernel counts. No key in any log
/// or in `status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_pod_with_the_key_and_gtsm_peers() {
    skip_unless_runnable!(&[]);
    let node = Netns::new("node").unwrap();
    let (good_pod, wrong_pod, far_pod) =
        (pod_link(&node, 1), pod_link(&node, 2), pod_link(&node, 3));
    let speaker = node_speaker(&node);
    speaker
        .add_dynamic_range(DynamicRange {
            prefix: "10.78.0.0/16".parse().unwrap(),
            template: pod_group_template(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            limit: 8,
        })
        .await
        .unwrap();
    let md5_failures = node
        .tcp_ext("TCPMD5Failure")
        .expect("a kernel with TCP-MD5");
    let ttl_drops = node.tcp_ext("TCPMinTTLDrop");

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("secret")).unwrap();
    std::fs::write(d.join("secret/key"), format!("{KEY}\n")).unwrap();
    std::fs::write(d.join("wrong-key"), format!("{WRONG_KEY}\n")).unwrap();
    std::fs::write(d.join("sidecar.yaml"), "passwordFile: secret/key\n").unwrap();
    let config = d.join("sidecar.yaml");
    let wrong_key = d.join("wrong-key");

    let good = Sidecar::start(
        &good_pod,
        d,
        "good",
        &[
            "--config",
            config.to_str().unwrap(),
            "--vip",
            "198.51.100.91/32",
        ],
        &[("PODPEER_TTL_SECURITY_HOPS", "1")],
    );
    let wrong = Sidecar::start(
        &wrong_pod,
        d,
        "wrong",
        &[
            "--password-file",
            wrong_key.to_str().unwrap(),
            "--ttl-security-hops",
            "1",
            "--vip",
            "198.51.100.92/32",
        ],
        &[],
    );
    let far = Sidecar::start(
        &far_pod,
        d,
        "far",
        &["--vip", "198.51.100.93/32"],
        &[("PODPEER_PASSWORD", KEY)],
    );

    let e = wait_route(&speaker, "198.51.100.91/32").await;
    assert_eq!(
        e.paths[0].neighbor,
        Some(IpAddr::V4(Ipv4Addr::new(10, 78, 1, 2)))
    );
    let s = status(&speaker, "10.78.1.2".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(s.state, State::Established);
    eventually("the good pod ready", PATIENCE, || {
        std::future::ready((readyz(&good_pod).0 == 200).then_some(()))
    })
    .await;

    // Two SYNs of the wrong key refused (the first and a retry), by the
    // kernel, before any connection exists.
    counter_grows(&node, "TCPMD5Failure", md5_failures, 2).await;
    // And the SYNs sent with TTL 64 towards a listener that wants 255.
    if let Some(before) = ttl_drops {
        counter_grows(&node, "TCPMinTTLDrop", before, 2).await;
    }
    for (what, pod, addr, vip) in [
        ("wrong key", &wrong_pod, "10.78.2.2", "198.51.100.92/32"),
        ("no GTSM", &far_pod, "10.78.3.2", "198.51.100.93/32"),
    ] {
        // Never past TCP: the node has no neighbor for it at all.
        let s = status(&speaker, addr.parse().unwrap()).await;
        assert!(s.is_none(), "the pod with {what} reached the node: {s:?}");
        assert!(route(&speaker, vip).await.is_none(), "{what}: {vip}");
        let (code, body) = readyz(pod);
        assert_eq!(code, 503, "{what}: {body}");
        assert!(body.contains("session with 10.78."), "{what}: {body}");
    }

    // The key in no log and not in `status`.
    let out = good_pod.exec(&[BIN, "status"]).unwrap();
    assert!(out.contains("Established"), "{out}");
    assert!(!out.contains(KEY), "{out}");
    let logs = [&good, &wrong, &far].map(Sidecar::logs);
    assert!(logs[0].contains("TCP-MD5, GTSM 1 hop(s)"), "{}", logs[0]);
    assert!(logs[2].contains("TCP-MD5\n"), "{}", logs[2]);
    for l in &logs {
        assert!(!l.contains(KEY) && !l.contains(WRONG_KEY), "{l}");
    }
}

/// `node: unnumbered`: the sidecar's connection to the node it learns on
/// the link carries the key and TTL 255. The node holds the key for the
/// pod's link-local address (a passive neighbor with GTSM), so an unsigned
/// SYN or one with TTL 64 would be dropped; an interface neighbor on the
/// node only sends the Router Advertisements the pod learns it from. A
/// wrong key is refused first, counted by the node's kernel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnumbered_pod_signs_its_connection() {
    skip_unless_runnable!(&[]);
    let node = Netns::new("node").unwrap();
    let pod = Netns::new("pod").unwrap();
    veth(&pod, "eth0", &[], &node, "pod0", &[]).unwrap();
    let pod_ll = pod.link_local("eth0").unwrap();
    let speaker = node_speaker(&node);
    let mut n = pod_group_template(IpAddr::V6(pod_ll));
    n.passive = true;
    n.bind_interface = Some("pod0".into());
    n.extended_next_hop = true;
    speaker.add_neighbor(n).await.unwrap();
    let mut ra = InterfaceNeighbor::new("pod0");
    ra.template.passive = true;
    speaker.add_interface_neighbor(ra).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("key"), KEY).unwrap();
    std::fs::write(d.join("wrong-key"), WRONG_KEY).unwrap();
    let args = |key: &'static str| {
        vec![
            "--node".to_owned(),
            "unnumbered:eth0".to_owned(),
            "--password-file".to_owned(),
            d.join(key).display().to_string(),
            "--ttl-security-hops".to_owned(),
            "1".to_owned(),
            "--vip".to_owned(),
            "198.51.100.95/32".to_owned(),
        ]
    };

    let md5_failures = node
        .tcp_ext("TCPMD5Failure")
        .expect("a kernel with TCP-MD5");
    let wrong_args = args("wrong-key");
    let wrong_args: Vec<&str> = wrong_args.iter().map(String::as_str).collect();
    let wrong = Sidecar::start(&pod, d, "wrong", &wrong_args, &[]);
    counter_grows(&node, "TCPMD5Failure", md5_failures, 2).await;
    let s = status(&speaker, IpAddr::V6(pod_ll)).await.unwrap();
    assert_ne!(s.state, State::Established);
    assert!(!wrong.logs().contains(WRONG_KEY));
    drop(wrong);

    let good_args = args("key");
    let good_args: Vec<&str> = good_args.iter().map(String::as_str).collect();
    let good = Sidecar::start(&pod, d, "good", &good_args, &[]);
    let e = wait_route(&speaker, "198.51.100.95/32").await;
    assert_eq!(e.paths[0].neighbor, Some(IpAddr::V6(pod_ll)));
    let s = status(&speaker, IpAddr::V6(pod_ll)).await.unwrap();
    assert_eq!(s.state, State::Established);
    let logs = good.logs();
    assert!(logs.contains("unnumbered on eth0"), "{logs}");
    assert!(logs.contains("TCP-MD5, GTSM 1 hop(s)"), "{logs}");
    assert!(!logs.contains(KEY), "{logs}");
}
