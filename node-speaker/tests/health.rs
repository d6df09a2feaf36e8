#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The network health check against real interfaces, listening ports and
//! FRR, in network namespaces the tests create.

use std::future::Future;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use interop_tests::frr::Frr;
use interop_tests::netns::Netns;
use podpeer_host::netlink::Netlink;
use podpeer_node::health::{self, Gate, HealthConfig, HealthMetrics, LogReadiness, Target};

fn in_netns<F, Fut>(test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let thread = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(test());
    });
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

fn ip(args: &str) {
    let status = Command::new("ip")
        .args(args.split_whitespace())
        .status()
        .unwrap();
    assert!(status.success(), "ip {args}");
}

#[test]
fn interfaces_and_tcp_reachability_in_a_netns() {
    in_netns(|| async {
        ip("link set lo up");
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
