//! The real sidecar binary in a "pod" network namespace whose only way out is a
//! default route to a "node" namespace, where a bgp-core speaker accepts the
//! pod from a dynamic range (remote-as external, import accept-all), as the
//! node speaker will.
//!
//! Needs root (network namespaces); skipped otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bgp_core::fsm::{RemoteAs, State};
use bgp_core::policy::RouteMap;
use bgp_core::speaker::{DynamicRange, Event, NeighborConfig, RibEntry, SpeakerConfig};
use bgp_core::wire::{Community, NextHop};
use interop_tests::ours::{PATIENCE, asns, route, status, wait_no_route, wait_route};
use interop_tests::{Netns, NsSpeaker, eventually, skip_unless_runnable, veth};
use ipnet::IpNet;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::broadcast;

const BIN: &str = env!("CARGO_BIN_EXE_podpeer-sidecar");
const NODE_AS: u32 = 65010;
const POD_AS: u32 = 4_200_000_001;

/// A node and a pod namespace joined by a veth: `eth0` in the pod at
/// `10.77.N.2/24` and `fd77:N::2/64`, `pod0` on the node at `.1` and `::1`.
/// No routes beyond the connected ones: tests add the default routes.
struct Topo {
    pod: Netns,
    node: Netns,
    n: u8,
}

impl Topo {
    fn new(n: u8) -> Self {
        let node = Netns::new("node").unwrap();
        let pod = Netns::new("pod").unwrap();
        let t = Self { pod, node, n };
        veth(
            &t.pod,
            "eth0",
            &[&format!("{}/24", t.pod_v4()), &format!("{}/64", t.pod_v6())],
            &t.node,
            "pod0",
            &[
                &format!("{}/24", t.node_v4()),
                &format!("{}/64", t.node_v6()),
            ],
        )
        .unwrap();
        t
    }

    fn pod_v4(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.n, 2)
    }

    fn node_v4(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.n, 1)
    }

    fn pod_v6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0xfd77, u16::from(self.n), 0, 0, 0, 0, 0, 2)
    }

    fn node_v6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0xfd77, u16::from(self.n), 0, 0, 0, 0, 0, 1)
    }

    /// The node's bgp-core speaker: listening on every address, accepting
    /// the pod from `ranges` with remote-as external and import accept-all.
    async fn node_speaker(&self, ranges: &[&str]) -> NsSpeaker {
        let mut c = SpeakerConfig::new(NODE_AS, self.node_v4());
        c.listen = vec![SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 179)];
        let s = NsSpeaker::start(&self.node, c).unwrap();
        for r in ranges {
            let mut template =
                NeighborConfig::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), RemoteAs::External);
            template.import = Some(RouteMap::accept_all("pods-in"));
            template.hold_time = 9;
            s.add_dynamic_range(DynamicRange {
                prefix: r.parse().unwrap(),
                template,
                limit: 4,
            })
            .await
            .unwrap();
        }
        s
    }
}

/// The sidecar process in the pod namespace, its log in a file; killed (and
/// its log printed) if the test ends while it runs.
struct Sidecar {
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sidecar {
    fn start(pod: &Netns, args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sidecar.log");
        let out = File::create(&log).unwrap();
        let mut cmd = pod.command(BIN);
        cmd.args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        Self {
            child: Some(cmd.spawn().unwrap()),
            log,
            _dir: dir,
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, s: Signal) {
        let pid = self.child.as_ref().unwrap().id();
        kill(Pid::from_raw(pid as i32), s).unwrap();
    }

    /// Waits for the process to end.
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the sidecar did not exit:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until its log has a line containing `text`.
    async fn wait_log(&self, text: &str) {
        eventually(
            &format!("{text:?} in the sidecar's log"),
            PATIENCE,
            || async { self.logs().contains(text).then_some(()) },
        )
        .await;
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() || std::env::var_os("SIDECAR_LOGS").is_some() {
            eprintln!("--- sidecar log ---\n{}", self.logs());
        }
    }
}

/// Waits until `path` answers `status`; its body.
async fn wait_http(ns: &Netns, port: u16, path: &str, status: u16) -> String {
    eventually(&format!("{path} answering {status}"), PATIENCE, || async {
        ns.http_get(port, path)
            .filter(|(s, _)| *s == status)
            .map(|(_, b)| b)
    })
    .await
}

/// The first event matching `f`, and when it came.
async fn wait_event(
    events: &mut broadcast::Receiver<Event>,
    what: &str,
    f: impl Fn(&Event) -> bool,
) -> Instant {
    let r = tokio::time::timeout(PATIENCE, async {
        loop {
            match events.recv().await {
                Ok(e) if f(&e) => return Instant::now(),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("events closed"),
            }
        }
    })
    .await;
    r.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn withdrawn(prefix: IpNet) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::Route { prefix: p, paths } if *p == prefix && paths.is_empty())
}

fn announced(prefix: IpNet) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::Route { prefix: p, paths } if *p == prefix && !paths.is_empty())
}

