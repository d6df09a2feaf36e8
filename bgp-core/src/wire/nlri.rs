//! Prefixes as NLRI (RFC 4271 section 4.3, RFC 4760 section 5) with optional
//! ADD-PATH path identifiers (RFC 7911 section 3).
//!
//! ```text
//! +---------------------------+
//! | Path Identifier (4 octets)|   only when ADD-PATH is negotiated
//! +---------------------------+
//! |   Length (1 octet, bits)  |
//! +---------------------------+
//! |   Prefix (variable)       |   ceil(length / 8) octets
//! +---------------------------+
//! ```
//!
//! This is the hot loop of the codec: one bounds check per prefix, no allocation
//! but the output vector, and host bits beyond the length cleared so that equal
//! prefixes compare equal.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};
use ipnet::{Ipv4Net, Ipv6Net};

use super::family::AfiSafi;

/// One NLRI: a prefix and, under ADD-PATH, its path identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nlri<P> {
    /// The path identifier, present exactly when ADD-PATH applies to the family
    /// in this direction.
    pub path_id: Option<u32>,
    /// The prefix, host bits cleared.
    pub prefix: P,
}

impl<P> Nlri<P> {
    /// A prefix without a path identifier.
    pub fn new(prefix: P) -> Self {
        Self {
            path_id: None,
            prefix,
        }
    }

    /// A prefix with a path identifier.
    pub fn with_path_id(prefix: P, path_id: u32) -> Self {
        Self {
            path_id: Some(path_id),
            prefix,
        }
    }
}

/// A prefix type that can be carried as NLRI: the one generic code path for IPv4
/// and IPv6.
pub trait Prefix: Copy + Eq + std::hash::Hash + Ord + std::fmt::Debug {
    /// The unicast family of this prefix type.
    const FAMILY: AfiSafi;
    /// The longest prefix length.
    const MAX_LEN: u8;

    /// The prefix length in bits.
    fn bits(&self) -> u8;
    /// The address bits, as the leading octets to put on the wire.
    fn octets(&self) -> [u8; 16];
    /// Builds a prefix from leading octets (at most `MAX_LEN / 8`) and a length,
    /// clearing host bits. `len` must be at most `MAX_LEN`.
    fn from_octets(octets: &[u8], len: u8) -> Self;

    /// Encoded size of one NLRI of this prefix.
    fn encoded_len(&self, add_path: bool) -> usize {
        1 + usize::from(self.bits()).div_ceil(8) + if add_path { 4 } else { 0 }
    }
}

impl Prefix for Ipv4Net {
    const FAMILY: AfiSafi = AfiSafi::IPV4_UNICAST;
    const MAX_LEN: u8 = 32;

    #[inline]
    fn bits(&self) -> u8 {
        self.prefix_len()
    }

    #[inline]
    fn octets(&self) -> [u8; 16] {
        let mut o = [0u8; 16];
        o[..4].copy_from_slice(&self.addr().octets());
        o
    }

    #[inline]
    fn from_octets(octets: &[u8], len: u8) -> Self {
        let mut a = [0u8; 4];
        a[..octets.len()].copy_from_slice(octets);
        let bits = u32::from_be_bytes(a);
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        // `len` is checked against MAX_LEN by the caller, so this cannot fail.
        Ipv4Net::new(Ipv4Addr::from(bits & mask), len).unwrap_or_default()
    }
}

impl Prefix for Ipv6Net {
    const FAMILY: AfiSafi = AfiSafi::IPV6_UNICAST;
    const MAX_LEN: u8 = 128;

    #[inline]
    fn bits(&self) -> u8 {
        self.prefix_len()
    }

    #[inline]
    fn octets(&self) -> [u8; 16] {
        self.addr().octets()
    }

    #[inline]
    fn from_octets(octets: &[u8], len: u8) -> Self {
        let mut a = [0u8; 16];
        a[..octets.len()].copy_from_slice(octets);
        let bits = u128::from_be_bytes(a);
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        Ipv6Net::new(Ipv6Addr::from(bits & mask), len).unwrap_or_default()
    }
}

/// NLRI that do not parse: a length beyond the family's maximum or a prefix that
/// runs past the end of its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MalformedNlri;

/// Decodes a field of NLRI into `out`.
pub(crate) fn decode_into<P: Prefix>(
    mut buf: &[u8],
    add_path: bool,
    out: &mut Vec<Nlri<P>>,
) -> Result<(), MalformedNlri> {
    // A prefix takes at least one octet: reserve for the common case up front.
    out.reserve(buf.len() / if add_path { 8 } else { 4 });
    while !buf.is_empty() {
        let path_id = if add_path {
            let (id, rest) = buf.split_first_chunk::<4>().ok_or(MalformedNlri)?;
            buf = rest;
            Some(u32::from_be_bytes(*id))
        } else {
            None
        };
        let (&len, rest) = buf.split_first().ok_or(MalformedNlri)?;
        if len > P::MAX_LEN {
            return Err(MalformedNlri);
        }
        let n = usize::from(len).div_ceil(8);
        if n > rest.len() {
            return Err(MalformedNlri);
        }
        let (octets, rest) = rest.split_at(n);
        out.push(Nlri {
            path_id,
            prefix: P::from_octets(octets, len),
        });
        buf = rest;
    }
    Ok(())
}

/// Decodes a field of NLRI into a new vector.
pub(crate) fn decode<P: Prefix>(buf: &[u8], add_path: bool) -> Result<Vec<Nlri<P>>, MalformedNlri> {
    let mut out = Vec::new();
    decode_into(buf, add_path, &mut out)?;
    Ok(out)
}

/// Appends one NLRI. Without `add_path` the path identifier is left out; with it,
/// a missing identifier is sent as 0.
#[inline]
pub(crate) fn encode_one<P: Prefix>(nlri: &Nlri<P>, add_path: bool, out: &mut BytesMut) {
    if add_path {
        out.put_u32(nlri.path_id.unwrap_or(0));
    }
    let len = nlri.prefix.bits();
    out.put_u8(len);
    out.put_slice(&nlri.prefix.octets()[..usize::from(len).div_ceil(8)]);
}

/// Appends a field of NLRI.
pub(crate) fn encode<P: Prefix>(nlri: &[Nlri<P>], add_path: bool, out: &mut BytesMut) {
    for n in nlri {
        encode_one(n, add_path, out);
    }
}

/// Encoded size of a field of NLRI.
pub(crate) fn encoded_len<P: Prefix>(nlri: &[Nlri<P>], add_path: bool) -> usize {
    nlri.iter().map(|n| n.prefix.encoded_len(add_path)).sum()
}
