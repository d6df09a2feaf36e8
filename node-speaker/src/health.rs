//! The node's network health check: are the interfaces up, are the hosts
//! reachable over TCP, is FRR running (FRR mode) or are the fabric sessions
//! up (native mode). When every check passes the node is ready: the
//! configured taints (by default `node.cloudprovider.kubernetes.io/uninitialized`)
//! are removed once and a Node condition is set, through a [`NodeReadiness`].
//!
//! The file (`/opt/network-operator/net-healthcheck-config.yaml`, env
//! `OPERATOR_NETHEALTHCHECK_CONFIG`) reads as the seed operator wrote it:
//!
//! ```yaml
//! interfaces: [eth0]              # must be up
//! reachability:                   # TCP connect must succeed
//!   - {host: 192.0.2.1, port: 179}
//! timeout: 3s                     # per attempt (default 3s)
//! retries: 3                      # attempts per host (default 3)
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;

use bgp_core::fsm::State;
use bgp_core::speaker::NeighborStatus;

use crate::config::{ConfigError, FabricNeighbor, parse_duration};
use podpeer_host::netlink::Netlink;

/// The taint removed when the node's network is ready.
pub const UNINITIALIZED_TAINT: &str = "node.cloudprovider.kubernetes.io/uninitialized";

/// The default file.
pub const DEFAULT_FILE: &str = "/opt/network-operator/net-healthcheck-config.yaml";

/// One TCP target.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// The health check configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// Interfaces that must be up.
    pub interfaces: Vec<String>,
    /// Hosts that must accept a TCP connection.
    pub reachability: Vec<Target>,
    /// One attempt's timeout.
    pub timeout: Duration,
    /// Attempts per host before it counts as unreachable.
    pub retries: u32,
    /// Pause between attempts.
    pub retry_interval: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interfaces: Vec::new(),
            reachability: Vec::new(),
            timeout: Duration::from_secs(3),
            retries: 3,
            retry_interval: Duration::from_secs(1),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    #[serde(default)]
    interfaces: Vec<String>,
    #[serde(default)]
    reachability: Vec<Target>,
    timeout: Option<String>,
    retries: Option<u32>,
}

impl HealthConfig {
    /// Reads the file; a missing file is the empty configuration.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(ConfigError {
                file: path.to_path_buf(),
                field: String::new(),
                message: format!("cannot read: {e}"),
            }),
        }
    }

    /// Parses the file's text.
    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let err = |field: &str, message: String| ConfigError {
            file: file.to_path_buf(),
            field: field.to_owned(),
            message,
        };
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let raw: RawHealth = serde_saphyr::from_str(text).map_err(|e| {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            err("", first.trim_start_matches("error: ").to_owned())
        })?;
        let mut config = HealthConfig {
            interfaces: raw.interfaces,
            reachability: raw.reachability,
            ..Self::default()
        };
        if let Some(t) = raw.timeout {
            config.timeout = parse_duration(&t)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| err("timeout", format!("{t:?} is not a duration (like 3s)")))?;
        }
        if let Some(r) = raw.retries {
            if r == 0 {
                return Err(err("retries", "0: at least one attempt".into()));
            }
            config.retries = r;
        }
        Ok(config)
    }

    /// The file's path: `OPERATOR_NETHEALTHCHECK_CONFIG`, else the default.
    pub fn path_from_env() -> PathBuf {
        std::env::var_os("OPERATOR_NETHEALTHCHECK_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_FILE))
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// The check, e.g. `interface eth0`, `tcp 192.0.2.1:179`, `frr`.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// Why not (or what was seen).
    pub detail: String,
}

/// Each interface: present and administratively up.
pub async fn check_interfaces(netlink: &Netlink, names: &[String]) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for name in names {
        let (ok, detail) = match netlink.link(name).await {
            Ok(Some(link)) if link.up => (true, "up".to_owned()),
            Ok(Some(_)) => (false, "down".to_owned()),
            Ok(None) => (false, "no such interface".to_owned()),
            Err(e) => (false, e.to_string()),
        };
        out.push(CheckResult {
            name: format!("interface {name}"),
            ok,
            detail,
        });
    }
    out
}

