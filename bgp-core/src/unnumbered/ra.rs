//! Router Advertisements (RFC 4861 section 4.2): just enough to announce
//! ourselves on a link and to recognise a neighbor's announcement.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      |     Code      |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Cur Hop Limit |M|O|  Reserved |       Router Lifetime         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         Reachable Time                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                          Retrans Timer                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Options ...   (type, length in units of 8 octets, value)
//! +-+-+-+-+-+-+-+-+-+-+-+-
//! ```
//!
//! The checksum is the kernel's job on a raw ICMPv6 socket (RFC 3542 section
//! 3.1), so it is written as zero and not verified here.

use std::net::Ipv6Addr;

/// ICMPv6 type of a Router Advertisement.
pub const ROUTER_ADVERTISEMENT: u8 = 134;
/// The hop limit every Neighbor Discovery message is sent with and must arrive
/// with (RFC 4861 section 6.1.2): proof that it was not routed.
pub const ND_HOP_LIMIT: u8 = 255;
/// Option type: Source Link-Layer Address (RFC 4861 section 4.6.1).
const OPT_SOURCE_LINK_LAYER: u8 = 1;
/// Length of the fixed part of a Router Advertisement.
const FIXED_LEN: usize = 16;

/// A Router Advertisement, the fields podpeer reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RouterAdvertisement {
    /// Cur Hop Limit (0: unspecified).
    pub hop_limit: u8,
    /// Router Lifetime in seconds; 0 says "not a default router", so hosts on
    /// the link do not route through us.
    pub lifetime: u16,
    /// The sender's link-layer (MAC) address, from the Source Link-Layer
    /// Address option.
    pub source_mac: Option<[u8; 6]>,
}

/// Why a received packet is not a Router Advertisement to learn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RaError {
    /// Another ICMPv6 message (the socket sees them all).
    #[error("ICMPv6 type {0} is not a Router Advertisement")]
    NotAdvertisement(u8),
    /// Shorter than the fixed part, or an option overruns the message.
    #[error("truncated Router Advertisement")]
    Truncated,
    /// ICMP code other than 0.
    #[error("Router Advertisement with code {0}")]
    Code(u8),
    /// An option with length 0 (RFC 4861 section 6.1.2).
    #[error("Router Advertisement option of length 0")]
    ZeroLengthOption,
    /// Not from a link-local address (RFC 4861 section 6.1.2).
    #[error("Router Advertisement from {0}, not a link-local address")]
    NotLinkLocal(Ipv6Addr),
    /// Hop limit other than 255: it crossed a router, or the hop limit is unknown.
    #[error("Router Advertisement with hop limit {0:?}, not 255")]
    HopLimit(Option<u8>),
}

