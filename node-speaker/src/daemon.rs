//! The daemon: wires the configuration into a bgp-core speaker, the FIB loop
//! that turns its events into kernel routes, and the HTTP server.
//!
//! Start-up order: netlink, VRFs or rules, read the routes an earlier run
//! left, the speaker with its listeners, HTTP, reconcile those routes, the
//! FIB loop, the fabric neighbors and the pod ranges. On SIGTERM or SIGINT
//! the FIB loop stops first (so the sessions closing do not remove any route:
//! the next start reconciles them); then, with graceful restart, the process
//! just ends (no NOTIFICATION: neighbors keep our routes for the restart
//! time, RFC 4724), without it every session gets a Cease. Last, the tc-eBPF
//! router (loaded after the VRFs, when configured) is detached.
//!
//! Graceful restart: the kernel routes stay across a restart, so the speaker
//! advertises preserved forwarding; when routes of an earlier run are found
//! it is restarting (R bit) and defers route selection, for a little less
//! than `reconcileAfter` at most, until the fabric and the pods that had
//! routes sent End-of-RIB: the fabric then gets our routes whole, and drops
//! the stale ones only then.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use bgp_core::fsm::State;
use bgp_core::rib::BestPathConfig;
use bgp_core::speaker::{
    Event, GracefulRestartConfig, RouteFeed, Speaker, SpeakerConfig, SpeakerHandle,
};
use podpeer_host::netlink::{Netlink, Route, Rule};
use prometheus_client::registry::Registry;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::bpf::NodeBpf;
use crate::config::NodeConfig;
use crate::fib::{FibState, RouteView, Write};
use crate::guard;
use crate::health::{
    CheckResult, Checker, HealthMetrics, HealthOptions, LogReadiness, NodeReadiness,
};
use crate::status::{
    LastRejection, LogIt, NodeMetrics, OpLabels, PeerView, RejectLabels, Rejections, StatusView,
    TableLabels,
};

/// Priority of the `ip rule iif <member> lookup <table>` rules.
pub const RULE_PRIORITY: u32 = 1000;

/// Most route changes collected before a kernel write.
pub const BATCH_MAX: usize = 1000;

/// Longest a route change waits to be batched.
pub const BATCH_WINDOW: Duration = Duration::from_millis(10);

/// What the daemon shares between its tasks and the HTTP server.
pub struct App {
    /// The configuration (swapped at run time by a peer source; see
    /// [`App::config`]).
    config: std::sync::RwLock<Arc<NodeConfig>>,
    /// The speaker.
    pub speaker: SpeakerHandle,
    /// The FIB state.
    pub fib: Mutex<FibState>,
    /// Rejections per peer.
    pub rejections: Mutex<Rejections>,
    /// The node's metrics.
    pub metrics: NodeMetrics,
    /// bgp-core's and the node's metrics.
    pub registry: Registry,
    /// The BGP listeners are bound.
    pub listening: AtomicBool,
    /// The routes of an earlier run were read and the invalid ones removed.
    pub reconciled: AtomicBool,
    /// When the FIB loop last went round (ms since the epoch).
    pub heartbeat: AtomicU64,
    /// The tc-eBPF router, when interfaces are configured for it.
    pub bpf: Option<Arc<NodeBpf>>,
    /// Why the peer source is not ready (Kubernetes watches not synced, no
    /// NodeBGPConfig), or `None`.
    pub source_not_ready: Mutex<Option<String>>,
    /// The network health check's metrics.
    pub health: HealthMetrics,
}

