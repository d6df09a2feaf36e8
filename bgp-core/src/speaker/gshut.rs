//! Graceful shutdown (RFC 8326): before a session goes down on purpose, the
//! routes sent over it are announced again with the GRACEFUL_SHUTDOWN
//! community (65535:0), and towards internal neighbors with LOCAL_PREF 0, so
//! the neighbors move traffic to other paths while this one still forwards.
//! After a drain time the session closes with Cease / Administrative Shutdown
//! and a shutdown message (RFC 9003). On the receiving side a route carrying
//! the community gets LOCAL_PREF 0 (section 4.2), unless
//! [`NeighborConfig::honor_graceful_shutdown`](super::NeighborConfig::honor_graceful_shutdown)
//! is off.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};
use tracing::info;

use super::{Command, SpeakerError, SpeakerHandle, SpeakerTask, canonical};
use crate::rib::{PeerId, RouteAttrs};
use crate::wire::Community;

impl SpeakerHandle {
    /// Marks (`on`) or unmarks the routes we advertise with GRACEFUL_SHUTDOWN
    /// (RFC 8326), to one neighbor or, with `None`, to all (also those that
    /// come up meanwhile): they are sent again at once with the community,
    /// and towards internal neighbors with LOCAL_PREF 0. Sessions stay up.
    pub async fn set_graceful_shutdown(
        &self,
        neighbor: Option<IpAddr>,
        on: bool,
    ) -> Result<(), SpeakerError> {
        self.ask(|tx| Command::GracefulShutdown(neighbor, on, tx))
            .await?
    }

    /// Graceful shutdown of the whole speaker (RFC 8326): marks every route
    /// we advertise with GRACEFUL_SHUTDOWN, waits `drain` for the neighbors
    /// to move their traffic to other paths, then closes every session with
    /// Cease / Administrative Shutdown and `message` (RFC 9003) and stops, as
    /// [`SpeakerHandle::shutdown`].
    pub async fn graceful_shutdown(
        &self,
        drain: Duration,
        message: Option<String>,
    ) -> Result<(), SpeakerError> {
        self.set_graceful_shutdown(None, true).await?;
        info!("graceful shutdown: routes marked, draining for {drain:?}");
        tokio::time::sleep(drain).await;
        self.shutdown(message).await
    }

    /// Graceful shutdown of one neighbor: marks the routes sent to it, waits
    /// `drain`, then removes it as [`SpeakerHandle::remove_neighbor`] does
    /// (Cease / Administrative Shutdown with `message`).
    pub async fn graceful_shutdown_neighbor(
        &self,
        address: IpAddr,
        drain: Duration,
        message: Option<String>,
    ) -> Result<(), SpeakerError> {
        self.set_graceful_shutdown(Some(address), true).await?;
        info!(peer = %address, "graceful shutdown: routes marked, draining for {drain:?}");
        tokio::time::sleep(drain).await;
        self.remove_neighbor(address, message).await
    }
}

impl SpeakerTask {
    /// Sets the marking for one neighbor or all, and sends again what
    /// changes.
    pub(super) fn set_graceful_shutdown(
        &mut self,
        target: Option<IpAddr>,
        on: bool,
    ) -> Result<(), SpeakerError> {
        let ids: Vec<PeerId> = match target {
            None => {
                self.graceful_shutdown = on;
                self.neighbors.keys().copied().collect()
            }
            Some(ip) => {
                let ip = canonical(ip);
                let id = *self
                    .by_addr
                    .get(&ip)
                    .ok_or(SpeakerError::NoSuchNeighbor(ip))?;
                let n = self
                    .neighbors
                    .get_mut(&id)
                    .ok_or(SpeakerError::NoSuchNeighbor(ip))?;
                n.graceful_shutdown = on;
                vec![id]
            }
        };
        for id in ids {
            if let Some(n) = self.neighbors.get_mut(&id) {
                n.export_cache = None;
            }
            self.reexport_all::<Ipv4Net>(id);
            self.reexport_all::<Ipv6Net>(id);
            self.sync_metrics(id);
        }
        Ok(())
    }
}

/// Marks a route being sent: the community, and LOCAL_PREF 0 towards an
/// internal neighbor.
pub(crate) fn mark(attrs: &mut RouteAttrs, to_external: bool) {
    let a = &mut attrs.attributes;
    if !a.communities.contains(&Community::GRACEFUL_SHUTDOWN) {
        a.communities.push(Community::GRACEFUL_SHUTDOWN);
    }
    if !to_external {
        a.local_pref = Some(0);
    }
}

/// A received route with the community gets LOCAL_PREF 0 when `honor`.
pub(crate) fn on_import(honor: bool, attrs: &mut RouteAttrs) {
    let a = &mut attrs.attributes;
    if honor && a.communities.contains(&Community::GRACEFUL_SHUTDOWN) {
        a.local_pref = Some(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(communities: Vec<Community>, local_pref: Option<u32>) -> RouteAttrs {
        let mut a = RouteAttrs {
            attributes: Default::default(),
            next_hop: None,
        };
        a.attributes.communities = communities;
        a.attributes.local_pref = local_pref;
        a
    }

    #[test]
    fn marking_adds_the_community_once_and_zero_preference_inside() {
        let c = Community::new(65000, 1);
        let mut a = attrs(vec![c], None);
        mark(&mut a, true);
        assert_eq!(
            a.attributes.communities,
            vec![c, Community::GRACEFUL_SHUTDOWN]
        );
        assert_eq!(a.attributes.local_pref, None, "no LOCAL_PREF over eBGP");
        mark(&mut a, false);
        assert_eq!(a.attributes.communities.len(), 2, "added once");
        assert_eq!(a.attributes.local_pref, Some(0));
    }

    #[test]
    fn received_community_lowers_preference_when_honored() {
        let mut a = attrs(vec![Community::GRACEFUL_SHUTDOWN], Some(200));
        on_import(false, &mut a);
        assert_eq!(a.attributes.local_pref, Some(200));
        on_import(true, &mut a);
        assert_eq!(a.attributes.local_pref, Some(0));
        let mut b = attrs(vec![Community::new(65535, 1)], None);
        on_import(true, &mut b);
        assert_eq!(b.attributes.local_pref, None, "other communities leave it");
    }
}
