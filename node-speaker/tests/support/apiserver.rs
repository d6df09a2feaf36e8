//! An API server test double. It stands in for the real Kubernetes API
//! server because none can run on these machines: the real `kube` client
//! talks to it over HTTP, as it would to kube-apiserver.
//!
//! What it implements, for the resources podpeer-node uses (Pods, Nodes,
//! Namespaces, Services, Secrets, ServiceCIDRs, PodPeerings,
//! NodeBGPConfigs, VRFRouteConfigurations, events.k8s.io Events):
//! - list and get, with label and field selectors and a resourceVersion;
//! - watch from a resourceVersion (the changes after it, then live ones),
//!   with bookmarks on request, objects leaving a selector sent as
//!   DELETED, and `410 Gone` (an ERROR event, as the real server sends it)
//!   for a resourceVersion older than the last compaction;
//! - create, replace, delete, JSON merge patch (a resourceVersion in it a
//!   precondition, 409 Conflict when stale, as in replace), and server-side
//!   apply (field managers, list-maps merged by key as the CRD schema
//!   declares and a Node's `status.conditions` by type, fields a manager
//!   stops applying removed unless another owns them);
//! - the status subresource (writes to the object ignore the status,
//!   writes to `/status` change nothing else; generation follows the spec).
//!
//! Every request is recorded (method, RBAC verb, group, resource with
//! subresource, namespace, name, query, content type, body). The test side
//! changes objects directly ([`ApiServer::put`], [`ApiServer::delete`]) and
//! can cut every watch, expire them with 410, compact the history or send
//! bookmarks.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request as HttpRequest, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

/// One recorded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The RBAC verb: get, list, watch, create, update, patch, delete.
    pub verb: String,
    /// The API group (`""` for core).
    pub group: String,
    /// The resource, with `/subresource` when there is one.
    pub resource: String,
    /// The namespace, when namespaced.
    pub namespace: Option<String>,
    /// The object's name, when one.
    pub name: Option<String>,
    /// Query parameters.
    pub query: BTreeMap<String, String>,
    /// The Content-Type.
    pub content_type: Option<String>,
    /// The body, parsed.
    pub body: Option<Value>,
}

/// A resource the double serves.
#[derive(Debug, Clone)]
struct Kind {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    status: bool,
}

const KINDS: &[Kind] = &[
    Kind {
        group: "",
        version: "v1",
        plural: "pods",
        kind: "Pod",
        namespaced: true,
        status: true,
    },
    Kind {
        group: "",
        version: "v1",
        plural: "nodes",
        kind: "Node",
        namespaced: false,
        status: true,
    },
    Kind {
        group: "",
        version: "v1",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
        status: true,
    },
    Kind {
        group: "",
        version: "v1",
        plural: "services",
        kind: "Service",
        namespaced: true,
        status: true,
    },
    Kind {
        group: "",
        version: "v1",
        plural: "secrets",
        kind: "Secret",
        namespaced: true,
        status: false,
    },
    Kind {
        group: "podpeer.io",
        version: "v1alpha1",
        plural: "podpeerings",
        kind: "PodPeering",
        namespaced: true,
        status: true,
    },
    Kind {
        group: "podpeer.io",
        version: "v1alpha1",
        plural: "nodebgpconfigs",
        kind: "NodeBGPConfig",
        namespaced: false,
        status: true,
    },
    Kind {
        group: "networking.k8s.io",
        version: "v1",
        plural: "servicecidrs",
        kind: "ServiceCIDR",
        namespaced: false,
        status: true,
    },
    Kind {
        group: "network.schiff.telekom.de",
        version: "v1alpha1",
        plural: "vrfrouteconfigurations",
        kind: "VRFRouteConfiguration",
        namespaced: false,
        status: true,
    },
    Kind {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
        status: false,
    },
];

impl Kind {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

fn kind_of(plural: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.plural == plural)
}

/// (plural, namespace or "", name)
type Key = (String, String, String);

/// A list-map of a schema: its path (field names, `[]` for items) and keys.
type ListMap = (Vec<String>, Vec<String>);

