//! Round-trip properties of the wire codec: `decode(encode(x)) == x` for every
//! message type, every capability and every path attribute, under the contexts a
//! session can negotiate (2- or 4-octet AS numbers, ADD-PATH, extended messages,
//! internal or unknown peer).
//!
//! Every message goes the whole way: `Message::encode`, then `Framer::next_frame`,
//! then `Message::decode`. Explicit tests at the end show the same bytes reading
//! differently under different contexts.
//!
//! Set `PROPTEST_CASES` to run more (or fewer) than 256 cases per property.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::{Ipv4Addr, Ipv6Addr};

use bgp_core::wire::{
    AS_TRANS, AddPathFamilies, AddPathFamily, AddPathMode, Afi, AfiSafi, Aggregator, AsPath,
    Capability, Community, Context, DecodeError, EncodeError, ExtCommunity, ExtendedNextHop,
    Framer, GracefulRestart, GracefulRestartFamily, HEADER_LEN, HeaderError, LargeCommunity,
    LlgrFamily, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN, Message, MpReach, MpUnreach, NextHop,
    Nlri, Notification, Open, Origin, ParamLayout, PathAttributes, PeerKind, Prefixes,
    RawAttribute, RawUpdate, Role, RouteRefresh, RouteRefreshSubtype, Safi, Segment, SegmentType,
    Update, UpdatePacker, capability_code, error_code, error_subcode, flags, type_code, type_name,
};
use bytes::{Bytes, BytesMut};
use ipnet::{Ipv4Net, Ipv6Net};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseError;

// ---------------------------------------------------------------------------
// Contexts
// ---------------------------------------------------------------------------

/// 2-octet AS numbers: AS_TRANS plus AS4_PATH / AS4_AGGREGATOR on the wire.
const LEGACY: Context = Context::LEGACY;
/// 4-octet AS numbers.
const MODERN: Context = Context::MODERN;
/// Path identifiers on IPv4 and IPv6 unicast NLRI.
const ADD_PATH: Context = Context {
    add_path: AddPathFamilies::ALL,
    ..Context::MODERN
};
/// UPDATEs of up to 65535 octets, IPv4 routes with IPv6 next hops (RFC 8950).
const EXTENDED: Context = Context {
    extended_message: true,
    extended_next_hop: true,
    ..Context::MODERN
};
/// An iBGP peer: LOCAL_PREF becomes mandatory in announcements.
const INTERNAL: Context = Context {
    peer: PeerKind::Internal,
    ..Context::MODERN
};
/// Everything at once, on a 2-octet session.
const LEGACY_EVERYTHING: Context = Context {
    four_octet_as: false,
    extended_message: true,
    add_path: AddPathFamilies::ALL,
    peer: PeerKind::Unknown,
    extended_next_hop: true,
};

const ALL_CONTEXTS: [Context; 6] = [
    LEGACY,
    MODERN,
    ADD_PATH,
    EXTENDED,
    INTERNAL,
    LEGACY_EVERYTHING,
];

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig::with_cases(cases)
}

// ---------------------------------------------------------------------------
// Helpers: the trip over the wire
// ---------------------------------------------------------------------------

fn fail<E: Debug>(what: &'static str) -> impl Fn(E) -> TestCaseError {
    move |e| TestCaseError::fail(format!("{what}: {e:?}"))
}

/// A framer that accepts what `ctx` allows.
fn framer_for(ctx: &Context) -> Framer {
    let mut framer = Framer::new();
    framer.set_max_len(ctx.max_message_len());
    framer
}

/// Encodes `msg` under `ctx`, takes it off the "wire" with a [`Framer`] and decodes
/// it. A message that does not fit the context is rejected (the case does not
/// count), after checking that `encode` said so properly.
fn through_the_wire(msg: &Message, ctx: &Context) -> Result<(Bytes, Message), TestCaseError> {
    let mut wire = BytesMut::new();
    match msg.encode(ctx, &mut wire) {
        Ok(()) => {}
        Err(EncodeError::TooLong { len, max }) => {
            prop_assert!(len > max, "TooLong with len {} <= max {}", len, max);
            prop_assert!(
                wire.is_empty(),
                "a failed encode must leave the buffer as it was"
            );
            return Err(TestCaseError::reject(
                "message longer than the context allows",
            ));
        }
        Err(e) => return Err(TestCaseError::fail(format!("encode: {e}"))),
    }
    let encoded_len = wire.len();
    prop_assert!(encoded_len <= ctx.max_message_len());
    let frame = framer_for(ctx)
        .next_frame(&mut wire)
        .map_err(fail("framer"))?
        .ok_or_else(|| TestCaseError::fail("framer wants more than the whole message"))?;
    prop_assert_eq!(frame.len(), encoded_len);
    prop_assert!(wire.is_empty());
    let decoded = Message::decode(&frame, ctx).map_err(fail("decode"))?;
    Ok((frame, decoded))
}

/// `decode(encode(msg)) == msg` under `ctx`, through the framer.
fn assert_roundtrip(msg: &Message, ctx: &Context) -> Result<(), TestCaseError> {
    let (_, decoded) = through_the_wire(msg, ctx)?;
    prop_assert_eq!(&decoded, msg);
    Ok(())
}

/// The path attributes of an encoded UPDATE, as (flags, type code, value).
fn attributes_of(frame: &[u8]) -> Vec<(u8, u8, Vec<u8>)> {
    let raw = RawUpdate::parse(&frame[HEADER_LEN..]).expect("an UPDATE body");
    let mut rest = raw.attributes;
    let mut out = Vec::new();
    while let [f, code, tail @ ..] = rest {
        let (len, tail) = if f & flags::EXTENDED_LENGTH != 0 {
            (
                usize::from(u16::from_be_bytes([tail[0], tail[1]])),
                &tail[2..],
            )
        } else {
            (usize::from(tail[0]), &tail[1..])
        };
        out.push((*f, *code, tail[..len].to_vec()));
        rest = &tail[len..];
    }
    out
}

/// A whole UPDATE message from its three raw fields.
fn raw_update(withdrawn: &[u8], attributes: &[u8], nlri: &[u8]) -> Vec<u8> {
    let len = HEADER_LEN + 2 + withdrawn.len() + 2 + attributes.len() + nlri.len();
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&(len as u16).to_be_bytes());
    m.push(2);
    m.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    m.extend_from_slice(withdrawn);
    m.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
    m.extend_from_slice(attributes);
    m.extend_from_slice(nlri);
    m
}

fn decode_update(frame: &[u8], ctx: &Context) -> Update {
    match Message::decode(frame, ctx) {
        Ok(Message::Update(u)) => u,
        other => panic!("expected an UPDATE, got {other:?}"),
    }
}

/// Encoded size of one NLRI, as RFC 4271 / RFC 7911 lay it out.
fn nlri_len(bits: u8, add_path: bool) -> usize {
    1 + usize::from(bits).div_ceil(8) + if add_path { 4 } else { 0 }
}

// ---------------------------------------------------------------------------
// Strategies: addresses, prefixes, families
// ---------------------------------------------------------------------------

/// A NEXT_HOP the codec accepts: not 0.0.0.0, not multicast, not 240/4 and above.
fn unicast_v4() -> impl Strategy<Value = Ipv4Addr> {
    (0u8..=223, any::<[u8; 3]>())
        .prop_map(|(a, [b, c, d])| Ipv4Addr::new(a, b, c, d))
        .prop_filter("0.0.0.0", |a| !a.is_unspecified())
}

