//! MP_REACH_NLRI and MP_UNREACH_NLRI (RFC 4760 sections 3 and 4), with IPv6 next
//! hops with or without a link-local address (RFC 2545 section 3) and IPv4 NLRI
//! over IPv6 next hops (RFC 8950).
//!
//! ```text
//! +---------------------------------------------------------+
//! | Address Family Identifier (2 octets)                    |
//! | Subsequent Address Family Identifier (1 octet)          |
//! | Length of Next Hop Network Address (1 octet)            |   MP_REACH only
//! | Network Address of Next Hop (variable)                  |   MP_REACH only
//! | Reserved (1 octet)                                      |   MP_REACH only
//! | Network Layer Reachability Information (variable)       |
//! +---------------------------------------------------------+
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, Bytes, BytesMut};
use ipnet::{Ipv4Net, Ipv6Net};

use super::context::Context;
use super::family::{Afi, AfiSafi, Safi};
use super::nlri::{self, MalformedNlri, Nlri};
use super::reader::Reader;

/// The NLRI of one family inside an MP attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Prefixes {
    /// IPv4 unicast or multicast prefixes.
    V4(Vec<Nlri<Ipv4Net>>),
    /// IPv6 unicast or multicast prefixes.
    V6(Vec<Nlri<Ipv6Net>>),
    /// NLRI of a family this crate does not parse, kept as received.
    Other(Bytes),
}

impl Prefixes {
    /// The number of prefixes (0 for families kept as raw bytes).
    pub fn len(&self) -> usize {
        match self {
            Self::V4(v) => v.len(),
            Self::V6(v) => v.len(),
            Self::Other(_) => 0,
        }
    }

    /// Whether there are no NLRI at all.
    pub fn is_empty(&self) -> bool {
        match self {
            Self::V4(v) => v.is_empty(),
            Self::V6(v) => v.is_empty(),
            Self::Other(b) => b.is_empty(),
        }
    }

    fn decode(family: AfiSafi, buf: &[u8], ctx: &Context) -> Result<Self, MalformedNlri> {
        let add_path = ctx.add_path.contains(family);
        Ok(if family.is_ipv4_prefix() {
            Self::V4(nlri::decode(buf, add_path)?)
        } else if family.is_ipv6_prefix() {
            Self::V6(nlri::decode(buf, add_path)?)
        } else {
            Self::Other(Bytes::copy_from_slice(buf))
        })
    }

    fn encode(&self, family: AfiSafi, ctx: &Context, out: &mut BytesMut) {
        let add_path = ctx.add_path.contains(family);
        match self {
            Self::V4(v) => nlri::encode(v, add_path, out),
            Self::V6(v) => nlri::encode(v, add_path, out),
            Self::Other(b) => out.put_slice(b),
        }
    }

    fn encoded_len(&self, family: AfiSafi, ctx: &Context) -> usize {
        let add_path = ctx.add_path.contains(family);
        match self {
            Self::V4(v) => nlri::encoded_len(v, add_path),
            Self::V6(v) => nlri::encoded_len(v, add_path),
            Self::Other(b) => b.len(),
        }
    }
}

/// The next hop of an MP_REACH_NLRI.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub enum NextHop {
    /// An IPv4 next hop (4 octets).
    V4(Ipv4Addr),
    /// An IPv6 next hop: a global address (16 octets), optionally followed by a
    /// link-local one (32 octets in all), RFC 2545 section 3. Unnumbered peers
    /// often send a link-local address as the "global" one.
    V6 {
        /// The first address.
        global: Ipv6Addr,
        /// The second, link-local address, when the next hop is 32 octets.
        link_local: Option<Ipv6Addr>,
    },
    /// The next hop of a family this crate does not parse.
    Other(Bytes),
}

impl NextHop {
    /// The address to forward to: the IPv4 address, or the global IPv6 address.
    pub fn addr(&self) -> Option<IpAddr> {
        match self {
            Self::V4(a) => Some(IpAddr::V4(*a)),
            Self::V6 { global, .. } => Some(IpAddr::V6(*global)),
            Self::Other(_) => None,
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            Self::V4(_) => 4,
            Self::V6 { link_local, .. } => 16 + if link_local.is_some() { 16 } else { 0 },
            Self::Other(b) => b.len(),
        }
    }

    pub(crate) fn encode(&self, out: &mut BytesMut) {
        match self {
            Self::V4(a) => out.put_slice(&a.octets()),
            Self::V6 { global, link_local } => {
                out.put_slice(&global.octets());
                if let Some(ll) = link_local {
                    out.put_slice(&ll.octets());
                }
            }
            Self::Other(b) => out.put_slice(b),
        }
    }

