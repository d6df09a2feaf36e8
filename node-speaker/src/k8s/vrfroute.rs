//! `VRFRouteConfiguration` resources (the seed network operator's
//! `network.schiff.telekom.de/v1alpha1`, cluster-scoped) for FRR mode: a
//! watch keeps the list current and hands it, converted to
//! [`crate::frr::routecfg::VrfRouteConfiguration`], to the FRR driver.
//! podpeer does not install this CRD: the operator's own serves.
//!
//! ```yaml
//! apiVersion: network.schiff.telekom.de/v1alpha1
//! kind: VRFRouteConfiguration
//! metadata: {name: vips-leak}
//! spec:
//!   vrf: vips
//!   seq: 10
//!   import: [{cidr: 198.51.100.0/24, ge: 32, le: 32, action: permit, seq: 10}]
//!   export: [{cidr: 10.96.0.0/12, action: deny}]
//!   aggregate: [198.51.100.0/24]
//!   community: "65010:200"
//! ```

use futures::StreamExt;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter as EventReporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, CustomResource, ResourceExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use crate::frr::routecfg::{self, PrefixAction, PrefixItem};

/// What one VRF imports from and exports to the default VRF.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kube(
    group = "network.schiff.telekom.de",
    version = "v1alpha1",
    kind = "VRFRouteConfiguration",
    plural = "vrfrouteconfigurations",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct VRFRouteConfigurationSpec {
    /// The VRF.
    pub vrf: String,
    /// The sequence of its route map entries (1 to 65534).
    pub seq: u32,
    /// What goes from the VRF into the default VRF.
    #[serde(default)]
    pub import: Vec<PrefixItemSpec>,
    /// What goes from the default VRF into the VRF.
    #[serde(default)]
    pub export: Vec<PrefixItemSpec>,
    /// Aggregates announced in the VRF.
    #[serde(default)]
    pub aggregate: Vec<String>,
    /// A community added to what the route maps let through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub community: Option<String>,
    /// The VRF's MTU (the operator's field; provisioning takes MTUs from
    /// the operator file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// One prefix list item.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PrefixItemSpec {
    /// The prefix.
    pub cidr: String,
    /// Its sequence in the list (0 or absent: 10 after the previous).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u32>,
    /// `permit` (default) or `deny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Shortest prefix length matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ge: Option<u8>,
    /// Longest prefix length matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub le: Option<u8>,
}

/// The resource as the FRR renderer takes it, or what is wrong with it
/// (naming the field).
pub fn convert(obj: &VRFRouteConfiguration) -> Result<routecfg::VrfRouteConfiguration, String> {
    let s = &obj.spec;
    let items = |dir: &str, items: &[PrefixItemSpec]| -> Result<Vec<PrefixItem>, String> {
        items
            .iter()
            .enumerate()
            .map(|(j, i)| {
                let at = format!("spec.{dir}[{j}]");
                let cidr: IpNet = i
                    .cidr
                    .parse()
                    .map_err(|_| format!("{at}.cidr: {:?} is not a CIDR prefix", i.cidr))?;
                let action = match i.action.as_deref().unwrap_or("permit") {
                    "permit" => PrefixAction::Permit,
                    "deny" => PrefixAction::Deny,
                    other => return Err(format!("{at}.action: {other:?} is not permit or deny")),
                };
                let max = if matches!(cidr, IpNet::V6(_)) {
                    128
                } else {
                    32
                };
                for (what, v) in [("ge", i.ge), ("le", i.le)] {
                    if let Some(v) = v
                        && (v < cidr.prefix_len() || v > max)
                    {
                        return Err(format!(
                            "{at}.{what}: {v} must be from {} to {max} for {cidr}",
                            cidr.prefix_len()
                        ));
                    }
                }
                Ok(PrefixItem {
                    cidr,
                    seq: i.seq.filter(|&q| q != 0),
                    action,
                    ge: i.ge,
                    le: i.le,
                })
            })
            .collect()
    };
    let aggregate = s
        .aggregate
        .iter()
        .enumerate()
        .map(|(j, a)| {
            a.parse()
                .map_err(|_| format!("spec.aggregate[{j}]: {a:?} is not a CIDR prefix"))
        })
        .collect::<Result<Vec<IpNet>, String>>()?;
    Ok(routecfg::VrfRouteConfiguration {
        name: obj.name_any(),
        vrf: s.vrf.clone(),
        seq: s.seq,
        import: items("import", &s.import)?,
        export: items("export", &s.export)?,
        aggregate,
        community: s.community.clone(),
    })
}

