//! The node's network plumbing per VRF, in both modes (native and FRR).
//!
//! The operator file (`--operator-config`, env `OPERATOR_CONFIG`, the seed
//! operator's `/opt/network-operator/config.yaml` read unchanged) maps VRF
//! names to VNIs (`vnimap`), names VRFs to leave alone (`skipVRFConfig`:
//! FRR gets only their route maps and prefix lists) and adds `bpfInterfaces`.
//! For each VRF of `vnimap` podpeer then wants:
//!
//! - the VRF device `<vrf>` with its table, where the kernel has VRF devices;
//!   without them, `ip rule iif <dev> lookup <table>` (priority
//!   [`RULE_PRIORITY`], both families) for the devices below;
//! - the bridge `br.<vrf>` and in it the VXLAN device `vx.<vni>` (local
//!   address `vxlanLocal` or the router id, port `vxlanPort` (4789), no
//!   learning);
//! - with `defaultVeth`, a veth pair: `<vrf>_def` in the VRF, `def_<vrf>` in
//!   the default table;
//! - all of them up, with `mtu` when given.
//!
//! The VRFs of the node configuration (`vrfs[]`: table and members) are
//! part of the same desired state: their VRF devices or member rules. A
//! `vnimap` VRF takes its table from the node configuration's VRF of the
//! same name, else the VNI is the table.
//!
//! [`plan`] compares that desired state with what the kernel has and says
//! what to do; [`apply`] does it. Devices podpeer creates carry the mark
//! (alias `podpeer`, see [`podpeer_host::netlink::PODPEER_ALIAS`]); only
//! those are ever changed or removed. A device of a wanted name that is not
//! podpeer's is a conflict, reported and left as it is (except a VRF device
//! bound to the right table, which is simply used). Rules podpeer added
//! (protocol 201, priority [`RULE_PRIORITY`]) that are no longer wanted go.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use podpeer_host::netlink::{
    Link, LinkChange, LinkSpec, Netlink, NetlinkError, RTPROT_PODPEER, Rule, Vxlan,
};
use serde::Deserialize;
use tracing::{info, warn};

use crate::config::{ConfigError, NodeConfig, valid_ifname};
use crate::daemon::{Provision, RULE_PRIORITY, provision_plan};

/// The VXLAN UDP port (IANA).
pub const VXLAN_PORT: u16 = 4789;

/// Largest VNI (24 bits).
const MAX_VNI: u32 = (1 << 24) - 1;

/// The operator file: the seed's keys plus podpeer's provisioning settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorConfig {
    /// The file it was read from (`None`: no operator file).
    pub file: Option<PathBuf>,
    /// VRF name to VNI.
    pub vnimap: BTreeMap<String, u32>,
    /// VRFs not to provision (FRR gets only their route maps and prefix
    /// lists).
    pub skip_vrf_config: Vec<String>,
    /// Interfaces for the tc-eBPF router (added to the node configuration's).
    pub bpf_interfaces: Vec<String>,
    /// The VXLAN devices' local address; default: the router id.
    pub vxlan_local: Option<IpAddr>,
    /// The VXLAN devices' UDP port.
    pub vxlan_port: u16,
    /// The MTU of the devices podpeer creates; `None`: the kernel's default.
    pub mtu: Option<u32>,
    /// VRFs that get a veth pair into the default table.
    pub default_veth: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawOperator {
    #[serde(default)]
    vnimap: BTreeMap<String, u64>,
    #[serde(default, rename = "skipVRFConfig")]
    skip_vrf_config: Vec<String>,
    #[serde(default)]
    bpf_interfaces: Vec<String>,
    vxlan_local: Option<String>,
    vxlan_port: Option<u64>,
    mtu: Option<u64>,
    #[serde(default)]
    default_veth: Vec<String>,
}

