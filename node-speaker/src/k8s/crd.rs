//! The custom resources of group `podpeer.io`, version `v1alpha1`, as Rust
//! types: the CRDs in `deploy/` are generated from them
//! (`podpeer-node crds`). What a schema can say (types, ranges, patterns,
//! formats) it says; what it cannot (a `ge` no shorter than its prefix, host
//! bits, AS ranges) CEL rules say, so the API server refuses a bad object
//! before any node sees it. The nodes check again (a CRD may be older than
//! the node) and report what they refuse in the status.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use serde::{Deserialize, Serialize};

/// The API group.
pub const GROUP: &str = "podpeer.io";
/// The API version.
pub const VERSION: &str = "v1alpha1";

/// Which pods may peer with the node they run on, and what they may
/// announce. Namespaced: it selects pods in its own namespace, or, with a
/// `namespaceSelector`, in every namespace that selector matches.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "podpeer.io",
    version = "v1alpha1",
    kind = "PodPeering",
    namespaced,
    status = "PodPeeringStatus",
    shortname = "ppr",
    category = "podpeer",
    doc = "Pods chosen by label selector peer with their node over BGP; what they may announce.",
    printcolumn = r#"{"name": "Peer ASN", "type": "string", "jsonPath": ".spec.peerASN"}"#,
    printcolumn = r#"{"name": "VRF", "type": "string", "jsonPath": ".spec.vrf"}"#,
    printcolumn(
        name = "Max Prefixes",
        type_ = "integer",
        json_path = ".spec.maxPrefixes"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PodPeeringSpec {
    /// The pods that peer (labels in the namespaces this policy covers).
    pub pod_selector: LabelSelector,
    /// Namespaces whose pods this policy covers too (a cluster-wide policy);
    /// without it only the PodPeering's own namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// The pods' AS: `external` (any AS but the node's), a number, or a
    /// range `LO-HI`. Pods peer over eBGP: their AS path must be their own AS.
    #[serde(rename = "peerASN", default = "external")]
    #[x_kube(validation = Rule::new(
        "type(self) == int ? (self >= 1 && self <= 4294967295) : \
         (self == 'external' || (self.matches('^[0-9]+(-[0-9]+)?$') && \
         (!self.contains('-') || int(self.split('-')[0]) <= int(self.split('-')[1]))))"
    ).message("peerASN is external, an AS number (1 to 4294967295) or a range LO-HI with LO <= HI"))]
    pub peer_asn: IntOrString,
    /// What the pods may announce; nothing when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub allowed_prefixes: Vec<AllowedPrefix>,
    /// At most this many prefixes accepted per pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_prefixes: Option<u32>,
    /// The VRF (of the node's NodeBGPConfig) the routes go into; the main
    /// table when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 15), regex(pattern = r"^[A-Za-z0-9_.-]+$"))]
    pub vrf: Option<String>,
    /// Communities added to the pods' routes (they reach the fabric):
    /// `65010:100`, well-known names, or large `a:b:c`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(regex(
            pattern = r"^([0-9]+:[0-9]+(:[0-9]+)?|no-export|no-advertise|no-export-subconfed|no-peer|blackhole|graceful-shutdown)$"
        ))
    )]
    pub communities: Vec<String>,
    /// Session timers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timers: Option<Timers>,
    /// Graceful restart towards the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_restart: Option<GracefulRestart>,
    /// A TCP-MD5 password (RFC 2385) for the sessions: a key of a Secret in
    /// the PodPeering's namespace labelled `podpeer.io/bgp-password: "true"`
    /// (the nodes see no other Secrets). The value: 1 to 80 bytes of text
    /// without control characters (one trailing newline is dropped). A
    /// rotated value restarts the sessions with the new key. While the
    /// Secret, its key or a valid value is missing, no pod is admitted
    /// (`SecretNotFound`, `InvalidSecret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
}

fn external() -> IntOrString {
    IntOrString::String("external".into())
}

/// One allowed prefix: the prefix itself, or with `ge`/`le` the lengths
/// admitted within it (as in prefix lists).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new(
    "!isCIDR(self.prefix) || !has(self.ge) || self.ge >= cidr(self.prefix).prefixLength()"
).message("ge is shorter than the prefix itself"))]
#[x_kube(validation = Rule::new(
    "!isCIDR(self.prefix) || !has(self.le) || self.le <= (cidr(self.prefix).ip().family() == 4 ? 32 : 128)"
).message("le is longer than a prefix of this family can be"))]
#[x_kube(validation = Rule::new("!has(self.ge) || !has(self.le) || self.ge <= self.le")
    .message("ge is greater than le: no length is admitted"))]
