//! The routing information base: every path learned per prefix, the best path
//! and the multipath set chosen among them, and the changes a FIB installer or
//! an exporter must act on.
//!
//! A route is a prefix plus a [`Route`]: the peer it came from, its ADD-PATH
//! identifier, and a pointer to its interned attribute set. Updating the RIB
//! returns [`Change`]s, one per prefix whose best path or multipath set moved.

mod attrs;
mod best;
mod stale;

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;
use ipnet::{Ipv4Net, Ipv6Net};
use rustc_hash::FxBuildHasher;
use smallvec::SmallVec;

use crate::wire::{Nlri, Prefix};

pub use attrs::{Interner, RouteAttrs};
pub use best::{BestPathConfig, PeerMeta, SourceKind};
pub use stale::StalePaths;

/// Identifies a source of routes in the RIB: a peer session, or [`LOCAL`].
pub type PeerId = u32;

/// The source of locally originated routes.
pub const LOCAL: PeerId = 0;

/// One path to a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    /// Where it came from.
    pub peer: PeerId,
    /// The ADD-PATH path identifier (0 without ADD-PATH).
    pub path_id: u32,
    /// Its attributes, shared with every route that has the same.
    pub attrs: Arc<RouteAttrs>,
}

impl Route {
    /// Whether two routes are the same path with the same attributes (pointer
    /// comparison, valid because attributes are interned).
    pub fn same(&self, other: &Route) -> bool {
        self.peer == other.peer
            && self.path_id == other.path_id
            && Arc::ptr_eq(&self.attrs, &other.attrs)
    }
}

/// The paths to one prefix, best first; the first `multipath` of them share the
/// traffic. No paths: the slot is free.
#[derive(Debug, Clone, Default)]
struct Dest {
    paths: SmallVec<[Route; 1]>,
    multipath: u8,
}

/// A prefix whose forwarding changed: the new multipath set, best path first,
/// empty when the prefix is no longer reachable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<P> {
    /// The prefix.
    pub prefix: P,
    /// The paths to use now, best first; empty for a withdrawal.
    pub paths: SmallVec<[Route; 2]>,
    /// Where the prefix lives (lived, for a withdrawal) in its [`Table`]:
    /// what per-neighbor export state is indexed by.
    pub(crate) slot: u32,
}

impl<P> Change<P> {
    /// The best path, if the prefix is reachable.
    pub fn best(&self) -> Option<&Route> {
        self.paths.first()
    }
}

/// One prefix and its paths, at a stable index in the table.
#[derive(Debug, Clone)]
struct Slot<P> {
    prefix: P,
    dest: Dest,
}

/// The paths of one address family.
///
/// Prefixes live in a dense vector of slots whose index never moves while
/// the prefix has paths; a hash table of slot indexes (4 bytes per bucket, the
/// key is read from the slot) finds them. Per-neighbor export state is then
/// one bit per slot instead of a map per neighbor, and growing the table
/// copies 4-byte indexes, not whole entries. Freed slots are reused.
#[derive(Debug)]
pub struct Table<P> {
    index: HashTable<u32>,
    slots: Vec<Slot<P>>,
    free: Vec<u32>,
}

