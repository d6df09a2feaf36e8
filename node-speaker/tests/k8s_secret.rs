//! `passwordSecretRef` in Kubernetes mode against the API server double
//! (see `support/apiserver.rs`: it stands in for the real API server, which
//! cannot run here), with the real `kube` client over HTTP, a real bgp-core
//! speaker as the node and pods' speakers on loopback addresses (127.0.0.x)
//! whose sessions carry real TCP-MD5 signatures (the kernel checks them).
//!
//! One PodPeering asks for a key: while its Secret is missing, unlabelled
//! or holds no valid key, the status says why and no pod is a neighbor;
//! with the Secret, the pods' neighbors get its key, a pod with that key
//! peers and one with another does not; a rotated key restarts the session
//! with the new key; a deleted Secret removes the pods again. The key never
//! reaches the API server (status, Events), and the Secrets are only listed
//! and watched with the label selector, as `deploy/rbac.yaml` allows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::IpAddr;
use std::time::Duration;

use bgp_core::fsm::State;
use bgp_core::speaker::SpeakerHandle;
use serde_json::{Value, json};

use support::apiserver::ApiServer;
use support::kube::{Node, start_node};
use support::{eventually, keyed_pod_speaker, node_neighbor};

const WAIT: Duration = Duration::from_secs(20);

fn pod(name: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "web", "labels": {"app": "lb"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "nf", "image": "nf"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    })
}

/// The Secret web/bgp with `password: value`, labelled for the node or not.
fn secret(value: &str, labelled: bool) -> Value {
    let labels = if labelled {
        json!({"podpeer.io/bgp-password": "true"})
    } else {
        json!({})
    };
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "bgp", "namespace": "web", "labels": labels},
        // Base64, as the API server stores it (k8s-openapi's encoding).
        "data": {"password": k8s_openapi::ByteString(value.as_bytes().to_vec())},
    })
}

/// One node, one NodeBGPConfig, the PodPeering web/lb with a
/// `passwordSecretRef` to web/bgp key `password`, two running pods.
async fn cluster() -> ApiServer {
    let api = ApiServer::start(&support::crds()).await;
    api.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}));
    api.put(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "n1", "labels": {"rack": "a"}},
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.11"}]},
    }));
    api.put(json!({
        "apiVersion": "podpeer.io/v1alpha1", "kind": "NodeBGPConfig",
        "metadata": {"name": "all"},
        "spec": {"nodeSelector": {}, "localASN": 65010},
    }));
    api.put(json!({
        "apiVersion": "podpeer.io/v1alpha1", "kind": "PodPeering",
        "metadata": {"name": "lb", "namespace": "web"},
        "spec": {"podSelector": {"matchLabels": {"app": "lb"}},
                 "allowedPrefixes": [{"prefix": "198.51.100.0/24", "ge": 32, "le": 32}],
                 "passwordSecretRef": {"name": "bgp", "key": "password"}},
    }));
    api.put(pod("lb-1", "127.0.0.2"));
    api.put(pod("lb-2", "127.0.0.3"));
    api
}

async fn neighbor_state(s: &SpeakerHandle, ip: &str) -> Option<State> {
    let ip: IpAddr = ip.parse().unwrap();
    s.neighbors()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.address == ip)
        .map(|n| n.state)
}

async fn wait_state(node: &Node, ip: &str, want: Option<State>) {
    eventually(&format!("{ip} {want:?}"), WAIT, || async {
        (neighbor_state(&node.app.speaker, ip).await == want).then_some(())
    })
    .await;
}

