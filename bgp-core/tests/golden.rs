//! Golden bytes captured from real FRR, BIRD and GoBGP sessions (see
//! `tests/fixtures/README.md` for how they were made). Each message must decode to
//! what the daemon was configured to send, re-encode to the same bytes where the
//! RFCs leave no choice, and otherwise re-encode to bytes that decode the same.

// A failed expectation in a test is a panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use bgp_core::wire::{
    AfiSafi, AsPath, Capability, Community, Context, LargeCommunity, Message, NextHop, Nlri,
    Origin, Prefixes, Update, error_code, error_subcode,
};
use ipnet::{Ipv4Net, Ipv6Net};

fn fixture(path: &str) -> Vec<u8> {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let hex: String = text.split_whitespace().collect();
    hex::decode(hex).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// Decodes a fixture and checks the re-encoding: identical bytes when `identical`,
/// else bytes that decode to the same message.
fn decode(path: &str, ctx: &Context, identical: bool) -> Message {
    let bytes = fixture(path);
    let msg = Message::decode(&bytes, ctx).unwrap_or_else(|e| panic!("{path}: {e}"));
    if let Message::Update(u) = &msg {
        assert!(u.errors.is_empty(), "{path}: {:?}", u.errors);
    }
    let again = msg.to_bytes(ctx).unwrap_or_else(|e| panic!("{path}: {e}"));
    if identical {
        assert_eq!(
            hex::encode(&again),
            hex::encode(&bytes),
            "{path}: re-encoding differs"
        );
    } else {
        assert_eq!(
            Message::decode(&again, ctx).ok().as_ref(),
            Some(&msg),
            "{path}"
        );
    }
    msg
}

fn update(path: &str, ctx: &Context, identical: bool) -> Update {
    match decode(path, ctx, identical) {
        Message::Update(u) => u,
        other => panic!("{path}: expected UPDATE, got {other:?}"),
    }
}

fn v4(s: &str) -> Nlri<Ipv4Net> {
    Nlri::new(s.parse().unwrap())
}

fn v6(s: &str) -> Nlri<Ipv6Net> {
    Nlri::new(s.parse().unwrap())
}

fn caps(path: &str) -> (u32, u16, Ipv4Addr, Vec<Capability>) {
    match decode(path, &Context::LEGACY, true) {
        Message::Open(o) => (o.asn(), o.hold_time, o.bgp_id, o.capabilities),
        other => panic!("{path}: expected OPEN, got {other:?}"),
    }
}

/// The IPv4 routes every daemon announced: 192.0.2.0/24 and 198.51.100.0/25 with
/// MED 50, communities 65001:100 65001:200 and large communities 65001:1:2 65001:3:4.
fn check_ipv4_announce(u: &Update, mut expected_order: Vec<Nlri<Ipv4Net>>) {
    let a = &u.attributes;
    assert_eq!(a.origin, Some(Origin::Igp));
    assert_eq!(a.as_path, Some(AsPath::from_sequence([65001])));
    assert_eq!(a.next_hop, Some(Ipv4Addr::new(10, 99, 0, 1)));
    assert_eq!(a.med, Some(50));
    assert_eq!(
        a.communities,
        vec![Community::new(65001, 100), Community::new(65001, 200)]
    );
    assert_eq!(
        a.large_communities,
        vec![
            LargeCommunity::new(65001, 1, 2),
            LargeCommunity::new(65001, 3, 4)
        ]
    );
    let mut got = u.nlri.clone();
    got.sort();
    expected_order.sort();
    assert_eq!(got, expected_order);
}

/// The IPv6 route: 2001:db8:1::/48 via fd99::1 with community 65001:300.
fn check_ipv6_announce(u: &Update, link_local: Option<Ipv6Addr>) {
    let a = &u.attributes;
    assert_eq!(a.origin, Some(Origin::Igp));
    assert_eq!(a.as_path, Some(AsPath::from_sequence([65001])));
    assert_eq!(a.communities, vec![Community::new(65001, 300)]);
    assert!(u.nlri.is_empty());
    let mp = u.mp_reach.as_ref().expect("MP_REACH_NLRI");
    assert_eq!(mp.family, AfiSafi::IPV6_UNICAST);
    assert_eq!(
        mp.next_hop,
        NextHop::V6 {
            global: "fd99::1".parse().unwrap(),
            link_local
        }
    );
    assert_eq!(mp.nlri, Prefixes::V6(vec![v6("2001:db8:1::/48")]));
}

fn check_withdrawals(dir: &str, ctx: &Context, v6_identical: bool) {
    let u = update(&format!("{dir}/07-update-withdraw-ipv4.hex"), ctx, true);
    assert_eq!(u.withdrawn, vec![v4("198.51.100.0/25")]);
    assert!(u.nlri.is_empty() && u.mp_reach.is_none());
    let u = update(
        &format!("{dir}/08-update-withdraw-ipv6-mpunreach.hex"),
        ctx,
        v6_identical,
    );
    let un = u.mp_unreach.as_ref().expect("MP_UNREACH_NLRI");
    assert_eq!(un.withdrawn, Prefixes::V6(vec![v6("2001:db8:1::/48")]));
}

fn check_shutdown(path: &str) {
    let Message::Notification(n) = decode(path, &Context::MODERN, true) else {
        panic!("{path}: expected NOTIFICATION");
    };
    assert_eq!(
        (n.code, n.subcode),
        (
            error_code::CEASE,
            error_subcode::cease::ADMINISTRATIVE_SHUTDOWN
        )
    );
    assert_eq!(n.shutdown_message(), Some("golden"));
    assert_eq!(n.to_string(), "Cease/Administrative Shutdown \"golden\"");
}

fn check_eor(path: &str, family: AfiSafi) {
    let u = update(path, &Context::MODERN, true);
    assert_eq!(u.end_of_rib_family(), Some(family), "{path}");
}

#[test]
fn frr_open() {
    let (asn, hold, id, caps) = caps("frr/01-open.hex");
    assert_eq!((asn, hold, id), (65001, 180, Ipv4Addr::new(10, 99, 0, 1)));
    assert!(caps.contains(&Capability::Multiprotocol(AfiSafi::IPV4_UNICAST)));
    assert!(caps.contains(&Capability::Multiprotocol(AfiSafi::IPV6_UNICAST)));
    assert!(caps.contains(&Capability::RouteRefresh));
    assert!(caps.contains(&Capability::RouteRefreshCisco));
    assert!(caps.contains(&Capability::EnhancedRouteRefresh));
    assert!(caps.contains(&Capability::FourOctetAs(65001)));
    assert!(caps.contains(&Capability::ExtendedMessage));
    assert!(
        caps.iter()
            .any(|c| matches!(c, Capability::AddPath(f) if f.len() == 2))
    );
    assert!(
        caps.iter()
            .any(|c| matches!(c, Capability::Fqdn { hostname, .. } if !hostname.is_empty()))
    );
    assert!(caps.iter().any(
        |c| matches!(c, Capability::GracefulRestart(gr) if gr.restart_time == 120 && gr.notification)
    ));
    assert!(
        caps.iter()
            .any(|c| matches!(c, Capability::LongLivedGracefulRestart(f) if f.len() == 2))
    );
}

#[test]
fn frr_updates() {
    let ctx = Context::MODERN;
    assert_eq!(
        decode("frr/02-keepalive.hex", &ctx, true),
        Message::Keepalive
    );
    // FRR sets the Extended Length bit on AS_PATH and MP attributes of any size,
    // which RFC 4271 allows but does not require: equal after decoding, not in bytes.
    let u = update("frr/03-update-ipv4.hex", &ctx, false);
    check_ipv4_announce(&u, vec![v4("192.0.2.0/24"), v4("198.51.100.0/25")]);
    let u = update("frr/04-update-ipv6-mpreach.hex", &ctx, false);
    check_ipv6_announce(&u, Some("fe80::ff:fe99:1".parse().unwrap()));
    assert_eq!(u.attributes.med, Some(0));
    check_eor("frr/05-update-eor-ipv4.hex", AfiSafi::IPV4_UNICAST);
    check_eor("frr/06-update-eor-ipv6.hex", AfiSafi::IPV6_UNICAST);
    check_withdrawals("frr", &ctx, false);
    check_shutdown("frr/09-notification-cease-admin-shutdown.hex");
}

#[test]
fn bird_open() {
    let (asn, hold, id, caps) = caps("bird/01-open.hex");
    assert_eq!((asn, hold, id), (65001, 240, Ipv4Addr::new(10, 99, 0, 1)));
    assert_eq!(caps.len(), 7);
    assert!(caps.contains(&Capability::FourOctetAs(65001)));
    assert!(caps.contains(&Capability::EnhancedRouteRefresh));
    assert!(caps.contains(&Capability::LongLivedGracefulRestart(vec![])));
}

#[test]
fn bird_updates() {
    let ctx = Context::MODERN;
    assert_eq!(
        decode("bird/02-keepalive.hex", &ctx, true),
        Message::Keepalive
    );
    let u = update("bird/03-update-ipv4.hex", &ctx, true);
    check_ipv4_announce(&u, vec![v4("198.51.100.0/25"), v4("192.0.2.0/24")]);
    check_eor("bird/04-update-eor-ipv4.hex", AfiSafi::IPV4_UNICAST);
    // BIRD, like FRR, uses the Extended Length form for MP attributes.
    let u = update("bird/05-update-ipv6-mpreach.hex", &ctx, false);
    check_ipv6_announce(&u, Some("fe80::ff:fe99:1".parse().unwrap()));
    check_eor("bird/06-update-eor-ipv6.hex", AfiSafi::IPV6_UNICAST);
    check_withdrawals("bird", &ctx, false);
    check_shutdown("bird/09-notification-cease-admin-shutdown.hex");
}

#[test]
fn gobgp_open() {
    let (asn, hold, id, caps) = caps("gobgp/01-open.hex");
    assert_eq!((asn, hold, id), (65001, 90, Ipv4Addr::new(10, 99, 0, 1)));
    assert!(caps.contains(&Capability::FourOctetAs(65001)));
    assert!(
        caps.iter()
            .any(|c| matches!(c, Capability::ExtendedNextHop(e) if e.len() == 1))
    );
    assert!(
        caps.iter()
            .any(|c| matches!(c, Capability::GracefulRestart(gr) if gr.families.len() == 2))
    );
}

#[test]
fn gobgp_updates() {
    let ctx = Context::MODERN;
    assert_eq!(
        decode("gobgp/02-keepalive.hex", &ctx, true),
        Message::Keepalive
    );
    // GoBGP puts MP_REACH_NLRI last; RFC 7606 section 5.1 wants it first, so ours
    // differs in order only.
    let u = update("gobgp/03-update-ipv6-mpreach.hex", &ctx, false);
    check_ipv6_announce(&u, None);
    check_eor("gobgp/04-update-eor-ipv6.hex", AfiSafi::IPV6_UNICAST);
    let u = update("gobgp/05-update-ipv4.hex", &ctx, true);
    check_ipv4_announce(&u, vec![v4("192.0.2.0/24"), v4("198.51.100.0/25")]);
    check_eor("gobgp/06-update-eor-ipv4.hex", AfiSafi::IPV4_UNICAST);
    check_withdrawals("gobgp", &ctx, true);
    check_shutdown("gobgp/09-notification-cease-admin-shutdown.hex");
}

/// BIRD with `enable as4 off`: a 2-octet-AS session. Paths through 4-octet ASes
/// arrive as AS_TRANS in AS_PATH plus AS4_PATH, merge back (RFC 6793 section
/// 4.2.3), and encode back to the very same bytes.
#[test]
fn bird_two_octet_as4_path() {
    let ctx = Context::LEGACY;
    let (asn, _, _, caps) = caps("bird-as2/01-open.hex");
    assert_eq!(asn, 65001);
    assert!(!caps.iter().any(|c| matches!(c, Capability::FourOctetAs(_))));

    let u = update("bird-as2/04-update-ipv4-as4path.hex", &ctx, true);
    assert_eq!(
        u.attributes.as_path,
        Some(AsPath::from_sequence([65001, 4_200_000_001]))
    );
    let raw = fixture("bird-as2/04-update-ipv4-as4path.hex");
    // The wire really carries AS_TRANS (23456 = 0x5ba0) and an AS4_PATH (type 17).
    assert!(raw.windows(2).any(|w| w == [0x5b, 0xa0]));
    assert!(raw.windows(2).any(|w| w == [0xc0, 17]));
    // Under a 4-octet context the same bytes mean something else entirely.
    let other = Message::decode(&raw, &Context::MODERN).unwrap();
    let Message::Update(other) = other else {
        panic!()
    };
    assert_ne!(other.attributes.as_path, u.attributes.as_path);

    let u = update("bird-as2/peer/03-update-ipv4-as4path.hex", &ctx, true);
    assert_eq!(
        u.attributes.as_path,
        Some(AsPath::from_sequence([65002, 4_200_000_003]))
    );
    assert_eq!(
        u.attributes.large_communities,
        vec![LargeCommunity::new(4_200_000_003, 7, 8)]
    );
    assert_eq!(u.nlri, vec![v4("203.0.113.0/24")]);

    check_shutdown("bird-as2/07-notification-cease-admin-shutdown.hex");
}

/// The other side of each capture, decoded too: every OPEN and UPDATE a peer sent.
#[test]
fn peer_messages_decode() {
    for dir in ["frr", "bird", "gobgp", "bird-as2"] {
        let ctx = if dir == "bird-as2" {
            Context::LEGACY
        } else {
            Context::MODERN
        };
        let base = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(dir)
            .join("peer");
        let mut n = 0;
        for entry in std::fs::read_dir(&base).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".hex") {
                decode(
                    &format!("{dir}/peer/{name}"),
                    &ctx,
                    !name.contains("mpreach") && !name.contains("mpunreach"),
                );
                n += 1;
            }
        }
        assert!(n >= 3, "{dir}: only {n} peer messages");
    }
}
