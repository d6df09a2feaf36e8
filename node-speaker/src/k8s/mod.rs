//! The Kubernetes peer source: pods chosen by `PodPeering` selectors peer
//! with the node they run on; the node's BGP setup comes from the
//! `NodeBGPConfig` that selects it.
//!
//! - [`crd`]: the custom resources as Rust types (the CRDs are generated);
//! - [`selector`]: label selectors;
//! - [`secret`]: TCP-MD5 keys from labelled Secrets (`passwordSecretRef`);
//! - [`watch`]: the watches and their stores;
//! - [`model`]: from a snapshot of the stores to the node configuration and
//!   per-PodPeering reports, pure;
//! - [`apply`]: the new configuration into the running speaker, by diff;
//! - [`report`]: status entries (server-side apply, one field manager per
//!   node) and Events;
//! - [`readiness`]: the network health check's taints and Node condition;
//! - [`vrfroute`]: VRFRouteConfigurations for FRR mode ([`run_frr`]).
//!
//! The loop: any change in a store (or a session changing state, or the
//! status interval) arms a debounce timer; when it fires, the plan is made
//! again from the stores (a few hundred objects at most: the pods of one
//! node) and only its differences reach the speaker and the API server.

pub mod apply;
pub mod crd;
pub mod model;
pub mod readiness;
pub mod report;
pub mod secret;
pub mod selector;
pub mod vrfroute;
pub mod watch;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use bgp_core::speaker::Event;
use bgp_core::wire::Community;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::{Client, ResourceExt};
use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;
use tracing::{info, warn};

use self::apply::Applied;
use self::model::{PEER, Plan, Settings, Snapshot};
use self::report::Reporter;
use self::watch::Stores;
use crate::config::{NodeConfig, parse_duration};
use crate::daemon::App;

/// Where the node's peers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PeerSourceKind {
    /// The configuration file's pod groups.
    #[default]
    File,
    /// Pods chosen by PodPeerings; the setup from a NodeBGPConfig.
    Kubernetes,
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).ok_or_else(|| format!("{s:?} is not a duration (like 1s, 500ms)"))
}

/// The Kubernetes peer source's options (flags and environment).
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Where peers come from: `file` (the configuration file) or
    /// `kubernetes` (PodPeerings and NodeBGPConfigs).
    #[arg(long, env = "PODPEER_PEER_SOURCE", value_enum, default_value = "file")]
    pub peer_source: PeerSourceKind,
    /// This node's name (the DaemonSet passes `spec.nodeName`).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Talk to the API server at this URL without credentials (`kubectl
    /// proxy`, tests); by default in-cluster credentials or KUBECONFIG.
    #[arg(long, env = "PODPEER_API_SERVER")]
    pub api_server: Option<String>,
    /// Service CIDRs, forbidden to pods (comma-separated).
    #[arg(
        long = "service-cidr",
        env = "PODPEER_SERVICE_CIDRS",
        value_delimiter = ','
    )]
    pub service_cidrs: Vec<IpNet>,
    /// How long changes are collected before a reconcile.
    #[arg(long, env = "PODPEER_DEBOUNCE", default_value = "1s", value_parser = duration)]
    pub debounce: Duration,
    /// How often session counters are written to the status (only when
    /// they changed).
    #[arg(long, env = "PODPEER_STATUS_INTERVAL", default_value = "10s", value_parser = duration)]
    pub status_interval: Duration,
    /// BGP listen addresses (comma-separated).
    #[arg(
        long = "bgp-listen",
        env = "PODPEER_BGP_LISTEN",
        value_delimiter = ',',
        default_value = "0.0.0.0:179,[::]:179"
    )]
    pub listen: Vec<SocketAddr>,
    /// The HTTP server (health, metrics, status).
    #[arg(
        long = "http-listen",
        env = "PODPEER_HTTP_LISTEN",
        default_value = "0.0.0.0:9180"
    )]
    pub http: SocketAddr,
    /// After a restart, how long routes of the earlier run wait for their pods.
    #[arg(long, env = "PODPEER_RECONCILE_AFTER", default_value = "10s", value_parser = duration)]
    pub reconcile_after: Duration,
    /// The network health check (both peer sources).
    #[command(flatten)]
    pub health: crate::health::HealthOptions,
}