impl OperatorConfig {
    /// Reads and validates the operator file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            field: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates operator file text read from `file`.
    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let err = |field: String, message: String| ConfigError {
            file: file.to_path_buf(),
            field,
            message,
        };
        // An empty file is an empty configuration.
        let raw: RawOperator = if text.trim().is_empty() {
            serde_saphyr::from_str("{}")
        } else {
            serde_saphyr::from_str(text)
        }
        .map_err(|e| {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            err(
                String::new(),
                first.trim_start_matches("error: ").to_owned(),
            )
        })?;
        let mut vnimap = BTreeMap::new();
        let mut seen: HashMap<u32, String> = HashMap::new();
        for (name, vni) in raw.vnimap {
            let field = format!("vnimap.{name}");
            // The bridge `br.<vrf>` must fit IFNAMSIZ.
            if !valid_ifname(&format!("br.{name}")) {
                return Err(err(
                    field,
                    format!(
                        "{name:?} is not a usable VRF name (at most 12 characters, no '/' or spaces)"
                    ),
                ));
            }
            let vni = u32::try_from(vni)
                .ok()
                .filter(|v| (1..=MAX_VNI).contains(v))
                .ok_or_else(|| {
                    err(
                        field.clone(),
                        format!("{vni} is not a VNI (1 to {MAX_VNI})"),
                    )
                })?;
            if let Some(other) = seen.insert(vni, name.clone()) {
                return Err(err(field, format!("VNI {vni} is already vnimap.{other}'s")));
            }
            vnimap.insert(name, vni);
        }
        for (i, name) in raw.bpf_interfaces.iter().enumerate() {
            if !valid_ifname(name) {
                return Err(err(
                    format!("bpfInterfaces[{i}]"),
                    format!("{name:?} is not a valid interface name"),
                ));
            }
        }
        for (i, name) in raw.default_veth.iter().enumerate() {
            let field = format!("defaultVeth[{i}]");
            if !vnimap.contains_key(name) {
                return Err(err(field, format!("{name:?} is not in vnimap")));
            }
            if !valid_ifname(&format!("def_{name}")) {
                return Err(err(
                    field,
                    format!("{name:?} is too long for a veth pair (at most 11 characters)"),
                ));
            }
        }
        let vxlan_local = raw
            .vxlan_local
            .map(|s| {
                s.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| err("vxlanLocal".into(), format!("{s:?} is not an IP address")))
            })
            .transpose()?;
        let vxlan_port = match raw.vxlan_port {
            None => VXLAN_PORT,
            Some(p) => u16::try_from(p)
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| err("vxlanPort".into(), format!("{p} is not a UDP port")))?,
        };
        let mtu = raw
            .mtu
            .map(|m| {
                u32::try_from(m)
                    .ok()
                    .filter(|m| (68..=65535).contains(m))
                    .ok_or_else(|| err("mtu".into(), format!("{m} is not an MTU (68 to 65535)")))
            })
            .transpose()?;
        Ok(OperatorConfig {
            file: Some(file.to_path_buf()),
            vnimap,
            skip_vrf_config: raw.skip_vrf_config,
            bpf_interfaces: raw.bpf_interfaces,
            vxlan_local,
            vxlan_port,
            mtu,
            default_veth: raw.default_veth,
        })
    }

    /// The VRFs to provision, with their VNI and table, checked against the
    /// node configuration (a table taken from a VNI must be a usable table).
    pub fn vrfs(&self, node: &NodeConfig) -> Result<Vec<ProvisionedVrf>, ConfigError> {
        let file = self.file.clone().unwrap_or_default();
        let mut out = Vec::new();
        for (name, &vni) in &self.vnimap {
            if self.skip_vrf_config.contains(name) {
                continue;
            }
            let table = match node.vrfs.iter().find(|v| &v.name == name) {
                Some(v) => v.table,
                None => {
                    if matches!(vni, 253..=255) {
                        return Err(ConfigError {
                            file,
                            field: format!("vnimap.{name}"),
                            message: format!(
                                "VNI {vni} would be the table, and table {vni} is reserved: list {name:?} under the node configuration's vrfs with a table"
                            ),
                        });
                    }
                    vni
                }
            };
            out.push(ProvisionedVrf {
                name: name.clone(),
                vni,
                table,
                veth: self.default_veth.contains(name),
            });
        }
        Ok(out)
    }
}

/// Reads the operator file at `path` into `node`: checks its VRFs against
/// the node configuration and adds its `bpfInterfaces` (each once).
pub fn attach(node: &mut NodeConfig, path: &Path) -> Result<(), ConfigError> {
    let operator = OperatorConfig::load(path)?;
    operator.vrfs(node)?;
    for name in &operator.bpf_interfaces {
        if !node.bpf_interfaces.contains(name) {
            node.bpf_interfaces.push(name.clone());
        }
    }
    node.operator = operator;
    Ok(())
}