/// A TCP connection to `target`, up to `retries` attempts.
pub async fn check_tcp(target: &Target, config: &HealthConfig) -> CheckResult {
    let address = format!("{}:{}", target.host, target.port);
    let mut last = String::new();
    for attempt in 1..=config.retries {
        match tokio::time::timeout(config.timeout, tokio::net::TcpStream::connect(&address)).await {
            Ok(Ok(_)) => {
                return CheckResult {
                    name: format!("tcp {address}"),
                    ok: true,
                    detail: format!("connected (attempt {attempt})"),
                };
            }
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = format!("no answer within {:?}", config.timeout),
        }
        if attempt < config.retries {
            tokio::time::sleep(config.retry_interval).await;
        }
    }
    CheckResult {
        name: format!("tcp {address}"),
        ok: false,
        detail: format!("{} attempts: {last}", config.retries),
    }
}

/// FRR answers on its vty sockets (`vtysh -c 'show version'`), with
/// `vty_socket` the socket directory (`None`: FRR's default).
pub async fn check_frr(vtysh: &Path, vty_socket: Option<&Path>) -> CheckResult {
    let mut command = Command::new(vtysh);
    if let Some(dir) = vty_socket {
        command.arg("--vty_socket").arg(dir);
    }
    command.args(["-c", "show version"]);
    let output = tokio::task::spawn_blocking(move || command.output()).await;
    let (ok, detail) = match output {
        Ok(Ok(o)) if o.status.success() => (true, "running".to_owned()),
        Ok(Ok(o)) => (
            false,
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .chain(String::from_utf8_lossy(&o.stdout).lines())
                .find(|l| !l.trim().is_empty())
                .unwrap_or("vtysh failed")
                .trim()
                .to_owned(),
        ),
        Ok(Err(e)) => (false, format!("cannot run {}: {e}", vtysh.display())),
        Err(e) => (false, e.to_string()),
    };
    CheckResult {
        name: "frr".into(),
        ok,
        detail,
    }
}

/// The fabric sessions (native mode): `established` of `total` up.
pub fn check_fabric(established: usize, total: usize) -> CheckResult {
    CheckResult {
        name: "fabric".into(),
        ok: established == total,
        detail: format!("{established} of {total} sessions established"),
    }
}

/// Runs the interface and reachability checks of `config`.
pub async fn check_network(netlink: &Netlink, config: &HealthConfig) -> Vec<CheckResult> {
    let mut results = check_interfaces(netlink, &config.interfaces).await;
    for target in &config.reachability {
        results.push(check_tcp(target, config).await);
    }
    results
}

/// Labels of the health metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CheckLabels {
    /// The check's name.
    pub check: String,
}

/// Metrics: each check's last outcome (1 passed, 0 failed) and whether
/// the node counts as ready.
#[derive(Debug, Default, Clone)]
pub struct HealthMetrics {
    /// `podpeer_node_health_check{check}`.
    pub check: Family<CheckLabels, Gauge>,
    /// `podpeer_node_network_ready`.
    pub ready: Gauge,
}

impl HealthMetrics {
    /// Registers the metrics.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "podpeer_node_health_check",
            "Last outcome of each network health check (1 passed, 0 failed)",
            self.check.clone(),
        );
        registry.register(
            "podpeer_node_network_ready",
            "Whether every network health check passed",
            self.ready.clone(),
        );
    }

    /// Records a round of results; whether all passed.
    pub fn record(&self, results: &[CheckResult]) -> bool {
        for r in results {
            self.check
                .get_or_create(&CheckLabels {
                    check: r.name.clone(),
                })
                .set(i64::from(r.ok));
        }
        let all = results.iter().all(|r| r.ok);
        self.ready.set(i64::from(all));
        all
    }
}

