//! End to end with Kubernetes objects: the API server double (it stands in
//! for the real API server, which cannot run here) serving inside a "node"
//! namespace, the real `podpeer-node` binary there with
//! `--peer-source kubernetes`, and real `podpeer-sidecar`s in pod
//! namespaces on the node's pod bridge.
//!
//! A Pod object appears: the node peers with that pod and installs its VIP
//! into the VRF's table; the Pod is deleted: the session and the route go.
//! A pod that no PodPeering selects is refused, though it tries. Needs root
//! (namespaces) and both binaries (`cargo build --bins`, as the workspace
//! test run does); says why and skips otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use interop_tests::podlab::{find_binaries, kernel_routes};
use interop_tests::{Netns, skip_unless_runnable, veth};
use serde_json::{Value, json};

use support::apiserver::ApiServer;
use support::eventually;

const WAIT: Duration = Duration::from_secs(30);
const TABLE: u32 = 100;
const ALT_TABLE: u32 = 101;
const VIP: &str = "198.51.100.10/32";

/// A process in a namespace; killed on drop, its log printed when the test
/// fails.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn start(ns: &Netns, name: &str, dir: &Path, argv: &[&str]) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).unwrap();
        let child = ns
            .command(argv[0])
            .args(&argv[1..])
            .env("PODPEER_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Self {
            name: name.into(),
            child,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- {} log:\n{}",
                self.name,
                interop_tests::tail(&self.log, 60)
            );
        }
    }
}

fn listener_in(ns: &Netns) -> tokio::net::TcpListener {
    support::listener_in(ns.path())
}

fn pod_object(name: &str, app: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "web", "labels": {"app": app}},
        "spec": {"nodeName": "node1", "containers": [{"name": "nf", "image": "nf"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    })
}

/// A pod namespace on the node's bridge with a sidecar announcing the VIP.
fn pod(node: &Netns, dir: &Path, sidecar: &Path, name: &str, index: u8) -> (Netns, Proc) {
    let ns = Netns::new(name).unwrap();
    let ip = format!("10.244.1.{}", 10 + index);
    let host_side = format!("veth{index}");
    veth(&ns, "eth0", &[&format!("{ip}/24")], node, &host_side, &[]).unwrap();
    node.ip(&["link", "set", &host_side, "master", "pods"])
        .unwrap();
    ns.ip(&["route", "add", "default", "via", "10.244.1.1"])
        .unwrap();
    let config = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &config,
        format!("holdTime: 9s\ndrainTime: 0s\nhttp: 127.0.0.1:9179\nvips:\n  - prefix: {VIP}\n"),
    )
    .unwrap();
    let p = Proc::start(
        &ns,
        &format!("{name}-sidecar"),
        dir,
        &[
            sidecar.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
    );
    (ns, p)
}

/// The next hops of the VIP in the VRF's table (none while the kernel has
/// no such table yet).
fn vip_next_hops(node: &Netns) -> Vec<String> {
    vip_next_hops_in(node, TABLE)
}

