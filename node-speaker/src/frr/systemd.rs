//! Reloading FRR through systemd over D-Bus, and the debounce in front of it.
//!
//! [`Systemd::reload`] asks the systemd Manager (`org.freedesktop.systemd1`
//! on the system bus) to `ReloadUnit("frr.service", "fail")`, waits for the
//! job's `JobRemoved` signal, and when its result is not `done` asks for
//! `RestartUnit` the same way. [`debounce`] turns a stream of "the
//! configuration changed" notices into reloads: the first notice opens a
//! window (default [`DEFAULT_WINDOW`]) and every notice inside it is part of
//! the one reload at its end.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use zbus::OwnedObjectPath;
use zbus::export::futures_core::Stream;

/// The debounce window's default.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30);

/// How long a job may take by default.
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(90);

/// The systemd Manager, as far as podpeer uses it.
#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
pub trait Manager {
    /// Asks for `JobNew`/`JobRemoved` signals.
    fn subscribe(&self) -> zbus::Result<()>;
    /// Queues a reload job of the unit.
    fn reload_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    /// Queues a restart job of the unit.
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    /// A job ended, with `result` `done`, `failed`, `canceled`, `timeout`...
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

/// Why FRR could not be reloaded.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// No bus to talk to (no system bus, or the address is wrong).
    #[error("cannot reach the D-Bus system bus{}: {source}", .address.as_deref().map(|a| format!(" at {a}")).unwrap_or_default())]
    NoBus {
        /// The address tried, `None` for the system bus's default.
        address: Option<String>,
        /// Why.
        #[source]
        source: zbus::Error,
    },
    /// A D-Bus call failed.
    #[error("{call}: {source}")]
    Call {
        /// The call, e.g. `ReloadUnit(frr.service)`.
        call: String,
        /// Why.
        #[source]
        source: zbus::Error,
    },
    /// No `JobRemoved` for the job in time.
    #[error("{call}: no JobRemoved for {job} within {timeout:?}")]
    Timeout {
        /// The call.
        call: String,
        /// The job.
        job: String,
        /// How long was waited.
        timeout: Duration,
    },
    /// Reload and restart both ended with another result than `done`.
    #[error("reload of {unit} ended {reload:?} and the restart {restart:?}")]
    Failed {
        /// The unit.
        unit: String,
        /// The reload job's result.
        reload: String,
        /// The restart job's result.
        restart: String,
    },
}

/// How a reload went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// The reload job ended `done`.
    Reloaded,
    /// The reload job ended with this result; the restart ended `done`.
    Restarted {
        /// The reload job's result.
        reload_result: String,
    },
}

/// A connection to systemd.
#[derive(Debug, Clone)]
pub struct Systemd {
    manager: ManagerProxy<'static>,
    unit: String,
    timeout: Duration,
}

impl Systemd {
    /// Connects to the system bus (`address`: another bus, e.g. a test's).
    pub async fn connect(address: Option<&str>, unit: &str) -> Result<Self, ReloadError> {
        let no_bus = |source| ReloadError::NoBus {
            address: address.map(str::to_owned),
            source,
        };
        let connection = match address {
            None => zbus::Connection::system().await.map_err(no_bus)?,
            Some(a) => zbus::connection::Builder::address(a)
                .build()
                .await
                .map_err(no_bus)?,
        };
        let manager = ManagerProxy::new(&connection)
            .await
            .map_err(|source| ReloadError::Call {
                call: "Manager proxy".into(),
                source,
            })?;
        Ok(Systemd {
            manager,
            unit: unit.to_owned(),
            timeout: DEFAULT_JOB_TIMEOUT,
        })
    }

