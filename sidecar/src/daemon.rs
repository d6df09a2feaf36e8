//! The running sidecar: HTTP endpoints first, then the VIP addresses, the
//! node (default gateways, with retries), the speaker and its sessions, and
//! the VIP driver that announces and withdraws as health checks report,
//! until SIGTERM or SIGINT starts the drain.
//!
//! Shutdown order: stop the checks; mark every VIP with GRACEFUL_SHUTDOWN
//! (RFC 8326, `shutdown: graceful`, the default) or withdraw it (`shutdown:
//! withdraw`); wait the drain time (the node moves traffic away while the
//! session still stands); close the session with a shutdown message (which
//! withdraws whatever is left); remove the VIP addresses; exit 0.
//!
//! Why graceful by default: a withdrawal takes the route away at once, so a
//! pod that is the only one announcing a VIP blackholes it for the whole drain
//! (and cuts its open connections), while a marked route stays, least
//! preferred: the node sends the traffic to other pods announcing the same
//! VIP as soon as there are any, and to this one until it closes otherwise.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bgp_core::fsm::State;
use bgp_core::policy::{Action, Match, PrefixEntry, PrefixSet, RouteMap, Set, Term};
use bgp_core::speaker::{
    Event, InterfaceNeighbor, NeighborConfig, NeighborStatus, Speaker, SpeakerConfig, SpeakerHandle,
};
use bgp_core::wire::{AsPath, Origin, PathAttributes};
use ipnet::IpNet;
use podpeer_host::netlink::Netlink;
use prometheus_client::registry::Registry;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::check::{self, Health, Outcome, RiseFall};
use crate::config::{Check, Config, NodeSpec, ShutdownMode, Vip, fmt_duration};
use crate::metrics::SidecarMetrics;
use crate::node::{self, NodePeer, SessionPlan};
use crate::status::{ResultDoc, SessionDoc, StatusDoc, VipDoc};

/// Errors that stop the sidecar.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration cannot work here (exit code 2).
    #[error("{0}")]
    Config(String),
    /// The HTTP address cannot be bound.
    #[error("cannot serve HTTP on {addr}: {source}")]
    Http {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Netlink failed.
    #[error("{what}: {source}")]
    Netlink {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: podpeer_host::netlink::NetlinkError,
    },
    /// The BGP speaker failed.
    #[error("BGP speaker: {0}")]
    Speaker(#[from] bgp_core::speaker::SpeakerError),
    /// Signal handlers cannot be installed.
    #[error("cannot handle signals: {0}")]
    Signals(std::io::Error),
}

/// The last result of a VIP's check.
#[derive(Debug, Clone)]
pub struct LastCheck {
    /// The outcome.
    pub outcome: Outcome,
    /// When it arrived.
    pub at: Instant,
}

/// One VIP as the daemon tracks it.
#[derive(Debug, Clone)]
pub struct VipState {
    /// The configuration.
    pub vip: Vip,
    /// The rise/fall machine (none without a check).
    pub machine: Option<RiseFall>,
    /// Whether we originate it now.
    pub originated: bool,
    /// The node addresses whose sessions carry its family.
    pub carriers: Vec<IpAddr>,
    /// The last check result.
    pub last: Option<LastCheck>,
    /// Health changes so far.
    pub transitions: u64,
    /// Why it is not announced, when not its health.
    pub note: Option<String>,
}

impl VipState {
    fn new(vip: Vip) -> Self {
        Self {
            machine: vip.check.as_ref().map(|c| RiseFall::new(c.rise, c.fall)),
            vip,
            originated: false,
            carriers: Vec::new(),
            last: None,
            transitions: 0,
            note: None,
        }
    }

    /// Its health.
    pub fn health(&self) -> Health {
        self.machine
            .as_ref()
            .map_or(Health::Unchecked, RiseFall::health)
    }
}

/// The BGP side, once the node is known.
pub struct Bgp {
    /// The speaker.
    pub speaker: SpeakerHandle,
    /// Our router id.
    pub router_id: Ipv4Addr,
    /// The sessions.
    pub sessions: Vec<SessionPlan>,
    /// `node: unnumbered:IFACE`: the interface whose learned peers are the
    /// node's sessions (`sessions` is then empty).
    pub unnumbered: Option<String>,
}

/// In a VIP's carriers: whatever peer is learned on the unnumbered interface.
pub const LEARNED_PEER: IpAddr = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);