impl<P> Default for Table<P> {
    fn default() -> Self {
        Self {
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

fn hash<P: Prefix>(prefix: &P) -> u64 {
    FxBuildHasher.hash_one(prefix)
}

impl<P: Prefix> Table<P> {
    /// The number of prefixes with at least one path.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn find(&self, prefix: &P) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(hash(prefix), |&i| slots[i as usize].prefix == *prefix)
            .copied()
    }

    fn dest(&self, prefix: &P) -> Option<&Dest> {
        self.find(prefix).map(|i| &self.slots[i as usize].dest)
    }

    /// The slot of `prefix`, taken from the free list or appended when it
    /// has none yet.
    fn slot_for(&mut self, prefix: P) -> u32 {
        let h = hash(&prefix);
        let slots = &self.slots;
        if let Some(&i) = self.index.find(h, |&i| slots[i as usize].prefix == prefix) {
            return i;
        }
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize].prefix = prefix;
                i
            }
            None => {
                self.slots.push(Slot {
                    prefix,
                    dest: Dest::default(),
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slots = &self.slots;
        self.index
            .insert_unique(h, i, |&j| hash(&slots[j as usize].prefix));
        i
    }

    /// Frees the slot of a prefix that lost its last path.
    fn release(&mut self, slot: u32) {
        let prefix = self.slots[slot as usize].prefix;
        if let Ok(entry) = self.index.find_entry(hash(&prefix), |&i| i == slot) {
            entry.remove();
        }
        self.slots[slot as usize].dest = Dest::default();
        self.free.push(slot);
    }

    /// All paths to `prefix`, best first.
    pub fn paths(&self, prefix: &P) -> &[Route] {
        self.dest(prefix).map_or(&[], |d| &d.paths[..])
    }

    /// The multipath set for `prefix`, best first.
    pub fn multipath(&self, prefix: &P) -> &[Route] {
        self.dest(prefix)
            .map_or(&[], |d| &d.paths[..usize::from(d.multipath)])
    }

    /// Every prefix with its multipath set, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&P, &[Route])> {
        self.slots
            .iter()
            .filter(|s| !s.dest.paths.is_empty())
            .map(|s| (&s.prefix, &s.dest.paths[..usize::from(s.dest.multipath)]))
    }

    /// Every prefix with all its paths, in no particular order.
    pub(crate) fn iter_all(&self) -> impl Iterator<Item = (&P, &[Route])> {
        self.slots
            .iter()
            .filter(|s| !s.dest.paths.is_empty())
            .map(|s| (&s.prefix, &s.dest.paths[..]))
    }

    /// How many slots there are (a bound for slot indexes).
    pub(crate) fn slots(&self) -> usize {
        self.slots.len()
    }

    /// The prefix in a slot (the last one it held, if it is free) and its
    /// best path, if it has one.
    ///
    /// # Panics
    /// If `slot` is not below [`Table::slots`].
    pub(crate) fn slot(&self, slot: u32) -> (P, Option<&Route>) {
        let s = &self.slots[slot as usize];
        (s.prefix, s.dest.paths.first())
    }
}

/// Gives the RIB's table for a prefix type: the generic path for IPv4 and IPv6.
pub trait RibPrefix: Prefix {
    /// The table of this family.
    fn table(rib: &Rib) -> &Table<Self>;
    /// The table of this family, mutable.
    fn table_mut(rib: &mut Rib) -> &mut Table<Self>;
}

impl RibPrefix for Ipv4Net {
    fn table(rib: &Rib) -> &Table<Self> {
        &rib.v4
    }
    fn table_mut(rib: &mut Rib) -> &mut Table<Self> {
        &mut rib.v4
    }
}

impl RibPrefix for Ipv6Net {
    fn table(rib: &Rib) -> &Table<Self> {
        &rib.v6
    }
    fn table_mut(rib: &mut Rib) -> &mut Table<Self> {
        &mut rib.v6
    }
}

/// The Loc-RIB: all accepted paths of every source, with best path and
/// multipath selection.
#[derive(Debug)]
pub struct Rib {
    v4: Table<Ipv4Net>,
    v6: Table<Ipv6Net>,
    peers: Vec<PeerMeta>,
    interner: Interner,
    config: BestPathConfig,
}

impl Rib {
    /// An empty RIB whose local source ([`LOCAL`]) is described by `local`.
    pub fn new(config: BestPathConfig, local: PeerMeta) -> Self {
        Self {
            v4: Table::default(),
            v6: Table::default(),
            peers: vec![local],
            interner: Interner::default(),
            config,
        }
    }

    /// The table of one family.
    pub fn table<P: RibPrefix>(&self) -> &Table<P> {
        P::table(self)
    }

    /// What is known about a source.
    pub fn peer(&self, peer: PeerId) -> Option<&PeerMeta> {
        self.peers.get(peer as usize)
    }

    /// Registers a source of routes and returns its id.
    pub fn add_peer(&mut self, meta: PeerMeta) -> PeerId {
        self.peers.push(meta);
        (self.peers.len() - 1) as PeerId
    }

    /// Updates what is known about a source (its router id once the session is
    /// up, say). Takes effect at the next change of each prefix.
    pub fn set_peer(&mut self, peer: PeerId, meta: PeerMeta) {
        if let Some(m) = self.peers.get_mut(peer as usize) {
            *m = meta;
        }
    }

    /// The shared copy of an attribute set: intern once per UPDATE, then pass
    /// the result to [`Rib::announce`].
    pub fn intern(&mut self, attrs: RouteAttrs) -> Arc<RouteAttrs> {
        self.interner.intern(attrs)
    }

    /// How many distinct attribute sets are live.
    pub fn attribute_sets(&self) -> usize {
        self.interner.len()
    }

    /// Drops attribute sets no route (and no outstanding [`Change`]) uses any
    /// more; returns how many went. Cheap enough to run after each batch.
    pub fn collect_garbage(&mut self) -> usize {
        self.interner.collect_garbage()
    }

    /// [`Rib::collect_garbage`], but only when enough new sets have appeared
    /// since the last sweep to make it worth a full scan: cheap to call after
    /// every batch.
    pub fn maybe_collect_garbage(&mut self) -> usize {
        self.interner.maybe_collect_garbage()
    }

    /// Adds or replaces (implicit withdraw) `peer`'s paths to `prefixes`, and
    /// appends a [`Change`] for each prefix whose multipath set moved. Returns
    /// how many paths are new (not replacements).
    pub fn announce<P: RibPrefix>(
        &mut self,
        peer: PeerId,
        attrs: &Arc<RouteAttrs>,
        prefixes: &[Nlri<P>],
        changes: &mut Vec<Change<P>>,
    ) -> usize {
        let mut added = 0;
        let (config, peers) = (self.config, std::mem::take(&mut self.peers));
        let table = P::table_mut(self);
        for n in prefixes {
            let route = Route {
                peer,
                path_id: n.path_id.unwrap_or(0),
                attrs: Arc::clone(attrs),
            };
            let slot = table.slot_for(n.prefix);
            let dest = &mut table.slots[slot as usize].dest;
            if dest.paths.is_empty() {
                // The common case of a new prefix: no ranking needed.
                dest.paths.push(route);
                dest.multipath = 1;
                added += 1;
                changes.push(Change {
                    prefix: n.prefix,
                    paths: dest.paths.iter().cloned().collect(),
                    slot,
                });
                continue;
            }
            let before = snapshot(dest);
            match dest
                .paths
                .iter_mut()
                .find(|r| r.peer == peer && r.path_id == route.path_id)
            {
                Some(existing) if existing.same(&route) => continue,
                Some(existing) => *existing = route,
                None => {
                    dest.paths.push(route);
                    added += 1;
                }
            }
            dest.multipath = best::rank(&mut dest.paths, &peers, &config) as u8;
            note_change(n.prefix, slot, dest, &before, changes);
        }
        self.peers = peers;
        added
    }

    /// Removes `peer`'s paths to `prefixes`; returns how many there were.
    pub fn withdraw<P: RibPrefix>(
        &mut self,
        peer: PeerId,
        prefixes: &[Nlri<P>],
        changes: &mut Vec<Change<P>>,
    ) -> usize {
        let (config, peers) = (self.config, std::mem::take(&mut self.peers));
        let table = P::table_mut(self);
        let mut removed = 0;
        for n in prefixes {
            let path_id = n.path_id.unwrap_or(0);
            if remove_path(
                table,
                n.prefix,
                |r| r.peer == peer && r.path_id == path_id,
                &peers,
                &config,
                changes,
            ) {
                removed += 1;
            }
        }
        self.peers = peers;
        removed
    }

    /// Removes every path of `peer` in one family (its session went down) and
    /// returns the changes.
    pub fn withdraw_peer<P: RibPrefix>(&mut self, peer: PeerId, changes: &mut Vec<Change<P>>) {
        let (config, peers) = (self.config, std::mem::take(&mut self.peers));
        let table = P::table_mut(self);
        let prefixes: Vec<P> = table
            .slots
            .iter()
            .filter(|s| s.dest.paths.iter().any(|r| r.peer == peer))
            .map(|s| s.prefix)
            .collect();
        for prefix in prefixes {
            remove_path(table, prefix, |r| r.peer == peer, &peers, &config, changes);
        }
        self.peers = peers;
        self.interner.maybe_collect_garbage();
    }
}

type Snapshot = SmallVec<[(PeerId, u32, *const RouteAttrs); 2]>;

fn snapshot(dest: &Dest) -> Snapshot {
    dest.paths[..usize::from(dest.multipath)]
        .iter()
        .map(|r| (r.peer, r.path_id, Arc::as_ptr(&r.attrs)))
        .collect()
}

fn note_change<P: Copy>(
    prefix: P,
    slot: u32,
    dest: &Dest,
    before: &Snapshot,
    changes: &mut Vec<Change<P>>,
) {
    if snapshot(dest) != *before {
        changes.push(Change {
            prefix,
            paths: dest.paths[..usize::from(dest.multipath)]
                .iter()
                .cloned()
                .collect(),
            slot,
        });
    }
}

fn remove_path<P: Prefix>(
    table: &mut Table<P>,
    prefix: P,
    matches: impl Fn(&Route) -> bool,
    peers: &[PeerMeta],
    config: &BestPathConfig,
    changes: &mut Vec<Change<P>>,
) -> bool {
    let Some(slot) = table.find(&prefix) else {
        return false;
    };
    let dest = &mut table.slots[slot as usize].dest;
    let before = snapshot(dest);
    let len = dest.paths.len();
    dest.paths.retain(|r| !matches(r));
    if dest.paths.len() == len {
        return false;
    }
    if dest.paths.is_empty() {
        table.release(slot);
        changes.push(Change {
            prefix,
            paths: SmallVec::new(),
            slot,
        });
        return true;
    }
    dest.multipath = best::rank(&mut dest.paths, peers, config) as u8;
    note_change(prefix, slot, dest, &before, changes);
    true
}
