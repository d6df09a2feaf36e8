//! podpeer-sidecar: announces a network function's VIPs to its node over BGP.
//!
//! `podpeer-sidecar [run] [OPTIONS]` runs the sidecar; `podpeer-sidecar status`
//! prints a running sidecar's sessions and VIPs. Exit codes: 0 done, 1
//! failure, 2 bad configuration.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bgp_core::speaker::Password;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use podpeer_sidecar::config::{self, ConfigError, Layer, Origin};
use podpeer_sidecar::daemon::{self, RunError};
use podpeer_sidecar::status;

/// Announces this pod's VIPs to its node over BGP, each gated by an optional
/// health check, and withdraws them before the pod goes away.
///
/// Settings come from flags, PODPEER_* environment variables and a YAML file
/// (--config), in that order of precedence, then the defaults shown.
#[derive(Parser)]
#[command(
    name = "podpeer-sidecar",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sidecar (what happens without a subcommand).
    Run(Box<RunArgs>),
    /// Show a running sidecar's sessions and VIPs.
    Status(StatusArgs),
}

/// The sidecar's settings. Each help text ends in the default; the `[env: ]`
/// names are the environment variables.
#[derive(Args, Debug)]
struct RunArgs {
    /// YAML configuration file (camelCase keys, as the flags without dashes).
    #[arg(short, long, env = "PODPEER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// The node to peer with: `auto` (one session per default gateway of the
    /// pod, IPv4 and IPv6), `unnumbered[:IFACE]` (BGP unnumbered: the node
    /// learned on IFACE) or an IP address. [default: auto]
    #[arg(long, env = "PODPEER_NODE", value_name = "NODE")]
    node: Option<String>,

    /// The node's AS: `external` (any AS but ours) or a number.
    /// [default: external]
    #[arg(long, env = "PODPEER_NODE_AS", value_name = "AS")]
    node_as: Option<String>,

    /// Our AS. [default: 4200000001]
    #[arg(long, env = "PODPEER_LOCAL_AS", value_name = "AS")]
    local_as: Option<String>,

    /// Our BGP identifier: `auto` (the pod's IPv4 address toward the node) or
    /// an IPv4 address. [default: auto]
    #[arg(long, env = "PODPEER_ROUTER_ID", value_name = "ID")]
    router_id: Option<String>,

    /// The node's BGP port. [default: 179]
    #[arg(long, env = "PODPEER_PORT", value_name = "PORT")]
    port: Option<String>,

    /// The BGP hold time we propose (0, or 3s to 65535s). [default: 9s]
    #[arg(long, env = "PODPEER_HOLD_TIME", value_name = "DURATION")]
    hold_time: Option<String>,

    /// The interface the VIPs are added to with --add-vips. [default: lo]
    #[arg(long, env = "PODPEER_VIP_INTERFACE", value_name = "IFACE")]
    vip_interface: Option<String>,

    /// Add the VIPs to --vip-interface on start (so the pod answers for them)
    /// and remove on exit those it added (one already there stays); needs
    /// NET_ADMIN. [default: false]
    #[arg(long, env = "PODPEER_ADD_VIPS", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    add_vips: Option<String>,

    /// On SIGTERM, time between marking (graceful) or withdrawing the VIPs
    /// and closing the session. [default: 5s]
    #[arg(long, env = "PODPEER_DRAIN_TIME", value_name = "DURATION")]
    drain_time: Option<String>,

    /// Address of /healthz, /readyz, /metrics and /status.
    /// [default: 0.0.0.0:9179]
    #[arg(long, env = "PODPEER_HTTP", value_name = "ADDR")]
    http: Option<String>,

    /// What SIGTERM does with the VIPs: graceful (RFC 8326: announce them
    /// again with the GRACEFUL_SHUTDOWN community so the node moves traffic
    /// to other pods, drain, close the session) or withdraw (withdraw, drain,
    /// close). [default: graceful]
    #[arg(long, env = "PODPEER_SHUTDOWN", value_name = "MODE")]
    shutdown: Option<String>,

    /// TCP-MD5 key (RFC 2385) of the sessions with the node, as the node's
    /// pod group has it: 1 to 80 bytes, no control characters. Prefer
    /// --password-file (a flag shows in the process list); not with it.
    /// [default: none]
    #[arg(long, env = "PODPEER_PASSWORD", value_name = "KEY", hide_env_values = true, value_parser = secret)]
    password: Option<Password>,

    /// File holding the TCP-MD5 key (a mounted Secret), read on start, one
    /// trailing newline dropped; in the config file, relative to its
    /// directory. Not with --password. [default: none]
    #[arg(long, env = "PODPEER_PASSWORD_FILE", value_name = "FILE")]
    password_file: Option<String>,

    /// GTSM (RFC 5082), as the node's pod group has it: the node is at most
    /// this many hops away (1 to 254; 1: directly connected). We send with
    /// TTL 255 and drop what arrives with a TTL below 256 - hops.
    /// [default: none]
    #[arg(long, env = "PODPEER_TTL_SECURITY_HOPS", value_name = "HOPS")]
    ttl_security_hops: Option<String>,