fn the_path(e: &RibEntry) -> &bgp_core::speaker::RoutePath {
    assert_eq!(e.paths.len(), 1, "{e:?}");
    &e.paths[0]
}

/// The whole life of a sidecar configured by a YAML file with a file-checked
/// VIP: it waits for the pod's default gateway, finds the node through it,
/// announces the VIP (next hop the pod, AS path the pod's AS), follows the
/// check both ways, answers /readyz, `status` and /metrics, puts the VIP on lo
/// and, on SIGTERM (`shutdown: withdraw`), withdraws before it closes the
/// session, then exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_vip_health_readyz_status_and_sigterm() {
    skip_unless_runnable!(&[]);
    let t = Topo::new(1);
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("ok");
    std::fs::write(&ok, b"").unwrap();
    let vip: IpNet = "198.51.100.77/32".parse().unwrap();
    let config = dir.path().join("sidecar.yaml");
    std::fs::write(
        &config,
        format!(
            "addVips: true\ndrainTime: 3s\nholdTime: 9s\nshutdown: withdraw\nvips:\n  - prefix: {vip}\n    communities: [\"65000:77\"]\n    med: 10\n    check:\n      file: {}\n      interval: 200ms\n      timeout: 100ms\n",
            ok.display()
        ),
    )
    .unwrap();
    let mut sidecar = Sidecar::start(&t.pod, &["--config", config.to_str().unwrap()], &[]);

    // No default route yet (the CNI is "still setting up"): alive, not ready.
    let _ = wait_http(&t.pod, 9179, "/healthz", 200).await;
    let body = wait_http(&t.pod, 9179, "/readyz", 503).await;
    assert!(body.contains("no default gateway yet"), "{body}");
    sidecar.wait_log("no default gateway yet").await;
    let lo = t.pod.ip(&["-o", "addr", "show", "dev", "lo"]).unwrap();
    assert!(lo.contains(&vip.to_string()), "addVips: {lo}");

    // The gateway appears; the node speaker is not up yet: still not ready.
    t.pod
        .ip(&["route", "add", "default", "via", &t.node_v4().to_string()])
        .unwrap();
    sidecar
        .wait_log(&format!(
            "peering with node {} (default gateway via eth0), AS external, local AS {POD_AS}, router id {}",
            t.node_v4(),
            t.pod_v4()
        ))
        .await;
    let body = wait_http(&t.pod, 9179, "/readyz", 503).await;
    assert!(
        body.contains(&format!("session with {}", t.node_v4())),
        "{body}"
    );

    // The node comes up: the pod peers from its own address.
    let node = t.node_speaker(&["10.77.1.0/24"]).await;
    let mut events = node.subscribe();
    let pod = IpAddr::V4(t.pod_v4());
    let st = eventually(
        "the pod's session Established at the node",
        PATIENCE,
        || async {
            status(&node, pod)
                .await
                .filter(|s| s.state == State::Established)
        },
    )
    .await;
    assert_eq!(st.remote_as, Some(POD_AS));
    assert_eq!(
        st.remote_id,
        Some(t.pod_v4()),
        "router id: the pod's IPv4 toward the node"
    );
    let e = wait_route(&node, "198.51.100.77/32").await;
    let p = the_path(&e);
    assert_eq!(p.neighbor, Some(pod));
    assert_eq!(p.next_hop, Some(NextHop::V4(t.pod_v4())));
    let a = &p.attrs.attributes;
    assert_eq!(asns(a.as_path.as_ref()), vec![POD_AS]);
    assert_eq!(a.med, Some(10));
    assert_eq!(a.communities, vec![Community::new(65000, 77)]);
    let body = wait_http(&t.pod, 9179, "/readyz", 200).await;
    assert_eq!(body, "ready\n");
    sidecar
        .wait_log(&format!(
            "session with node {} Established (node AS {NODE_AS})",
            t.node_v4()
        ))
        .await;

    // `status` reads the running sidecar like vtysh would.
    let out = t
        .pod
        .exec(&[BIN, "status", "--http", "127.0.0.1:9179"])
        .unwrap();
    println!("{out}");
    let session = out
        .lines()
        .find(|l| l.starts_with("10.77.1.1"))
        .unwrap_or_default();
    for part in [
        "65010",
        "Established",
        "default gateway via eth0",
        "ipv4-unicast",
    ] {
        assert!(session.contains(part), "{part} not in {session:?}\n{out}");
    }
    let row = out
        .lines()
        .find(|l| l.starts_with("198.51.100.77/32"))
        .unwrap_or_default();
    for part in ["file:", "healthy", "yes", "pass: exists"] {
        assert!(row.contains(part), "{part} not in {row:?}\n{out}");
    }
    assert!(out.contains(", ready\n"), "{out}");
    let json = t
        .pod
        .exec(&[BIN, "status", "--http", "127.0.0.1:9179", "--json"])
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["localAs"], POD_AS);
    assert_eq!(doc["sessions"][0]["sentPrefixes"], 1);
    assert_eq!(doc["vips"][0]["announced"], true);

    let metrics = wait_http(&t.pod, 9179, "/metrics", 200).await;
    for line in [
        "podpeer_sidecar_vip_healthy{vip=\"198.51.100.77/32\"} 1",
        "podpeer_sidecar_vip_announced{vip=\"198.51.100.77/32\"} 1",
        "podpeer_sidecar_checks_total{vip=\"198.51.100.77/32\",result=\"pass\"}",
        "podpeer_sidecar_check_duration_seconds_count{vip=\"198.51.100.77/32\"}",
        "bgp_session_state{neighbor=\"10.77.1.1\"} 6",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }

    // The check fails: withdrawn at the node after `fall` (2) failures.
    let t0 = Instant::now();
    std::fs::remove_file(&ok).unwrap();
    let t1 = wait_event(&mut events, "the withdrawal", withdrawn(vip)).await;
    let down = t1 - t0;
    println!("check failure to withdrawal at the node: {down:?} (interval 200ms, fall 2)");
    assert!(down < Duration::from_secs(5), "{down:?}");
    assert!(route(&node, "198.51.100.77/32").await.is_none());
    sidecar
        .wait_log(&format!(
            "VIP {vip} is unhealthy (file:{}: missing): withdrawing",
            ok.display()
        ))
        .await;
    assert_eq!(
        status(&node, pod).await.unwrap().state,
        State::Established,
        "the session stays"
    );
    let out = t.pod.exec(&[BIN, "status"]).unwrap();
    let row = out
        .lines()
        .find(|l| l.starts_with("198.51.100.77/32"))
        .unwrap_or_default();
    assert!(
        row.contains("unhealthy") && row.contains("FAIL: missing"),
        "{out}"
    );
    let metrics = wait_http(&t.pod, 9179, "/metrics", 200).await;
    assert!(metrics.contains("podpeer_sidecar_vip_healthy{vip=\"198.51.100.77/32\"} 0"));
    assert!(metrics.contains("podpeer_sidecar_vip_announced{vip=\"198.51.100.77/32\"} 0"));

    // Back: announced again after `rise` (2) passes.
    let t0 = Instant::now();
    std::fs::write(&ok, b"").unwrap();
    let t1 = wait_event(&mut events, "the announcement", announced(vip)).await;
    println!(
        "check recovery to announcement at the node: {:?} (rise 2)",
        t1 - t0
    );
    sidecar.wait_log(&format!("VIP {vip} is healthy")).await;
    let _ = wait_http(&t.pod, 9179, "/readyz", 200).await;

    // SIGTERM: withdrawn first, the session closes a drain time (3 s) later:
    // time enough to see /readyz answer 503 within it on a loaded machine.
    let t0 = Instant::now();
    sidecar.signal(Signal::SIGTERM);
    let t_withdraw = wait_event(&mut events, "the withdrawal on SIGTERM", withdrawn(vip)).await;
    let (code, body) = t.pod.http_get(9179, "/readyz").unwrap();
    assert_eq!(
        (code, body.as_str()),
        (503, "not ready: shutting down\n"),
        "during the drain"
    );
    let t_down = wait_event(&mut events, "the session going down", |e| {
        matches!(e, Event::NeighborState { neighbor, from: State::Established, .. } if *neighbor == pod)
    })
    .await;
    let drain = t_down - t_withdraw;
    println!(
        "SIGTERM to withdrawal: {:?}; withdrawal to session down: {drain:?} (drainTime 3s)",
        t_withdraw - t0
    );
    assert!(
        t_withdraw - t0 < Duration::from_secs(5),
        "{:?}",
        t_withdraw - t0
    );
    // The whole drain after the signal; most of it after the withdrawal was
    // seen (which was seen late if at all, hence the second's margin).
    assert!(t_down - t0 >= Duration::from_secs(3), "{:?}", t_down - t0);
    assert!(
        drain >= Duration::from_secs(2) && drain < Duration::from_secs(6),
        "{drain:?}"
    );
    let code = sidecar.wait(Duration::from_secs(10));
    assert_eq!(code.code(), Some(0), "{}", sidecar.logs());
    let st = status(&node, pod).await;
    assert!(st.is_none_or(|s| s.state != State::Established));
    let logs = sidecar.logs();
    assert!(logs.contains("SIGTERM: withdrawing the VIPs"), "{logs}");
    assert!(
        logs.contains("withdrew 1 VIP(s); draining for 3s"),
        "{logs}"
    );
    let lo = t.pod.ip(&["-o", "addr", "show", "dev", "lo"]).unwrap();
    assert!(!lo.contains(&vip.to_string()), "the VIP stays on lo: {lo}");
    drop(node);
}

