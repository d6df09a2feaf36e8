//! The real `podpeer-node` binary with `bpfInterfaces`: client - node -
//! server namespaces, the node's kernel forward path dropped by nftables, so
//! traffic passes only while the daemon keeps the tc-eBPF router attached.
//! Also: status and metrics report it, an interface that comes back gets it
//! back, SIGTERM detaches it, and without BPF permission the daemon runs on
//! and says so. Needs root, `nft`, `ping`, `curl`; skipped otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use interop_tests::{Netns, skip_unless_runnable, veth};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_podpeer-node");
const BINARIES: &[&str] = &["nft", "ping", "curl"];
const SERVER: &str = "10.30.2.2";

const CONFIG: &str = "
localAs: 65010
routerId: 192.0.2.10
http: 127.0.0.1:9180
bpfInterfaces: [n1, n2]
";

struct Lab {
    client: Netns,
    node: Netns,
    server: Netns,
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Self {
        let lab = Self {
            client: Netns::new("c").unwrap(),
            node: Netns::new("n").unwrap(),
            server: Netns::new("s").unwrap(),
            dir: tempfile::tempdir().unwrap(),
        };
        veth(
            &lab.client,
            "c0",
            &["10.30.1.2/24"],
            &lab.node,
            "n1",
            &["10.30.1.1/24"],
        )
        .unwrap();
        lab.server_link();
        lab.client
            .ip(&["route", "add", "default", "via", "10.30.1.1"])
            .unwrap();
        lab.node
            .exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            .unwrap();
        for cmd in [
            "add table inet f",
            "add chain inet f drop_forward { type filter hook forward priority 0; policy drop; }",
        ] {
            let mut argv = vec!["nft"];
            argv.extend(cmd.split(' '));
            lab.node.exec(&argv).unwrap();
        }
        std::fs::write(lab.dir.path().join("node.yaml"), CONFIG).unwrap();
        lab
    }

    fn server_link(&self) {
        veth(
            &self.node,
            "n2",
            &["10.30.2.1/24"],
            &self.server,
            "s0",
            &["10.30.2.2/24"],
        )
        .unwrap();
        self.server
            .ip(&["route", "replace", "default", "via", "10.30.2.1"])
            .unwrap();
    }

    fn pings(&self) -> bool {
        // A few tries: fresh links answer ARP only after a moment.
        (0..3).any(|_| {
            self.client
                .exec(&["ping", "-c", "1", "-W", "1", "-n", SERVER])
                .is_ok()
        })
    }

