//! FRR mode: the node's FRR configuration rendered from its template.
//!
//! The template is the node's own FRR configuration with hint lines where
//! podpeer's parts go: `#++{{.VRFs}}`, `#++{{.Neighbors}}`,
//! `#++{{.NeighborsV4}}`, `#++{{.NeighborsV6}}`, `#++{{.BGP}}`,
//! `#++{{.PrefixLists}}`, `#++{{.RouteMaps}}` (see [`Hint`]). Everything
//! else in the template stays as it is: the node's own `router bgp` for the
//! default VRF (whose form must match what the running FRR shows, see
//! [`reload`]), and the management route maps of `skipVRFConfig` VRFs with
//! their pre-existing final entry (podpeer never renders sequence 65535 of
//! their route maps).
//!
//! What podpeer renders:
//!
//! - per provisioned VRF (`vnimap` less `skipVRFConfig`): `vrf <name>` with
//!   its VNI, and `router bgp <ASN> vrf <name>` with the EVPN type-5
//!   advertisement, the VRFRouteConfigurations' aggregates, and route
//!   leaking with the default VRF (`import vrf default` through
//!   `rm_<vrf>_export` there, `import vrf <name>` through `rm_<vrf>_import`
//!   in the default VRF); each such route map ends with `deny 65535`;
//! - per [`VrfRouteConfiguration`]: one prefix list per direction and
//!   family (`pl_<vrf>_<import|export>_<seq>`) and one entry of sequence
//!   `seq` in the direction's route map (`rm_<vrf>_<dir>` IPv4, `rm6_...`
//!   IPv6), setting the community when given;
//! - per pod group: a peer group `pg_<group>` with its listen ranges, remote
//!   AS and timers; the import guard as prefix lists (`pl_pg_<group>`:
//!   forbidden prefixes denied with everything more specific (a default
//!   route only itself), then the
//!   allowed prefixes with ge/le), the next hop within the group's IPv4 pod
//!   ranges (`pl_pg_<group>_nh`), the AS path the peer's AS only
//!   (`as_pg_<group>`: `^ASN(_ASN)*$`, or one AS when the group has no
//!   fixed AS) and route maps `rm_pg_<group>_in` (adding
//!   the group's communities) and `rm_pg_<group>_out` (nothing goes to
//!   pods); `maximum-prefix`; the group's `password` and `ttl-security
//!   hops` (FRR keys each listen range with the peer group's password).
//!
//! Two VRFRouteConfigurations with the same VRF and sequence, or one with
//! two prefix items of the same sequence, are conflicts: the configurations
//! involved are left out and reported in [`Rendered::problems`], never
//! rendered half.

pub mod driver;
pub mod http;
pub mod reload;
pub mod routecfg;
pub mod systemd;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bgp_core::fsm::RemoteAs;
use ipnet::IpNet;

use crate::config::{NodeConfig, PodGroup};
pub use routecfg::{PrefixAction, PrefixItem, VrfRouteConfiguration};

/// The last sequence of a VRF's route maps: the final deny (and, for
/// `skipVRFConfig` VRFs, the template's own entry).
pub const FINAL_SEQ: u32 = 65535;

/// A hint line of the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hint {
    /// `#++{{.VRFs}}`: the `vrf` blocks.
    Vrfs,
    /// `#++{{.Neighbors}}`: in the default VRF's `router bgp`.
    Neighbors,
    /// `#++{{.NeighborsV4}}`: in its `address-family ipv4 unicast`.
    NeighborsV4,
    /// `#++{{.NeighborsV6}}`: in its `address-family ipv6 unicast`.
    NeighborsV6,
    /// `#++{{.BGP}}`: after the `router bgp` blocks.
    Bgp,
    /// `#++{{.PrefixLists}}`.
    PrefixLists,
    /// `#++{{.RouteMaps}}`.
    RouteMaps,
}

