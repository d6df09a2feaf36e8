//! The pod lab: a fabric router, a node running podpeer-node, pods running
//! podpeer-sidecar beside a small HTTP server, and a client behind the fabric,
//! each in a network namespace of its own.
//!
//! ```text
//!  client ── fabric (AS 65000) ── node (podpeer-node, AS 65010) ── bridge "pods"
//!  172.31.0.2   172.31.0.1 / 172.30.0.1      172.30.0.2 / 10.244.1.1      ├ pod1 10.244.1.11
//!                                                                          ├ pod2 10.244.1.12
//!                                                                          └ pod3 10.244.1.13
//! ```
//!
//! The pods announce the VIP [`VIP`]; the node accepts it for the `web` group,
//! installs it in table [`VIP_TABLE`] (a VRF stand-in reached through
//! `ip rule iif fabric lookup 100`) as one route with a next hop per pod, and
//! passes it to the fabric. The `podpeer-lab` binary tells that story; the
//! tests in `tests/lab.rs` take it apart.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::Signal;
use serde_json::Value;

use crate::frr::Frr;
use crate::netns::{Netns, veth};
use crate::process::Daemon;

/// The VIP the pods serve.
pub const VIP: &str = "198.51.100.10";
/// The table the node installs pod routes into.
pub const VIP_TABLE: u32 = 100;
/// The node's AS.
pub const NODE_AS: u32 = 65010;
/// The fabric's AS.
pub const FABRIC_AS: u32 = 65000;
/// The prefix a hijacking pod announces: kube-dns's service address, inside
/// the forbidden service CIDR.
pub const HIJACK: &str = "10.96.0.10/32";
/// The node's HTTP address (inside its namespace).
pub const NODE_HTTP: &str = "127.0.0.1:9180";
/// A sidecar's HTTP address (inside its pod's namespace).
pub const SIDECAR_HTTP: &str = "127.0.0.1:9179";

/// What to build.
#[derive(Debug, Clone)]
pub struct Options {
    /// How many pods announce the VIP.
    pub pods: usize,
    /// Whether the last pod also announces [`HIJACK`].
    pub hijack: bool,
    /// The node's `reconcileAfter`.
    pub reconcile_after: Duration,
    /// The sidecars' `drainTime`.
    pub drain_time: Duration,
    /// Where podpeer-node and podpeer-sidecar are; `None`: next to this
    /// executable (see [`find_binaries`]).
    pub bin_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            pods: 3,
            hijack: true,
            reconcile_after: Duration::from_secs(5),
            drain_time: Duration::from_secs(1),
            bin_dir: None,
        }
    }
}

/// The podpeer binaries the lab runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// podpeer-node.
    pub node: PathBuf,
    /// podpeer-sidecar.
    pub sidecar: PathBuf,
}

/// Finds podpeer-node and podpeer-sidecar in `dir`, or else next to the
/// running executable (`target/debug/`, also from `target/debug/deps/`).
pub fn find_binaries(dir: Option<&Path>) -> io::Result<Binaries> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = dir {
        dirs.push(d.to_path_buf());
    } else if let Some(d) = std::env::var_os("PODPEER_BIN_DIR") {
        dirs.push(PathBuf::from(d));
    } else {
        let exe = std::env::current_exe()?;
        if let Some(d) = exe.parent() {
            dirs.push(d.to_path_buf());
            if let Some(up) = d.parent() {
                dirs.push(up.to_path_buf());
            }
        }
    }
    for d in &dirs {
        let (node, sidecar) = (d.join("podpeer-node"), d.join("podpeer-sidecar"));
        if node.is_file() && sidecar.is_file() {
            return Ok(Binaries { node, sidecar });
        }
    }
    Err(io::Error::other(format!(
        "podpeer-node and podpeer-sidecar not found in {dirs:?}: build them first \
         (`cargo build --bins`; scripts/lab.sh does it), or set PODPEER_BIN_DIR"
    )))
}

/// One pod: its namespace, address, HTTP server and sidecar.
pub struct Pod {
    /// `pod1`, `pod2`, ...
    pub name: String,
    /// Its address on the pod network.
    pub ip: Ipv4Addr,
    sidecar: Option<Daemon>,
    http: Option<HttpServer>,
    config: PathBuf,
    /// Its namespace (dropped last).
    pub ns: Netns,
}