fn link_local_v6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u64>().prop_map(|iid| Ipv6Addr::from((0xfe80u128 << 112) | u128::from(iid)))
}

/// Prefix lengths: mostly the usual ones, sometimes anything up to `max`.
fn prefix_len(max: u8, usual: std::ops::RangeInclusive<u8>) -> impl Strategy<Value = u8> {
    prop_oneof![3 => usual, 1 => 0..=max]
}

fn v4_prefix() -> impl Strategy<Value = Ipv4Net> {
    (any::<Ipv4Addr>(), prefix_len(32, 8..=24))
        .prop_map(|(a, len)| Ipv4Net::new(a, len).unwrap().trunc())
}

fn v6_prefix() -> impl Strategy<Value = Ipv6Net> {
    (any::<Ipv6Addr>(), prefix_len(128, 16..=64))
        .prop_map(|(a, len)| Ipv6Net::new(a, len).unwrap().trunc())
}

/// NLRI of `family` with a path identifier exactly when `ctx` has ADD-PATH for it.
fn nlri_list<P: Debug + Clone + 'static>(
    prefix: impl Strategy<Value = P>,
    ctx: Context,
    family: AfiSafi,
    len: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = Vec<Nlri<P>>> {
    let add_path = ctx.add_path.contains(family);
    vec((prefix, any::<u32>()), len).prop_map(move |v| {
        v.into_iter()
            .map(|(p, id)| {
                if add_path {
                    Nlri::with_path_id(p, id)
                } else {
                    Nlri::new(p)
                }
            })
            .collect()
    })
}

fn any_family() -> impl Strategy<Value = AfiSafi> {
    prop_oneof![
        select(vec![
            AfiSafi::IPV4_UNICAST,
            AfiSafi::IPV6_UNICAST,
            AfiSafi::new(Afi::IPV4, Safi::MULTICAST),
            AfiSafi::new(Afi::L2VPN, Safi::EVPN),
            AfiSafi::new(Afi::IPV4, Safi::MPLS_VPN),
        ]),
        (any::<u16>(), any::<u8>()).prop_map(|(a, s)| AfiSafi::new(Afi(a), Safi(s))),
    ]
}

/// Families that MP attributes carry as raw bytes.
fn opaque_family() -> impl Strategy<Value = AfiSafi> {
    select(vec![
        AfiSafi::new(Afi::L2VPN, Safi::EVPN),
        AfiSafi::new(Afi::IPV4, Safi::MPLS_VPN),
        AfiSafi::new(Afi(16388), Safi(71)),
    ])
}

fn bytes(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), len).prop_map(Bytes::from)
}

/// A list that is usually empty or short and sometimes long (long enough for the
/// Extended Length attribute form).
fn list<S>(s: S, long: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<S::Value>>
where
    S: Strategy + Clone,
    S::Value: Clone,
{
    prop_oneof![2 => Just(Vec::new()), 4 => vec(s.clone(), 1..=6), 1 => vec(s, long)]
}

// ---------------------------------------------------------------------------
// Strategies: capabilities and OPEN
// ---------------------------------------------------------------------------

/// Codes the codec interprets; `Capability::Unknown` must avoid them.
const KNOWN_CAPABILITIES: [u8; 12] = [
    capability_code::MULTIPROTOCOL,
    capability_code::ROUTE_REFRESH,
    capability_code::EXTENDED_NEXT_HOP,
    capability_code::EXTENDED_MESSAGE,
    capability_code::ROLE,
    capability_code::GRACEFUL_RESTART,
    capability_code::FOUR_OCTET_AS,
    capability_code::ADD_PATH,
    capability_code::ENHANCED_ROUTE_REFRESH,
    capability_code::LONG_LIVED_GRACEFUL_RESTART,
    capability_code::FQDN,
    capability_code::ROUTE_REFRESH_CISCO,
];

fn ascii(max: usize) -> impl Strategy<Value = String> {
    vec(0u8..=127, 0..=max).prop_map(|b| String::from_utf8(b).unwrap())
}

prop_compose! {
    fn graceful_restart()(
        restart_state in any::<bool>(),
        notification in any::<bool>(),
        restart_time in 0u16..4096,
        families in vec(
            (any_family(), any::<bool>())
                .prop_map(|(family, forwarding)| GracefulRestartFamily { family, forwarding }),
            0..=8,
        ),
    ) -> GracefulRestart {
        GracefulRestart { restart_state, notification, restart_time, families }
    }
}

fn llgr_family() -> impl Strategy<Value = LlgrFamily> {
    (any_family(), any::<bool>(), 0u32..(1 << 24)).prop_map(|(family, forwarding, stale_time)| {
        LlgrFamily {
            family,
            forwarding,
            stale_time,
        }
    })
}

fn extended_next_hop() -> impl Strategy<Value = ExtendedNextHop> {
    (any::<u16>(), any::<u16>(), any::<u16>()).prop_map(|(a, s, n)| ExtendedNextHop {
        nlri_afi: Afi(a),
        nlri_safi: s,
        next_hop_afi: Afi(n),
    })
}

fn add_path_family() -> impl Strategy<Value = AddPathFamily> {
    (
        any_family(),
        select(vec![
            AddPathMode::Receive,
            AddPathMode::Send,
            AddPathMode::Both,
        ]),
    )
        .prop_map(|(family, mode)| AddPathFamily { family, mode })
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        select(vec![
            Role::Provider,
            Role::RouteServer,
            Role::RouteServerClient,
            Role::Customer,
            Role::Peer,
        ]),
        (5u8..=255).prop_map(Role::Other),
    ]
}