    /// Starts the daemon, possibly under `wrapper` (e.g. setpriv).
    fn start(&self, wrapper: &[&str]) -> Daemon {
        let config = self.dir.path().join("node.yaml");
        let log_path = self.dir.path().join("node.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = self.node.command(first);
                c.args(rest).arg(BIN);
                c
            }
            None => self.node.command(BIN),
        };
        let child = cmd
            .args(["run", "--config"])
            .arg(&config)
            .env("PODPEER_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Daemon {
            child: Some(child),
            log: log_path,
        }
    }

    /// `podpeer-node status --json`, once the daemon answers (startup, with
    /// the verifier, on a loaded machine: a generous limit).
    fn status(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self
                .node
                .command(BIN)
                .args(["status", "--json", "--http", "127.0.0.1:9180"])
                .output()
                .unwrap();
            if out.status.success() {
                return serde_json::from_slice(&out.stdout).unwrap();
            }
            assert!(Instant::now() < deadline, "podpeer-node does not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn status_text(&self) -> String {
        let out = self
            .node
            .command(BIN)
            .args(["status", "--http", "127.0.0.1:9180"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn http(&self, path: &str) -> String {
        self.node
            .exec(&[
                "curl",
                "-s",
                "-w",
                "\n%{http_code}",
                &format!("http://127.0.0.1:9180{path}"),
            ])
            .unwrap()
    }

    /// Waits until every configured interface shows attached; their indexes.
    fn wait_attached(&self, what: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.status();
            let ifs = s["bpf"]["interfaces"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if ok(&ifs) {
                return ifs;
            }
            assert!(Instant::now() < deadline, "timed out: {what}: {s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

struct Daemon {
    child: Option<Child>,
    log: std::path::PathBuf,
}

impl Daemon {
    fn stop(&mut self) {
        let mut child = self.child.take().unwrap();
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "podpeer-node exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "podpeer-node did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- podpeer-node log:\n{}", self.log());
        }
    }
}

fn all_attached(ifs: &[Value]) -> bool {
    ifs.len() == 2 && ifs.iter().all(|i| i["attached"] == true)
}

#[test]
fn the_daemon_keeps_the_router_attached_and_reports_it() {
    skip_unless_runnable!(BINARIES);
    let lab = Lab::new();
    assert!(!lab.pings(), "the node's forward path is closed");

    let mut daemon = lab.start(&[]);
    let ifs = lab.wait_attached("both interfaces attached", all_attached);
    assert_eq!(lab.status()["bpf"]["state"], "loaded");
    assert!(lab.pings(), "forwarded by the program");

    let metrics = lab.http("/metrics");
    assert!(metrics.contains("podpeer_bpf_loaded 1"), "{metrics}");
    assert!(
        metrics.contains("podpeer_bpf_attached{interface=\"n2\"} 1"),
        "{metrics}"
    );
    let packets = |outcome: &str| {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "podpeer_bpf_packets_total{{outcome=\"{outcome}\"}} "
                ))
            })
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{metrics}"))
    };
    // The request (first through neighbor resolution) and the reply.
    assert!(
        packets("redirected") + packets("redirected_neigh") >= 2,
        "{metrics}"
    );
    let text = lab.status_text();
    assert!(
        text.contains("eBPF router: on n1 (tcx), n2 (tcx)"),
        "{text}"
    );

    // The server link goes away and comes back with a new index.
    let old = ifs[1]["ifindex"].clone();
    lab.node.ip(&["link", "del", "n2"]).unwrap();
    lab.wait_attached("n2 gone", |ifs| {
        ifs.len() == 2 && ifs[1]["attached"] == false
    });
    assert!(lab.status_text().contains("waiting for n2"));
    lab.server_link();
    lab.wait_attached("n2 back", |ifs| {
        all_attached(ifs) && ifs[1]["ifindex"] != old
    });
    assert!(lab.pings(), "forwarded again after the interface came back");

    // SIGTERM detaches: the forward path is closed again.
    daemon.stop();
    assert!(!lab.pings(), "detached on shutdown");
    assert!(
        daemon.log().contains("BPF router detached"),
        "{}",
        daemon.log()
    );
}

#[test]
fn without_bpf_permission_the_daemon_runs_on_and_says_so() {
    skip_unless_runnable!(&["nft", "ping", "curl", "setpriv"]);
    let lab = Lab::new();
    // Root without CAP_BPF and CAP_SYS_ADMIN cannot load BPF programs.
    let mut daemon = lab.start(&[
        "setpriv",
        "--bounding-set",
        "-bpf,-sys_admin,-perfmon",
        "--",
    ]);
    let status = lab.status();
    assert_eq!(status["bpf"]["state"], "notLoaded", "{status}");
    assert!(
        status["bpf"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot load")),
        "{status}"
    );
    assert!(
        lab.status_text().contains("eBPF router: NOT LOADED"),
        "{}",
        lab.status_text()
    );
    let metrics = lab.http("/metrics");
    assert!(metrics.contains("podpeer_bpf_loaded 0"), "{metrics}");
    // Readiness does not hang on it (no fabric neighbors to wait for here).
    assert!(
        lab.http("/readyz").ends_with("200"),
        "{}",
        lab.http("/readyz")
    );
    assert!(!lab.pings());
    daemon.stop();
    assert!(
        daemon.log().contains("cannot load the tc-eBPF router"),
        "{}",
        daemon.log()
    );
}
