//! The sidecar's configuration: a YAML file, `PODPEER_*` environment variables
//! and command-line flags, merged with the precedence flags > environment >
//! file > defaults, then validated into a [`Config`].
//!
//! Every value is carried with its [`Origin`] until it is validated, so that a
//! bad value is reported as, for example,
//! `config file "/etc/podpeer/sidecar.yaml": vips[1].check.interval: invalid
//! duration "2x" (use a number with a unit: 500ms, 2s, 1m, 1h)`.
//!
//! The VIP list is taken whole from the highest layer that has one: `--vip`
//! flags replace `PODPEER_VIPS`, which replaces the file's `vips`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use bgp_core::fsm::RemoteAs;
use bgp_core::speaker::Password;
use bgp_core::wire::Community;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The private 4-byte AS a sidecar uses unless told otherwise.
pub const DEFAULT_LOCAL_AS: u32 = 4_200_000_001;
/// The environment variable naming the YAML file.
pub const CONFIG_ENV: &str = "PODPEER_CONFIG";
/// The environment variable holding VIP specs (`;` or newline separated).
pub const VIPS_ENV: &str = "PODPEER_VIPS";
/// The default interval between two runs of a health check.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
/// The default time a health check may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// The default number of passes that make an unhealthy VIP healthy.
pub const DEFAULT_RISE: u32 = 2;
/// The default number of failures that make a healthy VIP unhealthy.
pub const DEFAULT_FALL: u32 = 2;
/// The HTTP status an HTTP check expects unless told otherwise.
pub const DEFAULT_EXPECT_STATUS: u16 = 200;
/// The longest TCP-MD5 key the kernel takes (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_PASSWORD_LEN: usize = 80;

/// One scalar setting: its YAML key, flag, environment variable and default.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The YAML key (camelCase).
    pub name: &'static str,
    /// The command-line flag.
    pub flag: &'static str,
    /// The environment variable.
    pub env: &'static str,
    /// The default, as it would be written.
    pub default: &'static str,
}

macro_rules! keys {
    ($($name:literal, $flag:literal, $env:literal, $default:literal;)*) => {
        /// Every scalar setting (the VIP list is separate).
        pub const KEYS: &[Key] = &[$(Key { name: $name, flag: $flag, env: $env, default: $default }),*];
    };
}

keys! {
    "node", "--node", "PODPEER_NODE", "auto";
    "nodeAs", "--node-as", "PODPEER_NODE_AS", "external";
    "localAs", "--local-as", "PODPEER_LOCAL_AS", "4200000001";
    "routerId", "--router-id", "PODPEER_ROUTER_ID", "auto";
    "port", "--port", "PODPEER_PORT", "179";
    "holdTime", "--hold-time", "PODPEER_HOLD_TIME", "9s";
    "vipInterface", "--vip-interface", "PODPEER_VIP_INTERFACE", "lo";
    "addVips", "--add-vips", "PODPEER_ADD_VIPS", "false";
    "drainTime", "--drain-time", "PODPEER_DRAIN_TIME", "5s";
    "http", "--http", "PODPEER_HTTP", "0.0.0.0:9179";
    "shutdown", "--shutdown", "PODPEER_SHUTDOWN", "graceful";
    "password", "--password", "PODPEER_PASSWORD", "none";
    "passwordFile", "--password-file", "PODPEER_PASSWORD_FILE", "none";
    "ttlSecurityHops", "--ttl-security-hops", "PODPEER_TTL_SECURITY_HOPS", "none";
}

/// The setting `name` (one of [`KEYS`]).
pub fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The YAML file at this path.
    File(PathBuf),
    /// This environment variable.
    Env(String),
    /// This command-line flag.
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File(p) => write!(f, "config file {:?}", p.display().to_string()),
            Self::Env(v) => write!(f, "environment variable {v}"),
            Self::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A configuration error: where, which field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Where the bad value came from.
    pub origin: Origin,
    /// The field, as a path of YAML keys (`vips[0].check.interval`); empty when
    /// the whole source is at fault (a file that does not parse).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn new(origin: &Origin, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            origin: origin.clone(),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: {}: {}", self.origin, self.field, self.message)
        }
    }
}

/// How to find the node to peer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeSpec {
    /// The pod's default gateways (one session per gateway: dual-stack pods
    /// peer twice).
    Auto,
    /// BGP unnumbered on an interface: the node is learned from its Router
    /// Advertisements; IPv4 VIPs go with our link-local next hop (RFC 8950).
    Unnumbered(String),
    /// This address.
    Address(IpAddr),
}

