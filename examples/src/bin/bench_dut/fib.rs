//! Kernel FIB install for `install_fib = true` (the bench's `--fib`): every
//! best path goes into the main table (proto 201) through podpeer-host's
//! batched netlink writes, beside the speaker and never in its way.
//!
//! The routes come from a [`RouteFeed`](bgp_core::speaker::RouteFeed): the
//! installer takes the current state of what changed each time its previous
//! netlink batch is done, so a kernel slower than the RIB never loses a
//! change and a prefix that changes during a batch is written once.

use bgp_core::speaker::{FeedEntry, SpeakerHandle};
use podpeer_host::netlink::{Netlink, NextHop, Route};

/// The main table.
const TABLE: u32 = 254;

/// Routes taken from the feed per netlink round.
const BATCH: usize = 16 * 1024;

/// Starts installing the speaker's best paths into the kernel.
pub fn spawn(speaker: &SpeakerHandle) -> anyhow::Result<()> {
    let netlink = Netlink::connect()?;
    let speaker = speaker.clone();
    tokio::spawn(async move {
        let Ok(mut feed) = speaker.route_feed().await else {
            return;
        };
        while let Some(batch) = feed.next(BATCH).await {
            install(&netlink, batch).await;
        }
    });
    Ok(())
}

async fn install(netlink: &Netlink, batch: Vec<FeedEntry>) {
    let (mut add, mut del) = (Vec::new(), Vec::new());
    for (prefix, paths) in batch {
        let next_hops: Vec<NextHop> = paths
            .iter()
            .filter_map(|p| p.gateway())
            .map(|(gateway, ifindex)| NextHop { gateway, ifindex })
            .take(1)
            .collect();
        let route = Route {
            table: TABLE,
            prefix,
            next_hops,
        };
        if route.next_hops.is_empty() {
            del.push(route);
        } else {
            add.push(route);
        }
    }
    let failed = netlink
        .replace_routes(&add)
        .await
        .into_iter()
        .filter(|r| r.is_err())
        .count();
    if failed > 0 {
        tracing::warn!(failed, "routes the kernel refused");
    }
    // A route that was never installed is not there to delete: not an error.
    let _ = netlink.delete_routes(&del).await;
}