/// One VRF of `vnimap` to provision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedVrf {
    /// Its name.
    pub name: String,
    /// Its VNI.
    pub vni: u32,
    /// Its table.
    pub table: u32,
    /// Whether it gets a veth pair into the default table.
    pub veth: bool,
}

impl ProvisionedVrf {
    /// The bridge's name, `br.<vrf>`.
    pub fn bridge(&self) -> String {
        format!("br.{}", self.name)
    }
    /// The VXLAN device's name, `vx.<vni>`.
    pub fn vxlan(&self) -> String {
        format!("vx.{}", self.vni)
    }
    /// The VRF side of the veth pair, `<vrf>_def`.
    pub fn veth_vrf_side(&self) -> String {
        format!("{}_def", self.name)
    }
    /// The default table's side of the veth pair, `def_<vrf>`.
    pub fn veth_default_side(&self) -> String {
        format!("def_{}", self.name)
    }
}

/// A device podpeer wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredLink {
    /// Its name.
    pub name: String,
    /// What to create; `None` for a veth pair's second end (made with the
    /// first).
    pub spec: Option<LinkSpec>,
    /// Its MTU (`None`: whatever it has).
    pub mtu: Option<u32>,
    /// The device it is enslaved to.
    pub master: Option<String>,
}

/// Everything podpeer wants: devices in creation order (masters first),
/// and rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// The devices.
    pub links: Vec<DesiredLink>,
    /// The rules (kernels without VRF devices).
    pub rules: Vec<Rule>,
}

/// The desired state for `node` and its operator file's `vrfs` on a
/// kernel with (`has_vrf`) or without VRF devices.
pub fn desired(
    node: &NodeConfig,
    operator: &OperatorConfig,
    vrfs: &[ProvisionedVrf],
    has_vrf: bool,
) -> Desired {
    let mut d = Desired::default();
    for step in provision_plan(node, has_vrf) {
        match step {
            Provision::Vrf { name, table } => d.links.push(DesiredLink {
                name,
                spec: Some(LinkSpec::Vrf { table }),
                mtu: None,
                master: None,
            }),
            Provision::Rule(rule) => d.rules.push(rule),
        }
    }
    let local = operator.vxlan_local.unwrap_or(IpAddr::V4(node.router_id));
    let mtu = operator.mtu;
    for v in vrfs {
        let in_vrf = has_vrf.then(|| v.name.clone());
        if has_vrf && !d.links.iter().any(|l| l.name == v.name) {
            d.links.push(DesiredLink {
                name: v.name.clone(),
                spec: Some(LinkSpec::Vrf { table: v.table }),
                mtu: None,
                master: None,
            });
        }
        d.links.push(DesiredLink {
            name: v.bridge(),
            spec: Some(LinkSpec::Bridge),
            mtu,
            master: in_vrf.clone(),
        });
        d.links.push(DesiredLink {
            name: v.vxlan(),
            spec: Some(LinkSpec::Vxlan(Vxlan {
                vni: v.vni,
                local: Some(local),
                port: operator.vxlan_port,
                learning: false,
            })),
            mtu,
            master: Some(v.bridge()),
        });
        let mut reach = vec![v.bridge()];
        if v.veth {
            d.links.push(DesiredLink {
                name: v.veth_vrf_side(),
                spec: Some(LinkSpec::Veth {
                    peer: v.veth_default_side(),
                }),
                mtu,
                master: in_vrf.clone(),
            });
            d.links.push(DesiredLink {
                name: v.veth_default_side(),
                spec: None,
                mtu,
                master: None,
            });
            reach.push(v.veth_vrf_side());
        }
        if !has_vrf {
            for ifname in reach {
                for v6 in [false, true] {
                    let rule = Rule {
                        priority: RULE_PRIORITY,
                        iif: Some(ifname.clone()),
                        to: None,
                        from: None,
                        table: v.table,
                        v6,
                    };
                    if !d.rules.contains(&rule) {
                        d.rules.push(rule);
                    }
                }
            }
        }
    }
    d
}

/// A change to one device: see [`Action::Set`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// A new MTU.
    pub mtu: Option<u32>,
    /// A new master (`Some(None)`: released).
    pub master: Option<Option<String>>,
    /// Up or down.
    pub up: Option<bool>,
}

