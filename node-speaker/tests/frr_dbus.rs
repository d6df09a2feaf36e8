#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The reload chain without systemd: a private `dbus-daemon` with a system
//! bus policy, a stand-in `org.freedesktop.systemd1.Manager` whose
//! ReloadUnit runs the real `frr-reload.py` against FRR in a netns and
//! emits `JobRemoved`, and podpeer's [`Systemd`] client. A
//! VRFRouteConfiguration change ends as FRR's running configuration, from
//! a file and from the Kubernetes API (the API server double).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use interop_tests::frr::Frr;
use interop_tests::netns::Netns;
use podpeer_node::config::NodeConfig;
use podpeer_node::frr::reload::{FrrPaths, write_if_changed};
use podpeer_node::frr::systemd::{Reloaded, Systemd};
use podpeer_node::frr::{PrefixItem, VrfRouteConfiguration, render, routecfg};
use podpeer_node::provision::attach;
use zbus::object_server::SignalEmitter;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/frr/testdata")
        .join(name)
}

/// A private bus with the system bus's policy shape: nobody owns names or
/// calls methods unless allowed; root may own and call systemd's name.
struct Bus {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Bus {
    fn start() -> Bus {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("system_bus_socket");
        let config = dir.path().join("system.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <policy user="root">
    <allow own="org.freedesktop.systemd1"/>
    <allow send_destination="org.freedesktop.systemd1"/>
  </policy>
</busconfig>
"#,
                socket.display()
            ),
        )
        .unwrap();
        let child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .arg("--nofork")
            .stdout(Stdio::null())
            .spawn()
            .expect("dbus-daemon (install dbus-daemon)");
        for _ in 0..100 {
            if socket.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(socket.exists(), "dbus-daemon did not start");
        Bus {
            child,
            address: format!("unix:path={}", socket.display()),
            _dir: dir,
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How the stand-in's jobs end.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    /// ReloadUnit runs frr-reload.py; its exit decides.
    Real,
    /// ReloadUnit fails; RestartUnit runs frr-reload.py.
    ReloadFails,
    /// Both fail.
    BothFail,
}

/// The stand-in systemd Manager.
struct StandIn {
    paths: FrrPaths,
    file: PathBuf,
    behaviour: Behaviour,
    calls: Arc<Mutex<Vec<String>>>,
    jobs: u32,
}

impl StandIn {
    fn job(
        &mut self,
        method: &str,
        name: &str,
        emitter: SignalEmitter<'_>,
    ) -> zbus::OwnedObjectPath {
        self.calls.lock().unwrap().push(format!("{method} {name}"));
        self.jobs += 1;
        let id = self.jobs;
        let path =
            zbus::OwnedObjectPath::try_from(format!("/org/freedesktop/systemd1/job/{id}")).unwrap();
        let run = !matches!(
            (method, self.behaviour),
            (_, Behaviour::BothFail) | ("ReloadUnit", Behaviour::ReloadFails)
        );
        let result = if run && self.paths.reload(&self.file).is_ok() {
            "done"
        } else {
            "failed"
        };
        let emitter = emitter.to_owned();
        let (job, unit) = (path.clone(), name.to_owned());
        // Like systemd: the reply first, the job's end later.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = StandIn::job_removed(&emitter, id, job, unit, result.to_owned()).await;
        });
        path
    }
}

#[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
impl StandIn {
    fn subscribe(&self) {}

