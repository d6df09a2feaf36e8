//! A test body on a thread of its own moved into a new, anonymous network
//! namespace, for tests of kernel state (links, routes, rules) that need no
//! second namespace: nothing to name, nothing to clean up, since the namespace
//! goes with the thread, also when the test panics. Plus `ip` helpers that
//! run inside it.
//!
//! These are test helpers: a failed setup step is a panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::process::Command;

use serde_json::Value;

/// Runs `test` on a current-thread runtime, on a thread moved into a new
/// network namespace with `lo` up; re-raises the test's panic.
pub fn in_private_netns<F, Fut>(test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let thread = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        ip("link set lo up");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(test());
    });
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

/// Runs `ip ARGS` (split on spaces) in the calling thread's namespace,
/// asserts it succeeded, returns its output.
pub fn ip(args: &str) -> String {
    let output = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .expect("run ip");
    assert!(
        output.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `ip -j ARGS`, parsed; empty output is an empty list.
pub fn ip_json(args: &str) -> Vec<Value> {
    let text = ip(&format!("-j {args}"));
    if text.trim().is_empty() {
        return Vec::new();
    }
    serde_json::from_str(&text).unwrap()
}
