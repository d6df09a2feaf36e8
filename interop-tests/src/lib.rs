//! Interop and lab tests run in network namespaces the tests create and remove.
//!
//! The harness:
//!
//! - [`Netns`]: a network namespace that exists as long as its guard, with
//!   [`veth`] to join two of them and [`Lab`] for the usual pair (ours and the
//!   daemon's) with IPv4 and IPv6 addresses on one link;
//! - [`Frr`], [`Bird`] and [`Gobgp`]: a daemon started inside a namespace from a
//!   configuration written into a temporary directory, with query helpers, and
//!   stopped when the guard drops;
//! - [`NsSpeaker`]: a bgp-core speaker running in-process on a thread that
//!   joined a namespace, driven through its [`SpeakerHandle`](bgp_core::speaker::SpeakerHandle);
//! - [`private::in_private_netns`]: a test body in an anonymous namespace of
//!   its own, for kernel-state tests, with `ip` helpers.
//!
//! Nothing is ever configured in the root namespace: every address, route and
//! socket lives in a namespace a guard removes, on success, failure or panic.
//! Tests call [`skip_reason`] first and return early (printing why) when they
//! cannot run: not root, or a daemon binary missing.
//!
//! A daemon guard prints the tail of the daemon's log when its test fails;
//! `INTEROP_LOGS=N` prints the last N lines always (with `--nocapture`).

pub mod bird;
pub mod frr;
pub mod gobgp;
pub mod netns;
pub mod ours;
pub mod podlab;
pub mod private;
mod process;
pub mod speaker;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

pub use bird::{Bird, BirdRoute};
pub use frr::Frr;
pub use gobgp::Gobgp;
pub use netns::{Lab, Netns, veth};
pub use speaker::NsSpeaker;

/// The binaries FRR tests need.
pub const FRR_BINARIES: &[&str] = &["/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "vtysh"];
/// The binaries BIRD tests need.
pub const BIRD_BINARIES: &[&str] = &["bird", "birdc"];
/// The binaries GoBGP tests need.
pub const GOBGP_BINARIES: &[&str] = &["gobgpd", "gobgp"];

/// Why the tests cannot run here (not root, or one of `binaries` or `ip`
/// missing), or `None` when they can.
pub fn skip_reason(binaries: &[&str]) -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not running as root (network namespaces need it)".into());
    }
    std::iter::once(&"ip")
        .chain(binaries)
        .find(|b| !binary_exists(b))
        .map(|b| format!("{b} is not installed"))
}

fn binary_exists(name: &str) -> bool {
    if name.contains('/') {
        return Path::new(name).is_file();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

/// Returns from the calling test, printing why, when [`skip_reason`] says the
/// test cannot run here.
#[macro_export]
macro_rules! skip_unless_runnable {
    ($binaries:expr) => {
        if let Some(reason) = $crate::skip_reason($binaries) {
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `limit`; panics
/// with `what` on timeout.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether a daemon guard prints its log when dropped: when the test panics,
/// or always with `INTEROP_LOGS` set in the environment.
fn show_logs() -> bool {
    std::thread::panicking() || std::env::var_os("INTEROP_LOGS").is_some()
}

/// How many log lines a daemon guard prints: `INTEROP_LOGS=N`, else 60.
fn log_lines() -> usize {
    std::env::var("INTEROP_LOGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

/// The last `lines` lines of a text file (for failure reports).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}
