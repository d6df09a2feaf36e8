#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The network health check against real interfaces, listening ports and
//! FRR, in network namespaces the tests create.

use std::path::Path;
use std::time::Duration;

use interop_tests::frr::Frr;
use interop_tests::netns::Netns;
use interop_tests::private::{in_private_netns, ip};
use podpeer_host::netlink::Netlink;
use podpeer_node::health::{self, Gate, HealthConfig, HealthMetrics, LogReadiness, Target};

#[test]
fn interfaces_and_tcp_reachability_in_a_netns() {
    in_private_netns(|| async {
        ip("link add hc0 type veth peer name hc1");
        ip("link set hc0 up");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap().port();
        // A port nobody listens on: bound and dropped.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let config = HealthConfig {
            interfaces: vec!["hc0".into(), "hc1".into(), "nothere".into()],
            reachability: vec![
                Target {
                    host: "127.0.0.1".into(),
                    port: open,
                },
                Target {
                    host: "127.0.0.1".into(),
                    port: closed,
                },
            ],
            retries: 2,
            retry_interval: Duration::from_millis(10),
            ..HealthConfig::default()
        };
        let netlink = Netlink::connect().unwrap();
        let results = health::check_network(&netlink, &config).await;
        let summary: Vec<(String, bool, String)> = results
            .iter()
            .map(|r| (r.name.clone(), r.ok, r.detail.clone()))
            .collect();
        assert_eq!(summary[0], ("interface hc0".into(), true, "up".into()));
        assert_eq!(summary[1], ("interface hc1".into(), false, "down".into()));
        assert_eq!(
            summary[2],
            (
                "interface nothere".into(),
                false,
                "no such interface".into()
            )
        );
        assert_eq!(summary[3].0, format!("tcp 127.0.0.1:{open}"));
        assert!(summary[3].1, "{summary:?}");
        assert!(!summary[4].1);
        assert!(summary[4].2.starts_with("2 attempts: "), "{}", summary[4].2);

        let metrics = HealthMetrics::default();
        assert!(!metrics.record(&results));

        // hc1 up, only the open port: ready, the taint goes.
        ip("link set hc1 up");
        let config = HealthConfig {
            interfaces: vec!["hc0".into(), "hc1".into()],
            reachability: vec![Target {
                host: "127.0.0.1".into(),
                port: open,
            }],
            ..config
        };
        let results = health::check_network(&netlink, &config).await;
        assert!(metrics.record(&results), "{results:?}");
        let mut gate = Gate::new(vec![]);
        gate.apply(&results, &LogReadiness).await.unwrap();
        drop(listener);
    });
}

#[test]
fn frr_running_or_not() {
    let ns = Netns::new("hcfrr").unwrap();
    let frr = Frr::start(&ns, "router bgp 65010\nexit\n").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let vtysh = Path::new("/usr/bin/vtysh");
        let up = health::check_frr(vtysh, Some(frr.dir())).await;
        assert!(up.ok, "{up:?}");
        let empty = tempfile::tempdir().unwrap();
        let down = health::check_frr(vtysh, Some(empty.path())).await;
        assert!(!down.ok);
        assert!(!down.detail.is_empty());
    });
}

const BIN: &str = env!("CARGO_BIN_EXE_podpeer-node");

/// `podpeer_node_health_check` and `podpeer_node_network_ready` of the
/// daemon in `ns`: (check, value) lines.
fn health_metrics(ns: &Netns) -> Vec<String> {
    let out = ns
        .command("curl")
        .args(["-s", "http://127.0.0.1:9180/metrics"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            l.starts_with("podpeer_node_health_check{")
                || l.starts_with("podpeer_node_network_ready")
        })
        .map(str::to_owned)
        .collect()
}

