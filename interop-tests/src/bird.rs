//! BIRD 2 inside a namespace, queried through `birdc` text output.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::netns::{Netns, run};
use crate::process::{Daemon, wait_for};

/// A running BIRD with its configuration, control socket and log in a
/// temporary directory. Dropping it stops it.
pub struct Bird {
    bird: Daemon,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

/// One route of `birdc show route all`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BirdRoute {
    /// The network, e.g. `192.0.2.0/24`.
    pub prefix: String,
    /// The summary line (`unicast [proto time] * (100) [AS65001i]`).
    pub summary: String,
    /// The attributes, e.g. `BGP.med` -> `20`, `BGP.as_path` -> `65001`; `via`
    /// holds the next hop line.
    pub attrs: BTreeMap<String, String>,
}

impl BirdRoute {
    /// An attribute's value.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }

    /// The protocol it came from.
    pub fn protocol(&self) -> &str {
        self.summary
            .split_once('[')
            .and_then(|(_, r)| r.split_whitespace().next())
            .unwrap_or("")
    }
}

/// Parses `birdc show route ... all` output.
pub fn parse_routes(text: &str) -> Vec<BirdRoute> {
    let mut routes: Vec<BirdRoute> = Vec::new();
    let mut prefix = String::new();
    for line in text.lines() {
        if line.starts_with("BIRD ") || line.starts_with("Table ") || line.trim().is_empty() {
            continue;
        }
        let indented = line.starts_with(char::is_whitespace);
        let t = line.trim();
        if !indented {
            // "192.0.2.0/24  unicast [x 12:00:00.000] * (100) [AS65001i]"
            let (p, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
            prefix = p.to_string();
            routes.push(BirdRoute {
                prefix: prefix.clone(),
                summary: rest.trim().to_string(),
                attrs: BTreeMap::new(),
            });
        } else if t.contains(" [") && !t.contains(": ") && !t.starts_with("via ") {
            // Another route for the same network.
            routes.push(BirdRoute {
                prefix: prefix.clone(),
                summary: t.to_string(),
                attrs: BTreeMap::new(),
            });
        } else if let Some(r) = routes.last_mut() {
            // "BGP.med: 20", or "BGP.as_path:" when empty.
            match t
                .split_once(": ")
                .or_else(|| t.strip_suffix(':').map(|k| (k, "")))
            {
                Some((k, v)) if !t.starts_with("via ") => {
                    r.attrs.insert(k.to_string(), v.to_string());
                }
                _ => {
                    r.attrs.insert("via".to_string(), t.to_string());
                }
            }
        }
    }
    routes
}

impl Bird {
    /// Starts `bird -f` with `config` (logging is added) inside `ns` and waits
    /// until birdc gets an answer.
    pub fn start(ns: &Netns, config: &str) -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("pp-bird-").tempdir()?;
        let d = dir.path();
        let conf = d.join("bird.conf");
        std::fs::write(
            &conf,
            format!("log \"{}/bird.log\" all;\n{config}", d.display()),
        )?;
        let socket = d.join("bird.ctl");
        let (c, s, p) = (
            conf.display().to_string(),
            socket.display().to_string(),
            d.join("bird.pid").display().to_string(),
        );
        let mut bird = Daemon::spawn(ns, "bird", &["bird", "-f", "-c", &c, "-s", &s, "-P", &p], d)?;
        wait_for(
            "BIRD's control socket",
            Duration::from_secs(15),
            &mut [&mut bird],
            || birdc(&socket, &["show", "status"]).is_ok(),
        )?;
        Ok(Self { bird, socket, dir })
    }

    /// Runs one birdc command; its output.
    pub fn birdc(&self, args: &[&str]) -> io::Result<String> {
        birdc(&self.socket, args)
    }

    /// `show protocols all NAME`.
    pub fn protocol(&self, name: &str) -> io::Result<String> {
        self.birdc(&["show", "protocols", "all", name])
    }

    /// Whether BGP protocol `name` is Established.
    pub fn established(&self, name: &str) -> bool {
        self.birdc(&["show", "protocols", name]).is_ok_and(|o| {
            o.lines()
                .any(|l| l.starts_with(name) && l.contains("Established"))
        })
    }

    /// `show route all` plus `args` (e.g. `["table", "master6"]`,
    /// `["protocol", "x"]`), parsed.
    pub fn routes(&self, args: &[&str]) -> io::Result<Vec<BirdRoute>> {
        let mut all = vec!["show", "route", "all"];
        all.extend_from_slice(args);
        Ok(parse_routes(&self.birdc(&all)?))
    }

    /// The routes BIRD has for `prefix` (exactly that network), in any table.
    pub fn route(&self, prefix: &str) -> io::Result<Vec<BirdRoute>> {
        let out = match self.birdc(&["show", "route", prefix, "all"]) {
            Ok(out) => out,
            // birdc fails with this when no table has the network.
            Err(e) if e.to_string().contains("Network not found") => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(parse_routes(&out)
            .into_iter()
            .filter(|r| r.prefix == prefix)
            .collect())
    }

    /// Freezes BIRD (SIGSTOP).
    pub fn pause(&self) -> io::Result<()> {
        self.bird.signal(Signal::SIGSTOP)
    }

    /// Lets BIRD run again (SIGCONT).
    pub fn resume(&self) -> io::Result<()> {
        self.bird.signal(Signal::SIGCONT)
    }

    /// BIRD's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bird.log")).unwrap_or_default()
    }

    /// The directory with configuration, socket and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        if crate::show_logs() {
            eprintln!(
                "--- BIRD log ({}):\n{}\n--- BIRD output:\n{}",
                self.dir.path().display(),
                crate::tail(&self.dir.path().join("bird.log"), crate::log_lines()),
                crate::tail(self.bird.output(), 20)
            );
        }
        self.bird.stop();
    }
}

fn birdc(socket: &Path, args: &[&str]) -> io::Result<String> {
    run(Command::new("birdc").arg("-s").arg(socket).args(args))
}