/// A dual-stack pod (IPv4 gateway, IPv6 link-local gateway as many CNIs set
/// it) peers twice and sends each family over its own session: IPv4 VIPs with
/// the pod's IPv4 next hop, IPv6 VIPs with its global IPv6 address rather than
/// the link-local one the session runs on. Configured through the
/// environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_pod_peers_twice() {
    skip_unless_runnable!(&[]);
    let t = Topo::new(2);
    let node_ll = t.node.link_local("pod0").unwrap();
    let pod_ll = t.pod.link_local("eth0").unwrap();
    t.pod
        .ip(&["route", "add", "default", "via", &t.node_v4().to_string()])
        .unwrap();
    t.pod
        .ip(&[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &node_ll.to_string(),
            "dev",
            "eth0",
        ])
        .unwrap();
    let node = t.node_speaker(&["10.77.2.0/24", "fe80::/64"]).await;
    let mut sidecar = Sidecar::start(
        &t.pod,
        &[],
        &[
            ("PODPEER_VIPS", "198.51.100.78/32;2001:db8:78::/64,med=5"),
            ("PODPEER_DRAIN_TIME", "0s"),
        ],
    );
    for peer in [IpAddr::V4(t.pod_v4()), IpAddr::V6(pod_ll)] {
        eventually(
            &format!("{peer} Established at the node"),
            PATIENCE,
            || async {
                status(&node, peer)
                    .await
                    .filter(|s| s.state == State::Established)
            },
        )
        .await;
    }
    sidecar
        .wait_log(&format!(
            "peering with node {node_ll} (default gateway via eth0)"
        ))
        .await;
    for node in [t.node_v4().to_string(), node_ll.to_string()] {
        sidecar
            .wait_log(&format!(
                "session with node {node} Established (node AS {NODE_AS})"
            ))
            .await;
    }
    let e = wait_route(&node, "198.51.100.78/32").await;
    let p = the_path(&e);
    assert_eq!(
        p.neighbor,
        Some(IpAddr::V4(t.pod_v4())),
        "IPv4 over the IPv4 session"
    );
    assert_eq!(p.next_hop, Some(NextHop::V4(t.pod_v4())));
    let e = wait_route(&node, "2001:db8:78::/64").await;
    let p = the_path(&e);
    assert_eq!(
        p.neighbor,
        Some(IpAddr::V6(pod_ll)),
        "IPv6 over the IPv6 session"
    );
    assert!(
        matches!(p.next_hop, Some(NextHop::V6 { global, .. }) if global == t.pod_v6()),
        "{:?}",
        p.next_hop
    );
    assert_eq!(p.attrs.attributes.med, Some(5));
    assert_eq!(asns(p.attrs.attributes.as_path.as_ref()), vec![POD_AS]);
    let body = wait_http(&t.pod, 9179, "/readyz", 200).await;
    assert_eq!(body, "ready\n");

    sidecar.signal(Signal::SIGINT);
    assert_eq!(sidecar.wait(Duration::from_secs(10)).code(), Some(0));
    wait_no_route(&node, "198.51.100.78/32").await;
    wait_no_route(&node, "2001:db8:78::/64").await;
}

