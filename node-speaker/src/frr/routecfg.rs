//! VRFRouteConfiguration: what one VRF imports from and exports to the
//! default VRF, as a prefix list per direction and a route map entry of its
//! own sequence. In file mode they come from a YAML list (the Kubernetes
//! resource of the same shape can feed the same type).
//!
//! ```yaml
//! - name: vips-leak            # for reports
//!   vrf: vips
//!   seq: 10                    # the route map entries' sequence
//!   import:                    # from the VRF into the default VRF
//!     - {cidr: 198.51.100.0/24, ge: 32, le: 32, action: permit}
//!   export:                    # from the default VRF into the VRF
//!     - {cidr: 10.96.0.0/12, seq: 5, action: deny}
//!   aggregate: [198.51.100.0/24]
//!   community: "65010:100"
//! ```

use std::path::Path;

use ipnet::IpNet;
use serde::Deserialize;

use super::{FINAL_SEQ, FrrVrf};
use crate::config::ConfigError;

/// Permit or deny, as in a prefix list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrefixAction {
    /// `permit`.
    #[default]
    Permit,
    /// `deny`.
    Deny,
}

impl PrefixAction {
    /// `permit` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrefixAction::Permit => "permit",
            PrefixAction::Deny => "deny",
        }
    }
}

/// One prefix list entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrefixItem {
    /// The prefix.
    pub cidr: IpNet,
    /// Its sequence in the list; default: 10 after the previous item's.
    #[serde(default)]
    pub seq: Option<u32>,
    /// Permit (default) or deny.
    #[serde(default)]
    pub action: PrefixAction,
    /// Shortest prefix length matched.
    #[serde(default)]
    pub ge: Option<u8>,
    /// Longest prefix length matched.
    #[serde(default)]
    pub le: Option<u8>,
}

/// Route leaking between one VRF and the default VRF.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VrfRouteConfiguration {
    /// Its name, for reports.
    pub name: String,
    /// The VRF.
    pub vrf: String,
    /// The sequence of its route map entries (1 to 65534).
    pub seq: u32,
    /// What goes from the VRF into the default VRF.
    #[serde(default)]
    pub import: Vec<PrefixItem>,
    /// What goes from the default VRF into the VRF.
    #[serde(default)]
    pub export: Vec<PrefixItem>,
    /// Aggregates announced in the VRF.
    #[serde(default)]
    pub aggregate: Vec<IpNet>,
    /// A community added to what the route map lets through.
    #[serde(default)]
    pub community: Option<String>,
}

/// Reads a YAML list of VRFRouteConfigurations (an empty file is none).
pub fn load(path: &Path) -> Result<Vec<VrfRouteConfiguration>, ConfigError> {
    let err = |field: String, message: String| ConfigError {
        file: path.to_path_buf(),
        field,
        message,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(String::new(), format!("cannot read: {e}")))?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<VrfRouteConfiguration> = serde_saphyr::from_str(&text).map_err(|e| {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default();
        err(
            String::new(),
            first.trim_start_matches("error: ").to_owned(),
        )
    })?;
    for (i, c) in list.iter().enumerate() {
        if c.seq == 0 || c.seq >= FINAL_SEQ {
            return Err(err(
                format!("[{i}].seq"),
                format!("{} is not a sequence from 1 to {}", c.seq, FINAL_SEQ - 1),
            ));
        }
        for (dir, items) in [("import", &c.import), ("export", &c.export)] {
            for (j, item) in items.iter().enumerate() {
                let max = if matches!(item.cidr, IpNet::V6(_)) {
                    128
                } else {
                    32
                };
                let len = item.cidr.prefix_len();
                for (what, v) in [("ge", item.ge), ("le", item.le)] {
                    if let Some(v) = v
                        && (v < len || v > max)
                    {
                        return Err(err(
                            format!("[{i}].{dir}[{j}].{what}"),
                            format!("{v} must be from {len} to {max} for {}", item.cidr),
                        ));
                    }
                }
            }
        }
    }
    Ok(list)
}

/// The items with their sequence numbers (given, or 10 after the previous).
pub fn numbered(items: &[PrefixItem]) -> Vec<(u32, &PrefixItem)> {
    let mut last = 0;
    items
        .iter()
        .map(|i| {
            let seq = i.seq.unwrap_or(last + 10);
            last = seq;
            (seq, i)
        })
        .collect()
}

/// The configurations that can be rendered, and the problems with the rest:
/// a VRF FRR does not know, two configurations with the same VRF and
/// sequence (both left out), two items of one list with the same sequence.
pub fn check<'a>(
    configs: &'a [VrfRouteConfiguration],
    vrfs: &[FrrVrf],
) -> (Vec<&'a VrfRouteConfiguration>, Vec<String>) {
    let mut problems = Vec::new();
    let mut bad = vec![false; configs.len()];
    for (i, c) in configs.iter().enumerate() {
        if !vrfs.iter().any(|v| v.name == c.vrf) {
            problems.push(format!(
                "VRFRouteConfiguration {}: VRF {:?} is not in vnimap; left out",
                c.name, c.vrf
            ));
            bad[i] = true;
        }
        if c.seq == 0 || c.seq >= FINAL_SEQ {
            problems.push(format!(
                "VRFRouteConfiguration {}: seq {} is not from 1 to {}; left out",
                c.name,
                c.seq,
                FINAL_SEQ - 1
            ));
            bad[i] = true;
        }
        for (dir, items) in [("import", &c.import), ("export", &c.export)] {
            let seqs: Vec<(u32, bool)> = numbered(items)
                .iter()
                .map(|(s, i)| (*s, matches!(i.cidr, IpNet::V6(_))))
                .collect();
            for (k, s) in seqs.iter().enumerate() {
                if seqs[..k].contains(s) {
                    problems.push(format!(
                        "VRFRouteConfiguration {}: two {dir} items have seq {}; left out",
                        c.name, s.0
                    ));
                    bad[i] = true;
                    break;
                }
            }
        }
        for (j, other) in configs[..i].iter().enumerate() {
            if other.vrf == c.vrf && other.seq == c.seq {
                problems.push(format!(
                    "VRFRouteConfigurations {} and {} both have seq {} in VRF {}; both left out",
                    other.name, c.name, c.seq, c.vrf
                ));
                bad[i] = true;
                bad[j] = true;
            }
        }
    }
    let ok = configs
        .iter()
        .zip(bad)
        .filter(|(_, b)| !b)
        .map(|(c, _)| c)
        .collect();
    (ok, problems)
}
