//! The node configuration file: YAML with camelCase keys, read into raw
//! structures first and then validated field by field, so that every error
//! names the field and the file, e.g.
//! `podGroups[1].allowedPrefixes[0].le: 33 is longer than an IPv4 prefix can be (/etc/podpeer/node.yaml)`.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bgp_core::fsm::RemoteAs;
use bgp_core::wire::{Community, LargeCommunity, Role};
use ipnet::IpNet;
use serde::Deserialize;

/// The main routing table.
pub const MAIN_TABLE: u32 = 254;

/// A configuration error: which field of which file, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// The field, e.g. `podGroups[1].allowedPrefixes[0].le`; empty when the
    /// file as a whole is at fault (unreadable, not YAML).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{} ({})", self.message, self.file.display())
        } else {
            write!(
                f,
                "{}: {} ({})",
                self.field,
                self.message,
                self.file.display()
            )
        }
    }
}

/// The validated node configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// Our AS.
    pub local_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Where BGP listens.
    pub listen: Vec<SocketAddr>,
    /// Where the HTTP server (health, metrics, status) listens.
    pub http: SocketAddr,
    /// Never accepted from any pod, nor anything more specific.
    pub forbidden_prefixes: Vec<IpNet>,
    /// How long routes left by an earlier run are kept for their peers to
    /// come back.
    pub reconcile_after: Duration,
    /// VRFs: name, table, member interfaces.
    pub vrfs: Vec<Vrf>,
    /// Interfaces the tc-eBPF router is attached to besides the VRFs'
    /// members (`bpfInterfaces`).
    pub bpf_interfaces: Vec<String>,
    /// Upstream neighbors.
    pub fabric: Vec<FabricNeighbor>,
    /// Groups of pods that may peer, and what they may announce.
    pub pod_groups: Vec<PodGroup>,
    /// Graceful restart: the restart time neighbors should keep our routes
    /// for while we restart; `None`: off.
    pub graceful_restart: Option<Duration>,
    /// The operator file (`vnimap`, `skipVRFConfig`, ...): see
    /// [`crate::provision`]. Empty unless one is attached with
    /// [`crate::provision::attach`].
    pub operator: crate::provision::OperatorConfig,
    /// FRR mode (FRR holds the sessions; see [`crate::frr::driver`]);
    /// `None`: native mode. Set from the command line.
    pub frr: Option<crate::frr::driver::FrrMode>,
    /// The network health check's file, taints and interval. Set from the
    /// command line.
    pub health: crate::health::HealthOptions,
}

/// A VRF: a routing table reached from its member interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vrf {
    /// Its name (the VRF device's name where the kernel has VRFs).
    pub name: String,
    /// Its routing table.
    pub table: u32,
    /// Member interfaces.
    pub interfaces: Vec<String>,
}

/// An upstream neighbor (top of rack switch, route server), at an address or
/// unnumbered on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FabricNeighbor {
    /// Its address (`::` for an interface neighbor).
    pub address: IpAddr,
    /// Its TCP port.
    pub port: u16,
    /// Its AS rule.
    pub remote_as: RemoteAs,
    /// Free text for status output.
    pub description: String,
    /// Proposed hold time.
    pub hold_time: Duration,
    /// BGP unnumbered on this interface: the neighbor's link-local address is
    /// learned from its Router Advertisements, IPv4 routes go over IPv6 next
    /// hops (RFC 8950).
    pub interface: Option<String>,
    /// TCP-MD5 key (RFC 2385): `password`, or read from `passwordFile`.
    pub password: Option<Password>,
    /// GTSM (RFC 5082): the neighbor is at most this many hops away.
    pub ttl_security_hops: Option<u8>,
    /// Our BGP role towards the neighbor (RFC 9234): `provider` means the
    /// neighbor is our customer.
    pub role: Option<Role>,
    /// With `role`: refuse a neighbor that announces no role.
    pub strict_role: bool,
}

impl FabricNeighbor {
    /// How logs and errors name it: the address, or `interface eth1`.
    pub fn name(&self) -> String {
        match &self.interface {
            Some(i) => format!("interface {i}"),
            None => self.address.to_string(),
        }
    }
}

/// One allowed prefix with its admitted lengths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedPrefix {
    /// The covering prefix.
    pub prefix: IpNet,
    /// Shortest admitted length.
    pub ge: Option<u8>,
    /// Longest admitted length.
    pub le: Option<u8>,
}

/// A group of pods admitted as peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodGroup {
    /// Its name (status, metrics).
    pub name: String,
    /// The addresses admitted (single addresses as /32 or /128).
    pub peers: Vec<IpNet>,
    /// The AS numbers the pods may have.
    pub peer_as: RemoteAs,
    /// What they may announce.
    pub allowed_prefixes: Vec<AllowedPrefix>,
    /// At most this many prefixes per pod.
    pub max_prefixes: Option<u32>,
    /// The VRF the routes go to, if named.
    pub vrf: Option<String>,
    /// The table the routes go to (the VRF's, or `table`, or main).
    pub table: u32,
    /// Added to the pods' routes on import, so they reach the fabric.
    pub communities: Vec<Community>,
    /// Large communities added likewise.
    pub large_communities: Vec<LargeCommunity>,
    /// Proposed hold time.
    pub hold_time: Duration,
    /// TCP-MD5 key (RFC 2385) for every pod of the group: one prefix key per
    /// peer range, a key per address for single addresses.
    pub password: Option<Password>,
    /// GTSM (RFC 5082): the pods are at most this many hops away.
    pub ttl_security_hops: Option<u8>,
}

/// The longest TCP-MD5 key Linux takes (`TCP_MD5SIG_MAXKEYLEN`), in bytes.
pub const MAX_PASSWORD_LEN: usize = 80;

/// A TCP-MD5 key: bgp-core's, whose `Debug` never shows it.
pub use bgp_core::speaker::Password;