impl fmt::Display for NodeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Unnumbered(i) => write!(f, "unnumbered:{i}"),
            Self::Address(a) => write!(f, "{a}"),
        }
    }
}

impl FromStr for NodeSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "auto" {
            return Ok(Self::Auto);
        }
        if s == "unnumbered" {
            return Ok(Self::Unnumbered("eth0".into()));
        }
        if let Some(iface) = s.strip_prefix("unnumbered:") {
            check_ifname(iface)?;
            return Ok(Self::Unnumbered(iface.into()));
        }
        s.parse().map(Self::Address).map_err(|_| {
            format!("invalid node {s:?}: expected auto, unnumbered[:IFACE] or an IP address")
        })
    }
}

/// The node's AS as we accept it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAs {
    /// Any AS other than ours.
    External,
    /// Exactly this AS.
    Number(u32),
}

impl PeerAs {
    /// The speaker's form.
    pub fn remote_as(self) -> RemoteAs {
        match self {
            Self::External => RemoteAs::External,
            Self::Number(n) => RemoteAs::Number(n),
        }
    }
}

impl fmt::Display for PeerAs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::External => f.write_str("external"),
            Self::Number(n) => write!(f, "{n}"),
        }
    }
}

/// What SIGTERM does with the VIPs before the session closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// RFC 8326: announce them again with the GRACEFUL_SHUTDOWN community
    /// (the node lowers their preference to 0 and moves traffic to other
    /// pods announcing the same VIPs, while this one still serves what
    /// arrives), wait the drain time, then close the session (which withdraws
    /// them).
    Graceful,
    /// Withdraw them, wait the drain time, then close the session.
    Withdraw,
}

impl fmt::Display for ShutdownMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Graceful => "graceful",
            Self::Withdraw => "withdraw",
        })
    }
}

impl FromStr for ShutdownMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "graceful" => Ok(Self::Graceful),
            "withdraw" => Ok(Self::Withdraw),
            other => Err(format!(
                "invalid shutdown mode {other:?}: expected graceful or withdraw"
            )),
        }
    }
}

/// What a health check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// Connect over TCP to `host:port`.
    Tcp(String),
    /// GET the URL and expect the status.
    Http {
        /// `http://host[:port]/path`.
        url: String,
        /// The status that passes.
        expect: u16,
    },
    /// Run the command; exit status 0 passes. Killed on timeout.
    Exec(Vec<String>),
    /// The file must exist.
    File(PathBuf),
}

impl fmt::Display for CheckKind {
    /// The check URL form: `tcp://h:p`, `http://...`, `exec:cmd args`, `file:/p`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(t) => write!(f, "tcp://{t}"),
            Self::Http { url, expect } if *expect == DEFAULT_EXPECT_STATUS => f.write_str(url),
            Self::Http { url, expect } => write!(f, "{url} (expect {expect})"),
            Self::Exec(argv) => write!(f, "exec:{}", argv.join(" ")),
            Self::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

/// A health check with its timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What it does.
    pub kind: CheckKind,
    /// Time between the starts of two runs.
    pub interval: Duration,
    /// Longest a run may take; a run that takes longer fails.
    pub timeout: Duration,
    /// Consecutive passes that make an unhealthy VIP healthy.
    pub rise: u32,
    /// Consecutive failures that make a healthy VIP unhealthy.
    pub fall: u32,
}

/// One VIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vip {
    /// The prefix announced (any length, either family).
    pub prefix: IpNet,
    /// Communities attached.
    pub communities: Vec<Community>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// The health check; without one the VIP is always announced.
    pub check: Option<Check>,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The node to peer with.
    pub node: NodeSpec,
    /// The node's AS.
    pub node_as: PeerAs,
    /// Our AS.
    pub local_as: u32,
    /// Our BGP identifier; `None` picks the pod's IPv4 address toward the node.
    pub router_id: Option<Ipv4Addr>,
    /// The node's BGP port.
    pub port: u16,
    /// The hold time we propose (keepalives every third of it).
    pub hold_time: Duration,
    /// The interface the VIPs are added to when `add_vips` is set.
    pub vip_interface: String,
    /// Add the VIPs to `vip_interface` on start, remove on exit those it
    /// added (an address that was there already stays).
    pub add_vips: bool,
    /// Time between marking (or withdrawing) the VIPs and closing the
    /// session on SIGTERM.
    pub drain_time: Duration,
    /// Address of the HTTP endpoints.
    pub http: SocketAddr,
    /// The VIPs.
    pub vips: Vec<Vip>,
    /// What SIGTERM does with the VIPs.
    pub shutdown: ShutdownMode,
    /// The TCP-MD5 key (RFC 2385) of every session with the node, from
    /// `password` or read from `passwordFile`. Its `Debug` hides it.
    pub password: Option<Password>,
    /// The file the key was read from (what `--check-config` shows).
    pub password_file: Option<PathBuf>,
    /// GTSM (RFC 5082): the node is at most this many hops away (1 to 254);
    /// we send with TTL 255 and drop what arrives with less than 256 - hops.
    pub ttl_security_hops: Option<u8>,
}