impl Hint {
    const ALL: [Hint; 7] = [
        Hint::Vrfs,
        Hint::Neighbors,
        Hint::NeighborsV4,
        Hint::NeighborsV6,
        Hint::Bgp,
        Hint::PrefixLists,
        Hint::RouteMaps,
    ];

    /// The name inside the braces, e.g. `.VRFs`.
    pub fn name(self) -> &'static str {
        match self {
            Hint::Vrfs => ".VRFs",
            Hint::Neighbors => ".Neighbors",
            Hint::NeighborsV4 => ".NeighborsV4",
            Hint::NeighborsV6 => ".NeighborsV6",
            Hint::Bgp => ".BGP",
            Hint::PrefixLists => ".PrefixLists",
            Hint::RouteMaps => ".RouteMaps",
        }
    }

    fn parse(line: &str) -> Option<Result<Hint, String>> {
        let rest = line.trim().strip_prefix("#++")?;
        let name = rest.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
        Some(
            Hint::ALL
                .into_iter()
                .find(|h| h.name() == name)
                .ok_or_else(|| name.to_owned()),
        )
    }
}

/// Why a template cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A hint line names no known hint.
    #[error("template line {line}: unknown hint {{{{{name}}}}}")]
    UnknownHint {
        /// 1-based line number.
        line: usize,
        /// What it named.
        name: String,
    },
    /// Something is to be rendered at a hint the template lacks.
    #[error("the template has no #++{{{{{}}}}} line, and there is something to render there", .0.name())]
    MissingHint(Hint),
    /// A pod group's password has whitespace, which FRR's `neighbor X
    /// password WORD` cannot take.
    #[error("pod group {0}: FRR takes a password of one word, without spaces")]
    PasswordWithSpaces(String),
}

/// A rendered configuration and what was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The FRR configuration.
    pub config: String,
    /// VRFRouteConfigurations left out, and why (conflicting sequence
    /// numbers, unknown VRF).
    pub problems: Vec<String>,
}

/// The VRFs FRR knows about: name, VNI, and whether podpeer configures it
/// fully (`false`: `skipVRFConfig`, only route maps and prefix lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrrVrf {
    /// The VRF's name.
    pub name: String,
    /// Its VNI.
    pub vni: u32,
    /// Whether podpeer renders its `vrf` and `router bgp` blocks.
    pub full: bool,
}

/// The VRFs of the node's operator file.
pub fn vrfs_of(node: &NodeConfig) -> Vec<FrrVrf> {
    node.operator
        .vnimap
        .iter()
        .map(|(name, &vni)| FrrVrf {
            name: name.clone(),
            vni,
            full: !node.operator.skip_vrf_config.contains(name),
        })
        .collect()
}