impl NodeConfig {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            field: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates configuration text read from `file` (named in
    /// errors).
    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| {
            // The first line says where and what; the rest is a source snippet.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            ConfigError {
                file: file.to_path_buf(),
                field: String::new(),
                message: first.trim_start_matches("error: ").to_owned(),
            }
        })?;
        Validator {
            file: file.to_path_buf(),
        }
        .config(raw)
    }

    /// The group whose peers include `addr`.
    pub fn group_of(&self, addr: IpAddr) -> Option<&PodGroup> {
        self.pod_groups
            .iter()
            .find(|g| g.peers.iter().any(|r| r.contains(&addr)))
    }

    /// The tables any group installs into.
    pub fn tables(&self) -> BTreeSet<u32> {
        self.pod_groups.iter().map(|g| g.table).collect()
    }

    /// Every interface the tc-eBPF router goes on: `bpfInterfaces`, then the
    /// VRFs' members, each once. Empty: the router is not loaded.
    pub fn bpf_attach_list(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let members = self.vrfs.iter().flat_map(|v| v.interfaces.iter());
        for name in self.bpf_interfaces.iter().chain(members) {
            if !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    }

    /// (member, VRF) pairs: packets arriving on a VRF member are looked up
    /// in the FIB from the VRF device, whose table is the VRF's. Where the
    /// kernel has no VRF devices there is no such device and the member's
    /// `ip rule iif` does the same.
    pub fn bpf_lookup_from(&self) -> Vec<(String, String)> {
        self.vrfs
            .iter()
            .flat_map(|v| v.interfaces.iter().map(|i| (i.clone(), v.name.clone())))
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Raw file structure: what serde reads before validation.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawConfig {
    local_as: Option<Scalar>,
    router_id: Option<String>,
    listen: Option<Vec<String>>,
    http: Option<String>,
    #[serde(default)]
    forbidden_prefixes: Vec<String>,
    reconcile_after: Option<Scalar>,
    #[serde(default)]
    vrfs: Vec<RawVrf>,
    #[serde(default)]
    bpf_interfaces: Vec<String>,
    #[serde(default)]
    fabric: Vec<RawFabric>,
    #[serde(default)]
    pod_groups: Vec<RawGroup>,
    graceful_restart: Option<RawGracefulRestart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawGracefulRestart {
    enabled: Option<Scalar>,
    restart_time: Option<Scalar>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawVrf {
    name: Option<String>,
    table: Option<Scalar>,
    #[serde(default)]
    interfaces: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawFabric {
    address: Option<String>,
    interface: Option<String>,
    port: Option<Scalar>,
    remote_as: Option<Scalar>,
    #[serde(default)]
    description: String,
    hold_time: Option<Scalar>,
    password: Option<String>,
    password_file: Option<String>,
    ttl_security_hops: Option<Scalar>,
    role: Option<String>,
    strict_role: Option<Scalar>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawGroup {
    name: Option<String>,
    #[serde(default)]
    peers: Vec<String>,
    peer_as: Option<Scalar>,
    #[serde(default)]
    allowed_prefixes: Vec<RawAllowed>,
    max_prefixes: Option<Scalar>,
    vrf: Option<String>,
    table: Option<Scalar>,
    #[serde(default)]
    communities: Vec<String>,
    hold_time: Option<Scalar>,
    password: Option<String>,
    password_file: Option<String>,
    ttl_security_hops: Option<Scalar>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawAllowed {
    prefix: Option<String>,
    ge: Option<Scalar>,
    le: Option<Scalar>,
}

/// A YAML scalar that may be written as a number or a string (`65010`,
/// `external`, `9s`), kept as text for the validator to interpret.
#[derive(Debug, Clone)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------
// Validation.

struct Validator {
    file: PathBuf,
}

impl Validator {
    fn err(&self, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            field: field.into(),
            message: message.into(),
        }
    }

    fn required<T>(&self, v: Option<T>, field: &str) -> Result<T, ConfigError> {
        v.ok_or_else(|| self.err(field, "is required"))
    }

    fn u32(&self, v: &Scalar, field: &str, what: &str) -> Result<u32, ConfigError> {
        v.0.trim()
            .parse::<u32>()
            .map_err(|_| self.err(field, format!("{:?} is not {what}", v.0)))
    }

    fn asn(&self, v: &Scalar, field: &str) -> Result<u32, ConfigError> {
        let n = self.u32(v, field, "an AS number (1 to 4294967295)")?;
        if n == 0 {
            return Err(self.err(field, "0 is not a valid AS number"));
        }
        Ok(n)
    }

    fn duration(&self, v: &Scalar, field: &str) -> Result<Duration, ConfigError> {
        parse_duration(&v.0).ok_or_else(|| {
            self.err(
                field,
                format!("{:?} is not a duration (like 9s, 500ms, 2m)", v.0),
            )
        })
    }

    fn hold_time(
        &self,
        v: Option<&Scalar>,
        field: &str,
        default: u64,
    ) -> Result<Duration, ConfigError> {
        let d = match v {
            Some(v) => self.duration(v, field)?,
            None => Duration::from_secs(default),
        };
        let secs = d.as_secs();
        if d.subsec_nanos() != 0 || (secs != 0 && secs < 3) || secs > u64::from(u16::MAX) {
            return Err(self.err(
                field,
                format!("{d:?}: a hold time is 0 or whole seconds from 3s to 65535s"),
            ));
        }
        Ok(d)
    }

    fn prefix(&self, s: &str, field: &str) -> Result<IpNet, ConfigError> {
        let s = s.trim();
        let net = match s.parse::<IpNet>() {
            Ok(n) => n,
            Err(_) => s.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
                self.err(
                    field,
                    format!("{s:?} is not a prefix (like 198.51.100.0/24)"),
                )
            })?,
        };
        if net.trunc() != net {
            return Err(self.err(
                field,
                format!("{s} has host bits set (did you mean {}?)", net.trunc()),
            ));
        }
        Ok(net)
    }

    fn remote_as(&self, v: &Scalar, field: &str, range_ok: bool) -> Result<RemoteAs, ConfigError> {
        let s = v.0.trim();
        match s {
            "external" => return Ok(RemoteAs::External),
            "internal" if !range_ok => return Ok(RemoteAs::Internal),
            _ => {}
        }
        if range_ok && let Some((lo, hi)) = s.split_once('-') {
            let lo = self.asn(&Scalar(lo.to_owned()), field)?;
            let hi = self.asn(&Scalar(hi.to_owned()), field)?;
            if lo > hi {
                return Err(self.err(field, format!("{s}: the range is empty ({lo} > {hi})")));
            }
            return Ok(RemoteAs::Range(lo, hi));
        }
        s.parse::<u32>()
            .ok()
            .filter(|&n| n != 0)
            .map(RemoteAs::Number)
            .ok_or_else(|| {
                let forms = if range_ok {
                    "external, an AS number or a range like 64512-65534"
                } else {
                    "external, internal or an AS number"
                };
                self.err(field, format!("{s:?} is not one of: {forms}"))
            })
    }

    fn config(&self, raw: RawConfig) -> Result<NodeConfig, ConfigError> {
        let local_as = self.asn(&self.required(raw.local_as, "localAs")?, "localAs")?;
        let router_id = self.required(raw.router_id, "routerId")?;
        let router_id = router_id
            .trim()
            .parse::<Ipv4Addr>()
            .map_err(|_| self.err("routerId", format!("{router_id:?} is not an IPv4 address")))?;
        let listen = match raw.listen {
            None => vec![
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, bgp_core::speaker::BGP_PORT)),
                SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, bgp_core::speaker::BGP_PORT)),
            ],
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    s.trim().parse::<SocketAddr>().map_err(|_| {
                        self.err(
                            format!("listen[{i}]"),
                            format!(
                                "{s:?} is not an address and port (like 0.0.0.0:179 or [::]:179)"
                            ),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let http = match raw.http {
            None => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 9180)),
            Some(s) => s.trim().parse().map_err(|_| {
                self.err(
                    "http",
                    format!("{s:?} is not an address and port (like 0.0.0.0:9180)"),
                )
            })?,
        };
        let forbidden_prefixes = raw
            .forbidden_prefixes
            .iter()
            .enumerate()
            .map(|(i, s)| self.prefix(s, &format!("forbiddenPrefixes[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let reconcile_after = match raw.reconcile_after {
            Some(v) => self.duration(&v, "reconcileAfter")?,
            None => Duration::from_secs(10),
        };
        let vrfs = self.vrfs(raw.vrfs)?;
        let bpf_interfaces = self.bpf_interfaces(raw.bpf_interfaces)?;
        let fabric = raw
            .fabric
            .into_iter()
            .enumerate()
            .map(|(i, f)| self.fabric(f, &format!("fabric[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, f) in fabric.iter().enumerate() {
            let same = |o: &FabricNeighbor| o.address == f.address && o.interface == f.interface;
            if let Some(j) = fabric[..i].iter().position(same) {
                let field = if f.interface.is_some() {
                    "interface"
                } else {
                    "address"
                };
                return Err(self.err(
                    format!("fabric[{i}].{field}"),
                    format!("{} is already fabric[{j}]", f.name()),
                ));
            }
        }
        let pod_groups = raw
            .pod_groups
            .into_iter()
            .enumerate()
            .map(|(i, g)| self.group(g, &format!("podGroups[{i}]"), &vrfs))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(i) = pod_groups
            .iter()
            .position(|g| g.peer_as == RemoteAs::Number(local_as))
        {
            return Err(self.err(
                format!("podGroups[{i}].peerAs"),
                format!(
                    "{local_as} is our own localAs: pods peer over eBGP (their AS path must be their own AS)"
                ),
            ));
        }
        self.cross_checks(&fabric, &pod_groups)?;
        let graceful_restart = self.graceful_restart(raw.graceful_restart)?;
        Ok(NodeConfig {
            local_as,
            router_id,
            listen,
            http,
            forbidden_prefixes,
            reconcile_after,
            vrfs,
            bpf_interfaces,
            fabric,
            pod_groups,
            graceful_restart,
            operator: Default::default(),
            frr: None,
            health: Default::default(),
        })
    }

    /// On by default with a restart time of 120 s.
    fn graceful_restart(
        &self,
        raw: Option<RawGracefulRestart>,
    ) -> Result<Option<Duration>, ConfigError> {
        let raw = raw.unwrap_or(RawGracefulRestart {
            enabled: None,
            restart_time: None,
        });
        let enabled = match raw.enabled {
            None => true,
            Some(v) => match v.0.trim() {
                "true" => true,
                "false" => false,
                other => {
                    return Err(self.err(
                        "gracefulRestart.enabled",
                        format!("{other:?} is not true or false"),
                    ));
                }
            },
        };
        let field = "gracefulRestart.restartTime";
        let time = match raw.restart_time {
            Some(v) => self.duration(&v, field)?,
            None => Duration::from_secs(120),
        };
        if time.subsec_nanos() != 0 || time.is_zero() || time.as_secs() > 4095 {
            return Err(self.err(
                field,
                format!("{time:?} is not whole seconds from 1s to 4095s (12 bits of seconds)"),
            ));
        }
        Ok(enabled.then_some(time))
    }

    fn vrfs(&self, raw: Vec<RawVrf>) -> Result<Vec<Vrf>, ConfigError> {
        let mut out: Vec<Vrf> = Vec::new();
        for (i, v) in raw.into_iter().enumerate() {
            let at = format!("vrfs[{i}]");
            let name = self.required(v.name, &format!("{at}.name"))?;
            if !valid_ifname(&name) {
                return Err(self.err(
                    format!("{at}.name"),
                    format!("{name:?} is not a valid device name (1 to 15 characters, no '/', no spaces)"),
                ));
            }
            let field = format!("{at}.table");
            let table = self.u32(&self.required(v.table, &field)?, &field, "a table number")?;
            if matches!(table, 0 | 253..=255) {
                return Err(self.err(
                    field,
                    format!("{table} is reserved (0 unspec, 253 default, 254 main, 255 local)"),
                ));
            }
            for (j, ifname) in v.interfaces.iter().enumerate() {
                if !valid_ifname(ifname) {
                    return Err(self.err(
                        format!("{at}.interfaces[{j}]"),
                        format!("{ifname:?} is not a valid interface name"),
                    ));
                }
            }
            if let Some(j) = out.iter().position(|o| o.name == name) {
                return Err(self.err(
                    format!("{at}.name"),
                    format!("{name:?} is already vrfs[{j}]"),
                ));
            }
            if let Some(j) = out.iter().position(|o| o.table == table) {
                return Err(self.err(
                    format!("{at}.table"),
                    format!("table {table} is already vrfs[{j}]'s"),
                ));
            }
            out.push(Vrf {
                name,
                table,
                interfaces: v.interfaces,
            });
        }
        Ok(out)
    }

    fn bpf_interfaces(&self, raw: Vec<String>) -> Result<Vec<String>, ConfigError> {
        for (i, name) in raw.iter().enumerate() {
            let field = format!("bpfInterfaces[{i}]");
            if !valid_ifname(name) {
                return Err(self.err(field, format!("{name:?} is not a valid interface name")));
            }
            if let Some(j) = raw[..i].iter().position(|o| o == name) {
                return Err(self.err(field, format!("{name:?} is already bpfInterfaces[{j}]")));
            }
        }
        Ok(raw)
    }

    fn fabric(&self, f: RawFabric, at: &str) -> Result<FabricNeighbor, ConfigError> {
        let field = format!("{at}.address");
        let (address, interface) = match (f.address, f.interface) {
            (Some(_), Some(_)) => {
                return Err(self.err(
                    format!("{at}.interface"),
                    "give address or interface, not both",
                ));
            }
            (None, Some(i)) => {
                if !valid_ifname(&i) {
                    return Err(self.err(
                        format!("{at}.interface"),
                        format!("{i:?} is not a valid interface name"),
                    ));
                }
                (IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), Some(i))
            }
            (address, None) => {
                let address = self.required(address, &field)?;
                let address = address
                    .trim()
                    .parse::<IpAddr>()
                    .map_err(|_| self.err(&field, format!("{address:?} is not an IP address")))?;
                (address, None)
            }
        };
        let port = match f.port {
            None => bgp_core::speaker::BGP_PORT,
            Some(p) => {
                let field = format!("{at}.port");
                let n = self.u32(&p, &field, "a port")?;
                u16::try_from(n)
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| self.err(field, format!("{n} is not a port")))?
            }
        };
        let remote_as = match f.remote_as {
            None => RemoteAs::External,
            Some(v) => self.remote_as(&v, &format!("{at}.remoteAs"), false)?,
        };
        let key_field = match (&f.password, &f.password_file) {
            (Some(_), _) => "password",
            (None, Some(_)) => "passwordFile",
            (None, None) => "",
        };
        if interface.is_some() && !key_field.is_empty() {
            // bgp-core keys the listeners for configured addresses and
            // ranges only: a learned neighbor's signed SYNs would be dropped.
            return Err(self.err(
                format!("{at}.{key_field}"),
                "TCP-MD5 needs the neighbor's address, and an interface neighbor's is learned: give address instead",
            ));
        }
        let password = self.password(f.password, f.password_file, at)?;
        let role = match f.role {
            None => None,
            Some(r) => Some(self.role(&r, &format!("{at}.role"))?),
        };
        let strict_role = match f.strict_role {
            None => false,
            Some(v) => self.bool(&v, &format!("{at}.strictRole"))?,
        };
        if strict_role && role.is_none() {
            return Err(self.err(
                format!("{at}.strictRole"),
                "needs role (strict mode refuses a neighbor that announces no role; ours must be set)",
            ));
        }
        Ok(FabricNeighbor {
            address,
            port,
            remote_as,
            description: f.description,
            hold_time: self.hold_time(f.hold_time.as_ref(), &format!("{at}.holdTime"), 90)?,
            interface,
            password,
            ttl_security_hops: self.ttl_security_hops(f.ttl_security_hops, at)?,
            role,
            strict_role,
        })
    }

    /// `password` or `passwordFile` (read now; a relative path is relative
    /// to the configuration file's directory), checked as a TCP-MD5 key.
    /// Errors never show the key.
    fn password(
        &self,
        inline: Option<String>,
        file: Option<String>,
        at: &str,
    ) -> Result<Option<Password>, ConfigError> {
        let (key, field, what) = match (inline, file) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(self.err(
                    format!("{at}.passwordFile"),
                    "give password or passwordFile, not both",
                ));
            }
            (Some(key), None) => (key, format!("{at}.password"), "the password".to_owned()),
            (None, Some(file)) => {
                let field = format!("{at}.passwordFile");
                let path = match self.file.parent() {
                    Some(dir) => dir.join(file.trim()),
                    None => PathBuf::from(file.trim()),
                };
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    self.err(&field, format!("cannot read {}: {e}", path.display()))
                })?;
                // One trailing newline, as `echo` and editors leave it.
                let key = match text.strip_suffix('\n') {
                    Some(t) => t.strip_suffix('\r').unwrap_or(t),
                    None => &text,
                };
                (
                    key.to_owned(),
                    field,
                    format!("the key in {}", path.display()),
                )
            }
        };
        if key.is_empty() {
            return Err(self.err(field, format!("{what} is empty")));
        }
        if key.len() > MAX_PASSWORD_LEN {
            return Err(self.err(
                field,
                format!(
                    "{what} has {} bytes: a TCP-MD5 key has at most {MAX_PASSWORD_LEN} (TCP_MD5SIG_MAXKEYLEN)",
                    key.len()
                ),
            ));
        }
        if key.chars().any(char::is_control) {
            return Err(self.err(
                field,
                format!("{what} holds a control character (a line break?)"),
            ));
        }
        Ok(Some(Password::from(key)))
    }

    /// `ttlSecurityHops`: 1 to 254, as FRR's `ttl-security hops`.
    fn ttl_security_hops(&self, v: Option<Scalar>, at: &str) -> Result<Option<u8>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        let field = format!("{at}.ttlSecurityHops");
        let n = self.u32(&v, &field, "a number of hops from 1 to 254")?;
        match u8::try_from(n) {
            Ok(n @ 1..=254) => Ok(Some(n)),
            _ => Err(self.err(field, format!("{n} is not a number of hops from 1 to 254"))),
        }
    }

    /// Our BGP role, named as FRR's `local-role` names it.
    fn role(&self, v: &str, field: &str) -> Result<Role, ConfigError> {
        match v.trim() {
            "provider" => Ok(Role::Provider),
            "rs" | "rs-server" => Ok(Role::RouteServer),
            "rs-client" => Ok(Role::RouteServerClient),
            "customer" => Ok(Role::Customer),
            "peer" => Ok(Role::Peer),
            other => Err(self.err(
                field,
                format!("{other:?} is not one of: provider, rs, rs-client, customer, peer"),
            )),
        }
    }

    fn bool(&self, v: &Scalar, field: &str) -> Result<bool, ConfigError> {
        match v.0.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(self.err(field, format!("{other:?} is not true or false"))),
        }
    }

    fn group(&self, g: RawGroup, at: &str, vrfs: &[Vrf]) -> Result<PodGroup, ConfigError> {
        let name = self.required(g.name, &format!("{at}.name"))?;
        if name.trim().is_empty() {
            return Err(self.err(format!("{at}.name"), "must not be empty"));
        }
        if g.peers.is_empty() {
            return Err(self.err(
                format!("{at}.peers"),
                "must list the addresses or ranges the group admits",
            ));
        }
        let peers = g
            .peers
            .iter()
            .enumerate()
            .map(|(i, s)| self.prefix(s, &format!("{at}.peers[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let peer_as = match g.peer_as {
            None => RemoteAs::External,
            Some(v) => self.remote_as(&v, &format!("{at}.peerAs"), true)?,
        };
        let mut allowed_prefixes = Vec::new();
        for (i, a) in g.allowed_prefixes.into_iter().enumerate() {
            allowed_prefixes.push(self.allowed(a, &format!("{at}.allowedPrefixes[{i}]"))?);
        }
        let max_prefixes = match g.max_prefixes {
            None => None,
            Some(v) => {
                let field = format!("{at}.maxPrefixes");
                Some(self.u32(&v, &field, "a number of prefixes")?)
            }
        };
        let (vrf, table) = match (g.vrf, g.table) {
            (Some(_), Some(_)) => {
                return Err(self.err(format!("{at}.table"), "give either vrf or table, not both"));
            }
            (Some(name), None) => match vrfs.iter().find(|v| v.name == name) {
                Some(v) => (Some(name), v.table),
                None => {
                    let known: Vec<&str> = vrfs.iter().map(|v| v.name.as_str()).collect();
                    return Err(self.err(
                        format!("{at}.vrf"),
                        format!("no VRF named {name:?} (vrfs has: {})", known.join(", ")),
                    ));
                }
            },
            (None, Some(t)) => {
                let field = format!("{at}.table");
                let t = self.u32(&t, &field, "a table number")?;
                if matches!(t, 0 | 253 | 255) {
                    return Err(self.err(
                        field,
                        format!("{t} is reserved (0 unspec, 253 default, 255 local)"),
                    ));
                }
                (
                    vrfs.iter().find(|v| v.table == t).map(|v| v.name.clone()),
                    t,
                )
            }
            (None, None) => (None, MAIN_TABLE),
        };
        let mut communities = Vec::new();
        let mut large_communities = Vec::new();
        for (i, c) in g.communities.iter().enumerate() {
            let field = format!("{at}.communities[{i}]");
            let c = c.trim();
            match c.matches(':').count() {
                0 | 1 => communities.push(c.parse::<Community>().map_err(|_| {
                    self.err(
                        &field,
                        format!("{c:?} is not a community (like 65010:100 or no-export)"),
                    )
                })?),
                2 => large_communities.push(c.parse::<LargeCommunity>().map_err(|_| {
                    self.err(
                        &field,
                        format!("{c:?} is not a large community (like 4200000001:1:2)"),
                    )
                })?),
                _ => {
                    return Err(self.err(
                        field,
                        format!(
                            "{c:?} is not a community (65010:100) or large community (65010:1:2)"
                        ),
                    ));
                }
            }
        }
        Ok(PodGroup {
            name,
            peers,
            peer_as,
            allowed_prefixes,
            max_prefixes,
            vrf,
            table,
            communities,
            large_communities,
            hold_time: self.hold_time(g.hold_time.as_ref(), &format!("{at}.holdTime"), 9)?,
            password: self.password(g.password, g.password_file, at)?,
            ttl_security_hops: self.ttl_security_hops(g.ttl_security_hops, at)?,
        })
    }

    fn allowed(&self, a: RawAllowed, at: &str) -> Result<AllowedPrefix, ConfigError> {
        let field = format!("{at}.prefix");
        let prefix = self.prefix(&self.required(a.prefix, &field)?, &field)?;
        let family = if prefix.addr().is_ipv4() {
            "IPv4"
        } else {
            "IPv6"
        };
        let max = prefix.max_prefix_len();
        let len = |v: Option<Scalar>, name: &str| -> Result<Option<u8>, ConfigError> {
            let Some(v) = v else { return Ok(None) };
            let field = format!("{at}.{name}");
            let n = self.u32(&v, &field, "a prefix length")?;
            if n > u32::from(max) {
                return Err(self.err(
                    field,
                    format!("{n} is longer than an {family} prefix can be"),
                ));
            }
            let n = n as u8;
            if n < prefix.prefix_len() {
                return Err(self.err(
                    field,
                    format!("{n} is shorter than the prefix {prefix} itself"),
                ));
            }
            Ok(Some(n))
        };
        let ge = len(a.ge, "ge")?;
        let le = len(a.le, "le")?;
        if let (Some(ge), Some(le)) = (ge, le)
            && ge > le
        {
            return Err(self.err(
                format!("{at}.ge"),
                format!("{ge} is greater than le {le}: no length is admitted"),
            ));
        }
        Ok(AllowedPrefix { prefix, ge, le })
    }

    fn cross_checks(
        &self,
        fabric: &[FabricNeighbor],
        groups: &[PodGroup],
    ) -> Result<(), ConfigError> {
        let mut seen: Vec<(IpNet, String)> = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for (gi, g) in groups.iter().enumerate() {
            if let Some(j) = names.iter().position(|n| *n == g.name) {
                return Err(self.err(
                    format!("podGroups[{gi}].name"),
                    format!("{:?} is already podGroups[{j}]", g.name),
                ));
            }
            names.push(&g.name);
            for (pi, p) in g.peers.iter().enumerate() {
                let here = format!("podGroups[{gi}].peers[{pi}]");
                if let Some((other, at)) = seen
                    .iter()
                    .find(|(o, _)| o.contains(&p.network()) || p.contains(&o.network()))
                {
                    return Err(self.err(here, format!("{p} overlaps {at} ({other})")));
                }
                if let Some((fi, f)) = fabric
                    .iter()
                    .enumerate()
                    .find(|(_, f)| f.interface.is_none() && p.contains(&f.address))
                {
                    return Err(self.err(
                        here,
                        format!("{p} admits fabric[{fi}] {} as a pod", f.address),
                    ));
                }
                seen.push((*p, here));
            }
        }
        Ok(())
    }
}

pub(crate) fn valid_ifname(s: &str) -> bool {
    !s.is_empty() && s.len() <= 15 && !s.contains(['/', ' ', '\t', '\n']) && s != "." && s != ".."
}

/// Parses `9s`, `500ms`, `2m`, `1h`, `1m30s` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            _ => return None,
        };
        total = total.checked_add(unit)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const FILE: &str = "/work/x/node.yaml";

    const EXAMPLE: &str = r#"
