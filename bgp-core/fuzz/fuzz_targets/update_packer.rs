//! `UpdatePacker` with prefixes, attributes and a context all taken from the
//! input.
//!
//! Every message it writes must fit the context's maximum, the count it returns
//! must match the messages written, and decoding them under the same context must
//! give back exactly the prefixes (path identifiers as ADD-PATH sends them), the
//! next hop and the attributes that were packed, with no RFC 7606 error.

#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp_core::wire::{
    AfiSafi, Aggregator, AsPath, Community, Context, EncodeError, ExtCommunity, Framer,
    LargeCommunity, Message, NextHop, Nlri, Origin, PathAttributes, PeerKind, Prefix, Prefixes,
    Segment, SegmentType, Update, UpdatePacker,
};
use bytes::BytesMut;
use ipnet::{Ipv4Net, Ipv6Net};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

/// Reads input bytes, yielding zeros once they run out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        std::array::from_fn(|_| self.u8())
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An ASN that is valid in a path: never 0.
fn asn(v: u32) -> u32 {
    v.max(1)
}

/// A usable IPv4 next hop (not 0/8, multicast, class E or broadcast).
fn next_hop_v4(v: u32) -> Ipv4Addr {
    let [_, b, c, d] = v.to_be_bytes();
    Ipv4Addr::new(1 + v.to_be_bytes()[0] % 223, b, c, d)
}

fn attributes(inp: &mut Input<'_>) -> PathAttributes {
    let present = inp.u8();
    let mut a = PathAttributes {
        origin: Some(match inp.u8() % 3 {
            0 => Origin::Igp,
            1 => Origin::Egp,
            _ => Origin::Incomplete,
        }),
        next_hop: Some(next_hop_v4(inp.u32())),
        ..PathAttributes::default()
    };
    // AS_PATH: up to 3 segments of sequences and sets, each 1 to 255 ASes, drawn
    // from a small pool of 2- and 4-octet numbers so paths can grow long cheaply.
    let pool = [
        asn(u32::from(inp.u16())),
        asn(inp.u32()),
        65001,
        4_200_000_000,
    ];
    let mut segments = Vec::new();
    for _ in 0..inp.u8() % 4 {
        let kind = if inp.u8() & 1 == 0 {
            SegmentType::Sequence
        } else {
            SegmentType::Set
        };
        let n = 1 + usize::from(inp.u8() % 255);
        let pick = inp.u8();
        let asns = (0..n).map(|i| pool[(usize::from(pick) + i) % 4]).collect();
        segments.push(Segment { kind, asns });
    }
    a.as_path = Some(AsPath { segments });
    if present & 0x01 != 0 {
        a.med = Some(inp.u32());
    }
    if present & 0x02 != 0 {
        a.local_pref = Some(inp.u32());
    }
    if present & 0x04 != 0 {
        a.atomic_aggregate = true;
    }
    if present & 0x08 != 0 {
        a.aggregator = Some(Aggregator {
            asn: asn(inp.u32()),
            address: Ipv4Addr::from(inp.u32()),
        });
    }
    if present & 0x10 != 0 {
        let n = 1 + usize::from(inp.u8());
        let base = inp.u32();
        a.communities = (0..n as u32)
            .map(|i| Community(base.wrapping_add(i)))
            .collect();
    }
    if present & 0x20 != 0 {
        let n = 1 + usize::from(inp.u8() % 32);
        let base = inp.bytes::<8>();
        a.ext_communities = (0..n as u8)
            .map(|i| {
                let mut c = base;
                c[7] = c[7].wrapping_add(i);
                ExtCommunity(c)
            })
            .collect();
    }
    if present & 0x40 != 0 {
        let n = 1 + usize::from(inp.u8() % 32);
        let (g, l) = (inp.u32(), inp.u32());
        a.large_communities = (0..n as u32)
            .map(|i| LargeCommunity::new(g, l, i))
            .collect();
    }
    if present & 0x80 != 0 {
        a.otc = Some(inp.u32());
    }
    a
}

