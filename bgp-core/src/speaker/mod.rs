//! The Speaker API: a BGP speaker built from a config and driven through a
//! cloneable [`SpeakerHandle`].
//!
//! One task owns the RIB and all policy decisions; one task per neighbor owns
//! its session (see `neighbor`). Sessions hand decoded UPDATEs to the RIB task
//! over a bounded channel (so a flood from one peer slows that peer's TCP, not
//! the others), and the RIB task hands each neighbor the latest desired state
//! per prefix through a coalescing queue that never blocks it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), bgp_core::speaker::SpeakerError> {
//! use bgp_core::fsm::RemoteAs;
//! use bgp_core::policy::RouteMap;
//! use bgp_core::speaker::{NeighborConfig, Speaker, SpeakerConfig};
//! use bgp_core::wire::{AsPath, Origin, PathAttributes};
//!
//! let speaker = Speaker::start(SpeakerConfig::new(65001, "192.0.2.1".parse().unwrap())).await?;
//! let mut peer = NeighborConfig::new("192.0.2.2".parse().unwrap(), RemoteAs::External);
//! peer.import = Some(RouteMap::accept_all("in"));
//! peer.export = Some(RouteMap::accept_all("out"));
//! speaker.add_neighbor(peer).await?;
//! let attrs = PathAttributes { origin: Some(Origin::Igp), as_path: Some(AsPath::default()), ..Default::default() };
//! speaker.announce("198.51.100.0/24".parse().unwrap(), attrs).await?;
//! # Ok(()) }
//! ```

mod config;
mod export;
mod feed;
mod graceful;
mod gshut;
mod interface;
mod neighbor;
mod nexthop;
mod outq;
mod security;
mod sockopt;
mod types;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

pub use config::{
    BGP_PORT, DynamicRange, GracefulRestartConfig, MaxPrefixes, NeighborConfig, Password,
    SpeakerConfig,
};
pub use feed::{FeedEntry, RouteFeed};
pub use interface::InterfaceNeighbor;
use types::RejectKind;
pub use types::{
    Event, NeighborCounters, NeighborStatus, REJECT_REASONS, RejectedPrefix, RibEntry, RoutePath,
};

use crate::fsm::{DownReason, Fsm, FsmConfig, Negotiated, State};
use crate::metrics::{Metrics, NeighborLabels, state_number};
use crate::policy::{GuardRefusal, RouteMap};
use crate::rib::{Change, LOCAL, PeerId, PeerMeta, Rib, RibPrefix, Route, RouteAttrs, SourceKind};
use crate::wire::{
    AfiSafi, Capability, Community, Message, MpUnreach, NextHop, Nlri, Notification,
    PathAttributes, Prefixes, RouteRefresh, RouteRefreshSubtype, Update,
};
use export::{ExportState, FamilyExport};
use neighbor::{Control, FromNeighbor, NeighborTask};
use outq::{FxMap, OutQueue, Refills};

/// Errors of the Speaker API.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The neighbor is already configured.
    #[error("neighbor {0} already exists")]
    NeighborExists(IpAddr),
    /// No such neighbor.
    #[error("no neighbor {0}")]
    NoSuchNeighbor(IpAddr),
    /// The prefix is not IPv4 or IPv6 unicast material.
    #[error("unsupported prefix {0}")]
    Unsupported(IpNet),
    /// The speaker has shut down.
    #[error("the speaker has stopped")]
    Stopped,
    /// A TCP-MD5 key cannot be set (a bad password, or the kernel refused).
    #[error("cannot set the TCP-MD5 key for {peers}: {source}")]
    TcpMd5 {
        /// The neighbor's address or the range.
        peers: IpNet,
        /// Why.
        source: std::io::Error,
    },
    /// The interface neighbor is already configured.
    #[error("interface neighbor {0} already exists")]
    InterfaceExists(String),
    /// No such interface neighbor.
    #[error("no interface neighbor {0}")]
    NoSuchInterface(String),
}

/// An Adj-RIB of one neighbor: prefixes with their attributes, sorted.
pub type AdjRib = Vec<(IpNet, Arc<RouteAttrs>)>;

enum Command {
    AddNeighbor(NeighborConfig, oneshot::Sender<Result<(), SpeakerError>>),
    RemoveNeighbor(
        IpAddr,
        Option<String>,
        oneshot::Sender<Result<(), SpeakerError>>,
    ),
    UpdatePolicy(
        IpAddr,
        Option<RouteMap>,
        Option<RouteMap>,
        oneshot::Sender<Result<(), SpeakerError>>,
    ),
    AddRange(DynamicRange, oneshot::Sender<Result<(), SpeakerError>>),
    RemoveRange(IpNet, oneshot::Sender<Result<(), SpeakerError>>),
    Announce(
        IpNet,
        Box<PathAttributes>,
        oneshot::Sender<Result<(), SpeakerError>>,
    ),
    Withdraw(IpNet, oneshot::Sender<Result<(), SpeakerError>>),
    Neighbors(oneshot::Sender<Vec<NeighborStatus>>),
    Routes(oneshot::Sender<Vec<RibEntry>>),
    AdjOut(IpAddr, oneshot::Sender<Result<AdjRib, SpeakerError>>),
    AdjIn(IpAddr, oneshot::Sender<Result<AdjRib, SpeakerError>>),
    UpdateNeighbor(
        Box<NeighborConfig>,
        oneshot::Sender<Result<(), SpeakerError>>,
    ),
    Shutdown(Option<String>, oneshot::Sender<()>),
    FeedOpen(oneshot::Sender<(u64, Arc<tokio::sync::Notify>)>),
    FeedTake(u64, usize, oneshot::Sender<Vec<FeedEntry>>),
    FeedClose(u64),
    GracefulShutdown(
        Option<IpAddr>,
        bool,
        oneshot::Sender<Result<(), SpeakerError>>,
    ),
    AddInterface(
        Box<InterfaceNeighbor>,
        oneshot::Sender<Result<(), SpeakerError>>,
    ),
    RemoveInterface(
        String,
        Option<String>,
        oneshot::Sender<Result<(), SpeakerError>>,
    ),
    /// From an interface's discovery: a peer learned or gone.
    InterfacePeer(String, crate::unnumbered::PeerChange),
}

/// A running speaker, driven through this handle. Clones share the speaker.
#[derive(Clone)]
pub struct SpeakerHandle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<Event>,
    metrics: Arc<Metrics>,
}

/// Builds and starts speakers.
pub struct Speaker;

impl Speaker {
    /// Binds the listeners and starts the speaker's tasks on the current tokio
    /// runtime.
    pub async fn start(config: SpeakerConfig) -> Result<SpeakerHandle, SpeakerError> {
        let (accept_tx, accept_rx) = mpsc::channel(1024);
        let mut listeners = security::Listeners::default();
        for &addr in &config.listen {
            let listener = listen(addr).map_err(|source| SpeakerError::Listen { addr, source })?;
            info!(%addr, "listening");
            let listener = Arc::new(listener);
            listeners
                .push(Arc::clone(&listener), addr.is_ipv6())
                .map_err(|source| SpeakerError::Listen { addr, source })?;
            tokio::spawn(accept_loop(listener, accept_tx.clone()));
        }
        let (commands, command_rx) = mpsc::channel(256);
        let (events, _) = broadcast::channel(65536);
        let (from_neighbors, from_neighbors_rx) = mpsc::channel(1024);
        let local = PeerMeta {
            address: IpAddr::V4(config.router_id),
            router_id: config.router_id,
            kind: SourceKind::Local,
        };
        let metrics = Arc::new(Metrics::default());
        let gr = graceful::Graceful::new(config.graceful_restart.as_ref());
        let state = SpeakerTask {
            metrics: Arc::clone(&metrics),
            rib: Rib::new(config.best_path, local),
            config,
            neighbors: FxMap::default(),
            by_addr: HashMap::new(),
            ranges: Vec::new(),
            events: events.clone(),
            from_neighbors,
            warned_8212: Default::default(),
            refills: Arc::default(),
            feeds: HashMap::new(),
            next_feed: 0,
            refusals: (Instant::now(), 0, 0),
            listeners,
            graceful_shutdown: false,
            interfaces: HashMap::new(),
            commands: commands.downgrade(),
            gr,
        };
        tokio::spawn(state.run(command_rx, from_neighbors_rx, accept_rx));
        Ok(SpeakerHandle {
            commands,
            events,
            metrics,
        })
    }
}

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    // A deep backlog: hundreds of pods may connect at once after a node restart.
    socket.listen(4096)
}