/// A peer source that keeps the configuration current while the daemon
/// runs (the Kubernetes one): started once the speaker runs, it returns only
/// on a failure or when the daemon must restart to apply a change.
pub type PeerSource =
    Box<dyn FnOnce(Arc<App>) -> futures::future::BoxFuture<'static, anyhow::Result<()>> + Send>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl App {
    /// An App for `config`, `speaker` and the tc-eBPF router (if any), its
    /// metrics registered, nothing running yet.
    pub fn new(config: Arc<NodeConfig>, speaker: SpeakerHandle, bpf: Option<Arc<NodeBpf>>) -> Self {
        let metrics = NodeMetrics::default();
        let mut registry = Registry::default();
        speaker.metrics().register(&mut registry);
        metrics.register(&mut registry);
        let health = HealthMetrics::default();
        health.register(&mut registry);
        if let Some(bpf) = &bpf {
            registry.register_collector(Box::new(bpf.collector()));
        }
        Self {
            config: std::sync::RwLock::new(config),
            speaker,
            fib: Mutex::new(FibState::new()),
            rejections: Mutex::new(Rejections::default()),
            metrics,
            registry,
            listening: AtomicBool::new(true),
            reconciled: AtomicBool::new(false),
            heartbeat: AtomicU64::new(now_ms()),
            bpf,
            source_not_ready: Mutex::new(None),
            health,
        }
    }

    /// The configuration now.
    pub fn config(&self) -> Arc<NodeConfig> {
        Arc::clone(
            &self
                .config
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Replaces the configuration (the peer source's new pod groups).
    pub fn set_config(&self, config: Arc<NodeConfig>) {
        *self
            .config
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
    }

    /// The FIB state, locked.
    pub fn fib(&self) -> MutexGuard<'_, FibState> {
        lock(&self.fib)
    }

    /// Whether the FIB loop went round in the last few seconds.
    pub fn alive(&self) -> bool {
        now_ms().saturating_sub(self.heartbeat.load(Ordering::Relaxed)) < 5_000
    }

    /// What `/peers` shows.
    pub async fn peers(&self) -> anyhow::Result<Vec<PeerView>> {
        let neighbors = self.speaker.neighbors().await?;
        let config = self.config();
        let rej = lock(&self.rejections);
        Ok(neighbors
            .into_iter()
            .map(|n| {
                let group = config.group_of(n.address).map(|g| g.name.clone());
                // The session's own counts; the node's record (kept across
                // sessions) when the speaker has none.
                let by_reason = if n.counters.rejected_by_reason.is_empty() {
                    rej.by_reason(n.address)
                } else {
                    n.counters.rejected_by_reason.clone()
                };
                PeerView {
                    address: n.address,
                    kind: if group.is_some() { "pod" } else { "fabric" }.into(),
                    group,
                    description: n.description,
                    remote_as: n.remote_as,
                    state: n.state.to_string(),
                    since_secs: n.since.as_secs(),
                    received: n.counters.received,
                    accepted: n.counters.accepted,
                    rejected: n.counters.rejected.max(by_reason.values().sum()),
                    rejected_by_reason: by_reason,
                    last_rejection: rej.last(n.address).or_else(|| {
                        n.last_rejection.map(|l| LastRejection {
                            prefix: l.prefix,
                            reason: l.label.to_owned(),
                            detail: l.reason,
                            at_unix: 0,
                        })
                    }),
                    last_error: n.last_error,
                }
            })
            .collect())
    }

    /// Why the node is not ready, or `None` when it is: listeners bound, FIB
    /// reconciled, every fabric neighbor Established.
    pub async fn not_ready(&self) -> Option<String> {
        if !self.listening.load(Ordering::Relaxed) {
            return Some("BGP listeners not bound yet".into());
        }
        if !self.reconciled.load(Ordering::Relaxed) {
            return Some("FIB not reconciled yet".into());
        }
        if let Some(why) = lock(&self.source_not_ready).clone() {
            return Some(why);
        }
        let neighbors = match self.speaker.neighbors().await {
            Ok(n) => n,
            Err(e) => return Some(format!("speaker: {e}")),
        };
        let down: Vec<String> = self
            .config()
            .fabric
            .iter()
            .filter(|f| {
                !neighbors.iter().any(|n| {
                    n.state == State::Established
                        && match &f.interface {
                            // Unnumbered: any peer learned on the interface.
                            Some(i) => n.interface.as_ref() == Some(i),
                            None => n.address == f.address,
                        }
                })
            })
            .map(|f| f.name())
            .collect();
        (!down.is_empty()).then(|| format!("fabric neighbors not Established: {}", down.join(", ")))
    }

    /// What `/status` shows.
    pub async fn status(&self) -> anyhow::Result<StatusView> {
        let peers = self.peers().await?;
        let up = |kind: &str| {
            peers
                .iter()
                .filter(|p| p.kind == kind && p.state == "Established")
                .count()
        };
        let ready = self.not_ready().await.is_none();
        let config = self.config();
        let fib = self.fib();
        Ok(StatusView {
            local_as: config.local_as,
            router_id: config.router_id.to_string(),
            peers_up: up("pod") + up("fabric"),
            peers_total: peers.len(),
            pods_up: up("pod"),
            fabric_up: up("fabric"),
            fabric_total: config.fabric.len(),
            routes_installed: fib.installed_per_table(),
            routes_pending: fib.pending(),
            rejected: lock(&self.rejections).totals(),
            fib_reconciled: self.reconciled.load(Ordering::Relaxed),
            reconcile_holding: fib.holding(),
            ready,
            bpf: self.bpf.as_ref().map(|b| b.view()),
        })
    }

    /// What `/routes` shows.
    pub fn routes(&self) -> Vec<RouteView> {
        self.fib().view()
    }
}

/// The listen addresses to bind: `0.0.0.0:P` is dropped when `[::]:P` is
/// also given, since that socket takes IPv4 connections too (dual stack) and
/// the two cannot both be bound.
pub fn effective_listen(listen: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for a in listen {
        let covered = a.ip() == IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            && listen
                .iter()
                .any(|b| b.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED) && b.port() == a.port());
        if !covered && !out.contains(a) {
            out.push(*a);
        }
    }
    out
}