fn wait_metrics(ns: &Netns, want: &[&str], log: &Path) {
    let start = std::time::Instant::now();
    loop {
        let have = health_metrics(ns);
        if want.iter().all(|w| have.iter().any(|h| h == w)) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "want {want:?}\nhave {have:?}\n--- log:\n{}",
            interop_tests::tail(log, 60)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Native mode: the daemon (file mode, no FRR) runs the health check with
/// its fabric session to a real FRR in another netns: not ready while FRR
/// is absent (session down, its BGP port closed), ready once the session is
/// Established (the taints go, in the log), not ready again when bgpd dies.
#[test]
fn native_mode_is_ready_with_its_fabric_sessions() {
    let node = Netns::new("hnode").unwrap();
    let fab = Netns::new("hfab").unwrap();
    interop_tests::netns::veth(
        &node,
        "fab0",
        &["192.0.2.10/24"],
        &fab,
        "node0",
        &["192.0.2.1/24"],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.yaml");
    std::fs::write(
        &config,
        "localAs: 65010\nrouterId: 192.0.2.10\nhttp: 127.0.0.1:9180\n\
         fabric:\n  - address: 192.0.2.1\n    remoteAs: 65000\n    description: tor1\n    holdTime: 9s\n\
         podGroups:\n  - name: lb\n    peers: [10.244.1.0/28]\n    allowedPrefixes:\n      - {prefix: 198.51.100.0/24, ge: 32, le: 32}\n",
    )
    .unwrap();
    let health_file = dir.path().join("hc.yaml");
    std::fs::write(
        &health_file,
        "interfaces: [fab0]\nreachability:\n  - {host: 192.0.2.1, port: 179}\ntimeout: 500ms\nretries: 1\n",
    )
    .unwrap();
    let log = dir.path().join("node.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = node
        .command(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .arg("--health-config")
        .arg(&health_file)
        .args([
            "--health-interval",
            "300ms",
            "--remove-taint",
            "example.com/net",
        ])
        .env("PODPEER_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Kill(child);

    // No FRR: the link is up, the rest is not.
    wait_metrics(
        &node,
        &[
            "podpeer_node_health_check{check=\"interface fab0\"} 1",
            "podpeer_node_health_check{check=\"tcp 192.0.2.1:179\"} 0",
            "podpeer_node_health_check{check=\"fabric\"} 0",
            "podpeer_node_network_ready 0",
        ],
        &log,
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("fabric: 0 of 1 sessions established: tor1 (192.0.2.1)"),
        "{text}"
    );
    assert!(!text.contains("taints to remove"), "{text}");

    // FRR comes: the session is Established, everything passes.
    let mut frr = Frr::start(
        &fab,
        "router bgp 65000\n bgp router-id 192.0.2.1\n no bgp ebgp-requires-policy\n \
         neighbor 192.0.2.10 remote-as 65010\n neighbor 192.0.2.10 timers 3 9\n \
         neighbor 192.0.2.10 timers connect 1\n",
    )
    .unwrap();
    wait_metrics(
        &node,
        &[
            "podpeer_node_health_check{check=\"tcp 192.0.2.1:179\"} 1",
            "podpeer_node_health_check{check=\"fabric\"} 1",
            "podpeer_node_network_ready 1",
        ],
        &log,
    );
    // FRR agrees (its side may note it a moment later).
    let start = std::time::Instant::now();
    while !frr.established("192.0.2.10") {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", frr.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("NetworkChecksPassed"), "{text}");
    assert_eq!(text.matches("taints to remove").count(), 1, "{text}");
    assert!(
        text.contains("[\"node.cloudprovider.kubernetes.io/uninitialized\", \"example.com/net\"]"),
        "{text}"
    );

    // bgpd dies: the session and the port are gone, not ready; the taints
    // are not removed a second time.
    frr.kill_bgpd().unwrap();
    wait_metrics(
        &node,
        &[
            "podpeer_node_health_check{check=\"fabric\"} 0",
            "podpeer_node_network_ready 0",
        ],
        &log,
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("taints to remove").count(), 1, "{text}");
    drop(child);
}
