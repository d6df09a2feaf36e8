//! FRR mode at run time: FRR holds the BGP sessions (fabric and pods);
//! podpeer-node provisions the node, renders FRR's configuration whenever
//! its inputs change, checks it with `frr-reload.py --test`, writes it when
//! it changed and has systemd reload FRR (debounced), and runs the network
//! health check.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::http::{FrrHttp, ReloadLabels};
use super::reload::{FrrPaths, write_if_changed};
use super::routecfg::VrfRouteConfiguration;
use super::systemd::{DEFAULT_WINDOW, Systemd, debounce};
use super::{render, routecfg};
use crate::config::NodeConfig;
use crate::health::{self, Checker, HealthMetrics, LogReadiness, NodeReadiness};

/// FRR mode's settings (from the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrrMode {
    /// The node's FRR template (with the `#++{{...}}` hints).
    pub template: PathBuf,
    /// The configuration FRR loads (`/etc/frr/frr.conf`).
    pub output: PathBuf,
    /// A YAML list of VRFRouteConfigurations, if any.
    pub route_configs: Option<PathBuf>,
    /// FRR's tools and sockets.
    pub paths: FrrPaths,
    /// The debounce window of reloads.
    pub window: Duration,
    /// The systemd unit.
    pub unit: String,
    /// A D-Bus address instead of the system bus.
    pub bus: Option<String>,
    /// How often the inputs are looked at for changes.
    pub poll: Duration,
}

impl FrrMode {
    /// FRR mode with `template`, everything else at its default.
    pub fn new(template: PathBuf) -> Self {
        FrrMode {
            template,
            output: PathBuf::from("/etc/frr/frr.conf"),
            route_configs: None,
            paths: FrrPaths::default(),
            window: DEFAULT_WINDOW,
            unit: "frr.service".into(),
            bus: None,
            poll: Duration::from_secs(5),
        }
    }
}