/// With only an IPv4 session, an IPv6 VIP goes over it (MP-BGP) when the pod
/// has a global IPv6 address to give as next hop; without one it is skipped
/// with a warning, and readiness does not wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v6_vip_over_a_v4_session_needs_a_global_next_hop() {
    skip_unless_runnable!(&[]);
    let t = Topo::new(3);
    t.pod
        .ip(&["route", "add", "default", "via", &t.node_v4().to_string()])
        .unwrap();
    let node = t.node_speaker(&["10.77.3.0/24"]).await;
    let pod = IpAddr::V4(t.pod_v4());
    let args = [
        "--vip",
        "198.51.100.79/32",
        "--vip",
        "2001:db8:79::1/128",
        "--drain-time",
        "0s",
    ];

    let mut sidecar = Sidecar::start(&t.pod, &args, &[]);
    let e = wait_route(&node, "2001:db8:79::1/128").await;
    let p = the_path(&e);
    assert_eq!(p.neighbor, Some(pod));
    assert!(
        matches!(p.next_hop, Some(NextHop::V6 { global, .. }) if global == t.pod_v6()),
        "{:?}",
        p.next_hop
    );
    wait_route(&node, "198.51.100.79/32").await;
    sidecar.signal(Signal::SIGTERM);
    assert_eq!(sidecar.wait(Duration::from_secs(10)).code(), Some(0));
    wait_no_route(&node, "2001:db8:79::1/128").await;

    // Without a global IPv6 address: the IPv4 VIP only.
    t.pod
        .ip(&["addr", "del", &format!("{}/64", t.pod_v6()), "dev", "eth0"])
        .unwrap();
    let sidecar = Sidecar::start(&t.pod, &args, &[]);
    sidecar.wait_log("IPv6 VIPs are not announced").await;
    wait_route(&node, "198.51.100.79/32").await;
    let _ = wait_http(&t.pod, 9179, "/readyz", 200).await;
    assert!(route(&node, "2001:db8:79::1/128").await.is_none());
    let out = t.pod.exec(&[BIN, "status"]).unwrap();
    assert!(
        out.contains("2001:db8:79::1/128: not announced: no session can carry IPv6"),
        "{out}"
    );
}

