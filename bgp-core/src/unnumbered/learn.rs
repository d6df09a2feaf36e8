//! Who is on the other end of an interface: the peers' link-local addresses,
//! learned from what the link shows (Router Advertisements, the kernel's
//! neighbor table, connections they open to us) for as long as the interface
//! neighbor lives. Sans-IO: sightings and the time go in, changes come out.
//!
//! - A new link-local address is a new peer (several may share a bridge).
//! - A known MAC under a new address is the same peer come back with another
//!   address: the old address is dropped at once.
//! - An address not seen for `expire_after` is dropped.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

/// Where a sighting came from, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A Router Advertisement the peer sent.
    Advertisement,
    /// An entry of the kernel's neighbor table (a router, reachable).
    NeighborTable,
    /// A BGP connection the peer opened to us.
    Connection,
}

/// One sign of life of a peer on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sighting {
    /// Its link-local address.
    pub address: Ipv6Addr,
    /// Its MAC, when the source tells.
    pub mac: Option<[u8; 6]>,
    /// Where it was seen.
    pub source: Source,
}

/// A change of the set of peers on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerChange {
    /// A peer appeared at this address.
    Up(Ipv6Addr),
    /// The peer at this address is gone (moved to another address, or silent).
    Down(Ipv6Addr),
    /// The interface went down or lost its carrier: every peer on it is
    /// forgotten and their sessions end at once ([`Discovery::fast_failover`]).
    ///
    /// [`Discovery::fast_failover`]: super::Discovery::fast_failover
    LinkDown,
}

#[derive(Debug, Clone)]
struct Known {
    address: Ipv6Addr,
    mac: Option<[u8; 6]>,
    last: Instant,
}

/// The peers of one interface.
#[derive(Debug, Clone)]
pub struct Learner {
    expire_after: Duration,
    known: Vec<Known>,
}

impl Learner {
    /// A learner that forgets a peer not seen for `expire_after`.
    pub fn new(expire_after: Duration) -> Self {
        Self {
            expire_after,
            known: Vec::new(),
        }
    }

    /// Records a sighting at `now`. Addresses that are not link-local are
    /// ignored: an unnumbered peer is known by its link-local address.
    pub fn saw(&mut self, now: Instant, s: Sighting) -> Vec<PeerChange> {
        let mut changes = Vec::new();
        if !super::is_link_local(s.address) {
            return changes;
        }
        if let Some(mac) = s.mac {
            // The same device under another address: it restarted or was
            // re-addressed, and the old address will not answer again.
            self.known.retain(|k| {
                let moved = k.address != s.address && k.mac == Some(mac);
                if moved {
                    changes.push(PeerChange::Down(k.address));
                }
                !moved
            });
        }
        match self.known.iter_mut().find(|k| k.address == s.address) {
            Some(k) => {
                k.last = now;
                k.mac = s.mac.or(k.mac);
            }
            None => {
                self.known.push(Known {
                    address: s.address,
                    mac: s.mac,
                    last: now,
                });
                changes.push(PeerChange::Up(s.address));
            }
        }
        changes
    }