/// Renders `template` for `node` with `route_configs`.
pub fn render(
    template: &str,
    node: &NodeConfig,
    route_configs: &[VrfRouteConfiguration],
) -> Result<Rendered, RenderError> {
    if let Some(g) = node.pod_groups.iter().find(|g| {
        g.password
            .as_ref()
            .is_some_and(|p| p.expose().contains(char::is_whitespace))
    }) {
        return Err(RenderError::PasswordWithSpaces(g.name.clone()));
    }
    let vrfs = vrfs_of(node);
    let (accepted, problems) = routecfg::check(route_configs, &vrfs);
    let mut parts: BTreeMap<Hint, String> = BTreeMap::new();
    let mut put = |hint: Hint, text: String| parts.entry(hint).or_default().push_str(&text);

    let asn = node.local_as;
    // VRFs and their BGP instances.
    for v in vrfs.iter().filter(|v| v.full) {
        put(
            Hint::Vrfs,
            format!("vrf {}\n vni {}\nexit-vrf\n", v.name, v.vni),
        );
        let mine: Vec<&VrfRouteConfiguration> = accepted
            .iter()
            .copied()
            .filter(|c| c.vrf == v.name)
            .collect();
        let mut b = format!(
            "router bgp {asn} vrf {}\n bgp router-id {}\n no bgp ebgp-requires-policy\n",
            v.name, node.router_id
        );
        let groups: Vec<&PodGroup> = node
            .pod_groups
            .iter()
            .filter(|g| g.vrf.as_deref() == Some(v.name.as_str()))
            .collect();
        for g in &groups {
            b.push_str(&group_neighbors(g));
        }
        for (v6, af) in [(false, "ipv4"), (true, "ipv6")] {
            let _ = writeln!(b, " address-family {af} unicast");
            b.push_str("  redistribute connected\n");
            for c in &mine {
                for a in c.aggregate.iter().filter(|a| is_v6(a) == v6) {
                    let _ = writeln!(b, "  aggregate-address {a}");
                }
            }
            for g in &groups {
                b.push_str(&group_af(g, v6));
            }
            let _ = writeln!(
                b,
                "  import vrf route-map {}\n  import vrf default",
                rm_name(&v.name, "export", v6)
            );
            b.push_str(" exit-address-family\n");
            // The default VRF imports from this one.
            let hint = if v6 {
                Hint::NeighborsV6
            } else {
                Hint::NeighborsV4
            };
            put(
                hint,
                format!(
                    "  import vrf route-map {}\n  import vrf {}\n",
                    rm_name(&v.name, "import", v6),
                    v.name
                ),
            );
        }
        b.push_str(
            " address-family l2vpn evpn\n  advertise ipv4 unicast\n  advertise ipv6 unicast\n exit-address-family\nexit\n",
        );
        put(Hint::Bgp, b);
    }

    // The VRFRouteConfigurations: prefix lists and route map entries.
    for c in &accepted {
        let (pl, rm) = route_config(c);
        put(Hint::PrefixLists, pl);
        put(Hint::RouteMaps, rm);
    }
    // The final deny of the route maps podpeer owns.
    for v in vrfs.iter().filter(|v| v.full) {
        for dir in ["import", "export"] {
            for v6 in [false, true] {
                put(
                    Hint::RouteMaps,
                    format!(
                        "route-map {} deny {FINAL_SEQ}\nexit\n",
                        rm_name(&v.name, dir, v6)
                    ),
                );
            }
        }
    }

    // Pod groups of the default VRF (those of a rendered VRF are in its
    // instance; those of another table have no FRR instance to go into).
    let rendered_vrf = |g: &PodGroup| {
        g.vrf
            .as_ref()
            .is_some_and(|n| vrfs.iter().any(|v| v.full && &v.name == n))
    };
    for g in &node.pod_groups {
        if !rendered_vrf(g) {
            put(Hint::Neighbors, group_neighbors(g));
            put(Hint::NeighborsV4, group_af(g, false));
            put(Hint::NeighborsV6, group_af(g, true));
        }
        let (pl, rm) = group_guard(g, &node.forbidden_prefixes);
        put(Hint::PrefixLists, pl);
        put(Hint::RouteMaps, rm);
    }

    let config = fill(template, &parts)?;
    Ok(Rendered { config, problems })
}

/// Replaces each hint line with its part.
fn fill(template: &str, parts: &BTreeMap<Hint, String>) -> Result<String, RenderError> {
    let mut out = String::with_capacity(template.len() + 1024);
    let mut seen: Vec<Hint> = Vec::new();
    for (i, line) in template.lines().enumerate() {
        match Hint::parse(line) {
            None => {
                out.push_str(line);
                out.push('\n');
            }
            Some(Err(name)) => {
                return Err(RenderError::UnknownHint { line: i + 1, name });
            }
            Some(Ok(hint)) => {
                seen.push(hint);
                if let Some(text) = parts.get(&hint) {
                    out.push_str(text);
                }
            }
        }
    }
    for (hint, text) in parts {
        if !text.is_empty() && !seen.contains(hint) {
            return Err(RenderError::MissingHint(*hint));
        }
    }
    Ok(out)
}

