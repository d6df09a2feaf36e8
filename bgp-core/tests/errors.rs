//! Malformed input gets exactly the response the RFCs prescribe: RFC 4271
//! section 6 (header, OPEN, UPDATE), RFC 7606 (revised UPDATE error handling),
//! RFC 4760, RFC 5065, RFC 6793, RFC 7607, RFC 8092, RFC 9234, RFC 7313, RFC 9072,
//! RFC 8654 and RFC 9003.
//!
//! Messages are built by hand, octet by octet, so that each test shows the exact
//! bytes of the fault it is about. Session resets are checked through the whole
//! NOTIFICATION (code, subcode, data); milder outcomes through `Update::errors`.

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp_core::wire::{
    AfiSafi, AsPath, AttributeFault, Capability, Context, DecodeError, Framer, HeaderError,
    Message, MpReach, NextHop, Nlri, Notification, Origin, PeerKind, Prefixes, RawAttribute,
    Rfc7606Action, RouteRefreshSubtype, Segment, SegmentType, Update, flags,
};
use bytes::BytesMut;
use ipnet::{Ipv4Net, Ipv6Net};

use AttributeFault::{Duplicate, Flags, Length, Missing, NotAllowed, Value};
use Rfc7606Action::{AttributeDiscard as DISCARD, TreatAsWithdraw as WITHDRAW};

// ---------------------------------------------------------------------------
// Byte builders
// ---------------------------------------------------------------------------

/// Well-known (transitive) attribute flags.
const WK: u8 = flags::TRANSITIVE;
/// Optional transitive.
const OPT_T: u8 = flags::OPTIONAL | flags::TRANSITIVE;
/// Optional non-transitive.
const OPT_NT: u8 = flags::OPTIONAL;
/// Extended Length.
const EXT: u8 = flags::EXTENDED_LENGTH;

// Attribute type codes, spelled out so the bytes read as the RFCs do.
const ORIGIN: u8 = 1;
const AS_PATH: u8 = 2;
const NEXT_HOP: u8 = 3;
const MED: u8 = 4;
const LOCAL_PREF: u8 = 5;
const ATOMIC_AGGREGATE: u8 = 6;
const AGGREGATOR: u8 = 7;
const COMMUNITIES: u8 = 8;
const ORIGINATOR_ID: u8 = 9;
const CLUSTER_LIST: u8 = 10;
const MP_REACH: u8 = 14;
const MP_UNREACH: u8 = 15;
const EXT_COMMUNITIES: u8 = 16;
const AS4_PATH: u8 = 17;
const AS4_AGGREGATOR: u8 = 18;
const LARGE_COMMUNITY: u8 = 32;
const OTC: u8 = 35;

// Segment types (RFC 4271 section 4.3, RFC 5065).
const AS_SET: u8 = 1;
const AS_SEQUENCE: u8 = 2;
const AS_CONFED_SEQUENCE: u8 = 3;

/// NOTIFICATION codes.
const HEADER_ERR: u8 = 1;
const OPEN_ERR: u8 = 2;
const UPDATE_ERR: u8 = 3;
const CEASE: u8 = 6;
const ROUTE_REFRESH_ERR: u8 = 7;

/// UPDATE Message Error subcodes (RFC 4271 section 6.3).
const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
const UNRECOGNIZED_WELL_KNOWN: u8 = 2;
const MISSING_WELL_KNOWN: u8 = 3;
const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
const INVALID_ORIGIN: u8 = 6;
const INVALID_NEXT_HOP: u8 = 8;
const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
const INVALID_NETWORK_FIELD: u8 = 10;
const MALFORMED_AS_PATH: u8 = 11;

/// 10.0.0.0/24 as NLRI.
const NLRI_10: &[u8] = &[24, 10, 0, 0];

/// A whole message: marker, length, type, body.
fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    m
}

/// A header alone, with any marker byte, length field and type.
fn header(marker: u8, length: u16, kind: u8) -> Vec<u8> {
    let mut m = vec![marker; 16];
    m.extend_from_slice(&length.to_be_bytes());
    m.push(kind);
    m
}

/// An UPDATE with the three fields and their lengths filled in.
fn update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(nlri);
    message(2, &b)
}

/// One path attribute; the length field is two octets when `flags` has the
/// Extended Length bit.
fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut a = vec![flags, code];
    if flags & EXT != 0 {
        a.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        a.push(value.len() as u8);
    }
    a.extend_from_slice(value);
    a
}

fn origin(value: u8) -> Vec<u8> {
    attr(WK, ORIGIN, &[value])
}

/// A segment with 4-octet AS numbers.
fn seg4(kind: u8, asns: &[u32]) -> Vec<u8> {
    let mut s = vec![kind, asns.len() as u8];
    for a in asns {
        s.extend_from_slice(&a.to_be_bytes());
    }
    s
}

/// A segment with 2-octet AS numbers.
fn seg2(kind: u8, asns: &[u16]) -> Vec<u8> {
    let mut s = vec![kind, asns.len() as u8];
    for a in asns {
        s.extend_from_slice(&a.to_be_bytes());
    }
    s
}

/// AS_PATH of one AS_SEQUENCE, 4-octet AS numbers.
fn as_path4(asns: &[u32]) -> Vec<u8> {
    attr(WK, AS_PATH, &seg4(AS_SEQUENCE, asns))
}

/// AS_PATH of one AS_SEQUENCE, 2-octet AS numbers.
fn as_path2(asns: &[u16]) -> Vec<u8> {
    attr(WK, AS_PATH, &seg2(AS_SEQUENCE, asns))
}

fn next_hop(a: [u8; 4]) -> Vec<u8> {
    attr(WK, NEXT_HOP, &a)
}

/// ORIGIN IGP, AS_PATH 65002, NEXT_HOP 192.0.2.1 (4-octet AS numbers).
fn base() -> Vec<u8> {
    [origin(0), as_path4(&[65002]), next_hop([192, 0, 2, 1])].concat()
}

/// ORIGIN IGP and AS_PATH 65002, without NEXT_HOP (for MP_REACH-only UPDATEs).
fn base_mp() -> Vec<u8> {
    [origin(0), as_path4(&[65002])].concat()
}

/// A valid IPv6 unicast MP_REACH_NLRI value: next hop 2001:db8::1, NLRI
/// 2001:db8:1::/48.
fn mp_reach_v6_value() -> Vec<u8> {
    let mut v = vec![0, 2, 1, 16];
    v.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
    v.push(0);
    v.extend_from_slice(&[48, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01]);
    v
}

fn mp_reach_v6() -> Vec<u8> {
    attr(OPT_NT, MP_REACH, &mp_reach_v6_value())
}

/// An OPEN with the Opt Parm Len given explicitly.
fn open_raw(version: u8, hold: u16, id: [u8; 4], opt_len: u8, params: &[u8]) -> Vec<u8> {
    let mut b = vec![version];
    b.extend_from_slice(&65001u16.to_be_bytes());
    b.extend_from_slice(&hold.to_be_bytes());
    b.extend_from_slice(&id);
    b.push(opt_len);
    b.extend_from_slice(params);
    message(1, &b)
}

fn open(version: u8, hold: u16, id: [u8; 4], params: &[u8]) -> Vec<u8> {
    open_raw(version, hold, id, params.len() as u8, params)
}

/// One Capabilities optional parameter (RFC 5492) holding `caps`.
fn cap_param(caps: &[u8]) -> Vec<u8> {
    let mut p = vec![2, caps.len() as u8];
    p.extend_from_slice(caps);
    p
}

// ---------------------------------------------------------------------------
// Decoding helpers
// ---------------------------------------------------------------------------

fn ctx(peer: PeerKind) -> Context {
    Context {
        peer,
        ..Context::MODERN
    }
}

fn legacy() -> Context {
    Context::LEGACY
}

fn net4(s: &str) -> Ipv4Net {
    match s.parse() {
        Ok(n) => n,
        Err(e) => panic!("bad prefix {s}: {e}"),
    }
}

fn net6(s: &str) -> Ipv6Net {
    match s.parse() {
        Ok(n) => n,
        Err(e) => panic!("bad prefix {s}: {e}"),
    }
}

fn nlri_10() -> Vec<Nlri<Ipv4Net>> {
    vec![Nlri::new(net4("10.0.0.0/24"))]
}

fn decode(bytes: &[u8], ctx: &Context) -> Message {
    match Message::decode(bytes, ctx) {
        Ok(m) => m,
        Err(e) => panic!("unexpected {e}: {}", e.notification()),
    }
}

fn decode_update(bytes: &[u8], ctx: &Context) -> Update {
    match decode(bytes, ctx) {
        Message::Update(u) => u,
        m => panic!("not an UPDATE: {m:?}"),
    }
}

/// The error a message must be rejected with.
fn decode_err(bytes: &[u8], ctx: &Context) -> DecodeError {
    match Message::decode(bytes, ctx) {
        Ok(m) => panic!("decoded where an error was due: {m:?}"),
        Err(e) => e,
    }
}

/// The NOTIFICATION a message must be answered with.
fn reset(bytes: &[u8], ctx: &Context) -> Notification {
    decode_err(bytes, ctx).notification()
}

fn notification(code: u8, subcode: u8, data: &[u8]) -> Notification {
    Notification::with_data(code, subcode, data.to_vec())
}

type Entry = (u8, AttributeFault, Rfc7606Action, u8);

/// (type code, fault, action, subcode) of every recorded attribute error.
fn errors(u: &Update) -> Vec<Entry> {
    u.errors
        .iter()
        .map(|e| (e.type_code, e.fault, e.action, e.subcode))
        .collect()
}

/// The UPDATE decodes with exactly `expected` errors, all treat-as-withdraw
/// overall, and the NLRI field was still parsed so the routes can be withdrawn.
fn assert_withdraw(u: &Update, expected: &[Entry]) {
    assert_eq!(errors(u), expected);
    assert!(
        u.treat_as_withdraw(),
        "not treat-as-withdraw: {:?}",
        u.errors
    );
    assert_eq!(u.nlri, nlri_10(), "NLRI must still be parsed");
}

