//! podpeer-node: the per-node BGP speaker for pods (see the library docs).
//!
//! Exit codes: 0 done, 1 runtime failure, 2 bad configuration or usage.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use podpeer_node::cli;
use podpeer_node::config::{NodeConfig, parse_duration};
use podpeer_node::fib::RouteView;
use podpeer_node::status::{PeerView, StatusView};

/// The per-node BGP speaker for pods: admits pods of configured groups as
/// peers, accepts only what each group may announce, installs it into the
/// kernel (ECMP, per VRF/table) and announces it to the fabric.
#[derive(Parser)]
#[command(name = "podpeer-node", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Run(RunArgs),
    /// Validate the configuration file and exit (0 valid, 2 not).
    Check(RunArgs),
    /// The node at a glance: AS, router id, peers up, routes per table,
    /// rejections by reason.
    Status(QueryArgs),
    /// One line per BGP neighbor (pods and fabric), like `show bgp summary`.
    Peers(QueryArgs),
    /// The routes per table with their next hops (pods), like `show ip route`.
    Routes(QueryArgs),
    /// Print the CustomResourceDefinitions (PodPeering, NodeBGPConfig) as YAML.
    Crds,
}

#[derive(Args, Clone)]
struct RunArgs {
    /// The node configuration file (YAML).
    #[arg(
        long,
        short,
        env = "PODPEER_NODE_CONFIG",
        default_value = "/etc/podpeer/node.yaml"
    )]
    config: PathBuf,
    /// The network operator file (`vnimap`, `skipVRFConfig`, `bpfInterfaces`,
    /// provisioning settings), e.g. `/opt/network-operator/config.yaml`.
    #[arg(long, env = "OPERATOR_CONFIG")]
    operator_config: Option<PathBuf>,
    /// FRR mode: the node's FRR template (with `#++{{.VRFs}}` etc. hints);
    /// FRR then holds the BGP sessions. With `--peer-source kubernetes` the
    /// node's setup still comes from `--config`, the VRFRouteConfigurations
    /// from the cluster.
    #[arg(long, env = "PODPEER_FRR_TEMPLATE")]
    frr_template: Option<PathBuf>,
    /// FRR mode: the configuration file FRR loads.
    #[arg(long, env = "PODPEER_FRR_CONFIG", default_value = "/etc/frr/frr.conf")]
    frr_config: PathBuf,
    /// FRR mode: a YAML list of VRFRouteConfigurations.
    #[arg(long, env = "PODPEER_ROUTE_CONFIGS")]
    route_configs: Option<PathBuf>,
    /// FRR mode: changes within this window become one reload.
    #[arg(long, env = "PODPEER_FRR_RELOAD_WINDOW", default_value = "30s", value_parser = duration)]
    frr_reload_window: Duration,
    /// FRR mode: FRR's vty socket directory (default: FRR's own).
    #[arg(long, env = "PODPEER_FRR_VTY_SOCKET")]
    frr_vty_socket: Option<PathBuf>,
    /// FRR mode: the D-Bus address of systemd (default: the system bus).
    #[arg(long, env = "PODPEER_DBUS_ADDRESS")]
    dbus_address: Option<String>,
    /// Log filter (tracing env-filter syntax, e.g. `info,bgp_core=debug`).
    #[arg(long, env = "PODPEER_LOG", default_value = "info")]
    log: String,
    #[command(flatten)]
    kubernetes: podpeer_node::k8s::Options,
}

#[derive(Args, Clone)]
struct QueryArgs {
    /// The daemon's HTTP address (`host:port` or `http://host:port`).
    #[arg(long, env = "PODPEER_NODE_HTTP", default_value = "127.0.0.1:9180")]
    http: String,
    /// Print the daemon's JSON as it is.
    #[arg(long)]
    json: bool,
    /// How long to wait for the daemon.
    #[arg(long, default_value = "5s", value_parser = duration)]
    timeout: Duration,
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).ok_or_else(|| format!("{s:?} is not a duration (like 5s, 500ms)"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => run(cli.run),
        Some(Command::Run(a)) => run(a),
        Some(Command::Check(a)) => {
            match NodeConfig::load(&a.config).and_then(|c| with_operator(c, &a)) {
                Ok(c) => {
                    println!(
                        "{}: valid ({} fabric neighbors, {} pod groups, {} VRFs)",
                        a.config.display(),
                        c.fabric.len(),
                        c.pod_groups.len(),
                        c.vrfs.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("podpeer-node: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Some(Command::Status(q)) => query(q, "/status", |body| {
            cli::parse::<StatusView>("/status", body).map(|s| cli::render_status(&s))
        }),
        Some(Command::Peers(q)) => query(q, "/peers", |body| {
            cli::parse::<Vec<PeerView>>("/peers", body).map(|p| cli::render_peers(&p))
        }),
        Some(Command::Routes(q)) => query(q, "/routes", |body| {
            cli::parse::<Vec<RouteView>>("/routes", body).map(|r| cli::render_routes(&r))
        }),
        Some(Command::Crds) => match podpeer_node::k8s::crd::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("podpeer-node: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The node configuration with the operator file attached, when given,
/// and FRR mode when a template is given.
fn with_operator(
    mut config: NodeConfig,
    args: &RunArgs,
) -> Result<NodeConfig, podpeer_node::config::ConfigError> {
    if let Some(path) = &args.operator_config {
        podpeer_node::provision::attach(&mut config, path)?;
    }
    config.health = args.kubernetes.health.clone();
    if let Some(template) = &args.frr_template {
        let mut mode = podpeer_node::frr::driver::FrrMode::new(template.clone());
        mode.output = args.frr_config.clone();
        mode.route_configs = args.route_configs.clone();
        mode.window = args.frr_reload_window;
        mode.paths.vty_socket = args.frr_vty_socket.clone();
        mode.bus = args.dbus_address.clone();
        config.frr = Some(mode);
    }
    Ok(config)
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn run(args: RunArgs) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let kubernetes = args.kubernetes.peer_source == podpeer_node::k8s::PeerSourceKind::Kubernetes;
    if kubernetes && args.frr_template.is_none() {
        return finish(
            runtime()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(podpeer_node::k8s::run(args.kubernetes))),
        );
    }
    let config = match NodeConfig::load(&args.config) {
        Ok(c) => match with_operator(c, &args) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("podpeer-node: {e}");
                return ExitCode::from(2);
            }
        },
        Err(e) => {
            eprintln!("podpeer-node: {e}");
            return ExitCode::from(2);
        }
    };
    if kubernetes {
        // FRR mode with the cluster's VRFRouteConfigurations.
        return finish(
            runtime()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(podpeer_node::k8s::run_frr(args.kubernetes, config))),
        );
    }
    finish(
        runtime()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(podpeer_node::daemon::run(config))),
    )
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("podpeer-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn query(
    q: QueryArgs,
    path: &str,
    render: impl FnOnce(&str) -> Result<String, cli::QueryError>,
) -> ExitCode {
    let result = runtime()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(cli::fetch(&q.http, path, q.timeout))
                .map_err(|e| e.to_string())
        })
        .and_then(|body| {
            if q.json {
                Ok(body)
            } else {
                render(&body).map_err(|e| e.to_string())
            }
        });
    match result {
        Ok(text) => {
            print!("{text}");
            if q.json && !text.ends_with('\n') {
                println!();
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("podpeer-node: {e}");
            ExitCode::FAILURE
        }
    }
}