    fn reload_unit(
        &mut self,
        name: String,
        _mode: String,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> zbus::OwnedObjectPath {
        self.job("ReloadUnit", &name, emitter)
    }

    fn restart_unit(
        &mut self,
        name: String,
        _mode: String,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> zbus::OwnedObjectPath {
        self.job("RestartUnit", &name, emitter)
    }

    #[zbus(signal)]
    async fn job_removed(
        emitter: &SignalEmitter<'_>,
        id: u32,
        job: zbus::OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

const BOOT: &str = "router bgp 65010\n bgp router-id 192.0.2.10\nexit\n";

struct Setup {
    ns: Netns,
    frr: Frr,
    bus: Bus,
    _service: zbus::Connection,
    calls: Arc<Mutex<Vec<String>>>,
    paths: FrrPaths,
    file: PathBuf,
    dir: tempfile::TempDir,
}

async fn setup(tag: &str, behaviour: Behaviour) -> Setup {
    let ns = Netns::new(tag).unwrap();
    let frr = Frr::start(&ns, BOOT).unwrap();
    let bus = Bus::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("frr.conf");
    let paths = FrrPaths {
        confdir: frr.dir().to_path_buf(),
        rundir: frr.dir().to_path_buf(),
        vty_socket: Some(frr.dir().to_path_buf()),
        ..FrrPaths::default()
    };
    let calls = Arc::new(Mutex::new(Vec::new()));
    let service = zbus::connection::Builder::address(bus.address.as_str())
        .name("org.freedesktop.systemd1")
        .serve_at(
            "/org/freedesktop/systemd1",
            StandIn {
                paths: paths.clone(),
                file: file.clone(),
                behaviour,
                calls: Arc::clone(&calls),
                jobs: 0,
            },
        )
        .build()
        .await
        .unwrap();
    Setup {
        ns,
        frr,
        bus,
        _service: service,
        calls,
        paths,
        file,
        dir,
    }
}

fn node() -> NodeConfig {
    let mut node = NodeConfig::load(&testdata("node.yaml")).unwrap();
    attach(&mut node, &testdata("operator.yaml")).unwrap();
    node
}

/// Render, check with frr-reload.py --test, write if changed.
fn prepare(s: &Setup, configs: &[VrfRouteConfiguration]) -> bool {
    let template = std::fs::read_to_string(testdata("template.conf")).unwrap();
    let rendered = render(&template, &node(), configs).unwrap();
    assert!(rendered.problems.is_empty(), "{:?}", rendered.problems);
    let candidate = s.file.with_extension("candidate");
    std::fs::write(&candidate, &rendered.config).unwrap();
    s.paths.test(&candidate, 65010).unwrap();
    write_if_changed(&s.file, &rendered.config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_configuration_change_reaches_frr_through_the_reload_call() {
    let s = setup("dbus", Behaviour::Real).await;
    let systemd = Systemd::connect(Some(&s.bus.address), "frr.service")
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(30));

    let mut configs = routecfg::load(&testdata("routes.yaml")).unwrap();
    assert!(prepare(&s, &configs));
    assert_eq!(systemd.reload().await.unwrap(), Reloaded::Reloaded);
    let running = s.frr.vtysh(&["show running-config"]).unwrap();
    assert!(running.contains("route-map rm_vips_import permit 10\n"));
    assert!(!running.contains("203.0.113.0/24 ge 32"));

    // The change: one more prefix imported from VRF vips.
    configs[0].import.push(PrefixItem {
        cidr: "203.0.113.0/24".parse().unwrap(),
        seq: None,
        action: podpeer_node::frr::PrefixAction::Permit,
        ge: Some(32),
        le: None,
    });
    assert!(prepare(&s, &configs));
    assert!(!prepare(&s, &configs), "unchanged: not written again");
    assert_eq!(systemd.reload().await.unwrap(), Reloaded::Reloaded);
    let running = s.frr.vtysh(&["show running-config"]).unwrap();
    assert!(
        running.contains("ip prefix-list pl_vips_import_10 seq 30 permit 203.0.113.0/24 ge 32\n"),
        "{running}"
    );
    assert_eq!(
        *s.calls.lock().unwrap(),
        vec!["ReloadUnit frr.service", "ReloadUnit frr.service"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reload_falls_back_to_restart() {
    let s = setup("dbusrs", Behaviour::ReloadFails).await;
    let systemd = Systemd::connect(Some(&s.bus.address), "frr.service")
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(30));
    let configs = routecfg::load(&testdata("routes.yaml")).unwrap();
    prepare(&s, &configs);
    assert_eq!(
        systemd.reload().await.unwrap(),
        Reloaded::Restarted {
            reload_result: "failed".into()
        }
    );
    assert_eq!(
        *s.calls.lock().unwrap(),
        vec!["ReloadUnit frr.service", "RestartUnit frr.service"]
    );
    let running = s.frr.vtysh(&["show running-config"]).unwrap();
    assert!(running.contains("route-map rm_vips_import permit 10\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_and_restart_failing_is_an_error_naming_both() {
    let s = setup("dbusff", Behaviour::BothFail).await;
    let systemd = Systemd::connect(Some(&s.bus.address), "frr.service")
        .await
        .unwrap();
    let e = systemd.reload().await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "reload of frr.service ended \"failed\" and the restart \"failed\""
    );
}

/// Waits up to `secs` for `ok`.
async fn eventually(secs: u64, mut ok: impl FnMut() -> bool) -> bool {
    for _ in 0..secs * 10 {
        if ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_in_frr_mode_provisions_renders_and_reloads_through_dbus() {
    let s = setup("dbusd", Behaviour::Real).await;
    let routes = s.dir.path().join("routes.yaml");
    std::fs::copy(testdata("routes.yaml"), &routes).unwrap();
    let mut daemon =
        s.ns.command(env!("CARGO_BIN_EXE_podpeer-node"))
            .arg("--config")
            .arg(testdata("node.yaml"))
            .arg("--operator-config")
            .arg(testdata("operator.yaml"))
            .arg("--frr-template")
            .arg(testdata("template.conf"))
            .arg("--frr-config")
            .arg(&s.file)
            .arg("--route-configs")
            .arg(&routes)
            .arg("--frr-reload-window")
            .arg("1s")
            .arg("--frr-vty-socket")
            .arg(s.frr.dir())
            .arg("--dbus-address")
            .arg(&s.bus.address)
            .env("OPERATOR_NETHEALTHCHECK_CONFIG", "/nonexistent/hc.yaml")
            .spawn()
            .unwrap();
    let running = || s.frr.vtysh(&["show running-config"]).unwrap_or_default();
    let reloaded = eventually(20, || {
        running().contains("route-map rm_vips_import permit 10\n")
    })
    .await;
    // The node's plumbing, in the namespace.
    let links =
        s.ns.ip(&["-d", "link", "show", "vx.200"])
            .unwrap_or_default();
    // Its HTTP server (node.yaml's default port): the reload counted, FRR
    // found running, hence ready.
    let reloads_counted = eventually(20, || {
        s.ns.http_get(9180, "/metrics").is_some_and(|(_, m)| {
            m.contains("podpeer_node_frr_reloads_total{result=\"reloaded\"} 1")
                && m.contains("podpeer_node_health_check{check=\"frr\"} 1")
        })
    })
    .await;
    let metrics = s.ns.http_get(9180, "/metrics");
    let readyz = s.ns.http_get(9180, "/readyz");
    let healthz = s.ns.http_get(9180, "/healthz");
    // A VRFRouteConfiguration change: a new export item.
    let mut configs = routecfg::load(&routes).unwrap();
    configs[1].export.push(PrefixItem {
        cidr: "192.0.2.128/25".parse().unwrap(),
        seq: Some(9),
        action: podpeer_node::frr::PrefixAction::Deny,
        ge: None,
        le: None,
    });
    let yaml = configs
        .iter()
        .map(|c| {
            let items = |items: &[PrefixItem]| {
                items
                    .iter()
                    .map(|i| {
                        format!(
                            "{{cidr: \"{}\", action: {}{}{}{}}}",
                            i.cidr,
                            i.action.as_str(),
                            i.seq.map(|q| format!(", seq: {q}")).unwrap_or_default(),
                            i.ge.map(|g| format!(", ge: {g}")).unwrap_or_default(),
                            i.le.map(|l| format!(", le: {l}")).unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "- name: {}\n  vrf: {}\n  seq: {}\n  import: [{}]\n  export: [{}]\n",
                c.name,
                c.vrf,
                c.seq,
                items(&c.import),
                items(&c.export)
            )
        })
        .collect::<String>();
    std::fs::write(&routes, yaml).unwrap();
    let changed = eventually(20, || {
        running().contains("ip prefix-list pl_mgmt_vrf_export_30 seq 9 deny 192.0.2.128/25\n")
    })
    .await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = daemon.wait().unwrap();
    assert!(reloaded, "first reload missing:\n{}", running());
    assert!(reloads_counted, "/metrics: {metrics:?}");
    let metrics = metrics.map(|(_, m)| m).unwrap_or_default();
    assert!(
        metrics.contains("podpeer_node_frr_config_writes_total 1")
            && metrics.contains("podpeer_node_frr_render_problems 0")
            && metrics.contains("podpeer_node_network_ready 1"),
        "{metrics}"
    );
    assert_eq!(readyz, Some((200, "ready\n".into())));
    assert_eq!(healthz, Some((200, "ok\n".into())));
    assert!(links.contains("vxlan id 200"), "{links}");
    assert!(changed, "change not applied:\n{}", running());
    assert!(status.success(), "{status}");
    // Both configurations rendered after the change too.
    assert!(running().contains("route-map rm_vips_import permit 10\n"));
    let calls = s.calls.lock().unwrap().clone();
    assert!(calls.len() >= 2, "{calls:?}");
    assert!(
        calls.iter().all(|c| c == "ReloadUnit frr.service"),
        "{calls:?}"
    );
}

fn vrf_route(name: &str, spec: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "network.schiff.telekom.de/v1alpha1", "kind": "VRFRouteConfiguration",
        "metadata": {"name": name}, "spec": spec,
    })
}

/// FRR mode with `--peer-source kubernetes`: the VRFRouteConfigurations
/// on the API server double (serving inside the netns) end as FRR's
/// running configuration through the D-Bus reload; a change follows; a
/// conflicting sequence leaves both out (and says so) until it goes; the
/// health check (FRR running) removes the Node's taint; every request is
/// allowed by deploy/rbac.yaml and the VRFRouteConfiguration rule is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_kubernetes_vrf_route_configurations_from_the_api_reach_frr() {
    use serde_json::json;
    let s = setup("dbusk", Behaviour::Real).await;
    let api =
        support::apiserver::ApiServer::serve(support::listener_in(s.ns.path()), &support::crds())
            .await;
    api.put(json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
        "spec": {"taints": [
            {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true",
             "effect": "NoSchedule"},
            {"key": "team.example/keep", "effect": "NoExecute"}]},
    }));
    api.put(vrf_route(
        "vips-leak",
        json!({"vrf": "vips", "seq": 10,
               "import": [{"cidr": "198.51.100.0/24", "ge": 32, "le": 32, "action": "permit"},
                          {"cidr": "2001:db8:100::/48", "le": 128, "action": "permit"}],
               "export": [{"cidr": "10.96.0.0/12", "action": "deny"},
                          {"cidr": "10.0.0.0/8", "le": 32, "action": "permit"}],
               "aggregate": ["198.51.100.0/24"], "community": "65010:200"}),
    ));
    let mgmt = json!({"vrf": "mgmt_vrf", "seq": 30,
                      "export": [{"cidr": "192.0.2.0/24", "seq": 7, "le": 32, "action": "permit"}]});
    api.put(vrf_route("mgmt-extra", mgmt.clone()));
    let log = s.dir.path().join("daemon.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut daemon =
        s.ns.command(env!("CARGO_BIN_EXE_podpeer-node"))
            .args([
                "--peer-source",
                "kubernetes",
                "--node-name",
                "n1",
                "--api-server",
            ])
            .arg(api.url())
            .arg("--config")
            .arg(testdata("node.yaml"))
            .arg("--operator-config")
            .arg(testdata("operator.yaml"))
            .arg("--frr-template")
            .arg(testdata("template.conf"))
            .arg("--frr-config")
            .arg(&s.file)
            .arg("--frr-reload-window")
            .arg("1s")
            .arg("--frr-vty-socket")
            .arg(s.frr.dir())
            .arg("--dbus-address")
            .arg(&s.bus.address)
            .env("OPERATOR_NETHEALTHCHECK_CONFIG", "/nonexistent/hc.yaml")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
    let running = || s.frr.vtysh(&["show running-config"]).unwrap_or_default();
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    let reloaded = eventually(30, || {
        running().contains("route-map rm_vips_import permit 10\n")
            && running()
                .contains("ip prefix-list pl_mgmt_vrf_export_30 seq 7 permit 192.0.2.0/24 le 32\n")
    })
    .await;

    // A change on the API: a new export item.
    let mut changed_spec = mgmt.clone();
    changed_spec["export"]
        .as_array_mut()
        .unwrap()
        .push(json!({"cidr": "192.0.2.128/25", "seq": 9, "action": "deny"}));
    api.put(vrf_route("mgmt-extra", changed_spec));
    let changed = reloaded
        && eventually(30, || {
            running().contains("ip prefix-list pl_mgmt_vrf_export_30 seq 9 deny 192.0.2.128/25\n")
        })
        .await;

    // A second configuration with vips' sequence: both left out, said so.
    api.put(vrf_route(
        "vips-twin",
        json!({"vrf": "vips", "seq": 10, "import": [{"cidr": "203.0.113.0/24", "action": "permit"}]}),
    ));
    let conflict_out = changed
        && eventually(30, || {
            !running().contains("route-map rm_vips_import permit 10\n")
                && !running().contains("permit 203.0.113.0/24\n")
        })
        .await;
    let conflict = "VRFRouteConfigurations vips-leak and vips-twin both have seq 10 in VRF vips; both left out";
    let conflict_said = logged().contains(conflict);
    // ... and as an Event on the Node.
    let conflict_event = eventually(30, || {
        api.all("events").iter().any(|e| {
            e["reason"] == "RouteConfigurationProblem"
                && e["type"] == "Warning"
                && e["note"] == conflict
                && e["regarding"]["kind"] == "Node"
                && e["regarding"]["name"] == "n1"
        })
    })
    .await;
    api.delete("vrfrouteconfigurations", "", "vips-twin");
    let back = conflict_out
        && eventually(30, || {
            running().contains("route-map rm_vips_import permit 10\n")
        })
        .await;

    // The health check passed (FRR runs): the taint went, the other stayed.
    let untainted = eventually(30, || {
        api.get("nodes", "", "n1").unwrap()["spec"]["taints"]
            == json!([{"key": "team.example/keep", "effect": "NoExecute"}])
    })
    .await;

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = daemon.wait().unwrap();
    let tail = || {
        format!(
            "--- running:\n{}\n--- log:\n{}",
            running(),
            interop_tests::tail(&log, 80)
        )
    };
    assert!(reloaded, "first render missing\n{}", tail());
    assert!(changed, "change not applied\n{}", tail());
    assert!(
        conflict_out,
        "conflicting configurations rendered\n{}",
        tail()
    );
    assert!(conflict_said, "conflict not reported\n{}", tail());
    assert!(
        conflict_event,
        "no Event for the conflict: {:?}\n{}",
        api.all("events"),
        tail()
    );
    assert!(
        back,
        "not rendered again after the conflict went\n{}",
        tail()
    );
    assert!(
        untainted,
        "taint not removed: {}\n{}",
        api.get("nodes", "", "n1").unwrap(),
        tail()
    );
    assert!(status.success(), "{status}");
    let c = &api.get("nodes", "", "n1").unwrap()["status"]["conditions"][0];
    assert_eq!(
        (&c["type"], &c["status"]),
        (&json!("PodpeerNetworkReady"), &json!("True"))
    );
    let calls = s.calls.lock().unwrap().clone();
    assert!(calls.len() >= 4, "{calls:?}");
    assert!(
        calls.iter().all(|c| c == "ReloadUnit frr.service"),
        "{calls:?}"
    );

    // Least privilege, FRR mode's share.
    let requests = api.requests();
    assert_eq!(support::not_allowed(&requests), Vec::<String>::new());
    let unused = support::unused(&requests);
    for verb in ["list", "watch"] {
        let rule = (
            "network.schiff.telekom.de".to_string(),
            "vrfrouteconfigurations".to_string(),
            verb.to_string(),
        );
        assert!(!unused.contains(&rule), "{verb} unused");
    }
}