/// One step toward the desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Delete podpeer's device (not wanted any more, or to be recreated).
    Delete(String),
    /// Create a device (down; a [`Action::Set`] follows).
    Create(DesiredLink),
    /// Change a device of podpeer's.
    Set {
        /// The device.
        name: String,
        /// What changes.
        change: Change,
    },
    /// Add a rule.
    AddRule(Rule),
    /// Remove a rule podpeer added.
    RemoveRule(Rule),
}

/// What [`plan`] found: the steps, and the conflicts it will not resolve.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The steps, in order.
    pub actions: Vec<Action>,
    /// Devices in the way that are not podpeer's, with why.
    pub conflicts: Vec<String>,
}

/// The steps from the kernel's `links` and `rules` (each with its protocol)
/// to `desired`.
pub fn plan(desired: &Desired, links: &[Link], rules: &[(Rule, u8)]) -> Plan {
    let mut p = Plan::default();
    let by_name: HashMap<&str, &Link> = links.iter().map(|l| (l.name.as_str(), l)).collect();
    let name_of: HashMap<u32, &str> = links.iter().map(|l| (l.index, l.name.as_str())).collect();
    let wanted = |name: &str| desired.links.iter().any(|d| d.name == name);

    // Ours and not wanted: delete.
    for link in links {
        if link.is_ours() && !wanted(&link.name) {
            p.actions.push(Action::Delete(link.name.clone()));
        }
    }

    // Which wanted devices will be (re)created; the rest are compared.
    let mut fresh: Vec<&str> = Vec::new();
    let mut blocked: Vec<&str> = Vec::new();
    // Someone else's devices in the way: nothing is enslaved to them.
    let mut foreign: Vec<&str> = Vec::new();
    for d in &desired.links {
        let Some(spec) = &d.spec else { continue };
        match by_name.get(d.name.as_str()) {
            None => {
                p.actions.push(Action::Create(d.clone()));
                fresh.push(&d.name);
            }
            Some(link) if !link.is_ours() => {
                if let LinkSpec::Vrf { table } = spec
                    && link.kind.as_deref() == Some("vrf")
                    && link.vrf_table == Some(*table)
                {
                    // Someone's VRF on the right table: use it as it is.
                    blocked.push(&d.name);
                    continue;
                }
                p.conflicts.push(format!(
                    "{} exists and is not podpeer's (no alias podpeer); left as it is",
                    d.name
                ));
                blocked.push(&d.name);
                foreign.push(&d.name);
            }
            Some(link) => {
                let peer_missing =
                    matches!(spec, LinkSpec::Veth { peer } if !by_name.contains_key(peer.as_str()));
                if !same_kind(spec, link) || peer_missing {
                    p.actions.push(Action::Delete(d.name.clone()));
                    p.actions.push(Action::Create(d.clone()));
                    fresh.push(&d.name);
                }
            }
        }
        if let LinkSpec::Veth { peer } = spec
            && fresh.contains(&d.name.as_str())
        {
            if let Some(other) = by_name.get(peer.as_str())
                && !other.is_ours()
            {
                p.conflicts.push(format!(
                    "{peer} exists and is not podpeer's (no alias podpeer); left as it is"
                ));
                p.actions
                    .retain(|a| !matches!(a, Action::Create(c) if c.name == d.name));
                fresh.retain(|n| *n != d.name);
                blocked.push(&d.name);
                blocked.push(peer);
                foreign.push(peer);
                continue;
            }
            fresh.push(peer);
        }
    }

    // Settings of each wanted device (a fresh one is down, unenslaved, with
    // the desired MTU).
    for d in &desired.links {
        if blocked.contains(&d.name.as_str()) {
            continue;
        }
        let mut change = Change::default();
        if fresh.contains(&d.name.as_str()) {
            change.master = d.master.clone().map(Some);
            change.up = Some(true);
        } else if let Some(link) = by_name.get(d.name.as_str()) {
            if !link.is_ours() {
                p.conflicts.push(format!(
                    "{} exists and is not podpeer's (no alias podpeer); left as it is",
                    d.name
                ));
                continue;
            }
            let master = link
                .master
                .and_then(|i| name_of.get(&i))
                .map(|n| n.to_string());
            if master != d.master {
                change.master = Some(d.master.clone());
            }
            if d.mtu.is_some() && link.mtu != d.mtu {
                change.mtu = d.mtu;
            }
            if !link.up {
                change.up = Some(true);
            }
        } else {
            // A veth end whose pair is not made here: nothing to set.
            continue;
        }
        if let Some(Some(m)) = &change.master
            && foreign.contains(&m.as_str())
        {
            change.master = None;
        }
        if change != Change::default() {
            p.actions.push(Action::Set {
                name: d.name.clone(),
                change,
            });
        }
    }

    // Rules: add the missing (of any protocol counts as there), remove ours
    // not wanted.
    let same = |a: &Rule, b: &Rule| {
        a.priority == b.priority
            && a.iif == b.iif
            && a.to == b.to
            && a.from == b.from
            && a.table == b.table
            && a.v6 == b.v6
    };
    for rule in &desired.rules {
        if !rules.iter().any(|(r, _)| same(r, rule)) {
            p.actions.push(Action::AddRule(rule.clone()));
        }
    }
    for (rule, proto) in rules {
        if *proto == RTPROT_PODPEER
            && rule.priority == RULE_PRIORITY
            && !desired.rules.iter().any(|d| same(d, rule))
        {
            p.actions.push(Action::RemoveRule(rule.clone()));
        }
    }
    p
}