#[derive(Debug, Clone)]
struct Change {
    rv: u64,
    plural: String,
    kind: &'static str,
    old: Option<Value>,
    new: Value,
}

#[derive(Debug, Clone)]
enum Signal {
    Change(Change),
    Bookmark(u64),
    Cut,
    Expire,
}

#[derive(Default)]
struct Inner {
    rv: u64,
    compacted: u64,
    objects: BTreeMap<Key, Value>,
    log: Vec<Change>,
    requests: Vec<Request>,
    /// (object, manager, status subresource) -> owned paths
    managed: BTreeMap<(Key, String), BTreeSet<Vec<String>>>,
    /// plural -> list-map paths (field names, `[]` for items) and keys
    list_maps: BTreeMap<String, Vec<ListMap>>,
    uid: u64,
    /// plural -> bookmarks written to its watch streams
    bookmarks: BTreeMap<String, u64>,
}

/// The double. Dropping it stops the server.
pub struct ApiServer {
    inner: Arc<Mutex<Inner>>,
    signals: broadcast::Sender<Signal>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    signals: broadcast::Sender<Signal>,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ApiServer {
    /// Serves on `listener`, with the list-maps the CRDs in `crds` declare
    /// (their `x-kubernetes-list-type: map` fields).
    pub async fn serve(listener: tokio::net::TcpListener, crds: &[Value]) -> Self {
        let mut inner = Inner {
            rv: 1,
            ..Default::default()
        };
        for crd in crds {
            let plural = crd["spec"]["names"]["plural"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
            let mut found = Vec::new();
            list_maps(schema, &mut Vec::new(), &mut found);
            inner.list_maps.insert(plural, found);
        }
        // Built-in list-maps server-side apply merges by key.
        inner.list_maps.insert(
            "nodes".into(),
            vec![(
                vec!["status".into(), "conditions".into()],
                vec!["type".into()],
            )],
        );
        let (signals, _) = broadcast::channel(4096);
        let inner = Arc::new(Mutex::new(inner));
        let shared = Shared {
            inner: Arc::clone(&inner),
            signals: signals.clone(),
        };
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let app = axum::Router::new().fallback(handle).with_state(shared);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            inner,
            signals,
            addr,
            server,
        }
    }

    /// Serves on a new port of 127.0.0.1.
    pub async fn start(crds: &[Value]) -> Self {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        Self::serve(l, crds).await
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.inner).requests.clone()
    }

    /// Creates or replaces an object (as another client would).
    pub fn put(&self, obj: Value) -> Value {
        let kind = KINDS
            .iter()
            .find(|k| obj["kind"] == k.kind)
            .unwrap_or_else(|| panic!("unknown kind in {obj}"));
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let key = (
            kind.plural.to_string(),
            if kind.namespaced { ns } else { String::new() },
            name,
        );
        let mut inner = lock(&self.inner);
        let old = inner.objects.get(&key).cloned();
        write(&mut inner, kind, &key, old, obj, &self.signals)
    }