/// What tells Kubernetes the node's network is ready: removes taints and
/// sets a Node condition. Implemented over the Kubernetes API by the
/// Kubernetes peer source; [`LogReadiness`] only logs.
pub trait NodeReadiness: Send + Sync {
    /// Removes these taints from the node (those it has).
    fn remove_taints(
        &self,
        taints: &[String],
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
    /// Sets the node's network condition with its reason and message.
    fn set_condition(
        &self,
        ready: bool,
        reason: &str,
        message: &str,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
}

/// A [`NodeReadiness`] for file mode: logs what it would tell Kubernetes.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogReadiness;

impl NodeReadiness for LogReadiness {
    async fn remove_taints(&self, taints: &[String]) -> Result<(), String> {
        tracing::info!(
            ?taints,
            "network ready: taints to remove (no Kubernetes API in file mode)"
        );
        Ok(())
    }
    async fn set_condition(&self, ready: bool, reason: &str, message: &str) -> Result<(), String> {
        tracing::info!(ready, reason, message, "network condition");
        Ok(())
    }
}

/// Turns rounds of results into the node's readiness: the condition follows
/// every round (when it changes); the taints go once, at the first round
/// where all checks pass (a failed removal is tried again next round).
#[derive(Debug)]
pub struct Gate {
    taints: Vec<String>,
    untainted: bool,
    last: Option<(bool, String)>,
}

impl Gate {
    /// A gate removing [`UNINITIALIZED_TAINT`] and `taints`.
    pub fn new(taints: Vec<String>) -> Self {
        let mut all = vec![UNINITIALIZED_TAINT.to_owned()];
        for t in taints {
            if !t.is_empty() && !all.contains(&t) {
                all.push(t);
            }
        }
        Gate {
            taints: all,
            untainted: false,
            last: None,
        }
    }

    /// Applies one round.
    pub async fn apply(
        &mut self,
        results: &[CheckResult],
        node: &impl NodeReadiness,
    ) -> Result<(), String> {
        let failed: Vec<String> = results
            .iter()
            .filter(|r| !r.ok)
            .map(|r| format!("{}: {}", r.name, r.detail))
            .collect();
        let ready = failed.is_empty();
        let (reason, message) = if ready {
            (
                "NetworkChecksPassed",
                format!("{} checks passed", results.len()),
            )
        } else {
            ("NetworkChecksFailed", failed.join("; "))
        };
        if self.last.as_ref() != Some(&(ready, message.clone())) {
            node.set_condition(ready, reason, &message).await?;
            self.last = Some((ready, message));
        }
        if ready && !self.untainted {
            node.remove_taints(&self.taints).await?;
            self.untainted = true;
        }
        Ok(())
    }
}

/// The health check's command line settings.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct HealthOptions {
    /// The network health check file (interfaces, reachability, timeout,
    /// retries); a missing file means no interface or TCP checks.
    #[arg(
        long = "health-config",
        env = "OPERATOR_NETHEALTHCHECK_CONFIG",
        default_value = DEFAULT_FILE
    )]
    pub file: PathBuf,
    /// Taints removed (once) when every check passes, besides
    /// `node.cloudprovider.kubernetes.io/uninitialized` (comma-separated keys).
    #[arg(
        long = "remove-taint",
        env = "PODPEER_REMOVE_TAINTS",
        value_delimiter = ','
    )]
    pub taints: Vec<String>,
    /// How often the checks run.
    #[arg(
        long = "health-interval",
        env = "PODPEER_HEALTH_INTERVAL",
        default_value = "10s",
        value_parser = interval
    )]
    pub interval: Duration,
}

fn interval(s: &str) -> Result<Duration, String> {
    parse_duration(s)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?} is not a duration (like 10s)"))
}

impl Default for HealthOptions {
    fn default() -> Self {
        HealthOptions {
            file: HealthConfig::path_from_env(),
            taints: Vec::new(),
            interval: Duration::from_secs(10),
        }
    }
}

