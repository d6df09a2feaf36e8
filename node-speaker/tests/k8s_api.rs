//! The Kubernetes peer source against an API server double (see
//! `support/apiserver.rs`: it stands in for the real API server, which
//! cannot run here), with the real `kube` client over HTTP, a real bgp-core
//! speaker as the node and pods' speakers on loopback addresses
//! (127.0.0.x; nothing is installed in the kernel: no FIB loop runs here).
//!
//! Scenarios: a pod added, its address changed, relabelled, deleted; a pod
//! outside every selector refused; the exact status each node applies; an
//! Event for a refused route; two NodeBGPConfigs for one node; watches cut,
//! expired (410) and compacted without dropping an established session;
//! every request the code made allowed by `deploy/rbac.yaml`, and every
//! permission there used.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::IpAddr;
use std::time::Duration;

use bgp_core::fsm::State;
use bgp_core::speaker::{Event, SpeakerHandle};
use serde_json::{Value, json};

use support::apiserver::ApiServer;
use support::kube::Node;
use support::{eventually, pod_speaker};

const WAIT: Duration = Duration::from_secs(20);

/// What the node is not ready for until its source's first reconcile.
const FIRST_RECONCILE_PENDING: &str = "test: the first reconcile is pending";

async fn start_node(api: &ApiServer) -> Node {
    support::kube::start_node(api, "200ms", None).await
}

fn node(name: &str, rack: &str, cidr: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"rack": rack}},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    })
}

/// n1's taints: the one podpeer-node removes, one of somebody else's.
fn taints() -> Value {
    json!([
        {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true",
         "effect": "NoSchedule"},
        {"key": "team.example/keep", "effect": "NoExecute"},
    ])
}

fn pod(name: &str, app: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "web", "labels": {"app": app}},
        "spec": {"nodeName": "n1", "containers": [{"name": "nf", "image": "nf"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    })
}

/// The cluster every test starts from: two nodes, one NodeBGPConfig, the
/// PodPeering web/lb for pods labelled app=lb, kube-dns.
async fn cluster() -> ApiServer {
    let api = ApiServer::start(&support::crds()).await;
    api.put(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "web", "labels": {"team": "edge"}}}));
    let mut n1 = node("n1", "a", "10.244.1.0/24", "192.0.2.11");
    n1["spec"]["taints"] = taints();
    api.put(n1);
    api.put(node("n2", "b", "10.244.2.0/24", "192.0.2.12"));
    api.put(json!({
        "apiVersion": "podpeer.io/v1alpha1", "kind": "NodeBGPConfig",
        "metadata": {"name": "all"},
        "spec": {"nodeSelector": {}, "localASN": 65010, "routerID": "nodeIP",
                 "forbiddenPrefixes": ["0.0.0.0/0"]},
    }));
    api.put(json!({
        "apiVersion": "podpeer.io/v1alpha1", "kind": "PodPeering",
        "metadata": {"name": "lb", "namespace": "web"},
        "spec": {"podSelector": {"matchLabels": {"app": "lb"}}, "peerASN": "external",
                 "allowedPrefixes": [{"prefix": "198.51.100.0/24", "ge": 32, "le": 32}],
                 "maxPrefixes": 4},
    }));
    api.put(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
        "metadata": {"name": "kubernetes"}, "spec": {"cidrs": ["10.96.0.0/12"]},
    }));
    api.put(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system"},
        "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]},
    }));
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

async fn wait_established(node: &Node, ip: &str) {
    eventually(&format!("{ip} Established"), WAIT, || async {
        (neighbor_state(&node.app.speaker, ip).await == Some(State::Established)).then_some(())
    })
    .await;
}

async fn wait_gone(node: &Node, ip: &str) {
    eventually(&format!("{ip} no longer a neighbor"), WAIT, || async {
        neighbor_state(&node.app.speaker, ip)
            .await
            .is_none()
            .then_some(())
    })
    .await;
}