fn same_kind(spec: &LinkSpec, link: &Link) -> bool {
    match spec {
        LinkSpec::Bridge => link.kind.as_deref() == Some("bridge"),
        LinkSpec::Veth { .. } => link.kind.as_deref() == Some("veth"),
        LinkSpec::Vrf { table } => {
            link.kind.as_deref() == Some("vrf") && link.vrf_table == Some(*table)
        }
        LinkSpec::Vxlan(v) => {
            link.kind.as_deref() == Some("vxlan") && link.vxlan.as_ref() == Some(v)
        }
    }
}

/// What [`apply`] did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The steps taken, each with its result.
    pub done: Vec<(Action, Result<(), NetlinkError>)>,
    /// The conflicts left as they are.
    pub conflicts: Vec<String>,
}

impl Outcome {
    /// Whether every step succeeded and nothing was in the way.
    pub fn ok(&self) -> bool {
        self.conflicts.is_empty() && self.done.iter().all(|(_, r)| r.is_ok())
    }
}

/// Reads the kernel's devices and rules, plans, and takes the steps.
pub async fn apply(netlink: &Netlink, desired: &Desired) -> Result<Outcome, NetlinkError> {
    let links = netlink.links().await?;
    let mut rules = netlink.rules(false).await?;
    rules.extend(netlink.rules(true).await?);
    let p = plan(desired, &links, &rules);
    let mut outcome = Outcome {
        conflicts: p.conflicts,
        ..Outcome::default()
    };
    for action in p.actions {
        let result = step(netlink, &action).await;
        outcome.done.push((action, result));
    }
    Ok(outcome)
}

async fn step(netlink: &Netlink, action: &Action) -> Result<(), NetlinkError> {
    match action {
        Action::Delete(name) => netlink.delete_link(name).await.map(drop),
        Action::Create(d) => match &d.spec {
            Some(spec) => netlink.create_link(&d.name, spec, d.mtu).await.map(drop),
            None => Ok(()),
        },
        Action::Set { name, change } => {
            let master = match &change.master {
                None => None,
                Some(None) => Some(None),
                Some(Some(m)) => Some(Some(netlink.link_index(m).await?)),
            };
            netlink
                .set_link(
                    name,
                    &LinkChange {
                        mtu: change.mtu,
                        master,
                        up: change.up,
                    },
                )
                .await
        }
        Action::AddRule(rule) => netlink.ensure_rule(rule).await,
        Action::RemoveRule(rule) => netlink.remove_rule(rule).await,
    }
}