/// The fabric sessions (native mode): each configured fabric neighbor
/// (by address, or by interface when unnumbered) must be Established.
pub fn check_fabric_sessions(
    fabric: &[FabricNeighbor],
    neighbors: &[NeighborStatus],
) -> CheckResult {
    let mut down = Vec::new();
    for f in fabric {
        let seen = neighbors.iter().find(|n| match &f.interface {
            Some(i) => n.interface.as_ref() == Some(i),
            None => n.address == f.address,
        });
        let label = if f.description.is_empty() {
            f.name()
        } else {
            format!("{} ({})", f.description, f.name())
        };
        match seen {
            Some(n) if n.state == State::Established => {}
            Some(n) => down.push(format!("{label} {:?}", n.state)),
            None => down.push(format!("{label} not configured")),
        }
    }
    let mut result = check_fabric(fabric.len() - down.len(), fabric.len());
    if !down.is_empty() {
        result.detail = format!("{}: {}", result.detail, down.join(", "));
    }
    result
}

/// Runs rounds of checks: the file's interface and TCP checks plus the
/// mode's own (FRR running, or the fabric sessions), recorded in the
/// metrics and applied to the node through a [`Gate`].
pub struct Checker {
    config: HealthConfig,
    gate: Gate,
    metrics: HealthMetrics,
    netlink: Result<Option<Netlink>, String>,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("config", &self.config)
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

impl Checker {
    /// A checker for `config`, removing `taints` (besides
    /// [`UNINITIALIZED_TAINT`]) and recording into `metrics`.
    pub fn new(config: HealthConfig, taints: Vec<String>, metrics: HealthMetrics) -> Self {
        // A netlink socket only when there are interfaces to look at.
        let netlink = if config.interfaces.is_empty() {
            Ok(None)
        } else {
            Netlink::connect().map(Some).map_err(|e| e.to_string())
        };
        Checker {
            config,
            gate: Gate::new(taints),
            metrics,
            netlink,
        }
    }

    /// A checker for the file and taints of `options`.
    pub fn load(options: &HealthOptions, metrics: HealthMetrics) -> Result<Self, ConfigError> {
        let config = HealthConfig::load(&options.file)?;
        Ok(Self::new(config, options.taints.clone(), metrics))
    }

    /// One round: the file's checks, then `mode` (FRR or fabric); recorded
    /// and applied to `node`. The results.
    pub async fn round(
        &mut self,
        mode: CheckResult,
        node: &impl NodeReadiness,
    ) -> Vec<CheckResult> {
        let mut results = match &self.netlink {
            Ok(Some(netlink)) => check_network(netlink, &self.config).await,
            Ok(None) | Err(_) => {
                let detail = match &self.netlink {
                    Err(e) => format!("netlink: {e}"),
                    _ => String::new(),
                };
                let mut r: Vec<CheckResult> = self
                    .config
                    .interfaces
                    .iter()
                    .map(|i| CheckResult {
                        name: format!("interface {i}"),
                        ok: false,
                        detail: detail.clone(),
                    })
                    .collect();
                for target in &self.config.reachability {
                    r.push(check_tcp(target, &self.config).await);
                }
                r
            }
        };
        results.push(mode);
        self.metrics.record(&results);
        if let Err(e) = self.gate.apply(&results, node).await {
            tracing::warn!("node readiness: {e}");
        }
        results
    }