/// A YAML scalar of any type (string, number, boolean), kept as text so that
/// the validation owns every message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The command of an exec check as written: a list, or one string split like
/// a shell would (quotes respected, no expansion).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RawExec {
    /// `exec: ["/bin/sh", "-c", "test -e /tmp/ok"]`
    List(Vec<Scalar>),
    /// `exec: /usr/local/bin/probe --fast`
    Line(Scalar),
}

/// A check as written (YAML keys), before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCheck {
    /// `host:port`.
    pub tcp: Option<Scalar>,
    /// `http://host[:port]/path`.
    pub http: Option<Scalar>,
    /// The status an HTTP check expects.
    pub expect_status: Option<Scalar>,
    /// The command of an exec check.
    pub exec: Option<RawExec>,
    /// The file that must exist.
    pub file: Option<Scalar>,
    /// Interval.
    pub interval: Option<Scalar>,
    /// Timeout.
    pub timeout: Option<Scalar>,
    /// Rise count.
    pub rise: Option<Scalar>,
    /// Fall count.
    pub fall: Option<Scalar>,
}

/// A VIP as written (YAML keys or a `--vip` spec), before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawVip {
    /// The prefix.
    pub prefix: Option<Scalar>,
    /// Communities.
    pub communities: Option<Vec<Scalar>>,
    /// MED.
    pub med: Option<Scalar>,
    /// The check.
    pub check: Option<RawCheck>,
}

/// The YAML file's shape (no `Debug`: it holds the password as written).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawFile {
    node: Option<Scalar>,
    node_as: Option<Scalar>,
    local_as: Option<Scalar>,
    router_id: Option<Scalar>,
    port: Option<Scalar>,
    hold_time: Option<Scalar>,
    vip_interface: Option<Scalar>,
    add_vips: Option<Scalar>,
    drain_time: Option<Scalar>,
    http: Option<Scalar>,
    vips: Option<Vec<RawVip>>,
    shutdown: Option<Scalar>,
    password: Option<Scalar>,
    password_file: Option<Scalar>,
    ttl_security_hops: Option<Scalar>,
}

/// The values one source gives, each with where it came from. Its `Debug`
/// hides the password.
#[derive(Clone, Default)]
pub struct Layer {
    values: BTreeMap<&'static str, (String, Origin)>,
    vips: Option<(Vec<RawVip>, Origin)>,
}

impl fmt::Debug for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values: BTreeMap<&str, (&str, &Origin)> = self
            .values
            .iter()
            .map(|(name, (v, origin))| {
                let v = if *name == "password" {
                    "<redacted>"
                } else {
                    v.as_str()
                };
                (*name, (v, origin))
            })
            .collect();
        f.debug_struct("Layer")
            .field("values", &values)
            .field("vips", &self.vips)
            .finish()
    }
}

impl Layer {
    /// Sets the scalar `name` (one of [`KEYS`]); unknown names are ignored.
    pub fn set(&mut self, name: &str, value: impl Into<String>, origin: Origin) {
        if let Some(k) = key(name) {
            self.values.insert(k.name, (value.into(), origin));
        }
    }

    /// Sets the VIP list from `--vip` style specs.
    pub fn set_vip_specs(&mut self, specs: &[String], origin: Origin) -> Result<(), ConfigError> {
        let vips = specs
            .iter()
            .enumerate()
            .map(|(i, s)| parse_vip_spec(s).map_err(|m| ConfigError::new(&origin, vip_field(i), m)))
            .collect::<Result<_, _>>()?;
        self.vips = Some((vips, origin));
        Ok(())
    }