    /// The object, if it exists.
    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        lock(&self.inner)
            .objects
            .get(&(plural.to_string(), namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Every object of a resource.
    pub fn all(&self, plural: &str) -> Vec<Value> {
        lock(&self.inner)
            .objects
            .iter()
            .filter(|(k, _)| k.0 == plural)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Deletes an object.
    pub fn delete(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let key = (plural.to_string(), namespace.to_string(), name.to_string());
        let mut inner = lock(&self.inner);
        remove(&mut inner, &key, &self.signals)
    }

    /// Ends every watch stream (the clients resume from their last
    /// resourceVersion).
    pub fn cut_watches(&self) {
        let _ = self.signals.send(Signal::Cut);
    }

    /// Ends every watch stream with a `410 Gone` ERROR event.
    pub fn expire_watches(&self) {
        let _ = self.signals.send(Signal::Expire);
    }

    /// Forgets the history: a watch from any resourceVersion up to now gets
    /// `410 Gone`, including the latest one a bookmark handed out (the
    /// compaction takes a version of its own, as an etcd compaction does, so
    /// a list made afterwards starts a watch that is valid).
    pub fn compact(&self) {
        let mut inner = lock(&self.inner);
        inner.rv += 1;
        inner.compacted = inner.rv;
        inner.log.clear();
    }

    /// Sends a bookmark with the current resourceVersion to every watch
    /// that asked for bookmarks; that resourceVersion. A watch gets it
    /// before any cut or expiry signalled afterwards.
    pub fn bookmark(&self) -> u64 {
        let rv = lock(&self.inner).rv;
        let _ = self.signals.send(Signal::Bookmark(rv));
        rv
    }

    /// How many bookmarks were written so far to the watch streams of a
    /// resource.
    pub fn bookmarks_sent(&self, plural: &str) -> u64 {
        lock(&self.inner)
            .bookmarks
            .get(plural)
            .copied()
            .unwrap_or_default()
    }
}

/// Finds the list-maps of a schema: their paths and keys.
fn list_maps(schema: &Value, path: &mut Vec<String>, out: &mut Vec<ListMap>) {
    if schema["x-kubernetes-list-type"] == "map" {
        let keys = schema["x-kubernetes-list-map-keys"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        out.push((path.clone(), keys));
    }
    if let Some(props) = schema["properties"].as_object() {
        for (k, v) in props {
            path.push(k.clone());
            list_maps(v, path, out);
            path.pop();
        }
    }
    if schema["items"].is_object() {
        path.push("[]".into());
        list_maps(&schema["items"], path, out);
        path.pop();
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    })
}

fn error(code: u16, reason: &str, message: &str) -> Response {
    let s = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (s, axum::Json(status(code, reason, message))).into_response()
}

fn now() -> String {
    // Seconds are enough; the double's clock is the test's.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// Stores `obj` at `key` (created or replaced), with a new resourceVersion
/// and the server-set metadata; broadcasts the change.
fn write(
    inner: &mut Inner,
    kind: &'static Kind,
    key: &Key,
    old: Option<Value>,
    mut obj: Value,
    signals: &broadcast::Sender<Signal>,
) -> Value {
    inner.rv += 1;
    let rv = inner.rv;
    obj["apiVersion"] = json!(kind.api_version());
    obj["kind"] = json!(kind.kind);
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    let meta = &mut obj["metadata"];
    meta["name"] = json!(key.2);
    if kind.namespaced {
        meta["namespace"] = json!(key.1);
    }
    meta["resourceVersion"] = json!(rv.to_string());
    match &old {
        Some(o) => {
            meta["uid"] = o["metadata"]["uid"].clone();
            meta["creationTimestamp"] = o["metadata"]["creationTimestamp"].clone();
            let spec_changed = strip_meta_status(o) != strip_meta_status(&obj);
            let g = o["metadata"]["generation"].as_i64().unwrap_or(1);
            obj["metadata"]["generation"] = json!(if spec_changed { g + 1 } else { g });
        }
        None => {
            inner.uid += 1;
            meta["uid"] = json!(format!("00000000-0000-0000-0000-{:012}", inner.uid));
            if meta["creationTimestamp"].is_null() {
                meta["creationTimestamp"] = json!(now());
            }
            meta["generation"] = json!(1);
        }
    }
    inner.objects.insert(key.clone(), obj.clone());
    let change = Change {
        rv,
        plural: key.0.clone(),
        kind: if old.is_some() { "MODIFIED" } else { "ADDED" },
        old,
        new: obj.clone(),
    };
    inner.log.push(change.clone());
    let _ = signals.send(Signal::Change(change));
    obj
}

fn strip_meta_status(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
    }
    v
}

fn remove(inner: &mut Inner, key: &Key, signals: &broadcast::Sender<Signal>) -> Option<Value> {
    let mut old = inner.objects.remove(key)?;
    inner.rv += 1;
    let rv = inner.rv;
    old["metadata"]["resourceVersion"] = json!(rv.to_string());
    inner.managed.retain(|(k, _), _| k != key);
    let change = Change {
        rv,
        plural: key.0.clone(),
        kind: "DELETED",
        old: Some(old.clone()),
        new: old.clone(),
    };
    inner.log.push(change.clone());
    let _ = signals.send(Signal::Change(change));
    Some(old)
}

// ---------------------------------------------------------------------------
// Selectors.

fn labels_match(selector: &str, obj: &Value) -> bool {
    let labels = obj["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let get = |k: &str| labels.get(k).and_then(Value::as_str).map(str::to_string);
    split_requirements(selector).iter().all(|req| {
        let req = req.trim();
        if req.is_empty() {
            return true;
        }
        if let Some((k, rest)) = req.split_once(" in ").or_else(|| req.split_once(" notin ")) {
            let values: Vec<&str> = rest
                .trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split(',')
                .map(str::trim)
                .collect();
            let has = get(k.trim()).is_some_and(|v| values.contains(&v.as_str()));
            return if req.contains(" notin ") { !has } else { has };
        }
        if let Some((k, v)) = req.split_once("!=") {
            return get(k.trim()).as_deref() != Some(v.trim());
        }
        if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
            return get(k.trim()).as_deref() == Some(v.trim());
        }
        if let Some(k) = req.strip_prefix('!') {
            return get(k.trim()).is_none();
        }
        get(req).is_some()
    })
}

/// Splits at commas outside parentheses.
fn split_requirements(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

fn fields_match(selector: &str, obj: &Value) -> bool {
    selector
        .split(',')
        .filter(|r| !r.trim().is_empty())
        .all(|req| {
            let (path, want, equal) = if let Some((p, v)) = req.split_once("!=") {
                (p, v, false)
            } else if let Some((p, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
                (p, v, true)
            } else {
                return false;
            };
            let mut cur = obj;
            for part in path.trim().split('.') {
                cur = &cur[part];
            }
            let have = match cur {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (have == want.trim()) == equal
        })
}

struct Filter {
    namespace: Option<String>,
    labels: Option<String>,
    fields: Option<String>,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| obj["metadata"]["namespace"] == ns)
            && self.labels.as_deref().is_none_or(|s| labels_match(s, obj))
            && self.fields.as_deref().is_none_or(|s| fields_match(s, obj))
    }
}

// ---------------------------------------------------------------------------
// Requests.

struct Target {
    kind: &'static Kind,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, r, tail @ ..] if !r.is_empty() => (Some(ns.to_string()), {
            let mut v = vec![*r];
            v.extend(tail);
            v
        }),
        other => (None, other.to_vec()),
    };
    let plural = *rest.first()?;
    let kind = KINDS
        .iter()
        .find(|k| k.plural == plural && k.group == group && k.version == version)?;
    Some(Target {
        kind,
        namespace,
        name: rest.get(1).map(|s| s.to_string()),
        subresource: rest.get(2).map(|s| s.to_string()),
    })
}

fn query_map(q: Option<&str>) -> BTreeMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(State(shared): State<Shared>, req: HttpRequest) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = query_map(req.uri().query());
    let headers: HeaderMap = req.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
    let bytes = axum::body::to_bytes(req.into_body(), 16 << 20)
        .await
        .unwrap_or_default();
    let body: Option<Value> = if bytes.is_empty() {
        None
    } else {
        serde_json::from_slice(&bytes).ok().or_else(|| {
            std::str::from_utf8(&bytes)
                .ok()
                .and_then(|t| serde_saphyr::from_str(t).ok())
        })
    };
    let Some(t) = parse_path(&path) else {
        return error(
            404,
            "NotFound",
            &format!("the double does not serve {path}"),
        );
    };
    let verb = match (&method, t.name.is_some()) {
        (&Method::GET, true) => "get",
        (&Method::GET, false) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            "watch"
        }
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, _) => "delete",
        _ => "unknown",
    };
    let resource = match &t.subresource {
        Some(s) => format!("{}/{s}", t.kind.plural),
        None => t.kind.plural.to_string(),
    };
    lock(&shared.inner).requests.push(Request {
        method: method.to_string(),
        verb: verb.into(),
        group: t.kind.group.into(),
        resource,
        namespace: t.namespace.clone(),
        name: t.name.clone(),
        query: query.clone(),
        content_type: content_type.clone(),
        body: body.clone(),
    });
    let filter = Filter {
        namespace: t.namespace.clone(),
        labels: query.get("labelSelector").cloned(),
        fields: query.get("fieldSelector").cloned(),
    };
    let ns = if t.kind.namespaced {
        t.namespace.clone().unwrap_or_default()
    } else {
        String::new()
    };
    match verb {
        "list" => list(&shared, t.kind, &filter),
        "watch" => watch(&shared, t.kind, filter, &query),
        "get" => {
            let key = (t.kind.plural.to_string(), ns, t.name.unwrap_or_default());
            match lock(&shared.inner).objects.get(&key) {
                Some(o) => axum::Json(o.clone()).into_response(),
                None => error(
                    404,
                    "NotFound",
                    &format!("{} {:?} not found", t.kind.plural, key.2),
                ),
            }
        }
        "create" => {
            let Some(mut obj) = body else {
                return error(400, "BadRequest", "no body");
            };
            let name = obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let key = (t.kind.plural.to_string(), ns, name);
            let mut inner = lock(&shared.inner);
            if inner.objects.contains_key(&key) {
                return error(
                    409,
                    "AlreadyExists",
                    &format!("{} {:?} already exists", t.kind.plural, key.2),
                );
            }
            if t.kind.status
                && let Some(o) = obj.as_object_mut()
            {
                o.remove("status");
            }
            let obj = write(&mut inner, t.kind, &key, None, obj, &shared.signals);
            (StatusCode::CREATED, axum::Json(obj)).into_response()
        }
        "update" | "patch" => {
            let key = (
                t.kind.plural.to_string(),
                ns,
                t.name.clone().unwrap_or_default(),
            );
            update(
                &shared,
                t.kind,
                &key,
                t.subresource.as_deref(),
                verb,
                content_type.as_deref(),
                body,
                &query,
            )
        }
        "delete" => {
            let key = (t.kind.plural.to_string(), ns, t.name.unwrap_or_default());
            match remove(&mut lock(&shared.inner), &key, &shared.signals) {
                Some(o) => axum::Json(o).into_response(),
                None => error(404, "NotFound", "not found"),
            }
        }
        _ => error(405, "MethodNotAllowed", "method not allowed"),
    }
}

