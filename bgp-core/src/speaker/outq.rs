//! What the speaker wants a neighbor to hear, waiting to be sent.
//!
//! The RIB task never blocks on a neighbor: it moves up to
//! [`CHUNK`](super::export::CHUNK) prefixes with their attributes here and wakes
//! the neighbor's task, which takes everything when its socket has room, packs
//! it into UPDATEs by attribute set, and asks for more through [`Refills`]. The
//! rest waits as dirty bits in the neighbor's export state, so a slow or stuck
//! peer costs a bounded queue, never a growing backlog.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::{Ipv4Net, Ipv6Net};
use rustc_hash::FxHasher;
use tokio::sync::Notify;

use crate::rib::{PeerId, RouteAttrs};
use crate::wire::Message;

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Pending changes for one neighbor: `Some(i)` to announce with the
/// attributes `attrs[i]`, `None` to withdraw. (An index, not an `Arc` per
/// prefix: the RIB task and the neighbor's task would otherwise fight over
/// the reference count of the one attribute set a million prefixes share.)
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub(crate) v4: FxMap<Ipv4Net, Option<u32>>,
    pub(crate) v6: FxMap<Ipv6Net, Option<u32>>,
    pub(crate) attrs: Vec<Arc<RouteAttrs>>,
    /// Messages to send after the routes (End-of-RIB, EoRR).
    pub(crate) after: Vec<Message>,
    /// Messages to send before the routes (BoRR).
    pub(crate) before: Vec<Message>,
}

impl Pending {
    pub(crate) fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty() && self.after.is_empty() && self.before.is_empty()
    }

    /// How many prefixes are queued.
    pub(crate) fn prefixes(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// The index of `attrs` in [`Pending::attrs`], added when it is not the
    /// last one there (consecutive prefixes mostly share attributes).
    pub(crate) fn attrs_index(&mut self, attrs: &Arc<RouteAttrs>) -> u32 {
        match self.attrs.last() {
            Some(last) if Arc::ptr_eq(last, attrs) => {}
            _ => self.attrs.push(Arc::clone(attrs)),
        }
        (self.attrs.len() - 1) as u32
    }
}

/// Neighbors whose queue was taken and may be topped up, for the RIB task.
#[derive(Debug, Default)]
pub(crate) struct Refills {
    peers: Mutex<Vec<PeerId>>,
    pub(crate) notify: Notify,
}

impl Refills {
    fn push(&self, peer: PeerId) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if !peers.contains(&peer) {
            peers.push(peer);
        }
        drop(peers);
        self.notify.notify_one();
    }

    /// Takes the neighbors that asked for more.
    pub(crate) fn take(&self) -> Vec<PeerId> {
        std::mem::take(&mut *self.peers.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[derive(Debug)]
pub(crate) struct OutQueue {
    peer: PeerId,
    pending: Mutex<Pending>,
    pub(crate) notify: Notify,
    refills: Arc<Refills>,
}

impl OutQueue {
    /// The queue of neighbor `peer`, which asks `refills` for more.
    pub(crate) fn new(peer: PeerId, refills: Arc<Refills>) -> Self {
        Self {
            peer,
            pending: Mutex::new(Pending::default()),
            notify: Notify::new(),
            refills,
        }
    }

    /// Locks the pending changes. A poisoned lock (a panic while holding it)
    /// still holds consistent maps, so it is used as is.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes everything pending and, when that was not nothing, asks the RIB
    /// task for more.
    pub(crate) fn take(&self) -> Pending {
        let taken = std::mem::take(&mut *self.lock());
        if !taken.is_empty() {
            self.refills.push(self.peer);
        }
        taken
    }

    /// Drops everything pending (the session went down).
    pub(crate) fn clear(&self) {
        *self.lock() = Pending::default();
    }
}