/// `node: unnumbered:eth0` on a link with link-local addresses only: the
/// sidecar finds the node from its Router Advertisements, and the node gets
/// the IPv4 VIP with the pod's link-local address as next hop (RFC 8950),
/// installable with the interface index; the IPv6 VIP too. SIGTERM withdraws.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnumbered_pod_announces_ipv4_over_link_local() {
    skip_unless_runnable!(&[]);
    let node = Netns::new("node").unwrap();
    let pod = Netns::new("pod").unwrap();
    veth(&pod, "eth0", &[], &node, "pod0", &[]).unwrap();
    let pod_ll = pod.link_local("eth0").unwrap();
    let mut c = SpeakerConfig::new(NODE_AS, Ipv4Addr::new(10, 77, 9, 1));
    c.listen = vec![SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 179)];
    let speaker = NsSpeaker::start(&node, c).unwrap();
    let mut n = bgp_core::speaker::InterfaceNeighbor::new("pod0");
    n.template.import = Some(RouteMap::accept_all("pods-in"));
    n.template.hold_time = 9;
    speaker.add_interface_neighbor(n).await.unwrap();
    let args = [
        "--node",
        "unnumbered:eth0",
        "--vip",
        "198.51.100.80/32",
        "--vip",
        "2001:db8:80::1/128",
        "--drain-time",
        "0s",
    ];
    let mut sidecar = Sidecar::start(&pod, &args, &[]);
    let e = wait_route(&speaker, "198.51.100.80/32").await;
    let p = the_path(&e);
    assert_eq!(p.neighbor, Some(IpAddr::V6(pod_ll)));
    let pod0: u32 = node
        .ip(&["-o", "link", "show", "dev", "pod0"])
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(p.gateway(), Some((IpAddr::V6(pod_ll), Some(pod0))));
    wait_route(&speaker, "2001:db8:80::1/128").await;
    wait_http(&pod, 9179, "/readyz", 200).await;
    let out = pod.exec(&[BIN, "status"]).unwrap();
    assert!(out.contains("unnumbered on eth0"), "{out}");
    sidecar.signal(Signal::SIGTERM);
    assert_eq!(sidecar.wait(Duration::from_secs(10)).code(), Some(0));
    wait_no_route(&speaker, "198.51.100.80/32").await;
}

