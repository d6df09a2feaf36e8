//! GoBGP inside a namespace, queried through `gobgp -j`.

use std::io;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::netns::{Netns, run};
use crate::process::{Daemon, wait_for};

/// The gRPC API port, on the namespace's own loopback.
const API_PORT: &str = "50051";

/// A running gobgpd with its configuration and log in a temporary directory.
/// Dropping it stops it.
pub struct Gobgp {
    gobgpd: Daemon,
    ns: String,
    dir: tempfile::TempDir,
}

impl Gobgp {
    /// Starts gobgpd with the TOML `config` inside `ns` and waits until its
    /// API answers.
    pub fn start(ns: &Netns, config: &str) -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("pp-gobgp-").tempdir()?;
        let d = dir.path();
        let conf = d.join("gobgpd.toml");
        std::fs::write(&conf, config)?;
        let c = conf.display().to_string();
        let api = format!("127.0.0.1:{API_PORT}");
        let argv = [
            "gobgpd",
            "-f",
            &c,
            "-t",
            "toml",
            "--api-hosts",
            &api,
            "--pprof-disable",
            "-l",
            "debug",
        ];
        let mut gobgpd = Daemon::spawn(ns, "gobgpd", &argv, d)?;
        let name = ns.name().to_string();
        wait_for(
            "GoBGP's API",
            Duration::from_secs(15),
            &mut [&mut gobgpd],
            || cli(&name, &["global"]).is_ok(),
        )?;
        Ok(Self {
            gobgpd,
            ns: name,
            dir,
        })
    }

    /// Runs `gobgp ARGS` (in the namespace, against this daemon); its output.
    pub fn cli(&self, args: &[&str]) -> io::Result<String> {
        cli(&self.ns, args)
    }

    /// Runs `gobgp -j ARGS` and parses the output.
    pub fn json(&self, args: &[&str]) -> io::Result<Value> {
        let mut all = vec!["-j"];
        all.extend_from_slice(args);
        let out = self.cli(&all)?;
        serde_json::from_str(&out)
            .map_err(|e| io::Error::other(format!("gobgp {args:?}: {e}: {out}")))
    }

    /// `gobgp -j neighbor ADDR`.
    pub fn neighbor(&self, address: &str) -> io::Result<Value> {
        self.json(&["neighbor", address])
    }

    /// Whether the session with `address` is Established.
    pub fn established(&self, address: &str) -> bool {
        self.neighbor(address)
            .is_ok_and(|n| n["state"]["session_state"].as_u64() == Some(6))
    }

    /// `gobgp -j global rib -a FAMILY` (`ipv4` or `ipv6`): prefix -> paths.
    pub fn rib(&self, family: &str) -> io::Result<serde_json::Map<String, Value>> {
        let v = self.json(&["global", "rib", "-a", family])?;
        Ok(v.as_object().cloned().unwrap_or_default())
    }

    /// The paths GoBGP has for `prefix` in its global RIB.
    pub fn paths(&self, prefix: &str) -> io::Result<Vec<Value>> {
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        Ok(self
            .rib(family)?
            .get(prefix)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// Freezes gobgpd (SIGSTOP).
    pub fn pause(&self) -> io::Result<()> {
        self.gobgpd.signal(Signal::SIGSTOP)
    }

    /// Lets gobgpd run again (SIGCONT).
    pub fn resume(&self) -> io::Result<()> {
        self.gobgpd.signal(Signal::SIGCONT)
    }

    /// gobgpd's log (its output).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.gobgpd.output()).unwrap_or_default()
    }

    /// The directory with configuration and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The attribute of `path` (a `gobgp -j` path object) with this type code.
pub fn attr(path: &Value, code: u64) -> Option<&Value> {
    path["attrs"]
        .as_array()?
        .iter()
        .find(|a| a["type"].as_u64() == Some(code))
}

impl Drop for Gobgp {
    fn drop(&mut self) {
        if crate::show_logs() {
            eprintln!(
                "--- gobgpd output ({}):\n{}",
                self.dir.path().display(),
                crate::tail(self.gobgpd.output(), crate::log_lines())
            );
        }
        self.gobgpd.stop();
    }
}

fn cli(ns: &str, args: &[&str]) -> io::Result<String> {
    let mut c = std::process::Command::new("ip");
    c.args([
        "netns",
        "exec",
        ns,
        "gobgp",
        "-u",
        "127.0.0.1",
        "-p",
        API_PORT,
    ])
    .args(args);
    run(&mut c)
}