/// The UPDATE decodes with exactly `expected` errors, and the strongest is
/// attribute discard: the routes stand.
fn assert_discard(u: &Update, expected: &[Entry]) {
    assert_eq!(errors(u), expected);
    assert_eq!(u.action(), Some(DISCARD));
    assert!(!u.treat_as_withdraw());
}

// ---------------------------------------------------------------------------
// RFC 4271 section 6.1: Message Header errors
// ---------------------------------------------------------------------------

// "If the Marker field of the message header is not as expected, then a
// synchronization error has occurred" -> 1/1.
#[test]
fn rfc4271_6_1_bad_marker_is_connection_not_synchronized() {
    let mut m = message(4, &[]);
    m[5] = 0xfe;
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(HEADER_ERR, 1, &[])
    );
}

// "if the Length field of the message header is less than 19" -> 1/2, data = length.
#[test]
fn rfc4271_6_1_length_below_19_is_bad_message_length() {
    let m = header(0xff, 18, 4);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(HEADER_ERR, 2, &[0, 18])
    );
}

// "or greater than 4096" (without the extended message capability, RFC 8654)
// -> 1/2 with the length field; with the capability the same UPDATE is fine.
#[test]
fn rfc4271_6_1_length_above_4096_is_bad_message_length() {
    // A withdraw-only UPDATE of 4097 octets: 1018 /24s and one /8.
    let mut withdrawn = Vec::new();
    for i in 0..1018u16 {
        let [hi, lo] = i.to_be_bytes();
        withdrawn.extend_from_slice(&[24, 10, hi, lo]);
    }
    withdrawn.extend_from_slice(&[8, 11]);
    let m = update(&withdrawn, &[], &[]);
    assert_eq!(m.len(), 4097);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(HEADER_ERR, 2, &[0x10, 0x01])
    );
    let extended = Context {
        extended_message: true,
        ..Context::MODERN
    };
    assert_eq!(decode_update(&m, &extended).withdrawn.len(), 1019);
}

// RFC 8654 section 4: OPEN and KEEPALIVE stay within 4096 octets even with the
// extended message capability.
#[test]
fn rfc8654_open_above_4096_is_bad_message_length_even_when_extended() {
    let extended = Context {
        extended_message: true,
        ..Context::MODERN
    };
    let m = header(0xff, 4097, 1);
    assert_eq!(
        reset(&m, &extended),
        notification(HEADER_ERR, 2, &[0x10, 0x01])
    );
}

// "the Length field of an OPEN message is less than the minimum length of the
// OPEN message" (29) -> 1/2.
#[test]
fn rfc4271_6_1_open_shorter_than_29_is_bad_message_length() {
    let m = message(1, &[4, 0xfd, 0xe9, 0, 90, 192, 0, 2, 1]);
    assert_eq!(m.len(), 28);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(HEADER_ERR, 2, &[0, 28])
    );
}

// "the Length field of an UPDATE message is less than the minimum length of the
// UPDATE message" (23) -> 1/2.
#[test]
fn rfc4271_6_1_update_shorter_than_23_is_bad_message_length() {
    let m = message(2, &[0, 0, 0]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(HEADER_ERR, 2, &[0, 22])
    );
}

// "the Length field of a KEEPALIVE message is not equal to 19" -> 1/2.
#[test]
fn rfc4271_6_1_keepalive_not_19_is_bad_message_length() {
    let m = message(4, &[0]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(HEADER_ERR, 2, &[0, 20])
    );
}

// "the Length field of a NOTIFICATION message is less than the minimum length of
// the NOTIFICATION message" (21) -> 1/2.
#[test]
fn rfc4271_6_1_notification_shorter_than_21_is_bad_message_length() {
    let m = message(3, &[6]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(HEADER_ERR, 2, &[0, 20])
    );
}

// RFC 2918 section 3: a ROUTE-REFRESH carries AFI, Reserved and SAFI (23 octets
// in all); shorter is a Bad Message Length.
#[test]
fn rfc2918_route_refresh_shorter_than_23_is_bad_message_length() {
    let m = message(5, &[0, 1, 0]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(HEADER_ERR, 2, &[0, 22])
    );
}

// "If the Type field of the message header is not recognized" -> 1/3, data = type.
#[test]
fn rfc4271_6_1_unknown_type_is_bad_message_type() {
    let m = message(7, &[]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(HEADER_ERR, 3, &[7])
    );
}

// The framer waits for a whole header, then checks it at once.
#[test]
fn framer_waits_on_a_partial_header() {
    let mut framer = Framer::new();
    let keepalive = message(4, &[]);
    let mut buf = BytesMut::from(&keepalive[..18]);
    assert_eq!(framer.next_frame(&mut buf), Ok(None));
    buf.extend_from_slice(&keepalive[18..]);
    assert_eq!(
        framer.next_frame(&mut buf).map(|f| f.map(|f| f.to_vec())),
        Ok(Some(keepalive))
    );
    assert!(buf.is_empty());
}

// The framer waits for the body once the header is good.
#[test]
fn framer_waits_on_a_partial_body() {
    let mut framer = Framer::new();
    let m = update(&[], &base(), NLRI_10);
    let mut buf = BytesMut::from(&m[..30]);
    assert_eq!(framer.next_frame(&mut buf), Ok(None));
    assert_eq!(buf.len(), 30, "nothing consumed while waiting");
    buf.extend_from_slice(&m[30..]);
    assert_eq!(
        framer.next_frame(&mut buf).map(|f| f.map(|f| f.to_vec())),
        Ok(Some(m))
    );
}

// A bad marker is reported as soon as the 19 header octets are in, without
// waiting for the body the length announces.
#[test]
fn framer_rejects_bad_marker_at_19_octets() {
    let mut framer = Framer::new();
    let mut buf = BytesMut::from(&header(0x00, 100, 2)[..18]);
    assert_eq!(framer.next_frame(&mut buf), Ok(None));
    buf.extend_from_slice(&[2]);
    assert_eq!(
        framer.next_frame(&mut buf),
        Err(HeaderError::ConnectionNotSynchronized)
    );
}

// A bad length is reported as soon as the 19 header octets are in.
#[test]
fn framer_rejects_bad_length_at_19_octets() {
    let mut framer = Framer::new();
    let mut buf = BytesMut::from(&header(0xff, 5000, 2)[..]);
    assert_eq!(
        framer.next_frame(&mut buf),
        Err(HeaderError::BadMessageLength(5000))
    );
    let mut buf = BytesMut::from(&header(0xff, 18, 2)[..]);
    assert_eq!(
        framer.next_frame(&mut buf),
        Err(HeaderError::BadMessageLength(18))
    );
    // Too short for its type, too.
    let mut buf = BytesMut::from(&header(0xff, 20, 2)[..]);
    assert_eq!(
        framer.next_frame(&mut buf),
        Err(HeaderError::BadMessageLength(20))
    );
}

// ---------------------------------------------------------------------------
// RFC 4271 section 6.2: OPEN Message errors
// ---------------------------------------------------------------------------

// "If the version number in the Version field of the received OPEN message is not
// supported" -> 2/1, data = the largest supported version (2 octets).
#[test]
fn rfc4271_6_2_unsupported_version_is_2_1_with_version_4() {
    let m = open(3, 90, [192, 0, 2, 1], &[]);
    assert_eq!(
        reset(&m, &Context::LEGACY),
        notification(OPEN_ERR, 1, &[0, 4])
    );
}

// "An implementation MUST reject Hold Time values of one or two seconds" -> 2/6.
#[test]
fn rfc4271_6_2_hold_time_1_or_2_is_unacceptable_hold_time() {
    for hold in [1, 2] {
        let m = open(4, hold, [192, 0, 2, 1], &[]);
        assert_eq!(
            reset(&m, &Context::LEGACY),
            notification(OPEN_ERR, 6, &[]),
            "hold time {hold}"
        );
    }
    for hold in [0, 3] {
        let m = open(4, hold, [192, 0, 2, 1], &[]);
        assert!(matches!(decode(&m, &Context::LEGACY), Message::Open(o) if o.hold_time == hold));
    }
}

// "If the BGP Identifier field of the OPEN message is syntactically incorrect"
// (RFC 6286: zero is not a valid identifier) -> 2/3.
#[test]
fn rfc4271_6_2_bgp_identifier_zero_is_bad_bgp_identifier() {
    let m = open(4, 90, [0, 0, 0, 0], &[]);
    assert_eq!(reset(&m, &Context::LEGACY), notification(OPEN_ERR, 3, &[]));
}

// "If one of the Optional Parameters in the OPEN message is not recognized" ->
// 2/4 (type 1, the old Authentication Information, is deprecated).
#[test]
fn rfc4271_6_2_unknown_optional_parameter_is_unsupported_optional_parameter() {
    let m = open(4, 90, [192, 0, 2, 1], &[1, 2, 0xab, 0xcd]);
    assert_eq!(reset(&m, &Context::LEGACY), notification(OPEN_ERR, 4, &[]));
}

// Optional Parameters Length larger than what follows -> 2/0 (Unspecific).
#[test]
fn rfc4271_6_2_optional_parameters_overrun_is_unspecific() {
    let params = cap_param(&[65, 4, 0, 0, 0xfd, 0xe9]);
    let m = open_raw(4, 90, [192, 0, 2, 1], params.len() as u8 + 1, &params);
    assert_eq!(reset(&m, &Context::LEGACY), notification(OPEN_ERR, 0, &[]));
    // A parameter whose own length runs past the parameters.
    let m = open(4, 90, [192, 0, 2, 1], &[2, 8, 65, 4, 0, 0, 0xfd, 0xe9]);
    assert_eq!(reset(&m, &Context::LEGACY), notification(OPEN_ERR, 0, &[]));
    // Octets after the optional parameters.
    let mut params = cap_param(&[65, 4, 0, 0, 0xfd, 0xe9]);
    let len = params.len() as u8;
    params.push(0);
    let m = open_raw(4, 90, [192, 0, 2, 1], len, &params);
    assert_eq!(reset(&m, &Context::LEGACY), notification(OPEN_ERR, 0, &[]));
}

