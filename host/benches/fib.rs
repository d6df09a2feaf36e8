//! Kernel FIB writes: how fast `Netlink::replace_routes` / `delete_routes`
//! install and remove 10,000 /32 routes (one next hop, and 2-way ECMP) in a
//! table, batched and pipelined against one request at a time.
//!
//! Runs in a private network namespace: the bench's main thread unshares
//! one at start (it goes away when the process exits), so nothing touches
//! the host's routing. Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN).
//!
//! One criterion element is one route written, so `thrpt` is routes/second.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use ipnet::{IpNet, Ipv4Net};
use podpeer_host::netlink::{Netlink, NextHop, Pipeline, Route};
use tokio::runtime::Runtime;

const ROUTES: usize = 10_000;
const TABLE: u32 = 100;

fn ip(args: &str) {
    let status = Command::new("ip")
        .args(args.split_whitespace())
        .status()
        .expect("run ip");
    assert!(status.success(), "ip {args}");
}

/// Moves this thread into a fresh network namespace with veth0
/// (192.0.2.1/24) up; returns veth0's index.
fn private_netns() -> u32 {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
    ip("link set lo up");
    ip("link add veth0 type veth peer name veth1");
    ip("link set veth0 up");
    ip("link set veth1 up");
    ip("addr add 192.0.2.1/24 dev veth0");
    let out = Command::new("ip")
        .args(["-o", "link", "show", "dev", "veth0"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split(':').next().unwrap().trim().parse().unwrap()
}

fn routes(ifindex: u32, ecmp: bool) -> Vec<Route> {
    let gateways: &[[u8; 4]] = if ecmp {
        &[[192, 0, 2, 2], [192, 0, 2, 3]]
    } else {
        &[[192, 0, 2, 2]]
    };
    (0..ROUTES as u32)
        .map(|i| Route {
            table: TABLE,
            prefix: IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + i), 32).unwrap()),
            next_hops: gateways
                .iter()
                .map(|g| NextHop {
                    gateway: Ipv4Addr::from(*g).into(),
                    ifindex: Some(ifindex),
                })
                .collect(),
        })
        .collect()
}

fn check(results: Vec<Result<(), podpeer_host::netlink::NetlinkError>>) {
    for r in results {
        r.unwrap();
    }
}

fn fib(c: &mut Criterion) {
    let ifindex = private_netns();
    let runtime: Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let base = runtime.block_on(async { Netlink::connect() }).unwrap();

    let pipelines = [
        ("batched", Pipeline::DEFAULT),
        (
            "pipelined-unbatched",
            Pipeline {
                batch: 1,
                in_flight: 128,
            },
        ),
        ("one-at-a-time", Pipeline::ONE_AT_A_TIME),
    ];
    let mut group = c.benchmark_group("fib");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(ROUTES as u64));
    for (kind, ecmp) in [("single", false), ("ecmp2", true)] {
        let set = routes(ifindex, ecmp);
        for (name, pipeline) in pipelines {
            let mut nl = base.clone();
            nl.set_pipeline(pipeline);
            // Sanity, once: everything lands and leaves.
            runtime.block_on(async {
                check(nl.replace_routes(&set).await);
                assert_eq!(nl.our_routes().await.unwrap().len(), ROUTES);
                check(nl.delete_routes(&set).await);
                assert!(nl.our_routes().await.unwrap().is_empty());
            });
            group.bench_function(format!("install-10k-{kind}/{name}"), |b| {
                b.iter_custom(|iters| {
                    let mut took = Duration::ZERO;
                    for _ in 0..iters {
                        runtime.block_on(async {
                            let start = Instant::now();
                            check(nl.replace_routes(&set).await);
                            took += start.elapsed();
                            check(nl.delete_routes(&set).await);
                        });
                    }
                    took
                });
            });
            group.bench_function(format!("delete-10k-{kind}/{name}"), |b| {
                b.iter_custom(|iters| {
                    let mut took = Duration::ZERO;
                    for _ in 0..iters {
                        runtime.block_on(async {
                            check(nl.replace_routes(&set).await);
                            let start = Instant::now();
                            check(nl.delete_routes(&set).await);
                            took += start.elapsed();
                        });
                    }
                    took
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, fib);
criterion_main!(benches);
