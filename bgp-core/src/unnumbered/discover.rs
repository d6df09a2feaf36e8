//! The discovery task of one interface: sends our Router Advertisements,
//! listens for the peers', reads the neighbor table, follows the link's state,
//! and reports every change of the set of peers for as long as it runs.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::Discovery;
use super::io::{LinkEvents, RaSocket, if_index, routers};
use super::learn::{Learner, PeerChange, Sighting, Source};
use super::ra::RouterAdvertisement;

/// Advertisements sent one second apart when starting, so that a peer that
/// waits for one learns us at once (RFC 4861 section 6.2.4 allows a few).
const INITIAL_ADVERTISEMENTS: u32 = 3;
/// Answer a new peer's advertisement with ours, but not more often than this.
const MIN_ANSWER_GAP: Duration = Duration::from_secs(1);

/// Runs discovery on `interface` until `sightings` closes (the interface
/// neighbor was removed) or `changes` does (the speaker stopped). Sightings
/// from elsewhere (a connection the peer opened) come in on `sightings`.
pub async fn discover(
    interface: String,
    config: Discovery,
    changes: mpsc::Sender<PeerChange>,
    mut sightings: mpsc::Receiver<Sighting>,
) {
    let mut learner = Learner::new(config.expire_after);
    let mut socket: Option<RaSocket> = None;
    let mut ifindex = 0;
    let mut sent = 0u32;
    let mut last_sent: Option<Instant> = None;
    let mut next_ra = Instant::now();
    let mut next_poll = Instant::now();
    let mut links = if config.fast_failover {
        LinkEvents::open()
            .inspect_err(|e| warn!(%interface, "no link events, no fast failover: {e}"))
            .ok()
    } else {
        None
    };
    let mut link_up = true;
    let ours = RouterAdvertisement {
        hop_limit: 0,
        lifetime: config.lifetime,
        source_mac: None,
    }
    .encode();
    loop {
        if socket.is_none() {
            match if_index(&interface).and_then(|i| RaSocket::open(&interface, i).map(|s| (i, s))) {
                Ok((i, s)) => {
                    debug!(%interface, ifindex = i, "discovery socket open");
                    ifindex = i;
                    socket = Some(s);
                    next_ra = Instant::now();
                    sent = 0;
                    // A new interface, or the old one back: the events say
                    // when it is down.
                    link_up = true;
                }
                Err(e) => debug!(%interface, "cannot open the discovery socket yet: {e}"),
            }
        }
        let mut found = Vec::new();
        tokio::select! {
            s = sightings.recv() => match s {
                Some(s) => found.push(s),
                None => return,
            },
            _ = tokio::time::sleep_until(next_ra), if config.advertise && socket.is_some() => {
                if let Some(s) = &socket
                    && let Err(e) = s.send(&ours).await
                {
                    debug!(%interface, "cannot send a Router Advertisement: {e}");
                }
                sent += 1;
                last_sent = Some(Instant::now());
                next_ra = Instant::now() + if sent < INITIAL_ADVERTISEMENTS {
                    Duration::from_secs(1).min(config.interval)
                } else {
                    config.interval
                };
            }
            r = async {
                match &socket {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            } => match r {
                Ok(p) => match RouterAdvertisement::accept(p.source, p.hop_limit, &p.icmp) {
                    Ok(ra) => found.push(Sighting {
                        address: p.source,
                        mac: ra.source_mac,
                        source: Source::Advertisement,
                    }),
                    Err(super::RaError::NotAdvertisement(_)) => {}
                    Err(e) => debug!(%interface, "ignored: {e}"),
                },
                Err(e) => {
                    // The interface went away (or was re-created): reopen.
                    debug!(%interface, "discovery socket failed: {e}");
                    socket = None;
                }
            },
            up = async {
                match &mut links {
                    Some(l) if ifindex != 0 => l.next(ifindex).await,
                    _ => std::future::pending().await,
                }
            } => match up {
                Some(false) if link_up => {
                    // Fast external failover: the peers cannot be reached
                    // now, so their sessions end at once rather than when
                    // the hold timer runs out; they are learned afresh
                    // when the link is back.
                    link_up = false;
                    info!(%interface, "link down: ending the sessions on it");
                    learner = Learner::new(config.expire_after);
                    if changes.send(PeerChange::LinkDown).await.is_err() {
                        return;
                    }
                }
                Some(true) if !link_up => {
                    link_up = true;
                    info!(%interface, "link up: advertising ourselves");
                    next_ra = Instant::now();
                    sent = 0;
                }
                Some(_) => {}
                None => {
                    warn!(%interface, "link events ended: no fast failover from now on");
                    links = None;
                }
            },
            _ = tokio::time::sleep_until(next_poll) => {
                next_poll = Instant::now() + config.neighbor_table.unwrap_or(Duration::from_secs(1));
                if config.neighbor_table.is_some() && ifindex != 0 {
                    match routers(ifindex).await {
                        Ok(rs) => found.extend(rs.into_iter().map(|r| Sighting {
                            address: r.address,
                            mac: r.mac,
                            source: Source::NeighborTable,
                        })),
                        Err(e) => debug!(%interface, "cannot read the neighbor table: {e}"),
                    }
                }
                for c in learner.expire(std::time::Instant::now()) {
                    info!(%interface, "peer {c:?}: not seen for {:?}", config.expire_after);
                    if changes.send(c).await.is_err() {
                        return;
                    }
                }
            }
        }
        let mut new_peer = false;
        for s in found {
            for c in learner.saw(std::time::Instant::now(), s) {
                info!(%interface, source = ?s.source, "peer {c:?}");
                new_peer |= matches!(c, PeerChange::Up(_));
                if changes.send(c).await.is_err() {
                    return;
                }
            }
        }
        // A new peer hears from us at once rather than at our next interval.
        if new_peer
            && config.advertise
            && last_sent.is_none_or(|t| t.elapsed() >= MIN_ANSWER_GAP)
            && let Some(s) = &socket
        {
            if let Err(e) = s.send(&ours).await {
                warn!(%interface, "cannot send a Router Advertisement: {e}");
            }
            last_sent = Some(Instant::now());
        }
    }
}
