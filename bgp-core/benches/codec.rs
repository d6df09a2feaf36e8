//! Criterion benchmarks of the wire codec on a full-table-sized workload: one
//! million distinct prefixes sharing one attribute set, packed into UPDATEs.
//!
//! IPv4 prefix lengths follow the shape of the global table. Each prefix draws
//! a length from the "drawn" column (see `v4_len`), a first octet in 1..=223
//! and random address bits; duplicates are dropped and drawn again. There are
//! only 56,865 distinct /8../15 in 1.0.0.0-223.255.255.255, so the short lengths
//! saturate and the set that comes out (printed when the bench starts) has:
//!
//! | length      | drawn | realized |
//! |-------------|-------|----------|
//! | /24         | 60 %  | 63.2 %   |
//! | /23         | 10 %  | 10.7 %   |
//! | /22         |  8 %  |  8.5 %   |
//! | /19../21    |  7 %  |  7.4 %   |
//! | /16../18    |  8 %  |  7.5 %   |
//! | /8../15     |  7 %  |  2.7 %   |
//!
//! That is 4.0 octets per IPv4 NLRI on average, about 1,000 prefixes per
//! 4096-octet UPDATE.
//!
//! IPv6 prefixes in 2000::/3 (see `v6_len`): /48 50 %, /56 20 %, /64 15 %, and
//! 15 % spread evenly over /49../63 (so /56 ends up with 21 % in all).
//!
//! Every decode bench consumes every prefix (the sum of prefix lengths goes
//! through `black_box`) and reports elements/s, one element being one prefix.
//!
//! Run with `cargo bench -p bgp-core --bench codec`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use bgp_core::wire::{
    AddPathFamilies, AsPath, Community, Context, Framer, Message, MpReach, NextHop, Nlri, Origin,
    PathAttributes, Prefix, Prefixes, RawUpdate, UpdatePacker,
};
use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ipnet::{Ipv4Net, Ipv6Net};

/// Prefixes per workload.
const N: usize = 1_000_000;
/// Octets of the BGP header.
const HEADER_LEN: usize = 19;

/// xorshift64*: deterministic, fast, good enough to spread prefixes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (the bias is negligible for small `n`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A prefix length drawn from the global-table-like distribution in the module
/// documentation.
fn v4_len(rng: &mut Rng) -> u8 {
    match rng.below(100) {
        0..60 => 24,
        60..70 => 23,
        70..78 => 22,
        78..85 => 19 + rng.below(3) as u8,
        85..93 => 16 + rng.below(3) as u8,
        _ => 8 + rng.below(8) as u8,
    }
}

fn v6_len(rng: &mut Rng) -> u8 {
    match rng.below(100) {
        0..50 => 48,
        50..70 => 56,
        70..85 => 64,
        _ => 49 + rng.below(15) as u8,
    }
}

/// One million distinct IPv4 unicast prefixes (first octet 1..=223), host bits
/// clear, in generation order.
fn v4_prefixes(seed: u64) -> Vec<Nlri<Ipv4Net>> {
    let mut rng = Rng(seed);
    let mut seen = HashSet::with_capacity(N);
    let mut out = Vec::with_capacity(N);
    while out.len() < N {
        let len = v4_len(&mut rng);
        let first = 1 + rng.below(223) as u32;
        let addr = (first << 24) | (rng.next() as u32 & 0x00ff_ffff);
        let net = Ipv4Net::new(Ipv4Addr::from(addr), len).unwrap().trunc();
        if seen.insert(net) {
            out.push(Nlri::new(net));
        }
    }
    out
}

/// One million distinct IPv6 prefixes in 2000::/3.
fn v6_prefixes(seed: u64) -> Vec<Nlri<Ipv6Net>> {
    let mut rng = Rng(seed);
    let mut seen = HashSet::with_capacity(N);
    let mut out = Vec::with_capacity(N);
    while out.len() < N {
        let len = v6_len(&mut rng);
        let hi = (0x2000u128 << 112) | (u128::from(rng.next()) << 48 >> 3);
        let net = Ipv6Net::new(Ipv6Addr::from(hi), len).unwrap().trunc();
        if seen.insert(net) {
            out.push(Nlri::new(net));
        }
    }
    out
}