fn next_hop(inp: &mut Input<'_>, allow_v4: bool) -> NextHop {
    let global = Ipv6Addr::from(inp.bytes::<16>());
    match inp.u8() % 3 {
        0 if allow_v4 => NextHop::V4(next_hop_v4(inp.u32())),
        0 | 1 => NextHop::V6 {
            global,
            link_local: None,
        },
        _ => NextHop::V6 {
            global,
            link_local: Some(Ipv6Addr::from(inp.bytes::<16>())),
        },
    }
}

fn nlri<P: Prefix>(inp: &mut Input<'_>, len: u8, path_id: Option<u32>) -> Nlri<P> {
    let len = len % (P::MAX_LEN + 1);
    let octets: Vec<u8> = (0..usize::from(len).div_ceil(8))
        .map(|_| inp.u8())
        .collect();
    Nlri {
        path_id,
        prefix: P::from_octets(&octets, len),
    }
}

/// What the packer is expected to send for `p`: ADD-PATH sends a missing path
/// identifier as 0, without it none is sent.
fn as_sent<P: Prefix>(p: &[Nlri<P>], ctx: &Context) -> Vec<Nlri<P>> {
    let add_path = ctx.add_path.contains(P::FAMILY);
    p.iter()
        .map(|n| Nlri {
            path_id: add_path.then(|| n.path_id.unwrap_or(0)),
            prefix: n.prefix,
        })
        .collect()
}