fn vip_next_hops_in(node: &Netns, table: u32) -> Vec<String> {
    kernel_routes(node, table)
        .unwrap_or_default()
        .remove(VIP.trim_end_matches("/32"))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_object_makes_a_peer_and_its_vip_a_route() {
    skip_unless_runnable!(&[]);
    let bins = match find_binaries(None) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            return;
        }
    };
    let dir = tempfile::Builder::new()
        .prefix("podpeer-k8s-")
        .tempdir()
        .unwrap();
    let node = Netns::new("node").unwrap();
    // A fixed MAC, so that pods joining later do not change the gateway's.
    node.ip(&[
        "link",
        "add",
        "pods",
        "address",
        "02:00:0a:f4:01:01",
        "type",
        "bridge",
    ])
    .unwrap();
    node.ip(&["addr", "add", "10.244.1.1/24", "dev", "pods"])
        .unwrap();
    node.ip(&["link", "set", "pods", "up"]).unwrap();

    let api = ApiServer::serve(listener_in(&node), &support::crds()).await;
    api.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}));
    api.put(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node1", "labels": {"kubernetes.io/hostname": "node1"}},
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
        "status": {"addresses": [{"type": "InternalIP", "address": "172.30.0.2"}]},
    }));
    let peering = |vrf: &str| {
        json!({
            "apiVersion": "podpeer.io/v1alpha1", "kind": "PodPeering",
            "metadata": {"name": "lb", "namespace": "web"},
            "spec": {"podSelector": {"matchLabels": {"app": "lb"}},
                     "allowedPrefixes": [{"prefix": "198.51.100.0/24", "ge": 32, "le": 32}],
                     "vrf": vrf},
        })
    };
    api.put(peering("vips"));

    let url = api.url();
    let node_bin = bins.node.to_str().unwrap();
    let daemon = Proc::start(
        &node,
        "podpeer-node",
        dir.path(),
        &[
            node_bin,
            "run",
            "--peer-source",
            "kubernetes",
            "--node-name",
            "node1",
            "--api-server",
            &url,
            "--service-cidr",
            "10.96.0.0/12",
            "--http-listen",
            "127.0.0.1:9180",
            "--bgp-listen",
            "0.0.0.0:179",
            "--debounce",
            "200ms",
            "--reconcile-after",
            "1s",
        ],
    );
    // No NodeBGPConfig yet: alive, not ready, and saying why.
    // (Before that it says "starting", then that it lists the objects.)
    let readyz = eventually("/readyz says why it is not ready", WAIT, || async {
        get(&node, "/readyz")
            .filter(|r| !r.contains("starting") && !r.contains("listing the cluster's objects"))
    })
    .await;
    assert!(
        readyz.starts_with("503 not ready: NoNodeConfig: no NodeBGPConfig selects node node1"),
        "{readyz}"
    );
    assert!(get(&node, "/healthz").unwrap().starts_with("200 "));
    let nbc = json!({
        "apiVersion": "podpeer.io/v1alpha1", "kind": "NodeBGPConfig",
        "metadata": {"name": "all"},
        "spec": {"localASN": 65010,
                 "vrfs": [{"name": "vips", "table": TABLE}, {"name": "alt", "table": ALT_TABLE}],
                 "forbiddenPrefixes": ["0.0.0.0/0"]},
    });
    api.put(nbc.clone());
    eventually("ready", WAIT, || async {
        get(&node, "/readyz")
            .filter(|r| r.starts_with("200 "))
            .map(drop)
    })
    .await;

    let peers = || -> Vec<Value> {
        node.exec(&[node_bin, "peers", "--json", "--http", "127.0.0.1:9180"])
            .ok()
            .and_then(|s| serde_json::from_str::<Vec<Value>>(&s).ok())
            .unwrap_or_default()
    };
    let established = |ip: &str| {
        peers()
            .iter()
            .any(|p| p["address"] == ip && p["state"] == "Established")
    };

    // Two pods with sidecars: lb-1 is selected, db-1 is not.
    let (_pod1, _side1) = pod(&node, dir.path(), &bins.sidecar, "pod1", 1);
    let (_pod2, side2) = pod(&node, dir.path(), &bins.sidecar, "pod2", 2);
    api.put(pod_object("db-1", "db", "10.244.1.12"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        vip_next_hops(&node).is_empty(),
        "no Pod object for lb-1 yet"
    );

    // The Pod object appears: peer and route.
    api.put(pod_object("lb-1", "lb", "10.244.1.11"));
    eventually("lb-1 Established", WAIT, || async {
        established("10.244.1.11").then_some(())
    })
    .await;
    eventually("the VIP via lb-1", WAIT, || async {
        (vip_next_hops(&node) == ["10.244.1.11"]).then_some(())
    })
    .await;
    eventually("the status says so", WAIT, || {
        let s = api.get("podpeerings", "web", "lb").unwrap()["status"]["nodes"].clone();
        async move {
            let session = &s[0]["sessions"][0];
            (s[0]["name"] == "node1"
                && session["pod"] == "web/lb-1"
                && session["state"] == "Established"
                && session["accepted"] == 1
                && s[0]["conditions"][0]["status"] == "True")
                .then_some(())
        }
    })
    .await;

    // The PodPeering moves to another VRF: the route follows, the session
    // stays.
    api.put(peering("alt"));
    eventually("the VIP in the other table", WAIT, || async {
        (vip_next_hops_in(&node, ALT_TABLE) == ["10.244.1.11"] && vip_next_hops(&node).is_empty())
            .then_some(())
    })
    .await;
    api.put(peering("vips"));
    eventually("the VIP back", WAIT, || async {
        (vip_next_hops(&node) == ["10.244.1.11"] && vip_next_hops_in(&node, ALT_TABLE).is_empty())
            .then_some(())
    })
    .await;
    assert!(established("10.244.1.11"));

    // db-1 tries all along and is refused: never a peer, never a next hop.
    assert!(
        !peers().iter().any(|p| p["address"] == "10.244.1.12"),
        "{:?}",
        peers()
    );
    assert!(
        !side2.log().contains("Established"),
        "pod2's sidecar got a session: {}",
        side2.log()
    );
    assert_eq!(vip_next_hops(&node), ["10.244.1.11"]);

    // The Pod object is deleted: the session and the route go.
    api.delete("pods", "web", "lb-1");
    eventually("lb-1 gone from the peers", WAIT, || async {
        (!peers().iter().any(|p| p["address"] == "10.244.1.11")).then_some(())
    })
    .await;
    eventually("the VIP route gone", WAIT, || async {
        vip_next_hops(&node).is_empty().then_some(())
    })
    .await;

    // What the node asked of the API server, the ClusterRole allows.
    assert_eq!(support::not_allowed(&api.requests()), Vec::<String>::new());
    assert!(daemon.log().contains("pod is a peer"), "{}", daemon.log());

    // A new local AS cannot be applied to running sessions: the daemon
    // exits (the kubelet starts it again) and says why.
    let mut daemon = daemon;
    let mut changed = nbc;
    changed["spec"]["localASN"] = json!(65020);
    api.put(changed);
    let status = eventually("podpeer-node exits", WAIT, || {
        let s = daemon.child.try_wait().unwrap();
        async move { s }
    })
    .await;
    assert!(!status.success());
    assert!(
        daemon
            .log()
            .contains("the local AS changed: restarting to apply it"),
        "{}",
        daemon.log()
    );
}

/// `GET path` on the node's HTTP server (inside its namespace): `"CODE
/// body"`, or `None` when nothing answers.
fn get(node: &Netns, path: &str) -> Option<String> {
    let path = path.to_string();
    interop_tests::podlab::in_namespace(&node.path(), move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect("127.0.0.1:9180")?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: node\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let code = head.split_whitespace().nth(1).unwrap_or("?");
        Ok(format!("{code} {body}"))
    })
    .ok()
}
