//! The device under test for `shared/bench` (its "custom DUT" contract): reads the
//! bench's TOML, accepts every route from every neighbor and exports every route
//! to every neighbor as eBGP with next hop self, and stays in the foreground.
//!
//! `bench-dut --config {config}` (see `docs/bench-dut.txt`).

#[path = "bench_dut/fib.rs"]
mod fib;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use bgp_core::fsm::RemoteAs;
use bgp_core::policy::RouteMap;
use bgp_core::speaker::{DynamicRange, NeighborConfig, Speaker, SpeakerConfig};
use bgp_core::wire::AfiSafi;
use clap::Parser;
use ipnet::IpNet;
use serde::Deserialize;

/// Runs a bgp-core speaker as the benchmark's device under test.
#[derive(Parser)]
struct Args {
    /// The bench's TOML configuration.
    #[arg(long)]
    config: PathBuf,
    /// Override the neighbors' batch interval (milliseconds; see
    /// `NeighborConfig::batch_interval`).
    #[arg(long)]
    batch_interval_ms: Option<u64>,
    /// Send neighbors routes whose AS path holds their AS too (turns off
    /// bgp-core's sender-side loop detection, `NeighborConfig::sender_loop_check`).
    #[arg(long)]
    no_sender_loop_check: bool,
}

#[derive(Deserialize)]
struct Config {
    local_as: u32,
    router_id: Ipv4Addr,
    #[serde(default = "default_port")]
    listen_port: u16,
    #[serde(default = "yes")]
    ipv4_unicast: bool,
    #[serde(default)]
    ipv6_unicast: bool,
    #[serde(default)]
    install_fib: bool,
    #[serde(default)]
    neighbors: Vec<Neighbor>,
    #[serde(default)]
    dynamic_neighbors: Vec<Range>,
}

fn default_port() -> u16 {
    179
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct Neighbor {
    address: IpAddr,
    remote_as: u32,
    local_address: Option<IpAddr>,
    #[serde(default)]
    passive: bool,
}

#[derive(Deserialize)]
struct Range {
    prefix: IpNet,
    remote_as: u32,
    local_address: Option<IpAddr>,
}

#[derive(Deserialize)]
struct IpAddrInfo {
    #[serde(default)]
    addr_info: Vec<AddrInfo>,
}

#[derive(Deserialize)]
struct AddrInfo {
    local: IpAddr,
    scope: String,
}

/// For each local IPv4 address, the global IPv6 address on the same interface:
/// the next hop to announce for IPv6 routes over an IPv4 session.
fn ipv6_beside_ipv4() -> HashMap<IpAddr, Ipv6Addr> {
    let out = std::process::Command::new("ip")
        .args(["-j", "addr", "show"])
        .output();
    let Ok(out) = out else { return HashMap::new() };
    let links: Vec<IpAddrInfo> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut map = HashMap::new();
    for link in links {
        let v6 = link.addr_info.iter().find_map(|a| match a.local {
            IpAddr::V6(v6) if a.scope == "global" => Some(v6),
            _ => None,
        });
        if let Some(v6) = v6 {
            for a in link.addr_info.iter().filter(|a| a.local.is_ipv4()) {
                map.insert(a.local, v6);
            }
        }
    }
    map
}

/// Settings from the command line for every neighbor.
struct Tuning {
    batch_interval: Option<Duration>,
    sender_loop_check: bool,
}

fn neighbor(
    config: &Config,
    tuning: &Tuning,
    address: IpAddr,
    remote_as: u32,
    local: Option<IpAddr>,
    passive: bool,
    v6: &HashMap<IpAddr, Ipv6Addr>,
) -> NeighborConfig {
    let mut n = NeighborConfig::new(address, RemoteAs::Number(remote_as));
    n.passive = passive;
    n.source_address = local;
    n.connect_retry = Duration::from_secs(1);
    n.import = Some(RouteMap::accept_all("bench-in"));
    n.export = Some(RouteMap::accept_all("bench-out"));
    n.sender_loop_check = tuning.sender_loop_check;
    n.families.clear();
    if config.ipv4_unicast {
        n.families.push(AfiSafi::IPV4_UNICAST);
    }
    if config.ipv6_unicast {
        n.families.push(AfiSafi::IPV6_UNICAST);
    }
    n.next_hop_v6 = local.and_then(|l| v6.get(&l).copied());
    if let Some(batch) = tuning.batch_interval {
        n.batch_interval = batch;
    }
    n
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let config: Config =
        toml::from_str(&text).with_context(|| format!("parsing {}", args.config.display()))?;
    let v6 = ipv6_beside_ipv4();
    let tuning = Tuning {
        batch_interval: args.batch_interval_ms.map(Duration::from_millis),
        sender_loop_check: !args.no_sender_loop_check,
    };
    let mut sc = SpeakerConfig::new(config.local_as, config.router_id);
    sc.listen = vec![SocketAddr::new(
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        config.listen_port,
    )];
    let speaker = Speaker::start(sc).await?;
    if config.install_fib {
        fib::spawn(&speaker).context("kernel FIB install")?;
    }
    for n in &config.neighbors {
        speaker
            .add_neighbor(neighbor(
                &config,
                &tuning,
                n.address,
                n.remote_as,
                n.local_address,
                n.passive,
                &v6,
            ))
            .await?;
    }
    for r in &config.dynamic_neighbors {
        let template = neighbor(
            &config,
            &tuning,
            r.prefix.addr(),
            r.remote_as,
            r.local_address,
            true,
            &v6,
        );
        speaker
            .add_dynamic_range(DynamicRange {
                prefix: r.prefix,
                template,
                limit: 65535,
            })
            .await?;
    }
    eprintln!(
        "bench-dut: AS {} with {} neighbors and {} ranges",
        config.local_as,
        config.neighbors.len(),
        config.dynamic_neighbors.len()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    speaker.shutdown(None).await?;
    Ok(())
}