impl Options {
    fn settings(&self) -> anyhow::Result<Settings> {
        let node_name = self
            .node_name
            .clone()
            .filter(|n| !n.is_empty())
            .context("--node-name (NODE_NAME) is required with --peer-source kubernetes")?;
        Ok(Settings {
            node_name,
            listen: self.listen.clone(),
            http: self.http,
            reconcile_after: self.reconcile_after,
            service_cidrs: self.service_cidrs.clone(),
        })
    }
}

/// A client for `options`: the given URL without credentials, or the usual
/// inference (in-cluster service account, then KUBECONFIG).
pub async fn client(options: &Options) -> anyhow::Result<Client> {
    let config = match &options.api_server {
        Some(url) => kube::Config::new(
            url.parse()
                .with_context(|| format!("--api-server {url:?} is not a URL"))?,
        ),
        None => kube::Config::infer()
            .await
            .context("no Kubernetes credentials (not in a cluster, no KUBECONFIG)")?,
    };
    Client::try_from(config).context("Kubernetes client")
}

/// The running source: watches, reporter, and what it applied.
pub struct Source {
    options: Options,
    settings: Settings,
    stores: Stores,
    changed: Arc<Notify>,
    reporter: Reporter,
    readiness: readiness::KubeReadiness,
}

impl Source {
    /// Starts the watches and waits until they have listed everything and a
    /// NodeBGPConfig selects this node; the configuration to start with.
    /// `waiting` says meanwhile what is awaited.
    pub async fn start(
        client: Client,
        options: Options,
        waiting: &Mutex<String>,
    ) -> anyhow::Result<(Self, NodeConfig)> {
        let settings = options.settings()?;
        let changed = Arc::new(Notify::new());
        let stores = Stores::start(&client, &settings.node_name, &changed).await;
        set(waiting, "listing the cluster's objects".into());
        info!(node = settings.node_name, "waiting for the first lists");
        stores.ready().await;
        let readiness = readiness::KubeReadiness::new(
            client.clone(),
            &settings.node_name,
            &report::field_manager(&settings.node_name),
        );
        let mut reporter = Reporter::new(client, &settings.node_name, &stores.snapshot());
        let mut last = String::new();
        loop {
            let plan = model::plan(&stores.snapshot(), &settings);
            reporter.node_configs(&plan.conflicting_configs).await;
            match plan.config {
                Ok(config) => {
                    let source = Self {
                        options,
                        settings,
                        stores,
                        changed,
                        reporter,
                        readiness,
                    };
                    return Ok((source, config));
                }
                Err(p) => {
                    if p.message != last {
                        warn!(reason = p.reason, "waiting: {}", p.message);
                        set(waiting, format!("{}: {}", p.reason, p.message));
                        last = p.message;
                    }
                    changed.notified().await;
                    tokio::time::sleep(options.debounce).await;
                }
            }
        }
    }