fn list(shared: &Shared, kind: &Kind, filter: &Filter) -> Response {
    let inner = lock(&shared.inner);
    let items: Vec<Value> = inner
        .objects
        .iter()
        .filter(|(k, v)| k.0 == kind.plural && filter.matches(v))
        .map(|(_, v)| v.clone())
        .collect();
    axum::Json(json!({
        "apiVersion": kind.api_version(),
        "kind": format!("{}List", kind.kind),
        "metadata": {"resourceVersion": inner.rv.to_string()},
        "items": items,
    }))
    .into_response()
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// What a change looks like through a filter: ADDED, MODIFIED or DELETED,
/// or nothing.
fn through(filter: &Filter, c: &Change) -> Option<&'static str> {
    let new = c.kind != "DELETED" && filter.matches(&c.new);
    let old = c.old.as_ref().is_some_and(|o| filter.matches(o));
    match (c.kind, old, new) {
        ("DELETED", true, _) => Some("DELETED"),
        ("DELETED", false, _) => None,
        (_, false, true) => Some("ADDED"),
        (_, true, true) => Some("MODIFIED"),
        (_, true, false) => Some("DELETED"),
        (_, false, false) => None,
    }
}

fn watch(
    shared: &Shared,
    kind: &'static Kind,
    filter: Filter,
    query: &BTreeMap<String, String>,
) -> Response {
    let (tx, rx) = futures::channel::mpsc::unbounded::<Bytes>();
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(Duration::from_secs(290), Duration::from_secs);
    let from: Option<u64> = query
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
        .and_then(|v| v.parse().ok());
    let mut signals;
    {
        let inner = lock(&shared.inner);
        signals = shared.signals.subscribe();
        match from {
            Some(rv) if rv < inner.compacted => {
                let gone = status(
                    410,
                    "Expired",
                    &format!("too old resource version: {rv} ({})", inner.compacted),
                );
                let _ = tx.unbounded_send(event_line("ERROR", &gone));
                drop(tx);
                return stream_response(rx);
            }
            Some(rv) => {
                for c in inner
                    .log
                    .iter()
                    .filter(|c| c.rv > rv && c.plural == kind.plural)
                {
                    if let Some(t) = through(&filter, c) {
                        let _ = tx.unbounded_send(event_line(t, &c.new));
                    }
                }
            }
            None => {
                for (_, v) in inner
                    .objects
                    .iter()
                    .filter(|(k, v)| k.0 == kind.plural && filter.matches(v))
                {
                    let _ = tx.unbounded_send(event_line("ADDED", v));
                }
            }
        }
    }
    let inner = Arc::clone(&shared.inner);
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => break,
                s = signals.recv() => match s {
                    Ok(Signal::Change(c)) if c.plural == kind.plural => {
                        if let Some(t) = through(&filter, &c)
                            && tx.unbounded_send(event_line(t, &c.new)).is_err() {
                            break;
                        }
                    }
                    Ok(Signal::Change(_)) => {}
                    Ok(Signal::Bookmark(rv)) => {
                        if bookmarks {
                            let mark = json!({"apiVersion": kind.api_version(), "kind": kind.kind,
                                "metadata": {"resourceVersion": rv.to_string()}});
                            if tx.unbounded_send(event_line("BOOKMARK", &mark)).is_err() {
                                break;
                            }
                            *lock(&inner).bookmarks.entry(kind.plural.to_string()).or_default() += 1;
                        }
                    }
                    Ok(Signal::Cut) => break,
                    Ok(Signal::Expire) => {
                        let gone = status(410, "Expired", "the watch expired");
                        let _ = tx.unbounded_send(event_line("ERROR", &gone));
                        break;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
    });
    stream_response(rx)
}