async fn accept_loop(
    listener: Arc<TcpListener>,
    to_speaker: mpsc::Sender<(TcpStream, SocketAddr)>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                if to_speaker.send((stream, addr)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

impl SpeakerHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| SpeakerError::Stopped)?;
        rx.await.map_err(|_| SpeakerError::Stopped)
    }

    /// Adds a neighbor; its session starts at once.
    pub async fn add_neighbor(&self, config: NeighborConfig) -> Result<(), SpeakerError> {
        self.ask(|tx| Command::AddNeighbor(config, tx)).await?
    }

    /// Removes a neighbor: Cease / Peer De-configured (with `message` as the
    /// RFC 9003 shutdown communication), and its routes are withdrawn.
    pub async fn remove_neighbor(
        &self,
        address: IpAddr,
        message: Option<String>,
    ) -> Result<(), SpeakerError> {
        self.ask(|tx| Command::RemoveNeighbor(address, message, tx))
            .await?
    }

    /// Replaces a neighbor's configuration. Changes that the session itself
    /// depends on (AS numbers, families, timers, transport) restart it with a
    /// Cease; the others (policies, the import guard, limits, next hop,
    /// description) apply to the running session, policies and guard as in
    /// [`SpeakerHandle::set_policy`].
    pub async fn update_neighbor(&self, config: NeighborConfig) -> Result<(), SpeakerError> {
        self.ask(|tx| Command::UpdateNeighbor(Box::new(config), tx))
            .await?
    }

    /// What a neighbor sent: the routes as received (before policy) when it has
    /// soft reconfiguration inbound, else the routes it has in the Loc-RIB.
    pub async fn received(&self, neighbor: IpAddr) -> Result<AdjRib, SpeakerError> {
        self.ask(|tx| Command::AdjIn(neighbor, tx)).await?
    }

    /// Replaces a neighbor's policies without resetting its session: the new
    /// import policy is applied through the soft-reconfiguration copy or a
    /// route refresh, the new export policy at once.
    pub async fn set_policy(
        &self,
        address: IpAddr,
        import: Option<RouteMap>,
        export: Option<RouteMap>,
    ) -> Result<(), SpeakerError> {
        self.ask(|tx| Command::UpdatePolicy(address, import, export, tx))
            .await?
    }

    /// Accepts neighbors from an address range.
    pub async fn add_dynamic_range(&self, range: DynamicRange) -> Result<(), SpeakerError> {
        self.ask(|tx| Command::AddRange(range, tx)).await?
    }

    /// Stops accepting neighbors from a range; those up stay up.
    pub async fn remove_dynamic_range(&self, prefix: IpNet) -> Result<(), SpeakerError> {
        self.ask(|tx| Command::RemoveRange(prefix, tx)).await?
    }

    /// Originates a route.
    pub async fn announce(&self, prefix: IpNet, attrs: PathAttributes) -> Result<(), SpeakerError> {
        self.ask(|tx| Command::Announce(prefix.trunc(), Box::new(attrs), tx))
            .await?
    }

    /// Stops originating a route.
    pub async fn withdraw(&self, prefix: IpNet) -> Result<(), SpeakerError> {
        self.ask(|tx| Command::Withdraw(prefix.trunc(), tx)).await?
    }

    /// A stream of events. A receiver that falls more than 65536 events behind
    /// gets `Lagged` and should re-read the RIB with [`SpeakerHandle::routes`].
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The speaker's Prometheus metrics, to register in the host's registry.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// The neighbors and their sessions.
    pub async fn neighbors(&self) -> Result<Vec<NeighborStatus>, SpeakerError> {
        self.ask(Command::Neighbors).await
    }

    /// The Loc-RIB.
    pub async fn routes(&self) -> Result<Vec<RibEntry>, SpeakerError> {
        self.ask(Command::Routes).await
    }

    /// What is advertised to a neighbor (its Adj-RIB-Out).
    pub async fn advertised(&self, neighbor: IpAddr) -> Result<AdjRib, SpeakerError> {
        self.ask(|tx| Command::AdjOut(neighbor, tx)).await?
    }

    /// Adds an interface (unnumbered) neighbor: peers are learned on the
    /// interface for as long as it is configured, and each gets a session.
    pub async fn add_interface_neighbor(
        &self,
        neighbor: InterfaceNeighbor,
    ) -> Result<(), SpeakerError> {
        self.ask(|tx| Command::AddInterface(Box::new(neighbor), tx))
            .await?
    }

    /// Removes an interface neighbor and the sessions of its learned peers
    /// (Cease / Peer De-configured, with `message`).
    pub async fn remove_interface_neighbor(
        &self,
        interface: &str,
        message: Option<String>,
    ) -> Result<(), SpeakerError> {
        let name = interface.to_owned();
        self.ask(|tx| Command::RemoveInterface(name, message, tx))
            .await?
    }

    /// Closes every session with Cease / Administrative Shutdown (and the
    /// message, RFC 9003) and stops the speaker.
    pub async fn shutdown(&self, message: Option<String>) -> Result<(), SpeakerError> {
        self.ask(|tx| Command::Shutdown(message, tx)).await
    }
}

/// The routes received from one neighbor before policy (soft-reconfiguration).
#[derive(Default)]
struct AdjIn {
    v4: FxMap<Ipv4Net, Arc<RouteAttrs>>,
    v6: FxMap<Ipv6Net, Arc<RouteAttrs>>,
}

/// Per-family access to the Adj-RIBs and the out queue.
trait Family: RibPrefix + Into<IpNet> {
    /// Index into per-family arrays.
    const INDEX: usize;
    fn export(e: &mut ExportState) -> &mut FamilyExport;
    fn adj_in(adj: &mut AdjIn) -> &mut FxMap<Self, Arc<RouteAttrs>>;
    fn pending(p: &mut outq::Pending) -> &mut FxMap<Self, Option<u32>>;
}

impl Family for Ipv4Net {
    const INDEX: usize = 0;
    fn export(e: &mut ExportState) -> &mut FamilyExport {
        &mut e.v4
    }
    fn adj_in(adj: &mut AdjIn) -> &mut FxMap<Self, Arc<RouteAttrs>> {
        &mut adj.v4
    }
    fn pending(p: &mut outq::Pending) -> &mut FxMap<Self, Option<u32>> {
        &mut p.v4
    }
}

impl Family for Ipv6Net {
    const INDEX: usize = 1;
    fn export(e: &mut ExportState) -> &mut FamilyExport {
        &mut e.v6
    }
    fn adj_in(adj: &mut AdjIn) -> &mut FxMap<Self, Arc<RouteAttrs>> {
        &mut adj.v6
    }
    fn pending(p: &mut outq::Pending) -> &mut FxMap<Self, Option<u32>> {
        &mut p.v6
    }
}

struct Neighbor {
    id: PeerId,
    config: NeighborConfig,
    control: mpsc::Sender<Control>,
    outq: Arc<OutQueue>,
    dynamic_range: Option<IpNet>,
    state: State,
    since: Instant,
    session: Option<Session>,
    counters: NeighborCounters,
    last_error: Option<String>,
    last_rejection: Option<RejectedPrefix>,
    adj_in: AdjIn,
    /// What it has been sent, and what it must be sent again.
    export: ExportState,
    /// The last export result and the family and attribute set it was
    /// computed from, reused while the export policy does not look at prefixes
    /// (the next hop differs between families, so never across them).
    export_cache: Option<(AfiSafi, Arc<RouteAttrs>, Option<Arc<RouteAttrs>>)>,
    labels: NeighborLabels,
    /// Prefixes accepted into the RIB per family (IPv4, IPv6): what the
    /// max-prefix limit applies to.
    accepted_by_family: [u64; 2],
    /// Routes sent to it carry GRACEFUL_SHUTDOWN (RFC 8326).
    graceful_shutdown: bool,
}

struct Session {
    negotiated: Box<Negotiated>,
    local: SocketAddr,
    /// Our address of the other family on the session's interface, looked
    /// up the first time a route needs it (see [`nexthop`]).
    other_family: std::cell::OnceCell<Option<IpAddr>>,
}

impl Session {
    fn other_family(&self) -> Option<IpAddr> {
        *self
            .other_family
            .get_or_init(|| nexthop::other_family(canonical(self.local.ip())))
    }
}

impl Neighbor {
    /// Counts prefixes of family `P` entering and leaving the RIB.
    fn count_accepted<P: Family>(&mut self, added: usize, removed: usize) {
        let f = &mut self.accepted_by_family[P::INDEX];
        *f = (*f + added as u64).saturating_sub(removed as u64);
        let total = &mut self.counters.accepted;
        *total = (*total + added as u64).saturating_sub(removed as u64);
    }

    fn local_as(&self, speaker: u32) -> u32 {
        self.config.local_as.unwrap_or(speaker)
    }

    fn is_external(&self, speaker_as: u32) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.negotiated.remote_as != self.local_as(speaker_as))
    }

    fn established_for(&self, family: AfiSafi) -> bool {
        self.state == State::Established
            && self
                .session
                .as_ref()
                .is_some_and(|s| s.negotiated.families.contains(&family))
    }
}

struct SpeakerTask {
    metrics: Arc<Metrics>,
    config: SpeakerConfig,
    rib: Rib,
    neighbors: FxMap<PeerId, Neighbor>,
    by_addr: HashMap<IpAddr, PeerId>,
    ranges: Vec<DynamicRange>,
    events: broadcast::Sender<Event>,
    from_neighbors: mpsc::Sender<FromNeighbor>,
    warned_8212: std::collections::HashSet<(PeerId, bool)>,
    /// Neighbors whose out queue has room for more routes.
    refills: Arc<Refills>,
    /// Route feeds (FIB installers) by id.
    feeds: HashMap<u64, feed::Feed>,
    next_feed: u64,
    /// Refused connections logged: the minute's start, how many were logged
    /// at warn in it, how many were not.
    refusals: (Instant, u32, u32),
    /// The listening sockets, for TCP-MD5 keys.
    listeners: security::Listeners,
    /// Routes sent to every neighbor carry GRACEFUL_SHUTDOWN (RFC 8326).
    graceful_shutdown: bool,
    /// Interface (unnumbered) neighbors, by interface name.
    interfaces: HashMap<String, interface::Interface>,
    /// The speaker's own command queue, for tasks that report to it.
    commands: mpsc::WeakSender<Command>,
    /// Graceful restart: routes kept for restarting neighbors, and our own
    /// restart's deferral.
    gr: graceful::Graceful,
}

