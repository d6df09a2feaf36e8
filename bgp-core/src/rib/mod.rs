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

/// One prefix and its paths, best first, at a stable index in the table; the
/// first `multipath` paths share the traffic. No paths: the slot is free.
/// (One flat struct, so that the prefix fits in the padding: 32 bytes for
/// IPv4, where a prefix beside a separate paths struct took 40.)
#[derive(Debug, Clone)]
struct Slot<P> {
    paths: SmallVec<[Route; 1]>,
    multipath: u8,
    prefix: P,
}

/// A prefix whose forwarding changed: the new multipath set, best path first,
/// empty when the prefix is no longer reachable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<P> {
    /// The prefix.
    pub prefix: P,
    /// The paths to use now, best first; empty for a withdrawal, and also
    /// when the RIB was told not to report paths ([`Rib::report_paths`]).
    pub paths: SmallVec<[Route; 2]>,
    /// Where the best path comes from; `None` for a withdrawal.
    pub best_peer: Option<PeerId>,
    /// Where the prefix lives (lived, for a withdrawal) in its [`Table`]:
    /// what per-neighbor export state is indexed by.
    pub(crate) slot: u32,
}

impl<P> Change<P> {
    /// The best path, if the prefix is reachable and paths are reported.
    pub fn best(&self) -> Option<&Route> {
        self.paths.first()
    }

    /// Whether the prefix is no longer reachable.
    pub fn is_withdrawal(&self) -> bool {
        self.best_peer.is_none()
    }
}

/// The paths of one address family.
///
/// Prefixes live in a dense vector of slots whose index never moves while
/// the prefix has paths; a hash table of slot indexes with 32 bits of their
/// prefix's hash (8 bytes per bucket) finds them. Per-neighbor export state is
/// then one bit per slot instead of a map per neighbor, and growing the table
/// moves 8-byte entries, not whole routes. Freed slots are reused.
#[derive(Debug)]
pub struct Table<P> {
    /// (slot, 32 bits of the prefix's hash): growing the table rehashes from
    /// the stored bits, never reading the slots, and a lookup reads a slot
    /// only when the bits match.
    index: HashTable<(u32, u32)>,
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

/// 32 bits of the prefix's hash, and the 64-bit hash made of them twice
/// (hashbrown takes the bucket from the low bits, the tag from the high).
fn hash<P: Prefix>(prefix: &P) -> (u64, u32) {
    let h = (FxBuildHasher.hash_one(prefix) >> 32) as u32;
    (widen(h), h)
}

fn widen(h: u32) -> u64 {
    (u64::from(h) << 32) | u64::from(h)
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
        let (h, h32) = hash(prefix);
        self.index
            .find(h, |&(i, b)| b == h32 && slots[i as usize].prefix == *prefix)
            .map(|&(i, _)| i)
    }

    fn dest(&self, prefix: &P) -> Option<&Slot<P>> {
        self.find(prefix).map(|i| &self.slots[i as usize])
    }