/// The share of each range of lengths in `prefixes`, for the record: the
/// realized distribution (the requested one, less the short lengths that run
/// out of distinct prefixes).
fn shares<P: Prefix>(prefixes: &[Nlri<P>], ranges: &[(u8, u8)]) -> String {
    let mut hist = [0usize; 129];
    for n in prefixes {
        hist[usize::from(n.prefix.bits())] += 1;
    }
    ranges
        .iter()
        .map(|&(lo, hi)| {
            let n: usize = hist[usize::from(lo)..=usize::from(hi)].iter().sum();
            let pct = 100.0 * n as f64 / prefixes.len() as f64;
            if lo == hi {
                format!("/{lo} {pct:.1}%")
            } else {
                format!("/{lo}../{hi} {pct:.1}%")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The attribute set every route shares.
fn attributes() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence([64_500, 3356, 15_169])),
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        med: Some(100),
        communities: vec![
            Community::new(64_500, 100),
            Community::new(64_500, 200),
            Community::new(3356, 2),
            Community::NO_EXPORT,
        ],
        ..PathAttributes::default()
    }
}

fn v6_next_hop() -> NextHop {
    NextHop::V6 {
        global: "2001:db8::1".parse().unwrap(),
        link_local: Some("fe80::1".parse().unwrap()),
    }
}

fn add_path_ctx() -> Context {
    Context {
        add_path: AddPathFamilies::ALL,
        ..Context::MODERN
    }
}

fn extended_ctx() -> Context {
    Context {
        extended_message: true,
        ..Context::MODERN
    }
}

/// Packs `prefixes` into back-to-back UPDATEs under `ctx`; prints what it made.
fn pack<P: Prefix>(
    name: &str,
    ctx: &Context,
    next_hop: Option<&NextHop>,
    prefixes: &[Nlri<P>],
) -> BytesMut {
    let mut out = BytesMut::new();
    let messages = UpdatePacker::new(ctx)
        .announce(&attributes(), next_hop, prefixes, &mut out)
        .unwrap();
    eprintln!(
        "{name}: {} octets in {messages} UPDATEs, {:.0} prefixes each",
        out.len(),
        prefixes.len() as f64 / messages as f64
    );
    out
}

fn framer(ctx: &Context) -> Framer {
    let mut f = Framer::new();
    f.set_max_len(ctx.max_message_len());
    f
}

/// Frames and decodes every UPDATE with `Message::decode`; returns the number
/// of prefixes and the sum of their lengths.
fn decode_messages(stream: &mut BytesMut, ctx: &Context) -> (usize, u64) {
    let mut framer = framer(ctx);
    let (mut count, mut bits) = (0, 0u64);
    while let Some(frame) = framer.next_frame(stream).unwrap() {
        let Message::Update(u) = Message::decode(&frame, ctx).unwrap() else {
            unreachable!("only UPDATEs in the stream");
        };
        if let Some(MpReach {
            nlri: Prefixes::V6(v6),
            ..
        }) = &u.mp_reach
        {
            count += v6.len();
            bits += v6
                .iter()
                .map(|n| u64::from(n.prefix.prefix_len()))
                .sum::<u64>();
        }
        count += u.nlri.len();
        bits += u
            .nlri
            .iter()
            .map(|n| u64::from(n.prefix.prefix_len()))
            .sum::<u64>();
    }
    (count, bits)
}

/// The same through `RawUpdate::parse` and `validate`.
fn decode_raw(stream: &mut BytesMut, ctx: &Context) -> (usize, u64) {
    let mut framer = framer(ctx);
    let (mut count, mut bits) = (0, 0u64);
    while let Some(frame) = framer.next_frame(stream).unwrap() {
        let u = RawUpdate::parse(&frame[HEADER_LEN..])
            .unwrap()
            .validate(ctx)
            .unwrap();
        count += u.nlri.len();
        bits += u
            .nlri
            .iter()
            .map(|n| u64::from(n.prefix.prefix_len()))
            .sum::<u64>();
    }
    (count, bits)
}

/// Counts the prefixes a stream of withdrawals carries.
fn decode_withdrawn(stream: &mut BytesMut, ctx: &Context) -> usize {
    let mut framer = framer(ctx);
    let mut count = 0;
    while let Some(frame) = framer.next_frame(stream).unwrap() {
        let Message::Update(u) = Message::decode(&frame, ctx).unwrap() else {
            unreachable!("only UPDATEs in the stream");
        };
        count += u.withdrawn.len();
    }
    count
}

fn benches(c: &mut Criterion) {
    let v4 = v4_prefixes(0x9e37_79b9_7f4a_7c15);
    let v4_ids: Vec<_> = v4
        .iter()
        .enumerate()
        .map(|(i, n)| Nlri::with_path_id(n.prefix, 1 + (i % 4) as u32))
        .collect();
    let v6 = v6_prefixes(0xd1b5_4a32_d192_ed03);
    eprintln!(
        "IPv4 lengths: {}",
        shares(
            &v4,
            &[(24, 24), (23, 23), (22, 22), (19, 21), (16, 18), (8, 15)]
        )
    );
    eprintln!(
        "IPv6 lengths: {}",
        shares(&v6, &[(48, 48), (49, 55), (56, 56), (57, 63), (64, 64)])
    );
    let modern = Context::MODERN;
    let add_path = add_path_ctx();
    let extended = extended_ctx();
    let nh6 = v6_next_hop();

    let s_modern = pack("IPv4", &modern, None, &v4);
    let s_add_path = pack("IPv4 ADD-PATH", &add_path, None, &v4_ids);
    let s_extended = pack("IPv4 extended", &extended, None, &v4);
    let s_v6 = pack("IPv6", &modern, Some(&nh6), &v6);

    type Decode = fn(&mut BytesMut, &Context) -> (usize, u64);
    let cases: [(&str, &str, &BytesMut, &Context, Decode); 5] = [
        ("decode", "1M-ipv4", &s_modern, &modern, decode_messages),
        ("decode-raw", "1M-ipv4", &s_modern, &modern, decode_raw),
        (
            "decode",
            "1M-ipv4-addpath",
            &s_add_path,
            &add_path,
            decode_messages,
        ),
        (
            "decode",
            "1M-ipv4-ext65535",
            &s_extended,
            &extended,
            decode_messages,
        ),
        ("decode", "1M-ipv6-mp", &s_v6, &modern, decode_messages),
    ];
    for (group, id, stream, ctx, f) in cases {
        // Check once, outside the measurement, that every prefix comes back.
        assert_eq!(f(&mut stream.clone(), ctx).0, N, "{group}/{id}");
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(N as u64));
        g.bench_function(id, |b| {
            // The stream is consumed by framing: a fresh copy per iteration,
            // made and dropped outside the timed part.
            b.iter_batched_ref(
                || stream.clone(),
                |s| black_box(f(s, ctx)),
                BatchSize::LargeInput,
            )
        });
        g.finish();
    }

    let packer = UpdatePacker::new(&modern);
    let attrs = attributes();
    let mut out = BytesMut::with_capacity(2 * s_modern.len());

    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("1M-ipv4", |b| {
        b.iter(|| {
            out.clear();
            black_box(packer.announce(&attrs, None, &v4, &mut out).unwrap())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("withdraw");
    g.throughput(Throughput::Elements(N as u64));
    out.clear();
    packer.withdraw(&v4, &mut out).unwrap();
    assert_eq!(decode_withdrawn(&mut out.clone(), &modern), N);
    g.bench_function("1M-ipv4", |b| {
        b.iter(|| {
            out.clear();
            black_box(packer.withdraw(&v4, &mut out).unwrap())
        })
    });
    g.finish();
}

criterion_group! {
    name = codec;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = benches
}
criterion_main!(codec);
