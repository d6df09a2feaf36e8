//! Health checks and the rise/fall state machine that turns their results
//! into a VIP's health.
//!
//! A run of a check ends in a [`Outcome`]: passed or not, a short reason
//! (`connected`, `connection refused`, `HTTP 503 (expected 200)`, `exit status
//! 1: ...`, `missing`) and how long it took. Every run is bounded by the
//! check's timeout; an exec command still running then is killed with its
//! whole process group.
//!
//! Health ([`Health`]): a VIP with a check starts [`Health::Pending`] (not
//! announced). The first result decides at once (one pass announces, so a
//! healthy pod is announced within one check of starting; one failure makes it
//! unhealthy). From then on it takes `rise` consecutive passes to become
//! healthy and `fall` consecutive failures to become unhealthy.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::config::{CheckKind, fmt_duration};

/// The result of one run of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether it passed.
    pub passed: bool,
    /// Why, in a few words.
    pub reason: String,
    /// How long it took.
    pub latency: Duration,
}

/// Runs a check once, for at most `timeout`.
pub async fn run(kind: &CheckKind, timeout: Duration) -> Outcome {
    let start = Instant::now();
    let result = match kind {
        // Bounds itself, to kill what it started.
        CheckKind::Exec(argv) => exec(argv, timeout).await,
        _ => match tokio::time::timeout(timeout, run_inner(kind, timeout)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {}", fmt_duration(timeout))),
        },
    };
    let latency = start.elapsed();
    match result {
        Ok(reason) => Outcome {
            passed: true,
            reason,
            latency,
        },
        Err(reason) => Outcome {
            passed: false,
            reason,
            latency,
        },
    }
}

async fn run_inner(kind: &CheckKind, timeout: Duration) -> Result<String, String> {
    match kind {
        CheckKind::Tcp(target) => tokio::net::TcpStream::connect(target.as_str())
            .await
            .map(|_| "connected".to_owned())
            .map_err(|e| io_reason(&e)),
        CheckKind::Http { url, expect } => match podpeer_host::http::get(url, timeout).await {
            Ok(r) if r.status == *expect => Ok(format!("HTTP {}", r.status)),
            Ok(r) => Err(format!("HTTP {} (expected {expect})", r.status)),
            Err(e) => Err(e.to_string()),
        },
        CheckKind::Exec(argv) => exec(argv, timeout).await,
        CheckKind::File(path) => {
            let path = path.clone();
            match tokio::task::spawn_blocking(move || file_exists(&path)).await {
                Ok(r) => r,
                Err(e) => Err(format!("the file check did not finish: {e}")),
            }
        }
    }
}

fn file_exists(path: &Path) -> Result<String, String> {
    match std::fs::metadata(path) {
        Ok(_) => Ok("exists".into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("missing".into()),
        Err(e) => Err(io_reason(&e)),
    }
}

/// An I/O error in a few words: `connection refused`, not
/// `Connection refused (os error 111)`.
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error") {
        Some(i) => &s[..i],
        None => &s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Runs `argv` in a process group of its own; kills the group if `timeout`
/// passes first.
async fn exec(argv: &[String], timeout: Duration) -> Result<String, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("empty command".into());
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {}", io_reason(&e)))?;
    let pid = child.id();
    // Read stderr on the side (bounded: a chatty check must not grow our
    // memory), so that a background child holding it open cannot hold us; the
    // set aborts the reader when dropped.
    let mut reader = tokio::task::JoinSet::new();
    if let Some(s) = child.stderr.take() {
        reader.spawn(async move {
            let mut buf = Vec::new();
            let _ = s.take(64 * 1024).read_to_end(&mut buf).await;
            buf
        });
    }
    let waited = tokio::time::timeout(timeout, child.wait()).await;
    let stderr_tail = || async move {
        let buf = match tokio::time::timeout(Duration::from_millis(50), reader.join_next()).await {
            Ok(Some(Ok(b))) => b,
            _ => Vec::new(),
        };
        String::from_utf8_lossy(&buf)
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| format!(": {}", l.trim()))
            .unwrap_or_default()
    };
    match waited {
        Ok(Ok(status)) if status.success() => Ok("exit 0".into()),
        Ok(Ok(status)) => {
            let what = match status.code() {
                Some(code) => format!("exit status {code}"),
                None => "killed by a signal".to_owned(),
            };
            Err(format!("{what}{}", stderr_tail().await))
        }
        Ok(Err(e)) => Err(format!("waiting for {program}: {}", io_reason(&e))),
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                // The whole group: a shell's children too.
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), child.wait()).await;
            Err(format!(
                "still running after {}, killed",
                fmt_duration(timeout)
            ))
        }
    }
}

/// A VIP's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    /// No check: always announced.
    Unchecked,
    /// Checked, no result yet: not announced.
    Pending,
    /// Announced.
    Healthy,
    /// Withdrawn.
    Unhealthy,
}

impl Health {
    /// Whether the VIP should be announced.
    pub fn is_up(self) -> bool {
        matches!(self, Self::Unchecked | Self::Healthy)
    }

    /// The word for status output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unchecked => "unchecked",
            Self::Pending => "pending",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rise/fall state machine of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    health: Health,
    passes: u32,
    fails: u32,
}

impl RiseFall {
    /// A machine that starts [`Health::Pending`].
    pub fn new(rise: u32, fall: u32) -> Self {
        Self {
            rise: rise.max(1),
            fall: fall.max(1),
            health: Health::Pending,
            passes: 0,
            fails: 0,
        }
    }

    /// The current health.
    pub fn health(&self) -> Health {
        self.health
    }

    /// Feeds one result; returns the new health when it changed.
    pub fn record(&mut self, passed: bool) -> Option<Health> {
        if passed {
            self.passes += 1;
            self.fails = 0;
        } else {
            self.fails += 1;
            self.passes = 0;
        }
        let next = match self.health {
            Health::Pending if passed => Health::Healthy,
            Health::Pending => Health::Unhealthy,
            Health::Unhealthy if self.passes >= self.rise => Health::Healthy,
            Health::Healthy if self.fails >= self.fall => Health::Unhealthy,
            h => h,
        };
        (next != self.health).then(|| {
            self.health = next;
            next
        })
    }
}

#[cfg(test)]
mod tests;
