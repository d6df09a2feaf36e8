//! FRR (zebra and bgpd) inside a namespace, queried through `vtysh` JSON.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::netns::{Netns, run};
use crate::process::{Daemon, wait_for};

/// A running FRR: zebra and bgpd with their sockets, configuration and logs in
/// a temporary directory. Dropping it stops both daemons.
pub struct Frr {
    // Dropped in this order: bgpd, zebra, then the directory.
    bgpd: Daemon,
    zebra: Daemon,
    dir: tempfile::TempDir,
}

impl Frr {
    /// Starts zebra, then bgpd with `bgpd_conf` (the `router bgp` part and
    /// whatever else; logging is added), inside `ns`, and waits until bgpd
    /// answers on its vty socket.
    pub fn start(ns: &Netns, bgpd_conf: &str) -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("pp-frr-").tempdir()?;
        let d = dir.path();
        std::fs::write(
            d.join("zebra.conf"),
            format!(
                "hostname {}\nlog file {}/zebra.log informational\n",
                ns.name(),
                d.display()
            ),
        )?;
        std::fs::write(
            d.join("bgpd.conf"),
            format!(
                "hostname {}\nlog file {}/bgpd.log debugging\ndebug bgp neighbor-events\n{bgpd_conf}",
                ns.name(),
                d.display()
            ),
        )?;
        // FRR drops privileges to the frr user (the package creates it), which
        // must own the directory for its sockets and logs.
        let user = nix::unistd::User::from_name("frr")
            .map_err(io::Error::from)?
            .ok_or_else(|| io::Error::other("no frr user"))?;
        let mut paths: Vec<PathBuf> = vec![d.to_path_buf()];
        for e in std::fs::read_dir(d)? {
            paths.push(e?.path());
        }
        for p in &paths {
            nix::unistd::chown(p, Some(user.uid), Some(user.gid)).map_err(io::Error::from)?;
        }
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;

