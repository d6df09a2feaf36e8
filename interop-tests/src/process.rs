//! Daemon processes started inside a namespace and stopped on drop.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::netns::Netns;

/// One daemon process; SIGTERM (then SIGKILL) when dropped.
pub(crate) struct Daemon {
    name: String,
    child: Child,
    output: PathBuf,
}

impl Daemon {
    /// Starts `argv` inside `ns`, its output going to `dir/NAME.out`.
    pub(crate) fn spawn(ns: &Netns, name: &str, argv: &[&str], dir: &Path) -> io::Result<Self> {
        Self::spawn_env(ns, name, argv, dir, &[])
    }

    /// [`Daemon::spawn`] with extra environment variables. The output file is
    /// appended to, so a restarted daemon's log follows the earlier one's.
    pub(crate) fn spawn_env(
        ns: &Netns,
        name: &str,
        argv: &[&str],
        dir: &Path,
        env: &[(&str, &str)],
    ) -> io::Result<Self> {
        let output = dir.join(format!("{name}.out"));
        let out = File::options().create(true).append(true).open(&output)?;
        let err = out.try_clone()?;
        let child = ns
            .command(argv[0])
            .args(&argv[1..])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()?;
        Ok(Self {
            name: name.to_string(),
            child,
            output,
        })
    }

    /// The process id (`ip netns exec` execs the daemon in place).
    pub(crate) fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Sends a signal.
    pub(crate) fn signal(&self, sig: Signal) -> io::Result<()> {
        kill(self.pid(), sig).map_err(io::Error::from)
    }

    /// An error with the daemon's output when it has exited.
    pub(crate) fn check(&mut self) -> io::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => Err(io::Error::other(format!(
                "{} exited ({status}):\n{}",
                self.name,
                crate::tail(&self.output, 30)
            ))),
        }
    }

    /// Where its stdout and stderr go.
    pub(crate) fn output(&self) -> &Path {
        &self.output
    }

    /// SIGTERM (and SIGCONT, should it be stopped), SIGKILL after 3 s.
    pub(crate) fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = self.signal(Signal::SIGTERM);
        let _ = self.signal(Signal::SIGCONT);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Waits up to `limit` for the process to exit; its status (SIGKILL and
    /// an error after the limit).
    pub(crate) fn wait(&mut self, limit: Duration) -> io::Result<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{} did not exit within {limit:?}", self.name),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then [`Daemon::wait`].
    pub(crate) fn terminate(&mut self, limit: Duration) -> io::Result<std::process::ExitStatus> {
        self.signal(Signal::SIGTERM)?;
        self.wait(limit)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until `ok` holds, checking that the daemons are alive meanwhile.
pub(crate) fn wait_for(
    what: &str,
    limit: Duration,
    daemons: &mut [&mut Daemon],
    mut ok: impl FnMut() -> bool,
) -> io::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if ok() {
            return Ok(());
        }
        for d in daemons.iter_mut() {
            d.check()?;
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("timed out waiting for {what}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