/// Splits `out` into UPDATEs, checking each against the maximum length.
fn updates(out: &BytesMut, ctx: &Context) -> Vec<Update> {
    let mut framer = Framer::new();
    framer.set_max_len(ctx.max_message_len());
    let mut buf = out.clone();
    let mut msgs = Vec::new();
    while !buf.is_empty() {
        let frame = framer
            .next_frame(&mut buf)
            .expect("packer wrote a bad header")
            .expect("packer wrote a partial message");
        assert!(frame.len() <= ctx.max_message_len());
        match Message::decode(&frame, ctx) {
            Ok(Message::Update(u)) => {
                assert!(
                    u.errors.is_empty(),
                    "packed UPDATE has errors: {:?}",
                    u.errors
                );
                msgs.push(u);
            }
            other => panic!("packed message does not decode as an UPDATE: {other:?}"),
        }
    }
    msgs
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let (b0, b1) = (inp.u8(), inp.u8());
    // The peer kind matters only for decoding; an unknown peer accepts everything
    // a sender may put in. IPv4 routes may be packed with an IPv6 next hop, which
    // needs extended next hop (RFC 8950) to decode without error.
    let ctx = Context {
        peer: PeerKind::Unknown,
        extended_next_hop: true,
        ..common::context(b0, b1)
    };
    let packer = UpdatePacker::new(&ctx);
    let attrs = attributes(&mut inp);
    let v4_mode = inp.u8();
    let v4_nh = (v4_mode & 1 != 0).then(|| next_hop(&mut inp, true));
    let v6_nh = next_hop(&mut inp, false);

    // Prefixes: a run of generated ones (to fill several messages cheaply), then
    // one per record of the rest of the input.
    let mut v4: Vec<Nlri<Ipv4Net>> = Vec::new();
    let mut v6: Vec<Nlri<Ipv6Net>> = Vec::new();
    let bulk = usize::from(inp.u8()) * 16;
    let bulk_len = inp.u8();
    for i in 0..bulk {
        let id = (i % 3 == 0).then_some(i as u32);
        let bytes = (i as u32).wrapping_mul(2_654_435_761).to_be_bytes();
        if i % 2 == 0 {
            v4.push(nlri(&mut Input(&bytes), bulk_len, id));
        } else {
            v6.push(nlri(&mut Input(&bytes.repeat(4)), bulk_len, id));
        }
    }
    while !inp.is_empty() {
        let tag = inp.u8();
        let path_id = (tag & 0x40 != 0).then(|| inp.u32());
        if tag & 0x80 == 0 {
            let len = inp.u8();
            v4.push(nlri(&mut inp, len, path_id));
        } else {
            let len = inp.u8();
            v6.push(nlri(&mut inp, len, path_id));
        }
    }

    let mut mp_attrs = attrs.clone();
    mp_attrs.next_hop = None;

    // Announce IPv4 (NLRI field or MP_REACH_NLRI).
    let mut out = BytesMut::new();
    match packer.announce(&attrs, v4_nh.as_ref(), &v4, &mut out) {
        Ok(n) => {
            let msgs = updates(&out, &ctx);
            assert_eq!(n, msgs.len());
            let mut got = Vec::new();
            for u in msgs {
                assert!(u.withdrawn.is_empty() && u.mp_unreach.is_none());
                match &v4_nh {
                    None => {
                        assert_eq!(u.attributes, attrs);
                        assert!(u.mp_reach.is_none());
                        got.extend(u.nlri);
                    }
                    Some(nh) => {
                        assert_eq!(u.attributes, mp_attrs);
                        assert!(u.nlri.is_empty());
                        let r = u.mp_reach.expect("no MP_REACH_NLRI");
                        assert_eq!((r.family, &r.next_hop), (AfiSafi::IPV4_UNICAST, nh));
                        let Prefixes::V4(p) = r.nlri else {
                            panic!("IPv4 MP_REACH_NLRI without IPv4 prefixes")
                        };
                        got.extend(p);
                    }
                }
            }
            assert_eq!(got, as_sent(&v4, &ctx));
        }
        Err(EncodeError::TooLong { len, max }) => assert!(len > max),
        Err(e) => panic!("unexpected error {e}"),
    }

    // Announce IPv6 (MP_REACH_NLRI).
    let mut out = BytesMut::new();
    match packer.announce(&attrs, Some(&v6_nh), &v6, &mut out) {
        Ok(n) => {
            let msgs = updates(&out, &ctx);
            assert_eq!(n, msgs.len());
            let mut got = Vec::new();
            for u in msgs {
                assert_eq!(u.attributes, mp_attrs);
                let r = u.mp_reach.expect("no MP_REACH_NLRI");
                assert_eq!((r.family, &r.next_hop), (AfiSafi::IPV6_UNICAST, &v6_nh));
                let Prefixes::V6(p) = r.nlri else {
                    panic!("IPv6 MP_REACH_NLRI without IPv6 prefixes")
                };
                got.extend(p);
            }
            assert_eq!(got, as_sent(&v6, &ctx));
        }
        Err(EncodeError::TooLong { len, max }) => assert!(len > max),
        Err(e) => panic!("unexpected error {e}"),
    }

    // Withdraw both, into one buffer.
    let mut out = BytesMut::new();
    let n4 = packer
        .withdraw(&v4, &mut out)
        .expect("IPv4 withdrawal must fit");
    let n6 = packer
        .withdraw(&v6, &mut out)
        .expect("IPv6 withdrawal must fit");
    let msgs = updates(&out, &ctx);
    assert_eq!(n4 + n6, msgs.len());
    let (mut got4, mut got6) = (Vec::new(), Vec::new());
    for u in msgs {
        assert!(u.nlri.is_empty() && u.mp_reach.is_none());
        assert_eq!(u.attributes, PathAttributes::default());
        got4.extend(u.withdrawn);
        if let Some(w) = u.mp_unreach {
            assert_eq!(w.family, AfiSafi::IPV6_UNICAST);
            let Prefixes::V6(p) = w.withdrawn else {
                panic!("IPv6 MP_UNREACH_NLRI without IPv6 prefixes")
            };
            got6.extend(p);
        }
    }
    assert_eq!(got4, as_sent(&v4, &ctx));
    assert_eq!(got6, as_sent(&v6, &ctx));
});