// A capability whose length runs past its parameter, or a known capability of the
// wrong length -> 2/0.
#[test]
fn rfc5492_malformed_capability_length_is_unspecific() {
    // Capability length 5 in a parameter with 4 octets left.
    let m = open(
        4,
        90,
        [192, 0, 2, 1],
        &cap_param(&[65, 5, 0, 0, 0xfd, 0xe9]),
    );
    assert_eq!(reset(&m, &Context::LEGACY), notification(OPEN_ERR, 0, &[]));
    // Multiprotocol (RFC 4760) with 3 octets instead of 4.
    let m = open(4, 90, [192, 0, 2, 1], &cap_param(&[1, 3, 0, 1, 1]));
    assert_eq!(reset(&m, &Context::LEGACY), notification(OPEN_ERR, 0, &[]));
    // 4-octet AS (RFC 6793) with 2 octets instead of 4.
    let m = open(4, 90, [192, 0, 2, 1], &cap_param(&[65, 2, 0xfd, 0xe9]));
    assert_eq!(reset(&m, &Context::LEGACY), notification(OPEN_ERR, 0, &[]));
}

// RFC 9072: "Non-Ext OP Len" 255 and "Non-Ext OP Type" 255 announce a 2-octet
// Extended Opt. Parm. Length, and 2-octet parameter lengths.
#[test]
fn rfc9072_extended_optional_parameters_decode() {
    let caps = [1, 4, 0, 1, 0, 1, 65, 4, 0, 1, 0x11, 0x70];
    let mut params = vec![2];
    params.extend_from_slice(&(caps.len() as u16).to_be_bytes());
    params.extend_from_slice(&caps);
    let mut ext = vec![255];
    ext.extend_from_slice(&(params.len() as u16).to_be_bytes());
    ext.extend_from_slice(&params);
    let m = open_raw(4, 90, [192, 0, 2, 1], 255, &ext);
    let Message::Open(o) = decode(&m, &Context::LEGACY) else {
        panic!("not an OPEN");
    };
    assert_eq!(
        o.capabilities,
        vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::FourOctetAs(70_000),
        ]
    );
    assert_eq!(o.asn(), 70_000);
    assert_eq!(o.bgp_id, Ipv4Addr::new(192, 0, 2, 1));
}

// ---------------------------------------------------------------------------
// RFC 7606 section 3: changes to RFC 4271 section 6.3
// ---------------------------------------------------------------------------

// 3(b): "If the Withdrawn Routes Length or Total Attribute Length is too large
// ... the Error Subcode MUST be set to Malformed Attribute List" -> reset 3/1.
#[test]
fn rfc7606_3b_withdrawn_routes_length_too_large_is_session_reset_3_1() {
    // Withdrawn Routes Length 10 with 2 octets left in the body.
    let m = message(2, &[0, 10, 0, 0]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, MALFORMED_ATTRIBUTE_LIST, &[])
    );
}

// 3(b): the Total Attribute Length too large -> reset 3/1.
#[test]
fn rfc7606_3b_total_attribute_length_too_large_is_session_reset_3_1() {
    let m = message(2, &[0, 0, 0, 10, WK, ORIGIN, 1, 0]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, MALFORMED_ATTRIBUTE_LIST, &[])
    );
}

// 3(c): "If the value of either the Optional or Transitive bits in the Attribute
// Flags is in conflict with their specified values, then the attribute MUST be
// treated as malformed and the "treat-as-withdraw" approach used".
#[test]
fn rfc7606_3c_origin_with_optional_bit_is_treat_as_withdraw() {
    let bad = attr(OPT_T, ORIGIN, &[0]);
    let attrs = [bad.clone(), as_path4(&[65002]), next_hop([192, 0, 2, 1])].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_withdraw(&u, &[(ORIGIN, Flags, WITHDRAW, ATTRIBUTE_FLAGS_ERROR)]);
    assert_eq!(u.errors[0].data, bad);
    assert_eq!(u.attributes.origin, None);
}

// 3(c): COMMUNITIES without the Transitive bit is a flags conflict too.
#[test]
fn rfc7606_3c_communities_without_transitive_bit_is_treat_as_withdraw() {
    let attrs = [base(), attr(OPT_NT, COMMUNITIES, &[0, 1, 0, 2])].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_withdraw(&u, &[(COMMUNITIES, Flags, WITHDRAW, ATTRIBUTE_FLAGS_ERROR)]);
}

// 3(c) names only the Optional and Transitive bits: Partial and Extended Length
// are not a flags conflict.
#[test]
fn rfc7606_3c_partial_and_extended_length_bits_are_not_flag_errors() {
    let attrs = [
        attr(WK | flags::PARTIAL | EXT, ORIGIN, &[2]),
        as_path4(&[65002]),
        next_hop([192, 0, 2, 1]),
    ]
    .concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_eq!(errors(&u), []);
    assert_eq!(u.attributes.origin, Some(Origin::Incomplete));
}

// 5.3: MP_REACH_NLRI is "incorrect" if "The attribute flags of the attribute are
// inconsistent with those specified in [RFC4760]" -> reset 3/9, data = attribute.
#[test]
fn rfc7606_5_3_mp_reach_with_wrong_flags_is_session_reset_3_9() {
    let bad = attr(OPT_T, MP_REACH, &mp_reach_v6_value());
    let m = update(&[], &[bad.clone(), base_mp()].concat(), &[]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, OPTIONAL_ATTRIBUTE_ERROR, &bad)
    );
}

// 3(g): "If the MP_REACH_NLRI attribute or the MP_UNREACH_NLRI attribute appears
// more than once in the UPDATE message, then a NOTIFICATION message MUST be sent
// with the Error Subcode "Malformed Attribute List"".
#[test]
fn rfc7606_3g_duplicate_mp_reach_is_session_reset_3_1() {
    let m = update(
        &[],
        &[mp_reach_v6(), mp_reach_v6(), base_mp()].concat(),
        &[],
    );
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, MALFORMED_ATTRIBUTE_LIST, &[])
    );
    let unreach = attr(OPT_NT, MP_UNREACH, &[0, 2, 1]);
    let m = update(&[], &[unreach.clone(), unreach].concat(), &[]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, MALFORMED_ATTRIBUTE_LIST, &[])
    );
}

// 3(g): "If any other attribute (whether recognized or unrecognized) appears more
// than once ... all the occurrences of the attribute other than the first one
// SHALL be discarded and the UPDATE message will continue to be processed."
#[test]
fn rfc7606_3g_duplicate_attribute_keeps_the_first() {
    let attrs = [
        base(),
        attr(OPT_NT, MED, &[0, 0, 0, 10]),
        attr(OPT_NT, MED, &[0, 0, 0, 20]),
        // A malformed repeat is dropped unread: no treat-as-withdraw.
        origin(9),
        // An unrecognized attribute repeated.
        attr(OPT_T, 99, &[1]),
        attr(OPT_T, 99, &[2]),
    ]
    .concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_discard(
        &u,
        &[
            (MED, Duplicate, DISCARD, MALFORMED_ATTRIBUTE_LIST),
            (ORIGIN, Duplicate, DISCARD, MALFORMED_ATTRIBUTE_LIST),
            (99, Duplicate, DISCARD, MALFORMED_ATTRIBUTE_LIST),
        ],
    );
    assert_eq!(u.attributes.med, Some(10));
    assert_eq!(u.attributes.origin, Some(Origin::Igp));
    assert_eq!(u.attributes.unknown.len(), 1);
    assert_eq!(u.attributes.unknown[0].value.as_ref(), &[1]);
    assert_eq!(u.nlri, nlri_10());
}

// 3(d): "If any of the well-known mandatory attributes are not present in an
// UPDATE message, then "treat-as-withdraw" MUST be used" (3/3, data = type code).
#[test]
fn rfc7606_3d_missing_well_known_attribute_is_treat_as_withdraw() {
    let all = [
        (ORIGIN, origin(0)),
        (AS_PATH, as_path4(&[65002])),
        (NEXT_HOP, next_hop([192, 0, 2, 1])),
    ];
    for (missing, _) in &all {
        let attrs: Vec<u8> = all
            .iter()
            .filter(|(code, _)| code != missing)
            .flat_map(|(_, a)| a.clone())
            .collect();
        let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
        assert_withdraw(&u, &[(*missing, Missing, WITHDRAW, MISSING_WELL_KNOWN)]);
        assert_eq!(u.errors[0].data.as_ref(), &[*missing]);
    }
}

// RFC 4760 section 3 / RFC 7606 3(d): "[RFC4760] reclassifies NEXT_HOP as what is
// effectively discretionary": routes only in MP_REACH_NLRI need no NEXT_HOP.
#[test]
fn rfc4760_3_no_next_hop_needed_with_only_mp_reach() {
    let u = decode_update(
        &update(&[], &[mp_reach_v6(), base_mp()].concat(), &[]),
        &Context::MODERN,
    );
    assert_eq!(errors(&u), []);
    let reach = u.mp_reach.as_ref().map(|r| &r.nlri);
    assert_eq!(
        reach,
        Some(&Prefixes::V6(vec![Nlri::new(net6("2001:db8:1::/48"))]))
    );
    // ORIGIN and AS_PATH are still mandatory with MP_REACH_NLRI.
    let u = decode_update(
        &update(&[], &[mp_reach_v6(), origin(0)].concat(), &[]),
        &Context::MODERN,
    );
    assert_eq!(
        errors(&u),
        [(AS_PATH, Missing, WITHDRAW, MISSING_WELL_KNOWN)]
    );
    assert!(u.treat_as_withdraw());
}

// RFC 4760 section 3: "in IBGP exchanges such a message MUST also carry the
// LOCAL_PREF attribute"; missing from an internal peer -> treat-as-withdraw.
#[test]
fn rfc4760_3_local_pref_missing_from_internal_peer_is_treat_as_withdraw() {
    let u = decode_update(&update(&[], &base(), NLRI_10), &ctx(PeerKind::Internal));
    assert_withdraw(&u, &[(LOCAL_PREF, Missing, WITHDRAW, MISSING_WELL_KNOWN)]);
    assert_eq!(u.errors[0].data.as_ref(), &[LOCAL_PREF]);
    // Not required from an external peer.
    let u = decode_update(
        &update(&[], &base(), NLRI_10),
        &ctx(PeerKind::External(65002)),
    );
    assert_eq!(errors(&u), []);
}