fn stream_response(rx: futures::channel::mpsc::UnboundedReceiver<Bytes>) -> Response {
    let body = Body::from_stream(rx.map(Ok::<Bytes, Infallible>));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(body)
        .unwrap_or_else(|_| error(500, "InternalError", "response"))
}

#[allow(clippy::too_many_arguments)]
fn update(
    shared: &Shared,
    kind: &'static Kind,
    key: &Key,
    sub: Option<&str>,
    verb: &str,
    content_type: Option<&str>,
    body: Option<Value>,
    query: &BTreeMap<String, String>,
) -> Response {
    let Some(body) = body else {
        return error(400, "BadRequest", "no body");
    };
    let status_only = sub == Some("status");
    if sub.is_some() && !status_only {
        return error(404, "NotFound", "unknown subresource");
    }
    let mut inner = lock(&shared.inner);
    let old = inner.objects.get(key).cloned();
    let apply = verb == "patch" && content_type == Some("application/apply-patch+yaml");
    let mut new = match (verb, content_type, &old) {
        ("update", _, _) => body.clone(),
        (_, _, _) if apply => {
            let Some(manager) = query.get("fieldManager").filter(|m| !m.is_empty()) else {
                return error(422, "Invalid", "fieldManager is required for apply patch");
            };
            let force = query.get("force").is_some_and(|f| f == "true");
            if old.is_none() && status_only {
                return error(
                    404,
                    "NotFound",
                    &format!("{} {:?} not found", kind.plural, key.2),
                );
            }
            let base = old.clone().unwrap_or_else(|| json!({"metadata": {}}));
            match server_side_apply(&mut inner, key, manager, status_only, force, base, &body) {
                Ok(v) => v,
                Err(conflict) => return error(409, "Conflict", &conflict),
            }
        }
        (_, Some("application/merge-patch+json"), Some(o)) => {
            let mut v = o.clone();
            merge_patch(&mut v, &body);
            v
        }
        (_, ct, Some(_)) => {
            return error(
                415,
                "UnsupportedMediaType",
                &format!("{ct:?} is not supported by the double"),
            );
        }
        (_, _, None) => {
            return error(
                404,
                "NotFound",
                &format!("{} {:?} not found", kind.plural, key.2),
            );
        }
    };
    if kind.status {
        let old_status = old
            .as_ref()
            .map(|o| o["status"].clone())
            .unwrap_or(Value::Null);
        if status_only {
            // Only the status changes.
            let new_status = new["status"].clone();
            new = old.clone().unwrap_or_default();
            set_or_remove(&mut new, "status", new_status);
        } else {
            set_or_remove(&mut new, "status", old_status);
        }
    }
    // A resourceVersion in a replace or a merge patch is a precondition.
    if let (Some(o), Some(rv)) = (&old, body["metadata"]["resourceVersion"].as_str())
        && (verb == "update" || (verb == "patch" && !apply))
        && o["metadata"]["resourceVersion"].as_str() != Some(rv)
    {
        return error(409, "Conflict", "the object has been modified");
    }
    let obj = write(&mut inner, kind, key, old, new, &shared.signals);
    axum::Json(obj).into_response()
}