    /// The layer of a YAML file's text (`path` names it in errors).
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let origin = Origin::File(path.to_owned());
        let raw: RawFile = if text.trim().is_empty() {
            RawFile::default()
        } else {
            // Without the snippet of the file it would add: any line of it
            // may hold the password (a misspelt key too).
            serde_saphyr::from_str(text)
                .map_err(|e| yaml_error(&origin, &e.without_snippet().to_string()))?
        };
        let mut layer = Self::default();
        let scalars = [
            ("node", raw.node),
            ("nodeAs", raw.node_as),
            ("localAs", raw.local_as),
            ("routerId", raw.router_id),
            ("port", raw.port),
            ("holdTime", raw.hold_time),
            ("vipInterface", raw.vip_interface),
            ("addVips", raw.add_vips),
            ("drainTime", raw.drain_time),
            ("http", raw.http),
            ("shutdown", raw.shutdown),
            ("password", raw.password),
            ("passwordFile", raw.password_file),
            ("ttlSecurityHops", raw.ttl_security_hops),
        ];
        for (name, value) in scalars {
            if let Some(Scalar(v)) = value {
                layer.set(name, v, origin.clone());
            }
        }
        layer.vips = raw.vips.map(|v| (v, origin));
        Ok(layer)
    }

    /// Reads a YAML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let origin = Origin::File(path.to_owned());
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&origin, "", format!("cannot read it: {e}")))?;
        Self::from_yaml(&text, path)
    }

    /// The layer of the `PODPEER_*` environment variables `lookup` finds.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut layer = Self::default();
        for k in KEYS {
            if let Some(v) = lookup(k.env) {
                layer.set(k.name, v, Origin::Env(k.env.into()));
            }
        }
        if let Some(v) = lookup(VIPS_ENV) {
            let specs: Vec<String> = v
                .split([';', '\n'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            layer.set_vip_specs(&specs, Origin::Env(VIPS_ENV.into()))?;
        }
        Ok(layer)
    }
}

/// A YAML error, with the key serde named (`unknown field `prot``) pulled out
/// as the field when there is one.
fn yaml_error(origin: &Origin, message: &str) -> ConfigError {
    let message = message.trim().replace('\n', " ");
    let field = message
        .split_once("unknown field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(f, _)| f.to_owned())
        .unwrap_or_default();
    ConfigError::new(origin, field, message)
}

fn vip_field(i: usize) -> String {
    format!("vips[{i}]")
}

/// Merges layers (the first that has a value wins; defaults last) and
/// validates the result.
pub fn resolve(layers: &[Layer]) -> Result<Config, ConfigError> {
    let node = field(layers, "node", |v| v.parse::<NodeSpec>())?;
    let node_as = field(layers, "nodeAs", parse_peer_as)?;
    let local_as = field(layers, "localAs", parse_asn)?;
    let router_id = field(layers, "routerId", parse_router_id)?;
    let port = field(layers, "port", |v| match v.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("invalid port {v:?}: expected 1-65535")),
        Ok(p) => Ok(p),
    })?;
    let hold_time = field(layers, "holdTime", parse_hold_time)?;
    let vip_interface = field(layers, "vipInterface", |v| {
        check_ifname(v).map(|()| v.to_owned())
    })?;
    let add_vips = field(layers, "addVips", parse_bool)?;
    let drain_time = field(layers, "drainTime", parse_duration)?;
    let http = field(layers, "http", |v| {
        v.trim()
            .parse::<SocketAddr>()
            .map_err(|_| format!("invalid address {v:?}: expected IP:PORT, e.g. 0.0.0.0:9179"))
    })?;
    let vips = match layers.iter().find_map(|l| l.vips.as_ref()) {
        Some((raw, origin)) => validate_vips(raw, origin)?,
        None => Vec::new(),
    };
    let shutdown = field(layers, "shutdown", |v| v.parse::<ShutdownMode>())?;
    let (password, password_file) = resolve_password(layers)?;
    let ttl_security_hops = optional(layers, "ttlSecurityHops")
        .map(|(v, origin)| {
            parse_ttl_security_hops(&v).map_err(|m| ConfigError::new(&origin, "ttlSecurityHops", m))
        })
        .transpose()?;
    Ok(Config {
        node,
        node_as,
        local_as,
        router_id,
        port,
        hold_time,
        vip_interface,
        add_vips,
        drain_time,
        http,
        vips,
        shutdown,
        password,
        password_file,
        ttl_security_hops,
    })
}

/// The value of `name` from the first layer that has it; `None` when none
/// has (a setting that is off by default).
fn optional(layers: &[Layer], name: &'static str) -> Option<(String, Origin)> {
    layers.iter().find_map(|l| l.values.get(name).cloned())
}

