//! A route server for a range of peers: anyone in the range may connect with any
//! AS, every route is accepted and passed to every other peer, and the best
//! paths are printed as they change.
//!
//! `route-server --asn 64512 --router-id 10.0.0.1 --range 10.0.0.0/24`

use bgp_core::fsm::RemoteAs;
use bgp_core::policy::RouteMap;
use bgp_core::speaker::{DynamicRange, Event, NeighborConfig, Speaker, SpeakerConfig};
use clap::Parser;
use ipnet::IpNet;

/// A route server accepting every peer in an address range.
#[derive(Parser)]
struct Args {
    /// Our AS number.
    #[arg(long, default_value_t = 64512)]
    asn: u32,
    /// Our BGP identifier.
    #[arg(long)]
    router_id: std::net::Ipv4Addr,
    /// Peers are accepted from this range (repeatable).
    #[arg(long, required = true)]
    range: Vec<IpNet>,
    /// Largest number of peers per range.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let speaker = Speaker::start(SpeakerConfig::new(args.asn, args.router_id)).await?;
    for prefix in args.range {
        let mut template = NeighborConfig::new(prefix.addr(), RemoteAs::Any);
        template.import = Some(RouteMap::accept_all("rs-in"));
        template.export = Some(RouteMap::accept_all("rs-out"));
        speaker
            .add_dynamic_range(DynamicRange {
                prefix,
                template,
                limit: args.limit,
            })
            .await?;
    }
    let mut events = speaker.subscribe();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = events.recv() => match event {
                Ok(Event::NeighborState { neighbor, from, to }) => println!("{neighbor}: {from} -> {to}"),
                Ok(Event::Route { prefix, paths }) if paths.is_empty() => println!("{prefix}: unreachable"),
                Ok(Event::Route { prefix, paths }) => {
                    let via: Vec<String> = paths.iter().filter_map(|p| p.neighbor.map(|n| n.to_string())).collect();
                    println!("{prefix}: via {}", via.join(", "));
                }
                Ok(Event::Rejected { neighbor, prefix, reason, .. }) => println!("{neighbor}: rejected {prefix}: {reason}"),
                Err(e) => eprintln!("event stream: {e}"),
            },
        }
    }
    speaker
        .shutdown(Some("route server stopping".into()))
        .await?;
    Ok(())
}