fn fsm_config(speaker: &SpeakerConfig, n: &NeighborConfig) -> FsmConfig {
    let local_as = n.local_as.unwrap_or(speaker.local_as);
    let mut c = FsmConfig::new(local_as, speaker.router_id, n.remote_as.clone());
    c.hold_time = n.hold_time;
    c.connect_retry = n.connect_retry;
    c.passive = n.passive;
    c.delay_open = n.delay_open;
    c.capabilities = n
        .families
        .iter()
        .map(|f| Capability::Multiprotocol(*f))
        .collect();
    c.capabilities.extend([
        Capability::RouteRefresh,
        Capability::EnhancedRouteRefresh,
        Capability::FourOctetAs(local_as),
    ]);
    security::configure_fsm(&mut c, n);
    if n.extended_next_hop && n.families.contains(&AfiSafi::IPV4_UNICAST) {
        c.capabilities
            .push(crate::unnumbered::extended_next_hop_capability());
    }
    if let Some(gr) = &speaker.graceful_restart {
        c.capabilities
            .extend(graceful::capabilities(gr, &n.families));
    }
    c
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl SpeakerTask {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut from_neighbors: mpsc::Receiver<FromNeighbor>,
        mut accepted: mpsc::Receiver<(TcpStream, SocketAddr)>,
    ) {
        loop {
            tokio::select! {
                biased;
                c = commands.recv() => match c {
                    Some(Command::Shutdown(msg, done)) => {
                        self.shutdown(msg).await;
                        let _ = done.send(());
                        return;
                    }
                    Some(c) => self.command(c).await,
                    None => {
                        self.shutdown(None).await;
                        return;
                    }
                },
                _ = graceful::sleep(self.gr.next_deadline()) => self.gr_tick(),
                _ = self.refills.notify.notified() => {
                    for id in self.refills.take() {
                        self.fill::<Ipv4Net>(id);
                        self.fill::<Ipv6Net>(id);
                    }
                }
                Some(e) = from_neighbors.recv() => self.neighbor_event(e),
                Some((stream, addr)) = accepted.recv() => self.accept(stream, addr).await,
            }
        }
    }

    async fn shutdown(&mut self, message: Option<String>) {
        let controls: Vec<mpsc::Sender<Control>> =
            self.neighbors.values().map(|n| n.control.clone()).collect();
        for c in controls {
            let _ = c.send(Control::Stop(message.clone())).await;
        }
        // Give the final NOTIFICATIONs a moment to leave.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    fn spawn_neighbor(
        &mut self,
        config: NeighborConfig,
        dynamic_range: Option<IpNet>,
        start: Option<TcpStream>,
    ) -> PeerId {
        let address = canonical(config.address);
        let id = self.rib.add_peer(PeerMeta {
            address,
            router_id: std::net::Ipv4Addr::UNSPECIFIED,
            kind: SourceKind::External,
        });
        let (control_tx, control_rx) = mpsc::channel(16);
        let outq = Arc::new(OutQueue::new(id, Arc::clone(&self.refills)));
        let fsm = Fsm::new(fsm_config(&self.config, &config));
        let labels = Metrics::neighbor(&address);
        let links = neighbor::Links {
            events: self.from_neighbors.clone(),
            control: control_rx,
            outq: Arc::clone(&outq),
            metrics: Arc::clone(&self.metrics),
            labels: labels.clone(),
        };
        let task = NeighborTask::new(id, config.clone(), fsm, dynamic_range.is_some(), links);
        tokio::spawn(task.run(start));
        self.by_addr.insert(address, id);
        self.neighbors.insert(
            id,
            Neighbor {
                id,
                config,
                control: control_tx,
                outq,
                dynamic_range,
                state: State::Idle,
                since: Instant::now(),
                session: None,
                counters: NeighborCounters::default(),
                last_error: None,
                last_rejection: None,
                adj_in: AdjIn::default(),
                export: ExportState::default(),
                export_cache: None,
                accepted_by_family: [0; 2],
                labels,
                graceful_shutdown: false,
            },
        );
        id
    }

    /// A connection on the listener: to a configured neighbor's task, to a new
    /// dynamic neighbor, or refused at once without keeping any state.
    async fn accept(&mut self, stream: TcpStream, addr: SocketAddr) {
        let ip = canonical(addr.ip());
        if let Some(id) = self.by_addr.get(&ip)
            && let Some(n) = self.neighbors.get(id)
        {
            let _ = n.control.send(Control::Incoming(stream)).await;
            return;
        }
        let Some(stream) = self.interface_accept(stream, addr).await else {
            return;
        };
        let Some(range) = self.ranges.iter().find(|r| {
            r.prefix.contains(&ip)
                && interface::range_admits(r.template.bind_interface.as_deref(), addr)
        }) else {
            self.metrics.connections_refused.inc();
            if self.log_refusal() {
                warn!(%addr, "connection refused: no neighbor or range admits it");
            } else {
                debug!(%addr, "connection refused: no neighbor or range admits it");
            }
            return;
        };
        let members = self
            .neighbors
            .values()
            .filter(|n| n.dynamic_range == Some(range.prefix))
            .count();
        if members >= range.limit {
            let (prefix, limit) = (range.prefix, range.limit);
            self.metrics.connections_refused.inc();
            if self.log_refusal() {
                warn!(%addr, range = %prefix, "connection refused: range limit {limit} reached");
            }
            return;
        }
        let mut config = range.template.clone();
        config.address = ip;
        config.passive = true;
        let prefix = range.prefix;
        info!(%addr, range = %prefix, "dynamic neighbor accepted");
        self.spawn_neighbor(config, Some(prefix), Some(stream));
    }

    /// Whether a refused connection should be logged at warn: at most ten a
    /// minute, whatever their addresses, so that a flood can fill neither the
    /// log nor the memory (no state per address). The first refusal of the
    /// next minute says how many went unlogged.
    fn log_refusal(&mut self) -> bool {
        const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
        const PER_WINDOW: u32 = 10;
        let now = Instant::now();
        let (start, logged, quiet) = &mut self.refusals;
        if now.duration_since(*start) >= WINDOW {
            if *quiet > 0 {
                warn!(
                    "{quiet} more connections refused in the last minute (not logged one by one)"
                );
            }
            (*start, *logged, *quiet) = (now, 0, 0);
        }
        if *logged < PER_WINDOW {
            *logged += 1;
            true
        } else {
            *quiet += 1;
            false
        }
    }

    /// Changes carry their paths only while someone listens to route events.
    fn sync_report_paths(&mut self) {
        self.rib.report_paths(self.events.receiver_count() > 0);
    }

    async fn command(&mut self, c: Command) {
        self.sync_report_paths();
        match c {
            Command::AddNeighbor(config, done) => {
                let ip = canonical(config.address);
                let r = if self.by_addr.contains_key(&ip) {
                    Err(SpeakerError::NeighborExists(ip))
                } else if let Err(e) = self.install_neighbor_key(&config) {
                    Err(e)
                } else {
                    self.spawn_neighbor(config, None, None);
                    self.sync_listener_gtsm();
                    Ok(())
                };
                let _ = done.send(r);
            }
            Command::RemoveNeighbor(ip, message, done) => {
                let ip = canonical(ip);
                let r = match self
                    .by_addr
                    .remove(&ip)
                    .and_then(|id| self.neighbors.remove(&id))
                {
                    Some(n) => {
                        let _ = n.control.send(Control::Stop(message)).await;
                        self.remove_neighbor_key(&n.config);
                        self.sync_listener_gtsm();
                        self.withdraw_peer(n.id);
                        self.metrics.remove(&n.labels);
                        Ok(())
                    }
                    None => Err(SpeakerError::NoSuchNeighbor(ip)),
                };
                let _ = done.send(r);
            }
            Command::UpdatePolicy(ip, import, export, done) => {
                let _ = done.send(self.set_policy(canonical(ip), import, export).await);
            }
            Command::AddRange(range, done) => {
                let r = self.install_range_key(&range);
                if r.is_ok() {
                    self.ranges.retain(|r| r.prefix != range.prefix);
                    self.ranges.push(range);
                    self.sync_listener_gtsm();
                }
                let _ = done.send(r);
            }
            Command::RemoveRange(prefix, done) => {
                self.remove_range_key(prefix);
                self.ranges.retain(|r| r.prefix != prefix);
                self.sync_listener_gtsm();
                let _ = done.send(Ok(()));
            }
            Command::Announce(prefix, attrs, done) => {
                let attrs = RouteAttrs {
                    attributes: *attrs,
                    next_hop: None,
                };
                let shared = self.rib.intern(attrs);
                match prefix {
                    IpNet::V4(p) => self.local(p, Some(shared)),
                    IpNet::V6(p) => self.local(p, Some(shared)),
                }
                let _ = done.send(Ok(()));
            }
            Command::Withdraw(prefix, done) => {
                match prefix {
                    IpNet::V4(p) => self.local(p, None),
                    IpNet::V6(p) => self.local(p, None),
                }
                let _ = done.send(Ok(()));
            }
            Command::Neighbors(done) => {
                let mut v: Vec<NeighborStatus> =
                    self.neighbors.values().map(|n| self.status(n)).collect();
                v.sort_by_key(|s| s.address);
                let _ = done.send(v);
            }
            Command::FeedOpen(done) => {
                let id = self.next_feed;
                self.next_feed += 1;
                let f = feed::Feed::default();
                let notify = Arc::clone(&f.notify);
                self.feeds.insert(id, f);
                self.feed_mark_all(id);
                let _ = done.send((id, notify));
            }
            Command::FeedTake(id, max, done) => {
                let _ = done.send(self.feed_take(id, max));
            }
            Command::FeedClose(id) => {
                self.feeds.remove(&id);
            }
            Command::Routes(done) => {
                let mut v = self.dump::<Ipv4Net>();
                v.extend(self.dump::<Ipv6Net>());
                let _ = done.send(v);
            }
            Command::AdjOut(ip, done) => {
                let r = match self.by_addr.get(&canonical(ip)).copied() {
                    Some(id) if self.neighbors.contains_key(&id) => {
                        let mut v = self.advertised_routes::<Ipv4Net>(id);
                        v.extend(self.advertised_routes::<Ipv6Net>(id));
                        v.sort_by_key(|(p, _)| *p);
                        Ok(v)
                    }
                    _ => Err(SpeakerError::NoSuchNeighbor(ip)),
                };
                let _ = done.send(r);
            }
            Command::AdjIn(ip, done) => {
                let r = match self.by_addr.get(&canonical(ip)).copied() {
                    Some(id) => Ok(self.adj_in(id)),
                    None => Err(SpeakerError::NoSuchNeighbor(ip)),
                };
                let _ = done.send(r);
            }
            Command::UpdateNeighbor(config, done) => {
                let _ = done.send(self.update_neighbor(*config).await);
            }
            Command::Shutdown(..) => {}
            Command::GracefulShutdown(target, on, done) => {
                let _ = done.send(self.set_graceful_shutdown(target, on));
            }
            Command::AddInterface(config, done) => {
                let _ = done.send(self.add_interface(*config));
            }
            Command::RemoveInterface(name, message, done) => {
                let _ = done.send(self.remove_interface(&name, message).await);
            }
            Command::InterfacePeer(name, change) => self.interface_peer(&name, change).await,
        }
    }

    fn adj_in(&self, id: PeerId) -> AdjRib {
        let Some(n) = self.neighbors.get(&id) else {
            return Vec::new();
        };
        let mut v: AdjRib = if n.config.soft_reconfiguration_inbound {
            let v4 = n
                .adj_in
                .v4
                .iter()
                .map(|(p, a)| (IpNet::V4(*p), Arc::clone(a)));
            let v6 = n
                .adj_in
                .v6
                .iter()
                .map(|(p, a)| (IpNet::V6(*p), Arc::clone(a)));
            v4.chain(v6).collect()
        } else {
            let from = |paths: &[Route]| {
                paths
                    .iter()
                    .find(|r| r.peer == id)
                    .map(|r| Arc::clone(&r.attrs))
            };
            let t4 = self.rib.table::<Ipv4Net>();
            let t6 = self.rib.table::<Ipv6Net>();
            let v4 = t4
                .iter()
                .filter_map(|(p, _)| from(t4.paths(p)).map(|a| (IpNet::V4(*p), a)));
            let v6 = t6
                .iter()
                .filter_map(|(p, _)| from(t6.paths(p)).map(|a| (IpNet::V6(*p), a)));
            v4.chain(v6).collect()
        };
        v.sort_by_key(|(p, _)| *p);
        v
    }

    async fn update_neighbor(&mut self, config: NeighborConfig) -> Result<(), SpeakerError> {
        let ip = canonical(config.address);
        security::password_ok(&config)?;
        let id = *self
            .by_addr
            .get(&ip)
            .ok_or(SpeakerError::NoSuchNeighbor(ip))?;
        let n = self
            .neighbors
            .get_mut(&id)
            .ok_or(SpeakerError::NoSuchNeighbor(ip))?;
        let old = &n.config;
        let session_changed = old.remote_as != config.remote_as
            || old.port != config.port
            || old.local_as != config.local_as
            || old.passive != config.passive
            || old.hold_time != config.hold_time
            || old.connect_retry != config.connect_retry
            || old.delay_open != config.delay_open
            || old.ttl != config.ttl
            || old.source_address != config.source_address
            || old.bind_interface != config.bind_interface
            || old.families != config.families
            || security::session_changed(old, &config);
        if session_changed {
            info!(peer = %ip, "session settings changed: restarting the session");
            if let Some(n) = self.neighbors.remove(&id) {
                self.by_addr.remove(&ip);
                let _ = n
                    .control
                    .send(Control::Stop(Some("configuration changed".into())))
                    .await;
                self.withdraw_peer(id);
                self.metrics.remove(&n.labels);
                self.replace_neighbor_key(&n, &config)?;
                self.spawn_neighbor(config, n.dynamic_range, None);
                self.sync_listener_gtsm();
            }
            return Ok(());
        }
        let (import, export) = (config.import.clone(), config.export.clone());
        n.config = NeighborConfig {
            import: n.config.import.take(),
            export: n.config.export.take(),
            ..config
        };
        n.export_cache = None;
        self.set_policy(ip, import, export).await?;
        self.check_max_prefixes(id);
        Ok(())
    }

    fn status(&self, n: &Neighbor) -> NeighborStatus {
        let s = n.session.as_ref();
        NeighborStatus {
            address: canonical(n.config.address),
            description: n.config.description.clone(),
            dynamic_range: n.dynamic_range,
            state: n.state,
            since: n.since.elapsed(),
            remote_as: s.map(|s| s.negotiated.remote_as),
            remote_id: s.map(|s| s.negotiated.remote_id),
            local_as: n.local_as(self.config.local_as),
            hold_time: s.map(|s| s.negotiated.hold_time),
            families: s.map(|s| s.negotiated.families.clone()).unwrap_or_default(),
            remote_capabilities: s
                .map(|s| s.negotiated.remote_open.capabilities.clone())
                .unwrap_or_default(),
            counters: n.counters.clone(),
            last_error: n.last_error.clone(),
            last_rejection: n.last_rejection.clone(),
            interface: n.config.bind_interface.clone(),
        }
    }

    fn path(&self, r: &Route) -> RoutePath {
        RoutePath {
            neighbor: (r.peer != LOCAL)
                .then(|| self.rib.peer(r.peer).map(|m| m.address))
                .flatten(),
            next_hop: r.attrs.next_hop.clone(),
            attrs: Arc::clone(&r.attrs),
            ifindex: self.session_ifindex(r.peer),
        }
    }

    /// The interface of a neighbor's session when it runs between link-local
    /// addresses (the kernel gives the local address its scope).
    fn session_ifindex(&self, peer: PeerId) -> Option<u32> {
        let session = self.neighbors.get(&peer)?.session.as_ref()?;
        match session.local {
            SocketAddr::V6(a) if crate::unnumbered::is_link_local(*a.ip()) && a.scope_id() != 0 => {
                Some(a.scope_id())
            }
            _ => None,
        }
    }

    fn dump<P: Family>(&self) -> Vec<RibEntry> {
        let table = self.rib.table::<P>();
        let mut v: Vec<RibEntry> = table
            .iter()
            .map(|(p, mp)| RibEntry {
                prefix: (*p).into(),
                paths: table.paths(p).iter().map(|r| self.path(r)).collect(),
                multipath: mp.len(),
            })
            .collect();
        v.sort_by_key(|e| e.prefix);
        v
    }

    fn local<P: Family>(&mut self, prefix: P, attrs: Option<Arc<RouteAttrs>>) {
        let mut changes = Vec::new();
        let n = [Nlri::new(prefix)];
        match attrs {
            Some(a) => {
                self.rib.announce(LOCAL, &a, &n, &mut changes);
            }
            None => {
                self.rib.withdraw(LOCAL, &n, &mut changes);
            }
        }
        self.propagate(changes);
    }

    async fn set_policy(
        &mut self,
        ip: IpAddr,
        import: Option<RouteMap>,
        export: Option<RouteMap>,
    ) -> Result<(), SpeakerError> {
        let id = *self
            .by_addr
            .get(&ip)
            .ok_or(SpeakerError::NoSuchNeighbor(ip))?;
        let Some(n) = self.neighbors.get_mut(&id) else {
            return Err(SpeakerError::NoSuchNeighbor(ip));
        };
        n.config.import = import;
        n.config.export = export;
        n.export_cache = None;
        let soft = n.config.soft_reconfiguration_inbound;
        let refresh = n
            .session
            .as_ref()
            .is_some_and(|s| s.negotiated.route_refresh);
        let families = n
            .session
            .as_ref()
            .map(|s| s.negotiated.families.clone())
            .unwrap_or_default();
        if soft {
            self.reimport::<Ipv4Net>(id);
            self.reimport::<Ipv6Net>(id);
            self.gr_after_reimport(id);
        } else if refresh {
            for f in families {
                let _ = n.control.send(Control::AskRefresh(f)).await;
            }
        }
        self.reexport_all::<Ipv4Net>(id);
        self.reexport_all::<Ipv6Net>(id);
        Ok(())
    }

    fn neighbor_event(&mut self, e: FromNeighbor) {
        self.sync_report_paths();
        match e {
            FromNeighbor::State { peer, from, to } => {
                if let Some(n) = self.neighbors.get_mut(&peer) {
                    n.state = to;
                    n.since = Instant::now();
                    self.metrics
                        .session_state
                        .get_or_create(&n.labels)
                        .set(state_number(to));
                    self.metrics
                        .session_transitions
                        .get_or_create(&n.labels)
                        .inc();
                    if to == State::Established {
                        self.metrics
                            .session_established
                            .get_or_create(&n.labels)
                            .inc();
                    }
                    let _ = self.events.send(Event::NeighborState {
                        neighbor: canonical(n.config.address),
                        from,
                        to,
                    });
                    if to == State::Idle && n.dynamic_range.is_some() {
                        // The task ends with the session; forget the neighbor.
                        let id = n.id;
                        let addr = canonical(n.config.address);
                        self.withdraw_peer(id);
                        if let Some(gone) = self.neighbors.remove(&id) {
                            self.metrics.remove(&gone.labels);
                        }
                        if self.by_addr.get(&addr) == Some(&id) {
                            self.by_addr.remove(&addr);
                        }
                    }
                }
                if from == State::Established {
                    self.interface_session_ended(peer);
                }
            }
            FromNeighbor::Established {
                peer,
                negotiated,
                local,
            } => self.established(peer, negotiated, local),
            FromNeighbor::Down { peer, reason } => {
                let kept = self.gr_session_down(peer, &reason);
                if let Some(n) = self.neighbors.get_mut(&peer) {
                    n.last_error = Some(match &reason {
                        DownReason::Stopped(n) => format!("stopped: {n}"),
                        DownReason::PeerNotification(n) => format!("received {n}"),
                        DownReason::LocalError(n) => format!("sent {n}"),
                        DownReason::ConnectionLost => "connection lost".into(),
                    });
                    n.session = None;
                    if !kept {
                        n.adj_in = AdjIn::default();
                        n.counters.accepted = 0;
                        n.accepted_by_family = [0; 2];
                    }
                    n.export = ExportState::default();
                    n.counters.advertised = 0;
                    n.export_cache = None;
                }
                if !kept {
                    self.withdraw_peer(peer);
                }
            }
            FromNeighbor::Update { peer, update } => self.update(peer, update),
            FromNeighbor::RouteRefresh { peer, refresh } => self.refresh(peer, refresh),
            FromNeighbor::Notification {
                peer,
                sent,
                notification,
            } => {
                if let Some(n) = self.neighbors.get_mut(&peer) {
                    let verb = if sent { "sent" } else { "received" };
                    n.last_error = Some(format!("{verb} {notification}"));
                }
            }
        }
    }

    fn established(&mut self, peer: PeerId, negotiated: Box<Negotiated>, local: SocketAddr) {
        let Some(n) = self.neighbors.get_mut(&peer) else {
            return;
        };
        let external = negotiated.remote_as != n.local_as(self.config.local_as);
        self.rib.set_peer(
            peer,
            PeerMeta {
                address: canonical(n.config.address),
                router_id: negotiated.remote_id,
                kind: if external {
                    SourceKind::External
                } else {
                    SourceKind::Internal
                },
            },
        );
        // The state change itself is reported after this event.
        n.state = State::Established;
        n.since = Instant::now();
        n.session = Some(Session {
            negotiated,
            local,
            other_family: std::cell::OnceCell::new(),
        });
        n.last_error = None;
        let no_import = n.config.import.is_none() && n.config.guard.is_none();
        if external && (no_import || n.config.export.is_none()) {
            warn!(
                peer = %n.config.address,
                "RFC 8212: external neighbor without {} policy: nothing is {}",
                if no_import { "an import" } else { "an export" },
                if no_import { "accepted" } else { "advertised" },
            );
        }
        if self.gr_session_up(peer) {
            return; // a restart defers the initial routes
        }
        self.send_initial(peer);
    }

    /// A session's initial routes, then End-of-RIB for each family.
    fn send_initial(&mut self, peer: PeerId) {
        self.mark_all::<Ipv4Net>(peer);
        self.mark_all::<Ipv6Net>(peer);
        if let Some(n) = self.neighbors.get_mut(&peer)
            && let Some(s) = &n.session
        {
            for &f in &s.negotiated.families {
                let eor = Message::Update(Update::end_of_rib(f));
                match family_export(&mut n.export, f) {
                    Some(e) => e.after_pass.push(eor),
                    None => n.outq.lock().after.push(eor),
                }
            }
            n.outq.notify.notify_one();
        }
        self.fill::<Ipv4Net>(peer);
        self.fill::<Ipv6Net>(peer);
    }

    fn withdraw_peer(&mut self, peer: PeerId) {
        self.gr_forget(peer);
        let mut c4 = Vec::new();
        self.rib.withdraw_peer::<Ipv4Net>(peer, &mut c4);
        let mut c6 = Vec::new();
        self.rib.withdraw_peer::<Ipv6Net>(peer, &mut c6);
        self.propagate(c4);
        self.propagate(c6);
    }

    fn refresh(&mut self, peer: PeerId, refresh: RouteRefresh) {
        if refresh.subtype != RouteRefreshSubtype::Request || self.gr.deferring() {
            // BoRR/EoRR from the peer: nothing to track without stale marking.
            // While a restart defers selection, the routes come anyway.
            return;
        }
        let Some(n) = self.neighbors.get(&peer) else {
            return;
        };
        if !n.established_for(refresh.family) {
            return;
        }
        let enhanced = n
            .session
            .as_ref()
            .is_some_and(|s| s.negotiated.enhanced_route_refresh);
        info!(peer = %n.config.address, family = %refresh.family, "route refresh requested");
        if enhanced {
            let mut q = n.outq.lock();
            q.before.push(Message::RouteRefresh(RouteRefresh {
                family: refresh.family,
                subtype: RouteRefreshSubtype::BeginningOfRefresh,
            }));
        }
        if let Some(n) = self.neighbors.get_mut(&peer)
            && let Some(e) = family_export(&mut n.export, refresh.family)
        {
            // Everything it has been sent, again, then the end marker.
            let sent = std::mem::take(&mut e.advertised);
            e.dirty.union(&sent);
            e.advertised = sent;
            e.restart_pass();
            e.after_pass.push(if enhanced {
                Message::RouteRefresh(RouteRefresh {
                    family: refresh.family,
                    subtype: RouteRefreshSubtype::EndOfRefresh,
                })
            } else {
                Message::Update(Update::end_of_rib(refresh.family))
            });
        }
        if refresh.family == AfiSafi::IPV4_UNICAST {
            self.fill::<Ipv4Net>(peer);
        } else {
            self.fill::<Ipv6Net>(peer);
        }
    }

    fn update(&mut self, peer: PeerId, update: Update) {
        let end_of_rib = update.end_of_rib_family();
        self.gr_refresh(peer, &update);
        let Some(n) = self.neighbors.get_mut(&peer) else {
            return;
        };
        n.counters.updates_in += 1;
        if let Some(e) = update.errors.first() {
            warn!(peer = %n.config.address, "UPDATE with {} attribute error(s), first: {e}", update.errors.len());
        }
        let mut c4 = Vec::new();
        let mut c6 = Vec::new();
        self.remove::<Ipv4Net>(peer, &update.withdrawn, &mut c4);
        if let Some(MpUnreach { withdrawn, .. }) = &update.mp_unreach {
            match withdrawn {
                Prefixes::V4(v) => self.remove(peer, v, &mut c4),
                Prefixes::V6(v) => self.remove(peer, v, &mut c6),
                Prefixes::Other(_) => {}
            }
        }
        let treat_as_withdraw = update.treat_as_withdraw();
        let mut base = update.attributes;
        let legacy_nh = base.next_hop.take();
        if !update.nlri.is_empty() {
            if treat_as_withdraw {
                self.remove(peer, &update.nlri, &mut c4);
            } else {
                let attrs = RouteAttrs {
                    attributes: base.clone(),
                    next_hop: legacy_nh.map(NextHop::V4),
                };
                self.import(peer, attrs, &update.nlri, &mut c4);
            }
        }
        if let Some(reach) = update.mp_reach {
            let attrs = RouteAttrs {
                attributes: base,
                next_hop: Some(reach.next_hop),
            };
            match reach.nlri {
                Prefixes::V4(v) if treat_as_withdraw => self.remove(peer, &v, &mut c4),
                Prefixes::V6(v) if treat_as_withdraw => self.remove(peer, &v, &mut c6),
                Prefixes::V4(v) => self.import(peer, attrs, &v, &mut c4),
                Prefixes::V6(v) => self.import(peer, attrs, &v, &mut c6),
                Prefixes::Other(_) => {}
            }
        }
        self.propagate(c4);
        self.propagate(c6);
        self.sync_metrics(peer);
        self.check_max_prefixes(peer);
        if let Some(family) = end_of_rib {
            self.gr_end_of_rib(peer, family);
        }
    }

    /// Copies a neighbor's counters into its metrics.
    fn sync_metrics(&self, peer: PeerId) {
        let Some(n) = self.neighbors.get(&peer) else {
            return;
        };
        let m = &self.metrics;
        let c = &n.counters;
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        m.prefixes_accepted
            .get_or_create(&n.labels)
            .set(gauge(c.accepted));
        m.prefixes_advertised
            .get_or_create(&n.labels)
            .set(gauge(c.advertised));
        let received = m.prefixes_received.get_or_create(&n.labels);
        received.inc_by(c.received.saturating_sub(received.get()));
    }

    fn remove<P: Family>(
        &mut self,
        peer: PeerId,
        prefixes: &[Nlri<P>],
        changes: &mut Vec<Change<P>>,
    ) {
        if prefixes.is_empty() {
            return;
        }
        let removed = self.rib.withdraw(peer, prefixes, changes);
        if let Some(n) = self.neighbors.get_mut(&peer) {
            n.count_accepted::<P>(0, removed);
            if n.config.soft_reconfiguration_inbound {
                let adj = P::adj_in(&mut n.adj_in);
                for p in prefixes {
                    adj.remove(&p.prefix);
                }
            }
        }
    }

    /// Import: loop check, RFC 8212, import guard, import policy. Accepted
    /// routes go into the RIB; refused ones are reported and taken out of it
    /// (an earlier version may have been accepted). The session stays up.
    fn import<P: Family>(
        &mut self,
        peer: PeerId,
        attrs: RouteAttrs,
        prefixes: &[Nlri<P>],
        changes: &mut Vec<Change<P>>,
    ) {
        let speaker_as = self.config.local_as;
        let Some(n) = self.neighbors.get_mut(&peer) else {
            return;
        };
        n.counters.received += prefixes.len() as u64;
        let mut attrs = attrs;
        gshut::on_import(n.config.honor_graceful_shutdown, &mut attrs);
        let leak = security::otc_ingress(n, speaker_as, &mut attrs);
        let raw = self.rib.intern(attrs);
        if n.config.soft_reconfiguration_inbound {
            let adj = P::adj_in(&mut n.adj_in);
            for p in prefixes {
                adj.insert(p.prefix, Arc::clone(&raw));
            }
        }
        let external = n.is_external(speaker_as);
        let own_as = n.local_as(speaker_as);
        let loops = raw.attributes.as_path.as_ref().map_or(0, |p| {
            p.segments
                .iter()
                .flat_map(|s| &s.asns)
                .filter(|&&a| a == own_as)
                .count()
        });
        let no_policy = n.config.import.is_none() && n.config.guard.is_none();
        let blanket = if loops > usize::from(n.config.allow_own_as) {
            Some(RejectKind::AsLoop)
        } else if leak.is_some() {
            Some(RejectKind::RouteLeak)
        } else if external && no_policy {
            Some(RejectKind::Rfc8212)
        } else {
            None
        };
        let address = canonical(n.config.address);
        if let Some(kind) = blanket {
            let reason = match (kind, leak) {
                (RejectKind::AsLoop, _) => "AS path contains our AS".to_owned(),
                (_, Some(leak)) => leak.to_string(),
                _ => "no import policy for an external neighbor (RFC 8212)".to_owned(),
            };
            if kind != RejectKind::Rfc8212 || self.warned_8212.insert((peer, true)) {
                debug!(peer = %address, "rejecting {} prefixes: {reason}", prefixes.len());
            }
            let withdrawn = self.rib.withdraw(peer, prefixes, changes);
            n.count_accepted::<P>(0, withdrawn);
            let mut refused = Refused::default();
            refused.by_reason[kind.index()] = prefixes.len() as u64;
            if self.events.receiver_count() > 0 {
                for p in prefixes {
                    let _ = self.events.send(Event::Rejected {
                        neighbor: address,
                        prefix: p.prefix.into(),
                        reason: reason.clone(),
                        guard: None,
                        label: REJECT_REASONS[kind.index()],
                    });
                }
            }
            refused.last = prefixes.last().map(|p| RejectedPrefix {
                prefix: p.prefix.into(),
                reason: reason.clone(),
                guard: None,
                label: REJECT_REASONS[kind.index()],
            });
            self.settle_refused(peer, refused);
            return;
        }
        if no_policy {
            // The hot path of a trusted neighbor: no per-prefix work.
            let added = self.rib.announce(peer, &raw, prefixes, changes);
            n.count_accepted::<P>(added, 0);
            return;
        }
        let guard = n.config.guard.clone();
        let policy = n.config.import.clone();
        let honor_gshut = n.config.honor_graceful_shutdown;
        let peer_as = n.session.as_ref().map_or(0, |s| s.negotiated.remote_as);
        let limit = guard.as_ref().and_then(|g| g.max_prefixes);
        // Prefixes of the peer in the RIB as the batch goes, for the limit.
        let mut accepted = n.counters.accepted;
        // Group prefixes by the attributes policy gives them, then one RIB call
        // per group.
        let mut groups: Vec<(Arc<RouteAttrs>, Vec<Nlri<P>>)> = Vec::new();
        let mut refused = Refused::default();
        let mut withdraw: Vec<Nlri<P>> = Vec::new();
        for p in prefixes {
            let net: IpNet = p.prefix.into();
            // Whether this replaces a path the peer has in the RIB: a
            // replacement takes no new slot, a refused one frees its slot.
            let present = limit.is_some() && {
                let path_id = p.path_id.unwrap_or(0);
                self.rib
                    .table::<P>()
                    .paths(&p.prefix)
                    .iter()
                    .any(|r| r.peer == peer && r.path_id == path_id)
            };
            let guarded = match &guard {
                None => Ok(()),
                Some(g) => {
                    g.check_detailed(&net, &raw, address, peer_as)
                        .and_then(|()| match limit {
                            Some(max) if !present && accepted >= u64::from(max) => {
                                Err(GuardRefusal::MaxPrefixes(max))
                            }
                            _ => Ok(()),
                        })
                }
            };
            let outcome = match (guarded, &policy) {
                (Err(why), _) => Err((RejectKind::Guard(why.reason()), why.to_string())),
                (Ok(()), None) => Ok(None),
                (Ok(()), Some(map)) => map.apply(&net, &raw).map_err(|why| {
                    (
                        RejectKind::Policy,
                        format!("import policy {}: {why}", map.name),
                    )
                }),
            };
            match outcome {
                Ok(None) => {
                    push_group(&mut groups, &raw, *p);
                    accepted += u64::from(!present);
                }
                Ok(Some(mut changed)) => {
                    // After the policy too: a LOCAL_PREF it sets must not
                    // undo the graceful shutdown.
                    gshut::on_import(honor_gshut, &mut changed);
                    let a = self.rib.intern(changed);
                    push_group(&mut groups, &a, *p);
                    accepted += u64::from(!present);
                }
                Err((kind, reason)) => {
                    accepted = accepted.saturating_sub(u64::from(present));
                    refused.by_reason[kind.index()] += 1;
                    let rejected = RejectedPrefix {
                        prefix: net,
                        reason,
                        guard: kind.guard(),
                        label: REJECT_REASONS[kind.index()],
                    };
                    if self.events.receiver_count() > 0 {
                        let _ = self.events.send(Event::Rejected {
                            neighbor: address,
                            prefix: net,
                            reason: rejected.reason.clone(),
                            guard: rejected.guard,
                            label: rejected.label,
                        });
                    }
                    refused.last = Some(rejected);
                    withdraw.push(*p);
                }
            }
        }
        let mut added = 0;
        for (a, ps) in &groups {
            added += self.rib.announce(peer, a, ps, changes);
        }
        let removed = self.rib.withdraw(peer, &withdraw, changes);
        if let Some(n) = self.neighbors.get_mut(&peer) {
            n.count_accepted::<P>(added, removed);
        }
        self.settle_refused(peer, refused);
    }

    /// Counts, logs and remembers what one import refused.
    fn settle_refused(&mut self, peer: PeerId, refused: Refused) {
        let Some(last) = refused.last else {
            return;
        };
        let Some(n) = self.neighbors.get_mut(&peer) else {
            return;
        };
        let total: u64 = refused.by_reason.iter().sum();
        n.counters.rejected += total;
        // Here rather than in sync_metrics, so the total and its split by
        // reason agree also after a re-import.
        self.metrics
            .prefixes_rejected
            .get_or_create(&n.labels)
            .inc_by(total);
        for (label, &count) in REJECT_REASONS.iter().zip(&refused.by_reason) {
            if count == 0 {
                continue;
            }
            match n.counters.rejected_by_reason.get_mut(*label) {
                Some(c) => *c += count,
                None => {
                    n.counters
                        .rejected_by_reason
                        .insert((*label).to_owned(), count);
                }
            }
            self.metrics.rejected(&n.labels, label, count);
        }
        if last.guard.is_some() {
            info!(
                peer = %canonical(n.config.address),
                "import guard refused {total} prefixes, the last {}: {}", last.prefix, last.reason
            );
        } else {
            debug!(
                peer = %canonical(n.config.address),
                "refused {total} prefixes, the last {}: {}", last.prefix, last.reason
            );
        }
        n.last_rejection = Some(last);
    }

    /// Re-applies the import policy to the soft-reconfiguration copy.
    fn reimport<P: Family>(&mut self, peer: PeerId) {
        let Some(n) = self.neighbors.get_mut(&peer) else {
            return;
        };
        let mut by_attrs: FxMap<*const RouteAttrs, (Arc<RouteAttrs>, Vec<Nlri<P>>)> =
            FxMap::default();
        for (p, a) in P::adj_in(&mut n.adj_in).iter() {
            by_attrs
                .entry(Arc::as_ptr(a))
                .or_insert_with(|| (Arc::clone(a), Vec::new()))
                .1
                .push(Nlri::new(*p));
        }
        let mut changes = Vec::new();
        for (_, (a, ps)) in by_attrs {
            self.import(peer, (*a).clone(), &ps, &mut changes);
        }
        self.propagate(changes);
        self.sync_metrics(peer);
    }

    fn check_max_prefixes(&mut self, peer: PeerId) {
        let Some(n) = self.neighbors.get(&peer) else {
            return;
        };
        let Some(max) = &n.config.max_prefixes else {
            return;
        };
        // The limit is per family, and the Cease names the family over it.
        let over = [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
            .into_iter()
            .zip(n.accepted_by_family)
            .find(|&(_, accepted)| accepted > u64::from(max.limit));
        let Some((family, accepted)) = over else {
            return;
        };
        warn!(peer = %n.config.address, %family, "{accepted} prefixes accepted, limit {}", max.limit);
        if max.warning_only {
            return;
        }
        let cease = Notification::max_prefixes(family, max.limit);
        let _ = n
            .control
            .try_send(Control::Cease(Box::new((cease, max.restart))));
    }

    /// Sends best-path changes to subscribers and every neighbor's export.
    fn propagate<P: Family>(&mut self, changes: Vec<Change<P>>) {
        if changes.is_empty() {
            return;
        }
        let ids: Vec<PeerId> = self.neighbors.keys().copied().collect();
        // A prefix that left the table frees its slot, which may be reused at
        // once: whoever was sent it hears the withdrawal now.
        for &id in &ids {
            self.withdraw_gone(id, &changes);
        }
        if self.gr.deferring() {
            // While a restart defers selection, the whole table is reported
            // and exported when it ends.
            drop(changes);
            self.rib.maybe_collect_garbage();
            return;
        }
        if self.events.receiver_count() > 0 {
            for c in &changes {
                let _ = self.events.send(Event::Route {
                    prefix: c.prefix.into(),
                    // A subscriber that came during this batch: the paths
                    // were not recorded, the table has them.
                    paths: if c.paths.is_empty() && !c.is_withdrawal() {
                        let table = self.rib.table::<P>();
                        table
                            .multipath(&c.prefix)
                            .iter()
                            .map(|r| self.path(r))
                            .collect()
                    } else {
                        c.paths.iter().map(|r| self.path(r)).collect()
                    },
                });
            }
        }
        for f in self.feeds.values_mut() {
            let dirty = &mut f.dirty[P::INDEX];
            for c in &changes {
                if c.is_withdrawal() {
                    f.gone.insert(c.prefix.into());
                } else {
                    dirty.insert(c.slot as usize);
                }
            }
            f.notify.notify_one();
        }
        for id in ids {
            self.export_changes(id, &changes);
        }
        self.rib.maybe_collect_garbage();
    }

    /// Marks the whole table for feed `id` (new, or after a restart's
    /// deferral).
    fn feed_mark_all(&mut self, id: u64) {
        let Some(f) = self.feeds.get_mut(&id) else {
            return;
        };
        let t4 = self.rib.table::<Ipv4Net>();
        for slot in 0..t4.slots() {
            if t4.slot(slot as u32).1.is_some() {
                f.dirty[0].insert(slot);
            }
        }
        let t6 = self.rib.table::<Ipv6Net>();
        for slot in 0..t6.slots() {
            if t6.slot(slot as u32).1.is_some() {
                f.dirty[1].insert(slot);
            }
        }
        f.notify.notify_one();
    }

    /// Up to `max` changes for feed `id`: prefixes gone first, then the
    /// changed ones as they are now.
    fn feed_take(&mut self, id: u64, max: usize) -> Vec<FeedEntry> {
        let Some(mut f) = self.feeds.remove(&id) else {
            return Vec::new();
        };
        let mut out: Vec<FeedEntry> = Vec::new();
        let gone: Vec<IpNet> = f.gone.iter().take(max).copied().collect();
        for p in gone {
            f.gone.remove(&p);
            out.push((p, Vec::new()));
        }
        self.feed_take_family::<Ipv4Net>(&mut f, max, &mut out);
        self.feed_take_family::<Ipv6Net>(&mut f, max, &mut out);
        self.feeds.insert(id, f);
        out
    }

    fn feed_take_family<P: Family>(
        &self,
        f: &mut feed::Feed,
        max: usize,
        out: &mut Vec<FeedEntry>,
    ) {
        let table = self.rib.table::<P>();
        let dirty = &mut f.dirty[P::INDEX];
        let mut at = 0;
        while out.len() < max {
            let Some(slot) = dirty.next_mut(at) else {
                break;
            };
            at = slot + 1;
            dirty.remove(slot);
            let (prefix, best) = table.slot(slot as u32);
            if best.is_none() {
                continue; // gone meanwhile: in `gone` already
            }
            let paths = table
                .multipath(&prefix)
                .iter()
                .map(|r| self.path(r))
                .collect();
            out.push((prefix.into(), paths));
        }
    }

    /// Queues withdrawals of the prefixes in `changes` that left the table
    /// and that neighbor `id` was sent.
    fn withdraw_gone<P: Family>(&mut self, id: PeerId, changes: &[Change<P>]) {
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        let e = P::export(&mut n.export);
        if e.advertised.len() == 0 {
            return;
        }
        let mut gone = Vec::new();
        for c in changes.iter().filter(|c| c.is_withdrawal()) {
            if e.advertised.remove(c.slot as usize) {
                gone.push(c.prefix);
            }
        }
        if gone.is_empty() {
            return;
        }
        let mut q = n.outq.lock();
        for p in gone {
            P::pending(&mut q).insert(p, None);
        }
        drop(q);
        n.counters.advertised = n.export.advertised();
        n.outq.notify.notify_one();
        self.sync_metrics(id);
    }

    /// Marks the changed prefixes for neighbor `id` and tops up its queue.
    fn export_changes<P: Family>(&mut self, id: PeerId, changes: &[Change<P>]) {
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        if !n.established_for(P::FAMILY) {
            return;
        }
        let e = P::export(&mut n.export);
        for c in changes {
            let slot = c.slot as usize;
            // Never back to where it came from: nothing to do unless an
            // earlier best path was sent.
            let own = c.best_peer == Some(id);
            if !c.is_withdrawal() && (!own || e.advertised.get(slot)) {
                e.dirty.insert(slot);
            }
        }
        self.fill::<P>(id);
    }

    /// Marks every prefix for neighbor `id` (session up, policy changed) and
    /// starts a pass over the table.
    fn mark_all<P: Family>(&mut self, id: PeerId) {
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        if !n.established_for(P::FAMILY) || self.gr.deferring() {
            return;
        }
        let table = self.rib.table::<P>();
        let e = P::export(&mut n.export);
        for slot in 0..table.slots() {
            if table.slot(slot as u32).1.is_some() {
                e.dirty.insert(slot);
            }
        }
        // Those sent whose prefix is gone or no longer exported leave.
        let sent = std::mem::take(&mut e.advertised);
        e.dirty.union(&sent);
        e.advertised = sent;
        e.restart_pass();
    }

    /// Recomputes everything a neighbor should have (policy changed) and
    /// sends what it should hear now.
    fn reexport_all<P: Family>(&mut self, id: PeerId) {
        self.mark_all::<P>(id);
        self.fill::<P>(id);
    }

    /// Moves dirty prefixes of neighbor `id` into its out queue, with the
    /// attributes it should hear now, while the queue has room.
    fn fill<P: Family>(&mut self, id: PeerId) {
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        if !n.established_for(P::FAMILY) {
            return;
        }
        let outq = Arc::clone(&n.outq);
        let mut e = std::mem::take(P::export(&mut n.export));
        let mut q = outq.lock();
        let mut room = export::CHUNK.saturating_sub(q.prefixes());
        // Grown once, not by doubling through every size.
        P::pending(&mut q).reserve(e.dirty.len().min(room));
        let mut queued = false;
        while room > 0 {
            let Some(slot) = e.dirty.next_mut(e.cursor) else {
                // The pass reached the end of the table.
                if !e.after_pass.is_empty() {
                    q.after.append(&mut e.after_pass);
                    queued = true;
                }
                e.cursor = 0;
                if e.dirty.len() == 0 {
                    break;
                }
                continue;
            };
            e.dirty.remove(slot);
            e.cursor = slot + 1;
            let (prefix, best) = self.rib.table::<P>().slot(slot as u32);
            let best = best.cloned();
            let desired = match &best {
                Some(r) => self.export_route(id, prefix, Some(r)),
                None => None,
            };
            match desired {
                Some(attrs) => {
                    e.advertised.insert(slot);
                    let i = q.attrs_index(&attrs);
                    P::pending(&mut q).insert(prefix, Some(i));
                }
                None if e.advertised.remove(slot) => {
                    P::pending(&mut q).insert(prefix, None);
                }
                None => continue,
            }
            room -= 1;
            queued = true;
        }
        drop(q);
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        *P::export(&mut n.export) = e;
        if queued {
            n.counters.advertised = n.export.advertised();
            outq.notify.notify_one();
            self.sync_metrics(id);
        }
    }

    /// What neighbor `id` has been sent of family `P`, as it would be sent
    /// now (the attributes are computed, not stored).
    fn advertised_routes<P: Family>(&mut self, id: PeerId) -> AdjRib {
        let Some(n) = self.neighbors.get(&id) else {
            return Vec::new();
        };
        let slots: Vec<usize> = match P::FAMILY {
            AfiSafi::IPV4_UNICAST => n.export.v4.advertised.iter().collect(),
            _ => n.export.v6.advertised.iter().collect(),
        };
        let mut v = Vec::with_capacity(slots.len());
        for slot in slots {
            let (prefix, best) = self.rib.table::<P>().slot(slot as u32);
            let best = best.cloned();
            if let Some(attrs) = self.export_route(id, prefix, best.as_ref()) {
                v.push((prefix.into(), attrs));
            }
        }
        v
    }

    /// What neighbor `id` should hear about `prefix` whose best path is `best`:
    /// iBGP/eBGP rules, well-known communities, next hop, then export policy.
    fn export_route<P: Family>(
        &mut self,
        id: PeerId,
        prefix: P,
        best: Option<&Route>,
    ) -> Option<Arc<RouteAttrs>> {
        let route = best?;
        let speaker_as = self.config.local_as;
        let n = self.neighbors.get(&id)?;
        if route.peer == id {
            return None; // never back to where it came from
        }
        let session = n.session.as_ref()?;
        let to_external = session.negotiated.remote_as != n.local_as(speaker_as);
        let from = self.rib.peer(route.peer)?.kind;
        let from_client = self
            .neighbors
            .get(&route.peer)
            .is_some_and(|s| s.config.route_reflector_client);
        if from == SourceKind::Internal
            && !to_external
            && !from_client
            && !n.config.route_reflector_client
        {
            return None; // iBGP split horizon, no reflection configured
        }
        let communities = &route.attrs.attributes.communities;
        if communities.contains(&Community::NO_ADVERTISE)
            || (to_external
                && (communities.contains(&Community::NO_EXPORT)
                    || communities.contains(&Community::NO_EXPORT_SUBCONFED)))
        {
            return None;
        }
        if communities.contains(&Community::LLGR_STALE)
            && !graceful::long_lived_negotiated(
                self.config.graceful_restart.as_ref(),
                &session.negotiated.remote_open.capabilities,
            )
        {
            return None; // RFC 9494 section 4.5
        }
        if to_external && n.config.export.is_none() {
            if self.warned_8212.insert((id, false)) {
                debug!(peer = %n.config.address, "not advertising: no export policy (RFC 8212)");
            }
            return None;
        }
        // Consecutive prefixes usually share attributes: reuse the last result
        // when the policy cannot tell prefixes apart.
        let independent = n
            .config
            .export
            .as_ref()
            .is_none_or(RouteMap::is_prefix_independent);
        if independent
            && let Some((family, input, out)) = &n.export_cache
            && *family == P::FAMILY
            && Arc::ptr_eq(input, &route.attrs)
        {
            return out.clone();
        }
        let remote_as = session.negotiated.remote_as;
        let looped = to_external
            && n.config.sender_loop_check
            && route
                .attrs
                .attributes
                .as_path
                .as_ref()
                .is_some_and(|p| p.contains(remote_as));
        let result = if looped {
            None // it would drop it (sender-side loop detection)
        } else {
            self.export_attrs(id, prefix.into(), route, to_external, from)
        };
        if independent && let Some(n) = self.neighbors.get_mut(&id) {
            n.export_cache = Some((P::FAMILY, Arc::clone(&route.attrs), result.clone()));
        }
        result
    }

    fn export_attrs(
        &mut self,
        id: PeerId,
        prefix: IpNet,
        route: &Route,
        to_external: bool,
        from: SourceKind,
    ) -> Option<Arc<RouteAttrs>> {
        let speaker_as = self.config.local_as;
        let cluster_id = self.config.cluster_id.unwrap_or(self.config.router_id);
        let n = self.neighbors.get(&id)?;
        let session = n.session.as_ref()?;
        let mut out = (*route.attrs).clone();
        let a = &mut out.attributes;
        let self_next_hop = to_external || n.config.next_hop_self || from == SourceKind::Local;
        if to_external {
            a.as_path
                .get_or_insert_with(Default::default)
                .prepend(n.local_as(speaker_as), 1);
            a.local_pref = None;
            a.originator_id = None;
            a.cluster_list.clear();
            if from == SourceKind::External {
                // RFC 4271 section 5.1.4: MED is not passed on to other ASes.
                a.med = None;
            }
        } else {
            a.local_pref = Some(
                a.local_pref
                    .unwrap_or(self.config.best_path.default_local_pref),
            );
            a.as_path.get_or_insert_with(Default::default);
            if from == SourceKind::Internal {
                // Reflection (RFC 4456 section 8).
                let origin_id = self.rib.peer(route.peer).map(|m| m.router_id);
                a.originator_id = a.originator_id.or(origin_id);
                a.cluster_list.insert(0, cluster_id);
            }
        }
        if self_next_hop {
            let v6_for_v4 = session.negotiated.tx.extended_next_hop;
            out.next_hop = Some(self_next_hop_for(prefix, session, &n.config, v6_for_v4)?);
        }
        let policy = n.config.export.clone();
        let mut result = match policy {
            Some(map) => match map.apply(&prefix, &out) {
                Ok(None) => out,
                Ok(Some(changed)) => changed,
                Err(_) => return None,
            },
            None => out,
        };
        if !security::otc_egress(&n.config, to_external, n.local_as(speaker_as), &mut result) {
            return None;
        }
        if self.graceful_shutdown || n.graceful_shutdown {
            gshut::mark(&mut result, to_external);
        }
        Some(self.rib.intern(result))
    }
}

/// What one import refused: counts by reason (indexed as [`REJECT_REASONS`])
/// and the last prefix.
#[derive(Default)]
struct Refused {
    by_reason: [u64; REJECT_REASONS.len()],
    last: Option<RejectedPrefix>,
}

/// A neighbor's export state for one family, if it is one the RIB holds.
fn family_export(e: &mut ExportState, family: AfiSafi) -> Option<&mut FamilyExport> {
    match family {
        AfiSafi::IPV4_UNICAST => Some(&mut e.v4),
        AfiSafi::IPV6_UNICAST => Some(&mut e.v6),
        _ => None,
    }
}

fn push_group<P: Copy>(
    groups: &mut Vec<(Arc<RouteAttrs>, Vec<Nlri<P>>)>,
    attrs: &Arc<RouteAttrs>,
    p: Nlri<P>,
) {
    match groups.iter_mut().find(|(a, _)| Arc::ptr_eq(a, attrs)) {
        Some((_, v)) => v.push(p),
        None => groups.push((Arc::clone(attrs), vec![p])),
    }
}

/// Our next hop for `prefix` on `session`: the session's local address when it
/// is of the prefix's family, else the configured one, else for IPv4 over an
/// IPv6 session with extended next hop (`v6_for_v4`, RFC 8950) our IPv6
/// address, else our address of the prefix's family on the session's
/// interface (as FRR picks it); `None`: the route is not sent.
fn self_next_hop_for(
    prefix: IpNet,
    session: &Session,
    config: &NeighborConfig,
    v6_for_v4: bool,
) -> Option<NextHop> {
    match (prefix, canonical(session.local.ip())) {
        (IpNet::V4(_), IpAddr::V4(a)) => Some(NextHop::V4(a)),
        (IpNet::V4(_), IpAddr::V6(a)) => config
            .next_hop_v4
            .map(NextHop::V4)
            .or_else(|| v6_for_v4.then(|| crate::unnumbered::ipv6_next_hop(a, config.next_hop_v6)))
            .or_else(|| match session.other_family() {
                Some(IpAddr::V4(v4)) => Some(NextHop::V4(v4)),
                _ => None,
            }),
        (IpNet::V6(_), IpAddr::V6(a)) => {
            Some(crate::unnumbered::ipv6_next_hop(a, config.next_hop_v6))
        }
        (IpNet::V6(_), IpAddr::V4(_)) => config
            .next_hop_v6
            .or_else(|| match session.other_family() {
                Some(IpAddr::V6(v6)) => Some(v6),
                _ => None,
            })
            .map(|g| NextHop::V6 {
                global: g,
                link_local: None,
            }),
    }
}