fn set_or_remove(obj: &mut Value, field: &str, v: Value) {
    if let Some(o) = obj.as_object_mut() {
        if v.is_null() {
            o.remove(field);
        } else {
            o.insert(field.into(), v);
        }
    }
}

/// RFC 7386.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Some(t) = target.as_object_mut() {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Server-side apply.

fn map_keys<'a>(
    list_maps: &'a [(Vec<String>, Vec<String>)],
    path: &[String],
) -> Option<&'a [String]> {
    list_maps
        .iter()
        .find(|(p, _)| {
            p.len() == path.len()
                && p.iter()
                    .zip(path)
                    .all(|(a, b)| a == b || (a == "[]" && b.starts_with("k:")))
        })
        .map(|(_, k)| k.as_slice())
}

fn item_key(item: &Value, keys: &[String]) -> String {
    let k: Map<String, Value> = keys.iter().map(|k| (k.clone(), item[k].clone())).collect();
    format!("k:{}", Value::Object(k))
}

/// The owned paths of an applied value (leaves and list-map items).
fn field_set(
    v: &Value,
    path: &mut Vec<String>,
    schema_path: &mut Vec<String>,
    lm: &[ListMap],
    out: &mut BTreeSet<Vec<String>>,
) {
    match v {
        Value::Object(o) if !o.is_empty() => {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            for (k, val) in o {
                path.push(format!("f:{k}"));
                schema_path.push(k.clone());
                field_set(val, path, schema_path, lm, out);
                schema_path.pop();
                path.pop();
            }
        }
        Value::Array(items) if map_keys(lm, schema_path).is_some() => {
            let keys = map_keys(lm, schema_path).unwrap_or_default().to_vec();
            out.insert(path.clone());
            for item in items {
                path.push(item_key(item, &keys));
                schema_path.push("[]".into());
                out.insert(path.clone());
                field_set(item, path, schema_path, lm, out);
                schema_path.pop();
                path.pop();
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
}

fn get_path<'a>(
    v: &'a Value,
    path: &[String],
    keys_of: &dyn Fn(&[String]) -> Vec<String>,
) -> Option<&'a Value> {
    let mut cur = v;
    for (i, seg) in path.iter().enumerate() {
        if let Some(f) = seg.strip_prefix("f:") {
            cur = cur.get(f)?;
        } else {
            let keys = keys_of(&path[..i]);
            cur = cur
                .as_array()?
                .iter()
                .find(|item| item_key(item, &keys) == *seg)?;
        }
    }
    Some(cur)
}

fn remove_path(v: &mut Value, path: &[String], keys_of: &dyn Fn(&[String]) -> Vec<String>) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for (i, seg) in parent.iter().enumerate() {
        cur = if let Some(f) = seg.strip_prefix("f:") {
            match cur.get_mut(f) {
                Some(c) => c,
                None => return,
            }
        } else {
            let keys = keys_of(&parent[..i]);
            match cur
                .as_array_mut()
                .and_then(|a| a.iter_mut().find(|item| item_key(item, &keys) == *seg))
            {
                Some(c) => c,
                None => return,
            }
        };
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(o) = cur.as_object_mut() {
            o.remove(f);
        }
    } else {
        let keys = keys_of(parent);
        if let Some(a) = cur.as_array_mut() {
            a.retain(|item| item_key(item, &keys) != *last);
        }
    }
}

