//! The real `podpeer-node` binary running in a namespace.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use interop_tests::Netns;

/// The binary the tests run.
pub const BIN: &str = env!("CARGO_BIN_EXE_podpeer-node");

/// The running daemon, its output appended to a log file; killed on drop,
/// the log's end printed when the test fails (or `INTEROP_LOGS` is set).
pub struct NodeProc {
    child: Option<Child>,
    log: PathBuf,
}

impl NodeProc {
    /// `podpeer-node run --config CONFIG` in `ns`, logging at `filter`
    /// (`PODPEER_LOG`).
    pub fn start(ns: &Netns, config: &Path, log: &Path, filter: &str) -> Self {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = ns
            .command(BIN)
            .args(["run", "--config"])
            .arg(config)
            .env("PODPEER_LOG", filter)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Self {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// SIGTERM, and wait (30 s at most) for a clean exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "podpeer-node exited with {status}");
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("podpeer-node did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() || std::env::var_os("INTEROP_LOGS").is_some() {
            eprintln!(
                "--- podpeer-node log:\n{}",
                interop_tests::tail(&self.log, 200)
            );
        }
    }
}