/// One step of setting up the VRFs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provision {
    /// Create (or find) VRF device `name` on `table`.
    Vrf {
        /// The device name.
        name: String,
        /// Its table.
        table: u32,
    },
    /// Add the rule (no VRF devices: member interfaces look up the table).
    Rule(Rule),
}

/// How to give each VRF its reach: a VRF device where the kernel has them;
/// otherwise `ip rule iif <member> lookup <table>` for both families.
pub fn provision_plan(config: &NodeConfig, has_vrf: bool) -> Vec<Provision> {
    let mut plan = Vec::new();
    for v in &config.vrfs {
        if has_vrf {
            plan.push(Provision::Vrf {
                name: v.name.clone(),
                table: v.table,
            });
            continue;
        }
        for ifname in &v.interfaces {
            for v6 in [false, true] {
                plan.push(Provision::Rule(Rule {
                    priority: RULE_PRIORITY,
                    iif: Some(ifname.clone()),
                    to: None,
                    from: None,
                    table: v.table,
                    v6,
                }));
            }
        }
    }
    plan
}

/// The speaker's graceful restart settings: `restartTime` from the
/// configuration, forwarding preserved (the kernel routes stay), and, when
/// routes of an earlier run are in the kernel, restarting: route selection
/// waits for the fabric and for the pods those routes lead to, but ends a
/// little before `reconcileAfter` (a second, or a quarter of it): the FIB's
/// hold of the earlier run's next hops must not end before the deferred
/// route events have come. `None` when graceful restart is off.
pub fn graceful_restart(config: &NodeConfig, earlier: &[Route]) -> Option<GracefulRestartConfig> {
    let restart_time = config.graceful_restart?;
    let mut wait_for: Vec<IpAddr> = earlier
        .iter()
        .flat_map(|r| r.next_hops.iter().map(|h| h.gateway))
        .filter(|&gw| config.group_of(gw).is_some())
        .collect();
    wait_for.sort();
    wait_for.dedup();
    Some(GracefulRestartConfig {
        restart_time,
        preserved_forwarding: true,
        restarting: !earlier.is_empty(),
        selection_deferral: config
            .reconcile_after
            .saturating_sub((config.reconcile_after / 4).min(Duration::from_secs(1))),
        wait_for,
        ..GracefulRestartConfig::default()
    })
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    run_with(config, None).await
}