/// SIGTERM before any gateway was found: nothing to withdraw, the VIP
/// addresses come off, exit 0 at once.
#[tokio::test]
async fn sigterm_while_looking_for_the_node() {
    skip_unless_runnable!(&[]);
    let pod = Netns::new("pod").unwrap();
    let mut sidecar = Sidecar::start(
        &pod,
        &[
            "--vip",
            "198.51.100.80/32",
            "--add-vips",
            "--http",
            "127.0.0.1:9179",
        ],
        &[],
    );
    sidecar.wait_log("no default gateway yet").await;
    sidecar.wait_log("added 198.51.100.80/32 to lo").await;
    let (code, body) = pod.http_get(9179, "/readyz").unwrap();
    assert_eq!(code, 503);
    assert!(body.contains("looking for the node"), "{body}");
    let out = pod.exec(&[BIN, "status"]).unwrap();
    assert!(out.contains("No session yet"), "{out}");
    let t0 = Instant::now();
    sidecar.signal(Signal::SIGTERM);
    assert_eq!(sidecar.wait(Duration::from_secs(10)).code(), Some(0));
    // At once: well under the default 5 s drain, with room for the exit,
    // the address removal and the reaping on a loaded machine.
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let lo = pod.ip(&["-o", "addr", "show", "dev", "lo"]).unwrap();
    assert!(!lo.contains("198.51.100.80"), "{lo}");
}

