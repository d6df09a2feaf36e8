//! Checking a rendered configuration against the running FRR with
//! `frr-reload.py --test`, and writing it only when it changed.
//!
//! Besides FRR's own syntax check, the test's diff is read: a reload that
//! would delete the default VRF's BGP instance (`no router bgp <ASN>`) is
//! refused. That happens when the template's `router bgp` line for the
//! default VRF is not written the way the running FRR shows it: FRR 8.4
//! shows `router bgp <ASN>` even when it was configured as `router bgp
//! <ASN> vrf default`, so with 8.4 the template must use the plain form
//! (measured with Debian's 8.4.4; the seed operator's advice, `vrf
//! default`, fits FRR versions that show that form).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where FRR's tools and sockets are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrrPaths {
    /// `frr-reload.py`.
    pub reload_script: PathBuf,
    /// The directory with `vtysh` (`--bindir`).
    pub bindir: PathBuf,
    /// The daemons' configuration directory (`--confdir`).
    pub confdir: PathBuf,
    /// Where frr-reload.py writes its temporary files (`--rundir`).
    pub rundir: PathBuf,
    /// The vty socket directory (`--vty_socket`); `None`: FRR's default.
    pub vty_socket: Option<PathBuf>,
}

impl Default for FrrPaths {
    fn default() -> Self {
        FrrPaths {
            reload_script: PathBuf::from("/usr/lib/frr/frr-reload.py"),
            bindir: PathBuf::from("/usr/bin"),
            confdir: PathBuf::from("/etc/frr"),
            rundir: PathBuf::from("/var/run/frr"),
            vty_socket: None,
        }
    }
}

/// Why a configuration was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// frr-reload.py could not be run.
    #[error("cannot run {script}: {source}")]
    Run {
        /// The script.
        script: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// FRR refused the configuration.
    #[error("FRR refuses the configuration: {0}")]
    Refused(String),
    /// The reload would delete the default VRF's BGP instance.
    #[error(
        "the reload would delete the default VRF's BGP instance ({0}): write the template's `router bgp` line as the running FRR shows it"
    )]
    DeletesDefaultInstance(String),
}

/// What `frr-reload.py --test` says would change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Lines to delete.
    pub delete: Vec<String>,
    /// Lines to add.
    pub add: Vec<String>,
}

impl FrrPaths {
    fn command(&self, mode: &str, file: &Path) -> Command {
        let mut c = Command::new(&self.reload_script);
        c.arg(mode)
            .arg("--stdout")
            .arg("--bindir")
            .arg(&self.bindir)
            .arg("--confdir")
            .arg(&self.confdir)
            .arg("--rundir")
            .arg(&self.rundir);
        if let Some(vty) = &self.vty_socket {
            c.arg("--vty_socket").arg(vty);
        }
        c.arg(file);
        c
    }

    /// `frr-reload.py --test FILE`: FRR's check of the file and the diff
    /// against the running configuration.
    pub fn test(&self, file: &Path, local_as: u32) -> Result<Diff, CheckError> {
        let output = self
            .command("--test", file)
            .output()
            .map_err(|source| CheckError::Run {
                script: self.reload_script.clone(),
                source,
            })?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let why: Vec<&str> = stderr
                .lines()
                .chain(stdout.lines())
                .filter(|l| !l.contains("vtysh.conf") && !l.contains(" INFO: "))
                .filter(|l| !l.trim().is_empty())
                .collect();
            return Err(CheckError::Refused(why.join("; ")));
        }
        let diff = parse_diff(&stdout);
        let default_instance = format!("no router bgp {local_as}");
        if let Some(line) = diff.delete.iter().find(|l| l.trim() == default_instance) {
            return Err(CheckError::DeletesDefaultInstance(line.trim().to_owned()));
        }
        Ok(diff)
    }

    /// `frr-reload.py --reload FILE` (what the stand-in systemd unit, or
    /// `frr.service`'s reload, runs).
    pub fn reload(&self, file: &Path) -> Result<(), CheckError> {
        let output = self
            .command("--reload", file)
            .output()
            .map_err(|source| CheckError::Run {
                script: self.reload_script.clone(),
                source,
            })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(CheckError::Refused(
                String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            ))
        }
    }
}

/// Reads the `Lines To Delete` / `Lines To Add` sections.
pub fn parse_diff(text: &str) -> Diff {
    let mut diff = Diff::default();
    let mut section: Option<bool> = None;
    for line in text.lines() {
        match line.trim() {
            "Lines To Delete" => section = Some(false),
            "Lines To Add" => section = Some(true),
            l if l.is_empty() || l.chars().all(|c| c == '=') => {}
            _ => match section {
                Some(false) => diff.delete.push(line.to_owned()),
                Some(true) => diff.add.push(line.to_owned()),
                None => {}
            },
        }
    }
    diff
}

/// Writes `text` to `path` (through a temporary file and a rename) unless
/// it already holds exactly that; whether it wrote.
pub fn write_if_changed(path: &Path, text: &str) -> io::Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".podpeer-new");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(true)
}