/// Runs the daemon until SIGTERM or SIGINT, or until `source` (which then
/// owns the pod neighbors: no dynamic ranges are added) ends.
pub async fn run_with(config: NodeConfig, source: Option<PeerSource>) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let netlink = Arc::new(Netlink::connect().context("netlink")?);

    // VRFs (devices, or rules where the kernel has none), VXLAN, bridges.
    if let Err(e) = crate::provision::provision(&netlink, &config).await {
        warn!("cannot provision: {e}");
    }
    if config.frr.is_some() {
        // FRR holds the sessions: no speaker here.
        return crate::frr::driver::run(Arc::clone(&config)).await;
    }

    // The tc-eBPF router on its interfaces (or an error in the log).
    let (bpf_stop, bpf_stopped) = watch::channel(false);
    let (bpf, bpf_task) = match NodeBpf::start(&config, bpf_stopped) {
        Some((bpf, task)) => (Some(bpf), task),
        None => (None, None),
    };

    // The routes an earlier run left: whether this start is a restart.
    let earlier = netlink.our_routes().await.map_err(|e| e.to_string());

    // Speaker, with its listeners bound.
    let mut sc = SpeakerConfig::new(config.local_as, config.router_id);
    sc.listen = effective_listen(&config.listen);
    sc.best_path = BestPathConfig {
        max_paths: 64,
        multipath_relax: true,
        ..BestPathConfig::default()
    };
    sc.graceful_restart = graceful_restart(&config, earlier.as_deref().unwrap_or_default());
    if let Some(gr) = &sc.graceful_restart {
        info!(
            restart_time = ?gr.restart_time,
            restarting = gr.restarting,
            waiting_for_pods = gr.wait_for.len(),
            "graceful restart"
        );
    }
    let speaker = Speaker::start(sc).await.context("starting BGP")?;
    let events = speaker.subscribe();

    let app = Arc::new(App::new(Arc::clone(&config), speaker.clone(), bpf));

    // HTTP first, so health is visible during the start.
    let http = tokio::net::TcpListener::bind(config.http)
        .await
        .with_context(|| format!("HTTP server on {}", config.http))?;
    info!(addr = %config.http, "HTTP listening");
    let router = crate::http::router(Arc::clone(&app));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(http, router).await {
            error!("HTTP server: {e}");
        }
    });

    // Reconcile what an earlier run left before any session can add to it.
    reconcile(&app, &netlink, earlier).await;

    let (stop_tx, stop_rx) = watch::channel(false);
    let feed = speaker
        .route_feed()
        .await
        .context("the speaker's route feed")?;
    let fib_task = tokio::spawn(fib_loop(
        Arc::clone(&app),
        Arc::clone(&netlink),
        feed,
        events,
        stop_rx,
    ));

    for f in &config.fabric {
        let n = guard::fabric_neighbor(&config, f);
        match &f.interface {
            Some(iface) => {
                let mut i = bgp_core::speaker::InterfaceNeighbor::new(iface.clone());
                i.template = bgp_core::speaker::NeighborConfig {
                    extended_next_hop: true,
                    bind_interface: Some(iface.clone()),
                    ..n
                };
                speaker.add_interface_neighbor(i).await
            }
            None => speaker.add_neighbor(n).await,
        }
        .with_context(|| format!("fabric neighbor {}", f.name()))?;
    }
    for r in guard::dynamic_ranges(&config)
        .into_iter()
        .filter(|_| source.is_none())
    {
        let prefix = r.prefix;
        speaker
            .add_dynamic_range(r)
            .await
            .with_context(|| format!("pod range {prefix}"))?;
    }
    info!(
        local_as = config.local_as,
        router_id = %config.router_id,
        fabric = config.fabric.len(),
        groups = config.pod_groups.len(),
        "podpeer-node running"
    );
    // The network health check; a peer source runs its own (it tells
    // Kubernetes), file mode only logs.
    let health_task = match &source {
        Some(_) => None,
        None => Some(tokio::spawn(run_health(
            Arc::clone(&app),
            config.health.clone(),
            LogReadiness,
        ))),
    };

    let mut source_result = Ok(());
    match source.map(|s| tokio::spawn(s(Arc::clone(&app)))) {
        None => wait_for_signal().await?,
        Some(task) => tokio::select! {
            r = wait_for_signal() => r?,
            r = task => source_result = r.map_err(anyhow::Error::from).and_then(|r| r),
        },
    }
    if let Some(t) = health_task {
        t.abort();
    }
    info!("shutting down: routes stay in the kernel for the next start");
    let _ = stop_tx.send(true);
    let _ = fib_task.await;
    if config.graceful_restart.is_some() {
        info!("graceful restart: leaving without NOTIFICATION, neighbors keep our routes");
    } else {
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            speaker.shutdown(Some("podpeer-node shutting down".into())),
        )
        .await;
    }
    // Last, so forwarding goes on while the sessions close.
    let _ = bpf_stop.send(true);
    if let Some(task) = bpf_task {
        let _ = task.await;
    }
    info!("stopped");
    source_result
}