localAs: 65010
routerId: 192.0.2.10
listen: ["0.0.0.0:179", "[::]:179"]
http: 0.0.0.0:9180
forbiddenPrefixes: [10.244.0.0/16, 10.96.0.0/12, 192.0.2.0/24, 0.0.0.0/0, ::/0]
reconcileAfter: 10s
vrfs:
  - name: vips
    table: 100
    interfaces: [eth1]
fabric:
  - address: 192.0.2.1
    remoteAs: external
    description: tor1
podGroups:
  - name: lb
    peers: [10.244.1.0/24]
    peerAs: external
    allowedPrefixes:
      - {prefix: 198.51.100.0/24, ge: 32, le: 32}
    maxPrefixes: 16
    vrf: vips
    communities: ["65010:100"]
    holdTime: 9s
"#;

    fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
        NodeConfig::parse(text, Path::new(FILE))
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    /// The example with one line replaced (`from` must occur in it).
    fn with(from: &str, to: &str) -> String {
        assert!(EXAMPLE.contains(from), "{from}");
        EXAMPLE.replacen(from, to, 1)
    }

    #[test]
    fn the_documented_example_parses() {
        let c = parse(EXAMPLE).unwrap();
        assert_eq!(c.local_as, 65010);
        assert_eq!(c.router_id, Ipv4Addr::new(192, 0, 2, 10));
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.http, "0.0.0.0:9180".parse().unwrap());
        assert_eq!(c.forbidden_prefixes.len(), 5);
        assert_eq!(c.reconcile_after, Duration::from_secs(10));
        assert_eq!(c.vrfs[0].table, 100);
        assert_eq!(c.vrfs[0].interfaces, vec!["eth1"]);
        let f = &c.fabric[0];
        assert_eq!(f.address, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(f.remote_as, RemoteAs::External);
        assert_eq!(f.description, "tor1");
        let g = &c.pod_groups[0];
        assert_eq!(g.name, "lb");
        assert_eq!(g.peers, vec!["10.244.1.0/24".parse::<IpNet>().unwrap()]);
        assert_eq!(g.allowed_prefixes[0].ge, Some(32));
        assert_eq!(g.allowed_prefixes[0].le, Some(32));
        assert_eq!(g.max_prefixes, Some(16));
        assert_eq!((g.vrf.as_deref(), g.table), (Some("vips"), 100));
        assert_eq!(g.communities, vec![Community::new(65010, 100)]);
        assert_eq!(g.hold_time, Duration::from_secs(9));
        assert_eq!(
            c.group_of("10.244.1.7".parse().unwrap())
                .map(|g| g.name.as_str()),
            Some("lb")
        );
        assert!(c.group_of("10.244.2.7".parse().unwrap()).is_none());
    }

    #[test]
    fn bpf_interfaces_and_vrf_members_make_the_attach_list() {
        let c = parse(&with(
            "fabric:\n",
            "bpfInterfaces: [br.vips, vx.200, eth1]\nfabric:\n",
        ))
        .unwrap();
        assert_eq!(c.bpf_interfaces, vec!["br.vips", "vx.200", "eth1"]);
        // eth1 is also the VRF's member: once.
        assert_eq!(c.bpf_attach_list(), vec!["br.vips", "vx.200", "eth1"]);
        assert_eq!(
            c.bpf_lookup_from(),
            vec![("eth1".to_owned(), "vips".to_owned())]
        );
        let c = parse("localAs: 65010\nrouterId: 192.0.2.10\n").unwrap();
        assert!(
            c.bpf_attach_list().is_empty(),
            "nothing to attach: not loaded"
        );

        assert_eq!(
            error(&with(
                "fabric:\n",
                "bpfInterfaces: [eth0, 'a/b']\nfabric:\n"
            )),
            format!("bpfInterfaces[1]: \"a/b\" is not a valid interface name ({FILE})")
        );
        assert_eq!(
            error(&with("fabric:\n", "bpfInterfaces: [eth0, eth0]\nfabric:\n")),
            format!("bpfInterfaces[1]: \"eth0\" is already bpfInterfaces[0] ({FILE})")
        );
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let c = parse(
            "localAs: 65010\nrouterId: 192.0.2.10\npodGroups:\n  - name: a\n    peers: [10.1.1.1, 'fd00::1']\n",
        )
        .unwrap();
        assert_eq!(
            c.listen,
            vec!["0.0.0.0:179".parse().unwrap(), "[::]:179".parse().unwrap()]
        );
        assert_eq!(c.http, "0.0.0.0:9180".parse().unwrap());
        assert_eq!(c.reconcile_after, Duration::from_secs(10));
        let g = &c.pod_groups[0];
        assert_eq!(g.table, MAIN_TABLE);
        assert_eq!(g.peer_as, RemoteAs::External);
        assert_eq!(g.hold_time, Duration::from_secs(9));
        assert_eq!(
            g.peers,
            vec![
                "10.1.1.1/32".parse::<IpNet>().unwrap(),
                "fd00::1/128".parse::<IpNet>().unwrap()
            ]
        );
    }

    #[test]
    fn peer_as_forms() {
        let c = parse(&with("peerAs: external", "peerAs: 64512-65000")).unwrap();
        assert_eq!(c.pod_groups[0].peer_as, RemoteAs::Range(64512, 65000));
        let c = parse(&with("peerAs: external", "peerAs: 4200000001")).unwrap();
        assert_eq!(c.pod_groups[0].peer_as, RemoteAs::Number(4_200_000_001));
        assert_eq!(
            error(&with("peerAs: external", "peerAs: 65000-64000")),
            format!(
                "podGroups[0].peerAs: 65000-64000: the range is empty (65000 > 64000) ({FILE})"
            )
        );
        assert!(
            error(&with("peerAs: external", "peerAs: pods")).starts_with("podGroups[0].peerAs: ")
        );
    }

    #[test]
    fn ge_le_errors_name_the_field_and_file() {
        assert_eq!(
            error(&with("ge: 32, le: 32", "ge: 32, le: 33")),
            format!(
                "podGroups[0].allowedPrefixes[0].le: 33 is longer than an IPv4 prefix can be ({FILE})"
            )
        );
        assert_eq!(
            error(&with("ge: 32, le: 32", "ge: 16, le: 32")),
            format!(
                "podGroups[0].allowedPrefixes[0].ge: 16 is shorter than the prefix 198.51.100.0/24 itself ({FILE})"
            )
        );
        assert_eq!(
            error(&with("ge: 32, le: 32", "ge: 30, le: 28")),
            format!(
                "podGroups[0].allowedPrefixes[0].ge: 30 is greater than le 28: no length is admitted ({FILE})"
            )
        );
        let v6 = with(
            "{prefix: 198.51.100.0/24, ge: 32, le: 32}",
            "{prefix: 2001:db8::/32, le: 129}",
        );
        assert_eq!(
            error(&v6),
            format!(
                "podGroups[0].allowedPrefixes[0].le: 129 is longer than an IPv6 prefix can be ({FILE})"
            )
        );
    }

    #[test]
    fn second_group_errors_carry_its_index() {
        let text = format!(
            "{EXAMPLE}  - name: dns\n    peers: [10.244.2.0/24]\n    allowedPrefixes:\n      - {{prefix: 203.0.113.0/24, le: 33}}\n"
        );
        assert_eq!(
            error(&text),
            format!(
                "podGroups[1].allowedPrefixes[0].le: 33 is longer than an IPv4 prefix can be ({FILE})"
            )
        );
    }

    #[test]
    fn unknown_vrf_is_an_error() {
        assert_eq!(
            error(&with("vrf: vips", "vrf: vpn")),
            format!("podGroups[0].vrf: no VRF named \"vpn\" (vrfs has: vips) ({FILE})")
        );
    }

    #[test]
    fn overlapping_peer_ranges_are_an_error() {
        let text = format!("{EXAMPLE}  - name: dns\n    peers: [10.244.1.128/25]\n");
        assert_eq!(
            error(&text),
            format!(
                "podGroups[1].peers[0]: 10.244.1.128/25 overlaps podGroups[0].peers[0] (10.244.1.0/24) ({FILE})"
            )
        );
        let text = format!("{EXAMPLE}  - name: dns\n    peers: [10.244.0.0/16]\n");
        assert!(
            error(&text)
                .starts_with("podGroups[1].peers[0]: 10.244.0.0/16 overlaps podGroups[0].peers[0]")
        );
        let text = format!("{EXAMPLE}  - name: dns\n    peers: [10.244.2.0/24, 10.244.2.9]\n");
        assert!(
            error(&text)
                .starts_with("podGroups[1].peers[1]: 10.244.2.9/32 overlaps podGroups[1].peers[0]")
        );
    }

    #[test]
    fn fabric_inside_a_pod_range_is_an_error() {
        let text = with("peers: [10.244.1.0/24]", "peers: [192.0.2.0/30]");
        assert_eq!(
            error(&text),
            format!(
                "podGroups[0].peers[0]: 192.0.2.0/30 admits fabric[0] 192.0.2.1 as a pod ({FILE})"
            )
        );
    }

    #[test]
    fn field_errors() {
        let cases = [
            (
                with("localAs: 65010", "localAs: big"),
                "localAs: \"big\" is not an AS number",
            ),
            (
                with("localAs: 65010", "localAs: 0"),
                "localAs: 0 is not a valid AS number",
            ),
            (
                with("routerId: 192.0.2.10", "routerId: ::1"),
                "routerId: \"::1\" is not an IPv4 address",
            ),
            (with("routerId: 192.0.2.10\n", ""), "routerId: is required"),
            (
                with("0.0.0.0:179\"", "0.0.0.0\""),
                "listen[0]: \"0.0.0.0\" is not an address and port",
            ),
            (
                with("http: 0.0.0.0:9180", "http: nowhere"),
                "http: \"nowhere\" is not an address",
            ),
            (
                with("10.96.0.0/12", "10.96.0.1/12"),
                "forbiddenPrefixes[1]: 10.96.0.1/12 has host bits set (did you mean 10.96.0.0/12?)",
            ),
            (
                with("reconcileAfter: 10s", "reconcileAfter: soon"),
                "reconcileAfter: \"soon\" is not a duration",
            ),
            (
                with("table: 100", "table: 254"),
                "vrfs[0].table: 254 is reserved",
            ),
            (
                with(
                    "interfaces: [eth1]",
                    "interfaces: [a-very-long-interface-name]",
                ),
                "vrfs[0].interfaces[0]: \"a-very-long-interface-name\" is not a valid interface name",
            ),
            (
                with("address: 192.0.2.1", "address: tor1"),
                "fabric[0].address: \"tor1\" is not an IP address",
            ),
            (
                with("remoteAs: external", "remoteAs: 1-2"),
                "fabric[0].remoteAs: \"1-2\" is not one of",
            ),
            (
                with("peers: [10.244.1.0/24]", "peers: [10.244.1.0/33]"),
                "podGroups[0].peers[0]: \"10.244.1.0/33\" is not a prefix",
            ),
            (
                with("peers: [10.244.1.0/24]", "peers: []"),
                "podGroups[0].peers: must list",
            ),
            (
                with("maxPrefixes: 16", "maxPrefixes: -1"),
                "podGroups[0].maxPrefixes: \"-1\" is not a number",
            ),
            (
                with("\"65010:100\"", "\"65010\""),
                "podGroups[0].communities[0]: \"65010\" is not a community",
            ),
            (
                with("\"65010:100\"", "\"65010:100000\""),
                "podGroups[0].communities[0]: \"65010:100000\" is not a community",
            ),
            (
                with("holdTime: 9s", "holdTime: 2s"),
                "podGroups[0].holdTime: 2s: a hold time is 0 or",
            ),
            (
                with("vrf: vips", "vrf: vips\n    table: 100"),
                "podGroups[0].table: give either vrf or table",
            ),
            (
                with("peerAs: external", "peerAs: 65010"),
                "podGroups[0].peerAs: 65010 is our own localAs",
            ),
            (
                with("prefix: 198.51.100.0/24", "prefix: 198.51.100.0/16"),
                "podGroups[0].allowedPrefixes[0].prefix: 198.51.100.0/16 has host bits set",
            ),
        ];
        for (text, want) in cases {
            let got = error(&text);
            assert!(got.starts_with(want), "want {want:?}\n got {got:?}");
            assert!(got.ends_with(&format!("({FILE})")), "{got}");
        }
    }

    #[test]
    fn duplicates_are_errors() {
        let text = format!("{EXAMPLE}  - name: lb\n    peers: [10.244.9.0/24]\n");
        assert!(error(&text).starts_with("podGroups[1].name: \"lb\" is already podGroups[0]"));
        let text = with(
            "description: tor1",
            "description: tor1\n  - address: 192.0.2.1",
        );
        assert!(error(&text).starts_with("fabric[1].address: 192.0.2.1 is already fabric[0]"));
    }

    #[test]
    fn unnumbered_fabric_neighbor() {
        let c = parse(&with(
            "description: tor1",
            "description: tor1\n  - interface: eth2\n    description: tor2",
        ))
        .unwrap();
        let f = &c.fabric[1];
        assert_eq!(f.interface.as_deref(), Some("eth2"));
        assert_eq!(f.remote_as, RemoteAs::External);
        assert_eq!(f.name(), "interface eth2");
        assert_eq!(c.fabric[0].interface, None);
        let both = with("remoteAs: external", "interface: eth2");
        assert!(
            error(&both).starts_with("fabric[0].interface: give address or interface, not both"),
            "{}",
            error(&both)
        );
        let bad = with(
            "- address: 192.0.2.1",
            "- interface: a-very-long-interface-name",
        );
        assert!(error(&bad).starts_with(
            "fabric[0].interface: \"a-very-long-interface-name\" is not a valid interface name"
        ));
        let twice = with(
            "- address: 192.0.2.1",
            "- interface: eth2\n  - interface: eth2",
        );
        assert!(
            error(&twice).starts_with("fabric[1].interface: interface eth2 is already fabric[0]"),
            "{}",
            error(&twice)
        );
    }

    #[test]
    fn unknown_keys_and_bad_yaml_name_the_file() {
        let got = error(&with("maxPrefixes: 16", "maxPrefix: 16"));
        assert!(
            got.starts_with("line 22 column 5: unknown field `maxPrefix`"),
            "{got}"
        );
        assert_eq!(got.lines().count(), 1, "{got}");
        assert!(got.ends_with(&format!("({FILE})")), "{got}");
        let got = error("localAs: [");
        assert!(got.ends_with(&format!("({FILE})")), "{got}");
    }

    #[test]
    fn large_communities_and_tables() {
        let c = parse(&with("\"65010:100\"", "\"65010:100\", \"4200000001:1:2\"")).unwrap();
        assert_eq!(
            c.pod_groups[0].large_communities,
            vec![LargeCommunity::new(4_200_000_001, 1, 2)]
        );
        let c = parse(&with("vrf: vips", "table: 100")).unwrap();
        assert_eq!(
            (c.pod_groups[0].vrf.as_deref(), c.pod_groups[0].table),
            (Some("vips"), 100)
        );
        let c = parse(&with("vrf: vips", "table: 200")).unwrap();
        assert_eq!(
            (c.pod_groups[0].vrf.as_deref(), c.pod_groups[0].table),
            (None, 200)
        );
        assert_eq!(c.tables(), BTreeSet::from([200]));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("9s"), Some(Duration::from_secs(9)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("12"), Some(Duration::from_secs(12)));
        for bad in ["", "s", "9", "9x", "1.5s", "-1s"] {
            if bad == "9" {
                continue;
            }
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    /// The example with `extra` lines added to fabric[0] and podGroups[0]
    /// (each a list of `key: value`).
    fn secured(fabric: &str, group: &str) -> String {
        let mut text = EXAMPLE.to_owned();
        if !fabric.is_empty() {
            text = text.replacen(
                "    description: tor1\n",
                &format!("    description: tor1\n    {fabric}\n"),
                1,
            );
        }
        if !group.is_empty() {
            text = text.replacen(
                "    holdTime: 9s\n",
                &format!("    holdTime: 9s\n    {group}\n"),
                1,
            );
        }
        text
    }

    #[test]
    fn security_settings_are_off_by_default() {
        let c = parse(EXAMPLE).unwrap();
        let f = &c.fabric[0];
        assert_eq!(
            (&f.password, f.ttl_security_hops, f.role),
            (&None, None, None)
        );
        assert!(!f.strict_role);
        let g = &c.pod_groups[0];
        assert_eq!((&g.password, g.ttl_security_hops), (&None, None));
    }

    #[test]
    fn fabric_security_settings_are_read() {
        let c = parse(&secured(
            "password: s3cret\n    ttlSecurityHops: 1\n    role: customer\n    strictRole: true",
            "",
        ))
        .unwrap();
        let f = &c.fabric[0];
        assert_eq!(f.password.as_ref().map(Password::expose), Some("s3cret"));
        assert_eq!(f.ttl_security_hops, Some(1));
        assert_eq!(f.role, Some(Role::Customer));
        assert!(f.strict_role);
        for (name, role) in [
            ("provider", Role::Provider),
            ("rs", Role::RouteServer),
            ("rs-server", Role::RouteServer),
            ("rs-client", Role::RouteServerClient),
            ("customer", Role::Customer),
            ("peer", Role::Peer),
        ] {
            let c = parse(&secured(&format!("role: {name}"), "")).unwrap();
            assert_eq!(c.fabric[0].role, Some(role), "{name}");
            assert!(!c.fabric[0].strict_role, "strictRole defaults to false");
        }
        let c = parse(&secured("ttlSecurityHops: 254", "")).unwrap();
        assert_eq!(c.fabric[0].ttl_security_hops, Some(254));
        // YAML that reads as a number is still the key as written.
        let c = parse(&secured("password: 007", "")).unwrap();
        assert_eq!(c.fabric[0].password.as_ref().unwrap().expose(), "007");
    }

    #[test]
    fn pod_group_security_settings_are_read() {
        let c = parse(&secured("", "password: pods-key\n    ttlSecurityHops: 2")).unwrap();
        let g = &c.pod_groups[0];
        assert_eq!(g.password.as_ref().map(Password::expose), Some("pods-key"));
        assert_eq!(g.ttl_security_hops, Some(2));
    }

    #[test]
    fn a_password_file_is_read_at_load_less_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("tor1");
        for (content, want) in [
            ("s3cret\n", "s3cret"),
            ("s3cret", "s3cret"),
            ("s3cret\r\n", "s3cret"),
            (" spaced key \n", " spaced key "),
        ] {
            std::fs::write(&key, content).unwrap();
            let c = parse(&secured(&format!("passwordFile: {}", key.display()), "")).unwrap();
            assert_eq!(c.fabric[0].password.as_ref().unwrap().expose(), want);
            let c = parse(&secured("", &format!("passwordFile: {}", key.display()))).unwrap();
            assert_eq!(c.pod_groups[0].password.as_ref().unwrap().expose(), want);
        }
        // A relative path is relative to the configuration file.
        std::fs::write(&key, "rel\n").unwrap();
        let config = dir.path().join("node.yaml");
        let c = NodeConfig::parse(&secured("passwordFile: tor1", ""), &config).unwrap();
        assert_eq!(c.fabric[0].password.as_ref().unwrap().expose(), "rel");
    }

    #[test]
    fn passwords_never_show_in_debug_output() {
        let c = parse(&secured("password: s3cret", "password: pods-key")).unwrap();
        let shown = format!("{c:?} {:?}", c.fabric[0]);
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("pods-key"), "{shown}");
        assert!(shown.contains("Password(<redacted>)"), "{shown}");
    }

    #[test]
    fn security_errors_name_the_field_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let long = dir.path().join("long");
        std::fs::write(&long, format!("{}\n", "k".repeat(81))).unwrap();
        let two_lines = dir.path().join("two-lines");
        std::fs::write(&two_lines, "key\n\n").unwrap();
        let max = dir.path().join("max");
        std::fs::write(&max, "k".repeat(80)).unwrap();
        assert!(parse(&secured(&format!("passwordFile: {}", max.display()), "")).is_ok());
        assert!(parse(&secured(&format!("password: {}", "k".repeat(80)), "")).is_ok());

        let cases = [
            (
                secured("role: boss", ""),
                "fabric[0].role: \"boss\" is not one of: provider, rs, rs-client, customer, peer"
                    .to_owned(),
            ),
            (
                secured("strictRole: maybe", ""),
                "fabric[0].strictRole: \"maybe\" is not true or false".to_owned(),
            ),
            (
                secured("strictRole: true", ""),
                "fabric[0].strictRole: needs role".to_owned(),
            ),
            (
                secured("ttlSecurityHops: 0", ""),
                "fabric[0].ttlSecurityHops: 0 is not a number of hops from 1 to 254".to_owned(),
            ),
            (
                secured("ttlSecurityHops: 255", ""),
                "fabric[0].ttlSecurityHops: 255 is not a number of hops from 1 to 254".to_owned(),
            ),
            (
                secured("", "ttlSecurityHops: 255"),
                "podGroups[0].ttlSecurityHops: 255 is not a number of hops from 1 to 254"
                    .to_owned(),
            ),
            (
                secured("", "ttlSecurityHops: many"),
                "podGroups[0].ttlSecurityHops: \"many\" is not a number of hops".to_owned(),
            ),
            (
                secured("password: a\n    passwordFile: /etc/key", ""),
                "fabric[0].passwordFile: give password or passwordFile, not both".to_owned(),
            ),
            (
                secured("", "password: a\n    passwordFile: /etc/key"),
                "podGroups[0].passwordFile: give password or passwordFile, not both".to_owned(),
            ),
            (
                secured(&format!("passwordFile: {}", missing.display()), ""),
                format!(
                    "fabric[0].passwordFile: cannot read {}: ",
                    missing.display()
                ),
            ),
            (
                secured("", &format!("passwordFile: {}", missing.display())),
                format!(
                    "podGroups[0].passwordFile: cannot read {}: ",
                    missing.display()
                ),
            ),
            (
                secured(&format!("passwordFile: {}", empty.display()), ""),
                format!(
                    "fabric[0].passwordFile: the key in {} is empty",
                    empty.display()
                ),
            ),
            (
                secured("password: ''", ""),
                "fabric[0].password: the password is empty".to_owned(),
            ),
            (
                secured(&format!("password: {}", "k".repeat(81)), ""),
                "fabric[0].password: the password has 81 bytes: a TCP-MD5 key has at most 80"
                    .to_owned(),
            ),
            (
                secured("", &format!("passwordFile: {}", long.display())),
                format!(
                    "podGroups[0].passwordFile: the key in {} has 81 bytes: a TCP-MD5 key has at most 80",
                    long.display()
                ),
            ),
            (
                secured(&format!("passwordFile: {}", two_lines.display()), ""),
                format!(
                    "fabric[0].passwordFile: the key in {} holds a control character",
                    two_lines.display()
                ),
            ),
        ];
        for (text, want) in cases {
            let got = error(&text);
            assert!(got.starts_with(&want), "want {want:?}\n got {got:?}");
            assert!(got.ends_with(&format!("({FILE})")), "{got}");
            assert!(!got.contains("kkkk"), "the key is not shown: {got}");
        }
    }

    #[test]
    fn an_interface_neighbor_cannot_have_a_password() {
        let text = with("- address: 192.0.2.1", "- interface: eth2\n    password: x");
        let got = error(&text);
        assert!(
            got.starts_with("fabric[0].password: TCP-MD5 needs the neighbor's address"),
            "{got}"
        );
        // GTSM and roles are fine there.
        let text = with(
            "- address: 192.0.2.1",
            "- interface: eth2\n    ttlSecurityHops: 1\n    role: peer",
        );
        assert_eq!(parse(&text).unwrap().fabric[0].ttl_security_hops, Some(1));
    }

    #[test]
    fn graceful_restart_is_on_by_default_and_checked() {
        let c = parse(EXAMPLE).unwrap();
        assert_eq!(c.graceful_restart, Some(Duration::from_secs(120)));
        let set = |v: &str| format!("{EXAMPLE}gracefulRestart: {v}\n");
        let c = parse(&set("{restartTime: 30s}")).unwrap();
        assert_eq!(c.graceful_restart, Some(Duration::from_secs(30)));
        let c = parse(&set("{enabled: false}")).unwrap();
        assert_eq!(c.graceful_restart, None);
        for (v, want) in [
            (
                "{restartTime: 4096s}",
                "gracefulRestart.restartTime: 4096s is not whole seconds from 1s to 4095s",
            ),
            (
                "{restartTime: 500ms}",
                "gracefulRestart.restartTime: 500ms is not whole seconds",
            ),
            (
                "{restartTime: soon}",
                "gracefulRestart.restartTime: \"soon\" is not a duration",
            ),
            (
                "{enabled: maybe}",
                "gracefulRestart.enabled: \"maybe\" is not true or false",
            ),
            ("{restart: 1s}", "unknown field `restart`"),
        ] {
            let e = error(&set(v));
            assert!(e.contains(want), "{v}: {e}");
        }
    }
}