/// Every variant of [`Capability`].
fn capability() -> impl Strategy<Value = Capability> {
    prop_oneof![
        any_family().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        Just(Capability::RouteRefreshCisco),
        Just(Capability::EnhancedRouteRefresh),
        any::<u32>().prop_map(Capability::FourOctetAs),
        graceful_restart().prop_map(Capability::GracefulRestart),
        vec(llgr_family(), 0..=8).prop_map(Capability::LongLivedGracefulRestart),
        vec(extended_next_hop(), 0..=8).prop_map(Capability::ExtendedNextHop),
        vec(add_path_family(), 0..=8).prop_map(Capability::AddPath),
        Just(Capability::ExtendedMessage),
        (ascii(63), ascii(63)).prop_map(|(hostname, domain)| Capability::Fqdn { hostname, domain }),
        role().prop_map(Capability::Role),
        (
            any::<u8>().prop_filter("known capability code", |c| !KNOWN_CAPABILITIES.contains(c)),
            bytes(0..=32),
        )
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

/// The layout the decoder reports for `n` capabilities cut at `cuts`: the canonical
/// form, so that round trips compare equal.
fn layout(kind: u8, n: usize, cuts: &[bool]) -> ParamLayout {
    match kind {
        1 if n >= 2 => ParamLayout::OnePerParameter,
        2 if n >= 2 => {
            let mut groups = vec![1];
            for &cut in &cuts[..n - 1] {
                if cut {
                    groups.push(1);
                } else {
                    *groups.last_mut().unwrap() += 1;
                }
            }
            if groups.len() == 1 {
                ParamLayout::Single
            } else if groups.iter().all(|&g| g == 1) {
                ParamLayout::OnePerParameter
            } else {
                ParamLayout::Grouped(groups)
            }
        }
        _ => ParamLayout::Single,
    }
}

prop_compose! {
    /// Up to 12 capabilities: often more than the 255 octets of classic optional
    /// parameters, so the RFC 9072 form is exercised too, while staying well
    /// under 4096 octets.
    fn open()(
        my_as in any::<u16>(),
        hold_time in prop_oneof![Just(0u16), 3u16..],
        bgp_id in (1u32..).prop_map(Ipv4Addr::from),
        capabilities in vec(capability(), 0..=12),
        kind in 0u8..3,
        cuts in vec(any::<bool>(), 12),
    ) -> Open {
        let layout = layout(kind, capabilities.len(), &cuts);
        Open { my_as, hold_time, bgp_id, capabilities, layout }
    }
}

// ---------------------------------------------------------------------------
// Strategies: NOTIFICATION, ROUTE-REFRESH
// ---------------------------------------------------------------------------

prop_compose! {
    fn notification()(
        code in any::<u8>(),
        subcode in any::<u8>(),
        // Up to the largest a 4096-octet message holds.
        data in prop_oneof![8 => bytes(0..=64), 1 => bytes(0..=MAX_MESSAGE_LEN - HEADER_LEN - 2)],
    ) -> Notification {
        Notification::with_data(code, subcode, data)
    }
}

fn route_refresh() -> impl Strategy<Value = RouteRefresh> {
    let subtype = prop_oneof![
        Just(RouteRefreshSubtype::Request),
        Just(RouteRefreshSubtype::BeginningOfRefresh),
        Just(RouteRefreshSubtype::EndOfRefresh),
        (3u8..=255).prop_map(RouteRefreshSubtype::Other),
    ];
    (any_family(), subtype).prop_map(|(family, subtype)| RouteRefresh { family, subtype })
}

// ---------------------------------------------------------------------------
// Strategies: path attributes and UPDATE
// ---------------------------------------------------------------------------

fn origin() -> impl Strategy<Value = Origin> {
    select(vec![Origin::Igp, Origin::Egp, Origin::Incomplete])
}

/// Non-zero AS numbers, 2- and 4-octet, with AS_TRANS and the extremes.
fn asn() -> BoxedStrategy<u32> {
    prop_oneof![
        4 => 1u32..=0xffff,
        4 => 0x1_0000u32..=u32::MAX,
        1 => Just(u32::from(AS_TRANS)),
        1 => select(vec![1, 0xffff, 0x1_0000, u32::MAX]),
    ]
    .boxed()
}

fn asn4() -> impl Strategy<Value = u32> {
    0x1_0000u32..=u32::MAX
}

/// 1 to 255 AS numbers: mostly a few, sometimes up to the segment maximum.
fn segment(
    kinds: Vec<SegmentType>,
    asn: impl Strategy<Value = u32> + Clone,
) -> impl Strategy<Value = Segment> {
    let asns = prop_oneof![8 => vec(asn.clone(), 1..=8), 1 => vec(asn, 1..=255)];
    (select(kinds), asns).prop_map(|(kind, asns)| Segment { kind, asns })
}

/// AS paths with confederation segments only at the front. Under a 2-octet
/// context confederation members have 2-octet AS numbers: AS4_PATH never carries
/// confederation segments (RFC 6793 section 3), so a 4-octet member AS could not
/// cross such a session.
fn as_path(ctx: Context) -> impl Strategy<Value = AsPath> {
    let confed_asn = if ctx.four_octet_as {
        asn().boxed()
    } else {
        (1u32..=0xffff).boxed()
    };
    let confed = vec(
        segment(
            vec![SegmentType::ConfedSequence, SegmentType::ConfedSet],
            confed_asn,
        ),
        0..=2,
    );
    let plain = vec(
        segment(vec![SegmentType::Sequence, SegmentType::Set], asn()),
        0..=3,
    );
    (prop_oneof![1 => confed, 4 => Just(Vec::new())], plain).prop_map(|(mut segments, plain)| {
        segments.extend(plain);
        AsPath { segments }
    })
}

fn aggregator() -> impl Strategy<Value = Aggregator> {
    (asn(), any::<Ipv4Addr>()).prop_map(|(asn, address)| Aggregator { asn, address })
}

/// Type codes the codec does not interpret (found by name, so the list follows
/// the codec).
fn unknown_type_code() -> impl Strategy<Value = u8> {
    let codes: Vec<u8> = (1..=255u8).filter(|&c| type_name(c) == "unknown").collect();
    select(codes)
}

/// Optional transitive attributes the codec does not know, as it stores them:
/// Partial set, sorted by type code, each type once.
fn unknown_attributes() -> impl Strategy<Value = Vec<RawAttribute>> {
    let value = prop_oneof![6 => bytes(0..=16), 1 => bytes(0..=300)];
    prop_oneof![2 => Just(BTreeMap::new()), 1 => btree_map(unknown_type_code(), value, 1..=4)]
        .prop_map(|m| {
            m.into_iter()
                .map(|(type_code, value)| RawAttribute {
                    flags: flags::OPTIONAL | flags::TRANSITIVE | flags::PARTIAL,
                    type_code,
                    value,
                })
                .collect()
        })
}

prop_compose! {
    /// Every field of [`PathAttributes`], each present or not.
    fn path_attributes(ctx: Context)(
        origin in option::of(origin()),
        as_path in option::of(as_path(ctx)),
        next_hop in option::of(unicast_v4()),
        med in option::of(any::<u32>()),
        local_pref in option::of(any::<u32>()),
        atomic_aggregate in any::<bool>(),
        aggregator in option::of(aggregator()),
        communities in list(any::<u32>().prop_map(Community), 60..=90),
        originator_id in option::of(any::<Ipv4Addr>()),
        cluster_list in list(any::<Ipv4Addr>(), 60..=70),
        (ext_communities, large_communities, otc, unknown) in (
            list(any::<[u8; 8]>().prop_map(ExtCommunity), 30..=40),
            list(
                (any::<u32>(), any::<u32>(), any::<u32>())
                    .prop_map(|(g, a, b)| LargeCommunity::new(g, a, b)),
                20..=25,
            ),
            option::of(any::<u32>()),
            unknown_attributes(),
        ),
    ) -> PathAttributes {
        PathAttributes {
            origin, as_path, next_hop, med, local_pref, atomic_aggregate, aggregator,
            communities, originator_id, cluster_list, ext_communities, large_communities,
            otc, unknown,
        }
    }
}

/// How many prefixes an UPDATE may carry under `ctx`, per field: few enough to fit
/// 4096 octets nearly always, many more with extended messages.
fn budget(ctx: Context) -> (usize, usize) {
    if ctx.extended_message {
        (1000, 500)
    } else {
        (100, 50)
    }
}

fn next_hop_v6() -> impl Strategy<Value = NextHop> {
    (any::<Ipv6Addr>(), option::of(link_local_v6()))
        .prop_map(|(global, link_local)| NextHop::V6 { global, link_local })
}

/// MP_REACH_NLRI: IPv4 (IPv4 next hop, or IPv6 when the context has extended
/// next hop), IPv6 (IPv6 next hop, with or without link-local), unicast or
/// multicast, or an opaque family.
fn mp_reach(ctx: Context) -> impl Strategy<Value = MpReach> {
    let (_, n) = budget(ctx);
    let v4_next_hop = if ctx.extended_next_hop {
        prop_oneof![unicast_v4().prop_map(NextHop::V4), next_hop_v6()].boxed()
    } else {
        unicast_v4().prop_map(NextHop::V4).boxed()
    };
    let v4 = select(vec![
        AfiSafi::IPV4_UNICAST,
        AfiSafi::new(Afi::IPV4, Safi::MULTICAST),
    ])
    .prop_flat_map(move |family| {
        (
            Just(family),
            v4_next_hop.clone(),
            nlri_list(v4_prefix(), ctx, family, 0..=n),
        )
    })
    .prop_map(|(family, next_hop, v)| MpReach {
        family,
        next_hop,
        nlri: Prefixes::V4(v),
    });
    let v6 = select(vec![
        AfiSafi::IPV6_UNICAST,
        AfiSafi::new(Afi::IPV6, Safi::MULTICAST),
    ])
    .prop_flat_map(move |family| {
        (
            Just(family),
            next_hop_v6(),
            nlri_list(v6_prefix(), ctx, family, 0..=n),
        )
    })
    .prop_map(|(family, next_hop, v)| MpReach {
        family,
        next_hop,
        nlri: Prefixes::V6(v),
    });
    let opaque =
        (opaque_family(), bytes(0..=32), bytes(0..=64)).prop_map(|(family, nh, nlri)| MpReach {
            family,
            next_hop: NextHop::Other(nh),
            nlri: Prefixes::Other(nlri),
        });
    prop_oneof![4 => v4, 4 => v6, 1 => opaque]
}

/// MP_UNREACH_NLRI, empty ones (End-of-RIB) included.
fn mp_unreach(ctx: Context) -> impl Strategy<Value = MpUnreach> {
    let (_, n) = budget(ctx);
    let v4 = select(vec![
        AfiSafi::IPV4_UNICAST,
        AfiSafi::new(Afi::IPV4, Safi::MULTICAST),
    ])
    .prop_flat_map(move |family| (Just(family), nlri_list(v4_prefix(), ctx, family, 0..=n)))
    .prop_map(|(family, v)| MpUnreach {
        family,
        withdrawn: Prefixes::V4(v),
    });
    let v6 = select(vec![
        AfiSafi::IPV6_UNICAST,
        AfiSafi::new(Afi::IPV6, Safi::MULTICAST),
    ])
    .prop_flat_map(move |family| (Just(family), nlri_list(v6_prefix(), ctx, family, 0..=n)))
    .prop_map(|(family, v)| MpUnreach {
        family,
        withdrawn: Prefixes::V6(v),
    });
    let opaque = (opaque_family(), bytes(0..=64)).prop_map(|(family, b)| MpUnreach {
        family,
        withdrawn: Prefixes::Other(b),
    });
    prop_oneof![4 => v4, 4 => v6, 1 => opaque]
}

/// IPv4 unicast NLRI for the Withdrawn Routes or NLRI field: often none.
fn ipv4_field(ctx: Context) -> impl Strategy<Value = Vec<Nlri<Ipv4Net>>> {
    let (n, _) = budget(ctx);
    prop_oneof![
        1 => Just(Vec::new()),
        2 => nlri_list(v4_prefix(), ctx, AfiSafi::IPV4_UNICAST, 1..=n),
    ]
}

/// An UPDATE that decodes without RFC 7606 errors under `ctx`: one that announces
/// routes has ORIGIN and AS_PATH, NEXT_HOP when the NLRI field is used, and
/// LOCAL_PREF from an internal peer.
fn update(ctx: Context) -> impl Strategy<Value = Update> {
    (
        ipv4_field(ctx),
        ipv4_field(ctx),
        option::weighted(0.4, mp_reach(ctx)),
        option::weighted(0.4, mp_unreach(ctx)),
        path_attributes(ctx),
        (origin(), as_path(ctx), unicast_v4(), any::<u32>()),
    )
        .prop_map(
            move |(withdrawn, nlri, mp_reach, mp_unreach, mut attributes, fallback)| {
                let (origin, as_path, next_hop, local_pref) = fallback;
                if !nlri.is_empty() || mp_reach.is_some() {
                    attributes.origin.get_or_insert(origin);
                    attributes.as_path.get_or_insert(as_path);
                    if !nlri.is_empty() {
                        attributes.next_hop.get_or_insert(next_hop);
                    }
                    if ctx.peer == PeerKind::Internal {
                        attributes.local_pref.get_or_insert(local_pref);
                    }
                }
                Update {
                    withdrawn,
                    attributes,
                    nlri,
                    mp_reach,
                    mp_unreach,
                    errors: Vec::new(),
                }
            },
        )
}

fn message(ctx: Context) -> impl Strategy<Value = Message> {
    prop_oneof![
        open().prop_map(Message::Open),
        update(ctx).prop_map(Message::Update),
        notification().prop_map(Message::Notification),
        Just(Message::Keepalive),
        route_refresh().prop_map(Message::RouteRefresh),
    ]
}

fn any_context() -> impl Strategy<Value = Context> {
    select(ALL_CONTEXTS.to_vec())
}

// ---------------------------------------------------------------------------
// Capabilities
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// `Capability::decode` undoes `Capability::encode`, and `encoded_len` is right.
    #[test]
    fn capability_roundtrip(cap in capability()) {
        let mut b = BytesMut::new();
        cap.encode(&mut b);
        prop_assert_eq!(b.len(), cap.encoded_len());
        prop_assert_eq!(b[0], cap.code());
        prop_assert_eq!(usize::from(b[1]), b.len() - 2);
        prop_assert_eq!(Capability::decode(b[0], &b[2..]).map_err(fail("decode"))?, cap);
    }

    /// Each capability alone in an OPEN, through the wire.
    #[test]
    fn capability_in_open_roundtrip(cap in capability(), ctx in any_context()) {
        let open = Open::new(65001, 90, Ipv4Addr::new(192, 0, 2, 1), vec![cap]);
        assert_roundtrip(&Message::Open(open), &ctx)?;
    }
}

// ---------------------------------------------------------------------------
// OPEN
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// OPEN with any capabilities in any layout, classic or RFC 9072 extended
    /// optional parameters. OPEN does not depend on the context.
    #[test]
    fn open_roundtrip(open in open(), ctx in any_context()) {
        let (frame, decoded) = through_the_wire(&Message::Open(open.clone()), &ctx)?;
        prop_assert_eq!(decoded, Message::Open(open.clone()));
        // RFC 9072 form exactly when the classic one cannot hold the parameters.
        let groups = match &open.layout {
            ParamLayout::Single => 1,
            ParamLayout::OnePerParameter => open.capabilities.len(),
            ParamLayout::Grouped(g) => g.len(),
        };
        let params = open.capabilities.iter().map(|c| c.encoded_len()).sum::<usize>() + 2 * groups;
        let extended = frame[HEADER_LEN + 9] == 255 && frame[HEADER_LEN + 10] == 255;
        prop_assert_eq!(extended, !open.capabilities.is_empty() && params > 255);
    }
}