    /// The slot of `prefix`, taken from the free list or appended when it
    /// has none yet.
    fn slot_for(&mut self, prefix: P) -> u32 {
        let (h, h32) = hash(&prefix);
        let slots = &self.slots;
        if let Some(&(i, _)) = self
            .index
            .find(h, |&(i, b)| b == h32 && slots[i as usize].prefix == prefix)
        {
            return i;
        }
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize].prefix = prefix;
                i
            }
            None => {
                self.slots.push(Slot {
                    paths: SmallVec::new(),
                    multipath: 0,
                    prefix,
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert_unique(h, (i, h32), |&(_, b)| widen(b));
        i
    }

    /// Frees the slot of a prefix that lost its last path.
    fn release(&mut self, slot: u32) {
        let prefix = self.slots[slot as usize].prefix;
        if let Ok(entry) = self.index.find_entry(hash(&prefix).0, |&(i, _)| i == slot) {
            entry.remove();
        }
        let s = &mut self.slots[slot as usize];
        s.paths = SmallVec::new();
        s.multipath = 0;
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
            .filter(|s| !s.paths.is_empty())
            .map(|s| (&s.prefix, &s.paths[..usize::from(s.multipath)]))
    }

    /// Every prefix with all its paths, in no particular order.
    pub(crate) fn iter_all(&self) -> impl Iterator<Item = (&P, &[Route])> {
        self.slots
            .iter()
            .filter(|s| !s.paths.is_empty())
            .map(|s| (&s.prefix, &s.paths[..]))
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
        (s.prefix, s.paths.first())
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
    report_paths: bool,
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
            report_paths: true,
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

    /// Whether [`Change`]s carry their paths (the default). Without, they say
    /// only which prefix changed, where its best path comes from and whether
    /// it is reachable: cheaper when nobody looks at the paths.
    pub fn report_paths(&mut self, on: bool) {
        self.report_paths = on;
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
        let report = self.report_paths;
        let table = P::table_mut(self);
        for n in prefixes {
            let route = Route {
                peer,
                path_id: n.path_id.unwrap_or(0),
                attrs: Arc::clone(attrs),
            };
            let slot = table.slot_for(n.prefix);
            let dest = &mut table.slots[slot as usize];
            if dest.paths.is_empty() {
                // The common case of a new prefix: no ranking needed.
                dest.paths.push(route);
                dest.multipath = 1;
                added += 1;
                changes.push(Change {
                    prefix: n.prefix,
                    paths: if report {
                        dest.paths.iter().cloned().collect()
                    } else {
                        SmallVec::new()
                    },
                    best_peer: Some(peer),
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
            note_change(n.prefix, slot, dest, &before, report, changes);
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
        let report = self.report_paths;
        let table = P::table_mut(self);
        let mut removed = 0;
        for n in prefixes {
            let path_id = n.path_id.unwrap_or(0);
            if remove_path(
                table,
                n.prefix,
                |r| r.peer == peer && r.path_id == path_id,
                (&peers, &config, report),
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
        let report = self.report_paths;
        let table = P::table_mut(self);
        let prefixes: Vec<P> = table
            .slots
            .iter()
            .filter(|s| s.paths.iter().any(|r| r.peer == peer))
            .map(|s| s.prefix)
            .collect();
        for prefix in prefixes {
            let rank = (&peers[..], &config, report);
            remove_path(table, prefix, |r| r.peer == peer, rank, changes);
        }
        self.peers = peers;
        self.interner.maybe_collect_garbage();
    }
}

type Snapshot = SmallVec<[(PeerId, u32, *const RouteAttrs); 2]>;

fn snapshot<P>(dest: &Slot<P>) -> Snapshot {
    dest.paths[..usize::from(dest.multipath)]
        .iter()
        .map(|r| (r.peer, r.path_id, Arc::as_ptr(&r.attrs)))
        .collect()
}

fn note_change<P: Copy>(
    prefix: P,
    slot: u32,
    dest: &Slot<P>,
    before: &Snapshot,
    report: bool,
    changes: &mut Vec<Change<P>>,
) {
    if snapshot(dest) != *before {
        let paths = &dest.paths[..usize::from(dest.multipath)];
        changes.push(Change {
            prefix,
            paths: if report {
                paths.iter().cloned().collect()
            } else {
                SmallVec::new()
            },
            best_peer: paths.first().map(|r| r.peer),
            slot,
        });
    }
}

fn remove_path<P: Prefix>(
    table: &mut Table<P>,
    prefix: P,
    matches: impl Fn(&Route) -> bool,
    (peers, config, report): (&[PeerMeta], &BestPathConfig, bool),
    changes: &mut Vec<Change<P>>,
) -> bool {
    let Some(slot) = table.find(&prefix) else {
        return false;
    };
    let dest = &mut table.slots[slot as usize];
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
            best_peer: None,
            slot,
        });
        return true;
    }
    dest.multipath = best::rank(&mut dest.paths, peers, config) as u8;
    note_change(prefix, slot, dest, &before, report, changes);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_slot_takes_32_bytes() {
        // The table's size for a million routes rests on this.
        assert_eq!(std::mem::size_of::<Slot<Ipv4Net>>(), 32);
        assert_eq!(std::mem::size_of::<Slot<Ipv6Net>>(), 48);
    }
}