pub struct AllowedPrefix {
    /// The covering prefix, like `198.51.100.0/24` (no host bits).
    #[x_kube(validation = Rule::new("isCIDR(self) && cidr(self) == cidr(self).masked()")
        .message("prefix must be a CIDR prefix without host bits, like 198.51.100.0/24"))]
    #[schemars(length(max = 43))]
    pub prefix: String,
    /// Shortest admitted length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 128))]
    pub ge: Option<u8>,
    /// Longest admitted length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 128))]
    pub le: Option<u8>,
}

/// Session timers.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Timers {
    /// The hold time the node proposes (`9s` by default): 0, or 3s to
    /// 65535s (keepalives a third of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    #[x_kube(validation = Rule::new(
        "duration(self) == duration('0s') || (duration(self) >= duration('3s') && duration(self) <= duration('65535s'))"
    ).message("holdTime is 0 or 3s to 65535s"))]
    pub hold_time: Option<String>,
}

/// Graceful restart (RFC 4724) towards the pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GracefulRestart {
    /// Whether the node offers it.
    #[serde(default)]
    pub enabled: bool,
    /// How long the node keeps a restarting pod's routes (`120s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub restart_time: Option<String>,
}

/// A key of a Secret in the referring object's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SecretKeyRef {
    /// The Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Its key.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// What the nodes report. Each node writes only its own entry in `nodes`
/// (server-side apply, one field manager per node), so nodes never
/// overwrite each other.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct PodPeeringStatus {
    /// One entry per node that runs pods this policy selects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub nodes: Vec<NodePeeringStatus>,
}

/// One node's sessions with the pods a PodPeering selects.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NodePeeringStatus {
    /// The node.
    pub name: String,
    /// The PodPeering generation this entry reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (every selected pod's session Established; reasons
    /// `Established`, `SessionsDown`, `NoPeers`, `InvalidSpec`,
    /// `SecretNotFound`, `InvalidSecret`, `NoNodeConfig`) and `Conflict` (a pod also selected by another
    /// PodPeering; reasons `PodTakenByOther`, `PodSharedWithOther`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// One entry per selected pod on the node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["pod".into()]))]
    pub sessions: Vec<PodSession>,
}

/// The session with one pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodSession {
    /// `namespace/name` of the pod.
    pub pod: String,
    /// Its address (the peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The BGP state (`Established`, `Active`, ...), or why there is no
    /// session (`PodNotRunning`, `NoAddress`, `SelectedByOther`).
    pub state: String,
    /// Prefixes accepted from the pod.
    #[serde(default)]
    pub accepted: u64,
    /// Prefixes refused by the import guard.
    #[serde(default)]
    pub rejected: u64,
    /// The last refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rejection: Option<Rejection>,
}

/// A refused route.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Rejection {
    /// The prefix.
    pub prefix: String,
    /// `forbidden`, `not-allowed`, `next-hop`, `as-path` or `max-prefixes`.
    pub reason: String,
}