/// The fabric sessions of the configuration now, as a health check.
pub async fn fabric_check(app: &App) -> CheckResult {
    let neighbors = app.speaker.neighbors().await.unwrap_or_default();
    crate::health::check_fabric_sessions(&app.config().fabric, &neighbors)
}

/// Runs the network health check of native mode (the file's checks and the
/// fabric sessions) with `options`, telling `node`. A bad health check
/// file is logged and the check not run.
pub async fn run_health(app: Arc<App>, options: HealthOptions, node: impl NodeReadiness) {
    let checker = match Checker::load(&options, app.health.clone()) {
        Ok(c) => c,
        Err(e) => {
            error!("network health check not running: {e}");
            return;
        }
    };
    info!(file = %options.file.display(), interval = ?options.interval, "network health check");
    checker
        .run(options.interval, node, || fabric_check(&app))
        .await;
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM"),
        _ = int.recv() => info!("SIGINT"),
    }
    Ok(())
}

/// Takes our routes `found` in the kernel; deletes those the configuration
/// no longer allows and keeps the rest for `reconcileAfter`.
async fn reconcile(app: &App, netlink: &Netlink, found: Result<Vec<Route>, String>) {
    let found = match found {
        Ok(r) => r,
        Err(e) => {
            warn!("cannot read routes of an earlier run: {e}");
            Vec::new()
        }
    };
    let n = found.len();
    let config = app.config();
    let deletes = app.fib().adopt(found, |table, prefix| {
        guard::kernel_route_valid(&config, table, prefix)
    });
    for d in &deletes {
        let k = d.key();
        info!(table = k.table, prefix = %k.prefix, "removing a route of an earlier run: not valid under this configuration");
    }
    info!(
        found = n,
        invalid = deletes.len(),
        keep_for = ?config.reconcile_after,
        "routes of an earlier run"
    );
    if !deletes.is_empty() {
        Writer::new().write(app, netlink, deletes, true).await;
    }
    app.reconciled.store(true, Ordering::Relaxed);
}

/// Writes batches to the kernel and keeps the failed keys for a retry.
struct Writer {
    retry_after: Duration,
    retry_at: Option<Instant>,
}

impl Writer {
    fn new() -> Self {
        Self {
            retry_after: Duration::from_millis(500),
            retry_at: None,
        }
    }

    async fn flush(&mut self, app: &App, netlink: &Netlink) {
        let writes = app.fib().take_writes();
        if !writes.is_empty() {
            self.write(app, netlink, writes, false).await;
        }
    }