impl Bgp {
    /// The addresses of the node's sessions: the planned ones, or those
    /// learned on the unnumbered interface so far.
    fn session_addresses(&self, neighbors: &[NeighborStatus]) -> Vec<IpAddr> {
        if self.unnumbered.is_some() {
            neighbors.iter().map(|n| n.address).collect()
        } else {
            self.sessions.iter().map(|s| s.peer.address).collect()
        }
    }
}

/// Whether a VIP carried by `carrier` is in the Adj-RIB-Outs (`adj_out`) it
/// should be in: the carrier's, or for [`LEARNED_PEER`] every learned peer's
/// (and there is at least one).
fn carried(carrier: IpAddr, prefix: &IpNet, adj_out: &[(IpAddr, Vec<IpNet>)]) -> bool {
    if carrier == LEARNED_PEER {
        !adj_out.is_empty() && adj_out.iter().all(|(_, ps)| ps.contains(prefix))
    } else {
        adj_out
            .iter()
            .any(|(a, ps)| *a == carrier && ps.contains(prefix))
    }
}

/// State shared by the driver and the HTTP endpoints.
pub struct App {
    /// The configuration.
    pub config: Config,
    started: Instant,
    vips: Mutex<Vec<VipState>>,
    bgp: OnceLock<Bgp>,
    shutting_down: AtomicBool,
    /// The sidecar's metrics.
    pub metrics: SidecarMetrics,
    registry: Mutex<Registry>,
}

/// The version reported in status.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

impl App {
    /// The state for `config`, every checked VIP pending.
    pub fn new(config: Config) -> Arc<Self> {
        let metrics = SidecarMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        for v in &config.vips {
            let labels = SidecarMetrics::vip(&v.prefix.to_string());
            metrics
                .vip_healthy
                .get_or_create(&labels)
                .set(i64::from(v.check.is_none()));
            metrics.vip_announced.get_or_create(&labels).set(0);
        }
        Arc::new(Self {
            vips: Mutex::new(config.vips.iter().cloned().map(VipState::new).collect()),
            config,
            started: Instant::now(),
            bgp: OnceLock::new(),
            shutting_down: AtomicBool::new(false),
            metrics,
            registry: Mutex::new(registry),
        })
    }

    fn vips(&self) -> MutexGuard<'_, Vec<VipState>> {
        self.vips.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the VIP states.
    pub fn vip_states(&self) -> Vec<VipState> {
        self.vips().clone()
    }

    /// The BGP side, once the node is known.
    pub fn bgp(&self) -> Option<&Bgp> {
        self.bgp.get()
    }