fn is_v6(net: &IpNet) -> bool {
    matches!(net, IpNet::V6(_))
}

fn family(v6: bool) -> &'static str {
    if v6 { "ipv6" } else { "ip" }
}

/// `rm_<vrf>_<dir>` (IPv4) or `rm6_<vrf>_<dir>` (IPv6).
pub fn rm_name(vrf: &str, dir: &str, v6: bool) -> String {
    if v6 {
        format!("rm6_{vrf}_{dir}")
    } else {
        format!("rm_{vrf}_{dir}")
    }
}

fn prefix_line(
    list: &str,
    seq: u32,
    action: &str,
    net: &IpNet,
    ge: Option<u8>,
    le: Option<u8>,
) -> String {
    let mut line = format!(
        "{} prefix-list {list} seq {seq} {action} {net}",
        family(is_v6(net))
    );
    if let Some(ge) = ge {
        let _ = write!(line, " ge {ge}");
    }
    if let Some(le) = le {
        let _ = write!(line, " le {le}");
    }
    line.push('\n');
    line
}

/// One VRFRouteConfiguration: its prefix lists and route map entries.
fn route_config(c: &VrfRouteConfiguration) -> (String, String) {
    let (mut pl, mut rm) = (String::new(), String::new());
    for (dir, items) in [("import", &c.import), ("export", &c.export)] {
        for v6 in [false, true] {
            let items: Vec<(u32, &PrefixItem)> = routecfg::numbered(items)
                .into_iter()
                .filter(|(_, i)| is_v6(&i.cidr) == v6)
                .collect();
            if items.is_empty() {
                continue;
            }
            let list = format!("pl_{}_{dir}_{}", c.vrf, c.seq);
            for (seq, item) in items {
                pl.push_str(&prefix_line(
                    &list,
                    seq,
                    item.action.as_str(),
                    &item.cidr,
                    item.ge,
                    item.le,
                ));
            }
            let _ = writeln!(
                rm,
                "route-map {} permit {}\n match {} address prefix-list {list}",
                rm_name(&c.vrf, dir, v6),
                c.seq,
                family(v6)
            );
            if let Some(community) = &c.community {
                let _ = writeln!(rm, " set community {community} additive");
            }
            rm.push_str("exit\n");
        }
    }
    (pl, rm)
}

fn remote_as(r: &RemoteAs) -> String {
    match r {
        RemoteAs::Number(n) => n.to_string(),
        RemoteAs::Internal => "internal".to_owned(),
        // FRR has no AS ranges: any external AS.
        RemoteAs::External | RemoteAs::Any | RemoteAs::Range(..) => "external".to_owned(),
    }
}

/// The peer group and its listen ranges (in a `router bgp`).
fn group_neighbors(g: &PodGroup) -> String {
    let pg = format!("pg_{}", g.name);
    let mut s = format!(
        " neighbor {pg} peer-group\n neighbor {pg} remote-as {}\n",
        remote_as(&g.peer_as)
    );
    let hold = g.hold_time.as_secs();
    if hold > 0 {
        let _ = writeln!(s, " neighbor {pg} timers {} {hold}", (hold / 3).max(1));
    }
    // FRR keys the listen ranges with the peer group's password (prefix
    // keys, as bgp-core does) and applies GTSM to each dynamic neighbor.
    if let Some(p) = &g.password {
        let _ = writeln!(s, " neighbor {pg} password {}", p.expose());
    }
    if let Some(hops) = g.ttl_security_hops {
        let _ = writeln!(s, " neighbor {pg} ttl-security hops {hops}");
    }
    for range in &g.peers {
        let _ = writeln!(s, " bgp listen range {range} peer-group {pg}");
    }
    s
}