/// n1's `Ready` condition of web/lb: (status, reason, message).
fn ready(api: &ApiServer) -> Option<(String, String, String)> {
    let p = api.get("podpeerings", "web", "lb")?;
    let c = p["status"]["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["name"] == "n1")?["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?
        .clone();
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    Some((s("status"), s("reason"), s("message")))
}

async fn wait_ready(api: &ApiServer, status: &str, reason: &str) -> String {
    eventually(&format!("Ready {status} {reason}"), WAIT, || async {
        ready(api)
            .filter(|(s, r, _)| s == status && r == reason)
            .map(|(_, _, m)| m)
    })
    .await
}

/// The key the node's configuration holds for web/lb's pods.
fn node_key(node: &Node) -> Option<String> {
    node.app
        .config()
        .pod_groups
        .iter()
        .find(|g| g.name == "web/lb")
        .and_then(|g| g.password.as_ref())
        .map(|p| p.expose().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_secret_ref_keys_rotation_and_refusals() {
    let api = cluster().await;
    let node = start_node(&api, "200ms", None).await;

    // No Secret: the status says so and no pod is a neighbor.
    let message = wait_ready(&api, "False", "SecretNotFound").await;
    assert!(
        message.contains("no Secret web/bgp labelled podpeer.io/bgp-password=true"),
        "{message}"
    );
    assert_eq!(node_key(&node), None);
    assert!(node.app.config().pod_groups.is_empty());
    assert_eq!(neighbor_state(&node.app.speaker, "127.0.0.2").await, None);

    // Unlabelled, the node does not see it.
    api.put(secret("key-one", false));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(ready(&api).unwrap().1, "SecretNotFound");
    assert!(node.app.config().pod_groups.is_empty());

    // Labelled, but no TCP-MD5 key (a line break inside).
    api.put(secret("key\none", true));
    let message = wait_ready(&api, "False", "InvalidSecret").await;
    assert!(message.contains("control character"), "{message}");
    assert!(node.app.config().pod_groups.is_empty());

    // The key (with the trailing newline `--from-file` leaves): the pods are
    // neighbors with it; the pod with the key peers, the other does not.
    api.put(secret("key-one\n", true));
    wait_state(&node, "127.0.0.2", Some(State::Active)).await;
    assert_eq!(node_key(&node).as_deref(), Some("key-one"));
    let good = keyed_pod_speaker(
        "127.0.0.2",
        node.port,
        &["198.51.100.10/32"],
        Some("key-one"),
    )
    .await;
    let bad = keyed_pod_speaker(
        "127.0.0.3",
        node.port,
        &["198.51.100.11/32"],
        Some("not-the-key"),
    )
    .await;
    wait_state(&node, "127.0.0.2", Some(State::Established)).await;
    eventually("Ready False: 1 of 2 sessions Established", WAIT, || async {
        ready(&api).filter(|(s, r, m)| {
            s == "False" && r == "SessionsDown" && m.starts_with("1 of 2 sessions Established")
        })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_ne!(
        neighbor_state(&node.app.speaker, "127.0.0.3").await,
        Some(State::Established),
        "a pod with another key never peers"
    );
    assert_ne!(
        neighbor_state(&bad, "127.0.0.1").await,
        Some(State::Established)
    );

    // Rotated: the node restarts the sessions with the new key; the pod
    // with the old one is out until it has the new one too.
    api.put(secret("key-two", true));
    eventually("the new key applied", WAIT, || async {
        (node_key(&node).as_deref() == Some("key-two")).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_ne!(
        neighbor_state(&node.app.speaker, "127.0.0.2").await,
        Some(State::Established),
        "the old key no longer works"
    );
    good.update_neighbor(node_neighbor("127.0.0.2", node.port, Some("key-two")))
        .await
        .unwrap();
    bad.update_neighbor(node_neighbor("127.0.0.3", node.port, Some("key-two")))
        .await
        .unwrap();
    wait_state(&node, "127.0.0.2", Some(State::Established)).await;
    wait_state(&node, "127.0.0.3", Some(State::Established)).await;
    let message = wait_ready(&api, "True", "Established").await;
    assert_eq!(message, "2 of 2 sessions Established");

    // The Secret deleted: no pod peers without the key.
    api.delete("secrets", "web", "bgp");
    wait_state(&node, "127.0.0.2", None).await;
    wait_state(&node, "127.0.0.3", None).await;
    wait_ready(&api, "False", "SecretNotFound").await;
    good.shutdown(None).await.unwrap();
    bad.shutdown(None).await.unwrap();

    // The key never reached the API server.
    let requests = api.requests();
    for r in &requests {
        let body = r.body.as_ref().map(Value::to_string).unwrap_or_default();
        assert!(
            !body.contains("key-one") && !body.contains("key-two"),
            "{} {}: {body}",
            r.verb,
            r.resource
        );
    }
    // Secrets: only listed and watched, only the labelled ones; all of it
    // allowed by deploy/rbac.yaml.
    let secrets: Vec<_> = requests
        .iter()
        .filter(|r| r.resource == "secrets")
        .collect();
    assert!(secrets.iter().any(|r| r.verb == "list"));
    assert!(secrets.iter().any(|r| r.verb == "watch"));
    for r in &secrets {
        assert!(["list", "watch"].contains(&r.verb.as_str()), "{r:?}");
        assert_eq!(r.namespace, None, "{r:?}");
        assert_eq!(
            r.query.get("labelSelector").map(String::as_str),
            Some("podpeer.io/bgp-password=true"),
            "{r:?}"
        );
    }
    assert_eq!(support::not_allowed(&requests), Vec::<String>::new());
    assert!(
        support::cluster_role().contains(&("".into(), "secrets".into(), "watch".into()))
            && !support::cluster_role().contains(&("".into(), "secrets".into(), "get".into())),
        "secrets: list and watch only"
    );
}