/// The modification times of the inputs: a change means a new render.
fn stamps(mode: &FrrMode) -> Vec<Option<SystemTime>> {
    std::iter::once(&mode.template)
        .chain(mode.route_configs.as_ref())
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// Renders, checks and writes; whether FRR's file changed.
pub fn render_once(node: &NodeConfig, mode: &FrrMode) -> anyhow::Result<bool> {
    render_with(node, mode, &[]).map(|(changed, _)| changed)
}

/// Renders with the file's VRFRouteConfigurations (if any) and `more` (the
/// cluster's), checks and writes; whether FRR's file changed, and what was
/// left out and why ([`super::Rendered::problems`]).
pub fn render_with(
    node: &NodeConfig,
    mode: &FrrMode,
    more: &[VrfRouteConfiguration],
) -> anyhow::Result<(bool, Vec<String>)> {
    let template = std::fs::read_to_string(&mode.template)
        .with_context(|| format!("reading {}", mode.template.display()))?;
    let mut configs = match &mode.route_configs {
        Some(p) => routecfg::load(p)?,
        None => Vec::new(),
    };
    configs.extend_from_slice(more);
    let rendered = render(&template, node, &configs)?;
    for p in &rendered.problems {
        warn!("FRR render: {p}");
    }
    let mut candidate = mode.output.as_os_str().to_owned();
    candidate.push(".podpeer-candidate");
    let candidate = PathBuf::from(candidate);
    std::fs::write(&candidate, &rendered.config)
        .with_context(|| format!("writing {}", candidate.display()))?;
    let checked = mode.paths.test(&candidate, node.local_as);
    let _ = std::fs::remove_file(&candidate);
    checked?;
    let changed = write_if_changed(&mode.output, &rendered.config)
        .with_context(|| format!("writing {}", mode.output.display()))?;
    Ok((changed, rendered.problems))
}

/// The cluster's VRFRouteConfigurations: `None` until listed.
pub type ClusterRouteConfigs = watch::Receiver<Option<Vec<VrfRouteConfiguration>>>;

/// Runs FRR mode until SIGTERM or SIGINT, the readiness only logged.
pub async fn run(node: Arc<NodeConfig>) -> anyhow::Result<()> {
    run_with(node, None, LogReadiness, None).await
}

/// Runs FRR mode until SIGTERM or SIGINT, with the cluster's
/// VRFRouteConfigurations (if watched: nothing is rendered until they are
/// listed, then every change renders), telling `readiness`, and sending
/// the render's problems to `problems` whenever they change.
pub async fn run_with(
    node: Arc<NodeConfig>,
    mut cluster: Option<ClusterRouteConfigs>,
    readiness: impl NodeReadiness,
    problems: Option<mpsc::Sender<Vec<String>>>,
) -> anyhow::Result<()> {
    let Some(mode) = node.frr.clone() else {
        anyhow::bail!("FRR mode is not configured");
    };
    let health_metrics = HealthMetrics::default();
    // Silent for three rounds (and never less than 10 s): not alive.
    let stale_after = (mode.poll * 3).max(Duration::from_secs(10));
    let web = Arc::new(FrrHttp::new(&health_metrics, stale_after));
    let listener = tokio::net::TcpListener::bind(node.http)
        .await
        .with_context(|| format!("HTTP server on {}", node.http))?;
    info!(addr = %node.http, "HTTP listening: /metrics /healthz /readyz");
    let router = super::http::router(Arc::clone(&web));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            warn!("HTTP server: {e}");
        }
    });

    let systemd = Systemd::connect(mode.bus.as_deref(), &mode.unit).await?;
    let (changed, changes) = mpsc::channel(16);
    let reloads_metric = web.metrics.reloads.clone();
    let reloads = tokio::spawn(debounce(changes, mode.window, move || {
        let systemd = systemd.clone();
        let metric = reloads_metric.clone();
        async move {
            let result = match systemd.reload().await {
                Ok(how) => {
                    info!(?how, "FRR reloaded");
                    match how {
                        super::systemd::Reloaded::Reloaded => "reloaded",
                        super::systemd::Reloaded::Restarted { .. } => "restarted",
                    }
                }
                Err(e) => {
                    warn!("FRR reload: {e}");
                    "failed"
                }
            };
            metric.get_or_create(&ReloadLabels { result }).inc();
        }
    }));

    let mut checker = Checker::load(&node.health, health_metrics)?;
    let vtysh = mode.paths.bindir.join("vtysh");

    let mut last = None;
    let mut tick = tokio::time::interval(mode.poll);
    let signal = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            r = tokio::signal::ctrl_c() => r?,
        }
        Ok::<(), std::io::Error>(())
    };
    tokio::pin!(signal);
    info!(template = %mode.template.display(), output = %mode.output.display(), "podpeer-node running in FRR mode");
    let mut cluster_changed = false;
    let mut last_problems: Vec<String> = Vec::new();
    let mut cluster_open = cluster.is_some();
    loop {
        let next = async {
            match cluster.as_mut() {
                Some(rx) if cluster_open => rx.changed().await.is_ok(),
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            r = &mut signal => { r?; break; }
            _ = tick.tick() => {}
            ok = next => {
                if ok {
                    cluster_changed = true;
                } else {
                    warn!("the VRFRouteConfiguration watch ended: keeping its last list");
                    cluster_open = false;
                }
            }
        }
        let from_cluster = cluster.as_ref().map(|rx| rx.borrow().clone());
        // Not listed yet: rendering now would drop their route maps.
        let listed = !matches!(from_cluster, Some(None));
        let now = stamps(&mode);
        if listed && (last.as_ref() != Some(&now) || std::mem::take(&mut cluster_changed)) {
            let more = from_cluster.flatten().unwrap_or_default();
            match render_with(&node, &mode, &more) {
                Ok((written, found)) => {
                    if written {
                        info!("FRR configuration changed");
                        web.metrics.writes.inc();
                        let _ = changed.send(()).await;
                    }
                    web.metrics
                        .problems
                        .set(i64::try_from(found.len()).unwrap_or(i64::MAX));
                    if found != last_problems {
                        if let Some(tx) = &problems {
                            let _ = tx.send(found.clone()).await;
                        }
                        last_problems = found;
                    }
                }
                Err(e) => {
                    web.metrics.render_errors.inc();
                    warn!("FRR configuration not applied: {e:#}");
                }
            }
            last = Some(now);
        }
        let frr = health::check_frr(&vtysh, mode.paths.vty_socket.as_deref()).await;
        web.round(checker.round(frr, &readiness).await);
    }
    drop(changed);
    let _ = reloads.await;
    info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_bad_render_or_missing_template_is_an_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut mode = FrrMode::new(dir.path().join("missing.conf"));
        mode.output = dir.path().join("frr.conf");
        let node = crate::frr::tests::node();
        let e = render_once(&node, &mode).unwrap_err();
        assert!(format!("{e:#}").contains("missing.conf"), "{e:#}");
        std::fs::write(&mode.template, "#++{{.Nope}}\n").unwrap();
        let e = render_once(&node, &mode).unwrap_err();
        assert!(e.to_string().contains("unknown hint"), "{e}");
        assert!(!mode.output.exists());
    }
}