/// Provisions the node (the daemon's start): the desired state for this
/// kernel, applied, each step and conflict logged.
pub async fn provision(netlink: &Netlink, node: &NodeConfig) -> Result<Outcome, NetlinkError> {
    let has_vrf = netlink.has_vrf().await;
    let vrfs = match node.operator.vrfs(node) {
        Ok(v) => v,
        Err(e) => {
            // Validated at load; kept as a warning for configurations built
            // otherwise.
            warn!("provisioning: {e}");
            Vec::new()
        }
    };
    let desired = desired(node, &node.operator, &vrfs, has_vrf);
    let outcome = apply(netlink, &desired).await?;
    for (action, result) in &outcome.done {
        match result {
            Ok(()) => info!(?action, "provisioned"),
            Err(e) => warn!(?action, "cannot provision: {e}"),
        }
    }
    for c in &outcome.conflicts {
        warn!("provisioning: {c}");
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use podpeer_host::netlink::PODPEER_ALIAS;

    const SEED: &str = "vnimap: # VRF name to VNI\n  vrf1: 100\n  vrf2: 101\n  mgmt_vrf: 200\nskipVRFConfig:\n- mgmt_vrf\nbpfInterfaces:\n- \"br.mgmt_vrf\"\n- \"mgmt_vrf_def\"\n- \"vx.200\"\n";

    fn node() -> NodeConfig {
        NodeConfig::parse(
            "localAs: 65010\nrouterId: 192.0.2.10\nvrfs:\n  - {name: vrf1, table: 1100, interfaces: [eth1]}\n",
            Path::new("node.yaml"),
        )
        .unwrap()
    }

    fn operator(text: &str) -> OperatorConfig {
        OperatorConfig::parse(text, Path::new("op.yaml")).unwrap()
    }

    fn error(text: &str) -> String {
        OperatorConfig::parse(text, Path::new("op.yaml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_seed_file_reads_unchanged() {
        let op = operator(SEED);
        assert_eq!(op.vnimap.len(), 3);
        assert_eq!(op.vnimap["mgmt_vrf"], 200);
        assert_eq!(op.skip_vrf_config, vec!["mgmt_vrf".to_owned()]);
        assert_eq!(op.bpf_interfaces.len(), 3);
        assert_eq!(op.vxlan_port, VXLAN_PORT);
        assert_eq!(op.mtu, None);
        // Skipped VRFs are not provisioned; tables: the node's, else the VNI.
        let vrfs = op.vrfs(&node()).unwrap();
        let tables: Vec<(&str, u32, u32)> = vrfs
            .iter()
            .map(|v| (v.name.as_str(), v.vni, v.table))
            .collect();
        assert_eq!(tables, vec![("vrf1", 100, 1100), ("vrf2", 101, 101)]);
        assert_eq!(operator("").vnimap.len(), 0);
    }

    #[test]
    fn attach_merges_bpf_interfaces_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, SEED).unwrap();
        let mut n = NodeConfig::parse(
            "localAs: 65010\nrouterId: 192.0.2.10\nbpfInterfaces: [vx.200]\n",
            Path::new("node.yaml"),
        )
        .unwrap();
        attach(&mut n, &path).unwrap();
        assert_eq!(
            n.bpf_interfaces,
            vec!["vx.200", "br.mgmt_vrf", "mgmt_vrf_def"]
        );
        assert_eq!(n.operator.vnimap.len(), 3);
        let missing = attach(&mut n, &dir.path().join("nope.yaml")).unwrap_err();
        assert!(missing.to_string().contains("cannot read"), "{missing}");
    }

    #[test]
    fn bad_operator_files_name_field_and_file() {
        assert_eq!(
            error("vnimap: {a: 0}\n"),
            "vnimap.a: 0 is not a VNI (1 to 16777215) (op.yaml)"
        );
        assert_eq!(
            error("vnimap: {a: 16777216}\n"),
            "vnimap.a: 16777216 is not a VNI (1 to 16777215) (op.yaml)"
        );
        assert_eq!(
            error("vnimap: {a: 5, b: 5}\n"),
            "vnimap.b: VNI 5 is already vnimap.a's (op.yaml)"
        );
        assert!(
            error("vnimap: {averyveryverylongname: 5}\n")
                .starts_with("vnimap.averyveryverylongname: ")
        );
        assert_eq!(
            error("vnimap: {a: 5}\ndefaultVeth: [b]\n"),
            "defaultVeth[0]: \"b\" is not in vnimap (op.yaml)"
        );
        assert_eq!(
            error("vnimap: {a: 5}\nmtu: 10\n"),
            "mtu: 10 is not an MTU (68 to 65535) (op.yaml)"
        );
        assert_eq!(
            error("vxlanLocal: nowhere\n"),
            "vxlanLocal: \"nowhere\" is not an IP address (op.yaml)"
        );
        assert!(error("vnimapp: {}\n").contains("vnimapp"));
        let reserved = operator("vnimap: {x: 254}\n").vrfs(&node()).unwrap_err();
        assert_eq!(reserved.field, "vnimap.x");
    }

    fn rule(iif: &str, table: u32, v6: bool) -> Rule {
        Rule {
            priority: RULE_PRIORITY,
            iif: Some(iif.into()),
            to: None,
            from: None,
            table,
            v6,
        }
    }

    fn op_with_veth() -> OperatorConfig {
        operator("vnimap: {vrf1: 100}\ndefaultVeth: [vrf1]\nmtu: 1450\n")
    }

    fn desired_for(op: &OperatorConfig, has_vrf: bool) -> Desired {
        let n = node();
        desired(&n, op, &op.vrfs(&n).unwrap(), has_vrf)
    }

    #[test]
    fn without_vrf_devices_tables_are_reached_by_rules() {
        let d = desired_for(&op_with_veth(), false);
        let names: Vec<&str> = d.links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, vec!["br.vrf1", "vx.100", "vrf1_def", "def_vrf1"]);
        assert_eq!(
            d.links[1],
            DesiredLink {
                name: "vx.100".into(),
                spec: Some(LinkSpec::Vxlan(Vxlan {
                    vni: 100,
                    local: Some("192.0.2.10".parse().unwrap()),
                    port: 4789,
                    learning: false,
                })),
                mtu: Some(1450),
                master: Some("br.vrf1".into()),
            }
        );
        assert_eq!(d.links[0].master, None);
        assert_eq!(
            d.rules,
            vec![
                rule("eth1", 1100, false),
                rule("eth1", 1100, true),
                rule("br.vrf1", 1100, false),
                rule("br.vrf1", 1100, true),
                rule("vrf1_def", 1100, false),
                rule("vrf1_def", 1100, true),
            ]
        );
    }

    #[test]
    fn with_vrf_devices_the_bridge_and_veth_go_into_the_vrf() {
        let d = desired_for(&op_with_veth(), true);
        assert!(d.rules.is_empty());
        let get = |n: &str| d.links.iter().find(|l| l.name == n).unwrap();
        // The node configuration's VRF, once, first.
        assert_eq!(d.links[0].name, "vrf1");
        assert_eq!(d.links[0].spec, Some(LinkSpec::Vrf { table: 1100 }));
        assert_eq!(d.links.iter().filter(|l| l.name == "vrf1").count(), 1);
        assert_eq!(get("br.vrf1").master.as_deref(), Some("vrf1"));
        assert_eq!(get("vrf1_def").master.as_deref(), Some("vrf1"));
        assert_eq!(get("def_vrf1").master, None);
        assert_eq!(get("vx.100").master.as_deref(), Some("br.vrf1"));
    }

    fn link(index: u32, name: &str, kind: &str, ours: bool) -> Link {
        Link {
            index,
            name: name.into(),
            kind: Some(kind.into()),
            mtu: Some(1500),
            up: true,
            master: None,
            alias: ours.then(|| PODPEER_ALIAS.to_owned()),
            vxlan: None,
            vrf_table: None,
        }
    }

    /// The kernel as `plan`'s steps leave it for `d` (no VRF devices).
    fn as_built(d: &Desired) -> (Vec<Link>, Vec<(Rule, u8)>) {
        let mut links: Vec<Link> = Vec::new();
        for (i, l) in d.links.iter().enumerate() {
            let mut k = link(10 + i as u32, &l.name, "veth", true);
            k.mtu = l.mtu;
            match &l.spec {
                Some(LinkSpec::Bridge) => k.kind = Some("bridge".into()),
                Some(LinkSpec::Vxlan(v)) => {
                    k.kind = Some("vxlan".into());
                    k.vxlan = Some(v.clone());
                }
                Some(LinkSpec::Vrf { table }) => {
                    k.kind = Some("vrf".into());
                    k.vrf_table = Some(*table);
                }
                _ => {}
            }
            links.push(k);
        }
        for (i, l) in d.links.iter().enumerate() {
            links[i].master = l
                .master
                .as_ref()
                .and_then(|m| links.iter().find(|k| &k.name == m).map(|k| k.index));
        }
        let rules = d
            .rules
            .iter()
            .map(|r| (r.clone(), RTPROT_PODPEER))
            .collect();
        (links, rules)
    }

    #[test]
    fn from_nothing_create_then_set_then_rules() {
        let d = desired_for(&op_with_veth(), false);
        let p = plan(&d, &[link(1, "lo", "loopback", false)], &[]);
        assert!(p.conflicts.is_empty());
        let creates: Vec<&str> = p
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Create(l) => Some(l.name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(creates, vec!["br.vrf1", "vx.100", "vrf1_def"]);
        assert!(p.actions.contains(&Action::Set {
            name: "def_vrf1".into(),
            change: Change {
                up: Some(true),
                ..Change::default()
            }
        }));
        assert!(p.actions.contains(&Action::Set {
            name: "vx.100".into(),
            change: Change {
                master: Some(Some("br.vrf1".into())),
                up: Some(true),
                ..Change::default()
            }
        }));
        let rules = p
            .actions
            .iter()
            .filter(|a| matches!(a, Action::AddRule(_)))
            .count();
        assert_eq!(rules, 6);
    }

    #[test]
    fn as_built_needs_nothing() {
        let d = desired_for(&op_with_veth(), false);
        let (links, rules) = as_built(&d);
        assert_eq!(plan(&d, &links, &rules), Plan::default());
    }

    #[test]
    fn a_changed_vni_or_mtu_or_state_is_corrected() {
        let d = desired_for(&op_with_veth(), false);
        let (mut links, rules) = as_built(&d);
        links[1].vxlan.as_mut().unwrap().vni = 99;
        links[0].mtu = Some(9000);
        links[2].up = false;
        let p = plan(&d, &links, &rules);
        assert_eq!(
            p.actions,
            vec![
                Action::Delete("vx.100".into()),
                Action::Create(d.links[1].clone()),
                Action::Set {
                    name: "br.vrf1".into(),
                    change: Change {
                        mtu: Some(1450),
                        ..Change::default()
                    }
                },
                Action::Set {
                    name: "vx.100".into(),
                    change: Change {
                        master: Some(Some("br.vrf1".into())),
                        up: Some(true),
                        ..Change::default()
                    }
                },
                Action::Set {
                    name: "vrf1_def".into(),
                    change: Change {
                        up: Some(true),
                        ..Change::default()
                    }
                },
            ]
        );
    }

    #[test]
    fn only_ours_goes_and_foreign_devices_in_the_way_are_conflicts() {
        let d = desired_for(&op_with_veth(), false);
        let (mut links, mut rules) = as_built(&d);
        // Someone's bridge where we want ours; someone's unrelated VXLAN; an
        // old VXLAN of ours; someone's rule and an old rule of ours.
        links[0].alias = None;
        links.push(link(50, "vx.7", "vxlan", false));
        links.push(link(51, "vx.8", "vxlan", true));
        rules.push((rule("eth9", 7, false), 0));
        rules.push((rule("br.old", 8, false), RTPROT_PODPEER));
        let p = plan(&d, &links, &rules);
        assert_eq!(
            p.actions,
            vec![
                Action::Delete("vx.8".into()),
                Action::RemoveRule(rule("br.old", 8, false)),
            ]
        );
        assert_eq!(p.conflicts.len(), 1);
        assert!(p.conflicts[0].starts_with("br.vrf1 exists and is not podpeer's"));
    }

    #[test]
    fn a_foreign_vrf_on_the_right_table_is_used() {
        let d = desired_for(&operator("vnimap: {vrf1: 100}\n"), true);
        let (mut links, rules) = as_built(&d);
        links[0].alias = None;
        assert_eq!(plan(&d, &links, &rules), Plan::default());
        links[0].vrf_table = Some(5);
        assert_eq!(plan(&d, &links, &rules).conflicts.len(), 1);
    }

    #[test]
    fn a_lost_veth_peer_recreates_the_pair() {
        let d = desired_for(&op_with_veth(), false);
        let (mut links, rules) = as_built(&d);
        links.retain(|l| l.name != "def_vrf1");
        let p = plan(&d, &links, &rules);
        assert_eq!(p.actions[0], Action::Delete("vrf1_def".into()));
        assert_eq!(p.actions[1], Action::Create(d.links[2].clone()));
        assert!(
            p.actions
                .iter()
                .any(|a| matches!(a, Action::Set { name, .. } if name == "def_vrf1"))
        );
    }
}