/// The store's resources converted, by name; the invalid ones logged and
/// left out.
fn converted(store: &Store<VRFRouteConfiguration>) -> Vec<routecfg::VrfRouteConfiguration> {
    let mut out: Vec<routecfg::VrfRouteConfiguration> = store
        .state()
        .iter()
        .filter_map(|o| match convert(o) {
            Ok(c) => Some(c),
            Err(e) => {
                warn!(name = o.name_any(), "VRFRouteConfiguration left out: {e}");
                None
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Watches the VRFRouteConfigurations: `None` until the first list is
/// complete, then the current list on every change.
pub fn watch_all(client: Client) -> watch::Receiver<Option<Vec<routecfg::VrfRouteConfiguration>>> {
    let (tx, rx) = watch::channel(None);
    let api: Api<VRFRouteConfiguration> = Api::all(client);
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut listed = false;
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::InitDone) => listed = true,
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {}
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => continue,
                Err(e) => {
                    warn!("VRFRouteConfiguration watch failed, resuming: {e}");
                    continue;
                }
            }
            if listed {
                let now = Some(converted(&reader));
                tx.send_if_modified(|v| {
                    let changed = *v != now;
                    if changed {
                        *v = now;
                    }
                    changed
                });
            }
        }
        debug!("VRFRouteConfiguration watch ended");
    });
    rx
}

/// Publishes each new problem of the FRR render (conflicting sequences,
/// unknown VRFs: configurations left out) as a Warning Event on this Node,
/// `RouteConfigurationProblem`, until `problems` closes.
pub async fn report_problems(
    client: Client,
    node: String,
    mut problems: mpsc::Receiver<Vec<String>>,
) {
    let recorder = Recorder::new(
        client,
        EventReporter {
            controller: "podpeer-node".into(),
            instance: Some(node.clone()),
        },
    );
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(node.clone()),
        ..Default::default()
    };
    let mut reported: Vec<String> = Vec::new();
    while let Some(found) = problems.recv().await {
        for p in found.iter().filter(|p| !reported.contains(p)) {
            let ev = Event {
                type_: EventType::Warning,
                reason: "RouteConfigurationProblem".into(),
                note: Some(p.clone()),
                action: "RenderFRR".into(),
                secondary: None,
            };
            if let Err(e) = recorder.publish(&ev, &reference).await {
                warn!(node, "cannot publish an Event: {e}");
            }
        }
        reported = found;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn obj(spec: serde_json::Value) -> VRFRouteConfiguration {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "network.schiff.telekom.de/v1alpha1",
            "kind": "VRFRouteConfiguration",
            "metadata": {"name": "leak"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn the_operators_format_converts_and_bad_fields_are_named() {
        let c = convert(&obj(serde_json::json!({
            "vrf": "vips", "seq": 10, "mtu": 9000,
            "import": [{"cidr": "198.51.100.0/24", "ge": 32, "le": 32, "action": "permit", "seq": 0}],
            "export": [{"cidr": "10.96.0.0/12", "action": "deny", "seq": 5}],
            "aggregate": ["198.51.100.0/24"], "community": "65010:200",
        })))
        .unwrap();
        assert_eq!(
            (c.name.as_str(), c.vrf.as_str(), c.seq),
            ("leak", "vips", 10)
        );
        assert_eq!(c.import[0].seq, None);
        assert_eq!(c.import[0].ge, Some(32));
        assert_eq!(c.export[0].action, PrefixAction::Deny);
        assert_eq!(c.export[0].seq, Some(5));
        assert_eq!(
            c.aggregate,
            vec!["198.51.100.0/24".parse::<IpNet>().unwrap()]
        );
        assert_eq!(c.community.as_deref(), Some("65010:200"));
        let e = |spec| convert(&obj(spec)).unwrap_err();
        assert_eq!(
            e(
                serde_json::json!({"vrf": "v", "seq": 1, "export": [{"cidr": "10.0.0.0/8"}, {"cidr": "nope"}]})
            ),
            "spec.export[1].cidr: \"nope\" is not a CIDR prefix"
        );
        assert_eq!(
            e(
                serde_json::json!({"vrf": "v", "seq": 1, "import": [{"cidr": "10.0.0.0/8", "le": 7}]})
            ),
            "spec.import[0].le: 7 must be from 8 to 32 for 10.0.0.0/8"
        );
        assert_eq!(
            e(
                serde_json::json!({"vrf": "v", "seq": 1, "import": [{"cidr": "10.0.0.0/8", "action": "allow"}]})
            ),
            "spec.import[0].action: \"allow\" is not permit or deny"
        );
    }
}