// 3(h): "When multiple attribute errors exist in an UPDATE message ... the
// approach with the strongest action MUST be used."
#[test]
fn rfc7606_3h_strongest_action_wins() {
    // Attribute discard (ATOMIC_AGGREGATE) and treat-as-withdraw (COMMUNITIES).
    let attrs = [
        base(),
        attr(WK, ATOMIC_AGGREGATE, &[1]),
        attr(OPT_T, COMMUNITIES, &[0, 1, 0]),
    ]
    .concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_withdraw(
        &u,
        &[
            (ATOMIC_AGGREGATE, Length, DISCARD, ATTRIBUTE_LENGTH_ERROR),
            (COMMUNITIES, Length, WITHDRAW, ATTRIBUTE_LENGTH_ERROR),
        ],
    );
    assert_eq!(u.action(), Some(WITHDRAW));
    // Two discards stay a discard.
    let attrs = [
        base(),
        attr(WK, ATOMIC_AGGREGATE, &[1]),
        attr(OPT_T, AGGREGATOR, &[0, 1]),
    ]
    .concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_discard(
        &u,
        &[
            (ATOMIC_AGGREGATE, Length, DISCARD, ATTRIBUTE_LENGTH_ERROR),
            (AGGREGATOR, Length, DISCARD, ATTRIBUTE_LENGTH_ERROR),
        ],
    );
    // A session reset beats treat-as-withdraw.
    let bad_mp = attr(OPT_NT, MP_REACH, &[0, 2, 1, 0]);
    let attrs = [base(), attr(OPT_T, COMMUNITIES, &[0, 1, 0]), bad_mp.clone()].concat();
    assert_eq!(
        reset(&update(&[], &attrs, NLRI_10), &Context::MODERN),
        notification(UPDATE_ERR, OPTIONAL_ATTRIBUTE_ERROR, &bad_mp)
    );
}

// 3(i): "The Withdrawn Routes field MUST be checked for syntactic correctness in
// the same manner as the NLRI field" -> a prefix length of 33 resets with 3/10.
#[test]
fn rfc7606_3i_withdrawn_prefix_length_33_is_session_reset_3_10() {
    let m = update(&[33, 10, 0, 0, 0, 0], &[], &[]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, INVALID_NETWORK_FIELD, &[])
    );
}

// 3(i) with 5.3: "the length of the last NLRI found exceeds the amount of
// unconsumed data remaining in the field" -> 3/10.
#[test]
fn rfc7606_3i_withdrawn_prefix_overrun_is_session_reset_3_10() {
    let m = update(&[24, 10, 0], &[], &[]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, INVALID_NETWORK_FIELD, &[])
    );
}

// 5.3: "The length of any of the included NLRI is greater than 32" -> the NLRI
// field cannot be parsed, so 3/10 with empty data.
#[test]
fn rfc7606_5_3_nlri_prefix_length_33_is_session_reset_3_10() {
    let m = update(&[], &base(), &[33, 10, 0, 0, 0, 0]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, INVALID_NETWORK_FIELD, &[])
    );
}

// 5.3: "the length of the last NLRI found exceeds the amount of unconsumed data
// remaining in the field" -> 3/10.
#[test]
fn rfc7606_5_3_nlri_overrun_is_session_reset_3_10() {
    let m = update(&[], &base(), &[24, 10, 0, 0, 16, 10]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, INVALID_NETWORK_FIELD, &[])
    );
}

// Section 4: "the length of the last encountered path attribute would cause the
// Total Attribute Length to be exceeded" -> treat-as-withdraw, and the NLRI are
// found through the Total Attribute Length.
#[test]
fn rfc7606_4_attribute_overrun_is_treat_as_withdraw() {
    // MED announcing 10 octets with 4 left in the attribute field.
    let attrs = [base(), vec![OPT_NT, MED, 10, 0, 0, 0, 5]].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_withdraw(&u, &[(MED, Length, WITHDRAW, MALFORMED_ATTRIBUTE_LIST)]);
    assert_eq!(u.attributes.origin, Some(Origin::Igp));
}

// Section 4: "fewer than three octets remain (or fewer than four octets, if the
// Attribute Flags field has the Extended Length bit set)" -> treat-as-withdraw.
#[test]
fn rfc7606_4_attribute_underrun_is_treat_as_withdraw() {
    let attrs = [base(), vec![OPT_NT, MED]].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_withdraw(&u, &[(MED, Length, WITHDRAW, MALFORMED_ATTRIBUTE_LIST)]);
    let attrs = [base(), vec![OPT_NT | EXT, MED, 0]].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_withdraw(&u, &[(MED, Length, WITHDRAW, MALFORMED_ATTRIBUTE_LIST)]);
}

// Sections 4 and 5.2: an overrun in an UPDATE without reachable NLRI leaves
// nothing to withdraw for sure -> session reset (3/1).
#[test]
fn rfc7606_4_attribute_overrun_without_nlri_is_session_reset() {
    let attrs = [origin(0), as_path4(&[65002]), vec![OPT_NT, MED, 10, 0, 0]].concat();
    let m = update(&[24, 10, 0, 0], &attrs, &[]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, MALFORMED_ATTRIBUTE_LIST, &[])
    );
}

// Sections 4 and 3(j): an overrunning MP_REACH_NLRI cannot be parsed, so its
// routes cannot be withdrawn -> session reset.
#[test]
fn rfc7606_4_mp_reach_overrun_is_session_reset() {
    let value = mp_reach_v6_value();
    let mut bad = vec![OPT_NT, MP_REACH, value.len() as u8 + 5];
    bad.extend_from_slice(&value);
    let m = update(&[], &[base_mp(), bad].concat(), &[]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, MALFORMED_ATTRIBUTE_LIST, &[])
    );
}

// 5.2: "if any path attribute errors are encountered in such an UPDATE message
// [no reachable NLRI] and if any encountered error specifies an error-handling
// approach other than "attribute discard", then the "session reset" approach MUST
// be used" -> here 3/6 with the ORIGIN attribute as data.
#[test]
fn rfc7606_5_2_malformed_origin_without_nlri_is_session_reset() {
    let bad = origin(3);
    let m = update(
        &[24, 10, 0, 0],
        &[bad.clone(), as_path4(&[65002])].concat(),
        &[],
    );
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, INVALID_ORIGIN, &bad)
    );
}

// 5.2: an attribute-discard error in an UPDATE without NLRI is no reason to reset.
#[test]
fn rfc7606_5_2_attribute_discard_without_nlri_is_not_a_reset() {
    let attrs = [
        origin(0),
        as_path4(&[65002]),
        attr(WK, ATOMIC_AGGREGATE, &[1]),
    ]
    .concat();
    let u = decode_update(&update(&[24, 10, 0, 0], &attrs, &[]), &Context::MODERN);
    assert_discard(
        &u,
        &[(ATOMIC_AGGREGATE, Length, DISCARD, ATTRIBUTE_LENGTH_ERROR)],
    );
    assert_eq!(u.withdrawn, nlri_10());
}

// 5.2 with 7.3: a malformed NEXT_HOP in an UPDATE that announces nothing at all is
// treat-as-withdraw (RFC 4760 only exempts NEXT_HOP when the routes are in
// MP_REACH_NLRI), so the session is reset.
#[test]
fn rfc7606_5_2_malformed_next_hop_without_any_nlri_is_session_reset() {
    let bad = attr(WK, NEXT_HOP, &[192, 0, 2]);
    let attrs = [origin(0), as_path4(&[65002]), bad.clone()].concat();
    let m = update(&[24, 10, 0, 0], &attrs, &[]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, ATTRIBUTE_LENGTH_ERROR, &bad)
    );
}

// RFC 4271 section 6.3: "If any of the well-known mandatory attributes are not
// recognized, then the Error Subcode MUST be set to Unrecognized Well-known
// Attribute. The Data field MUST contain the unrecognized attribute".
#[test]
fn rfc4271_6_3_unrecognized_well_known_attribute_is_session_reset_3_2() {
    let bad = attr(WK, 99, &[1, 2]);
    let m = update(&[], &[base(), bad.clone()].concat(), NLRI_10);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, UNRECOGNIZED_WELL_KNOWN, &bad)
    );
}

// RFC 4271 section 9: "If an optional transitive attribute is unrecognized, the
// Partial bit ... is set to 1, and the attribute is retained for propagation".
#[test]
fn rfc4271_9_unknown_optional_transitive_is_kept_with_partial_bit() {
    let attrs = [base(), attr(OPT_T | EXT, 99, &[1, 2, 3])].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_eq!(errors(&u), []);
    assert_eq!(
        u.attributes.unknown,
        vec![RawAttribute {
            flags: OPT_T | flags::PARTIAL,
            type_code: 99,
            value: vec![1, 2, 3].into(),
        }]
    );
    // Passed on with the Partial bit set.
    let out = match Message::Update(u).to_bytes(&Context::MODERN) {
        Ok(out) => out,
        Err(e) => panic!("encode: {e}"),
    };
    let want = attr(OPT_T | flags::PARTIAL, 99, &[1, 2, 3]);
    assert!(out.windows(want.len()).any(|w| w == want.as_slice()));
}

// RFC 4271 section 5: "Unrecognized non-transitive optional attributes MUST be
// quietly ignored and not passed along to other BGP peers."
#[test]
fn rfc4271_5_unknown_optional_non_transitive_is_dropped() {
    let attrs = [base(), attr(OPT_NT, 99, &[1, 2, 3])].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_eq!(errors(&u), []);
    assert!(u.attributes.unknown.is_empty());
    assert_eq!(u.nlri, nlri_10());
}

// ---------------------------------------------------------------------------
// RFC 7606 section 7: per-attribute rules
// ---------------------------------------------------------------------------

// 7.1: "The attribute is considered malformed if its length is not 1".
#[test]
fn rfc7606_7_1_origin_bad_length_is_treat_as_withdraw() {
    let bad = attr(WK, ORIGIN, &[0, 0]);
    let attrs = [bad.clone(), as_path4(&[65002]), next_hop([192, 0, 2, 1])].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_withdraw(&u, &[(ORIGIN, Length, WITHDRAW, ATTRIBUTE_LENGTH_ERROR)]);
    assert_eq!(u.errors[0].data, bad);
}

