//! `deploy/` stays true to the code: the CRDs are what `podpeer-node crds`
//! prints now, every manifest is YAML Kubernetes can read, and the example
//! resources are valid PodPeering and NodeBGPConfig objects.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use podpeer_node::k8s::crd::{NodeBGPConfig, PodPeering, crds_yaml};
use serde_json::Value;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(deploy().join(file)).unwrap();
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

#[test]
fn crds_are_current() {
    let on_disk = std::fs::read_to_string(deploy().join("crds.yaml")).unwrap();
    assert!(
        on_disk == crds_yaml().unwrap(),
        "deploy/crds.yaml is stale: run `podpeer-node crds > deploy/crds.yaml`"
    );
    let names: Vec<String> = documents("crds.yaml")
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["podpeerings.podpeer.io", "nodebgpconfigs.podpeer.io"]
    );
}

#[test]
fn crds_have_status_printer_columns_and_list_maps() {
    let docs = documents("crds.yaml");
    for d in &docs {
        let v = &d["spec"]["versions"][0];
        assert_eq!(v["name"], "v1alpha1");
        assert!(
            v["subresources"]["status"].is_object(),
            "status subresource"
        );
        assert!(v["additionalPrinterColumns"].as_array().unwrap().len() >= 3);
    }
    let status = &docs[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        ["properties"]["nodes"];
    assert_eq!(status["x-kubernetes-list-type"], "map");
    assert_eq!(status["x-kubernetes-list-map-keys"][0], "name");
    let text = std::fs::read_to_string(deploy().join("crds.yaml")).unwrap();
    for rule in [
        "cidr(self) == cidr(self).masked()",
        "self.ge <= self.le",
        "self >= 1 && self <= 4294967295",
        "isIP(self)",
    ] {
        assert!(text.contains(rule), "CEL rule {rule:?} missing");
    }
}

#[test]
fn manifests_parse_and_name_what_the_code_expects() {
    let mut kinds = Vec::new();
    for file in [
        "namespace.yaml",
        "rbac.yaml",
        "daemonset.yaml",
        "kustomization.yaml",
    ] {
        for d in documents(file) {
            kinds.push(d["kind"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "DaemonSet",
            "Kustomization"
        ]
    );
    let ds = &documents("daemonset.yaml")[0];
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["serviceAccountName"], "podpeer-node");
    let c = &pod["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let caps: Vec<&str> = c["securityContext"]["capabilities"]["add"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for cap in ["NET_ADMIN", "NET_RAW", "BPF"] {
        assert!(caps.contains(&cap), "{cap}");
    }
    let env = c["env"].as_array().unwrap();
    let node_name = env.iter().find(|e| e["name"] == "NODE_NAME").unwrap();
    assert_eq!(
        node_name["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    assert!(
        env.iter()
            .any(|e| e["name"] == "PODPEER_PEER_SOURCE" && e["value"] == "kubernetes")
    );
    let k = &documents("kustomization.yaml")[0];
    for r in k["resources"].as_array().unwrap() {
        assert!(deploy().join(r.as_str().unwrap()).is_file(), "{r}");
    }
}

#[test]
fn example_resources_are_valid_objects() {
    let docs = documents("example/nf.yaml");
    let pp = docs.iter().find(|d| d["kind"] == "PodPeering").unwrap();
    let pp: PodPeering = serde_json::from_value(pp.clone()).unwrap();
    assert_eq!(pp.spec.vrf.as_deref(), Some("vips"));
    assert_eq!(pp.spec.allowed_prefixes[0].prefix, "198.51.100.0/24");
    let nbc: NodeBGPConfig =
        serde_json::from_value(documents("example/nodebgpconfig.yaml")[0].clone()).unwrap();
    assert_eq!(nbc.spec.local_asn, 65010);
    assert_eq!(nbc.spec.vrfs[0].name, "vips");
    for r in documents("example/kustomization.yaml")[0]["resources"]
        .as_array()
        .unwrap()
    {
        assert!(deploy().join("example").join(r.as_str().unwrap()).is_file());
    }
}