/// `password` or `passwordFile` (each from its highest layer), never both;
/// the file is read now, a relative path given in the config file being
/// relative to that file's directory. The key with the file it came from.
/// No error shows the key.
fn resolve_password(layers: &[Layer]) -> Result<(Option<Password>, Option<PathBuf>), ConfigError> {
    let inline = optional(layers, "password");
    let file = optional(layers, "passwordFile");
    let (key, origin, field, what, path) = match (inline, file) {
        (None, None) => return Ok((None, None)),
        (Some((_, origin)), Some((_, file_origin))) => {
            return Err(ConfigError::new(
                &origin,
                "password",
                format!(
                    "give password or passwordFile, not both (passwordFile is set by {file_origin})"
                ),
            ));
        }
        (Some((key, origin)), None) => (key, origin, "password", "the password".to_owned(), None),
        (None, Some((file, origin))) => {
            let file = file.trim();
            if file.is_empty() {
                return Err(ConfigError::new(
                    &origin,
                    "passwordFile",
                    "the path is empty",
                ));
            }
            let path = match &origin {
                Origin::File(config) => config
                    .parent()
                    .map_or_else(|| PathBuf::from(file), |dir| dir.join(file)),
                _ => PathBuf::from(file),
            };
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::new(
                    &origin,
                    "passwordFile",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            // One trailing newline, as `echo` and editors leave it.
            let key = match text.strip_suffix('\n') {
                Some(t) => t.strip_suffix('\r').unwrap_or(t),
                None => &text,
            };
            let what = format!("the key in {}", path.display());
            (key.to_owned(), origin, "passwordFile", what, Some(path))
        }
    };
    let err = |m: String| ConfigError::new(&origin, field, m);
    if key.is_empty() {
        return Err(err(format!("{what} is empty")));
    }
    if key.len() > MAX_PASSWORD_LEN {
        return Err(err(format!(
            "{what} has {} bytes: a TCP-MD5 key has at most {MAX_PASSWORD_LEN} (TCP_MD5SIG_MAXKEYLEN)",
            key.len()
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(err(format!(
            "{what} holds a control character (a line break?)"
        )));
    }
    Ok((Some(Password::from(key)), path))
}

fn parse_ttl_security_hops(s: &str) -> Result<u8, String> {
    match s.trim().parse::<u8>() {
        Ok(n @ 1..=254) => Ok(n),
        _ => Err(format!(
            "invalid hop count {s:?}: expected 1 to 254 (1: the node is directly connected)"
        )),
    }
}

/// The value of `name` from the first layer that has it, else its default,
/// parsed by `f`; errors name the field and the value's origin.
fn field<T>(
    layers: &[Layer],
    name: &'static str,
    f: impl Fn(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    let (value, origin) = layers
        .iter()
        .find_map(|l| l.values.get(name).cloned())
        .unwrap_or_else(|| {
            let default = key(name).map_or("", |k| k.default);
            (default.to_owned(), Origin::Default)
        });
    f(&value).map_err(|m| ConfigError::new(&origin, name, m))
}

fn validate_vips(raw: &[RawVip], origin: &Origin) -> Result<Vec<Vip>, ConfigError> {
    let mut seen = BTreeSet::new();
    let mut vips = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let base = vip_field(i);
        let vip = validate_vip(r, &base, origin)?;
        if !seen.insert(vip.prefix) {
            return Err(ConfigError::new(
                origin,
                format!("{base}.prefix"),
                format!("{} is listed twice", vip.prefix),
            ));
        }
        vips.push(vip);
    }
    Ok(vips)
}

fn validate_vip(r: &RawVip, base: &str, origin: &Origin) -> Result<Vip, ConfigError> {
    let err = |f: &str, m: String| ConfigError::new(origin, format!("{base}.{f}"), m);
    let prefix = match &r.prefix {
        Some(Scalar(p)) => parse_prefix(p).map_err(|m| err("prefix", m))?,
        None => return Err(err("prefix", "missing".into())),
    };
    let communities = r
        .communities
        .iter()
        .flatten()
        .enumerate()
        .map(|(j, Scalar(c))| {
            c.trim()
                .parse::<Community>()
                .map_err(|e| err(&format!("communities[{j}]"), e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let med = r
        .med
        .as_ref()
        .map(|Scalar(m)| {
            m.trim()
                .parse::<u32>()
                .map_err(|_| err("med", format!("invalid MED {m:?}: expected 0-4294967295")))
        })
        .transpose()?;
    let check = r
        .check
        .as_ref()
        .map(|c| validate_check(c, &format!("{base}.check"), origin))
        .transpose()?;
    Ok(Vip {
        prefix,
        communities,
        med,
        check,
    })
}

fn validate_check(c: &RawCheck, base: &str, origin: &Origin) -> Result<Check, ConfigError> {
    let err = |f: &str, m: String| {
        let field = if f.is_empty() {
            base.to_owned()
        } else {
            format!("{base}.{f}")
        };
        ConfigError::new(origin, field, m)
    };
    let given: Vec<&str> = [
        ("tcp", c.tcp.is_some()),
        ("http", c.http.is_some()),
        ("exec", c.exec.is_some()),
        ("file", c.file.is_some()),
    ]
    .into_iter()
    .filter_map(|(n, set)| set.then_some(n))
    .collect();
    if given.len() != 1 {
        let m = if given.is_empty() {
            "needs one of tcp, http, exec or file".to_owned()
        } else {
            format!("has {}: give exactly one", given.join(" and "))
        };
        return Err(err("", m));
    }
    if c.expect_status.is_some() && c.http.is_none() {
        return Err(err("expectStatus", "only applies to an http check".into()));
    }
    let kind = if let Some(Scalar(t)) = &c.tcp {
        CheckKind::Tcp(parse_tcp_target(t).map_err(|m| err("tcp", m))?)
    } else if let Some(Scalar(url)) = &c.http {
        parse_http_url(url).map_err(|m| err("http", m))?;
        let expect = match &c.expect_status {
            Some(Scalar(s)) => parse_status(s).map_err(|m| err("expectStatus", m))?,
            None => DEFAULT_EXPECT_STATUS,
        };
        CheckKind::Http {
            url: url.trim().to_owned(),
            expect,
        }
    } else if let Some(exec) = &c.exec {
        let argv = match exec {
            RawExec::List(l) => l.iter().map(|Scalar(s)| s.clone()).collect(),
            RawExec::Line(Scalar(s)) => split_command(s).map_err(|m| err("exec", m))?,
        };
        if argv.first().is_none_or(|a| a.trim().is_empty()) {
            return Err(err("exec", "the command is empty".into()));
        }
        CheckKind::Exec(argv)
    } else if let Some(Scalar(p)) = &c.file {
        if p.trim().is_empty() {
            return Err(err("file", "the path is empty".into()));
        }
        CheckKind::File(PathBuf::from(p.trim()))
    } else {
        return Err(err("", "needs one of tcp, http, exec or file".into()));
    };
    let duration = |f: &str, v: &Option<Scalar>, default: Duration| match v {
        Some(Scalar(s)) => match parse_duration(s) {
            Ok(d) if d.is_zero() => Err(err(f, "must be more than 0".into())),
            Ok(d) => Ok(d),
            Err(m) => Err(err(f, m)),
        },
        None => Ok(default),
    };
    let count = |f: &str, v: &Option<Scalar>, default: u32| match v {
        Some(Scalar(s)) => match s.trim().parse::<u32>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(err(f, format!("invalid count {s:?}: expected 1 or more"))),
        },
        None => Ok(default),
    };
    let interval = duration("interval", &c.interval, DEFAULT_INTERVAL)?;
    let timeout = duration("timeout", &c.timeout, DEFAULT_TIMEOUT.min(interval))?;
    if timeout > interval {
        return Err(err(
            "timeout",
            format!(
                "{} is longer than the interval {}",
                fmt_duration(timeout),
                fmt_duration(interval)
            ),
        ));
    }
    Ok(Check {
        kind,
        interval,
        timeout,
        rise: count("rise", &c.rise, DEFAULT_RISE)?,
        fall: count("fall", &c.fall, DEFAULT_FALL)?,
    })
}

/// Parses a `--vip` spec:
/// `PREFIX[,check=URL][,expect=STATUS][,interval=D][,timeout=D][,rise=N][,fall=N][,med=N][,community=C]...`.
///
/// A comma belongs to the check command unless it starts a known `key=`, so
/// `check=exec:/bin/sh -c "a,b"` keeps its comma.
pub fn parse_vip_spec(spec: &str) -> Result<RawVip, String> {
    const KEYS: [&str; 8] = [
        "check",
        "expect",
        "interval",
        "timeout",
        "rise",
        "fall",
        "med",
        "community",
    ];
    let mut parts: Vec<String> = Vec::new();
    for piece in spec.split(',') {
        let starts_key = piece
            .split_once('=')
            .is_some_and(|(k, _)| KEYS.contains(&k.trim()));
        match parts.last_mut() {
            Some(last) if !starts_key => {
                last.push(',');
                last.push_str(piece);
            }
            _ => parts.push(piece.to_owned()),
        }
    }
    let mut iter = parts.into_iter();
    let prefix = iter.next().unwrap_or_default();
    if prefix.trim().is_empty() || prefix.contains('=') {
        return Err(format!(
            "invalid VIP {spec:?}: expected PREFIX[,check=URL][,interval=2s]..."
        ));
    }
    let mut vip = RawVip {
        prefix: Some(Scalar(prefix.trim().to_owned())),
        ..RawVip::default()
    };
    let mut check = RawCheck::default();
    let mut has_check = false;
    for part in iter {
        let Some((k, v)) = part.split_once('=') else {
            continue; // unreachable: every later part starts with a key
        };
        let v = Scalar(v.trim().to_owned());
        match k.trim() {
            "check" => {
                has_check = true;
                set_check_url(&mut check, &v.0)?;
            }
            "expect" => check.expect_status = Some(v),
            "interval" => check.interval = Some(v),
            "timeout" => check.timeout = Some(v),
            "rise" => check.rise = Some(v),
            "fall" => check.fall = Some(v),
            "med" => vip.med = Some(v),
            _ => vip.communities.get_or_insert_with(Vec::new).push(v),
        }
    }
    let timing_without_check = check != RawCheck::default() && !has_check;
    if timing_without_check {
        return Err(format!(
            "invalid VIP {spec:?}: check settings without check=URL"
        ));
    }
    if has_check {
        vip.check = Some(check);
    }
    Ok(vip)
}

/// Parses a check URL (`tcp://h:p`, `http://h:p/path`, `exec:cmd args`,
/// `file:/path`) into its kind (HTTP expecting 200).
pub fn parse_check_url(url: &str) -> Result<CheckKind, String> {
    let mut raw = RawCheck::default();
    set_check_url(&mut raw, url)?;
    validate_check(&raw, "check", &Origin::Default)
        .map(|c| c.kind)
        .map_err(|e| e.message)
}

fn set_check_url(check: &mut RawCheck, url: &str) -> Result<(), String> {
    let url = url.trim();
    if let Some(t) = url.strip_prefix("tcp://") {
        check.tcp = Some(Scalar(t.to_owned()));
    } else if url.starts_with("http://") {
        check.http = Some(Scalar(url.to_owned()));
    } else if url.starts_with("https://") {
        return Err(format!(
            "invalid check {url:?}: https is not supported (check the plain HTTP port)"
        ));
    } else if let Some(cmd) = url.strip_prefix("exec:") {
        check.exec = Some(RawExec::Line(Scalar(cmd.to_owned())));
    } else if let Some(p) = url.strip_prefix("file:") {
        check.file = Some(Scalar(p.to_owned()));
    } else {
        return Err(format!(
            "invalid check {url:?}: expected tcp://HOST:PORT, http://HOST:PORT/PATH, exec:COMMAND or file:PATH"
        ));
    }
    Ok(())
}

/// `host:port` with a port (`[v6]:port` for IPv6 literals).
fn parse_tcp_target(t: &str) -> Result<String, String> {
    let t = t.trim();
    let bad = || format!("invalid target {t:?}: expected HOST:PORT, e.g. 127.0.0.1:80");
    let (host, port) = t.rsplit_once(':').ok_or_else(bad)?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(bad()),
    }
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty() && !host.contains(['/', ' ', '[', ']', ':'])
    };
    if host_ok {
        Ok(t.to_owned())
    } else {
        Err(bad())
    }
}

fn parse_http_url(url: &str) -> Result<(), String> {
    let url = url.trim();
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("invalid URL {url:?}: expected http://HOST[:PORT]/PATH"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("invalid URL {url:?}: no host"));
    }
    Ok(())
}

fn parse_status(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(n) if (100..=599).contains(&n) => Ok(n),
        _ => Err(format!("invalid HTTP status {s:?}: expected 100-599")),
    }
}

/// A prefix; a bare address is a host prefix. Host bits must be clear.
pub fn parse_prefix(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    let net = match s.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => match s.parse::<IpAddr>() {
            Ok(a) => IpNet::from(a),
            Err(_) => {
                return Err(format!(
                    "invalid prefix {s:?}: expected e.g. 198.51.100.10/32"
                ));
            }
        },
    };
    if net.trunc() != net {
        return Err(format!(
            "{s} has host bits set (did you mean {}?)",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Splits a command line into words: whitespace separates, single and double
/// quotes group, backslash escapes the next character outside single quotes.
pub fn split_command(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(format!("unclosed quote in {s:?}"));
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

fn parse_peer_as(s: &str) -> Result<PeerAs, String> {
    match s.trim() {
        "external" => Ok(PeerAs::External),
        n => parse_asn(n)
            .map(PeerAs::Number)
            .map_err(|_| format!("invalid AS {s:?}: expected external or 1-4294967295")),
    }
}

fn parse_asn(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(0) | Err(_) => Err(format!("invalid AS {s:?}: expected 1-4294967295")),
        Ok(n) => Ok(n),
    }
}

fn parse_router_id(s: &str) -> Result<Option<Ipv4Addr>, String> {
    match s.trim() {
        "auto" => Ok(None),
        v => match v.parse::<Ipv4Addr>() {
            Ok(a) if !a.is_unspecified() => Ok(Some(a)),
            _ => Err(format!(
                "invalid router id {s:?}: expected auto or an IPv4 address"
            )),
        },
    }
}

fn parse_hold_time(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 || (secs != 0 && !(3..=65535).contains(&secs)) {
        return Err(format!(
            "invalid hold time {s:?}: whole seconds, 0 or 3s to 65535s"
        ));
    }
    Ok(d)
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("invalid boolean {s:?}: expected true or false")),
    }
}

fn check_ifname(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 15 || s.contains(['/', ' ', ':']) {
        return Err(format!("invalid interface name {s:?}"));
    }
    Ok(())
}

/// Parses a duration: numbers with units `ms`, `s`, `m`, `h`, one after
/// another (`500ms`, `2s`, `1m30s`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?} (use a number with a unit: 500ms, 2s, 1m, 1h)");
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        total = total.checked_add(d).ok_or_else(bad)?;
    }
    Ok(total)
}

/// Formats a duration the way [`parse_duration`] reads it (`500ms`, `2s`, `1m30s`).
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s"), (ms, "ms")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

/// The configuration as YAML in the file format (what `--check-config` prints).
/// A password read from a file shows as its `passwordFile`; one given inline
/// only as a comment saying it is set.
pub fn to_yaml(c: &Config) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct OutCheck {
        #[serde(skip_serializing_if = "Option::is_none")]
        tcp: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        http: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        expect_status: Option<u16>,
        #[serde(skip_serializing_if = "Option::is_none")]
        exec: Option<Vec<String>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        file: Option<String>,
        interval: String,
        timeout: String,
        rise: u32,
        fall: u32,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct OutVip {
        prefix: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        communities: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        med: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        check: Option<OutCheck>,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Out {
        node: String,
        node_as: String,
        local_as: u32,
        router_id: String,
        port: u16,
        hold_time: String,
        vip_interface: String,
        add_vips: bool,
        drain_time: String,
        http: String,
        vips: Vec<OutVip>,
        shutdown: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        password_file: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ttl_security_hops: Option<u8>,
    }
    let vips = c
        .vips
        .iter()
        .map(|v| OutVip {
            prefix: v.prefix.to_string(),
            communities: v.communities.iter().map(|c| c.to_string()).collect(),
            med: v.med,
            check: v.check.as_ref().map(|ch| {
                let mut o = OutCheck {
                    tcp: None,
                    http: None,
                    expect_status: None,
                    exec: None,
                    file: None,
                    interval: fmt_duration(ch.interval),
                    timeout: fmt_duration(ch.timeout),
                    rise: ch.rise,
                    fall: ch.fall,
                };
                match &ch.kind {
                    CheckKind::Tcp(t) => o.tcp = Some(t.clone()),
                    CheckKind::Http { url, expect } => {
                        o.http = Some(url.clone());
                        o.expect_status = Some(*expect);
                    }
                    CheckKind::Exec(argv) => o.exec = Some(argv.clone()),
                    CheckKind::File(p) => o.file = Some(p.display().to_string()),
                }
                o
            }),
        })
        .collect();
    let out = Out {
        node: c.node.to_string(),
        node_as: c.node_as.to_string(),
        local_as: c.local_as,
        router_id: c
            .router_id
            .map_or_else(|| "auto".to_owned(), |r| r.to_string()),
        port: c.port,
        hold_time: fmt_duration(c.hold_time),
        vip_interface: c.vip_interface.clone(),
        add_vips: c.add_vips,
        drain_time: fmt_duration(c.drain_time),
        http: c.http.to_string(),
        vips,
        shutdown: c.shutdown.to_string(),
        password_file: c.password_file.as_ref().map(|p| p.display().to_string()),
        ttl_security_hops: c.ttl_security_hops,
    };
    let mut text =
        serde_saphyr::to_string(&out).unwrap_or_else(|e| format!("# cannot render: {e}\n"));
    // A key given inline is never printed, not even here.
    if c.password.is_some() && c.password_file.is_none() {
        text.push_str("# password: set, not shown\n");
    }
    text
}

#[cfg(test)]
mod tests;