// 7.1: "... or if it has an undefined value".
#[test]
fn rfc7606_7_1_origin_undefined_value_is_treat_as_withdraw() {
    let attrs = [origin(3), as_path4(&[65002]), next_hop([192, 0, 2, 1])].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_withdraw(&u, &[(ORIGIN, Value, WITHDRAW, INVALID_ORIGIN)]);
}

/// An UPDATE with ORIGIN, the given AS_PATH value and NEXT_HOP, plus NLRI.
fn with_as_path(value: &[u8]) -> Vec<u8> {
    let attrs = [
        origin(0),
        attr(WK, AS_PATH, value),
        next_hop([192, 0, 2, 1]),
    ]
    .concat();
    update(&[], &attrs, NLRI_10)
}

const AS_PATH_WITHDRAW: Entry = (AS_PATH, Value, WITHDRAW, MALFORMED_AS_PATH);

// 7.2: "An AS_PATH is considered malformed if an unrecognized segment type is
// encountered".
#[test]
fn rfc7606_7_2_as_path_unknown_segment_type_is_treat_as_withdraw() {
    let u = decode_update(&with_as_path(&seg4(5, &[65002])), &Context::MODERN);
    assert_withdraw(&u, &[AS_PATH_WITHDRAW]);
}

// 7.2: "It has a Path Segment Length field of zero."
#[test]
fn rfc7606_7_2_as_path_zero_segment_length_is_treat_as_withdraw() {
    let value = [seg4(AS_SEQUENCE, &[65002]), vec![AS_SEQUENCE, 0]].concat();
    let u = decode_update(&with_as_path(&value), &Context::MODERN);
    assert_withdraw(&u, &[AS_PATH_WITHDRAW]);
}

// 7.2: "There is an overrun where the Path Segment Length field of the last
// segment encountered would cause the Attribute Length to be exceeded."
#[test]
fn rfc7606_7_2_as_path_segment_overrun_is_treat_as_withdraw() {
    let mut value = seg4(AS_SEQUENCE, &[65002]);
    value[1] = 2;
    let u = decode_update(&with_as_path(&value), &Context::MODERN);
    assert_withdraw(&u, &[AS_PATH_WITHDRAW]);
    // The same 2-octet path read with 4-octet AS numbers overruns too.
    let u = decode_update(
        &with_as_path(&seg2(AS_SEQUENCE, &[1, 2, 3])),
        &Context::MODERN,
    );
    assert_withdraw(&u, &[AS_PATH_WITHDRAW]);
}

// 7.2: "There is an underrun where after the last successfully parsed segment
// there is only a single octet remaining (that is, there is not enough unconsumed
// data to provide even an empty segment header)."
#[test]
fn rfc7606_7_2_as_path_underrun_is_treat_as_withdraw() {
    let value = [seg4(AS_SEQUENCE, &[65002]), vec![AS_SEQUENCE]].concat();
    let u = decode_update(&with_as_path(&value), &Context::MODERN);
    assert_withdraw(&u, &[AS_PATH_WITHDRAW]);
}

// 7.2: a zero-length AS_PATH is valid (routes originated inside the AS).
#[test]
fn rfc7606_7_2_empty_as_path_is_valid() {
    let u = decode_update(&with_as_path(&[]), &ctx(PeerKind::Internal));
    assert_eq!(
        errors(&u),
        [(LOCAL_PREF, Missing, WITHDRAW, MISSING_WELL_KNOWN)]
    );
    let u = decode_update(&with_as_path(&[]), &Context::MODERN);
    assert_eq!(errors(&u), []);
    assert_eq!(u.attributes.as_path, Some(AsPath::default()));
}

// RFC 7607 section 2: "An UPDATE message that contains the AS number of zero in
// the AS_PATH ... MUST be considered as malformed".
#[test]
fn rfc7607_as_path_with_as_0_is_treat_as_withdraw() {
    let u = decode_update(
        &with_as_path(&seg4(AS_SEQUENCE, &[65002, 0])),
        &Context::MODERN,
    );
    assert_withdraw(&u, &[AS_PATH_WITHDRAW]);
    let u = decode_update(&with_as_path(&seg4(AS_SET, &[0])), &Context::MODERN);
    assert_withdraw(&u, &[AS_PATH_WITHDRAW]);
}

// RFC 5065 section 5: "It is an error for a BGP speaker to receive an UPDATE
// message with an AS_PATH attribute that contains AS_CONFED_SEQUENCE or
// AS_CONFED_SET segments from a neighbor that is not located in the same
// confederation" -> malformed AS_PATH -> treat-as-withdraw.
#[test]
fn rfc5065_5_confed_segments_from_external_peer_are_treat_as_withdraw() {
    let value = [
        seg4(AS_CONFED_SEQUENCE, &[65010]),
        seg4(AS_SEQUENCE, &[65002]),
    ]
    .concat();
    let u = decode_update(&with_as_path(&value), &ctx(PeerKind::External(65002)));
    assert_withdraw(&u, &[AS_PATH_WITHDRAW]);
    let value = [seg4(AS_SEQUENCE, &[65002]), seg4(4, &[65010])].concat();
    let u = decode_update(&with_as_path(&value), &ctx(PeerKind::External(65002)));
    assert_withdraw(&u, &[AS_PATH_WITHDRAW]);
    // The same path from a confederation peer is fine.
    let value = [
        seg4(AS_CONFED_SEQUENCE, &[65010]),
        seg4(AS_SEQUENCE, &[65002]),
    ]
    .concat();
    let u = decode_update(&with_as_path(&value), &ctx(PeerKind::ConfedExternal(65010)));
    assert_eq!(errors(&u), []);
}

// RFC 5065 section 5: "It is a error for a BGP speaker to receive an update
// message from a confederation peer that is not in the same Member-AS that does
// not have AS_CONFED_SEQUENCE as the first segment."
#[test]
fn rfc5065_5_confed_external_without_leading_confed_sequence_is_treat_as_withdraw() {
    let u = decode_update(
        &with_as_path(&seg4(AS_SEQUENCE, &[65002])),
        &ctx(PeerKind::ConfedExternal(65010)),
    );
    assert_withdraw(&u, &[AS_PATH_WITHDRAW]);
}

// 7.3: "The attribute is considered malformed if its length is not 4".
#[test]
fn rfc7606_7_3_next_hop_bad_length_is_treat_as_withdraw() {
    let bad = attr(WK, NEXT_HOP, &[192, 0, 2, 1, 0]);
    let attrs = [origin(0), as_path4(&[65002]), bad.clone()].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_withdraw(&u, &[(NEXT_HOP, Length, WITHDRAW, ATTRIBUTE_LENGTH_ERROR)]);
    assert_eq!(u.errors[0].data, bad);
}

// RFC 4271 section 6.3 with 7606 3(e): "Syntactic correctness means that the
// NEXT_HOP attribute represents a valid IP host address" (not 0.0.0.0, not
// multicast) -> treat-as-withdraw with 3/8.
#[test]
fn rfc7606_3e_next_hop_not_a_host_address_is_treat_as_withdraw() {
    for nh in [[0, 0, 0, 0], [224, 0, 0, 1], [255, 255, 255, 255]] {
        let attrs = [origin(0), as_path4(&[65002]), next_hop(nh)].concat();
        let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
        assert_withdraw(&u, &[(NEXT_HOP, Value, WITHDRAW, INVALID_NEXT_HOP)]);
        assert_eq!(u.attributes.next_hop, None);
    }
}

// RFC 4760 section 3: "If such a message [only MP_REACH_NLRI routes] contains the
// NEXT_HOP attribute, the BGP speaker that receives the message SHOULD ignore this
// attribute" -> a malformed one is only discarded.
#[test]
fn rfc4760_3_bad_next_hop_with_only_mp_reach_is_attribute_discard() {
    for bad in [
        attr(WK, NEXT_HOP, &[192, 0, 2]),
        next_hop([0, 0, 0, 0]),
        attr(OPT_T, NEXT_HOP, &[192, 0, 2, 1]),
    ] {
        let attrs = [mp_reach_v6(), base_mp(), bad].concat();
        let u = decode_update(&update(&[], &attrs, &[]), &Context::MODERN);
        assert_eq!(u.action(), Some(DISCARD), "{:?}", u.errors);
        assert_eq!(u.errors.len(), 1);
        assert_eq!(u.errors[0].type_code, NEXT_HOP);
        assert!(u.mp_reach.is_some());
    }
    let attrs = [mp_reach_v6(), base_mp(), attr(WK, NEXT_HOP, &[192, 0, 2])].concat();
    let u = decode_update(&update(&[], &attrs, &[]), &Context::MODERN);
    assert_discard(&u, &[(NEXT_HOP, Length, DISCARD, ATTRIBUTE_LENGTH_ERROR)]);
}

// 7.4: MULTI_EXIT_DISC "is considered malformed if its length is not 4".
#[test]
fn rfc7606_7_4_med_bad_length_is_treat_as_withdraw() {
    let attrs = [base(), attr(OPT_NT, MED, &[0, 0, 1])].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_withdraw(&u, &[(MED, Length, WITHDRAW, ATTRIBUTE_LENGTH_ERROR)]);
}

// 7.5: "if the LOCAL_PREF attribute is received from an external neighbor, it
// SHALL be discarded using the approach of "attribute discard"".
#[test]
fn rfc7606_7_5_local_pref_from_external_is_attribute_discard() {
    for value in [&[0, 0, 0, 100][..], &[0, 100][..]] {
        let attrs = [base(), attr(WK, LOCAL_PREF, value)].concat();
        let u = decode_update(
            &update(&[], &attrs, NLRI_10),
            &ctx(PeerKind::External(65002)),
        );
        assert_eq!(errors(&u).len(), 1);
        assert_eq!(u.errors[0].type_code, LOCAL_PREF);
        assert_eq!(u.errors[0].fault, NotAllowed);
        assert_eq!(u.action(), Some(DISCARD));
        assert_eq!(u.attributes.local_pref, None);
        assert_eq!(u.nlri, nlri_10());
    }
}