/// Merges `applied` into `live`: maps field by field, list-maps item by key.
fn merge_applied(live: &mut Value, applied: &Value, schema_path: &mut Vec<String>, lm: &[ListMap]) {
    match applied {
        Value::Object(o) => {
            if !live.is_object() {
                *live = Value::Object(Map::new());
            }
            for (k, v) in o {
                schema_path.push(k.clone());
                if let Some(l) = live.as_object_mut() {
                    merge_applied(
                        l.entry(k.clone()).or_insert(Value::Null),
                        v,
                        schema_path,
                        lm,
                    );
                }
                schema_path.pop();
            }
        }
        Value::Array(items) if map_keys(lm, schema_path).is_some() => {
            let keys = map_keys(lm, schema_path).unwrap_or_default().to_vec();
            if !live.is_array() {
                *live = Value::Array(Vec::new());
            }
            if let Some(list) = live.as_array_mut() {
                for item in items {
                    let k = item_key(item, &keys);
                    schema_path.push("[]".into());
                    match list.iter_mut().find(|l| item_key(l, &keys) == k) {
                        Some(l) => merge_applied(l, item, schema_path, lm),
                        None => list.push(item.clone()),
                    }
                    schema_path.pop();
                }
            }
        }
        other => *live = other.clone(),
    }
}