    async fn write(&mut self, app: &App, netlink: &Netlink, writes: Vec<Write>, reconcile: bool) {
        let (mut replaces, mut deletes) = (Vec::new(), Vec::new());
        for w in &writes {
            match w {
                Write::Replace(r) => replaces.push(r.clone()),
                Write::Delete(k) => deletes.push(Route {
                    table: k.table,
                    prefix: k.prefix,
                    next_hops: Vec::new(),
                }),
            }
        }
        let started = std::time::Instant::now();
        let (rep, del) = tokio::join!(
            netlink.replace_routes(&replaces),
            netlink.delete_routes(&deletes)
        );
        let mut failed = Vec::new();
        let mut removed_stale = 0u64;
        {
            let mut fib = app.fib();
            let (mut ri, mut di) = (rep.iter(), del.iter());
            for w in &writes {
                let (op, result) = match w {
                    Write::Replace(_) => ("replace", ri.next()),
                    Write::Delete(_) => ("delete", di.next()),
                };
                let labels = OpLabels { op: op.into() };
                app.metrics.fib_writes.get_or_create(&labels).inc();
                let ok = match result {
                    Some(Ok(())) => true,
                    Some(Err(e)) => {
                        app.metrics.fib_write_errors.get_or_create(&labels).inc();
                        warn!(table = w.key().table, prefix = %w.key().prefix, "kernel {op} failed: {e}");
                        false
                    }
                    None => false,
                };
                if ok && matches!(w, Write::Delete(_)) && (reconcile || fib.is_adopted(&w.key())) {
                    removed_stale += 1;
                }
                fib.written(w, ok);
                if !ok {
                    failed.push(w.key());
                }
            }
            for table in app
                .config()
                .tables()
                .into_iter()
                .chain(fib.installed_per_table().into_keys())
            {
                let n = fib.installed_per_table().get(&table).copied().unwrap_or(0);
                app.metrics
                    .fib_routes
                    .get_or_create(&TableLabels {
                        table: table.to_string(),
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        app.metrics.reconcile_removed.inc_by(removed_stale);
        debug!(
            replaced = replaces.len(),
            deleted = deletes.len(),
            failed = failed.len(),
            took = ?started.elapsed(),
            "kernel batch"
        );
        if failed.is_empty() {
            self.retry_after = Duration::from_millis(500);
        } else {
            warn!(
                count = failed.len(),
                retry_in = ?self.retry_after,
                "kernel writes failed; retrying"
            );
            app.fib().retry_later(failed);
            self.retry_at = Some(Instant::now() + self.retry_after);
            self.retry_after = (self.retry_after * 2).min(Duration::from_secs(30));
        }
    }
}

/// Follows the speaker: best-path changes from its route feed into the FIB
/// (batched kernel writes); rejections and session changes from its events
/// into the record, the log and the metrics.
async fn fib_loop(
    app: Arc<App>,
    netlink: Arc<Netlink>,
    mut feed: RouteFeed,
    mut events: broadcast::Receiver<Event>,
    mut stop: watch::Receiver<bool>,
) {
    let mut writer = Writer::new();
    let mut batch_at: Option<Instant> = None;
    let mut hold_at = app
        .fib()
        .holding()
        .then(|| Instant::now() + app.config().reconcile_after);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let far = || Instant::now() + Duration::from_secs(3600);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            ev = events.recv() => match ev {
                Ok(e) => handle_event(&app, e),
                // Routes come from the feed, which loses nothing; what was
                // missed here are log lines and rejection records.
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    warn!(missed, "missed speaker events: some rejections and session changes are not recorded");
                }
                Err(broadcast::error::RecvError::Closed) => {
                    info!("the speaker stopped");
                    return;
                }
            },
            // Cancel safe: a batch taken for a dropped call comes next time.
            batch = feed.next(BATCH_MAX) => {
                let Some(batch) = batch else {
                    info!("the speaker stopped");
                    return;
                };
                {
                    let config = app.config();
                    let mut fib = app.fib();
                    for (prefix, paths) in batch {
                        fib.route(&*config, prefix, &paths);
                    }
                }
                let pending = app.fib().changed();
                if pending >= BATCH_MAX {
                    writer.flush(&app, &netlink).await;
                    batch_at = None;
                } else if pending > 0 && batch_at.is_none() {
                    batch_at = Some(Instant::now() + BATCH_WINDOW);
                }
            }
            _ = tokio::time::sleep_until(batch_at.unwrap_or_else(far)), if batch_at.is_some() => {
                batch_at = None;
                writer.flush(&app, &netlink).await;
            }
            _ = tokio::time::sleep_until(hold_at.unwrap_or_else(far)), if hold_at.is_some() => {
                hold_at = None;
                info!("reconcile time over: removing routes of the last run that no peer announced again");
                app.fib().end_hold();
                writer.flush(&app, &netlink).await;
            }
            _ = tokio::time::sleep_until(writer.retry_at.unwrap_or_else(far)), if writer.retry_at.is_some() => {
                writer.retry_at = None;
                app.fib().retry_now();
                writer.flush(&app, &netlink).await;
            }
            _ = tick.tick() => {
                app.heartbeat.store(now_ms(), Ordering::Relaxed);
                // Changes made outside an event (a peer source's resync).
                if batch_at.is_none() && app.fib().changed() > 0 {
                    batch_at = Some(Instant::now() + BATCH_WINDOW);
                }
            }
        }
        app.heartbeat.store(now_ms(), Ordering::Relaxed);
    }
    // Stopping: write what is pending? No: sessions are about to close, and
    // whatever is in the kernel now is what the next start reconciles.
    debug!("FIB loop stopped");
}

/// Rebuilds the desired state from the speaker's RIB (after missed events,
/// or when a peer source moved peers to another table); the FIB loop writes
/// the difference.
pub async fn resync(app: &App) {
    match app.speaker.routes().await {
        Ok(entries) => {
            let mut fib = app.fib();
            fib.reset_desired();
            for e in entries {
                let n = e.multipath.min(e.paths.len());
                fib.route(&*app.config(), e.prefix, &e.paths[..n]);
            }
        }
        Err(e) => warn!("cannot read the RIB: {e}"),
    }
}

fn handle_event(app: &App, e: Event) {
    match e {
        // The FIB follows the route feed instead.
        Event::Route { .. } => {}
        Event::Rejected {
            neighbor,
            prefix,
            reason,
            label,
            ..
        } => rejected(app, neighbor, prefix, &reason, label),
        Event::NeighborState { neighbor, from, to } => {
            let config = app.config();
            let group = config.group_of(neighbor).map(|g| g.name.as_str());
            if to == State::Established || from == State::Established {
                info!(peer = %neighbor, group = group.unwrap_or("fabric"), %from, %to, "session");
            } else {
                debug!(peer = %neighbor, %from, %to, "session");
            }
        }
    }
}

fn rejected(app: &App, peer: IpAddr, prefix: ipnet::IpNet, detail: &str, reason: &'static str) {
    let config = app.config();
    let group = config.group_of(peer).map_or("fabric", |g| g.name.as_str());
    app.metrics
        .rejected
        .get_or_create(&RejectLabels {
            group: group.into(),
            peer: peer.to_string(),
            reason: reason.into(),
        })
        .inc();
    let log = lock(&app.rejections).record(peer, prefix, reason, detail);
    if config.group_of(peer).is_none() {
        // The fabric: refusals there are ordinary BGP (our own routes sent
        // back, AS loop), not an alarm.
        debug!(%peer, %prefix, reason, "route from the fabric refused: {detail}");
        return;
    }
    match log {
        LogIt::First => warn!(%peer, %prefix, group, reason, "route rejected: {detail}"),
        LogIt::LimitReached => warn!(
            %peer,
            group,
            "more rejected routes from this peer are counted but no longer logged"
        ),
        LogIt::No => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use super::*;

    fn config() -> NodeConfig {
        NodeConfig::parse(
            "localAs: 65010\nrouterId: 192.0.2.10\nvrfs:\n  - {name: vips, table: 100, interfaces: [eth1, eth2]}\n  - {name: empty, table: 101}\n",
            Path::new("t.yaml"),
        )
        .unwrap()
    }

    #[test]
    fn without_vrf_devices_members_get_rules_for_both_families() {
        let plan = provision_plan(&config(), false);
        assert_eq!(plan.len(), 4);
        assert_eq!(
            plan[0],
            Provision::Rule(Rule {
                priority: RULE_PRIORITY,
                iif: Some("eth1".into()),
                to: None,
                from: None,
                table: 100,
                v6: false,
            })
        );
        assert!(matches!(&plan[3], Provision::Rule(r) if r.iif.as_deref() == Some("eth2") && r.v6));
    }

    #[test]
    fn with_vrf_devices_each_vrf_gets_one() {
        assert_eq!(
            provision_plan(&config(), true),
            vec![
                Provision::Vrf {
                    name: "vips".into(),
                    table: 100
                },
                Provision::Vrf {
                    name: "empty".into(),
                    table: 101
                }
            ]
        );
    }

    #[test]
    fn dual_stack_listener_covers_ipv4_wildcard() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            effective_listen(&[a("0.0.0.0:179"), a("[::]:179")]),
            vec![a("[::]:179")]
        );
        assert_eq!(
            effective_listen(&[a("0.0.0.0:179"), a("[::]:1179")]),
            vec![a("0.0.0.0:179"), a("[::]:1179")]
        );
        assert_eq!(
            effective_listen(&[a("10.0.0.1:179"), a("10.0.0.1:179")]),
            vec![a("10.0.0.1:179")]
        );
    }