// 7.5: "if received from an internal neighbor, it SHALL be considered malformed if
// its length is not equal to 4" -> treat-as-withdraw.
#[test]
fn rfc7606_7_5_local_pref_bad_length_from_internal_is_treat_as_withdraw() {
    let attrs = [base(), attr(WK, LOCAL_PREF, &[0, 100])].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &ctx(PeerKind::Internal));
    assert_withdraw(
        &u,
        &[(LOCAL_PREF, Length, WITHDRAW, ATTRIBUTE_LENGTH_ERROR)],
    );
    let attrs = [base(), attr(WK, LOCAL_PREF, &[0, 0, 0, 100])].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &ctx(PeerKind::Internal));
    assert_eq!(errors(&u), []);
    assert_eq!(u.attributes.local_pref, Some(100));
}

// 7.6: ATOMIC_AGGREGATE "SHALL be considered malformed if its length is not 0"
// -> attribute discard.
#[test]
fn rfc7606_7_6_atomic_aggregate_bad_length_is_attribute_discard() {
    let attrs = [base(), attr(WK, ATOMIC_AGGREGATE, &[0])].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_discard(
        &u,
        &[(ATOMIC_AGGREGATE, Length, DISCARD, ATTRIBUTE_LENGTH_ERROR)],
    );
    assert!(!u.attributes.atomic_aggregate);
    assert_eq!(u.nlri, nlri_10());
}

// 7.7: AGGREGATOR is malformed if "Its length is not 6 (when the 4-octet AS
// number capability is not advertised to or not received from the peer)" or "Its
// length is not 8 (when the 4-octet AS number capability is both advertised to
// and received from the peer)" -> attribute discard.
#[test]
fn rfc7606_7_7_aggregator_length_depends_on_four_octet_as() {
    let six = attr(OPT_T, AGGREGATOR, &[0xfd, 0xea, 192, 0, 2, 9]);
    let eight = attr(OPT_T, AGGREGATOR, &[0, 0, 0xfd, 0xea, 192, 0, 2, 9]);
    let aggr = Some(bgp_core::wire::Aggregator {
        asn: 65002,
        address: Ipv4Addr::new(192, 0, 2, 9),
    });

    // 4-octet context: 6 is malformed, 8 is right.
    let attrs = [base(), six.clone()].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_discard(&u, &[(AGGREGATOR, Length, DISCARD, ATTRIBUTE_LENGTH_ERROR)]);
    assert_eq!(u.attributes.aggregator, None);
    let attrs = [base(), eight.clone()].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_eq!(errors(&u), []);
    assert_eq!(u.attributes.aggregator, aggr);

    // 2-octet context: 8 is malformed, 6 is right.
    let legacy_base = [origin(0), as_path2(&[65002]), next_hop([192, 0, 2, 1])].concat();
    let attrs = [legacy_base.clone(), eight].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &legacy());
    assert_discard(&u, &[(AGGREGATOR, Length, DISCARD, ATTRIBUTE_LENGTH_ERROR)]);
    let attrs = [legacy_base, six].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &legacy());
    assert_eq!(errors(&u), []);
    assert_eq!(u.attributes.aggregator, aggr);
}

// RFC 7607: AS 0 in AGGREGATOR is malformed; 7606 7.7 -> attribute discard.
#[test]
fn rfc7607_aggregator_with_as_0_is_attribute_discard() {
    let attrs = [base(), attr(OPT_T, AGGREGATOR, &[0, 0, 0, 0, 192, 0, 2, 9])].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_discard(
        &u,
        &[(AGGREGATOR, Value, DISCARD, OPTIONAL_ATTRIBUTE_ERROR)],
    );
    assert_eq!(u.attributes.aggregator, None);
}

// 7.8: "The Community attribute SHALL be considered malformed if its length is not
// a non-zero multiple of 4." -> treat-as-withdraw.
#[test]
fn rfc7606_7_8_communities_bad_length_is_treat_as_withdraw() {
    for value in [&[][..], &[0, 1, 0, 2, 0][..]] {
        let attrs = [base(), attr(OPT_T, COMMUNITIES, value)].concat();
        let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
        assert_withdraw(
            &u,
            &[(COMMUNITIES, Length, WITHDRAW, ATTRIBUTE_LENGTH_ERROR)],
        );
    }
}

// 7.9: "if the ORIGINATOR_ID attribute is received from an external neighbor, it
// SHALL be discarded using the approach of "attribute discard"".
#[test]
fn rfc7606_7_9_originator_id_from_external_is_attribute_discard() {
    let attrs = [base(), attr(OPT_NT, ORIGINATOR_ID, &[192, 0, 2, 7])].concat();
    let u = decode_update(
        &update(&[], &attrs, NLRI_10),
        &ctx(PeerKind::External(65002)),
    );
    assert_discard(
        &u,
        &[(ORIGINATOR_ID, NotAllowed, DISCARD, OPTIONAL_ATTRIBUTE_ERROR)],
    );
    assert_eq!(u.attributes.originator_id, None);
}

// 7.9: "if received from an internal neighbor, it SHALL be considered malformed if
// its length is not equal to 4" -> treat-as-withdraw.
#[test]
fn rfc7606_7_9_originator_id_bad_length_from_internal_is_treat_as_withdraw() {
    let attrs = [
        base(),
        attr(WK, LOCAL_PREF, &[0, 0, 0, 100]),
        attr(OPT_NT, ORIGINATOR_ID, &[192, 0, 2]),
    ]
    .concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &ctx(PeerKind::Internal));
    assert_withdraw(
        &u,
        &[(ORIGINATOR_ID, Length, WITHDRAW, ATTRIBUTE_LENGTH_ERROR)],
    );
}

// 7.10: "if the CLUSTER_LIST attribute is received from an external neighbor, it
// SHALL be discarded using the approach of "attribute discard"".
#[test]
fn rfc7606_7_10_cluster_list_from_external_is_attribute_discard() {
    let attrs = [base(), attr(OPT_NT, CLUSTER_LIST, &[192, 0, 2, 7])].concat();
    let u = decode_update(
        &update(&[], &attrs, NLRI_10),
        &ctx(PeerKind::External(65002)),
    );
    assert_discard(
        &u,
        &[(CLUSTER_LIST, NotAllowed, DISCARD, OPTIONAL_ATTRIBUTE_ERROR)],
    );
    assert!(u.attributes.cluster_list.is_empty());
}

// 7.10: "if received from an internal neighbor, it SHALL be considered malformed
// if its length is not a non-zero multiple of 4" -> treat-as-withdraw.
#[test]
fn rfc7606_7_10_cluster_list_bad_length_from_internal_is_treat_as_withdraw() {
    for value in [&[][..], &[192, 0, 2, 7, 1, 1][..]] {
        let attrs = [
            base(),
            attr(WK, LOCAL_PREF, &[0, 0, 0, 100]),
            attr(OPT_NT, CLUSTER_LIST, value),
        ]
        .concat();
        let u = decode_update(&update(&[], &attrs, NLRI_10), &ctx(PeerKind::Internal));
        assert_withdraw(
            &u,
            &[(CLUSTER_LIST, Length, WITHDRAW, ATTRIBUTE_LENGTH_ERROR)],
        );
    }
}

// 7.11: "If the Length of Next Hop Network Address field of the MP_REACH attribute
// is inconsistent with that which was expected, the attribute is considered
// malformed ... the "session reset" or "AFI/SAFI disable" approach MUST be used"
// -> 3/9 with the attribute (flags, type, length, value) as data.
#[test]
fn rfc7606_7_11_mp_reach_next_hop_length_inconsistent_is_session_reset_3_9() {
    // IPv6 unicast with a 12-octet next hop.
    let mut value = vec![0, 2, 1, 12];
    value.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 1]);
    value.extend_from_slice(&[0, 48, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01]);
    let bad = attr(OPT_NT, MP_REACH, &value);
    let m = update(&[], &[bad.clone(), base_mp()].concat(), &[]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, OPTIONAL_ATTRIBUTE_ERROR, &bad)
    );
    // IPv4 unicast with a 5-octet next hop.
    let value = [0, 1, 1, 5, 192, 0, 2, 1, 0, 0, 24, 10, 0, 0];
    let bad = attr(OPT_NT, MP_REACH, &value);
    let m = update(&[], &[bad.clone(), base_mp()].concat(), &[]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, OPTIONAL_ATTRIBUTE_ERROR, &bad)
    );
    // IPv6 unicast with a 4-octet (IPv4) next hop: RFC 2545 allows 16 or 32.
    let mut value = vec![0, 2, 1, 4, 192, 0, 2, 1, 0];
    value.extend_from_slice(&[48, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01]);
    let bad = attr(OPT_NT, MP_REACH, &value);
    let m = update(&[], &[bad.clone(), base_mp()].concat(), &[]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, OPTIONAL_ATTRIBUTE_ERROR, &bad)
    );
    // A next hop length that runs past the attribute, in the Extended Length form.
    let bad = attr(OPT_NT | EXT, MP_REACH, &[0, 2, 1, 32, 0x20, 0x01]);
    let m = update(&[], &[bad.clone(), base_mp()].concat(), &[]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, OPTIONAL_ATTRIBUTE_ERROR, &bad)
    );
}

// 7.11 (RFC 2545): a 32-octet IPv6 next hop (global and link-local) is expected.
#[test]
fn rfc2545_mp_reach_ipv6_link_local_next_hop_is_valid() {
    let mut value = vec![0, 2, 1, 32];
    value.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
    value.extend_from_slice(&Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1).octets());
    value.extend_from_slice(&[0, 48, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01]);
    let attrs = [attr(OPT_NT, MP_REACH, &value), base_mp()].concat();
    let u = decode_update(&update(&[], &attrs, &[]), &Context::MODERN);
    assert_eq!(errors(&u), []);
    assert_eq!(
        u.mp_reach,
        Some(MpReach {
            family: AfiSafi::IPV6_UNICAST,
            next_hop: NextHop::V6 {
                global: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
                link_local: Some(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
            },
            nlri: Prefixes::V6(vec![Nlri::new(net6("2001:db8:1::/48"))]),
        })
    );
}

// 5.3: MP_REACH_NLRI is incorrect if "the length of the MP_REACH_NLRI attribute is
// less than 5" -> reset 3/9.
#[test]
fn rfc7606_5_3_mp_reach_shorter_than_5_is_session_reset_3_9() {
    let bad = attr(OPT_NT, MP_REACH, &[0, 2, 1, 0]);
    let m = update(&[], &[bad.clone(), base_mp()].concat(), &[]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, OPTIONAL_ATTRIBUTE_ERROR, &bad)
    );
}