    /// Decodes a next hop of `family`. `None` when the length does not fit the
    /// family (RFC 7606 section 7.11): IPv4 unicast takes 4 octets, or 16 or 32
    /// for an IPv6 next hop (RFC 8950); IPv6 unicast takes 16 or 32 (RFC 2545).
    fn decode(family: AfiSafi, raw: &[u8]) -> Option<Self> {
        if !(family.is_ipv4_prefix() || family.is_ipv6_prefix()) {
            return Some(Self::Other(Bytes::copy_from_slice(raw)));
        }
        match raw.len() {
            4 if family.is_ipv4_prefix() => {
                let a: [u8; 4] = raw.try_into().ok()?;
                Some(Self::V4(Ipv4Addr::from(a)))
            }
            16 => {
                let g: [u8; 16] = raw.try_into().ok()?;
                Some(Self::V6 {
                    global: Ipv6Addr::from(g),
                    link_local: None,
                })
            }
            32 => {
                let g: [u8; 16] = raw[..16].try_into().ok()?;
                let l: [u8; 16] = raw[16..].try_into().ok()?;
                Some(Self::V6 {
                    global: Ipv6Addr::from(g),
                    link_local: Some(Ipv6Addr::from(l)),
                })
            }
            _ => None,
        }
    }
}

/// MP_REACH_NLRI: routes of one family with their next hop.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpReach {
    /// The family of the NLRI.
    pub family: AfiSafi,
    /// The next hop.
    pub next_hop: NextHop,
    /// The announced NLRI.
    pub nlri: Prefixes,
}

/// MP_UNREACH_NLRI: withdrawn routes of one family. Empty NLRI make it the
/// End-of-RIB marker of that family (RFC 4724 section 2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    /// The family of the NLRI.
    pub family: AfiSafi,
    /// The withdrawn NLRI.
    pub withdrawn: Prefixes,
}

/// Why an MP attribute could not be parsed: always a session reset (RFC 7606
/// sections 5.3 and 7.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MalformedMp {
    Short,
    NextHopLength,
    Nlri,
}

fn family(r: &mut Reader<'_>) -> Option<AfiSafi> {
    Some(AfiSafi::new(Afi(r.u16()?), Safi(r.u8()?)))
}

impl MpReach {
    pub(crate) fn decode(value: &[u8], ctx: &Context) -> Result<Self, MalformedMp> {
        if value.len() < 5 {
            return Err(MalformedMp::Short);
        }
        let mut r = Reader::new(value);
        let family = family(&mut r).ok_or(MalformedMp::Short)?;
        let nh_len = r.u8().ok_or(MalformedMp::Short)?;
        let nh = r
            .take(usize::from(nh_len))
            .ok_or(MalformedMp::NextHopLength)?;
        let next_hop = NextHop::decode(family, nh).ok_or(MalformedMp::NextHopLength)?;
        r.u8().ok_or(MalformedMp::NextHopLength)?; // Reserved: ignored on receipt.
        let nlri = Prefixes::decode(family, r.rest(), ctx).map_err(|_| MalformedMp::Nlri)?;
        Ok(Self {
            family,
            next_hop,
            nlri,
        })
    }

    pub(crate) fn encoded_len(&self, ctx: &Context) -> usize {
        5 + self.next_hop.encoded_len() + self.nlri.encoded_len(self.family, ctx)
    }

    pub(crate) fn encode_value(&self, ctx: &Context, out: &mut BytesMut) {
        out.put_u16(self.family.afi.0);
        out.put_u8(self.family.safi.0);
        out.put_u8(self.next_hop.encoded_len() as u8);
        self.next_hop.encode(out);
        out.put_u8(0);
        self.nlri.encode(self.family, ctx, out);
    }
}

impl MpUnreach {
    /// The End-of-RIB marker for `family`.
    pub fn end_of_rib(family: AfiSafi) -> Self {
        let withdrawn = if family.is_ipv4_prefix() {
            Prefixes::V4(Vec::new())
        } else if family.is_ipv6_prefix() {
            Prefixes::V6(Vec::new())
        } else {
            Prefixes::Other(Bytes::new())
        };
        Self { family, withdrawn }
    }

    pub(crate) fn decode(value: &[u8], ctx: &Context) -> Result<Self, MalformedMp> {
        let mut r = Reader::new(value);
        let family = family(&mut r).ok_or(MalformedMp::Short)?;
        let withdrawn = Prefixes::decode(family, r.rest(), ctx).map_err(|_| MalformedMp::Nlri)?;
        Ok(Self { family, withdrawn })
    }

    pub(crate) fn encoded_len(&self, ctx: &Context) -> usize {
        3 + self.withdrawn.encoded_len(self.family, ctx)
    }

    pub(crate) fn encode_value(&self, ctx: &Context, out: &mut BytesMut) {
        out.put_u16(self.family.afi.0);
        out.put_u8(self.family.safi.0);
        self.withdrawn.encode(self.family, ctx, out);
    }
}