/// SIGTERM with the default `shutdown: graceful` (RFC 8326): the VIP is
/// announced again with GRACEFUL_SHUTDOWN (the node, honoring it, gives it
/// LOCAL_PREF 0) and stays while the session drains; the session closes a
/// drain time later with the shutdown message, which withdraws it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_graceful_marks_the_vip_then_closes() {
    skip_unless_runnable!(&[]);
    let t = Topo::new(4);
    t.pod
        .ip(&["route", "add", "default", "via", &t.node_v4().to_string()])
        .unwrap();
    let node = t.node_speaker(&["10.77.4.0/24"]).await;
    let vip: IpNet = "198.51.100.81/32".parse().unwrap();
    let mut sidecar = Sidecar::start(
        &t.pod,
        &[
            "--vip",
            "198.51.100.81/32,community=65000:81",
            "--drain-time",
            "3s",
        ],
        &[],
    );
    let e = wait_route(&node, "198.51.100.81/32").await;
    assert_eq!(the_path(&e).attrs.attributes.local_pref, None);
    let _ = wait_http(&t.pod, 9179, "/readyz", 200).await;
    let mut events = node.subscribe();
    let pod = IpAddr::V4(t.pod_v4());

    let t0 = Instant::now();
    sidecar.signal(Signal::SIGTERM);
    let t_mark = wait_event(&mut events, "the marked VIP", |e| {
        matches!(e, Event::Route { prefix, paths } if *prefix == vip
            && paths.first().is_some_and(|p| p.attrs.attributes.communities.contains(&Community::GRACEFUL_SHUTDOWN)))
    })
    .await;
    let e = route(&node, "198.51.100.81/32").await.expect("still there");
    let a = &the_path(&e).attrs.attributes;
    assert_eq!(
        a.communities,
        vec![Community::new(65000, 81), Community::GRACEFUL_SHUTDOWN]
    );
    assert_eq!(a.local_pref, Some(0), "the node honors it");
    let (code, body) = t.pod.http_get(9179, "/readyz").unwrap();
    assert_eq!((code, body.as_str()), (503, "not ready: shutting down\n"));
    let t_down = wait_event(&mut events, "the session going down", |e| {
        matches!(e, Event::NeighborState { neighbor, from: State::Established, .. } if *neighbor == pod)
    })
    .await;
    let drain = t_down - t_mark;
    println!(
        "SIGTERM to marking: {:?}; marking to session down: {drain:?} (drainTime 3s)",
        t_mark - t0
    );
    assert!(t_mark - t0 < Duration::from_secs(5), "{:?}", t_mark - t0);
    // The whole drain after the signal; most of it after the marking was
    // seen (which was seen late if at all, hence the second's margin).
    assert!(t_down - t0 >= Duration::from_secs(3), "{:?}", t_down - t0);
    assert!(
        drain >= Duration::from_secs(2) && drain < Duration::from_secs(6),
        "{drain:?}"
    );
    wait_no_route(&node, "198.51.100.81/32").await;
    let st = status(&node, pod).await;
    assert!(
        st.as_ref()
            .and_then(|s| s.last_error.as_deref())
            .is_none_or(|e| e.contains("Administrative Shutdown")),
        "{st:?}"
    );
    assert_eq!(sidecar.wait(Duration::from_secs(10)).code(), Some(0));
    let logs = sidecar.logs();
    assert!(
        logs.contains("SIGTERM: graceful shutdown (RFC 8326)"),
        "{logs}"
    );
    assert!(
        logs.contains("marked 1 VIP(s) with GRACEFUL_SHUTDOWN; draining for 3s"),
        "{logs}"
    );
}

/// `addVips` with one VIP already on the interface (the NF's own setup): the
/// sidecar adds only the other, and on exit removes only what it added.
#[tokio::test]
async fn add_vips_leaves_an_address_that_was_there() {
    skip_unless_runnable!(&[]);
    let pod = Netns::new("pod").unwrap();
    pod.ip(&["addr", "add", "198.51.100.81/32", "dev", "lo"])
        .unwrap();
    let mut sidecar = Sidecar::start(
        &pod,
        &[
            "--vip",
            "198.51.100.80/32",
            "--vip",
            "198.51.100.81/32",
            "--add-vips",
            "--http",
            "127.0.0.1:9179",
        ],
        &[],
    );
    sidecar.wait_log("added 198.51.100.80/32 to lo").await;
    sidecar
        .wait_log("198.51.100.81/32 is on lo already: it stays there on exit")
        .await;
    sidecar.signal(Signal::SIGTERM);
    assert_eq!(sidecar.wait(Duration::from_secs(10)).code(), Some(0));
    let lo = pod.ip(&["-o", "addr", "show", "dev", "lo"]).unwrap();
    assert!(!lo.contains("198.51.100.80/32"), "ours left behind: {lo}");
    assert!(lo.contains("198.51.100.81/32"), "theirs removed: {lo}");
}
