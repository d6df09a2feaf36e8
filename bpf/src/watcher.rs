//! Keeps the router attached to a set of interfaces by name, across their
//! deletion and re-creation, and keeps the lookup-from table in step with the
//! interfaces' current indexes.
//!
//! It listens to link events (`RTNLGRP_LINK`) and keeps its own name-to-index
//! table from them; a full dump at start, after an event overrun, and every
//! `resync` interval (a safety net, not the mechanism) brings the table back to
//! the truth. After every change it reconciles: each wanted interface that
//! exists is attached to *its current index*; one that went away is forgotten
//! until it comes back.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::{Handle, MulticastGroup};

use crate::router::{BpfError, Router};

/// A router shared by the watcher and whoever reads its counters.
pub type SharedRouter = Arc<Mutex<Router>>;

/// Locks a shared router (a panic elsewhere does not make it unusable).
pub fn lock(router: &SharedRouter) -> MutexGuard<'_, Router> {
    router.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Interface name to index, as the kernel last told us.
type Links = BTreeMap<String, u32>;

/// Keeps [`Router`] attached to the wanted interfaces (see the module doc).
pub struct Watcher {
    router: SharedRouter,
    interfaces: BTreeSet<String>,
    lookup_from: BTreeMap<String, String>,
    resync: Duration,
    /// What we put into the lookup-from map: ingress name -> (in, lookup).
    installed: BTreeMap<String, (u32, u32)>,
}

impl Watcher {
    /// A watcher for `interfaces` (names in the calling thread's network
    /// namespace, where [`Watcher::run`] must run too).
    pub fn new<S: Into<String>>(
        router: SharedRouter,
        interfaces: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            router,
            interfaces: interfaces.into_iter().map(Into::into).collect(),
            lookup_from: BTreeMap::new(),
            resync: Duration::from_secs(30),
            installed: BTreeMap::new(),
        }
    }

    /// Packets arriving on `ifname_in` are looked up as if from
    /// `ifname_lookup` whenever both exist (e.g. a VRF member and its VRF).
    pub fn lookup_from(
        mut self,
        ifname_in: impl Into<String>,
        ifname_lookup: impl Into<String>,
    ) -> Self {
        self.lookup_from
            .insert(ifname_in.into(), ifname_lookup.into());
        self
    }

    /// How often to re-read all links even without events (default 30 s).
    pub fn resync_every(mut self, every: Duration) -> Self {
        self.resync = every.max(Duration::from_millis(100));
        self
    }

    /// The interfaces it keeps the router attached to.
    pub fn interfaces(&self) -> &BTreeSet<String> {
        &self.interfaces
    }

    /// Watches until `shutdown` completes, then detaches from every wanted
    /// interface and removes its lookup-from entries. Fails only when it
    /// cannot talk netlink at all at start.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), BpfError> {
        tokio::pin!(shutdown);
        let mut first = true;
        'connect: loop {
            let (conn, handle, mut events) =
                match rtnetlink::new_multicast_connection(&[MulticastGroup::Link]) {
                    Ok(c) => c,
                    Err(e) if first => return Err(BpfError::Netlink(e)),
                    Err(e) => {
                        tracing::warn!("link watcher cannot reconnect to netlink: {e}");
                        tokio::select! {
                            () = &mut shutdown => break 'connect,
                            () = tokio::time::sleep(Duration::from_secs(1)) => continue 'connect,
                        }
                    }
                };
            first = false;
            let conn = tokio::spawn(conn);
            let mut links = Links::new();
            let mut tick = tokio::time::interval(self.resync);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = &mut shutdown => {
                        conn.abort();
                        break 'connect;
                    }
                    // The first tick is immediate: the initial dump.
                    _ = tick.tick() => self.resync(&handle, &mut links).await,
                    event = events.next() => match event {
                        Some((message, _)) => {
                            if apply(&mut links, message) == Applied::Overrun {
                                tracing::warn!("link events were lost; re-reading all links");
                                self.resync(&handle, &mut links).await;
                            } else {
                                self.reconcile(&links);
                            }
                        }
                        None => {
                            tracing::warn!("link watcher lost its netlink socket; reconnecting");
                            conn.abort();
                            continue 'connect;
                        }
                    },
                }
            }
        }
        self.stop();
        Ok(())
    }

    async fn resync(&mut self, handle: &Handle, links: &mut Links) {
        match dump(handle).await {
            Ok(now) => *links = now,
            Err(e) => tracing::warn!("cannot list links: {e}"),
        }
        self.reconcile(links);
    }

    /// Brings attachments and lookup-from entries in line with `links`.
    fn reconcile(&mut self, links: &Links) {
        let mut router = lock(&self.router);
        for name in &self.interfaces {
            let attached = router.attached_ifindex(name);
            match links.get(name) {
                Some(&index) if attached == Some(index) => {}
                Some(&index) => match router.attach(name) {
                    Ok(_) => {}
                    Err(e) => tracing::warn!(ifname = %name, index, "{e}"),
                },
                None => {
                    if attached.is_some() {
                        router.forget(name);
                        tracing::info!(ifname = %name, "interface is gone; attaching again when it is back");
                    }
                }
            }
        }
        for (from, to) in &self.lookup_from {
            let want = links.get(from).copied().zip(links.get(to).copied());
            let have = self.installed.get(from).copied();
            if want == have {
                continue;
            }
            if let Some((old_in, _)) = have {
                if let Err(e) = router.clear_lookup_from(old_in) {
                    tracing::warn!(ifname = %from, "{e}");
                }
                self.installed.remove(from);
            }
            if let Some((index_in, index_lookup)) = want {
                match router.set_lookup_from(index_in, index_lookup) {
                    Ok(()) => {
                        tracing::info!(from = %from, to = %to, index_in, index_lookup, "FIB lookups for packets from {from} use {to}");
                        self.installed
                            .insert(from.clone(), (index_in, index_lookup));
                    }
                    Err(e) => tracing::warn!(ifname = %from, "{e}"),
                }
            }
        }
    }

    fn stop(&mut self) {
        let mut router = lock(&self.router);
        for name in &self.interfaces {
            if let Err(e) = router.detach(name) {
                tracing::warn!("{e}");
            }
        }
        for (index_in, _) in std::mem::take(&mut self.installed).into_values() {
            if let Err(e) = router.clear_lookup_from(index_in) {
                tracing::warn!("{e}");
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Applied {
    Done,
    Overrun,
}

/// Updates `links` from one link event.
fn apply(links: &mut Links, message: NetlinkMessage<RouteNetlinkMessage>) -> Applied {
    match message.payload {
        NetlinkPayload::Overrun(_) => return Applied::Overrun,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
            let index = link.header.index;
            // A rename arrives as a new name for a known index.
            links.retain(|_, i| *i != index);
            if let Some(name) = name_of(&link) {
                links.insert(name, index);
            }
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
            let index = link.header.index;
            links.retain(|_, i| *i != index);
        }
        _ => {}
    }
    Applied::Done
}

fn name_of(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.clone()),
        _ => None,
    })
}