// ---------------------------------------------------------------------------
// NOTIFICATION, KEEPALIVE, ROUTE-REFRESH
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn notification_roundtrip(n in notification(), ctx in any_context()) {
        assert_roundtrip(&Message::Notification(n), &ctx)?;
    }

    /// RFC 9003 shutdown communications survive the trip, cut to 255 octets on a
    /// character boundary.
    #[test]
    fn shutdown_communication_roundtrip(
        text in "\\PC{0,100}",
        reset in any::<bool>(),
        ctx in any_context(),
    ) {
        let sub = if reset {
            error_subcode::cease::ADMINISTRATIVE_RESET
        } else {
            error_subcode::cease::ADMINISTRATIVE_SHUTDOWN
        };
        let n = Notification::cease_with_message(sub, &text);
        let (_, decoded) = through_the_wire(&Message::Notification(n.clone()), &ctx)?;
        let Message::Notification(decoded) = decoded else {
            return Err(TestCaseError::fail("not a NOTIFICATION"));
        };
        prop_assert_eq!(&decoded, &n);
        let got = decoded.shutdown_message().unwrap_or_default();
        prop_assert!(got.len() <= 255 && text.starts_with(got));
        prop_assert!(got.len() == text.len() || text.len() > 255 && got.len() > 251);
    }

    #[test]
    fn max_prefixes_roundtrip(family in any_family(), limit in any::<u32>(), ctx in any_context()) {
        let n = Notification::max_prefixes(family, limit);
        let (_, decoded) = through_the_wire(&Message::Notification(n.clone()), &ctx)?;
        let Message::Notification(decoded) = decoded else {
            return Err(TestCaseError::fail("not a NOTIFICATION"));
        };
        prop_assert_eq!(decoded.max_prefixes_data(), Some((family, limit)));
    }

    #[test]
    fn route_refresh_roundtrip(rr in route_refresh(), ctx in any_context()) {
        assert_roundtrip(&Message::RouteRefresh(rr), &ctx)?;
    }
}

