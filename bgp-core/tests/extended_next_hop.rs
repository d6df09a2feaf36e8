//! RFC 8950: IPv4 NLRI with IPv6 next hops, only where the extended next hop
//! capability was negotiated. The capability says what its sender can
//! receive; without it an IPv4 route with an IPv6 next hop is treated as
//! withdrawn (RFC 7606 section 2: the NLRI can be located, so no reset).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp_core::fsm::{FsmConfig, Negotiated, RemoteAs};
use bgp_core::unnumbered::extended_next_hop_capability;
use bgp_core::wire::{
    Afi, AfiSafi, AsPath, AttributeFault, Capability, Context, ExtendedNextHop, Message, MpReach,
    NextHop, Nlri, Open, Origin, PathAttributes, Prefixes, Rfc7606Action, Update, type_code,
};
use bytes::{BufMut, BytesMut};

const ENH: Context = Context {
    extended_next_hop: true,
    ..Context::MODERN
};

fn ll() -> Ipv6Addr {
    "fe80::a8c1:abff:fe00:1".parse().unwrap()
}

fn v4_over_v6(next_hop: NextHop) -> Update {
    Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence([65002])),
            ..Default::default()
        },
        mp_reach: Some(MpReach {
            family: AfiSafi::IPV4_UNICAST,
            next_hop,
            nlri: Prefixes::V4(vec![Nlri::new("198.51.100.0/24".parse().unwrap())]),
        }),
        ..Default::default()
    }
}

/// Encodes under an extended next hop context (what a peer that negotiated
/// it sends), decodes under `rx`.
fn send_receive(u: &Update, rx: &Context) -> Update {
    let mut buf = BytesMut::new();
    Message::Update(u.clone()).encode(&ENH, &mut buf).unwrap();
    match Message::decode(&buf, rx).unwrap() {
        Message::Update(u) => u,
        m => panic!("not an UPDATE: {m:?}"),
    }
}

fn next_hops() -> [NextHop; 3] {
    let global: Ipv6Addr = "2001:db8::1".parse().unwrap();
    [
        // What FRR sends an unnumbered peer: the link-local address alone...
        NextHop::V6 {
            global: ll(),
            link_local: None,
        },
        // ...or global and link-local (RFC 2545 section 3).
        NextHop::V6 {
            global,
            link_local: Some(ll()),
        },
        NextHop::V6 {
            global,
            link_local: None,
        },
    ]
}

#[test]
fn negotiated_ipv4_over_ipv6_round_trips() {
    for nh in next_hops() {
        let u = v4_over_v6(nh);
        let got = send_receive(&u, &ENH);
        assert_eq!(got.errors, []);
        assert_eq!(got, u);
    }
}

#[test]
fn not_negotiated_ipv4_over_ipv6_is_treated_as_withdraw() {
    for nh in next_hops() {
        let got = send_receive(&v4_over_v6(nh), &Context::MODERN);
        assert!(got.treat_as_withdraw(), "{:?}", got.errors);
        let e = &got.errors[0];
        assert_eq!(e.type_code, type_code::MP_REACH_NLRI);
        assert_eq!(e.fault, AttributeFault::NotAllowed);
        assert_eq!(e.action, Rfc7606Action::TreatAsWithdraw);
        // The routes are still located, so the speaker can withdraw them.
        let reach = got.mp_reach.expect("MP_REACH_NLRI located");
        assert_eq!(reach.nlri.len(), 1);
    }
}

#[test]
fn ipv4_next_hop_and_ipv6_routes_need_no_capability() {
    let u = v4_over_v6(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(send_receive(&u, &Context::MODERN).errors, []);
    let mut v6 = v4_over_v6(next_hops()[0].clone());
    v6.mp_reach = Some(MpReach {
        family: AfiSafi::IPV6_UNICAST,
        next_hop: next_hops()[0].clone(),
        nlri: Prefixes::V6(vec![Nlri::new("2001:db8:1::/48".parse().unwrap())]),
    });
    assert_eq!(send_receive(&v6, &Context::MODERN).errors, []);
}

/// A hand-built MP_REACH_NLRI (as another implementation would write it),
/// decoded with and without the capability.
#[test]
fn wire_bytes_from_a_peer() {
    let mut body = BytesMut::new();
    body.put_u16(0); // no withdrawn routes
    let mut attrs = vec![0x40, 1, 1, 0]; // ORIGIN IGP
    attrs.extend_from_slice(&[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xea]); // AS_PATH 65002
    let mut mp = vec![0, 1, 1, 16];
    mp.extend_from_slice(&ll().octets());
    mp.extend_from_slice(&[0, 24, 198, 51, 100]);
    attrs.extend_from_slice(&[0x80, 14, mp.len() as u8]);
    attrs.extend_from_slice(&mp);
    body.put_u16(attrs.len() as u16);
    body.put_slice(&attrs);
    let ok = Update::decode(&body, &ENH).unwrap();
    assert_eq!(ok.errors, []);
    assert_eq!(
        ok.mp_reach.unwrap().next_hop,
        NextHop::V6 {
            global: ll(),
            link_local: None
        }
    );
    let refused = Update::decode(&body, &Context::MODERN).unwrap();
    assert!(refused.treat_as_withdraw());
}

fn open(caps: Vec<Capability>) -> Open {
    let mut all = vec![
        Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
        Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
        Capability::FourOctetAs(65002),
    ];
    all.extend(caps);
    Open::new(65002, 90, Ipv4Addr::new(10, 0, 0, 2), all)
}

fn ours(with: bool) -> FsmConfig {
    let mut c = FsmConfig::new(65001, Ipv4Addr::new(10, 0, 0, 1), RemoteAs::External);
    if with {
        c.capabilities.push(extended_next_hop_capability());
    }
    c
}

#[test]
fn capability_sets_each_direction_by_who_advertised_it() {
    let enh = || vec![extended_next_hop_capability()];
    let n = Negotiated::new(&ours(true), &open(enh())).unwrap();
    assert!(n.rx.extended_next_hop && n.tx.extended_next_hop);
    // We can receive, the peer cannot: we never send it IPv6 next hops.
    let n = Negotiated::new(&ours(true), &open(vec![])).unwrap();
    assert!(n.rx.extended_next_hop && !n.tx.extended_next_hop);
    let n = Negotiated::new(&ours(false), &open(enh())).unwrap();
    assert!(!n.rx.extended_next_hop && n.tx.extended_next_hop);
    let n = Negotiated::new(&ours(false), &open(vec![])).unwrap();
    assert!(!n.rx.extended_next_hop && !n.tx.extended_next_hop);
}

#[test]
fn capability_for_another_family_does_not_count() {
    let vpn = Capability::ExtendedNextHop(vec![ExtendedNextHop {
        nlri_afi: Afi::IPV4,
        nlri_safi: 128,
        next_hop_afi: Afi::IPV6,
    }]);
    let n = Negotiated::new(&ours(true), &open(vec![vpn])).unwrap();
    assert!(!n.tx.extended_next_hop);
    // Nor without IPv4 unicast negotiated at all.
    let mut c = ours(true);
    c.capabilities
        .retain(|c| *c != Capability::Multiprotocol(AfiSafi::IPV4_UNICAST));
    let n = Negotiated::new(&c, &open(vec![extended_next_hop_capability()])).unwrap();
    assert!(!n.rx.extended_next_hop && !n.tx.extended_next_hop);
}