    /// A VIP: PREFIX[,check=URL][,expect=STATUS][,interval=2s][,timeout=1s][,rise=2][,fall=2][,med=N][,community=ASN:VALUE]...
    /// Repeat for more;
    /// the list replaces the file's (in the environment, separate with `;`).
    /// Check URLs: tcp://HOST:PORT, http://HOST:PORT/PATH (expects 200),
    /// exec:COMMAND ARGS (exit 0 passes), file:PATH (must exist). A checked VIP
    /// is announced after its first pass, then needs `rise` passes to come
    /// back after `fall` failures took it down. [default: none]
    #[arg(
        long = "vip",
        env = "PODPEER_VIPS",
        value_name = "SPEC",
        value_delimiter = ';'
    )]
    vips: Vec<String>,

    /// Check the configuration, print it as YAML and exit.
    #[arg(long)]
    check_config: bool,
}

#[derive(Args, Debug)]
struct StatusArgs {
    /// The sidecar's HTTP address. [default: PODPEER_HTTP when set (an
    /// unspecified address read as loopback), else 127.0.0.1:9179]
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// Print the JSON document as the sidecar sent it.
    #[arg(long)]
    json: bool,
}

/// The flags given on the command line (not those clap took from the
/// environment: the environment layer reads those itself).
fn flag_layer(m: &ArgMatches, args: &RunArgs) -> Result<Layer, ConfigError> {
    let mut layer = Layer::default();
    let given = |id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
    let scalars = [
        ("node", "node", &args.node),
        ("nodeAs", "node_as", &args.node_as),
        ("localAs", "local_as", &args.local_as),
        ("routerId", "router_id", &args.router_id),
        ("port", "port", &args.port),
        ("holdTime", "hold_time", &args.hold_time),
        ("vipInterface", "vip_interface", &args.vip_interface),
        ("addVips", "add_vips", &args.add_vips),
        ("drainTime", "drain_time", &args.drain_time),
        ("http", "http", &args.http),
        ("shutdown", "shutdown", &args.shutdown),
        ("passwordFile", "password_file", &args.password_file),
        (
            "ttlSecurityHops",
            "ttl_security_hops",
            &args.ttl_security_hops,
        ),
    ];
    for (name, id, value) in scalars {
        if let Some(v) = value
            && given(id)
        {
            let flag = config::key(name).map_or(name, |k| k.flag);
            layer.set(name, v.clone(), Origin::Flag(flag.into()));
        }
    }
    if let Some(p) = &args.password
        && given("password")
    {
        layer.set("password", p.expose(), Origin::Flag("--password".into()));
    }
    if given("vips") {
        layer.set_vip_specs(&args.vips, Origin::Flag("--vip".into()))?;
    }
    Ok(layer)
}

/// Keeps `--password` as a [`Password`], so that `RunArgs`' `Debug` hides it.
fn secret(s: &str) -> Result<Password, std::convert::Infallible> {
    Ok(Password::from(s))
}

fn load(m: &ArgMatches, args: &RunArgs) -> Result<config::Config, ConfigError> {
    let flags = flag_layer(m, args)?;
    let env = Layer::from_env(|k| std::env::var(k).ok())?;
    let file = match &args.config {
        Some(path) => Layer::from_file(path)?,
        None => Layer::default(),
    };
    config::resolve(&[flags, env, file])
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Some(Command::Status(args)) => status_command(&args),
        Some(Command::Run(args)) => {
            let m = matches.subcommand_matches("run").unwrap_or(&matches);
            run_command(m, &args)
        }
        None => run_command(&matches, &cli.run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let config_error = e.downcast_ref::<ConfigError>().is_some()
                || matches!(e.downcast_ref::<RunError>(), Some(RunError::Config(_)));
            eprintln!("podpeer-sidecar: {e:#}");
            if config_error {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn run_command(m: &ArgMatches, args: &RunArgs) -> anyhow::Result<()> {
    let config = load(m, args)?;
    if args.check_config {
        print!("{}", config::to_yaml(&config));
        return Ok(());
    }
    init_logging();
    tracing::info!(
        "podpeer-sidecar {} (bgp-core {}) starting: node {}, {} VIP(s)",
        daemon::VERSION,
        bgp_core::VERSION,
        config.node,
        config.vips.len()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(daemon::run(config))?;
    Ok(())
}

fn status_command(args: &StatusArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let addr = args
        .http
        .clone()
        .unwrap_or_else(|| status::local_address(std::env::var("PODPEER_HTTP").ok().as_deref()));
    let (doc, body) = runtime.block_on(status::fetch(&addr))?;
    if args.json {
        println!("{}", String::from_utf8_lossy(&body));
    } else {
        print!("{}", status::render(&doc));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every setting has a flag and an environment variable matching the
    /// config table, and its help names the default.
    #[test]
    fn help_names_every_env_and_default() {
        let cmd = Cli::command();
        for k in config::KEYS {
            let long = k.flag.trim_start_matches("--");
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .unwrap_or_else(|| panic!("no flag {}", k.flag));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(k.env),
                "{}",
                k.flag
            );
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(
                help.contains(&format!("[default: {}]", k.default)),
                "{} help lacks its default: {help}",
                k.flag
            );
        }
        Cli::command().debug_assert();
    }
}