#[test]
fn keepalive_roundtrip() {
    for ctx in ALL_CONTEXTS {
        let mut wire = Message::Keepalive.to_bytes(&ctx).unwrap();
        assert_eq!(wire.len(), HEADER_LEN);
        let frame = framer_for(&ctx).next_frame(&mut wire).unwrap().unwrap();
        assert_eq!(Message::decode(&frame, &ctx).unwrap(), Message::Keepalive);
    }
}

// ---------------------------------------------------------------------------
// UPDATE
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// 2-octet AS numbers: 4-octet ones travel as AS_TRANS plus AS4_PATH and
    /// AS4_AGGREGATOR, and come back merged.
    #[test]
    fn update_roundtrip_legacy(u in update(LEGACY)) {
        assert_roundtrip(&Message::Update(u), &LEGACY)?;
    }

    #[test]
    fn update_roundtrip_modern(u in update(MODERN)) {
        assert_roundtrip(&Message::Update(u), &MODERN)?;
    }

    #[test]
    fn update_roundtrip_add_path(u in update(ADD_PATH)) {
        assert_roundtrip(&Message::Update(u), &ADD_PATH)?;
    }

    #[test]
    fn update_roundtrip_extended_message(u in update(EXTENDED)) {
        assert_roundtrip(&Message::Update(u), &EXTENDED)?;
    }

    /// From an iBGP peer LOCAL_PREF is mandatory in announcements.
    #[test]
    fn update_roundtrip_internal_peer(u in update(INTERNAL)) {
        assert_roundtrip(&Message::Update(u), &INTERNAL)?;
    }

    #[test]
    fn update_roundtrip_legacy_add_path_extended(u in update(LEGACY_EVERYTHING)) {
        assert_roundtrip(&Message::Update(u), &LEGACY_EVERYTHING)?;
    }

    /// With a 4-octet AS number in the path, a 2-octet session carries AS4_PATH
    /// (and AS4_AGGREGATOR for a 4-octet aggregator) and a 2-octet AS_PATH; a
    /// 4-octet session carries neither. Both give the original path back.
    #[test]
    fn as4_attributes_only_on_two_octet_sessions(
        path in as_path(LEGACY),
        big in asn4(),
        at in any::<prop::sample::Index>(),
        aggregator in option::of(aggregator()),
        nlri in nlri_list(v4_prefix(), MODERN, AfiSafi::IPV4_UNICAST, 1..=4),
    ) {
        // Put a 4-octet AS number somewhere outside the confederation segments.
        let mut path = path;
        let plain: Vec<usize> = (0..path.segments.len())
            .filter(|&i| !path.segments[i].kind.is_confed())
            .collect();
        if plain.is_empty() {
            path.segments.push(Segment { kind: SegmentType::Sequence, asns: vec![big] });
        } else {
            let seg = &mut path.segments[plain[at.index(plain.len())]];
            let i = at.index(seg.asns.len());
            seg.asns[i] = big;
        }
        prop_assert!(path.needs_as4());
        let u = Update {
            attributes: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(path.clone()),
                next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
                aggregator,
                ..PathAttributes::default()
            },
            nlri,
            ..Update::default()
        };
        let msg = Message::Update(u);
        let width = |four: usize| -> usize {
            path.segments.iter().map(|s| 2 + four * s.asns.len()).sum()
        };

        let (frame, decoded) = through_the_wire(&msg, &LEGACY)?;
        prop_assert_eq!(&decoded, &msg);
        let attrs = attributes_of(&frame);
        let codes: Vec<u8> = attrs.iter().map(|a| a.1).collect();
        prop_assert!(codes.contains(&type_code::AS4_PATH), "no AS4_PATH in {:?}", codes);
        prop_assert_eq!(
            codes.contains(&type_code::AS4_AGGREGATOR),
            aggregator.is_some_and(|a| a.asn > 0xffff)
        );
        let as_path = attrs.iter().find(|a| a.1 == type_code::AS_PATH).unwrap();
        prop_assert_eq!(as_path.2.len(), width(2));
        prop_assert!(as_path.2.windows(2).any(|w| w == &AS_TRANS.to_be_bytes()[..]));

        let (frame, decoded) = through_the_wire(&msg, &MODERN)?;
        prop_assert_eq!(&decoded, &msg);
        let attrs = attributes_of(&frame);
        prop_assert!(!attrs.iter().any(|a| a.1 == type_code::AS4_PATH || a.1 == type_code::AS4_AGGREGATOR));
        let as_path = attrs.iter().find(|a| a.1 == type_code::AS_PATH).unwrap();
        prop_assert_eq!(as_path.2.len(), width(4));
    }

    /// AS4_PATH is written exactly when the path needs it, and only to 2-octet
    /// sessions.
    #[test]
    fn as4_path_exactly_when_needed(u in update(LEGACY)) {
        let msg = Message::Update(u.clone());
        let (frame, _) = through_the_wire(&msg, &LEGACY)?;
        let needs = u.attributes.as_path.as_ref().is_some_and(|p| p.needs_as4());
        let has = attributes_of(&frame).iter().any(|a| a.1 == type_code::AS4_PATH);
        prop_assert_eq!(has, needs);
        let (frame, _) = through_the_wire(&msg, &MODERN)?;
        prop_assert!(!attributes_of(&frame).iter().any(|a| a.1 == type_code::AS4_PATH));
    }
}

// ---------------------------------------------------------------------------
// The framer: a stream of messages in pieces
// ---------------------------------------------------------------------------

fn chunk_size() -> impl Strategy<Value = usize> {
    prop_oneof![1usize..=4, 1usize..=64, 1usize..=5000]
}

