//! Interface (unnumbered) neighbors in the speaker: one discovery task per
//! interface (see [`crate::unnumbered`]), and one neighbor per peer it learns,
//! addressed by the peer's link-local address and bound to the interface.
//!
//! A peer that goes away (moved to another address, or silent) loses its
//! neighbor at once when its session is down, else when the session ends.
//! When the interface goes down every learned neighbor goes at once, its
//! session with it (fast external failover).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::config::NeighborConfig;
use super::neighbor::Control;
use super::{Command, SpeakerError, SpeakerTask, canonical};
use crate::fsm::{RemoteAs, State};
use crate::rib::PeerId;
use crate::unnumbered::{self, Discovery, PeerChange, Sighting, Source};

/// A neighbor on an interface with no configured address (BGP unnumbered):
/// every peer learned on the interface gets a session configured by
/// `template`.
#[derive(Debug, Clone)]
pub struct InterfaceNeighbor {
    /// The interface, by name.
    pub interface: String,
    /// Settings of each learned peer's session. Its `address` is replaced by
    /// the learned address and `bind_interface` by `interface`.
    pub template: NeighborConfig,
    /// How peers are learned.
    pub discovery: Discovery,
}

impl InterfaceNeighbor {
    /// An interface neighbor on `interface` with `remote-as external`, IPv4
    /// and IPv6 unicast with the extended next hop capability (RFC 8950), a
    /// connect retry of 2 s and the default [`Discovery`].
    pub fn new(interface: impl Into<String>) -> Self {
        let interface = interface.into();
        let mut template =
            NeighborConfig::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), RemoteAs::External);
        template.extended_next_hop = true;
        template.connect_retry = std::time::Duration::from_secs(2);
        template.bind_interface = Some(interface.clone());
        Self {
            interface,
            template,
            discovery: Discovery::default(),
        }
    }
}

/// The speaker's state of one interface neighbor.
pub(super) struct Interface {
    config: InterfaceNeighbor,
    /// Sightings for the discovery task; dropping it ends the task.
    sightings: mpsc::Sender<Sighting>,
    /// The neighbors of the learned peers.
    learned: HashMap<Ipv6Addr, PeerId>,
    /// Learned neighbors whose peer went away while their session was up.
    gone: HashSet<PeerId>,
}