    /// Changes how long one job may take.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Reloads the unit; restarts it when the reload does not end `done`.
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let reload = self.job("ReloadUnit").await?;
        if reload == "done" {
            return Ok(Reloaded::Reloaded);
        }
        tracing::warn!(unit = %self.unit, result = %reload, "reload failed: restarting");
        let restart = self.job("RestartUnit").await?;
        if restart == "done" {
            Ok(Reloaded::Restarted {
                reload_result: reload,
            })
        } else {
            Err(ReloadError::Failed {
                unit: self.unit.clone(),
                reload,
                restart,
            })
        }
    }

    /// Runs one job (`ReloadUnit` or `RestartUnit`) and returns its result.
    async fn job(&self, method: &str) -> Result<String, ReloadError> {
        let call = format!("{method}({}, fail)", self.unit);
        let failed = |source| ReloadError::Call {
            call: call.clone(),
            source,
        };
        // Subscribe first, so the signal cannot pass before we listen.
        if let Err(e) = self.manager.subscribe().await {
            tracing::debug!("systemd Subscribe: {e}");
        }
        let mut removed = self.manager.receive_job_removed().await.map_err(failed)?;
        let job = match method {
            "ReloadUnit" => self.manager.reload_unit(&self.unit, "fail").await,
            _ => self.manager.restart_unit(&self.unit, "fail").await,
        }
        .map_err(failed)?;
        let wait = async {
            while let Some(signal) =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut removed).poll_next(cx)).await
            {
                if let Ok(args) = signal.args()
                    && args.job == job
                {
                    return Some(args.result);
                }
            }
            None
        };
        match tokio::time::timeout(self.timeout, wait).await {
            Ok(Some(result)) => Ok(result),
            Ok(None) => Err(failed(zbus::Error::Failure(
                "the signal stream ended".into(),
            ))),
            Err(_) => Err(ReloadError::Timeout {
                call,
                job: job.to_string(),
                timeout: self.timeout,
            }),
        }
    }
}

/// Runs `reload` once per debounce window: the first notice on `changes`
/// opens a window of `window`, notices inside it join, and at its end
/// `reload` runs once. Returns when `changes` closes (after a last reload
/// if a window was open).
pub async fn debounce<F, Fut>(mut changes: mpsc::Receiver<()>, window: Duration, mut reload: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    while changes.recv().await.is_some() {
        let deadline = tokio::time::Instant::now() + window;
        let mut open = true;
        while open {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                notice = changes.recv() => open = notice.is_some(),
            }
        }
        if !open {
            // Closed inside the window: wait its end, then the last reload.
            tokio::time::sleep_until(deadline).await;
        }
        reload().await;
        if !open {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Spawns the debouncer; returns the sender and the reload count.
    fn start(
        window: Duration,
    ) -> (
        mpsc::Sender<()>,
        Arc<AtomicUsize>,
        tokio::task::JoinHandle<()>,
    ) {
        let (tx, rx) = mpsc::channel(16);
        let count = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&count);
        let task = tokio::spawn(debounce(rx, window, move || {
            let c = Arc::clone(&c);
            async move {
                c.fetch_add(1, Ordering::SeqCst);
            }
        }));
        (tx, count, task)
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn changes_inside_the_window_are_one_reload() {
        let (tx, count, _task) = start(DEFAULT_WINDOW);
        tx.send(()).await.unwrap();
        settle().await;
        tokio::time::advance(Duration::from_secs(10)).await;
        tx.send(()).await.unwrap();
        settle().await;
        tokio::time::advance(Duration::from_secs(19)).await;
        tx.send(()).await.unwrap();
        settle().await;
        settle().await;
        assert_eq!(count.load(Ordering::SeqCst), 0, "before the window ends");
        // The window is 30 s from the first change, not from the last.
        tokio::time::advance(Duration::from_millis(1001)).await;
        settle().await;
        assert_eq!(count.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(120)).await;
        settle().await;
        assert_eq!(count.load(Ordering::SeqCst), 1, "no change, no reload");
        // A later change opens a new window.
        tx.send(()).await.unwrap();
        settle().await;
        tokio::time::advance(Duration::from_secs(29)).await;
        settle().await;
        assert_eq!(count.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        settle().await;
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_is_configurable_and_a_close_flushes() {
        let (tx, count, task) = start(Duration::from_secs(5));
        tx.send(()).await.unwrap();
        settle().await;
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(tx);
        settle().await;
        assert_eq!(count.load(Ordering::SeqCst), 0);
        tokio::time::advance(Duration::from_secs(5)).await;
        task.await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn no_bus_is_a_clear_error() {
        let e = Systemd::connect(Some("unix:path=/nonexistent/podpeer-bus"), "frr.service")
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with(
                "cannot reach the D-Bus system bus at unix:path=/nonexistent/podpeer-bus: "
            ),
            "{text}"
        );
    }
}