proptest! {
    #![proptest_config(config())]

    /// Messages written back to back and read in arbitrary pieces come out whole,
    /// in order, and decode to what was sent.
    #[test]
    fn framer_reassembles_a_chunked_stream(
        (ctx, msgs, chunks) in any_context().prop_flat_map(|ctx| {
            (Just(ctx), vec(message(ctx), 1..=8), vec(chunk_size(), 1..=16))
        }),
    ) {
        let mut stream = BytesMut::new();
        let mut sent = Vec::new();
        for m in msgs {
            // The rare message that does not fit the context is left out.
            if m.encode(&ctx, &mut stream).is_ok() {
                sent.push(m);
            }
        }
        prop_assume!(!sent.is_empty());

        let mut framer = framer_for(&ctx);
        let mut pending = BytesMut::new();
        let mut frames = Vec::new();
        let mut sizes = chunks.iter().cycle();
        let mut pos = 0;
        while pos < stream.len() {
            let n = (*sizes.next().unwrap()).min(stream.len() - pos);
            pending.extend_from_slice(&stream[pos..pos + n]);
            pos += n;
            while let Some(frame) = framer.next_frame(&mut pending).map_err(fail("framer"))? {
                frames.push(frame);
            }
        }
        prop_assert!(pending.is_empty(), "{} octets left over", pending.len());
        prop_assert_eq!(frames.len(), sent.len());
        for (frame, m) in frames.iter().zip(&sent) {
            prop_assert_eq!(&Message::decode(frame, &ctx).map_err(fail("decode"))?, m);
        }
    }
}

// ---------------------------------------------------------------------------
// UpdatePacker
// ---------------------------------------------------------------------------

const PACKER_CONTEXTS: [Context; 5] = [
    MODERN,
    ADD_PATH,
    EXTENDED,
    Context {
        add_path: AddPathFamilies::ALL,
        ..EXTENDED
    },
    LEGACY,
];

prop_compose! {
    /// A modest attribute set that can announce IPv4 routes in the NLRI field.
    fn announce_attributes(ctx: Context)(
        attrs in path_attributes(ctx),
        origin in origin(),
        path in vec(asn(), 0..=6),
        next_hop in unicast_v4(),
    ) -> PathAttributes {
        PathAttributes {
            origin: Some(origin),
            as_path: Some(AsPath::from_sequence(path)),
            next_hop: Some(next_hop),
            communities: attrs.communities.into_iter().take(8).collect(),
            cluster_list: attrs.cluster_list.into_iter().take(4).collect(),
            ext_communities: attrs.ext_communities.into_iter().take(4).collect(),
            large_communities: attrs.large_communities.into_iter().take(4).collect(),
            unknown: attrs.unknown.into_iter().filter(|u| u.value.len() < 32).collect(),
            ..attrs
        }
    }
}

/// Enough prefixes for several messages at either size limit.
fn packer_count(ctx: Context, v6: bool) -> impl Strategy<Value = usize> {
    let many: usize = match (ctx.extended_message, v6) {
        (false, false) => 3000,
        (false, true) => 1000,
        (true, false) => 40000,
        (true, true) => 15000,
    };
    prop_oneof![1 => 0..=20usize, 2 => 0..=many]
}