    /// Keeps the daemon's pods, fabric neighbors and status current until a
    /// change needs a restart (an error) or the speaker stops.
    pub async fn run(self, app: Arc<App>) -> anyhow::Result<()> {
        let Source {
            options,
            settings,
            stores,
            changed,
            reporter,
            readiness,
        } = self;
        // The network health check tells the Node; it ends with the source.
        let health = tokio::spawn(crate::daemon::run_health(
            Arc::clone(&app),
            options.health.clone(),
            readiness,
        ));
        let _health = AbortOnDrop(health);
        let mut inner = Running {
            options,
            settings,
            stores,
            changed,
            reporter,
        };
        inner.run(app).await
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The source's loop state.
struct Running {
    options: Options,
    settings: Settings,
    stores: Stores,
    changed: Arc<Notify>,
    reporter: Reporter,
}

impl Running {
    async fn run(&mut self, app: Arc<App>) -> anyhow::Result<()> {
        let mut applied = Applied::started(&app.config());
        let mut events = app.speaker.subscribe();
        let mut refs: BTreeMap<IpAddr, ObjectReference> = BTreeMap::new();
        let mut tick = tokio::time::interval(self.options.status_interval);
        let mut due = Some(Instant::now());
        let mut last_problem = None;
        let far = || Instant::now() + Duration::from_secs(3600);
        loop {
            tokio::select! {
                () = self.changed.notified() => {
                    due.get_or_insert_with(|| Instant::now() + self.options.debounce);
                }
                ev = events.recv() => match ev {
                    Ok(Event::Rejected { neighbor, prefix, reason, label, .. }) => {
                        if let Some(pod) = refs.get(&neighbor) {
                            self.reporter.rejected(pod, &prefix.to_string(), label, &reason).await;
                        }
                    }
                    Ok(Event::NeighborState { .. }) => {
                        due.get_or_insert_with(|| Instant::now() + self.options.debounce);
                    }
                    Ok(Event::Route { .. }) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                _ = tick.tick() => {
                    due.get_or_insert_with(|| Instant::now() + self.options.debounce);
                }
                () = tokio::time::sleep_until(due.unwrap_or_else(far)), if due.is_some() => {
                    due = None;
                    let snap = self.stores.snapshot();
                    let plan = model::plan(&snap, &self.settings);
                    refs = pod_refs(&snap, &plan);
                    self.reconcile(&app, &mut applied, &plan, &snap, &mut last_problem).await?;
                }
            }
        }
    }

    async fn reconcile(
        &mut self,
        app: &App,
        applied: &mut Applied,
        plan: &Plan,
        snap: &Snapshot,
        last_problem: &mut Option<String>,
    ) -> anyhow::Result<()> {
        match &plan.config {
            Ok(config) => {
                *last_problem = None;
                *lock(&app.source_not_ready) = None;
                let export = export_communities(snap, plan.node_config_name.as_deref());
                let pods = peer_pods(plan);
                let changes = applied.apply(app, config.clone(), &pods, &export).await?;
                if !changes.is_empty() {
                    info!(
                        added = changes.added,
                        removed = changes.removed,
                        updated = changes.updated,
                        "neighbors reconciled"
                    );
                }
            }
            Err(p) => {
                let why = format!(
                    "{}: {} (running on the last good configuration)",
                    p.reason, p.message
                );
                if last_problem.as_ref() != Some(&why) {
                    warn!("{why}");
                    *last_problem = Some(why.clone());
                }
                *lock(&app.source_not_ready) = Some(why);
            }
        }
        let peers = app
            .peers()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.address, p))
            .collect();
        self.reporter.peerings(plan, &peers).await;
        self.reporter.node_configs(&plan.conflicting_configs).await;
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn set(m: &Mutex<String>, s: String) {
    *lock(m) = s;
}

/// Each peer address with its pod (`namespace/name`).
fn peer_pods(plan: &Plan) -> BTreeMap<IpAddr, String> {
    plan.peerings
        .values()
        .flat_map(|r| r.pods.iter())
        .filter(|(_, e)| e.state == PEER)
        .flat_map(|(k, e)| e.addresses.iter().map(move |a| (*a, k.clone())))
        .collect()
}

/// Each peer address with a reference to its Pod (for Events).
fn pod_refs(snap: &Snapshot, plan: &Plan) -> BTreeMap<IpAddr, ObjectReference> {
    let pods = peer_pods(plan);
    let by_key: BTreeMap<String, ObjectReference> = snap
        .pods
        .iter()
        .map(|p| {
            let key = format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any());
            let r = ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(p.name_any()),
                namespace: p.namespace(),
                uid: p.uid(),
                ..Default::default()
            };
            (key, r)
        })
        .collect();
    pods.into_iter()
        .filter_map(|(ip, k)| by_key.get(&k).map(|r| (ip, r.clone())))
        .collect()
}

/// The chosen NodeBGPConfig's export communities (the schema checked
/// their form; large communities are not added on export).
fn export_communities(snap: &Snapshot, name: Option<&str>) -> Vec<Community> {
    let Some(c) = snap
        .node_configs
        .iter()
        .find(|c| Some(c.name_any().as_str()) == name)
    else {
        return Vec::new();
    };
    c.spec
        .export
        .iter()
        .flat_map(|e| e.communities.iter())
        .filter_map(|s| match s.parse::<Community>() {
            Ok(c) => Some(c),
            Err(_) => {
                warn!(community = s, "export community ignored: not a community");
                None
            }
        })
        .collect()
}

/// Runs podpeer-node with the Kubernetes peer source until SIGTERM or a
/// change that needs a restart. While it waits for the cluster (first
/// lists, a NodeBGPConfig), `/healthz` answers 200 and `/readyz` 503 with
/// what it waits for.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let client = client(&options).await?;
    let waiting = Arc::new(Mutex::new(String::from("starting")));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let listener = tokio::net::TcpListener::bind(options.http)
        .await
        .with_context(|| format!("HTTP server on {}", options.http))?;
    let w = Arc::clone(&waiting);
    let router = axum::Router::new()
        .route(
            "/healthz",
            axum::routing::get(|| async { "waiting for the cluster\n" }),
        )
        .route(
            "/readyz",
            axum::routing::get(move || {
                let w = Arc::clone(&w);
                async move {
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: {}\n", lock(&w)),
                    )
                }
            }),
        );
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });
    let started = Source::start(client, options, &waiting).await;
    let _ = stop_tx.send(());
    let _ = server.await;
    let (source, config) = started?;
    info!(
        node = source.settings.node_name,
        local_as = config.local_as,
        router_id = %config.router_id,
        groups = config.pod_groups.len(),
        "configuration from the cluster"
    );
    crate::daemon::run_with(config, Some(Box::new(move |app| Box::pin(source.run(app))))).await
}

