//! What each neighbor has been sent, kept as one bit per RIB slot.
//!
//! A per-neighbor Adj-RIB-Out map costs a hash entry per prefix per neighbor
//! (about 34 bytes for IPv4): 10 neighbors of a 1M-route table spend more on
//! it than on the table itself. Since the attributes a neighbor hears are a
//! function of the best path and the neighbor's export rules, it is enough to
//! remember *whether* a prefix was advertised, and to compute *what* from the
//! table when the prefix is sent. So each neighbor keeps, per family:
//!
//! - `advertised`: the slots it has been sent (and not withdrawn);
//! - `dirty`: the slots whose export must be computed and sent again.
//!
//! The RIB task marks slots dirty when their best path moves and moves dirty
//! slots into the neighbor's [`OutQueue`](super::outq::OutQueue) only while the
//! queue holds less than [`CHUNK`] prefixes: the neighbor's task asks for more
//! each time it takes the queue. A slow neighbor therefore costs two bits per
//! prefix and a bounded queue, however much changes, and a prefix that changes
//! many times before it is sent is sent once, as it is then.
//!
//! Full sends (a session comes up, a route refresh, a policy change) mark all
//! slots dirty and start a *pass* at slot 0; messages that must follow the
//! routes (End-of-RIB, EoRR) wait in `after_pass` until the pass has reached
//! the end of the table. Slots marked behind the pass's position during it
//! were already sent by it once, so those messages are not held back by them.

use crate::wire::Message;

/// How many prefixes the RIB task keeps queued for one neighbor.
pub(crate) const CHUNK: usize = 8 * 1024;

/// A growable set of slot indexes.
#[derive(Debug, Default, Clone)]
pub(crate) struct Bits {
    words: Vec<u64>,
    ones: usize,
    /// No slot below this is in the set: where searches start, so that
    /// finding the few slots marked at the end of a large table does not
    /// scan all the words before them.
    low: usize,
}

impl Bits {
    /// Whether slot `i` is in the set.
    pub(crate) fn get(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Adds slot `i`; true when it was not in the set.
    pub(crate) fn insert(&mut self, i: usize) -> bool {
        let w = i / 64;
        if w >= self.words.len() {
            // Only as long as the highest slot needs (the vector's capacity
            // grows by doubling on its own): a search that finds nothing
            // ends there, not at the end of spare words.
            self.words.resize(w + 1, 0);
        }
        let bit = 1 << (i % 64);
        let new = self.words[w] & bit == 0;
        self.words[w] |= bit;
        self.ones += usize::from(new);
        self.low = self.low.min(i);
        new
    }

    /// Removes slot `i`; true when it was in the set.
    pub(crate) fn remove(&mut self, i: usize) -> bool {
        let Some(word) = self.words.get_mut(i / 64) else {
            return false;
        };
        let bit = 1 << (i % 64);
        let had = *word & bit != 0;
        *word &= !bit;
        self.ones -= usize::from(had);
        had
    }

    /// How many slots are in the set.
    pub(crate) fn len(&self) -> usize {
        self.ones
    }

    /// The first slot in the set at or after `from`.
    pub(crate) fn next(&self, from: usize) -> Option<usize> {
        let from = from.max(self.low);
        let mut w = from / 64;
        let mut word = *self.words.get(w)? & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                return Some(w * 64 + word.trailing_zeros() as usize);
            }
            w += 1;
            word = *self.words.get(w)?;
        }
    }

    /// [`Bits::next`], raising the search start when nothing lies below.
    pub(crate) fn next_mut(&mut self, from: usize) -> Option<usize> {
        let found = self.next(from);
        if from <= self.low {
            self.low = found.unwrap_or(self.words.len() * 64);
        }
        found
    }

    /// Every slot in the set, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            let i = self.next(at)?;
            at = i + 1;
            Some(i)
        })
    }

    /// Adds every slot of `other`.
    pub(crate) fn union(&mut self, other: &Bits) {
        if self.words.len() < other.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
        self.low = self.low.min(other.low);
        self.ones = self.words.iter().map(|w| w.count_ones() as usize).sum();
    }
}

/// One neighbor's export state for one address family.
#[derive(Debug, Default)]
pub(crate) struct FamilyExport {
    /// The slots whose prefix the neighbor has been sent.
    pub(crate) advertised: Bits,
    /// The slots to compute and send again.
    pub(crate) dirty: Bits,
    /// Where the running pass is: the next dirty slot is looked for here.
    pub(crate) cursor: usize,
    /// Messages to queue once the running pass reaches the end of the table.
    pub(crate) after_pass: Vec<Message>,
}

impl FamilyExport {
    /// Starts a pass over the whole table from slot 0.
    pub(crate) fn restart_pass(&mut self) {
        self.cursor = 0;
    }
}

/// One neighbor's export state for IPv4 and IPv6 unicast.
#[derive(Debug, Default)]
pub(crate) struct ExportState {
    pub(crate) v4: FamilyExport,
    pub(crate) v6: FamilyExport,
}

impl ExportState {
    /// How many prefixes the neighbor has been sent.
    pub(crate) fn advertised(&self) -> u64 {
        (self.v4.advertised.len() + self.v6.advertised.len()) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_insert_remove_and_count() {
        let mut b = Bits::default();
        assert!(b.insert(3));
        assert!(!b.insert(3), "already there");
        assert!(b.insert(200));
        assert_eq!(b.len(), 2);
        assert!(b.get(200) && !b.get(199) && !b.get(100_000));
        assert!(b.remove(3));
        assert!(!b.remove(3));
        assert!(!b.remove(1_000_000), "beyond the end is simply absent");
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn next_finds_set_bits_across_words() {
        let mut b = Bits::default();
        for i in [0, 63, 64, 130, 4095] {
            b.insert(i);
        }
        assert_eq!(b.next(0), Some(0));
        assert_eq!(b.next(1), Some(63));
        assert_eq!(b.next(64), Some(64));
        assert_eq!(b.next(65), Some(130));
        assert_eq!(b.next(131), Some(4095));
        assert_eq!(b.next(4096), None);
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![0, 63, 64, 130, 4095]);
        // Searching with the hint: emptied from the front, then marked low.
        for i in [0, 63, 64, 130] {
            b.remove(i);
        }
        assert_eq!(b.next_mut(0), Some(4095));
        b.remove(4095);
        assert_eq!(b.next_mut(0), None);
        b.insert(5);
        assert_eq!(b.next_mut(0), Some(5), "a slot below the old hint is found");
    }

    #[test]
    fn union_counts_each_slot_once() {
        let mut a = Bits::default();
        let mut b = Bits::default();
        a.insert(1);
        a.insert(70);
        b.insert(70);
        b.insert(500);
        a.union(&b);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![1, 70, 500]);
        assert_eq!(a.len(), 3);
    }
}