// 5.3: "The length of the MP_UNREACH_NLRI attribute is less than 3" -> reset 3/9.
#[test]
fn rfc7606_5_3_mp_unreach_shorter_than_3_is_session_reset_3_9() {
    let bad = attr(OPT_NT, MP_UNREACH, &[0, 2]);
    let m = update(&[], &bad, &[]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, OPTIONAL_ATTRIBUTE_ERROR, &bad)
    );
}

// 5.3: "The length of any of the included NLRI is inconsistent with the given
// AFI/SAFI (for example, if an IPv4 NLRI has a length greater than 32 or an IPv6
// NLRI has a length greater than 128)" -> reset 3/9.
#[test]
fn rfc7606_5_3_mp_nlri_prefix_too_long_is_session_reset_3_9() {
    // IPv4 unicast, /33.
    let bad = attr(
        OPT_NT,
        MP_REACH,
        &[0, 1, 1, 4, 192, 0, 2, 1, 0, 33, 10, 0, 0, 0, 0],
    );
    let m = update(&[], &[bad.clone(), base_mp()].concat(), &[]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, OPTIONAL_ATTRIBUTE_ERROR, &bad)
    );
    // IPv6 unicast, /129.
    let mut value = vec![0, 2, 1, 16];
    value.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
    value.push(0);
    value.push(129);
    value.extend_from_slice(&[0x20; 17]);
    let bad = attr(OPT_NT, MP_REACH, &value);
    let m = update(&[], &[bad.clone(), base_mp()].concat(), &[]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, OPTIONAL_ATTRIBUTE_ERROR, &bad)
    );
    // MP_UNREACH_NLRI, IPv6 /129.
    let mut value = vec![0, 2, 1, 129];
    value.extend_from_slice(&[0x20; 17]);
    let bad = attr(OPT_NT, MP_UNREACH, &value);
    assert_eq!(
        reset(&update(&[], &bad, &[]), &Context::MODERN),
        notification(UPDATE_ERR, OPTIONAL_ATTRIBUTE_ERROR, &bad)
    );
}

// 5.3: "When parsing NLRI contained in the attribute, the length of the last NLRI
// found exceeds the amount of unconsumed data remaining in the attribute."
#[test]
fn rfc7606_5_3_mp_nlri_overrun_is_session_reset_3_9() {
    let mut value = mp_reach_v6_value();
    value.extend_from_slice(&[64, 0x20, 0x01]);
    let bad = attr(OPT_NT, MP_REACH, &value);
    let m = update(&[], &[bad.clone(), base_mp()].concat(), &[]);
    assert_eq!(
        reset(&m, &Context::MODERN),
        notification(UPDATE_ERR, OPTIONAL_ATTRIBUTE_ERROR, &bad)
    );
    let bad = attr(OPT_NT, MP_UNREACH, &[0, 2, 1, 64, 0x20, 0x01]);
    assert_eq!(
        reset(&update(&[], &bad, &[]), &Context::MODERN),
        notification(UPDATE_ERR, OPTIONAL_ATTRIBUTE_ERROR, &bad)
    );
}

// 7.14: "The Extended Community attribute SHALL be considered malformed if its
// length is not a non-zero multiple of 8." -> treat-as-withdraw.
#[test]
fn rfc7606_7_14_extended_communities_bad_length_is_treat_as_withdraw() {
    for value in [&[][..], &[0; 12][..]] {
        let attrs = [base(), attr(OPT_T, EXT_COMMUNITIES, value)].concat();
        let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
        assert_withdraw(
            &u,
            &[(EXT_COMMUNITIES, Length, WITHDRAW, ATTRIBUTE_LENGTH_ERROR)],
        );
    }
    // "a BGP speaker MUST NOT treat an unrecognized Extended Community Type or
    // Sub-Type as an error."
    let attrs = [base(), attr(OPT_T, EXT_COMMUNITIES, &[0x7f; 8])].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_eq!(errors(&u), []);
    assert_eq!(u.attributes.ext_communities.len(), 1);
}

// RFC 8092 section 6: "A BGP Large Communities attribute SHALL be considered
// malformed if the length ... is not a non-zero multiple of 12" -> treat-as-withdraw.
#[test]
fn rfc8092_6_large_communities_bad_length_is_treat_as_withdraw() {
    for value in [&[][..], &[0; 16][..]] {
        let attrs = [base(), attr(OPT_T, LARGE_COMMUNITY, value)].concat();
        let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
        assert_withdraw(
            &u,
            &[(LARGE_COMMUNITY, Length, WITHDRAW, ATTRIBUTE_LENGTH_ERROR)],
        );
    }
    // "SHALL NOT be considered malformed due to presence of duplicate Large
    // Community values."
    let one = [0, 0, 0xfd, 0xe9, 0, 0, 0, 1, 0, 0, 0, 2];
    let attrs = [base(), attr(OPT_T, LARGE_COMMUNITY, &[one, one].concat())].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_eq!(errors(&u), []);
    assert_eq!(u.attributes.large_communities.len(), 2);
}

// RFC 9234 section 5: "The OTC Attribute is considered malformed if the length
// value is not 4. An UPDATE message with a malformed OTC Attribute SHALL be
// handled using the approach of "treat-as-withdraw"".
#[test]
fn rfc9234_5_otc_bad_length_is_treat_as_withdraw() {
    let attrs = [base(), attr(OPT_T, OTC, &[0xfd, 0xea])].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_withdraw(&u, &[(OTC, Length, WITHDRAW, ATTRIBUTE_LENGTH_ERROR)]);
    let attrs = [base(), attr(OPT_T, OTC, &[0, 0, 0xfd, 0xea])].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_eq!(errors(&u), []);
    assert_eq!(u.attributes.otc, Some(65002));
}

// ---------------------------------------------------------------------------
// RFC 6793: AS4_PATH and AS4_AGGREGATOR
// ---------------------------------------------------------------------------

/// ORIGIN and NEXT_HOP for the 2-octet tests, which bring their own AS_PATH.
fn legacy_rest() -> Vec<u8> {
    [origin(0), next_hop([192, 0, 2, 1])].concat()
}

fn as4_path(segments: &[u8]) -> Vec<u8> {
    attr(OPT_T, AS4_PATH, segments)
}

fn seq(asns: &[u32]) -> Segment {
    Segment {
        kind: SegmentType::Sequence,
        asns: asns.to_vec(),
    }
}

// RFC 6793 section 6: "A NEW BGP speaker that receives the AS4_PATH attribute or
// the AS4_AGGREGATOR attribute in an UPDATE message from another NEW BGP speaker
// MUST discard the path attribute and continue processing the UPDATE message."
#[test]
fn rfc6793_6_as4_attributes_between_new_speakers_are_discarded() {
    let attrs = [
        base(),
        as4_path(&seg4(AS_SEQUENCE, &[70_000])),
        attr(OPT_T, AS4_AGGREGATOR, &[0, 1, 0x11, 0x70, 192, 0, 2, 9]),
    ]
    .concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &Context::MODERN);
    assert_discard(
        &u,
        &[
            (AS4_PATH, NotAllowed, DISCARD, OPTIONAL_ATTRIBUTE_ERROR),
            (
                AS4_AGGREGATOR,
                NotAllowed,
                DISCARD,
                OPTIONAL_ATTRIBUTE_ERROR,
            ),
        ],
    );
    assert_eq!(u.attributes.as_path, Some(AsPath::from_sequence([65002])));
    assert_eq!(u.nlri, nlri_10());
}

// RFC 6793 section 6: AS4_PATH is malformed if "the attribute length is not a
// multiple of two or is too small (i.e., less than 6)", "the path segment length
// in the attribute is either zero or is inconsistent with the attribute length",
// or the segment type is not defined -> discard, and use AS_PATH alone.
#[test]
fn rfc6793_6_malformed_as4_path_is_discarded_and_as_path_used_alone() {
    let mut overrun = seg4(AS_SEQUENCE, &[70_000]);
    overrun[1] = 2;
    let bad = [
        vec![AS_SEQUENCE, 1, 0, 1],                                    // too small
        [seg4(AS_SEQUENCE, &[70_000]), vec![0]].concat(),              // odd length
        [seg4(AS_SEQUENCE, &[70_000]), vec![AS_SEQUENCE, 0]].concat(), // zero segment
        overrun,                                                       // inconsistent length
        seg4(7, &[70_000]),                                            // undefined type
        seg4(AS_SEQUENCE, &[70_000, 0]),                               // AS 0 (RFC 7607)
    ];
    for value in bad {
        let attrs = [legacy_rest(), as_path2(&[100, 23456]), as4_path(&value)].concat();
        let u = decode_update(&update(&[], &attrs, NLRI_10), &legacy());
        assert_discard(&u, &[(AS4_PATH, Value, DISCARD, OPTIONAL_ATTRIBUTE_ERROR)]);
        assert_eq!(
            u.attributes.as_path,
            Some(AsPath::from_sequence([100, 23456])),
            "AS4_PATH {value:?}"
        );
    }
}

// RFC 6793 section 6: "A NEW BGP speaker that receives these path segment types
// [confederation segments] in the AS4_PATH attribute of an UPDATE message from an
// OLD BGP speaker MUST discard these path segments ... and continue processing".
#[test]
fn rfc6793_6_confed_segments_in_as4_path_are_dropped() {
    let value = [
        seg4(AS_CONFED_SEQUENCE, &[65010]),
        seg4(AS_SEQUENCE, &[70_000]),
    ]
    .concat();
    let attrs = [legacy_rest(), as_path2(&[100, 23456]), as4_path(&value)].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &legacy());
    assert_eq!(errors(&u), []);
    let path = u.attributes.as_path.unwrap_or_default();
    assert_eq!(path.to_string(), "100 70000");
    assert!(!path.has_confed());
}