/// FRR mode with the Kubernetes API: FRR holds the sessions and the node's
/// setup comes from `config` (the file, as in file mode); the
/// VRFRouteConfigurations come from the cluster (watched: every change is
/// rendered, checked and reloaded, debounced), and the network health check
/// tells this Node (taints, condition). Runs until SIGTERM or SIGINT.
pub async fn run_frr(options: Options, config: NodeConfig) -> anyhow::Result<()> {
    let node_name = options
        .node_name
        .clone()
        .filter(|n| !n.is_empty())
        .context("--node-name (NODE_NAME) is required with --peer-source kubernetes")?;
    let client = client(&options).await?;
    let netlink = podpeer_host::netlink::Netlink::connect().context("netlink")?;
    if let Err(e) = crate::provision::provision(&netlink, &config).await {
        warn!("cannot provision: {e}");
    }
    let routes = vrfroute::watch_all(client.clone());
    let (problems, found) = tokio::sync::mpsc::channel(4);
    let events = tokio::spawn(vrfroute::report_problems(
        client.clone(),
        node_name.clone(),
        found,
    ));
    let readiness =
        readiness::KubeReadiness::new(client, &node_name, &report::field_manager(&node_name));
    info!(
        node = node_name,
        "FRR mode with the cluster's VRFRouteConfigurations"
    );
    let result =
        crate::frr::driver::run_with(Arc::new(config), Some(routes), readiness, Some(problems))
            .await;
    events.abort();
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        options: Options,
    }

    #[tokio::test]
    async fn clients_for_http_and_https_build_without_openssl() {
        // TLS comes from rustls with ring; building the connector must not
        // need a crypto provider installed by hand.
        for url in ["http://127.0.0.1:8001", "https://127.0.0.1:6443"] {
            let flags = Flags::parse_from(["t", "--api-server", url]);
            client(&flags.options).await.unwrap();
        }
        let flags = Flags::parse_from(["t", "--api-server", "not a url"]);
        assert!(client(&flags.options).await.is_err());
    }

    #[test]
    fn defaults_and_the_node_name() {
        let flags = Flags::parse_from(["t"]);
        let o = &flags.options;
        assert_eq!(o.peer_source, PeerSourceKind::File);
        assert_eq!(o.debounce, Duration::from_secs(1));
        assert_eq!(o.http, "0.0.0.0:9180".parse().unwrap());
        assert_eq!(o.listen.len(), 2);
        let err = o.settings().unwrap_err().to_string();
        assert!(err.contains("NODE_NAME"), "{err}");
        let flags = Flags::parse_from([
            "t",
            "--peer-source",
            "kubernetes",
            "--node-name",
            "n1",
            "--service-cidr",
            "10.96.0.0/12,fd00:10:96::/112",
        ]);
        let s = flags.options.settings().unwrap();
        assert_eq!(s.node_name, "n1");
        assert_eq!(s.service_cidrs.len(), 2);
    }
}
