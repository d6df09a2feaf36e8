//! What the speaker wants a neighbor to hear, waiting to be sent.
//!
//! The RIB task never blocks on a neighbor: it records the latest desired state
//! per prefix here and wakes the neighbor's task, which takes everything when
//! its socket has room and packs it into UPDATEs by attribute set. A prefix that
//! changes twice before it is sent is sent once, so a slow or stuck peer costs
//! at most one entry per prefix, never a growing backlog.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::{Ipv4Net, Ipv6Net};
use rustc_hash::FxHasher;
use tokio::sync::Notify;

use crate::rib::RouteAttrs;
use crate::wire::Message;

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Pending changes for one neighbor: `Some` to announce with these attributes,
/// `None` to withdraw.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub(crate) v4: FxMap<Ipv4Net, Option<Arc<RouteAttrs>>>,
    pub(crate) v6: FxMap<Ipv6Net, Option<Arc<RouteAttrs>>>,
    /// Messages to send after the routes (End-of-RIB, EoRR).
    pub(crate) after: Vec<Message>,
    /// Messages to send before the routes (BoRR).
    pub(crate) before: Vec<Message>,
}

impl Pending {
    pub(crate) fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty() && self.after.is_empty() && self.before.is_empty()
    }
}

#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    pending: Mutex<Pending>,
    pub(crate) notify: Notify,
}

impl OutQueue {
    /// Locks the pending changes. A poisoned lock (a panic while holding it)
    /// still holds consistent maps, so it is used as is.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes everything pending.
    pub(crate) fn take(&self) -> Pending {
        std::mem::take(&mut *self.lock())
    }

    /// Drops everything pending (the session went down).
    pub(crate) fn clear(&self) {
        *self.lock() = Pending::default();
    }
}
