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
    /// Builds a prefix from leading octets and a length, clearing host bits.
    /// `len` must be at most `MAX_LEN`. Missing octets read as zero and octets
    /// beyond `len` bits are ignored, so the decoder can hand over the rest of
    /// the NLRI field and let one fixed-size load replace a variable-length copy.
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
        let bits = match octets.first_chunk::<4>() {
            Some(word) => u32::from_be_bytes(*word),
            // Only the last prefix or so of a field has fewer than 4 octets left.
            None => {
                let mut a = [0u8; 4];
                a[..octets.len()].copy_from_slice(octets);
                u32::from_be_bytes(a)
            }
        };
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
        let bits = match octets.first_chunk::<16>() {
            Some(word) => u128::from_be_bytes(*word),
            None => {
                let mut a = [0u8; 16];
                a[..octets.len()].copy_from_slice(octets);
                u128::from_be_bytes(a)
            }
        };
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
    // Reserve for the common case up front, so that a full message of mixed
    // lengths decodes without growing (and copying) the vector: IPv4 routes are
    // rarely shorter than /9 (3 octets with the length), IPv6 ones than /32 (5).
    let shortest = if P::MAX_LEN <= 32 { 3 } else { 5 };
    let id_len = if add_path { 4 } else { 0 };
    out.reserve(buf.len() / (shortest + id_len));
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
        out.push(Nlri {
            path_id,
            // The whole rest: `from_octets` ignores the octets beyond `len` bits.
            prefix: P::from_octets(rest, len),
        });
        buf = &rest[n..];
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The decoder as the RFC reads, one octet at a time: what the fast path
    /// must agree with.
    fn reference<P: Prefix>(mut buf: &[u8], add_path: bool) -> Option<Vec<Nlri<P>>> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            let path_id = if add_path {
                let id = buf.get(..4)?;
                buf = &buf[4..];
                Some(u32::from_be_bytes([id[0], id[1], id[2], id[3]]))
            } else {
                None
            };
            let len = *buf.first()?;
            if len > P::MAX_LEN {
                return None;
            }
            let n = usize::from(len).div_ceil(8);
            let mut octets = buf.get(1..1 + n)?.to_vec();
            // Clear the host bits by hand.
            for (i, o) in octets.iter_mut().enumerate() {
                let keep = usize::from(len).saturating_sub(i * 8).min(8);
                *o &= (0xff00u16 >> keep) as u8;
            }
            out.push(Nlri {
                path_id,
                prefix: P::from_octets(&octets, len),
            });
            buf = &buf[1 + n..];
        }
        Some(out)
    }

    fn v4(s: &str) -> Nlri<Ipv4Net> {
        Nlri::new(s.parse().unwrap_or_default())
    }

    #[test]
    fn clears_host_bits() {
        assert_eq!(
            decode(&[23, 10, 0, 255], false),
            Ok(vec![v4("10.0.254.0/23")])
        );
        assert_eq!(decode(&[0], false), Ok(vec![v4("0.0.0.0/0")]));
        assert_eq!(decode(&[1, 0xff], false), Ok(vec![v4("128.0.0.0/1")]));
        // A 4-octet load that takes in the next prefix's octets keeps none of them.
        assert_eq!(
            decode(&[8, 10, 24, 192, 0, 2, 32, 1, 2, 3, 4], false),
            Ok(vec![v4("10.0.0.0/8"), v4("192.0.2.0/24"), v4("1.2.3.4/32")])
        );
        let v6: Vec<Nlri<Ipv6Net>> =
            decode(&[33, 0x20, 0x01, 0x0d, 0xb8, 0xff], false).unwrap_or_default();
        assert_eq!(
            v6,
            vec![Nlri::new("2001:db8:8000::/33".parse().unwrap_or_default())]
        );
    }

    #[test]
    fn rejects_long_lengths_and_overruns() {
        assert_eq!(
            decode::<Ipv4Net>(&[33, 1, 2, 3, 4, 5], false),
            Err(MalformedNlri)
        );
        assert_eq!(decode::<Ipv6Net>(&[129; 20], false), Err(MalformedNlri));
        assert_eq!(decode::<Ipv4Net>(&[24, 10, 0], false), Err(MalformedNlri));
        assert_eq!(
            decode::<Ipv4Net>(&[8, 10, 32, 1, 2, 3], false),
            Err(MalformedNlri)
        );
        assert_eq!(
            decode::<Ipv6Net>(&[64, 0x20, 0x01], false),
            Err(MalformedNlri)
        );
        assert_eq!(decode::<Ipv4Net>(&[0, 0, 1], true), Err(MalformedNlri));
        assert_eq!(decode::<Ipv4Net>(&[0, 0, 0, 1], true), Err(MalformedNlri));
    }

    #[test]
    fn from_octets_ignores_octets_beyond_the_length() {
        for len in 0..=32u8 {
            let n = usize::from(len).div_ceil(8);
            let exact = Ipv4Net::from_octets(&[0xab, 0xcd, 0xef, 0x12][..n], len);
            assert_eq!(
                Ipv4Net::from_octets(&[0xab, 0xcd, 0xef, 0x12, 0xff], len),
                exact
            );
            assert_eq!(exact, exact.trunc());
            assert_eq!(exact.prefix_len(), len);
        }
        for len in 0..=128u8 {
            let n = usize::from(len).div_ceil(8);
            let exact = Ipv6Net::from_octets(&[0xa5; 16][..n], len);
            assert_eq!(Ipv6Net::from_octets(&[0xa5; 20], len), exact);
            assert_eq!(exact, exact.trunc());
            assert_eq!(exact.prefix_len(), len);
        }
    }

    proptest! {
        #[test]
        fn agrees_with_reference(
            buf in proptest::collection::vec(prop_oneof![0..=40u8, any::<u8>()], 0..64),
            add_path: bool,
        ) {
            prop_assert_eq!(decode::<Ipv4Net>(&buf, add_path).ok(), reference(&buf, add_path));
            prop_assert_eq!(decode::<Ipv6Net>(&buf, add_path).ok(), reference(&buf, add_path));
        }

        #[test]
        fn round_trips(
            prefixes in proptest::collection::vec((any::<u32>(), 0..=32u8, any::<u32>()), 0..32),
            add_path: bool,
        ) {
            let nlri: Vec<Nlri<Ipv4Net>> = prefixes
                .iter()
                .map(|&(a, len, id)| Nlri {
                    path_id: add_path.then_some(id),
                    prefix: Ipv4Net::from_octets(&a.to_be_bytes(), len),
                })
                .collect();
            let mut out = BytesMut::new();
            encode(&nlri, add_path, &mut out);
            prop_assert_eq!(out.len(), encoded_len(&nlri, add_path));
            prop_assert_eq!(decode(&out, add_path), Ok(nlri));
        }
    }
}
