//! BGP on an interface with no configured address ("unnumbered"), and IPv4
//! routes over IPv6 next hops (RFC 8950).
//!
//! An interface neighbor has no address until one is learned. The peers'
//! IPv6 link-local addresses are learned from the Router Advertisements they
//! send ([`ra`]; we send ours too, so that FRR and others learn us), from the
//! kernel's neighbor table, and from the connections they open to us. Learning
//! goes on for the life of the neighbor ([`learn`]): a peer that comes back with
//! another link-local address or MAC is followed, and each of several peers on
//! one link (a bridge) gets a session. [`discover`] is the task that does this
//! for one interface; the speaker turns each learned address into a session
//! bound to the interface.
//!
//! RFC 8950: over such a session IPv4 routes carry an IPv6 next hop, our
//! link-local address. The capability is advertised for interface neighbors,
//! the codec accepts IPv4 NLRI with an IPv6 next hop only when it was
//! negotiated ([`Context::extended_next_hop`](crate::wire::Context)), and the
//! routes learned this way reach FIB consumers with the interface index of the
//! session ([`RoutePath::ifindex`](crate::speaker::RoutePath)): enough for a
//! kernel route with an IPv6 gateway for an IPv4 prefix (RTA_VIA).

mod discover;
mod io;
pub mod learn;
pub mod ra;

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

pub use discover::discover;
pub use io::if_index;
pub use learn::{Learner, PeerChange, Sighting, Source};
pub use ra::{RaError, RouterAdvertisement};

use crate::wire::{Afi, Capability, ExtendedNextHop, NextHop, Safi};

/// How an interface looks for its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// Send our Router Advertisements so that peers learn our address (FRR
    /// learns unnumbered peers only from them).
    pub advertise: bool,
    /// Time between our advertisements; the first three go a second apart,
    /// and a newly seen peer gets one at once.
    pub interval: Duration,
    /// The Router Lifetime we advertise, in seconds. 0 (the default) says "not
    /// a default router", so hosts on the link never route through us; FRR
    /// learns the neighbor from such an advertisement all the same.
    pub lifetime: u16,
    /// Read the kernel's neighbor table this often for routers on the link;
    /// `None` for never.
    pub neighbor_table: Option<Duration>,
    /// Forget a peer not seen for this long. Its session, if up, stays up
    /// until it ends by itself.
    pub expire_after: Duration,
    /// End the sessions on the interface as soon as it goes down or loses its
    /// carrier, as FRR's `bgp fast-external-failover` (on by default) does
    /// for directly connected peers, instead of waiting for the hold timer.
    pub fast_failover: bool,
}

impl Default for Discovery {
    /// Advertisements every 10 s with lifetime 0, the neighbor table read every
    /// 2 s, peers forgotten after 30 s of silence, fast failover on.
    fn default() -> Self {
        Self {
            advertise: true,
            interval: Duration::from_secs(10),
            lifetime: 0,
            neighbor_table: Some(Duration::from_secs(2)),
            expire_after: Duration::from_secs(30),
            fast_failover: true,
        }
    }
}

/// Whether `a` is an IPv6 link-local unicast address (fe80::/10).
pub fn is_link_local(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// Whether `a` is an IPv6 link-local address.
pub fn is_link_local_ip(a: IpAddr) -> bool {
    matches!(a, IpAddr::V6(v6) if is_link_local(v6))
}

/// The extended next hop capability podpeer advertises: IPv4 unicast NLRI
/// with IPv6 next hops (RFC 8950 section 3).
pub fn extended_next_hop_capability() -> Capability {
    Capability::ExtendedNextHop(vec![ExtendedNextHop {
        nlri_afi: Afi::IPV4,
        nlri_safi: u16::from(Safi::UNICAST.0),
        next_hop_afi: Afi::IPV6,
    }])
}

/// Our IPv6 next hop on a session from `local`. On a link-local session with a
/// configured global address, both (32 octets, RFC 2545 section 3); on a
/// link-local session without one, the link-local address alone, as FRR sends
/// it for unnumbered peers; otherwise the session address.
pub fn ipv6_next_hop(local: Ipv6Addr, configured_global: Option<Ipv6Addr>) -> NextHop {
    match configured_global {
        Some(global) if is_link_local(local) => NextHop::V6 {
            global,
            link_local: Some(local),
        },
        _ => NextHop::V6 {
            global: local,
            link_local: None,
        },
    }
}

/// The gateway to install for `next_hop` of a path that came over a session
/// on interface `ifindex`: the IPv4 address; or the IPv6 global address; or,
/// when that is link-local (an unnumbered peer) or absent, the link-local
/// address with the interface it is on. What a kernel route needs, also for an
/// IPv4 prefix over an IPv6 next hop.
pub fn gateway(next_hop: &NextHop, ifindex: Option<u32>) -> Option<(IpAddr, Option<u32>)> {
    match next_hop {
        NextHop::V4(a) => Some((IpAddr::V4(*a), None)),
        NextHop::V6 { global, .. } if !is_link_local(*global) && !global.is_unspecified() => {
            Some((IpAddr::V6(*global), None))
        }
        NextHop::V6 { global, link_local } => {
            let ll = link_local.filter(|l| is_link_local(*l)).unwrap_or(*global);
            (is_link_local(ll) && ifindex.is_some()).then_some((IpAddr::V6(ll), ifindex))
        }
        NextHop::Other(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn link_local_is_fe80_slash_10() {
        assert!(is_link_local(v6("fe80::1")));
        assert!(is_link_local(v6("febf::1")));
        assert!(!is_link_local(v6("fec0::1")));
        assert!(!is_link_local(v6("2001:db8::1")));
    }

    #[test]
    fn next_hop_on_link_local_sessions() {
        let ll = v6("fe80::1");
        let g = v6("2001:db8::1");
        assert_eq!(
            ipv6_next_hop(ll, None),
            NextHop::V6 {
                global: ll,
                link_local: None
            }
        );
        assert_eq!(
            ipv6_next_hop(ll, Some(g)),
            NextHop::V6 {
                global: g,
                link_local: Some(ll)
            }
        );
        // A global session address is the next hop, as before.
        assert_eq!(
            ipv6_next_hop(g, Some(v6("2001:db8::2"))),
            NextHop::V6 {
                global: g,
                link_local: None
            }
        );
    }

    #[test]
    fn gateways_for_the_fib() {
        let ll = v6("fe80::2");
        let g = v6("2001:db8::2");
        let v6nh = |global, link_local| NextHop::V6 { global, link_local };
        assert_eq!(
            gateway(&NextHop::V4("192.0.2.1".parse().unwrap()), Some(3)),
            Some(("192.0.2.1".parse().unwrap(), None))
        );
        assert_eq!(gateway(&v6nh(g, Some(ll)), Some(3)), Some((g.into(), None)));
        // Unnumbered: the link-local address alone, or in both places.
        assert_eq!(
            gateway(&v6nh(ll, None), Some(3)),
            Some((ll.into(), Some(3)))
        );
        assert_eq!(
            gateway(&v6nh(ll, Some(ll)), Some(3)),
            Some((ll.into(), Some(3)))
        );
        assert_eq!(
            gateway(&v6nh(Ipv6Addr::UNSPECIFIED, Some(ll)), Some(3)),
            Some((ll.into(), Some(3)))
        );
        // A link-local gateway without its interface cannot be installed.
        assert_eq!(gateway(&v6nh(ll, None), None), None);
    }
}
