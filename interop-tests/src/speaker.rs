//! A bgp-core speaker running in-process inside a network namespace.
//!
//! The speaker gets a thread of its own that joins the namespace (`setns` on
//! `/var/run/netns/NAME`) before it builds a current-thread tokio runtime: every
//! task and socket of the speaker lives on that thread, hence in the namespace,
//! while the test drives it through the `Send + Clone` handle from anywhere.

use std::fs::File;
use std::io;
use std::ops::Deref;
use std::thread::JoinHandle;
use std::time::Duration;

use bgp_core::speaker::{Speaker, SpeakerConfig, SpeakerHandle};
use nix::sched::{CloneFlags, setns};
use tokio::sync::oneshot;

use crate::netns::Netns;

/// A running speaker; dropping it shuts the speaker down (Cease to every
/// neighbor) and ends its thread. [`NsSpeaker::crash`] ends it without a
/// word instead.
pub struct NsSpeaker {
    handle: SpeakerHandle,
    /// `true`: shut down with a Cease to every neighbor; `false`: just stop.
    stop: Option<oneshot::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl NsSpeaker {
    /// Starts a speaker with `config` inside `ns`.
    pub fn start(ns: &Netns, config: SpeakerConfig) -> io::Result<Self> {
        let path = ns.path();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<SpeakerHandle>>();
        let (stop_tx, stop_rx) = oneshot::channel::<bool>();
        let thread = std::thread::Builder::new()
            .name(format!("speaker-{}", ns.name()))
            .spawn(move || {
                let runtime = File::open(&path)
                    .and_then(|f| setns(&f, CloneFlags::CLONE_NEWNET).map_err(io::Error::from))
                    .and_then(|()| {
                        tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                    });
                let runtime = match runtime {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let handle = match Speaker::start(config).await {
                        Ok(h) => h,
                        Err(e) => {
                            let _ = ready_tx.send(Err(io::Error::other(e.to_string())));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(handle.clone()));
                    // Until the guard drops (or the test thread goes away).
                    if stop_rx.await.unwrap_or(true) {
                        let _ = tokio::time::timeout(Duration::from_secs(2), handle.shutdown(None))
                            .await;
                    }
                });
                // The runtime goes here, and with it every task and socket.
            })?;
        let handle = ready_rx
            .recv()
            .map_err(|_| io::Error::other("the speaker thread ended before starting"))??;
        Ok(Self {
            handle,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The handle (also reachable through `Deref`).
    pub fn handle(&self) -> &SpeakerHandle {
        &self.handle
    }

    /// Ends the speaker as a crash would: no NOTIFICATION, its runtime and
    /// with it every socket dropped (the kernel closes the connections).
    pub fn crash(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(false);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Deref for NsSpeaker {
    type Target = SpeakerHandle;

    fn deref(&self) -> &SpeakerHandle {
        &self.handle
    }
}

impl Drop for NsSpeaker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