/// The BGP setup of the nodes its `nodeSelector` matches: their AS, router
/// id, fabric neighbors, VRFs and extra forbidden prefixes. A node that two
/// NodeBGPConfigs match reports a conflict and uses neither.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "podpeer.io",
    version = "v1alpha1",
    kind = "NodeBGPConfig",
    status = "NodeBGPConfigStatus",
    shortname = "nbc",
    category = "podpeer",
    doc = "The BGP setup of the nodes a label selector matches.",
    printcolumn = r#"{"name": "Local ASN", "type": "integer", "jsonPath": ".spec.localASN"}"#,
    printcolumn = r#"{"name": "Mode", "type": "string", "jsonPath": ".spec.mode"}"#,
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct NodeBGPConfigSpec {
    /// The nodes this applies to (every node when empty).
    #[serde(default)]
    pub node_selector: LabelSelector,
    /// The nodes' AS.
    #[serde(rename = "localASN")]
    #[schemars(range(min = 1, max = 4294967295u32))]
    pub local_asn: u32,
    /// The BGP identifier: `nodeIP` (the node's first IPv4 InternalIP,
    /// the default), `hash` (from the node name, for IPv6-only nodes) or
    /// an IPv4 address.
    #[serde(rename = "routerID", default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(
        "self == 'nodeIP' || self == 'hash' || (isIP(self) && ip(self).family() == 4)"
    ).message("routerID is nodeIP, hash or an IPv4 address"))]
    pub router_id: Option<String>,
    /// Upstream neighbors (top of rack, route servers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["address".into()]))]
    #[schemars(length(max = 32))]
    pub fabric: Vec<FabricNeighborSpec>,
    /// Never accepted from pods, added to those found in the cluster (pod
    /// CIDRs, node addresses, service addresses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024), inner(length(max = 43)))]
    #[x_kube(validation = Rule::new("self.all(p, isCIDR(p) && cidr(p) == cidr(p).masked())")
        .message("forbiddenPrefixes are CIDR prefixes without host bits"))]
    pub forbidden_prefixes: Vec<String>,
    /// The cluster's service CIDRs (forbidden to pods), where the node's
    /// `--service-cidr` flag does not give them.
    #[serde(
        rename = "serviceCIDRs",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = 8), inner(length(max = 43)))]
    #[x_kube(validation = Rule::new("self.all(p, isCIDR(p) && cidr(p) == cidr(p).masked())")
        .message("serviceCIDRs are CIDR prefixes without host bits"))]
    pub service_cidrs: Vec<String>,
    /// VRFs: a name, its routing table, member interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(max = 64))]
    pub vrfs: Vec<VrfSpec>,
    /// `native` (podpeer-node speaks BGP itself) or `frr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// What goes to the fabric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportPolicy>,
}

/// Who speaks BGP on the node.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// podpeer-node itself.
    #[default]
    Native,
    /// FRR on the node, configured by podpeer-node.
    Frr,
}

/// An upstream neighbor.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FabricNeighborSpec {
    /// Its address.
    #[x_kube(validation = Rule::new("isIP(self)").message("address must be an IP address"))]
    #[schemars(length(max = 45))]
    pub address: String,
    /// Its AS: `external`, `internal` or a number.
    #[serde(rename = "remoteASN", default = "external")]
    #[x_kube(validation = Rule::new(
        "type(self) == int ? (self >= 1 && self <= 4294967295) : (self == 'external' || self == 'internal')"
    ).message("remoteASN is external, internal or an AS number (1 to 4294967295)"))]
    pub remote_asn: IntOrString,
    /// Its TCP port (179).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// Free text for status output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Proposed hold time (`90s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub hold_time: Option<String>,
}

/// A VRF.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct VrfSpec {
    /// Its name (the VRF device's).
    #[schemars(length(min = 1, max = 15), regex(pattern = r"^[A-Za-z0-9_.-]+$"))]
    pub name: String,
    /// Its routing table (not 0, 253, 254 or 255).
    #[schemars(range(min = 1, max = 4294967295u32))]
    #[x_kube(validation = Rule::new("!(self in [253, 254, 255])")
        .message("tables 253 (default), 254 (main) and 255 (local) are reserved"))]
    pub table: u32,
    /// Member interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1, max = 15)))]
    pub interfaces: Vec<String>,
}

/// The export policy towards the fabric.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ExportPolicy {
    /// Communities added to every route sent to the fabric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(
        pattern = r"^([0-9]+:[0-9]+(:[0-9]+)?|no-export|no-advertise|no-export-subconfed|no-peer|blackhole|graceful-shutdown)$"
    )))]
    pub communities: Vec<String>,
}

/// What the nodes report about a NodeBGPConfig.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct NodeBGPConfigStatus {
    /// Nodes this NodeBGPConfig matches together with others (each node
    /// writes its own entry).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["node".into()]))]
    pub conflicts: Vec<NodeConflict>,
}

/// A node that more than one NodeBGPConfig matches.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct NodeConflict {
    /// The node.
    pub node: String,
    /// Every NodeBGPConfig that matches it (sorted).
    pub configs: Vec<String>,
}

/// Both CRDs as one YAML stream (what `podpeer-node crds` prints and
/// `deploy/crds.yaml` holds).
pub fn crds_yaml() -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::from(
        "# Generated by `podpeer-node crds` from node-speaker/src/k8s/crd.rs: do not edit.\n",
    );
    for crd in [PodPeering::crd(), NodeBGPConfig::crd()] {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(out)
}

/// The labels of an object as a map (never absent).
pub fn labels(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}
