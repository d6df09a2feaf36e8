//! A lossless, coalescing feed of best-path changes, for FIB installers.
//!
//! [`Event::Route`](super::Event) is a broadcast: a consumer slower than the
//! RIB (a kernel takes routes at a few hundred thousand a second, the RIB
//! changes millions) misses events and has to read the whole RIB again. A
//! [`RouteFeed`] instead keeps one dirty bit per RIB slot and the set of
//! prefixes that left the table; the consumer takes batches of *current*
//! state when it is ready. Nothing is lost, a prefix that changes many times
//! between two batches is delivered once, and a slow consumer costs two bits
//! per prefix, never a backlog.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use ipnet::IpNet;
use rustc_hash::FxHasher;
use tokio::sync::{Notify, oneshot};

use super::export::Bits;
use super::{Command, SpeakerError, SpeakerHandle};
use crate::speaker::RoutePath;

/// One change a [`RouteFeed`] delivers: the prefix and its multipath set as
/// it is now, best first; empty when the prefix is no longer reachable.
pub type FeedEntry = (IpNet, Vec<RoutePath>);

/// The RIB task's side of one feed.
#[derive(Debug, Default)]
pub(crate) struct Feed {
    /// Changed slots per family (IPv4, IPv6).
    pub(crate) dirty: [Bits; 2],
    /// Prefixes that left the table since the last batch.
    pub(crate) gone: HashSet<IpNet, BuildHasherDefault<FxHasher>>,
    pub(crate) notify: Arc<Notify>,
}

/// Batches of best-path changes, from [`SpeakerHandle::route_feed`].
///
/// The first batches hold the whole table as it is when the feed is made.
pub struct RouteFeed {
    id: u64,
    notify: Arc<Notify>,
    handle: SpeakerHandle,
    /// A take the RIB task was asked for and has not been read yet: kept
    /// across a cancelled [`RouteFeed::next`], so its batch is not lost.
    taking: Option<oneshot::Receiver<Vec<FeedEntry>>>,
}

impl RouteFeed {
    pub(crate) fn new(id: u64, notify: Arc<Notify>, handle: SpeakerHandle) -> Self {
        Self {
            id,
            notify,
            handle,
            taking: None,
        }
    }

    /// Waits for changes and returns at most `max` of them (withdrawals
    /// first); `None` once the speaker has stopped.
    ///
    /// Cancel safe: when the future is dropped (a `select!` took another
    /// branch), a batch already taken from the RIB is kept and returned by
    /// the next call, so it can sit in a `select!` loop.
    pub async fn next(&mut self, max: usize) -> Option<Vec<FeedEntry>> {
        loop {
            if self.taking.is_none() {
                let (tx, rx) = oneshot::channel();
                let cmd = Command::FeedTake(self.id, max.max(1), tx);
                // Cancelled while sending: nothing was sent, nothing taken.
                self.handle.commands.send(cmd).await.ok()?;
                self.taking = Some(rx);
            }
            let rx = self.taking.as_mut()?;
            let batch = rx.await;
            self.taking = None;
            let batch = batch.ok()?;
            if !batch.is_empty() {
                return Some(batch);
            }
            // A change between the take and here left a permit: not missed.
            self.notify.notified().await;
        }
    }
}

impl Drop for RouteFeed {
    fn drop(&mut self) {
        let _ = self.handle.commands.try_send(Command::FeedClose(self.id));
    }
}

impl SpeakerHandle {
    /// A feed of best-path changes that never loses one, for installing routes
    /// into a FIB; see [`RouteFeed`].
    pub async fn route_feed(&self) -> Result<RouteFeed, SpeakerError> {
        let (id, notify) = self.ask(Command::FeedOpen).await?;
        Ok(RouteFeed::new(id, notify, self.clone()))
    }
}