    /// Whether SIGTERM has started the drain.
    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// The metrics in Prometheus text format.
    pub fn metrics_text(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            warn!("cannot encode metrics: {e}");
        }
        out
    }

    /// `Ok` when ready: not shutting down, every session Established, every
    /// check has a first result, and every VIP that should be announced is in
    /// the Adj-RIB-Out of each session that carries it.
    pub async fn readiness(&self) -> Result<(), String> {
        if self.shutting_down() {
            return Err("shutting down".into());
        }
        let bgp = self
            .bgp()
            .ok_or("looking for the node (no default gateway yet)")?;
        let neighbors = bgp.speaker.neighbors().await.map_err(|e| e.to_string())?;
        let addresses = bgp.session_addresses(&neighbors);
        if let Some(iface) = &bgp.unnumbered
            && addresses.is_empty()
        {
            return Err(format!("no node learned on {iface} yet"));
        }
        for a in &addresses {
            let state = neighbors
                .iter()
                .find(|n| n.address == *a)
                .map_or(State::Idle, |n| n.state);
            if state != State::Established {
                return Err(format!("session with {a} is {state}"));
            }
        }
        let vips = self.vip_states();
        if let Some(v) = vips.iter().find(|v| v.health() == Health::Pending) {
            return Err(format!("{}: waiting for the first check", v.vip.prefix));
        }
        let mut adj_out: Vec<(IpAddr, Vec<IpNet>)> = Vec::new();
        for a in addresses {
            let sent = bgp.speaker.advertised(a).await.map_err(|e| e.to_string())?;
            adj_out.push((a, sent.into_iter().map(|(p, _)| p).collect()));
        }
        for v in vips.iter().filter(|v| v.health().is_up()) {
            for c in &v.carriers {
                if !carried(*c, &v.vip.prefix, &adj_out) {
                    return Err(format!("{} not yet advertised to {c}", v.vip.prefix));
                }
            }
        }
        Ok(())
    }

    /// The `/status` document.
    pub async fn status(&self) -> StatusDoc {
        let ready = self.readiness().await;
        let vips = self.vip_states();
        let mut sessions = Vec::new();
        let mut adj_out: Vec<(IpAddr, Vec<IpNet>)> = Vec::new();
        if let Some(bgp) = self.bgp() {
            let neighbors = bgp.speaker.neighbors().await.unwrap_or_default();
            for a in bgp.session_addresses(&neighbors) {
                let n = neighbors.iter().find(|n| n.address == a);
                let plan = bgp.sessions.iter().find(|s| s.peer.address == a);
                let families = match (plan, &bgp.unnumbered) {
                    (Some(p), _) => p.families.iter().map(|f| f.to_string()).collect(),
                    (None, _) => n.map_or_else(Vec::new, |n| {
                        n.families.iter().map(|f| f.to_string()).collect()
                    }),
                };
                let via = match (plan, &bgp.unnumbered) {
                    (Some(p), _) => p.peer.via.clone(),
                    (None, Some(iface)) => format!("unnumbered on {iface}"),
                    (None, None) => String::new(),
                };
                sessions.push(SessionDoc {
                    node: a,
                    via,
                    remote_as: n.and_then(|n| n.remote_as),
                    state: n.map_or(State::Idle, |n| n.state).to_string(),
                    state_seconds: n.map_or(0, |n| n.since.as_secs()),
                    families,
                    sent_prefixes: n.map_or(0, |n| n.counters.advertised),
                    last_error: n.and_then(|n| n.last_error.clone()),
                });
                let sent = bgp.speaker.advertised(a).await.unwrap_or_default();
                adj_out.push((a, sent.into_iter().map(|(p, _)| p).collect()));
            }
        }
        let vips = vips
            .iter()
            .map(|v| VipDoc {
                prefix: v.vip.prefix.to_string(),
                check: v.vip.check.as_ref().map(|c| c.kind.to_string()),
                health: v.health(),
                originated: v.originated,
                announced: !v.carriers.is_empty()
                    && v.carriers
                        .iter()
                        .all(|c| carried(*c, &v.vip.prefix, &adj_out)),
                carried_by: v.carriers.clone(),
                last_result: v.last.as_ref().map(|l| ResultDoc {
                    passed: l.outcome.passed,
                    reason: l.outcome.reason.clone(),
                    latency_ms: l.outcome.latency.as_secs_f64() * 1000.0,
                    age_seconds: l.at.elapsed().as_secs_f64(),
                }),
                transitions: v.transitions,
                note: v.note.clone(),
            })
            .collect();
        let phase = if self.shutting_down() {
            "shutting-down"
        } else if self.bgp().is_some() {
            "running"
        } else {
            "discovering"
        };
        StatusDoc {
            version: VERSION.to_owned(),
            local_as: self.config.local_as,
            router_id: self.bgp().map(|b| b.router_id),
            node_as: self.config.node_as.to_string(),
            uptime_seconds: self.started.elapsed().as_secs(),
            phase: phase.to_owned(),
            ready: ready.is_ok(),
            not_ready_reason: ready.err(),
            sessions,
            vips,
        }
    }

    /// Records a check result; logs and counts it, and returns whether the
    /// VIP's health changed.
    fn record(&self, index: usize, outcome: Outcome) -> bool {
        let mut vips = self.vips();
        let Some(v) = vips.get_mut(index) else {
            return false;
        };
        let prefix = v.vip.prefix.to_string();
        let labels = SidecarMetrics::vip(&prefix);
        self.metrics
            .checks
            .get_or_create(&crate::metrics::CheckLabels {
                vip: prefix.clone(),
                result: if outcome.passed { "pass" } else { "fail" }.into(),
            })
            .inc();
        self.metrics
            .check_duration
            .get_or_create(&labels)
            .observe(outcome.latency.as_secs_f64());
        let check = v
            .vip
            .check
            .as_ref()
            .map(|c| c.kind.to_string())
            .unwrap_or_default();
        let flipped = v
            .last
            .as_ref()
            .is_some_and(|l| l.outcome.passed != outcome.passed);
        let changed = v.machine.as_mut().and_then(|m| m.record(outcome.passed));
        match changed {
            Some(h) => {
                v.transitions += 1;
                self.metrics.transitions.get_or_create(&labels).inc();
                self.metrics
                    .vip_healthy
                    .get_or_create(&labels)
                    .set(i64::from(h.is_up()));
                if h.is_up() {
                    info!(
                        "VIP {prefix} is healthy ({check}: {}): announcing",
                        outcome.reason
                    );
                } else {
                    warn!(
                        "VIP {prefix} is unhealthy ({check}: {}): withdrawing",
                        outcome.reason
                    );
                }
            }
            None if flipped => {
                // A result that differs from the last but not yet enough
                // of them to change the health.
                let (verb, wait) = if outcome.passed {
                    ("passed", "passes yet to rise")
                } else {
                    ("failed", "failures yet to fall")
                };
                info!(
                    "VIP {prefix} check {verb}: {}; still {} (not enough {wait})",
                    outcome.reason,
                    v.health()
                );
            }
            None => debug!(vip = %prefix, %check, passed = outcome.passed, "{}", outcome.reason),
        }
        v.last = Some(LastCheck {
            outcome,
            at: Instant::now(),
        });
        changed.is_some()
    }

    /// Brings the speaker in line with VIP `index`: announced when up,
    /// carried by a session and not shutting down; withdrawn otherwise.
    async fn sync(&self, index: usize) -> Result<(), RunError> {
        let Some(bgp) = self.bgp() else {
            return Ok(());
        };
        let (want, originated, vip) = {
            let vips = self.vips();
            let Some(v) = vips.get(index) else {
                return Ok(());
            };
            let want = v.health().is_up() && !v.carriers.is_empty() && !self.shutting_down();
            (want, v.originated, v.vip.clone())
        };
        if want == originated {
            return Ok(());
        }
        if want {
            bgp.speaker.announce(vip.prefix, attributes(&vip)).await?;
        } else {
            bgp.speaker.withdraw(vip.prefix).await?;
        }
        if let Some(v) = self.vips().get_mut(index) {
            v.originated = want;
        }
        self.metrics
            .vip_announced
            .get_or_create(&SidecarMetrics::vip(&vip.prefix.to_string()))
            .set(i64::from(want));
        Ok(())
    }
}

