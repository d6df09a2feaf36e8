//! Address families (RFC 4760 section 3): AFI, SAFI and the pair of them.
//!
//! Both are open newtypes rather than closed enums, because a peer may advertise
//! families this crate does not carry (EVPN, flowspec, ...) and those capabilities
//! must survive a decode and re-encode unchanged.

use std::fmt;

/// Address Family Identifier (IANA "Address Family Numbers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Afi(pub u16);

impl Afi {
    /// IP version 4.
    pub const IPV4: Afi = Afi(1);
    /// IP version 6.
    pub const IPV6: Afi = Afi(2);
    /// Layer 2 VPN (EVPN and VPLS).
    pub const L2VPN: Afi = Afi(25);
}

/// Subsequent Address Family Identifier (IANA "SAFI Values").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Safi(pub u8);

impl Safi {
    /// Unicast forwarding.
    pub const UNICAST: Safi = Safi(1);
    /// Multicast forwarding (RPF).
    pub const MULTICAST: Safi = Safi(2);
    /// MPLS-labeled VPN addresses.
    pub const MPLS_VPN: Safi = Safi(128);
    /// EVPN.
    pub const EVPN: Safi = Safi(70);
}

/// An AFI/SAFI pair: one address family as BGP negotiates and carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AfiSafi {
    /// The address family.
    pub afi: Afi,
    /// The sub-family.
    pub safi: Safi,
}

impl AfiSafi {
    /// IPv4 unicast.
    pub const IPV4_UNICAST: AfiSafi = AfiSafi::new(Afi::IPV4, Safi::UNICAST);
    /// IPv6 unicast.
    pub const IPV6_UNICAST: AfiSafi = AfiSafi::new(Afi::IPV6, Safi::UNICAST);

    /// Pairs an AFI with a SAFI.
    pub const fn new(afi: Afi, safi: Safi) -> Self {
        Self { afi, safi }
    }

    /// Whether prefixes of this family are encoded as plain IPv4 prefixes.
    pub fn is_ipv4_prefix(self) -> bool {
        self.afi == Afi::IPV4 && (self.safi == Safi::UNICAST || self.safi == Safi::MULTICAST)
    }

    /// Whether prefixes of this family are encoded as plain IPv6 prefixes.
    pub fn is_ipv6_prefix(self) -> bool {
        self.afi == Afi::IPV6 && (self.safi == Safi::UNICAST || self.safi == Safi::MULTICAST)
    }
}

impl fmt::Display for AfiSafi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.afi, self.safi) {
            (Afi::IPV4, Safi::UNICAST) => f.write_str("ipv4-unicast"),
            (Afi::IPV6, Safi::UNICAST) => f.write_str("ipv6-unicast"),
            (Afi::IPV4, Safi::MULTICAST) => f.write_str("ipv4-multicast"),
            (Afi::IPV6, Safi::MULTICAST) => f.write_str("ipv6-multicast"),
            (Afi::L2VPN, Safi::EVPN) => f.write_str("l2vpn-evpn"),
            (afi, safi) => write!(f, "afi{}-safi{}", afi.0, safi.0),
        }
    }
}

impl serde::Serialize for AfiSafi {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