fn server_side_apply(
    inner: &mut Inner,
    key: &Key,
    manager: &str,
    status_only: bool,
    force: bool,
    mut live: Value,
    applied: &Value,
) -> Result<Value, String> {
    let lm = inner.list_maps.get(&key.0).cloned().unwrap_or_default();
    // What this request may touch: the status, or everything else.
    let mut scope = Map::new();
    if let Some(o) = applied.as_object() {
        for (k, v) in o {
            let in_scope = match k.as_str() {
                "apiVersion" | "kind" => false,
                "metadata" => !status_only,
                "status" => status_only,
                _ => !status_only,
            };
            if in_scope {
                scope.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(m) = scope.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in [
            "name",
            "namespace",
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "managedFields",
        ] {
            m.remove(f);
        }
    }
    let scoped = Value::Object(scope);
    let mut new_set = BTreeSet::new();
    field_set(&scoped, &mut Vec::new(), &mut Vec::new(), &lm, &mut new_set);
    let keys_of = |prefix: &[String]| -> Vec<String> {
        let schema: Vec<String> = prefix
            .iter()
            .map(|s| {
                s.strip_prefix("f:")
                    .map_or_else(|| "[]".to_string(), str::to_string)
            })
            .collect();
        map_keys(&lm, &schema)
            .map(<[String]>::to_vec)
            .unwrap_or_default()
    };
    let me = (key.clone(), manager.to_string());
    // Conflicts: a leaf another manager owns, with another value.
    let others: Vec<(String, BTreeSet<Vec<String>>)> = inner
        .managed
        .iter()
        .filter(|((k, m), _)| k == key && m != manager)
        .map(|((_, m), s)| (m.clone(), s.clone()))
        .collect();
    for path in &new_set {
        for (m, owned) in &others {
            let applied_value = get_path(&scoped, path, &keys_of);
            let leaf = !applied_value.is_some_and(|v| v.is_object() || v.is_array());
            if leaf && owned.contains(path) && get_path(&live, path, &keys_of) != applied_value {
                if !force {
                    return Err(format!(
                        "Apply failed with 1 conflict: conflict with {m:?}: {}",
                        path.join(".")
                    ));
                }
                if let Some(s) = inner.managed.get_mut(&(key.clone(), m.clone())) {
                    s.remove(path);
                }
            }
        }
    }
    // Fields this manager no longer applies go, unless another owns them.
    let before = inner.managed.get(&me).cloned().unwrap_or_default();
    let mut gone: Vec<&Vec<String>> = before.difference(&new_set).collect();
    // Shallow first: an item or map that goes takes its fields (its keys too).
    gone.sort_by_key(|p| p.len());
    for path in gone {
        let owned_elsewhere = others
            .iter()
            .any(|(_, s)| s.iter().any(|p| p.starts_with(path)));
        if !owned_elsewhere {
            remove_path(&mut live, path, &keys_of);
        }
    }
    merge_applied(&mut live, &scoped, &mut Vec::new(), &lm);
    inner.managed.insert(me, new_set);
    Ok(live)
}