impl Pod {
    /// Whether its HTTP server runs.
    pub fn serving(&self) -> bool {
        self.http.is_some()
    }
}

/// The lab. Dropping it stops every process and removes every namespace.
pub struct PodLab {
    /// The pods.
    pub pods: Vec<Pod>,
    node: Option<Daemon>,
    /// The fabric router.
    pub fabric: Fabric,
    /// The client's namespace.
    pub client: Netns,
    /// The node's namespace.
    pub node_ns: Netns,
    /// The fabric's namespace.
    pub fabric_ns: Netns,
    /// The binaries.
    pub bins: Binaries,
    options: Options,
    dir: tempfile::TempDir,
}

/// The node's subnet towards the fabric.
pub const FABRIC_LINK: &str = "172.30.0.0/24";
/// The node's address on it.
pub const NODE_IP: &str = "172.30.0.2";
/// The fabric's address towards the node.
pub const FABRIC_IP: &str = "172.30.0.1";
/// The client's address.
pub const CLIENT_IP: &str = "172.31.0.2";
/// The pod network (forbidden to pods).
pub const POD_CIDR: &str = "10.244.0.0/16";
/// The service network (forbidden to pods).
pub const SERVICE_CIDR: &str = "10.96.0.0/12";
/// The node's address on the pod bridge: the pods' default gateway.
pub const POD_GATEWAY: &str = "10.244.1.1";

impl PodLab {
    /// Builds the namespaces and links and starts the fabric, the node and the
    /// pods; returns once they run (not once sessions are up: see
    /// [`PodLab::wait_ecmp`]).
    pub fn start(options: Options) -> io::Result<Self> {
        let bins = find_binaries(options.bin_dir.as_deref())?;
        let dir = tempfile::Builder::new().prefix("podpeer-lab-").tempdir()?;
        let fabric_ns = Netns::new("fabric")?;
        let node_ns = Netns::new("node")?;
        let client = Netns::new("client")?;
        veth(
            &client,
            "eth0",
            &[&format!("{CLIENT_IP}/24")],
            &fabric_ns,
            "client",
            &["172.31.0.1/24"],
        )?;
        client.ip(&["route", "add", "default", "via", "172.31.0.1"])?;
        veth(
            &fabric_ns,
            "node",
            &[&format!("{FABRIC_IP}/24")],
            &node_ns,
            "fabric",
            &[&format!("{NODE_IP}/24")],
        )?;
        // The node: a router with a default route to the fabric, and a bridge
        // for its pods (as a CNI would make). L4 hashing spreads flows over
        // the ECMP next hops; replies from a VIP come back on the bridge, so
        // strict reverse-path filtering would drop them.
        node_ns.ip(&["route", "add", "default", "via", FABRIC_IP])?;
        // A fixed MAC: a bridge without one takes the lowest of its ports',
        // so a pod joining later could change the gateway's MAC under the
        // ARP caches of the pods already there (their traffic then goes
        // nowhere until the entry is probed again, tens of seconds).
        node_ns.ip(&[
            "link",
            "add",
            "pods",
            "address",
            "02:00:0a:f4:01:01",
            "type",
            "bridge",
        ])?;
        node_ns.ip(&["addr", "add", &format!("{POD_GATEWAY}/24"), "dev", "pods"])?;
        node_ns.ip(&["link", "set", "pods", "up"])?;
        for ns in [&node_ns, &fabric_ns] {
            ns.exec(&[
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
                "net.ipv4.fib_multipath_hash_policy=1",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
            ])?;
        }
        let fabric = Fabric::start(&fabric_ns)?;
        let mut lab = Self {
            pods: Vec::new(),
            node: None,
            fabric,
            client,
            node_ns,
            fabric_ns,
            bins,
            options: options.clone(),
            dir,
        };
        lab.start_node()?;
        for i in 1..=options.pods {
            let hijack = options.hijack && i == options.pods;
            let pod = lab.add_pod(i, Ipv4Addr::new(10, 244, 1, 10 + i as u8), hijack)?;
            lab.pods.push(pod);
        }
        Ok(lab)
    }