impl RouterAdvertisement {
    /// The ICMPv6 message (checksum left to the kernel).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED_LEN + 8);
        out.extend_from_slice(&[ROUTER_ADVERTISEMENT, 0, 0, 0, self.hop_limit, 0]);
        out.extend_from_slice(&self.lifetime.to_be_bytes());
        out.extend_from_slice(&[0; 8]); // reachable time, retrans timer: unspecified
        if let Some(mac) = self.source_mac {
            out.extend_from_slice(&[OPT_SOURCE_LINK_LAYER, 1]);
            out.extend_from_slice(&mac);
        }
        out
    }

    /// Parses an ICMPv6 message (without the IPv6 header).
    pub fn decode(icmp: &[u8]) -> Result<Self, RaError> {
        let (&kind, _) = icmp.split_first().ok_or(RaError::Truncated)?;
        if kind != ROUTER_ADVERTISEMENT {
            return Err(RaError::NotAdvertisement(kind));
        }
        if icmp.len() < FIXED_LEN {
            return Err(RaError::Truncated);
        }
        if icmp[1] != 0 {
            return Err(RaError::Code(icmp[1]));
        }
        let mut ra = Self {
            hop_limit: icmp[4],
            lifetime: u16::from_be_bytes([icmp[6], icmp[7]]),
            source_mac: None,
        };
        let mut rest = &icmp[FIXED_LEN..];
        while let [kind, units, ..] = *rest {
            let len = usize::from(units) * 8;
            if len == 0 {
                return Err(RaError::ZeroLengthOption);
            }
            let option = rest.get(..len).ok_or(RaError::Truncated)?;
            if kind == OPT_SOURCE_LINK_LAYER && len == 8 {
                let mut mac = [0; 6];
                mac.copy_from_slice(&option[2..8]);
                ra.source_mac = Some(mac);
            }
            rest = &rest[len..];
        }
        if !rest.is_empty() {
            return Err(RaError::Truncated);
        }
        Ok(ra)
    }

    /// Checks what arrived with the message (RFC 4861 section 6.1.2: a
    /// link-local source and hop limit 255), then parses it.
    pub fn accept(source: Ipv6Addr, hop_limit: Option<u8>, icmp: &[u8]) -> Result<Self, RaError> {
        let ra = Self::decode(icmp)?;
        if !super::is_link_local(source) {
            return Err(RaError::NotLinkLocal(source));
        }
        if hop_limit != Some(ND_HOP_LIMIT) {
            return Err(RaError::HopLimit(hop_limit));
        }
        Ok(ra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

    #[test]
    fn round_trip_with_and_without_source_mac() {
        for ra in [
            RouterAdvertisement::default(),
            RouterAdvertisement {
                hop_limit: 64,
                lifetime: 1800,
                source_mac: Some([0x02, 0, 0, 0, 0, 0x2a]),
            },
        ] {
            let wire = ra.encode();
            assert_eq!(wire[0], 134);
            assert_eq!(wire.len(), if ra.source_mac.is_some() { 24 } else { 16 });
            assert_eq!(RouterAdvertisement::decode(&wire), Ok(ra));
        }
    }

    /// An advertisement as FRR sends it: hop limit 64, lifetime 1800 s,
    /// MTU and source link-layer options.
    #[test]
    fn reads_frr_style_advertisement_with_other_options() {
        let mut wire = vec![
            134, 0, 0xab, 0xcd, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        wire.extend_from_slice(&[5, 1, 0, 0, 0, 0, 0x05, 0xdc]); // MTU 1500
        wire.extend_from_slice(&[1, 1, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f]);
        let ra = RouterAdvertisement::accept(LL, Some(255), &wire).unwrap();
        assert_eq!(ra.lifetime, 1800);
        assert_eq!(ra.source_mac, Some([0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f]));
    }

    #[test]
    fn refuses_what_rfc4861_says_to_ignore() {
        let good = RouterAdvertisement::default().encode();
        let accept = |src: Ipv6Addr, hl, w: &[u8]| RouterAdvertisement::accept(src, hl, w);
        assert_eq!(
            accept(LL, Some(255), &good),
            Ok(RouterAdvertisement::default())
        );
        assert_eq!(
            accept(LL, Some(254), &good),
            Err(RaError::HopLimit(Some(254)))
        );
        assert_eq!(accept(LL, None, &good), Err(RaError::HopLimit(None)));
        let global: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            accept(global, Some(255), &good),
            Err(RaError::NotLinkLocal(global))
        );
        let mut code = good.clone();
        code[1] = 1;
        assert_eq!(accept(LL, Some(255), &code), Err(RaError::Code(1)));
        assert_eq!(
            accept(LL, Some(255), &[135, 0, 0, 0]),
            Err(RaError::NotAdvertisement(135))
        );
        assert_eq!(accept(LL, Some(255), &good[..15]), Err(RaError::Truncated));
        let mut zero = good.clone();
        zero.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(accept(LL, Some(255), &zero), Err(RaError::ZeroLengthOption));
        let mut over = good.clone();
        over.extend_from_slice(&[1, 2, 0, 0, 0, 0, 0, 0]);
        assert_eq!(accept(LL, Some(255), &over), Err(RaError::Truncated));
        let mut odd = good;
        odd.push(1);
        assert_eq!(accept(LL, Some(255), &odd), Err(RaError::Truncated));
    }
}