        let dir_s = d.display().to_string();
        let zserv = format!("{dir_s}/zserv.api");
        let common = [
            "--vty_socket",
            &dir_s,
            "-z",
            &zserv,
            "-u",
            "frr",
            "-g",
            "frr",
            "-P",
            "0",
        ];
        let (zc, zp) = (format!("{dir_s}/zebra.conf"), format!("{dir_s}/zebra.pid"));
        let mut argv = vec!["/usr/lib/frr/zebra", "-f", &zc, "-i", &zp];
        argv.extend(common);
        let mut zebra = Daemon::spawn(ns, "zebra", &argv, d)?;
        wait_for(
            "zebra's socket",
            Duration::from_secs(15),
            &mut [&mut zebra],
            || d.join("zserv.api").exists(),
        )?;
        let (bc, bp) = (format!("{dir_s}/bgpd.conf"), format!("{dir_s}/bgpd.pid"));
        let mut argv = vec!["/usr/lib/frr/bgpd", "-f", &bc, "-i", &bp];
        argv.extend(common);
        let mut bgpd = Daemon::spawn(ns, "bgpd", &argv, d)?;
        wait_for(
            "bgpd's vty",
            Duration::from_secs(15),
            &mut [&mut zebra, &mut bgpd],
            || vtysh(d, &["show bgp summary json"]).is_ok(),
        )?;
        Ok(Self { bgpd, zebra, dir })
    }

    /// Runs vtysh commands (`-c` each, in order); their output.
    pub fn vtysh(&self, commands: &[&str]) -> io::Result<String> {
        vtysh(self.dir.path(), commands)
    }

    /// Runs one `... json` command and parses its output.
    pub fn json(&self, command: &str) -> io::Result<Value> {
        let out = self.vtysh(&[command])?;
        serde_json::from_str(&out).map_err(|e| io::Error::other(format!("{command}: {e}: {out}")))
    }

    /// Configuration lines, entered after `configure terminal` (enter
    /// `router bgp N` and address families as needed).
    pub fn configure(&self, lines: &[&str]) -> io::Result<String> {
        let mut all = vec!["configure terminal"];
        all.extend_from_slice(lines);
        self.vtysh(&all)
    }

    /// `show bgp neighbors ADDR json`: the neighbor's object (empty when
    /// unknown).
    pub fn neighbor(&self, address: &str) -> io::Result<Value> {
        let v = self.json(&format!("show bgp neighbors {address} json"))?;
        Ok(v.get(address).cloned().unwrap_or(Value::Null))
    }

    /// Whether the session with `address` is Established.
    pub fn established(&self, address: &str) -> bool {
        self.neighbor(address)
            .is_ok_and(|n| n["bgpState"].as_str() == Some("Established"))
    }

    /// `show bgp ipv4|ipv6 unicast PREFIX json`: the paths of the prefix
    /// (empty when FRR does not have it).
    pub fn paths(&self, prefix: &str) -> io::Result<Vec<Value>> {
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        let v = self.json(&format!("show bgp {family} unicast {prefix} json"))?;
        Ok(v["paths"].as_array().cloned().unwrap_or_default())
    }

    /// The prefixes in the BGP table of a family (`ipv4` or `ipv6`).
    pub fn prefixes(&self, family: &str) -> io::Result<Vec<String>> {
        let v = self.json(&format!("show bgp {family} unicast json"))?;
        Ok(v["routes"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default())
    }

    /// Freezes bgpd (SIGSTOP).
    pub fn pause(&self) -> io::Result<()> {
        self.bgpd.signal(Signal::SIGSTOP)
    }

    /// Lets bgpd run again (SIGCONT).
    pub fn resume(&self) -> io::Result<()> {
        self.bgpd.signal(Signal::SIGCONT)
    }

    /// bgpd's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bgpd.log")).unwrap_or_default()
    }

    /// The directory with configuration, sockets and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills bgpd with SIGKILL (no NOTIFICATION, no cleanup: a crash) and
    /// waits until it is gone. zebra stays.
    pub fn kill_bgpd(&mut self) -> io::Result<()> {
        self.bgpd.signal(Signal::SIGKILL)?;
        self.bgpd.wait(Duration::from_secs(5)).map(drop)
    }

    /// Starts bgpd again, in `ns` with `bgpd_conf` (as [`Frr::start`] does),
    /// and waits until it answers; its log goes on in the same file.
    pub fn restart_bgpd(&mut self, ns: &Netns, bgpd_conf: &str) -> io::Result<()> {
        let d = self.dir.path();
        let conf = d.join("bgpd.conf");
        std::fs::write(
            &conf,
            format!(
                "hostname {}\nlog file {}/bgpd.log debugging\ndebug bgp neighbor-events\n{bgpd_conf}",
                ns.name(),
                d.display()
            ),
        )?;
        let user = nix::unistd::User::from_name("frr")
            .map_err(io::Error::from)?
            .ok_or_else(|| io::Error::other("no frr user"))?;
        nix::unistd::chown(&conf, Some(user.uid), Some(user.gid)).map_err(io::Error::from)?;
        let dir_s = d.display().to_string();
        let (zserv, pid) = (format!("{dir_s}/zserv.api"), format!("{dir_s}/bgpd.pid"));
        let conf_s = conf.display().to_string();
        let argv = [
            "/usr/lib/frr/bgpd",
            "-f",
            &conf_s,
            "-i",
            &pid,
            "--vty_socket",
            &dir_s,
            "-z",
            &zserv,
            "-u",
            "frr",
            "-g",
            "frr",
            "-P",
            "0",
        ];
        self.bgpd = Daemon::spawn(ns, "bgpd", &argv, d)?;
        wait_for(
            "bgpd's vty",
            Duration::from_secs(15),
            &mut [&mut self.zebra, &mut self.bgpd],
            || vtysh(d, &["show bgp summary json"]).is_ok(),
        )
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        if crate::show_logs() {
            eprintln!(
                "--- bgpd log ({}):\n{}\n--- bgpd output:\n{}",
                self.dir.path().display(),
                crate::tail(&self.dir.path().join("bgpd.log"), crate::log_lines()),
                crate::tail(self.bgpd.output(), 20)
            );
        }
        self.bgpd.stop();
        self.zebra.stop();
    }
}

fn vtysh(dir: &Path, commands: &[&str]) -> io::Result<String> {
    let mut c = Command::new("vtysh");
    c.arg("--vty_socket").arg(dir);
    for command in commands {
        c.args(["-c", command]);
    }
    run(&mut c)
}