impl SpeakerTask {
    pub(super) fn add_interface(&mut self, config: InterfaceNeighbor) -> Result<(), SpeakerError> {
        let name = config.interface.clone();
        if self.interfaces.contains_key(&name) {
            return Err(SpeakerError::InterfaceExists(name));
        }
        let (sightings, sightings_rx) = mpsc::channel(64);
        let (changes_tx, mut changes) = mpsc::channel(64);
        tokio::spawn(unnumbered::discover(
            name.clone(),
            config.discovery.clone(),
            changes_tx,
            sightings_rx,
        ));
        // Learned peers reach the speaker as commands; a weak sender, so that
        // the speaker still stops when every handle is dropped.
        let commands = self.commands.clone();
        let iface = name.clone();
        tokio::spawn(async move {
            while let Some(change) = changes.recv().await {
                let Some(tx) = commands.upgrade() else {
                    return;
                };
                if tx
                    .send(Command::InterfacePeer(iface.clone(), change))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        info!(interface = %name, "interface neighbor added");
        self.interfaces.insert(
            name,
            Interface {
                config,
                sightings,
                learned: HashMap::new(),
                gone: HashSet::new(),
            },
        );
        Ok(())
    }

    pub(super) async fn remove_interface(
        &mut self,
        name: &str,
        message: Option<String>,
    ) -> Result<(), SpeakerError> {
        let iface = self
            .interfaces
            .remove(name)
            .ok_or_else(|| SpeakerError::NoSuchInterface(name.to_owned()))?;
        for id in iface.learned.into_values() {
            self.drop_learned(id, message.clone());
        }
        Ok(())
    }

    /// A change reported by an interface's discovery.
    pub(super) async fn interface_peer(&mut self, name: &str, change: PeerChange) {
        match change {
            PeerChange::Up(address) => self.learn(name, address, None).await,
            PeerChange::Down(address) => {
                let Some(iface) = self.interfaces.get_mut(name) else {
                    return;
                };
                let Some(&id) = iface.learned.get(&address) else {
                    return;
                };
                let up = self
                    .neighbors
                    .get(&id)
                    .is_some_and(|n| n.state == State::Established);
                if up {
                    iface.gone.insert(id);
                } else {
                    iface.learned.remove(&address);
                    info!(interface = %name, peer = %address, "peer gone: removing its neighbor");
                    self.drop_learned(id, Some("peer gone".into()));
                }
            }
            PeerChange::LinkDown => {
                let Some(iface) = self.interfaces.get_mut(name) else {
                    return;
                };
                iface.gone.clear();
                let learned = std::mem::take(&mut iface.learned);
                for (address, id) in learned {
                    info!(interface = %name, peer = %address, "interface down: ending the session");
                    self.drop_learned(id, Some("interface down".into()));
                }
            }
        }
    }

    /// Starts a session with a peer learned on `name`, with the connection it
    /// opened when it is what taught us.
    async fn learn(&mut self, name: &str, address: Ipv6Addr, stream: Option<TcpStream>) {
        let Some(iface) = self.interfaces.get_mut(name) else {
            return;
        };
        if let Some(&id) = iface.learned.get(&address) {
            if let Some(n) = self.neighbors.get(&id) {
                iface.gone.remove(&id);
                if let Some(stream) = stream {
                    let _ = n.control.send(Control::Incoming(stream)).await;
                }
                return;
            }
            // Removed or restarted by hand meanwhile: learn it afresh.
            iface.learned.remove(&address);
            iface.gone.remove(&id);
        }
        let ip = IpAddr::V6(address);
        if self.by_addr.contains_key(&ip) {
            warn!(interface = %name, peer = %address, "learned peer is already a neighbor");
            return;
        }
        let mut config = iface.config.template.clone();
        config.address = ip;
        config.bind_interface = Some(name.to_owned());
        info!(interface = %name, peer = %address, "starting a session with a learned peer");
        let id = self.spawn_neighbor(config, None, stream);
        if let Some(iface) = self.interfaces.get_mut(name) {
            iface.learned.insert(address, id);
        }
    }

    fn drop_learned(&mut self, id: PeerId, message: Option<String>) {
        let Some(n) = self.neighbors.remove(&id) else {
            return;
        };
        let ip = canonical(n.config.address);
        if self.by_addr.get(&ip) == Some(&id) {
            self.by_addr.remove(&ip);
        }
        // Should the queue be full, dropping the sender ends the task all the same.
        let _ = n.control.try_send(Control::Stop(message));
        self.withdraw_peer(id);
        self.metrics.remove(&n.labels);
    }

    /// A learned neighbor whose peer went away is removed once its session
    /// has ended.
    pub(super) fn interface_session_ended(&mut self, id: PeerId) {
        let found = self.interfaces.values_mut().find_map(|i| {
            i.gone.remove(&id).then(|| {
                i.learned.retain(|_, v| *v != id);
            })
        });
        if found.is_some() {
            self.drop_learned(id, Some("peer gone".into()));
        }
    }

    /// An incoming connection from a link-local address that no neighbor
    /// has: a peer on an interface neighbor's link (it learned us first).
    /// Gives the stream back when no interface neighbor takes it.
    pub(super) async fn interface_accept(
        &mut self,
        stream: TcpStream,
        addr: SocketAddr,
    ) -> Option<TcpStream> {
        let SocketAddr::V6(v6) = addr else {
            return Some(stream);
        };
        if !unnumbered::is_link_local(*v6.ip()) || v6.scope_id() == 0 {
            return Some(stream);
        }
        let name = self
            .interfaces
            .keys()
            .find(|n| unnumbered::if_index(n).ok() == Some(v6.scope_id()))
            .cloned();
        let Some(name) = name else {
            return Some(stream);
        };
        if let Some(iface) = self.interfaces.get(&name) {
            let _ = iface.sightings.try_send(Sighting {
                address: *v6.ip(),
                mac: None,
                source: Source::Connection,
            });
        }
        self.learn(&name, *v6.ip(), Some(stream)).await;
        None
    }
}

/// Whether a connection from `addr` may join a range whose template binds to
/// `interface`: a link-local address must have come in on that interface (a
/// range like `fe80::/10` is per link).
pub(super) fn range_admits(interface: Option<&str>, addr: SocketAddr) -> bool {
    match (interface, addr) {
        (Some(name), SocketAddr::V6(v6)) if unnumbered::is_link_local(*v6.ip()) => {
            unnumbered::if_index(name).ok() == Some(v6.scope_id())
        }
        _ => true,
    }
}
