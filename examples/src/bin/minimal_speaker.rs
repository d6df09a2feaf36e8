//! The smallest useful program on bgp-core: peer with one neighbor and announce
//! one prefix until Ctrl-C.
//!
//! `minimal-speaker 65001 192.0.2.1 192.0.2.2 198.51.100.0/24`

use bgp_core::fsm::RemoteAs;
use bgp_core::policy::RouteMap;
use bgp_core::speaker::{NeighborConfig, Speaker, SpeakerConfig};
use bgp_core::wire::{AsPath, Origin, PathAttributes};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [asn, router_id, neighbor, prefix] = &args[..] else {
        anyhow::bail!("usage: minimal-speaker ASN ROUTER_ID NEIGHBOR PREFIX");
    };
    let speaker = Speaker::start(SpeakerConfig::new(asn.parse()?, router_id.parse()?)).await?;
    let mut peer = NeighborConfig::new(neighbor.parse()?, RemoteAs::External);
    peer.import = Some(RouteMap::accept_all("in")); // RFC 8212: eBGP needs policies
    peer.export = Some(RouteMap::accept_all("out"));
    speaker.add_neighbor(peer).await?;
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        ..Default::default()
    };
    speaker.announce(prefix.parse()?, attrs).await?;
    tokio::signal::ctrl_c().await?;
    speaker
        .shutdown(Some("minimal-speaker stopping".into()))
        .await?;
    Ok(())
}