/// SplitMix64: tens of thousands of prefixes are too slow to generate one proptest
/// value at a time, so the packer property expands them from a seed (shrinking
/// then works on the count and the seed).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A prefix length: usually in `usual`, one time in four anything up to `max`.
    fn prefix_len(&mut self, max: u8, usual: std::ops::RangeInclusive<u8>) -> u8 {
        let r = self.next();
        let (lo, hi) = if r.is_multiple_of(4) {
            (0, max)
        } else {
            (*usual.start(), *usual.end())
        };
        lo + ((r >> 8) % u64::from(hi - lo + 1)) as u8
    }

    fn nlri<P>(&mut self, add_path: bool, prefix: P) -> Nlri<P> {
        if add_path {
            Nlri::with_path_id(prefix, self.next() as u32)
        } else {
            Nlri::new(prefix)
        }
    }

    fn v4(&mut self, n: usize, add_path: bool) -> Vec<Nlri<Ipv4Net>> {
        (0..n)
            .map(|_| {
                let len = self.prefix_len(32, 8..=24);
                let p = Ipv4Net::new(Ipv4Addr::from(self.next() as u32), len).unwrap();
                self.nlri(add_path, p.trunc())
            })
            .collect()
    }

    fn v6(&mut self, n: usize, add_path: bool) -> Vec<Nlri<Ipv6Net>> {
        (0..n)
            .map(|_| {
                let len = self.prefix_len(128, 16..=64);
                let a = (u128::from(self.next()) << 64) | u128::from(self.next());
                let p = Ipv6Net::new(Ipv6Addr::from(a), len).unwrap();
                self.nlri(add_path, p.trunc())
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
struct PackerInput {
    ctx: Context,
    attrs: PathAttributes,
    /// IPv4 prefixes go in MP_REACH_NLRI with this next hop (RFC 8950) when set.
    v4_next_hop: Option<NextHop>,
    v6_next_hop: NextHop,
    v4: Vec<Nlri<Ipv4Net>>,
    v6: Vec<Nlri<Ipv6Net>>,
}

fn packer_input() -> impl Strategy<Value = PackerInput> {
    select(PACKER_CONTEXTS.to_vec()).prop_flat_map(|ctx| {
        (
            announce_attributes(ctx),
            option::weighted(0.25, next_hop_v6()),
            next_hop_v6(),
            packer_count(ctx, false),
            packer_count(ctx, true),
            any::<u64>(),
        )
            .prop_map(move |(attrs, v4_next_hop, v6_next_hop, n4, n6, seed)| {
                let mut rng = SplitMix(seed);
                PackerInput {
                    // IPv4 routes may be packed with an IPv6 next hop.
                    ctx: Context {
                        extended_next_hop: true,
                        ..ctx
                    },
                    attrs,
                    v4_next_hop,
                    v6_next_hop,
                    v4: rng.v4(n4, ctx.add_path.contains(AfiSafi::IPV4_UNICAST)),
                    v6: rng.v6(n6, ctx.add_path.contains(AfiSafi::IPV6_UNICAST)),
                }
            })
    })
}

/// What the decoded UPDATEs of a packer run add up to.
#[derive(Default)]
struct Unpacked {
    v4_announced: Vec<Nlri<Ipv4Net>>,
    v6_announced: Vec<Nlri<Ipv6Net>>,
    v4_withdrawn: Vec<Nlri<Ipv4Net>>,
    v6_withdrawn: Vec<Nlri<Ipv6Net>>,
}

/// Frames `buf` into exactly `count` UPDATEs, each within the limit, full (the
/// next prefix would not have fitted) but for the last, decoding cleanly; hands
/// each to `each`.
fn unpack(
    ctx: &Context,
    buf: &mut BytesMut,
    count: usize,
    mut each: impl FnMut(Update) -> Result<usize, TestCaseError>,
) -> Result<(), TestCaseError> {
    let mut framer = framer_for(ctx);
    let mut frames = Vec::new();
    while let Some(f) = framer.next_frame(buf).map_err(fail("framer"))? {
        prop_assert!(f.len() <= ctx.max_message_len());
        frames.push(f);
    }
    prop_assert!(
        buf.is_empty(),
        "{} octets left after the last frame",
        buf.len()
    );
    prop_assert_eq!(frames.len(), count);
    let mut lens = Vec::new();
    for f in &frames {
        let u = decode_update(f, ctx);
        prop_assert!(u.errors.is_empty(), "RFC 7606 errors: {:?}", u.errors);
        // `each` returns the encoded size of the message's first prefix.
        lens.push((f.len(), each(u)?));
    }
    // Greedy packing: each message but the last had no room for the next prefix.
    for w in lens.windows(2) {
        let ((len, _), (_, next_first)) = (w[0], w[1]);
        prop_assert!(
            len + next_first > ctx.max_message_len(),
            "a message of {} octets had room for the next prefix of {}",
            len,
            next_first
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Announcing and withdrawing IPv4 and IPv6 prefixes: every message fits, decodes
    /// without errors, carries the attributes and next hop given, and together the
    /// messages carry exactly the prefixes given, in order.
    #[test]
    fn packer_packs_every_prefix(input in packer_input()) {
        let PackerInput { ctx, attrs, v4_next_hop, v6_next_hop, v4, v6 } = input;
        let packer = UpdatePacker::new(&ctx);
        let add4 = ctx.add_path.contains(AfiSafi::IPV4_UNICAST);
        let add6 = ctx.add_path.contains(AfiSafi::IPV6_UNICAST);
        let mut mp_attrs = attrs.clone();
        mp_attrs.next_hop = None;
        let mut got = Unpacked::default();

        // IPv4 announcements: NLRI field or MP_REACH_NLRI.
        let mut buf = BytesMut::new();
        let n = packer.announce(&attrs, v4_next_hop.as_ref(), &v4, &mut buf)
            .map_err(fail("announce IPv4"))?;
        unpack(&ctx, &mut buf, n, |u| {
            prop_assert!(u.withdrawn.is_empty() && u.mp_unreach.is_none());
            let first = match (&v4_next_hop, u.mp_reach) {
                (None, None) => {
                    prop_assert_eq!(&u.attributes, &attrs);
                    u.nlri.clone()
                }
                (Some(nh), Some(MpReach { family, next_hop, nlri: Prefixes::V4(v) })) => {
                    prop_assert!(u.nlri.is_empty());
                    prop_assert_eq!(family, AfiSafi::IPV4_UNICAST);
                    prop_assert_eq!(&next_hop, nh);
                    prop_assert_eq!(&u.attributes, &mp_attrs);
                    v
                }
                (_, other) => return Err(TestCaseError::fail(format!("unexpected MP_REACH {other:?}"))),
            };
            prop_assert!(!first.is_empty());
            let len = nlri_len(first[0].prefix.prefix_len(), add4);
            got.v4_announced.extend(first);
            Ok(len)
        })?;

        // IPv6 announcements: MP_REACH_NLRI.
        let n = packer.announce(&attrs, Some(&v6_next_hop), &v6, &mut buf)
            .map_err(fail("announce IPv6"))?;
        unpack(&ctx, &mut buf, n, |u| {
            prop_assert!(u.withdrawn.is_empty() && u.nlri.is_empty() && u.mp_unreach.is_none());
            prop_assert_eq!(&u.attributes, &mp_attrs);
            let Some(MpReach { family, next_hop, nlri: Prefixes::V6(v) }) = u.mp_reach else {
                return Err(TestCaseError::fail(format!("unexpected MP_REACH {:?}", u.mp_reach)));
            };
            prop_assert_eq!(family, AfiSafi::IPV6_UNICAST);
            prop_assert_eq!(&next_hop, &v6_next_hop);
            prop_assert!(!v.is_empty());
            let len = nlri_len(v[0].prefix.prefix_len(), add6);
            got.v6_announced.extend(v);
            Ok(len)
        })?;

        // Withdrawals: Withdrawn Routes field and MP_UNREACH_NLRI.
        let n = packer.withdraw(&v4, &mut buf).map_err(fail("withdraw IPv4"))?;
        unpack(&ctx, &mut buf, n, |u| {
            prop_assert!(u.nlri.is_empty() && u.mp_reach.is_none() && u.mp_unreach.is_none());
            prop_assert_eq!(&u.attributes, &PathAttributes::default());
            prop_assert!(!u.withdrawn.is_empty());
            let len = nlri_len(u.withdrawn[0].prefix.prefix_len(), add4);
            got.v4_withdrawn.extend(u.withdrawn);
            Ok(len)
        })?;
        let n = packer.withdraw(&v6, &mut buf).map_err(fail("withdraw IPv6"))?;
        unpack(&ctx, &mut buf, n, |u| {
            prop_assert!(u.nlri.is_empty() && u.withdrawn.is_empty() && u.mp_reach.is_none());
            prop_assert_eq!(&u.attributes, &PathAttributes::default());
            let Some(MpUnreach { family, withdrawn: Prefixes::V6(v) }) = u.mp_unreach else {
                return Err(TestCaseError::fail(format!("unexpected MP_UNREACH {:?}", u.mp_unreach)));
            };
            prop_assert_eq!(family, AfiSafi::IPV6_UNICAST);
            prop_assert!(!v.is_empty());
            let len = nlri_len(v[0].prefix.prefix_len(), add6);
            got.v6_withdrawn.extend(v);
            Ok(len)
        })?;

        prop_assert_eq!(&got.v4_announced, &v4);
        prop_assert_eq!(&got.v6_announced, &v6);
        prop_assert_eq!(&got.v4_withdrawn, &v4);
        prop_assert_eq!(&got.v6_withdrawn, &v6);
    }
}

// ---------------------------------------------------------------------------
// Same bytes, different contexts
// ---------------------------------------------------------------------------

const ORIGIN_IGP: [u8; 4] = [0x40, 1, 1, 0];
const NEXT_HOP_192_0_2_1: [u8; 7] = [0x40, 3, 4, 192, 0, 2, 1];

/// An AS_PATH whose value parses with 2-octet AS numbers (AS_SEQUENCE 1 2,
/// AS_SEQUENCE 7) and with 4-octet ones (AS_SEQUENCE 65538 33619975).
#[test]
fn as_path_reads_by_as_number_width() {
    let as_path = [0x40, 2, 10, 2, 2, 0, 1, 0, 2, 2, 1, 0, 7];
    let attrs = [&ORIGIN_IGP[..], &as_path, &NEXT_HOP_192_0_2_1].concat();
    let frame = raw_update(&[], &attrs, &[8, 10]);

    let seq = |asns: &[u32]| Segment {
        kind: SegmentType::Sequence,
        asns: asns.to_vec(),
    };
    let legacy = decode_update(&frame, &LEGACY);
    let modern = decode_update(&frame, &MODERN);
    assert!(legacy.errors.is_empty(), "{:?}", legacy.errors);
    assert!(modern.errors.is_empty(), "{:?}", modern.errors);
    assert_eq!(
        legacy.attributes.as_path.as_ref().unwrap().segments,
        vec![seq(&[1, 2]), seq(&[7])]
    );
    assert_eq!(
        modern.attributes.as_path.as_ref().unwrap().segments,
        vec![seq(&[0x0001_0002, 0x0201_0007])]
    );
    // Nothing else differs, and each reading encodes back to the same bytes.
    let without_path = |u: &Update| {
        let mut u = u.clone();
        u.attributes.as_path = None;
        u
    };
    assert_eq!(without_path(&legacy), without_path(&modern));
    assert_eq!(legacy.nlri, vec![Nlri::new("10.0.0.0/8".parse().unwrap())]);
    for (u, ctx) in [(legacy, LEGACY), (modern, MODERN)] {
        assert_eq!(&Message::Update(u).to_bytes(&ctx).unwrap()[..], &frame[..]);
    }
}

/// NLRI octets that parse with and without ADD-PATH path identifiers, in the
/// Withdrawn Routes field, the NLRI field and MP_UNREACH_NLRI (IPv6):
/// `00 00 00 18 0a 00 00` is /0, /0, /0, 10.0.0.0/24 without, and path 24 with
/// 0.0.0.0/10 with.
#[test]
fn nlri_reads_by_add_path() {
    let nlri = [0, 0, 0, 0x18, 0x0a, 0, 0];
    let mut mp_unreach = vec![flags::OPTIONAL, type_code::MP_UNREACH_NLRI, 10, 0, 2, 1];
    mp_unreach.extend_from_slice(&nlri);
    let as_path = [0x40, 2, 0];
    let attrs = [&mp_unreach[..], &ORIGIN_IGP, &as_path, &NEXT_HOP_192_0_2_1].concat();
    let frame = raw_update(&nlri, &attrs, &nlri);

    let plain = decode_update(&frame, &MODERN);
    let add_path = decode_update(&frame, &ADD_PATH);
    assert!(plain.errors.is_empty(), "{:?}", plain.errors);
    assert!(add_path.errors.is_empty(), "{:?}", add_path.errors);

    let v4 = |s: &str| s.parse::<Ipv4Net>().unwrap();
    let v6 = |s: &str| s.parse::<Ipv6Net>().unwrap();
    let plain_v4 = vec![
        Nlri::new(v4("0.0.0.0/0")),
        Nlri::new(v4("0.0.0.0/0")),
        Nlri::new(v4("0.0.0.0/0")),
        Nlri::new(v4("10.0.0.0/24")),
    ];
    let plain_v6 = vec![
        Nlri::new(v6("::/0")),
        Nlri::new(v6("::/0")),
        Nlri::new(v6("::/0")),
        Nlri::new(v6("a00::/24")),
    ];
    assert_eq!(plain.withdrawn, plain_v4);
    assert_eq!(plain.nlri, plain_v4);
    assert_eq!(
        plain.mp_unreach,
        Some(MpUnreach {
            family: AfiSafi::IPV6_UNICAST,
            withdrawn: Prefixes::V6(plain_v6)
        })
    );

    let id_v4 = vec![Nlri::with_path_id(v4("0.0.0.0/10"), 24)];
    assert_eq!(add_path.withdrawn, id_v4);
    assert_eq!(add_path.nlri, id_v4);
    assert_eq!(
        add_path.mp_unreach,
        Some(MpUnreach {
            family: AfiSafi::IPV6_UNICAST,
            withdrawn: Prefixes::V6(vec![Nlri::with_path_id(v6("::/10"), 24)])
        })
    );
    assert_eq!(plain.attributes, add_path.attributes);
    for (u, ctx) in [(plain, MODERN), (add_path, ADD_PATH)] {
        assert_eq!(&Message::Update(u).to_bytes(&ctx).unwrap()[..], &frame[..]);
    }
}

/// An UPDATE over 4096 octets: fine with extended messages (RFC 8654), a Bad
/// Message Length (header error 1/2, the length as data) without, from the framer
/// and from `Message::decode` alike; and `encode` refuses to write it.
#[test]
fn extended_length_update_needs_extended_message() {
    let withdrawn: Vec<Nlri<Ipv4Net>> = (0..1100u32)
        .map(|i| Nlri::new(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 | (i << 8)), 24).unwrap()))
        .collect();
    let msg = Message::Update(Update {
        withdrawn,
        ..Update::default()
    });
    let len = HEADER_LEN + 2 + 1100 * 4 + 2;
    assert!(len > MAX_MESSAGE_LEN && len <= MAX_EXTENDED_MESSAGE_LEN);

    let wire = msg.to_bytes(&EXTENDED).unwrap();
    assert_eq!(wire.len(), len);
    assert_eq!(
        msg.to_bytes(&MODERN).unwrap_err(),
        EncodeError::TooLong {
            len,
            max: MAX_MESSAGE_LEN
        }
    );

    // With extended messages: framed and decoded.
    let mut buf = wire.clone();
    let frame = framer_for(&EXTENDED).next_frame(&mut buf).unwrap().unwrap();
    assert_eq!(Message::decode(&frame, &EXTENDED).unwrap(), msg);

    // Without: the framer and the decoder both answer Bad Message Length.
    let bad = HeaderError::BadMessageLength(len as u16);
    let mut buf = wire.clone();
    assert_eq!(Framer::new().next_frame(&mut buf).unwrap_err(), bad);
    let err = Message::decode(&wire, &MODERN).unwrap_err();
    assert_eq!(err, DecodeError::Header(bad));
    let n = err.notification();
    assert_eq!(
        (n.code, n.subcode),
        (
            error_code::MESSAGE_HEADER,
            error_subcode::header::BAD_MESSAGE_LENGTH
        )
    );
    assert_eq!(&n.data[..], &(len as u16).to_be_bytes());
}

// ---------------------------------------------------------------------------
// Regressions
// ---------------------------------------------------------------------------

/// RFC 6793 section 4.2.3: AS4_PATH is ignored because of a non-AS_TRANS
/// AGGREGATOR only when AS4_AGGREGATOR came too. The decoder used to ignore it
/// whenever AGGREGATOR held a 2-octet AS, so a path with a 4-octet AS and a
/// 2-octet aggregator did not survive a 2-octet session.
#[test]
fn as4_path_merged_beside_a_two_octet_aggregator() {
    let as_path = [0x40, 2, 6, 2, 2, 0x5b, 0xa0, 0, 100]; // AS_TRANS 100
    let aggregator = [0xc0, 7, 6, 0, 100, 192, 0, 2, 1]; // AS 100
    let as4_path = [0xc0, 17, 10, 2, 2, 0xfa, 0x56, 0xea, 0, 0, 0, 0, 100]; // 4200000000 100
    let as4_aggregator = [0xc0, 18, 8, 0xfa, 0x56, 0xea, 0, 192, 0, 2, 2];
    let aggr_100 = Aggregator {
        asn: 100,
        address: Ipv4Addr::new(192, 0, 2, 1),
    };

    // AGGREGATOR AS 100, AS4_PATH, no AS4_AGGREGATOR: the path is merged.
    let attrs = [
        &ORIGIN_IGP[..],
        &as_path,
        &NEXT_HOP_192_0_2_1,
        &aggregator,
        &as4_path,
    ]
    .concat();
    let u = decode_update(&raw_update(&[], &attrs, &[8, 10]), &LEGACY);
    assert!(u.errors.is_empty(), "{:?}", u.errors);
    assert_eq!(
        u.attributes.as_path,
        Some(AsPath::from_sequence([4_200_000_000, 100]))
    );
    assert_eq!(u.attributes.aggregator, Some(aggr_100));

    // With AS4_AGGREGATOR too, both AS4 attributes are stale and ignored.
    let attrs = [&attrs[..], &as4_aggregator].concat();
    let u = decode_update(&raw_update(&[], &attrs, &[8, 10]), &LEGACY);
    assert!(u.errors.is_empty(), "{:?}", u.errors);
    assert_eq!(
        u.attributes.as_path,
        Some(AsPath::from_sequence([u32::from(AS_TRANS), 100]))
    );
    assert_eq!(u.attributes.aggregator, Some(aggr_100));
}
