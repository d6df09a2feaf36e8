//! Interned attribute sets: identical attributes are stored once and shared by
//! every route that has them, so a route costs a pointer, not a copy.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use rustc_hash::FxHasher;

use crate::wire::{NextHop, PathAttributes};

/// What a route carries besides its prefix: the path attributes and the next
/// hop (from NEXT_HOP or MP_REACH_NLRI), as one shareable set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct RouteAttrs {
    /// The path attributes; `attributes.next_hop` is not used, see `next_hop`.
    pub attributes: PathAttributes,
    /// Where to forward; `None` for locally originated routes before export.
    pub next_hop: Option<NextHop>,
}

/// The set of live attribute sets.
#[derive(Debug, Default)]
pub struct Interner {
    set: HashSet<Arc<RouteAttrs>, BuildHasherDefault<FxHasher>>,
    /// Size after the last sweep: the next one is due when the set has doubled.
    swept_at: usize,
}

impl Interner {
    /// The shared copy of `attrs`, stored now if it is new.
    pub fn intern(&mut self, attrs: RouteAttrs) -> Arc<RouteAttrs> {
        if let Some(shared) = self.set.get(&attrs) {
            return Arc::clone(shared);
        }
        let shared = Arc::new(attrs);
        self.set.insert(Arc::clone(&shared));
        shared
    }

    /// How many distinct attribute sets are stored.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether none are stored.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Drops the sets no route uses any more; returns how many went.
    pub fn collect_garbage(&mut self) -> usize {
        let before = self.set.len();
        self.set.retain(|a| Arc::strong_count(a) > 1);
        self.swept_at = self.set.len();
        before - self.set.len()
    }

    /// Sweeps only when the set has doubled since the last sweep (and holds
    /// more than a few hundred sets), so that sweeping after every batch of
    /// changes costs amortized constant time per new set, not a full scan.
    pub fn maybe_collect_garbage(&mut self) -> usize {
        if self.set.len() > 2 * self.swept_at.max(256) {
            self.collect_garbage()
        } else {
            0
        }
    }
}