/// The peer group in one address family.
fn group_af(g: &PodGroup, v6: bool) -> String {
    if !g.allowed_prefixes.iter().any(|a| is_v6(&a.prefix) == v6) {
        return String::new();
    }
    let pg = format!("pg_{}", g.name);
    let mut s = format!(
        "  neighbor {pg} activate\n  neighbor {pg} route-map {} in\n  neighbor {pg} route-map rm_pg_{}_out out\n",
        group_rm(g, v6),
        g.name
    );
    if let Some(max) = g.max_prefixes {
        let _ = writeln!(s, "  neighbor {pg} maximum-prefix {max}");
    }
    s
}

fn group_rm(g: &PodGroup, v6: bool) -> String {
    if v6 {
        format!("rm6_pg_{}_in", g.name)
    } else {
        format!("rm_pg_{}_in", g.name)
    }
}

/// The import guard of a group as prefix lists and route maps.
fn group_guard(g: &PodGroup, forbidden: &[IpNet]) -> (String, String) {
    let (mut pl, mut rm) = (String::new(), String::new());
    let list = format!("pl_pg_{}", g.name);
    // The next hop: one of the group's pod addresses (FRR cannot compare it
    // with each dynamic neighbor's own address; IPv4 next hops only).
    let next_hops = format!("pl_pg_{}_nh", g.name);
    let v4_peers: Vec<&IpNet> = g.peers.iter().filter(|p| !is_v6(p)).collect();
    let has_v4_peers = !v4_peers.is_empty();
    let mut seq = 0;
    for p in &v4_peers {
        seq += 5;
        pl.push_str(&prefix_line(
            &next_hops,
            seq,
            "permit",
            p,
            None,
            (p.prefix_len() < 32).then_some(32),
        ));
    }
    // The AS path: the peer's AS only, prepending allowed; without a fixed
    // AS (external, a range) exactly one AS, which FRR's enforce-first-as
    // makes the peer's.
    let as_path = format!("as_pg_{}", g.name);
    let regex = match &g.peer_as {
        RemoteAs::Number(asn) => format!("^{asn}(_{asn})*$"),
        RemoteAs::Internal | RemoteAs::External | RemoteAs::Any | RemoteAs::Range(..) => {
            "^[0-9]+$".to_owned()
        }
    };
    let _ = writeln!(pl, "bgp as-path access-list {as_path} seq 5 permit {regex}");
    for v6 in [false, true] {
        let allowed: Vec<_> = g
            .allowed_prefixes
            .iter()
            .filter(|a| is_v6(&a.prefix) == v6)
            .collect();
        if allowed.is_empty() {
            continue;
        }
        let max_len = if v6 { 128 } else { 32 };
        let mut seq = 0;
        for f in forbidden.iter().filter(|f| is_v6(f) == v6) {
            seq += 5;
            // A default route forbids only itself (as in the import guard).
            let le = (f.prefix_len() > 0 && f.prefix_len() < max_len).then_some(max_len);
            pl.push_str(&prefix_line(&list, seq, "deny", f, None, le));
        }
        for a in allowed {
            seq += 5;
            pl.push_str(&prefix_line(&list, seq, "permit", &a.prefix, a.ge, a.le));
        }
        let _ = writeln!(
            rm,
            "route-map {} permit 10\n match {} address prefix-list {list}",
            group_rm(g, v6),
            family(v6)
        );
        if !v6 && has_v4_peers {
            let _ = writeln!(rm, " match ip next-hop prefix-list {next_hops}");
        }
        let _ = writeln!(rm, " match as-path {as_path}");
        let communities: Vec<String> = g.communities.iter().map(ToString::to_string).collect();
        if !communities.is_empty() {
            let _ = writeln!(rm, " set community {} additive", communities.join(" "));
        }
        rm.push_str("exit\n");
    }
    let _ = writeln!(rm, "route-map rm_pg_{}_out deny 10\nexit", g.name);
    (pl, rm)
}

#[cfg(test)]
mod tests;