    /// Runs a round every `interval` (the first at once) with `mode` giving
    /// the mode's own check, forever.
    pub async fn run<R, F, Fut>(mut self, interval: Duration, node: R, mut mode: F)
    where
        R: NodeReadiness,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = CheckResult>,
    {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let m = mode().await;
            let results = self.round(m, &node).await;
            for r in results.iter().filter(|r| !r.ok) {
                tracing::debug!(check = r.name, detail = r.detail, "health check failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;

    use super::*;

    fn parse(text: &str) -> Result<HealthConfig, String> {
        HealthConfig::parse(text, Path::new("hc.yaml")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_seed_format_reads_with_defaults() {
        let c = parse("interfaces:\n- eth0\nreachability:\n- host: \"host.domain.com\"\n  port: 80\n- host: \"192.168.1.100\"\n  port: 8400\n").unwrap();
        assert_eq!(c.interfaces, vec!["eth0"]);
        assert_eq!(c.reachability.len(), 2);
        assert_eq!(c.reachability[1].port, 8400);
        assert_eq!((c.timeout, c.retries), (Duration::from_secs(3), 3));
        let c = parse("timeout: 5s\nretries: 10\n").unwrap();
        assert_eq!((c.timeout, c.retries), (Duration::from_secs(5), 10));
        assert_eq!(parse("").unwrap(), HealthConfig::default());
        assert_eq!(
            parse("timeout: soon\n").unwrap_err(),
            "timeout: \"soon\" is not a duration (like 3s) (hc.yaml)"
        );
        assert_eq!(
            parse("retries: 0\n").unwrap_err(),
            "retries: 0: at least one attempt (hc.yaml)"
        );
        assert!(parse("interfacez: []\n").is_err());
        let missing = HealthConfig::load(Path::new("/nonexistent/hc.yaml")).unwrap();
        assert_eq!(missing, HealthConfig::default());
    }

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl NodeReadiness for Recorder {
        async fn remove_taints(&self, taints: &[String]) -> Result<(), String> {
            self.0
                .lock()
                .unwrap()
                .push(format!("remove {}", taints.join(",")));
            Ok(())
        }
        async fn set_condition(
            &self,
            ready: bool,
            reason: &str,
            message: &str,
        ) -> Result<(), String> {
            self.0
                .lock()
                .unwrap()
                .push(format!("condition {ready} {reason} {message}"));
            Ok(())
        }
    }

    fn result(name: &str, ok: bool) -> CheckResult {
        CheckResult {
            name: name.into(),
            ok,
            detail: if ok { "up" } else { "down" }.into(),
        }
    }

    #[tokio::test]
    async fn taints_go_once_and_the_condition_follows_changes() {
        let node = Recorder::default();
        let mut gate = Gate::new(vec![]);
        let bad = [result("interface eth0", false), result("frr", true)];
        let good = [result("interface eth0", true), result("frr", true)];
        gate.apply(&bad, &node).await.unwrap();
        gate.apply(&bad, &node).await.unwrap();
        gate.apply(&good, &node).await.unwrap();
        gate.apply(&good, &node).await.unwrap();
        gate.apply(&bad, &node).await.unwrap();
        gate.apply(&good, &node).await.unwrap();
        assert_eq!(
            *node.0.lock().unwrap(),
            vec![
                "condition false NetworkChecksFailed interface eth0: down",
                "condition true NetworkChecksPassed 2 checks passed",
                "remove node.cloudprovider.kubernetes.io/uninitialized",
                "condition false NetworkChecksFailed interface eth0: down",
                "condition true NetworkChecksPassed 2 checks passed",
            ]
        );
    }

    #[test]
    fn metrics_per_check_and_ready() {
        let m = HealthMetrics::default();
        let mut registry = Registry::default();
        m.register(&mut registry);
        assert!(!m.record(&[result("frr", true), result("tcp a:1", false)]));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("podpeer_node_health_check{check=\"frr\"} 1"),
            "{text}"
        );
        assert!(text.contains("podpeer_node_health_check{check=\"tcp a:1\"} 0"));
        assert!(text.contains("podpeer_node_network_ready 0"));
        assert!(m.record(&[result("frr", true)]));
        assert_eq!(m.ready.get(), 1);
    }

    #[test]
    fn fabric_is_up_when_all_sessions_are() {
        assert!(check_fabric(2, 2).ok);
        let down = check_fabric(1, 2);
        assert!(!down.ok);
        assert_eq!(down.detail, "1 of 2 sessions established");
    }
}