    #[test]
    fn graceful_restart_restarts_when_routes_of_an_earlier_run_are_found() {
        use podpeer_host::netlink::NextHop;
        let c = NodeConfig::parse(
            "localAs: 65010\nrouterId: 192.0.2.10\nreconcileAfter: 7s\npodGroups:\n  - {name: a, peers: [10.244.1.0/24]}\n",
            Path::new("t.yaml"),
        )
        .unwrap();
        let first = graceful_restart(&c, &[]).unwrap();
        assert_eq!(first.restart_time, Duration::from_secs(120));
        assert!(first.preserved_forwarding, "the kernel routes stay");
        assert!(!first.restarting);
        assert!(first.wait_for.is_empty());

        let via = |gw: &str| NextHop {
            gateway: gw.parse().unwrap(),
            ifindex: None,
        };
        let route = |prefix: &str, gws: &[&str]| Route {
            table: 254,
            prefix: prefix.parse().unwrap(),
            next_hops: gws.iter().map(|g| via(g)).collect(),
        };
        let earlier = [
            route("198.51.100.1/32", &["10.244.1.12", "10.244.1.11"]),
            route("198.51.100.2/32", &["10.244.1.11"]),
            // No group admits it: not waited for.
            route("198.51.100.3/32", &["10.9.9.9"]),
        ];
        let again = graceful_restart(&c, &earlier).unwrap();
        assert!(again.restarting, "R bit");
        assert_eq!(
            again.selection_deferral,
            Duration::from_secs(6),
            "ends before the FIB's hold"
        );
        let pods: Vec<IpAddr> = vec![
            "10.244.1.11".parse().unwrap(),
            "10.244.1.12".parse().unwrap(),
        ];
        assert_eq!(again.wait_for, pods);

        let off = NodeConfig::parse(
            "localAs: 65010\nrouterId: 192.0.2.10\ngracefulRestart: {enabled: false}\n",
            Path::new("t.yaml"),
        )
        .unwrap();
        assert_eq!(graceful_restart(&off, &earlier), None);
    }
}