    /// Drops the peers not seen for `expire_after` before `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<PeerChange> {
        let mut changes = Vec::new();
        let limit = self.expire_after;
        self.known.retain(|k| {
            let alive = now.saturating_duration_since(k.last) < limit;
            if !alive {
                changes.push(PeerChange::Down(k.address));
            }
            alive
        });
        changes
    }

    /// The addresses of the peers now known.
    pub fn peers(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.known.iter().map(|k| k.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ll(n: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, n)
    }

    fn ra(n: u16, mac: Option<u8>) -> Sighting {
        Sighting {
            address: ll(n),
            mac: mac.map(|m| [2, 0, 0, 0, 0, m]),
            source: Source::Advertisement,
        }
    }

    const EXPIRE: Duration = Duration::from_secs(30);

    #[test]
    fn a_new_address_is_a_new_peer_once() {
        let t = Instant::now();
        let mut l = Learner::new(EXPIRE);
        assert_eq!(l.saw(t, ra(1, Some(1))), [PeerChange::Up(ll(1))]);
        assert_eq!(l.saw(t + EXPIRE / 2, ra(1, Some(1))), []);
        // Another source for the same peer changes nothing either.
        let table = Sighting {
            source: Source::NeighborTable,
            ..ra(1, None)
        };
        assert_eq!(l.saw(t + EXPIRE / 2, table), []);
        assert_eq!(l.peers().collect::<Vec<_>>(), [ll(1)]);
    }

    #[test]
    fn several_peers_on_one_link() {
        let t = Instant::now();
        let mut l = Learner::new(EXPIRE);
        assert_eq!(l.saw(t, ra(1, Some(1))), [PeerChange::Up(ll(1))]);
        assert_eq!(l.saw(t, ra(2, Some(2))), [PeerChange::Up(ll(2))]);
        assert_eq!(l.saw(t, ra(3, None)), [PeerChange::Up(ll(3))]);
        assert_eq!(l.peers().count(), 3);
    }

    #[test]
    fn same_mac_new_address_moves_the_peer() {
        let t = Instant::now();
        let mut l = Learner::new(EXPIRE);
        l.saw(t, ra(1, Some(7)));
        l.saw(t, ra(2, Some(8)));
        assert_eq!(
            l.saw(t, ra(3, Some(7))),
            [PeerChange::Down(ll(1)), PeerChange::Up(ll(3))]
        );
        assert_eq!(l.peers().collect::<Vec<_>>(), [ll(2), ll(3)]);
    }

    #[test]
    fn same_address_new_mac_stays_the_same_peer() {
        let t = Instant::now();
        let mut l = Learner::new(EXPIRE);
        l.saw(t, ra(1, Some(7)));
        assert_eq!(l.saw(t, ra(1, Some(9))), []);
        // And the new MAC is what a later move is matched against.
        assert_eq!(
            l.saw(t, ra(2, Some(9))),
            [PeerChange::Down(ll(1)), PeerChange::Up(ll(2))]
        );
    }

    #[test]
    fn silent_peers_expire_and_may_come_back() {
        let t = Instant::now();
        let mut l = Learner::new(EXPIRE);
        l.saw(t, ra(1, Some(1)));
        l.saw(t + Duration::from_secs(20), ra(2, Some(2)));
        assert_eq!(l.expire(t + Duration::from_secs(29)), []);
        assert_eq!(
            l.expire(t + Duration::from_secs(30)),
            [PeerChange::Down(ll(1))]
        );
        assert_eq!(l.peers().collect::<Vec<_>>(), [ll(2)]);
        assert_eq!(
            l.saw(t + Duration::from_secs(31), ra(1, Some(1))),
            [PeerChange::Up(ll(1))]
        );
    }

    #[test]
    fn a_new_interface_new_mac_and_address_keeps_the_old_until_it_expires() {
        let t = Instant::now();
        let mut l = Learner::new(EXPIRE);
        l.saw(t, ra(1, Some(1)));
        let later = t + Duration::from_secs(5);
        assert_eq!(l.saw(later, ra(2, Some(2))), [PeerChange::Up(ll(2))]);
        assert_eq!(l.expire(t + EXPIRE), [PeerChange::Down(ll(1))]);
        assert_eq!(l.peers().collect::<Vec<_>>(), [ll(2)]);
    }

    #[test]
    fn addresses_other_than_link_local_are_ignored() {
        let mut l = Learner::new(EXPIRE);
        let s = Sighting {
            address: "2001:db8::1".parse().unwrap(),
            mac: None,
            source: Source::Advertisement,
        };
        assert_eq!(l.saw(Instant::now(), s), []);
        assert_eq!(l.peers().count(), 0);
    }
}