// RFC 6793 section 4.2.3: "When both of the attributes are received, if the AS
// number in the AGGREGATOR attribute is not AS_TRANS, then: the AS4_AGGREGATOR
// attribute and the AS4_PATH attribute SHALL be ignored".
#[test]
fn rfc6793_4_2_3_aggregator_not_as_trans_ignores_as4_attributes() {
    let attrs = [
        legacy_rest(),
        as_path2(&[100, 23456]),
        attr(OPT_T, AGGREGATOR, &[0, 200, 192, 0, 2, 9]),
        as4_path(&seg4(AS_SEQUENCE, &[70_000])),
        attr(OPT_T, AS4_AGGREGATOR, &[0, 1, 0x11, 0x70, 192, 0, 2, 10]),
    ]
    .concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &legacy());
    assert_eq!(errors(&u), []);
    assert_eq!(
        u.attributes.as_path,
        Some(AsPath::from_sequence([100, 23456]))
    );
    assert_eq!(
        u.attributes.aggregator,
        Some(bgp_core::wire::Aggregator {
            asn: 200,
            address: Ipv4Addr::new(192, 0, 2, 9),
        })
    );
}

// RFC 6793 section 4.2.3: the AGGREGATOR rule applies only "When both of the
// attributes are received": without AS4_AGGREGATOR, AS4_PATH is merged as usual.
#[test]
fn rfc6793_4_2_3_aggregator_without_as4_aggregator_still_merges_as4_path() {
    let attrs = [
        legacy_rest(),
        as_path2(&[100, 23456]),
        attr(OPT_T, AGGREGATOR, &[0, 200, 192, 0, 2, 9]),
        as4_path(&seg4(AS_SEQUENCE, &[70_000])),
    ]
    .concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &legacy());
    assert_eq!(errors(&u), []);
    let path = u.attributes.as_path.unwrap_or_default();
    assert_eq!(path.to_string(), "100 70000");
    assert_eq!(path.len(), 2);
    assert_eq!(u.attributes.aggregator.map(|a| a.asn), Some(200));
}

// RFC 6793 section 4.2.3: "If the number of AS numbers in the AS_PATH attribute is
// less than the number of AS numbers in the AS4_PATH attribute, then the AS4_PATH
// attribute SHALL be ignored".
#[test]
fn rfc6793_4_2_3_as4_path_longer_than_as_path_is_ignored() {
    let attrs = [
        legacy_rest(),
        as_path2(&[23456]),
        as4_path(&seg4(AS_SEQUENCE, &[70_000, 80_000])),
    ]
    .concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &legacy());
    assert_eq!(errors(&u), []);
    assert_eq!(u.attributes.as_path, Some(AsPath::from_sequence([23456])));
}

// RFC 6793 section 4.2.3: "the AS path information SHALL be constructed by taking
// as many AS numbers and path segments as necessary from the leading part of the
// AS_PATH attribute, and then prepending them to the AS4_PATH attribute"; with an
// AS_TRANS AGGREGATOR, "the AS4_AGGREGATOR attribute SHALL be taken as the
// information about the aggregating node".
#[test]
fn rfc6793_4_2_3_as_path_and_as4_path_merge() {
    // An OLD speaker (AS 100) got the route from NEW speakers in AS 70000 and AS
    // 80000; the path was aggregated in AS 70000.
    let attrs = [
        legacy_rest(),
        attr(
            WK,
            AS_PATH,
            &[
                seg2(AS_SEQUENCE, &[100, 23456, 23456]),
                seg2(AS_SET, &[300, 400]),
            ]
            .concat(),
        ),
        attr(OPT_T, AGGREGATOR, &[0x5b, 0xa0, 192, 0, 2, 9]),
        as4_path(
            &[
                seg4(AS_SEQUENCE, &[70_000, 80_000]),
                seg4(AS_SET, &[300, 400]),
            ]
            .concat(),
        ),
        attr(OPT_T, AS4_AGGREGATOR, &[0, 1, 0x11, 0x70, 192, 0, 2, 9]),
    ]
    .concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &legacy());
    assert_eq!(errors(&u), []);
    let path = u.attributes.as_path.clone().unwrap_or_default();
    assert_eq!(path.to_string(), "100 70000 80000 {300,400}");
    assert_eq!(path.len(), 4);
    let flat: Vec<u32> = path
        .segments
        .iter()
        .filter(|s| s.kind == SegmentType::Sequence)
        .flat_map(|s| s.asns.clone())
        .collect();
    assert_eq!(flat, [100, 70_000, 80_000]);
    assert_eq!(
        path.segments.last(),
        Some(&Segment {
            kind: SegmentType::Set,
            asns: vec![300, 400],
        })
    );
    assert_eq!(
        u.attributes.aggregator,
        Some(bgp_core::wire::Aggregator {
            asn: 70_000,
            address: Ipv4Addr::new(192, 0, 2, 9),
        })
    );
    // No AS4_PATH: the AS_PATH stands as received.
    let attrs = [legacy_rest(), as_path2(&[100, 200])].concat();
    let u = decode_update(&update(&[], &attrs, NLRI_10), &legacy());
    assert_eq!(
        u.attributes.as_path,
        Some(AsPath {
            segments: vec![seq(&[100, 200])]
        })
    );
}

// ---------------------------------------------------------------------------
// RFC 7313: ROUTE-REFRESH
// ---------------------------------------------------------------------------

// RFC 7313 section 5: "If the length, excluding the fixed-size message header, of
// the received ROUTE-REFRESH message with Message Subtype 1 and 2 is not 4, then
// ... "Invalid Message Length". The Data field of the NOTIFICATION message MUST
// contain the complete ROUTE-REFRESH message."
#[test]
fn rfc7313_5_borr_eorr_with_bad_length_is_invalid_message_length() {
    for subtype in [1, 2] {
        let m = message(5, &[0, 1, subtype, 1, 0]);
        assert_eq!(
            reset(&m, &Context::MODERN),
            notification(ROUTE_REFRESH_ERR, 1, &m),
            "subtype {subtype}"
        );
    }
    // A plain request may carry more (ORF entries, RFC 5291).
    let m = message(5, &[0, 1, 0, 1, 0]);
    assert!(matches!(
        decode(&m, &Context::MODERN),
        Message::RouteRefresh(_)
    ));
}

// RFC 7313 section 5: "When the BGP speaker receives a ROUTE-REFRESH message with
// a "Message Subtype" field other than 0, 1, or 2, it MUST ignore the received
// ROUTE-REFRESH message." It decodes, for the session to ignore.
#[test]
fn rfc7313_5_unknown_subtype_decodes_as_other() {
    let m = message(5, &[0, 2, 5, 1]);
    let Message::RouteRefresh(rr) = decode(&m, &Context::MODERN) else {
        panic!("not a ROUTE-REFRESH");
    };
    assert_eq!(rr.subtype, RouteRefreshSubtype::Other(5));
    assert_eq!(rr.family, AfiSafi::IPV6_UNICAST);
}

// ---------------------------------------------------------------------------
// NOTIFICATION display
// ---------------------------------------------------------------------------

// RFC 9003 section 2: the Cease Administrative Shutdown / Reset data is a length
// octet and a UTF-8 "Shutdown Communication".
#[test]
fn rfc9003_shutdown_communication_is_displayed() {
    let text = "maintenance window, back at 14:00 UTC";
    let mut body = vec![CEASE, 2, text.len() as u8];
    body.extend_from_slice(text.as_bytes());
    let Message::Notification(n) = decode(&message(3, &body), &Context::MODERN) else {
        panic!("not a NOTIFICATION");
    };
    assert_eq!(n.shutdown_message(), Some(text));
    assert_eq!(
        n.to_string(),
        format!("Cease/Administrative Shutdown \"{text}\"")
    );
    assert_eq!(
        Notification::cease_with_message(4, "bye").to_string(),
        "Cease/Administrative Reset \"bye\""
    );
    // A length beyond the data is no shutdown communication.
    let n = notification(CEASE, 2, &[10, b'h', b'i']);
    assert_eq!(n.shutdown_message(), None);
    assert_eq!(n.to_string(), "Cease/Administrative Shutdown data 0a6869");
}

// RFC 4486 section 4: the Maximum Number of Prefixes Reached data is AFI (2), SAFI
// (1) and the upper bound (4).
#[test]
fn rfc4486_max_prefixes_data_parses() {
    let body = [CEASE, 1, 0, 2, 1, 0, 0, 0x03, 0xe8];
    let Message::Notification(n) = decode(&message(3, &body), &Context::MODERN) else {
        panic!("not a NOTIFICATION");
    };
    assert_eq!(n.max_prefixes_data(), Some((AfiSafi::IPV6_UNICAST, 1000)));
    assert_eq!(
        n.to_string(),
        "Cease/Maximum Number of Prefixes Reached (ipv6-unicast limit 1000)"
    );
    assert_eq!(n, Notification::max_prefixes(AfiSafi::IPV6_UNICAST, 1000));
}

// The NOTIFICATION a decode error yields reads as RFC 4271 names it.
#[test]
fn rfc4271_notification_for_decode_errors_displays_names() {
    let bad = attr(WK, 99, &[1]);
    let n = reset(
        &update(&[], &[base(), bad].concat(), NLRI_10),
        &Context::MODERN,
    );
    assert_eq!(
        n.to_string(),
        "UPDATE Message Error/Unrecognized Well-known Attribute data 40630101"
    );
    let n = reset(&message(7, &[]), &Context::MODERN);
    assert_eq!(
        n.to_string(),
        "Message Header Error/Bad Message Type data 07"
    );
    let n = notification(OPEN_ERR, 0, &[]);
    assert_eq!(n.to_string(), "OPEN Message Error/Unspecific");
}

/// RFC 8654 section 5: a NOTIFICATION to a peer without extended messages must
/// fit in 4096 octets; an invalid BoRR near that size is answered with its data cut.
#[test]
fn rfc8654_5_notification_data_is_cut_to_fit() {
    use bgp_core::wire::{Context, Message, Notification};
    let n = Notification::with_data(7, 1, vec![0xab; 4090]);
    let bytes = Message::Notification(n).to_bytes(&Context::MODERN).unwrap();
    assert_eq!(bytes.len(), 4096);
    let Message::Notification(back) = Message::decode(&bytes, &Context::MODERN).unwrap() else {
        panic!("not a NOTIFICATION");
    };
    assert_eq!(
        (back.code, back.subcode, back.data.len()),
        (7, 1, 4096 - 21)
    );
}