    /// The directory with configurations and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The node's configuration.
    pub fn node_config(&self) -> String {
        format!(
            "# podpeer-node in the lab: pods on 10.244.1.0/25 may announce single
# addresses of 198.51.100.0/24; the cluster's own prefixes are forbidden.
localAs: {NODE_AS}
routerId: {NODE_IP}
listen: [\"0.0.0.0:179\"]
http: {NODE_HTTP}
reconcileAfter: {}ms
forbiddenPrefixes: [{POD_CIDR}, {SERVICE_CIDR}, {FABRIC_LINK}, 0.0.0.0/0]
vrfs:
  - name: vips
    table: {VIP_TABLE}
    interfaces: [fabric]
fabric:
  - address: {FABRIC_IP}
    remoteAs: external
    description: fabric
podGroups:
  - name: web
    peers: [10.244.1.0/25]
    peerAs: external
    allowedPrefixes:
      - {{prefix: 198.51.100.0/24, ge: 32, le: 32}}
    maxPrefixes: 4
    vrf: vips
    communities: [\"{NODE_AS}:100\"]
    holdTime: 9s
",
            self.options.reconcile_after.as_millis()
        )
    }

    /// Starts podpeer-node (again, after [`PodLab::stop_node`]).
    pub fn start_node(&mut self) -> io::Result<()> {
        let path = self.dir().join("node.yaml");
        std::fs::write(&path, self.node_config())?;
        let node = self.bins.node.display().to_string();
        let config = path.display().to_string();
        let daemon = Daemon::spawn_env(
            &self.node_ns,
            "podpeer-node",
            &[&node, "--config", &config],
            self.dir.path(),
            &[("RUST_LOG", "info"), ("NO_COLOR", "1")],
        )?;
        self.node = Some(daemon);
        Ok(())
    }

    /// Stops podpeer-node with SIGTERM and waits for it to exit; its exit
    /// status.
    pub fn stop_node(&mut self) -> io::Result<std::process::ExitStatus> {
        match self.node.take() {
            Some(mut d) => d.terminate(Duration::from_secs(10)),
            None => Err(io::Error::other("podpeer-node is not running")),
        }
    }

    /// podpeer-node's log so far.
    pub fn node_log(&self) -> String {
        std::fs::read_to_string(self.dir().join("podpeer-node.out")).unwrap_or_default()
    }

    /// A sidecar's configuration.
    fn sidecar_config(name: &str, hijack: bool, drain_time: Duration) -> String {
        let mut vips = format!(
            "  - prefix: {VIP}/32
    check:
      http: http://127.0.0.1:80/healthz
      interval: 300ms
      timeout: 250ms
      rise: 1
      fall: 2
"
        );
        if hijack {
            vips.push_str(&format!("  - prefix: {HIJACK}\n"));
        }
        format!(
            "# podpeer-sidecar of {name}: the node is found by itself (default gateway).
addVips: true
drainTime: {}ms
holdTime: 9s
http: {SIDECAR_HTTP}
vips:
{vips}",
            drain_time.as_millis()
        )
    }

    fn add_pod(&mut self, index: usize, ip: Ipv4Addr, hijack: bool) -> io::Result<Pod> {
        let name = format!("pod{index}");
        let ns = Netns::new(&name)?;
        veth(
            &ns,
            "eth0",
            &[&format!("{ip}/24")],
            &self.node_ns,
            &format!("veth{index}"),
            &[],
        )?;
        self.node_ns
            .ip(&["link", "set", &format!("veth{index}"), "master", "pods"])?;
        ns.ip(&["route", "add", "default", "via", POD_GATEWAY])?;
        let http = HttpServer::start(&ns, &name)?;
        let config = self.dir().join(format!("{name}.yaml"));
        std::fs::write(
            &config,
            Self::sidecar_config(&name, hijack, self.options.drain_time),
        )?;
        let mut pod = Pod {
            name,
            ip,
            sidecar: None,
            http: Some(http),
            config,
            ns,
        };
        self.start_sidecar(&mut pod)?;
        Ok(pod)
    }

    fn start_sidecar(&self, pod: &mut Pod) -> io::Result<()> {
        let bin = self.bins.sidecar.display().to_string();
        let config = pod.config.display().to_string();
        pod.sidecar = Some(Daemon::spawn_env(
            &pod.ns,
            &format!("{}-sidecar", pod.name),
            &[&bin, "--config", &config],
            self.dir.path(),
            &[("RUST_LOG", "info"), ("NO_COLOR", "1")],
        )?);
        Ok(())
    }

    /// Starts pod `i`'s sidecar again (after [`PodLab::stop_sidecar`]).
    pub fn restart_sidecar(&mut self, i: usize) -> io::Result<()> {
        let mut pod = self.pods.remove(i);
        let result = self.start_sidecar(&mut pod);
        self.pods.insert(i, pod);
        result
    }

    /// Sends `signal` to pod `i`'s sidecar and waits for it to exit; the
    /// status.
    pub fn stop_sidecar(
        &mut self,
        i: usize,
        signal: Signal,
    ) -> io::Result<std::process::ExitStatus> {
        let pod = &mut self.pods[i];
        let mut d = pod
            .sidecar
            .take()
            .ok_or_else(|| io::Error::other(format!("{} has no sidecar running", pod.name)))?;
        d.signal(signal)?;
        d.wait(Duration::from_secs(15))
    }

    /// Gives pod `i` a new address (as a pod restarted elsewhere would get):
    /// stops its sidecar (SIGKILL, as when a pod dies), re-addresses it,
    /// starts the sidecar again.
    pub fn readdress_pod(&mut self, i: usize, ip: Ipv4Addr) -> io::Result<()> {
        let _ = self.stop_sidecar(i, Signal::SIGKILL);
        let pod = &mut self.pods[i];
        pod.ns.ip(&["addr", "flush", "dev", "eth0"])?;
        pod.ns
            .ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
        pod.ns
            .ip(&["route", "add", "default", "via", POD_GATEWAY])?;
        pod.ip = ip;
        self.restart_sidecar(i)
    }

    /// Stops pod `i`'s HTTP server: its health check starts failing.
    pub fn stop_http(&mut self, i: usize) {
        self.pods[i].http = None;
    }

    /// Starts pod `i`'s HTTP server again.
    pub fn start_http(&mut self, i: usize) -> io::Result<()> {
        let pod = &mut self.pods[i];
        pod.http = Some(HttpServer::start(&pod.ns, &pod.name)?);
        Ok(())
    }

    /// A sidecar's log so far.
    pub fn sidecar_log(&self, i: usize) -> String {
        std::fs::read_to_string(
            self.dir()
                .join(format!("{}-sidecar.out", self.pods[i].name)),
        )
        .unwrap_or_default()
    }

    /// Errors when podpeer-node or a sidecar that should run has exited.
    pub fn check_processes(&mut self) -> io::Result<()> {
        if let Some(n) = self.node.as_mut() {
            n.check()?;
        }
        for p in &mut self.pods {
            if let Some(s) = p.sidecar.as_mut() {
                s.check()?;
            }
        }
        Ok(())
    }

    /// `podpeer-node ARGS --http ...` run in the node's namespace; its stdout.
    pub fn node_cli(&self, args: &[&str]) -> io::Result<String> {
        let bin = self.bins.node.display().to_string();
        let mut argv = vec![bin.as_str()];
        argv.extend(args);
        argv.extend(["--http", NODE_HTTP]);
        self.node_ns.exec(&argv)
    }

    /// `podpeer-node peers --json`, parsed.
    pub fn node_peers(&self) -> io::Result<Value> {
        let out = self.node_cli(&["peers", "--json"])?;
        serde_json::from_str(&out).map_err(io::Error::other)
    }

    /// The node's routes in the VIP table: prefix to gateways, as the kernel
    /// has them (only podpeer's protocol, 201).
    pub fn node_routes(&self) -> io::Result<BTreeMap<String, Vec<String>>> {
        kernel_routes(&self.node_ns, VIP_TABLE)
    }

    /// The next hops the node's kernel has for the VIP (sorted).
    pub fn vip_next_hops(&self) -> io::Result<Vec<String>> {
        Ok(self.node_routes()?.remove(VIP).unwrap_or_default())
    }

    /// The fabric's kernel route to `dst` (its gateways), if any (zebra
    /// installs what bgpd chose).
    pub fn fabric_route(&self, dst: &str) -> io::Result<Option<Vec<String>>> {
        let out = self.fabric_ns.ip(&["-j", "route", "show", "exact", dst])?;
        let routes: Vec<Value> = serde_json::from_str(&out).map_err(io::Error::other)?;
        Ok(routes.first().map(gateways))
    }

    /// The pods whose addresses are `gateways` (names, sorted).
    pub fn pods_at(&self, gateways: &[String]) -> Vec<String> {
        let mut names: Vec<String> = self
            .pods
            .iter()
            .filter(|p| gateways.contains(&p.ip.to_string()))
            .map(|p| p.name.clone())
            .collect();
        names.sort();
        names
    }

    /// Waits until the node's kernel has the VIP with exactly the pods
    /// `expected` (by index) as next hops; how long it took.
    pub fn wait_next_hops(
        &mut self,
        expected: &[usize],
        timeout: Duration,
    ) -> io::Result<Duration> {
        let mut want: Vec<String> = expected
            .iter()
            .map(|&i| self.pods[i].ip.to_string())
            .collect();
        want.sort();
        let start = Instant::now();
        loop {
            let have = self.vip_next_hops()?;
            if have == want {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                return Err(io::Error::other(format!(
                    "the node's route to {VIP} has next hops {have:?}, not {want:?}, after {timeout:?}\n\
                     --- podpeer-node log ---\n{}",
                    crate::tail(&self.dir().join("podpeer-node.out"), 40)
                )));
            }
            self.check_processes()?;
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `count` HTTP requests from the client to the VIP, each on a new
    /// connection; how many each pod answered (by its name).
    pub fn client_requests(&self, count: usize) -> io::Result<BTreeMap<String, usize>> {
        let path = self.client.path();
        in_namespace(&path, move || {
            let mut answers: BTreeMap<String, usize> = BTreeMap::new();
            for _ in 0..count {
                let body = http_get(&format!("{VIP}:80").parse().map_err(io::Error::other)?, "/")?;
                let who = body.split_whitespace().next().unwrap_or("?").to_string();
                *answers.entry(who).or_default() += 1;
            }
            Ok(answers)
        })
    }

    /// Waits until every sidecar is Established and the fabric session too.
    pub fn wait_sessions(&mut self, timeout: Duration) -> io::Result<Duration> {
        let start = Instant::now();
        loop {
            let peers = self.node_peers().ok();
            let established = |addr: &str| {
                peers.as_ref().is_some_and(|v| {
                    peer_list(v)
                        .iter()
                        .any(|p| p["address"] == addr && p["state"] == "Established")
                })
            };
            let pods_up = self
                .pods
                .iter()
                .filter(|p| p.sidecar.is_some())
                .all(|p| established(&p.ip.to_string()));
            if pods_up && established(FABRIC_IP) && self.fabric.established(NODE_IP) {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                let mut sidecars = String::new();
                for p in self.pods.iter().filter(|p| !established(&p.ip.to_string())) {
                    sidecars.push_str(&format!(
                        "\n--- {} ({}) sidecar log ---\n{}",
                        p.name,
                        p.ip,
                        crate::tail(&self.dir().join(format!("{}-sidecar.out", p.name)), 30)
                    ));
                }
                return Err(io::Error::other(format!(
                    "sessions not up after {timeout:?}; node peers: {peers:?}\n--- podpeer-node log ---\n{}{sidecars}",
                    crate::tail(&self.dir().join("podpeer-node.out"), 40)
                )));
            }
            self.check_processes()?;
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The list of peers in `podpeer-node peers --json` (an array, or an object
/// with `peers`).
pub fn peer_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Object(o) => o
            .get("peers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// A kernel table's podpeer routes: prefix to sorted gateways.
pub fn kernel_routes(ns: &Netns, table: u32) -> io::Result<BTreeMap<String, Vec<String>>> {
    kernel_routes_by_name(ns.name(), table)
}

/// [`kernel_routes`] of the namespace called `ns` (for threads that cannot
/// borrow its guard).
pub fn kernel_routes_by_name(ns: &str, table: u32) -> io::Result<BTreeMap<String, Vec<String>>> {
    let table = table.to_string();
    let out = crate::netns::run(std::process::Command::new("ip").args([
        "-n", ns, "-j", "route", "show", "table", &table, "proto", "201",
    ]))?;
    let routes: Vec<Value> = if out.trim().is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(&out).map_err(io::Error::other)?
    };
    Ok(routes
        .iter()
        .filter_map(|r| Some((r["dst"].as_str()?.to_string(), gateways(r))))
        .collect())
}

/// The gateways of one `ip -j route` entry (single or multipath), sorted.
fn gateways(route: &Value) -> Vec<String> {
    let mut out: Vec<String> = match route["nexthops"].as_array() {
        Some(hops) => hops
            .iter()
            .filter_map(|h| h["gateway"].as_str().map(str::to_string))
            .collect(),
        None => route["gateway"]
            .as_str()
            .map(|g| vec![g.to_string()])
            .unwrap_or_default(),
    };
    out.sort();
    out
}

/// Runs `f` on a thread that joined the namespace pinned at `path`.
pub fn in_namespace<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let ns = File::open(&path)?;
        setns(&ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        f()
    })
    .join()
    .map_err(|_| io::Error::other("the namespace thread panicked"))?
}

/// A GET over a new connection; the body.
fn http_get(addr: &SocketAddr, path: &str) -> io::Result<String> {
    let mut s = TcpStream::connect_timeout(addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", addr.ip())?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other(format!("bad HTTP answer from {addr}: {text:?}")))?;
    if !head.starts_with("HTTP/1.") || !head.contains(" 200 ") {
        return Err(io::Error::other(format!("{addr} answered {head:?}")));
    }
    Ok(body.to_string())
}

/// A small HTTP server in a pod: answers every request with the pod's name
/// (`pod1 10.244.1.11` and so on), `/healthz` with `ok`. It stops, and its
/// port closes, when dropped.
struct HttpServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    fn start(ns: &Netns, name: &str) -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (path, name) = (ns.path(), name.to_string());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("http-{name}"))
            .spawn(move || {
                let listener = File::open(&path)
                    .and_then(|f| setns(&f, CloneFlags::CLONE_NEWNET).map_err(io::Error::from))
                    .and_then(|()| TcpListener::bind("0.0.0.0:80"))
                    .and_then(|l| l.set_nonblocking(true).map(|()| l));
                let listener = match listener {
                    Ok(l) => {
                        let _ = ready_tx.send(Ok(()));
                        l
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while !flag.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let _ = answer(conn, &name);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })?;
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("the HTTP server thread ended"))??;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

fn answer(mut conn: TcpStream, name: &str) -> io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut buf = [0u8; 2048];
    let mut len = 0;
    while len < buf.len() {
        let n = conn.read(&mut buf[len..])?;
        if n == 0 {
            break;
        }
        len += n;
        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let request = String::from_utf8_lossy(&buf[..len]);
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let local = conn.local_addr()?;
    let body = if path == "/healthz" {
        "ok\n".to_string()
    } else {
        format!("{name} answered on {local}\n")
    };
    write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The fabric router: FRR where it is installed, else a bgp-core speaker
/// whose best routes the lab writes into the fabric namespace's kernel.
pub enum Fabric {
    /// FRR's zebra and bgpd.
    Frr(Frr),
    /// A bgp-core speaker and the thread installing its routes.
    Speaker(FabricSpeaker),
}

/// A bgp-core speaker as the fabric router (when FRR is not installed).
pub struct FabricSpeaker {
    speaker: crate::NsSpeaker,
    stop: Arc<AtomicBool>,
    installer: Option<JoinHandle<()>>,
}

impl Drop for FabricSpeaker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.installer.take() {
            let _ = t.join();
        }
    }
}

/// A fabric's view of one route: AS path and communities, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FabricPath {
    /// `65010 4200000001`.
    pub as_path: String,
    /// `65010:100`, space-separated.
    pub communities: String,
}

impl Fabric {
    fn start(ns: &Netns) -> io::Result<Self> {
        if crate::skip_reason(crate::FRR_BINARIES).is_none() {
            return Ok(Self::Frr(Frr::start(
                ns,
                &format!(
                    "router bgp {FABRIC_AS}\n bgp router-id {FABRIC_IP}\n no bgp ebgp-requires-policy\n \
                     neighbor {NODE_IP} remote-as external\n neighbor {NODE_IP} timers 3 9\n"
                ),
            )?));
        }
        use bgp_core::fsm::RemoteAs;
        use bgp_core::policy::RouteMap;
        use bgp_core::speaker::{NeighborConfig, SpeakerConfig};
        let ip: Ipv4Addr = FABRIC_IP.parse().map_err(io::Error::other)?;
        let mut config = SpeakerConfig::new(FABRIC_AS, ip);
        config.listen = vec![SocketAddr::new(ip.into(), 179)];
        let speaker = crate::NsSpeaker::start(ns, config)?;
        let mut n = NeighborConfig::new(
            NODE_IP.parse().map_err(io::Error::other)?,
            RemoteAs::External,
        );
        n.hold_time = 9;
        n.connect_retry = Duration::from_secs(1);
        n.import = Some(RouteMap::accept_all("fabric-in"));
        let mut events = speaker.subscribe();
        let handle = speaker.handle().clone();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let name = ns.name().to_string();
        let installer = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if handle.add_neighbor(n).await.is_err() {
                    return;
                }
                while !flag.load(Ordering::Relaxed) {
                    let event =
                        tokio::time::timeout(Duration::from_millis(100), events.recv()).await;
                    let Ok(Ok(bgp_core::speaker::Event::Route { prefix, paths })) = event else {
                        continue;
                    };
                    let p = prefix.to_string();
                    let via = paths.iter().find_map(|r| match r.next_hop {
                        Some(bgp_core::wire::NextHop::V4(a)) => Some(a.to_string()),
                        _ => None,
                    });
                    let mut ip = std::process::Command::new("ip");
                    ip.args(["-n", &name, "route"]);
                    match via {
                        Some(v) => ip.args(["replace", &p, "via", &v, "proto", "bgp"]),
                        None => ip.args(["del", &p, "proto", "bgp"]),
                    };
                    let _ = crate::netns::run(&mut ip);
                }
            });
        });
        Ok(Self::Speaker(FabricSpeaker {
            speaker,
            stop,
            installer: Some(installer),
        }))
    }

    /// `FRR` or `bgp-core`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Frr(_) => "FRR",
            Self::Speaker(_) => "a bgp-core speaker",
        }
    }

    /// Whether the session with the node is Established.
    pub fn established(&self, node: &str) -> bool {
        match self {
            Self::Frr(f) => f.established(node),
            Self::Speaker(s) => block_on(s.speaker.neighbors()).is_ok_and(|r| {
                r.is_ok_and(|ns| {
                    ns.iter().any(|n| {
                        n.address.to_string() == node
                            && n.state == bgp_core::fsm::State::Established
                    })
                })
            }),
        }
    }

    /// The fabric's best path for an IPv4 `prefix`, if it has one.
    pub fn path(&self, prefix: &str) -> io::Result<Option<FabricPath>> {
        match self {
            Self::Frr(f) => {
                let v = f.json(&format!("show ip bgp {prefix} json"))?;
                let p = &v["paths"][0];
                Ok(p.is_object().then(|| FabricPath {
                    as_path: p["aspath"]["string"].as_str().unwrap_or("").to_string(),
                    communities: p["community"]["string"].as_str().unwrap_or("").to_string(),
                }))
            }
            Self::Speaker(s) => {
                let net: ipnet::IpNet = prefix.parse().map_err(io::Error::other)?;
                let routes = block_on(s.speaker.routes())?.map_err(io::Error::other)?;
                Ok(routes
                    .into_iter()
                    .find(|r| r.prefix == net)
                    .and_then(|r| r.paths.into_iter().next())
                    .map(|p| {
                        let a = &p.attrs.attributes;
                        FabricPath {
                            as_path: a
                                .as_path
                                .as_ref()
                                .map(|p| {
                                    p.segments
                                        .iter()
                                        .flat_map(|s| &s.asns)
                                        .map(u32::to_string)
                                        .collect::<Vec<_>>()
                                        .join(" ")
                                })
                                .unwrap_or_default(),
                            communities: a
                                .communities
                                .iter()
                                .map(|c| format!("{}:{}", c.0 >> 16, c.0 & 0xffff))
                                .collect::<Vec<_>>()
                                .join(" "),
                        }
                    }))
            }
        }
    }

    /// A human description of how the fabric holds `prefix`.
    pub fn show(&self, prefix: &str) -> io::Result<String> {
        match self {
            Self::Frr(f) => f.vtysh(&[&format!("show ip bgp {prefix}")]),
            Self::Speaker(_) => Ok(format!("{:?}\n", self.path(prefix)?)),
        }
    }

    /// Where its logs and sockets are (FRR only).
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Self::Frr(f) => Some(f.dir()),
            Self::Speaker(_) => None,
        }
    }
}

fn block_on<F: std::future::Future>(f: F) -> io::Result<F::Output> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f))
}