/// web/lb's status entries, transition times masked.
fn status_nodes(api: &ApiServer) -> Value {
    let mut s = api.get("podpeerings", "web", "lb").unwrap()["status"]["nodes"].clone();
    if s.is_null() {
        return json!([]);
    }
    for n in s.as_array_mut().unwrap() {
        let shown = n.to_string();
        for c in n["conditions"].as_array_mut().unwrap_or_else(|| {
            let bodies: Vec<String> = api
                .requests()
                .iter()
                .filter(|r| r.resource == "podpeerings/status")
                .map(|r| format!("{:?} {:?}", r.query, r.body))
                .collect();
            panic!("no conditions in {shown}\n{}", bodies.join("\n"))
        }) {
            assert!(c["lastTransitionTime"].as_str().unwrap().ends_with('Z'));
            c["lastTransitionTime"] = json!("T");
        }
    }
    s
}

async fn wait_status(api: &ApiServer, want: Value) {
    let start = std::time::Instant::now();
    loop {
        let have = status_nodes(api);
        if have == want {
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "status nodes\n want {want}\n have {have}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ready(status: &str, reason: &str, message: &str) -> Value {
    json!({"type": "Ready", "status": status, "reason": reason, "message": message,
           "observedGeneration": 1, "lastTransitionTime": "T"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_come_and_go_status_events_conflicts_and_rbac() {
    let api = cluster().await;
    let node = start_node(&api).await;
    assert!(node.app.config().pod_groups.is_empty());
    // The service CIDR is learned from the cluster's ServiceCIDR (no flag).
    assert!(
        node.app
            .config()
            .forbidden_prefixes
            .contains(&"10.96.0.0/12".parse().unwrap())
    );

    // A pod appears: it becomes a (passive) neighbor, and peers.
    api.put(pod("lb-1", "lb", "127.0.0.2"));
    eventually("127.0.0.2 a neighbor", WAIT, || async {
        neighbor_state(&node.app.speaker, "127.0.0.2").await
    })
    .await;
    let pod1 = pod_speaker(
        "127.0.0.2",
        node.port,
        &["198.51.100.10/32", "10.96.0.10/32"],
    )
    .await;
    wait_established(&node, "127.0.0.2").await;
    wait_status(
        &api,
        json!([{
            "name": "n1", "observedGeneration": 1,
            "conditions": [ready("True", "Established", "1 of 1 sessions Established")],
            "sessions": [{"pod": "web/lb-1", "address": "127.0.0.2", "state": "Established",
                          "accepted": 1, "rejected": 1,
                          "lastRejection": {"prefix": "10.96.0.10/32", "reason": "forbidden"}}],
        }]),
    )
    .await;

    // The refused route is an Event on the pod.
    let events = eventually("an Event", WAIT, || {
        let e = api.all("events");
        async move { (!e.is_empty()).then_some(e) }
    })
    .await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["type"], "Warning");
    assert_eq!(e["reason"], "RouteRejected");
    assert_eq!(e["regarding"]["kind"], "Pod");
    assert_eq!(e["regarding"]["name"], "lb-1");
    assert_eq!(e["reportingInstance"], "n1");
    assert!(
        e["note"]
            .as_str()
            .unwrap()
            .starts_with("10.96.0.10/32 refused by node n1 (forbidden)"),
        "{e}"
    );

    // A pod outside every selector is refused at connect.
    api.put(pod("db-1", "db", "127.0.0.9"));
    let stranger = pod_speaker("127.0.0.9", node.port, &["198.51.100.9/32"]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(neighbor_state(&node.app.speaker, "127.0.0.9").await, None);
    assert_ne!(
        neighbor_state(&stranger, "127.0.0.1").await,
        Some(State::Established)
    );
    stranger.shutdown(None).await.unwrap();

    // The pod restarts with another address: the peer follows it.
    pod1.shutdown(None).await.unwrap();
    api.put(pod("lb-1", "lb", "127.0.0.3"));
    wait_gone(&node, "127.0.0.2").await;
    let pod1 = pod_speaker("127.0.0.3", node.port, &["198.51.100.10/32"]).await;
    wait_established(&node, "127.0.0.3").await;
    wait_status(
        &api,
        json!([{
            "name": "n1", "observedGeneration": 1,
            "conditions": [ready("True", "Established", "1 of 1 sessions Established")],
            "sessions": [{"pod": "web/lb-1", "address": "127.0.0.3", "state": "Established",
                          "accepted": 1, "rejected": 0}],
        }]),
    )
    .await;

    // Relabelled out of the selector: the session goes, and so does this
    // node's entry.
    api.put(pod("lb-1", "other", "127.0.0.3"));
    wait_gone(&node, "127.0.0.3").await;
    wait_status(&api, json!([])).await;
    // ... and back in.
    api.put(pod("lb-1", "lb", "127.0.0.3"));
    wait_established(&node, "127.0.0.3").await;

    // Another node's entry is never touched by this one.
    let other = json!({
        "apiVersion": "podpeer.io/v1alpha1", "kind": "PodPeering",
        "metadata": {"name": "lb", "namespace": "web"},
        "status": {"nodes": [{"name": "n2", "conditions": [], "sessions": [
            {"pod": "web/lb-7", "state": "Established", "accepted": 1, "rejected": 0}]}]},
    });
    let body = serde_json::to_vec(&other).unwrap();
    let url = format!(
        "{}/apis/podpeer.io/v1alpha1/namespaces/web/podpeerings/lb/status?fieldManager=podpeer-node%2Fn2&force=true",
        api.url()
    );
    let client = kube::Client::try_from(kube::Config::new(api.url().parse().unwrap())).unwrap();
    let req = axum::http::Request::patch(url)
        .header("content-type", "application/apply-patch+yaml")
        .body(body)
        .unwrap();
    let _: Value = client.request(req).await.unwrap();

    // Deleted: the session and the entry of n1 go; n2's stays.
    api.delete("pods", "web", "lb-1");
    wait_gone(&node, "127.0.0.3").await;
    eventually("n1's entry gone, n2's kept", WAIT, || {
        let nodes = status_nodes(&api);
        async move {
            (nodes.as_array().unwrap().len() == 1 && nodes[0]["name"] == "n2").then_some(())
        }
    })
    .await;
    pod1.shutdown(None).await.unwrap();

    // Two NodeBGPConfigs select n1: a conflict, reported on both, and the
    // node says it is not ready; resolved when one goes.
    api.put(json!({
        "apiVersion": "podpeer.io/v1alpha1", "kind": "NodeBGPConfig",
        "metadata": {"name": "rack-a"},
        "spec": {"nodeSelector": {"matchLabels": {"rack": "a"}}, "localASN": 65020},
    }));
    for name in ["all", "rack-a"] {
        eventually(&format!("conflict on {name}"), WAIT, || {
            let s = api.get("nodebgpconfigs", "", name).unwrap()["status"].clone();
            async move {
                (s == json!({"conflicts": [{"node": "n1", "configs": ["all", "rack-a"]}]}))
                    .then_some(())
            }
        })
        .await;
    }
    let why = node.app.not_ready().await.unwrap();
    assert!(
        why.starts_with("NodeConfigConflict: NodeBGPConfigs all, rack-a all select node n1"),
        "{why}"
    );
    assert_eq!(
        node.app.config().local_as,
        65010,
        "the last good configuration stays"
    );
    api.delete("nodebgpconfigs", "", "rack-a");
    eventually("conflict cleared", WAIT, || {
        let s = api.get("nodebgpconfigs", "", "all").unwrap()["status"].clone();
        async move { (s == json!({"conflicts": []}) || s.is_null() || s == json!({})).then_some(()) }
    })
    .await;
    eventually("ready again", WAIT, || async {
        node.app.not_ready().await.is_none().then_some(())
    })
    .await;

    // Every status write was a server-side apply of n1's own entry only.
    let requests = api.requests();
    let patches: Vec<_> = requests
        .iter()
        .filter(|r| {
            r.resource == "podpeerings/status" && r.query["fieldManager"] == "podpeer-node/n1"
        })
        .collect();
    assert!(patches.len() >= 4, "{patches:?}");
    for p in &patches {
        assert_eq!(p.verb, "patch");
        assert_eq!(
            p.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(p.query["force"], "true");
        let body = p.body.as_ref().unwrap();
        assert_eq!(body["apiVersion"], "podpeer.io/v1alpha1");
        assert_eq!(body["kind"], "PodPeering");
        assert_eq!(body["metadata"], json!({"name": "lb", "namespace": "web"}));
        let nodes = body["status"]["nodes"].as_array().unwrap();
        assert!(
            nodes.len() <= 1 && nodes.iter().all(|n| n["name"] == "n1"),
            "{body}"
        );
        assert_eq!(
            body.as_object().unwrap().len(),
            4,
            "nothing but the status: {body}"
        );
    }
    // The write that reported the first pod's session with its counts,
    // exactly.
    let mut up = patches
        .iter()
        .filter_map(|p| p.body.clone())
        .find(|b| {
            let s = &b["status"]["nodes"][0]["sessions"][0];
            s["address"] == "127.0.0.2" && s["state"] == "Established" && s["rejected"] == 1
        })
        .unwrap();
    up["status"]["nodes"][0]["conditions"][0]["lastTransitionTime"] = json!("T");
    assert_eq!(
        up,
        json!({
            "apiVersion": "podpeer.io/v1alpha1", "kind": "PodPeering",
            "metadata": {"name": "lb", "namespace": "web"},
            "status": {"nodes": [{
                "name": "n1", "observedGeneration": 1,
                "conditions": [ready("True", "Established", "1 of 1 sessions Established")],
                "sessions": [{"pod": "web/lb-1", "address": "127.0.0.2", "state": "Established",
                              "accepted": 1, "rejected": 1,
                              "lastRejection": {"prefix": "10.96.0.10/32", "reason": "forbidden"}}],
            }]},
        })
    );
    // The last one removed n1's entry.
    assert_eq!(
        patches.last().unwrap().body.as_ref().unwrap()["status"]["nodes"],
        json!([])
    );
    // Pods were watched on this node only.
    for r in requests
        .iter()
        .filter(|r| r.resource == "pods" && r.group.is_empty())
    {
        assert_eq!(
            r.query.get("fieldSelector").map(String::as_str),
            Some("spec.nodeName=n1"),
            "{r:?}"
        );
    }

    // The network health check (no file here, no fabric: it passes) told
    // the Node: its taint gone, the other kept, the condition set.
    let n1 = api.get("nodes", "", "n1").unwrap();
    assert_eq!(
        n1["spec"]["taints"],
        json!([{"key": "team.example/keep", "effect": "NoExecute"}])
    );
    let c = &n1["status"]["conditions"][0];
    assert_eq!(
        (&c["type"], &c["status"], &c["reason"]),
        (
            &json!("PodpeerNetworkReady"),
            &json!("True"),
            &json!("NetworkChecksPassed")
        )
    );

    // Least privilege: every request the node made is allowed, and every
    // permission was needed. (The n2 request above is the test's own.)
    let ours: Vec<_> = requests
        .iter()
        .filter(|r| {
            r.query
                .get("fieldManager")
                .is_none_or(|m| m != "podpeer-node/n2")
        })
        .cloned()
        .collect();
    assert_eq!(support::not_allowed(&ours), Vec::<String>::new());
    // (VRFRouteConfigurations are FRR mode's: frr_dbus.rs checks them.)
    let unused: Vec<_> = support::unused(&ours)
        .into_iter()
        .filter(|(_, r, _)| r != "vrfrouteconfigurations")
        .collect();
    assert_eq!(unused, Vec::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_cuts_410_and_relists_keep_established_sessions() {
    let api = cluster().await;
    api.put(pod("lb-1", "lb", "127.0.0.4"));
    let node = start_node(&api).await;
    let mut events = node.app.speaker.subscribe();
    let pod1 = pod_speaker("127.0.0.4", node.port, &["198.51.100.11/32"]).await;
    wait_established(&node, "127.0.0.4").await;
    while events.try_recv().is_ok() {}

    let pod_watches = |api: &ApiServer| -> Vec<String> {
        api.requests()
            .iter()
            .filter(|r| r.resource == "pods" && r.verb == "watch")
            .map(|r| r.query.get("resourceVersion").cloned().unwrap_or_default())
            .collect()
    };
    let pod_lists = |api: &ApiServer| {
        api.requests()
            .iter()
            .filter(|r| r.resource == "pods" && r.verb == "list")
            .count()
    };
    assert_eq!(pod_lists(&api), 1);

    // A bookmark moves the resume point; a cut stream resumes from it.
    api.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "unrelated"}}));
    let unrelated = api.get("namespaces", "", "unrelated").unwrap()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    // Sent until the pod watch has taken one (its stream may still be being
    // set up). The cut below reaches each watch after every bookmark sent
    // before it, so the node reads the last one before its stream ends.
    let sent = api.bookmarks_sent("pods");
    let mut marked = 0;
    eventually("a bookmark on the pod watch", WAIT, || {
        marked = api.bookmark();
        let n = api.bookmarks_sent("pods");
        async move { (n > sent).then_some(()) }
    })
    .await;
    assert!(marked >= unrelated, "the bookmark is past the change");
    let marked = marked.to_string();
    let watches = pod_watches(&api).len();
    api.cut_watches();
    eventually("the pod watch resumed", WAIT, || {
        let w = pod_watches(&api);
        async move { (w.len() > watches).then_some(()) }
    })
    .await;
    assert_eq!(
        pod_watches(&api).last().unwrap(),
        &marked,
        "resumed from the bookmark"
    );
    api.put(pod("lb-2", "lb", "127.0.0.5"));
    eventually("lb-2 a neighbor", WAIT, || async {
        neighbor_state(&node.app.speaker, "127.0.0.5").await
    })
    .await;
    assert_eq!(
        pod_lists(&api),
        1,
        "a cut watch resumes without listing again"
    );

    // History compacted, then the streams cut: resuming gets 410 Gone, the
    // node lists again; changes made meanwhile arrive.
    api.compact();
    api.cut_watches();
    api.put(pod("lb-3", "lb", "127.0.0.6"));
    eventually("lb-3 a neighbor after the relist", WAIT, || async {
        neighbor_state(&node.app.speaker, "127.0.0.6").await
    })
    .await;
    assert!(pod_lists(&api) >= 2, "410 led to a new list");

    // A watch expired with an ERROR 410 event mid-stream: the same.
    let lists = pod_lists(&api);
    api.expire_watches();
    api.delete("pods", "web", "lb-2");
    wait_gone(&node, "127.0.0.5").await;
    eventually("a new list after the expiry", WAIT, || {
        let n = pod_lists(&api);
        async move { (n > lists).then_some(()) }
    })
    .await;

    // Through all of it the established session never moved.
    assert_eq!(
        neighbor_state(&node.app.speaker, "127.0.0.4").await,
        Some(State::Established)
    );
    while let Ok(e) = events.try_recv() {
        if let Event::NeighborState { neighbor, from, to } = e {
            assert_ne!(
                neighbor,
                "127.0.0.4".parse::<IpAddr>().unwrap(),
                "session moved {from} -> {to}"
            );
        }
    }
    pod1.shutdown(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_pods_is_one_reconcile() {
    let api = cluster().await;
    // The default debounce (1 s).
    let node = support::kube::start_node(&api, "1s", Some(FIRST_RECONCILE_PENDING)).await;
    // The first reconcile (nothing to do, nothing written) is over.
    eventually("the first reconcile", WAIT, || {
        let pending = node.app.source_not_ready.lock().unwrap().is_some();
        async move { (!pending).then_some(()) }
    })
    .await;
    let before = api.requests().len();
    for i in 0..20 {
        api.put(pod(
            &format!("lb-{i}"),
            "lb",
            &format!("127.0.1.{}", 10 + i),
        ));
    }
    eventually("20 neighbors", WAIT, || async {
        let n = node.app.speaker.neighbors().await.unwrap();
        (n.len() == 20).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let writes: Vec<usize> = api.requests()[before..]
        .iter()
        .filter(|r| r.resource == "podpeerings/status")
        .map(|r| {
            r.body.as_ref().unwrap()["status"]["nodes"][0]["sessions"]
                .as_array()
                .map_or(0, Vec::len)
        })
        .collect();
    // Debounced: the first write already has the whole burst (later ones
    // follow the sessions' states), and there are a few, not twenty.
    assert_eq!(writes.first(), Some(&20), "{writes:?}");
    assert!(writes.len() <= 3, "{writes:?}");
    let entry = &status_nodes(&api)[0];
    assert_eq!(entry["sessions"].as_array().unwrap().len(), 20);
    assert_eq!(entry["conditions"][0]["reason"], "SessionsDown");
    assert!(
        entry["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("0 of 20 sessions Established; not: web/lb-0 (Active)")
    );
}

/// The double itself, through the real client: selectors on lists and
/// watches (an object leaving a watch's selector arrives as DELETED), and
/// resourceVersions that move on every write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_double_speaks_selectors_and_watches_like_an_api_server() {
    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{ListParams, WatchEvent, WatchParams};

    let api = cluster().await;
    api.put(pod("a", "lb", "10.0.0.1"));
    api.put(pod("b", "db", "10.0.0.2"));
    let mut pending = pod("c", "lb", "10.0.0.3");
    pending["status"]["phase"] = json!("Pending");
    pending["metadata"]["labels"]["canary"] = json!("yes");
    api.put(pending);
    let client = kube::Client::try_from(kube::Config::new(api.url().parse().unwrap())).unwrap();
    let pods: kube::Api<Pod> = kube::Api::namespaced(client, "web");
    let names = |list: kube::core::ObjectList<Pod>| -> Vec<String> {
        list.items
            .into_iter()
            .map(|p| p.metadata.name.unwrap())
            .collect()
    };
    let lp = |labels: &str, fields: &str| {
        let mut lp = ListParams::default();
        if !labels.is_empty() {
            lp = lp.labels(labels);
        }
        if !fields.is_empty() {
            lp = lp.fields(fields);
        }
        lp
    };
    assert_eq!(
        names(pods.list(&lp("app=lb", "")).await.unwrap()),
        ["a", "c"]
    );
    assert_eq!(
        names(pods.list(&lp("app in (lb,db),!canary", "")).await.unwrap()),
        ["a", "b"]
    );
    assert_eq!(names(pods.list(&lp("app!=lb", "")).await.unwrap()), ["b"]);
    assert_eq!(
        names(pods.list(&lp("", "status.phase=Running")).await.unwrap()),
        ["a", "b"]
    );
    assert_eq!(
        names(
            pods.list(&lp("app=lb", "status.phase!=Running"))
                .await
                .unwrap()
        ),
        ["c"]
    );
    let list = pods.list(&lp("app=lb", "")).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();

    let stream = pods
        .watch(&WatchParams::default().labels("app=lb"), &rv)
        .await
        .unwrap();
    let mut stream = stream.boxed();
    api.put(pod("a", "web", "10.0.0.1")); // leaves the selector
    api.put(pod("b", "lb", "10.0.0.2")); // enters it
    api.put(pod("b", "lb", "10.0.0.9")); // changes within it
    api.delete("pods", "web", "c");
    let mut seen = Vec::new();
    let mut last_rv = 0u64;
    while seen.len() < 4 {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let (kind, p) = match ev {
            WatchEvent::Added(p) => ("ADDED", p),
            WatchEvent::Modified(p) => ("MODIFIED", p),
            WatchEvent::Deleted(p) => ("DELETED", p),
            other => panic!("{other:?}"),
        };
        let v: u64 = p
            .metadata
            .resource_version
            .clone()
            .unwrap()
            .parse()
            .unwrap();
        assert!(v > last_rv, "resourceVersions increase");
        last_rv = v;
        seen.push(format!("{kind} {}", p.metadata.name.unwrap()));
    }
    assert_eq!(seen, ["DELETED a", "ADDED b", "MODIFIED b", "DELETED c"]);
    // Every list and watch is on record with its selectors.
    let watches: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.verb == "watch" && r.namespace.as_deref() == Some("web"))
        .collect();
    assert_eq!(watches.len(), 1);
    assert_eq!(watches[0].query["labelSelector"], "app=lb");
    assert_eq!(watches[0].query["resourceVersion"], rv);
}

/// The requests to nodes and nodes/status since `from`, as
/// `VERB resource CONTENT-TYPE BODY` (bodies with times masked).
fn node_requests(api: &ApiServer, from: usize) -> Vec<String> {
    api.requests()[from..]
        .iter()
        .filter(|r| r.resource.starts_with("nodes"))
        .map(|r| {
            let mut body = r.body.clone().unwrap_or(Value::Null);
            if let Some(cs) = body
                .pointer_mut("/status/conditions")
                .and_then(Value::as_array_mut)
            {
                for c in cs {
                    assert!(c["lastTransitionTime"].as_str().unwrap().ends_with('Z'));
                    c["lastTransitionTime"] = json!("T");
                }
            }
            let mut line = format!("{} {}", r.verb, r.resource);
            if let Some(ct) = &r.content_type {
                line = format!("{line} {ct}");
            }
            if !body.is_null() {
                line = format!("{line} {body}");
            }
            line
        })
        .collect()
}

fn check(name: &str, ok: bool, detail: &str) -> podpeer_node::health::CheckResult {
    podpeer_node::health::CheckResult {
        name: name.into(),
        ok,
        detail: detail.into(),
    }
}

/// Taint removal and the Node condition, request by request: a failing
/// check sets the condition False and removes nothing; passing removes the
/// node's taint and the configured one once (a merge patch of the list read
/// minus ours, with its resourceVersion), keeps the others, sets True; a
/// later pass or a restarted node patches no taint again; a stale
/// resourceVersion is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_removes_the_taints_once_and_sets_the_condition() {
    use podpeer_node::health::Gate;
    use podpeer_node::k8s::readiness::KubeReadiness;

    let api = cluster().await;
    let mut n1 = api.get("nodes", "", "n1").unwrap();
    n1["spec"]["taints"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "extra.example/net", "effect": "NoSchedule"}));
    api.put(n1);
    let client = kube::Client::try_from(kube::Config::new(api.url().parse().unwrap())).unwrap();
    let node = KubeReadiness::new(client.clone(), "n1", "podpeer-node/n1");
    let mut gate = Gate::new(vec!["extra.example/net".into()]);
    let ssa = "patch nodes/status application/apply-patch+yaml";
    let condition = |status: &str, reason: &str, message: &str| {
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
               "status": {"conditions": [{"type": "PodpeerNetworkReady", "status": status,
                   "reason": reason, "message": message, "lastTransitionTime": "T"}]}})
    };

    // Failing: the condition False with the failed check, no taint touched.
    let from = api.requests().len();
    let bad = [
        check("interface eth0", false, "down"),
        check("fabric", true, "1 of 1"),
    ];
    gate.apply(&bad, &node).await.unwrap();
    assert_eq!(
        node_requests(&api, from),
        [
            "get nodes".to_string(),
            format!(
                "{ssa} {}",
                condition("False", "NetworkChecksFailed", "interface eth0: down")
            ),
        ]
    );
    let n1 = api.get("nodes", "", "n1").unwrap();
    assert_eq!(n1["spec"]["taints"].as_array().unwrap().len(), 3);
    let c = &n1["status"]["conditions"][0];
    assert_eq!(
        (&c["status"], &c["message"]),
        (&json!("False"), &json!("interface eth0: down"))
    );
    let failed_since = c["lastTransitionTime"].clone();
    let rv = n1["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    // Passing: condition True, then one merge patch of the taints. (A
    // second later, so the transition time shows.)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let from = api.requests().len();
    let good = [
        check("interface eth0", true, "up"),
        check("fabric", true, "1 of 1"),
    ];
    gate.apply(&good, &node).await.unwrap();
    assert_eq!(
        node_requests(&api, from),
        [
            format!(
                "{ssa} {}",
                condition("True", "NetworkChecksPassed", "2 checks passed")
            ),
            "get nodes".to_string(),
            format!(
                "patch nodes application/merge-patch+json {}",
                json!({"metadata": {"resourceVersion": (rv.parse::<u64>().unwrap() + 1).to_string()},
                       "spec": {"taints": [{"key": "team.example/keep", "effect": "NoExecute"}]}})
            ),
        ]
    );
    let n1 = api.get("nodes", "", "n1").unwrap();
    assert_eq!(
        n1["spec"]["taints"],
        json!([{"key": "team.example/keep", "effect": "NoExecute"}])
    );
    assert_eq!(n1["status"]["conditions"].as_array().unwrap().len(), 1);
    assert_eq!(n1["status"]["conditions"][0]["status"], "True");
    assert_ne!(
        n1["status"]["conditions"][0]["lastTransitionTime"],
        failed_since
    );

    // Passing again: nothing to say.
    let from = api.requests().len();
    gate.apply(&good, &node).await.unwrap();
    assert_eq!(node_requests(&api, from), Vec::<String>::new());
    // A restarted podpeer-node (a new gate): it reads, finds no taint of
    // ours, patches none; the condition keeps its transition time.
    let since = n1["status"]["conditions"][0]["lastTransitionTime"].clone();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let node = KubeReadiness::new(client.clone(), "n1", "podpeer-node/n1");
    let mut gate = Gate::new(vec!["extra.example/net".into()]);
    let from = api.requests().len();
    gate.apply(&good, &node).await.unwrap();
    assert_eq!(
        node_requests(&api, from),
        [
            "get nodes".to_string(),
            format!(
                "{ssa} {}",
                condition("True", "NetworkChecksPassed", "2 checks passed")
            ),
            "get nodes".to_string(),
        ]
    );
    let n1 = api.get("nodes", "", "n1").unwrap();
    assert_eq!(n1["status"]["conditions"][0]["lastTransitionTime"], since);

    // The kubelet's conditions stay beside ours (list-map by type).
    let mut with_kubelet = n1.clone();
    with_kubelet["status"]["conditions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "Ready", "status": "True"}));
    api.put(with_kubelet);
    gate.apply(&bad, &node).await.unwrap();
    let types: Vec<(String, String)> = api.get("nodes", "", "n1").unwrap()["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().into(),
                c["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            ("PodpeerNetworkReady".into(), "False".into()),
            ("Ready".into(), "True".into())
        ]
    );

    // The precondition the taint patch relies on: a stale resourceVersion
    // is a conflict, nothing changes.
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
    let stale = json!({"metadata": {"resourceVersion": rv}, "spec": {"taints": []}});
    let e = nodes
        .patch(
            "n1",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&stale),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, kube::Error::Api(ref s) if s.code == 409), "{e}");
    assert_eq!(
        api.get("nodes", "", "n1").unwrap()["spec"]["taints"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
