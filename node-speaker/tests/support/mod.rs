//! Shared by the node's tests: the API server double, the RBAC check
//! against `deploy/rbac.yaml`, a pod's BGP speaker on loopback, and the
//! daemon run in a namespace.

#![allow(dead_code)]

pub mod apiserver;
pub mod kube;
pub mod node;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bgp_core::fsm::RemoteAs;
use bgp_core::policy::RouteMap;
use bgp_core::speaker::{NeighborConfig, Speaker, SpeakerConfig, SpeakerHandle};
use bgp_core::wire::{AsPath, Origin, PathAttributes};
use serde_json::Value;

use self::apiserver::Request;

/// The CRDs as the code generates them.
pub fn crds() -> Vec<Value> {
    let text = podpeer_node::k8s::crd::crds_yaml().unwrap();
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// The ClusterRole's rules: (group, resource, verb) triples.
pub fn cluster_role() -> BTreeSet<(String, String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/rbac.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let role = docs.iter().find(|d| d["kind"] == "ClusterRole").unwrap();
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        for g in rule["apiGroups"].as_array().unwrap() {
            for r in rule["resources"].as_array().unwrap() {
                for v in rule["verbs"].as_array().unwrap() {
                    out.insert((
                        g.as_str().unwrap().to_string(),
                        r.as_str().unwrap().to_string(),
                        v.as_str().unwrap().to_string(),
                    ));
                }
            }
        }
    }
    out
}

/// The requests the ClusterRole does not allow.
pub fn not_allowed(requests: &[Request]) -> Vec<String> {
    let role = cluster_role();
    requests
        .iter()
        .filter(|r| !role.contains(&(r.group.clone(), r.resource.clone(), r.verb.clone())))
        .map(|r| {
            format!(
                "{} {} {:?}/{} ({})",
                r.verb,
                r.resource,
                r.namespace,
                r.name.as_deref().unwrap_or(""),
                r.group
            )
        })
        .collect()
}

/// The ClusterRole's permissions no request used.
pub fn unused(requests: &[Request]) -> Vec<(String, String, String)> {
    let used: BTreeSet<(String, String, String)> = requests
        .iter()
        .map(|r| (r.group.clone(), r.resource.clone(), r.verb.clone()))
        .collect();
    cluster_role().difference(&used).cloned().collect()
}

/// Polls `f` until it gives `Some`, or panics naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A free TCP port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A pod's speaker on loopback: AS 4200000001, connecting from `ip` (a
/// 127.0.0.0/8 address) to the node at 127.0.0.1:`port`, announcing
/// `prefixes`.
pub async fn pod_speaker(ip: &str, port: u16, prefixes: &[&str]) -> SpeakerHandle {
    keyed_pod_speaker(ip, port, prefixes, None).await
}

/// The node as the pod speaker at `ip` sees it, with a TCP-MD5 `password`.
pub fn node_neighbor(ip: &str, port: u16, password: Option<&str>) -> NeighborConfig {
    let mut n = NeighborConfig::new("127.0.0.1".parse().unwrap(), RemoteAs::External);
    n.port = port;
    n.source_address = Some(ip.parse().unwrap());
    n.connect_retry = Duration::from_millis(300);
    n.hold_time = 9;
    n.password = password.map(Into::into);
    n.export = Some(RouteMap {
        name: "all".into(),
        terms: Vec::new(),
        default_accept: true,
    });
    n.import = Some(RouteMap {
        name: "none".into(),
        terms: Vec::new(),
        default_accept: false,
    });
    n
}

/// [`pod_speaker`] with a TCP-MD5 `password` towards the node.
pub async fn keyed_pod_speaker(
    ip: &str,
    port: u16,
    prefixes: &[&str],
    password: Option<&str>,
) -> SpeakerHandle {
    let addr: IpAddr = ip.parse().unwrap();
    let IpAddr::V4(id) = addr else {
        panic!("IPv4 only")
    };
    let mut sc = SpeakerConfig::new(4_200_000_001, id);
    sc.listen = Vec::new();
    let s = Speaker::start(sc).await.unwrap();
    s.add_neighbor(node_neighbor(ip, port, password))
        .await
        .unwrap();
    for p in prefixes {
        s.announce(
            p.parse().unwrap(),
            PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::default()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    s
}

/// A listener on 127.0.0.1 inside the network namespace pinned at `path`
/// (the socket stays in that namespace whichever thread uses it).
pub fn listener_in(path: std::path::PathBuf) -> tokio::net::TcpListener {
    let std_listener = std::thread::spawn(move || {
        let f = std::fs::File::open(path).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        l
    })
    .join()
    .unwrap();
    tokio::net::TcpListener::from_std(std_listener).unwrap()
}