/// The attributes a VIP is announced with: ORIGIN IGP, an empty AS_PATH (ours
/// is prepended on export), its MED and communities.
pub fn attributes(vip: &Vip) -> PathAttributes {
    let mut communities = vip.communities.clone();
    communities.sort_unstable();
    communities.dedup();
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        med: vip.med,
        communities,
        ..Default::default()
    }
}

/// The import policy: nothing (the pod needs no routes).
pub fn import_nothing() -> RouteMap {
    RouteMap {
        name: "import-nothing".into(),
        terms: Vec::new(),
        default_accept: false,
    }
}

/// The export policy toward one session: the VIPs (RFC 8212 wants it
/// explicit), with the global IPv6 next hop where the session address is
/// link-local.
pub fn export_vips(plan: &SessionPlan) -> RouteMap {
    let mut map = RouteMap::accept_all("export-vips");
    if plan.peer.is_link_local()
        && let Some(global) = plan.next_hop_v6
    {
        map.terms.push(Term {
            name: "ipv6-global-next-hop".into(),
            matches: vec![Match::Prefix(PrefixSet::new(vec![PrefixEntry::orlonger(
                IpNet::V6(ipnet::Ipv6Net::default()),
            )]))],
            sets: vec![Set::NextHop(IpAddr::V6(global))],
            action: Action::Accept,
        });
    }
    map
}

/// The neighbor configuration of one session.
pub fn neighbor_config(config: &Config, plan: &SessionPlan) -> NeighborConfig {
    let mut n = NeighborConfig::new(plan.peer.address, config.node_as.remote_as());
    n.port = config.port;
    n.hold_time = u16::try_from(config.hold_time.as_secs()).unwrap_or(u16::MAX);
    n.connect_retry = Duration::from_secs(2);
    n.description = format!("node ({})", plan.peer.via);
    if plan.peer.is_link_local() {
        n.bind_interface = plan.peer.ifname.clone();
    }
    n.families = plan.families.clone();
    n.import = Some(import_nothing());
    n.export = Some(export_vips(plan));
    n.next_hop_v4 = plan.next_hop_v4;
    n.next_hop_v6 = plan.next_hop_v6;
    secure(config, &mut n);
    n
}

