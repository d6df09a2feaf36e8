//! Regression guards for the RIB and export packing (issue [8/8]): inserting
//! 100k new prefixes, re-ranking 100k prefixes that gain a better path, and
//! packing 100k prefixes of one attribute set into UPDATEs.
//!
//! `cargo bench -p bgp-core --bench rib`; one criterion element is one prefix.

// A failed expectation in a bench setup is a panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use bgp_core::rib::{BestPathConfig, PeerMeta, Rib, RouteAttrs, SourceKind};
use bgp_core::wire::{AsPath, Context, NextHop, Nlri, Origin, PathAttributes, UpdatePacker};
use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ipnet::Ipv4Net;

const N: u32 = 100_000;

fn prefixes() -> Vec<Nlri<Ipv4Net>> {
    (0..N)
        .map(|i| Nlri::new(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap()))
        .collect()
}

fn meta(last: u8) -> PeerMeta {
    PeerMeta {
        address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)),
        router_id: Ipv4Addr::new(192, 0, 2, last),
        kind: SourceKind::External,
    }
}

fn attrs(path: &[u32]) -> RouteAttrs {
    RouteAttrs {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(path.iter().copied())),
            ..Default::default()
        },
        next_hop: Some(NextHop::V4(Ipv4Addr::new(10, 0, 0, 9))),
    }
}

fn benches(c: &mut Criterion) {
    let all = prefixes();
    let mut g = c.benchmark_group("rib");
    g.throughput(Throughput::Elements(u64::from(N)));
    g.sample_size(20);

    g.bench_function("insert-100k", |b| {
        b.iter_batched(
            || {
                let mut rib = Rib::new(BestPathConfig::default(), meta(1));
                rib.report_paths(false);
                let peer = rib.add_peer(meta(2));
                let a = rib.intern(attrs(&[65002, 65010]));
                (rib, peer, a)
            },
            |(mut rib, peer, a)| {
                let mut changes = Vec::with_capacity(all.len());
                rib.announce(peer, &a, &all, &mut changes);
                black_box(changes.len());
                rib
            },
            BatchSize::LargeInput,
        )
    });

    // Every prefix has a path; a second neighbor brings a shorter one, so
    // each prefix is ranked again and its best path changes.
    g.bench_function("best-path-100k", |b| {
        b.iter_batched(
            || {
                let mut rib = Rib::new(BestPathConfig::default(), meta(1));
                rib.report_paths(false);
                let first = rib.add_peer(meta(2));
                let second = rib.add_peer(meta(3));
                let long = rib.intern(attrs(&[65002, 65010, 65020]));
                let short = rib.intern(attrs(&[65003, 65020]));
                rib.announce(first, &long, &all, &mut Vec::new());
                (rib, second, short)
            },
            |(mut rib, second, short)| {
                let mut changes = Vec::with_capacity(all.len());
                rib.announce(second, &short, &all, &mut changes);
                assert_eq!(changes.len(), all.len());
                rib
            },
            BatchSize::LargeInput,
        )
    });

    g.bench_function("export-pack-100k", |b| {
        let ctx = Context {
            four_octet_as: true,
            ..Context::LEGACY
        };
        let packer = UpdatePacker::new(&ctx);
        let a = Arc::new(attrs(&[65000, 65002]));
        let mut out = BytesMut::with_capacity(1 << 20);
        b.iter(|| {
            out.clear();
            let n = packer
                .announce(&a.attributes, None, &all, &mut out)
                .unwrap();
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(rib, benches);
criterion_main!(rib);