async fn dump(handle: &Handle) -> Result<Links, rtnetlink::Error> {
    let mut links = Links::new();
    let mut stream = handle.link().get().execute();
    while let Some(link) = stream.next().await {
        let link = link?;
        if let Some(name) = name_of(&link) {
            links.insert(name, link.header.index);
        }
    }
    Ok(links)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::link::LinkHeader;

    fn link_message(index: u32, name: Option<&str>) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header = LinkHeader {
            index,
            ..LinkHeader::default()
        };
        if let Some(n) = name {
            m.attributes.push(LinkAttribute::IfName(n.to_owned()));
        }
        m
    }

    fn event(payload: RouteNetlinkMessage) -> NetlinkMessage<RouteNetlinkMessage> {
        NetlinkMessage::from(payload)
    }

    #[test]
    fn events_keep_the_name_table() {
        let mut links = Links::new();
        apply(
            &mut links,
            event(RouteNetlinkMessage::NewLink(link_message(
                7,
                Some("vx.200"),
            ))),
        );
        apply(
            &mut links,
            event(RouteNetlinkMessage::NewLink(link_message(
                8,
                Some("br.vips"),
            ))),
        );
        assert_eq!(links.get("vx.200"), Some(&7));

        // Deleted and re-created: a new index under the same name.
        apply(
            &mut links,
            event(RouteNetlinkMessage::DelLink(link_message(7, None))),
        );
        assert_eq!(links.get("vx.200"), None);
        apply(
            &mut links,
            event(RouteNetlinkMessage::NewLink(link_message(
                12,
                Some("vx.200"),
            ))),
        );
        assert_eq!(links.get("vx.200"), Some(&12));

        // Renamed: the old name is gone.
        apply(
            &mut links,
            event(RouteNetlinkMessage::NewLink(link_message(
                8,
                Some("br.old"),
            ))),
        );
        assert_eq!(links.get("br.vips"), None);
        assert_eq!(links.get("br.old"), Some(&8));
        assert_eq!(links.len(), 2);
    }

    #[test]
    fn an_overrun_asks_for_a_resync() {
        let mut links = Links::new();
        let overrun = NetlinkMessage::new(Default::default(), NetlinkPayload::Overrun(Vec::new()));
        assert_eq!(apply(&mut links, overrun), Applied::Overrun);
    }
}