/// The session security every session with the node gets: the TCP-MD5 key
/// on our connection and GTSM. The sidecar never listens, so the key on its
/// outgoing socket is all it takes, for an unnumbered (learned) node too.
pub fn secure(config: &Config, n: &mut NeighborConfig) {
    n.password.clone_from(&config.password);
    n.ttl_security = config.ttl_security_hops;
}

/// How the logs name the session security (never the key).
fn security_note(config: &Config) -> String {
    let mut s = String::new();
    if config.password.is_some() {
        s.push_str(", TCP-MD5");
    }
    if let Some(h) = config.ttl_security_hops {
        s.push_str(&format!(", GTSM {h} hop(s)"));
    }
    s
}

/// Runs one VIP's check every interval, sending each outcome.
async fn check_loop(index: usize, check: Check, results: mpsc::Sender<(usize, Outcome)>) {
    let mut ticks = tokio::time::interval(check.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let outcome = check::run(&check.kind, check.timeout).await;
        if results.send((index, outcome)).await.is_err() {
            return;
        }
    }
}

struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn new() -> Result<Self, RunError> {
        Ok(Self {
            term: signal(SignalKind::terminate()).map_err(RunError::Signals)?,
            int: signal(SignalKind::interrupt()).map_err(RunError::Signals)?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Runs the sidecar until SIGTERM or SIGINT, then drains and returns.
pub async fn run(config: Config) -> Result<(), RunError> {
    let mut signals = Signals::new()?;
    let app = App::new(config.clone());
    let listener = tokio::net::TcpListener::bind(config.http)
        .await
        .map_err(|source| RunError::Http {
            addr: config.http,
            source,
        })?;
    info!(
        "serving /healthz /readyz /metrics /status on http://{}",
        config.http
    );
    tokio::spawn(crate::http::serve(listener, Arc::clone(&app)));

    let needs_netlink = config.node == NodeSpec::Auto || config.add_vips;
    let netlink = if needs_netlink {
        Some(Netlink::connect().map_err(|source| RunError::Netlink {
            what: "netlink".into(),
            source,
        })?)
    } else {
        None
    };
    let mut added = Vec::new();
    let result = match (&netlink, config.add_vips) {
        (Some(nl), true) => match add_vips(nl, &config, &mut added).await {
            Ok(()) => drive(&app, netlink.as_ref(), &mut signals).await,
            Err(e) => Err(e),
        },
        _ => drive(&app, netlink.as_ref(), &mut signals).await,
    };
    if let Some(nl) = &netlink {
        for prefix in added {
            match nl.remove_address(&config.vip_interface, prefix).await {
                Ok(()) => info!("removed {prefix} from {}", config.vip_interface),
                Err(e) => warn!("cannot remove {prefix} from {}: {e}", config.vip_interface),
            }
        }
    }
    if result.is_ok() {
        info!("stopped");
    }
    result
}

async fn add_vips(
    netlink: &Netlink,
    config: &Config,
    added: &mut Vec<IpNet>,
) -> Result<(), RunError> {
    for v in &config.vips {
        let new = netlink
            .add_address(&config.vip_interface, v.prefix)
            .await
            .map_err(|source| RunError::Netlink {
                what: format!(
                    "cannot add VIP {} to {} (addVips needs NET_ADMIN)",
                    v.prefix, config.vip_interface
                ),
                source,
            })?;
        if new {
            info!("added {} to {}", v.prefix, config.vip_interface);
            added.push(v.prefix);
        } else {
            // Someone else's (the NF's own setup): left there on exit.
            info!(
                "{} is on {} already: it stays there on exit",
                v.prefix, config.vip_interface
            );
        }
    }
    Ok(())
}

/// Finds the node, starts the speaker, and drives the VIPs until a signal.
async fn drive(
    app: &Arc<App>,
    netlink: Option<&Netlink>,
    signals: &mut Signals,
) -> Result<(), RunError> {
    let config = &app.config;
    let (results_tx, mut results) = mpsc::channel::<(usize, Outcome)>(64);
    let mut checks = JoinSet::new();
    for (i, v) in config.vips.iter().enumerate() {
        if let Some(c) = &v.check {
            checks.spawn(check_loop(i, c.clone(), results_tx.clone()));
        }
    }
    drop(results_tx);
    if config.vips.is_empty() {
        warn!("no VIPs configured: peering with the node, announcing nothing");
    }

    let start = start_bgp(app, netlink);
    tokio::pin!(start);
    let mut started = false;
    let mut events: Option<broadcast::Receiver<Event>> = None;
    let why = loop {
        tokio::select! {
            r = &mut start, if !started => {
                started = true;
                let (bgp, rx) = r?;
                events = Some(rx);
                let _ = app.bgp.set(bgp);
                for i in 0..config.vips.len() {
                    app.sync(i).await?;
                }
            }
            Some((i, outcome)) = results.recv() => {
                if app.record(i, outcome) {
                    app.sync(i).await?;
                }
            }
            ev = next_event(&mut events) => {
                if let Some(ev) = ev {
                    log_event(app, ev).await;
                }
            }
            why = signals.recv() => break why,
        }
    };
    match config.shutdown {
        ShutdownMode::Graceful => info!("{why}: graceful shutdown (RFC 8326)"),
        ShutdownMode::Withdraw => info!("{why}: withdrawing the VIPs"),
    }
    app.shutting_down.store(true, Ordering::Relaxed);
    checks.abort_all();
    let Some(bgp) = app.bgp() else {
        return Ok(());
    };
    let drain = fmt_duration(config.drain_time);
    match config.shutdown {
        ShutdownMode::Graceful => {
            // The VIPs stay originated: marked, then withdrawn by the close.
            bgp.speaker.set_graceful_shutdown(None, true).await?;
            let marked = app.vips().iter().filter(|v| v.originated).count();
            info!(
                "marked {marked} VIP(s) with GRACEFUL_SHUTDOWN; draining for {drain} before closing the session"
            );
        }
        ShutdownMode::Withdraw => {
            let mut withdrawn = 0;
            for i in 0..config.vips.len() {
                let was = app.vips().get(i).is_some_and(|v| v.originated);
                app.sync(i).await?;
                withdrawn += usize::from(was);
            }
            info!("withdrew {withdrawn} VIP(s); draining for {drain} before closing the session");
        }
    }
    tokio::select! {
        _ = tokio::time::sleep(config.drain_time) => {}
        why = signals.recv() => info!("{why} again: cutting the drain short"),
    }
    let closing = bgp
        .speaker
        .shutdown(Some("podpeer-sidecar: the pod is shutting down".into()));
    match tokio::time::timeout(Duration::from_secs(5), closing).await {
        Ok(Ok(())) => info!("session closed"),
        Ok(Err(e)) => warn!("closing the session: {e}"),
        Err(_) => warn!("the session did not close within 5s"),
    }
    Ok(())
}

async fn next_event(events: &mut Option<broadcast::Receiver<Event>>) -> Option<Event> {
    match events {
        Some(rx) => match rx.recv().await {
            Ok(ev) => Some(ev),
            Err(broadcast::error::RecvError::Lagged(_)) => None,
            Err(broadcast::error::RecvError::Closed) => {
                *events = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

async fn log_event(app: &App, ev: Event) {
    let Event::NeighborState { neighbor, from, to } = ev else {
        return;
    };
    let status = match app.bgp() {
        Some(b) => b
            .speaker
            .neighbors()
            .await
            .ok()
            .and_then(|ns| ns.into_iter().find(|n| n.address == neighbor)),
        None => None,
    };
    if to == State::Established {
        let asn = status
            .as_ref()
            .and_then(|s| s.remote_as)
            .map_or_else(|| "?".to_owned(), |a| a.to_string());
        info!("session with node {neighbor} Established (node AS {asn})");
    } else if from == State::Established {
        let why = status
            .and_then(|s| s.last_error)
            .unwrap_or_else(|| "no reason given".into());
        warn!("session with node {neighbor} went down ({why}); reconnecting");
    } else {
        debug!("session with node {neighbor}: {from} -> {to}");
    }
}

/// Finds the node, picks the router id, starts the speaker and its sessions;
/// the speaker's events from before the first session on.
async fn start_bgp(
    app: &App,
    netlink: Option<&Netlink>,
) -> Result<(Bgp, broadcast::Receiver<Event>), RunError> {
    let config = &app.config;
    let peers = match (&config.node, netlink) {
        (NodeSpec::Unnumbered(iface), _) => return start_unnumbered(app, iface).await,
        (NodeSpec::Address(a), _) => vec![NodePeer {
            address: *a,
            ifname: None,
            ifindex: None,
            via: "configured".into(),
        }],
        (NodeSpec::Auto, Some(nl)) => node::discover(nl).await,
        (NodeSpec::Auto, None) => {
            return Err(RunError::Config("node: auto needs netlink".into()));
        }
    };
    let prefixes: Vec<IpNet> = config.vips.iter().map(|v| v.prefix).collect();
    let pod = node::pod_addresses(&peers, &prefixes);
    let router_id = config.router_id.or(pod.v4).ok_or_else(|| {
        RunError::Config(
            "routerId: the pod has no IPv4 address toward the node to use as router id; \
             set routerId (--router-id, PODPEER_ROUTER_ID)"
                .into(),
        )
    })?;
    let (sessions, warnings) = node::plan(&peers, pod, &prefixes);
    for w in warnings {
        warn!("{w}");
    }
    let mut sc = SpeakerConfig::new(config.local_as, router_id);
    sc.listen = Vec::new();
    let speaker = Speaker::start(sc).await?;
    speaker
        .metrics()
        .register(&mut app.registry.lock().unwrap_or_else(|e| e.into_inner()));
    let events = speaker.subscribe();
    for s in &sessions {
        let families: Vec<String> = s.families.iter().map(|f| f.to_string()).collect();
        info!(
            "peering with node {} ({}), AS {}, local AS {}, router id {router_id}, {}{}",
            s.peer.address,
            s.peer.via,
            config.node_as,
            config.local_as,
            families.join(" + "),
            security_note(config)
        );
        speaker.add_neighbor(neighbor_config(config, s)).await?;
    }
    {
        let mut vips = app.vips();
        for v in vips.iter_mut() {
            v.carriers = sessions
                .iter()
                .filter(|s| s.carries(&v.vip.prefix))
                .map(|s| s.peer.address)
                .collect();
            if v.carriers.is_empty() {
                let family = if v.vip.prefix.addr().is_ipv4() {
                    "IPv4"
                } else {
                    "IPv6"
                };
                v.note = Some(format!("not announced: no session can carry {family}"));
            }
        }
    }
    Ok((
        Bgp {
            speaker,
            router_id,
            sessions,
            unnumbered: None,
        },
        events,
    ))
}

/// `node: unnumbered:IFACE`: one interface neighbor; the node is whoever is
/// learned on the interface (its Router Advertisements, the neighbor table).
/// IPv4 VIPs go with our link-local address as next hop (RFC 8950), so the
/// interface needs no IPv4 address; the router id is then `routerId` or the
/// first IPv4 VIP.
async fn start_unnumbered(
    app: &App,
    iface: &str,
) -> Result<(Bgp, broadcast::Receiver<Event>), RunError> {
    let config = &app.config;
    let router_id = config
        .router_id
        .or_else(|| {
            config.vips.iter().find_map(|v| match v.prefix.addr() {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            })
        })
        .ok_or_else(|| {
            RunError::Config(
                "routerId: node: unnumbered has no IPv4 address toward the node and no \
                 IPv4 VIP to use as router id; set routerId (--router-id, PODPEER_ROUTER_ID)"
                    .into(),
            )
        })?;
    let mut sc = SpeakerConfig::new(config.local_as, router_id);
    sc.listen = Vec::new();
    let speaker = Speaker::start(sc).await?;
    speaker
        .metrics()
        .register(&mut app.registry.lock().unwrap_or_else(|e| e.into_inner()));
    let events = speaker.subscribe();
    let mut n = InterfaceNeighbor::new(iface);
    n.template.remote_as = config.node_as.remote_as();
    n.template.port = config.port;
    n.template.hold_time = u16::try_from(config.hold_time.as_secs()).unwrap_or(u16::MAX);
    n.template.description = format!("node (unnumbered on {iface})");
    n.template.import = Some(import_nothing());
    n.template.export = Some(RouteMap::accept_all("export-vips"));
    secure(config, &mut n.template);
    info!(
        "peering with the node unnumbered on {iface}, AS {}, local AS {}, router id {router_id}{}",
        config.node_as,
        config.local_as,
        security_note(config)
    );
    speaker.add_interface_neighbor(n).await?;
    for v in app.vips().iter_mut() {
        v.carriers = vec![LEARNED_PEER];
    }
    Ok((
        Bgp {
            speaker,
            router_id,
            sessions: Vec::new(),
            unnumbered: Some(iface.to_owned()),
        },
        events,
    ))
}
