//! Path attributes (RFC 4271 sections 4.3 and 5) and their RFC 7606 error
//! handling.
//!
//! ```text
//!  0                   1
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Attr. Flags  |Attr. Type Code|  then a 1-octet length, or 2 octets when
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  the Extended Length flag is set, and the value
//! ```
//!
//! [`PathAttributes`] is the set routes share (everything but MP_REACH_NLRI and
//! MP_UNREACH_NLRI, which carry the routes themselves and live in
//! [`Update`](super::Update)). AS numbers are always 4 octets here: under a 2-octet
//! context the decoder merges AS4_PATH and AS4_AGGREGATOR in and the encoder
//! writes them out (RFC 6793 section 4.2).

use std::net::Ipv4Addr;

use bytes::{BufMut, Bytes, BytesMut};

use super::aspath::{AsPath, SegmentType};
use super::community::{Community, ExtCommunity, LargeCommunity};
use super::context::{Context, PeerKind};
use super::error::{AttributeError, AttributeFault, Rfc7606Action, UpdateError, attribute_data};
use super::mp::{MpReach, MpUnreach, NextHop};
use super::notification::subcode::update as sub;
use super::open::AS_TRANS;
use super::reader::Reader;

/// Attribute flag bits (RFC 4271 section 4.3).
pub mod flags {
    /// Optional (1) or well-known (0).
    pub const OPTIONAL: u8 = 0x80;
    /// Transitive (1) or non-transitive (0).
    pub const TRANSITIVE: u8 = 0x40;
    /// Some AS on the way did not recognize this optional transitive attribute.
    pub const PARTIAL: u8 = 0x20;
    /// The length field is two octets.
    pub const EXTENDED_LENGTH: u8 = 0x10;

    pub(crate) const WELL_KNOWN: u8 = TRANSITIVE;
    pub(crate) const OPTIONAL_TRANSITIVE: u8 = OPTIONAL | TRANSITIVE;
    pub(crate) const OPTIONAL_NON_TRANSITIVE: u8 = OPTIONAL;
}

/// Attribute type codes (IANA "BGP Path Attributes").
pub mod type_code {
    /// ORIGIN (RFC 4271).
    pub const ORIGIN: u8 = 1;
    /// AS_PATH (RFC 4271).
    pub const AS_PATH: u8 = 2;
    /// NEXT_HOP (RFC 4271).
    pub const NEXT_HOP: u8 = 3;
    /// MULTI_EXIT_DISC (RFC 4271).
    pub const MULTI_EXIT_DISC: u8 = 4;
    /// LOCAL_PREF (RFC 4271).
    pub const LOCAL_PREF: u8 = 5;
    /// ATOMIC_AGGREGATE (RFC 4271).
    pub const ATOMIC_AGGREGATE: u8 = 6;
    /// AGGREGATOR (RFC 4271, RFC 6793).
    pub const AGGREGATOR: u8 = 7;
    /// COMMUNITIES (RFC 1997).
    pub const COMMUNITIES: u8 = 8;
    /// ORIGINATOR_ID (RFC 4456).
    pub const ORIGINATOR_ID: u8 = 9;
    /// CLUSTER_LIST (RFC 4456).
    pub const CLUSTER_LIST: u8 = 10;
    /// MP_REACH_NLRI (RFC 4760).
    pub const MP_REACH_NLRI: u8 = 14;
    /// MP_UNREACH_NLRI (RFC 4760).
    pub const MP_UNREACH_NLRI: u8 = 15;
    /// EXTENDED COMMUNITIES (RFC 4360).
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    /// AS4_PATH (RFC 6793).
    pub const AS4_PATH: u8 = 17;
    /// AS4_AGGREGATOR (RFC 6793).
    pub const AS4_AGGREGATOR: u8 = 18;
    /// LARGE_COMMUNITY (RFC 8092).
    pub const LARGE_COMMUNITY: u8 = 32;
    /// Only to Customer (RFC 9234).
    pub const OTC: u8 = 35;
}

/// The attribute's name, for logs.
pub fn type_name(code: u8) -> &'static str {
    use type_code::*;
    match code {
        ORIGIN => "ORIGIN",
        AS_PATH => "AS_PATH",
        NEXT_HOP => "NEXT_HOP",
        MULTI_EXIT_DISC => "MULTI_EXIT_DISC",
        LOCAL_PREF => "LOCAL_PREF",
        ATOMIC_AGGREGATE => "ATOMIC_AGGREGATE",
        AGGREGATOR => "AGGREGATOR",
        COMMUNITIES => "COMMUNITIES",
        ORIGINATOR_ID => "ORIGINATOR_ID",
        CLUSTER_LIST => "CLUSTER_LIST",
        MP_REACH_NLRI => "MP_REACH_NLRI",
        MP_UNREACH_NLRI => "MP_UNREACH_NLRI",
        EXTENDED_COMMUNITIES => "EXTENDED_COMMUNITIES",
        AS4_PATH => "AS4_PATH",
        AS4_AGGREGATOR => "AS4_AGGREGATOR",
        LARGE_COMMUNITY => "LARGE_COMMUNITY",
        OTC => "OTC",
        _ => "unknown",
    }
}

/// ORIGIN values (RFC 4271 section 5.1.1), in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Origin {
    /// Learned from an interior protocol, or configured (0).
    Igp,
    /// Learned from EGP (1).
    Egp,
    /// Learned some other way, such as redistribution (2).
    Incomplete,
}

impl Origin {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Igp),
            1 => Some(Self::Egp),
            2 => Some(Self::Incomplete),
            _ => None,
        }
    }

    fn to_u8(self) -> u8 {
        self as u8
    }
}

/// AGGREGATOR: the AS and BGP identifier of the speaker that aggregated the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Aggregator {
    /// The aggregating AS.
    pub asn: u32,
    /// The aggregating speaker's BGP identifier.
    pub address: Ipv4Addr,
}

/// An attribute this crate does not interpret, kept for propagation. Optional
/// transitive ones are stored with the Partial bit already set, as RFC 4271
/// section 9 says to pass them on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct RawAttribute {
    /// Flags, without the Extended Length bit (the encoder chooses it).
    pub flags: u8,
    /// Type code.
    pub type_code: u8,
    /// Value.
    pub value: Bytes,
}

/// The path attributes that routes share: an UPDATE's attributes minus the MP ones.
///
/// Lists are empty when the attribute is absent: RFC 7606 makes a zero-length
/// COMMUNITIES, EXTENDED_COMMUNITIES, LARGE_COMMUNITY or CLUSTER_LIST malformed, so
/// empty and absent cannot be confused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct PathAttributes {
    /// ORIGIN.
    pub origin: Option<Origin>,
    /// AS_PATH, merged with AS4_PATH where that applies.
    pub as_path: Option<AsPath>,
    /// NEXT_HOP (IPv4 routes in the NLRI field).
    pub next_hop: Option<Ipv4Addr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE.
    pub atomic_aggregate: bool,
    /// AGGREGATOR, merged with AS4_AGGREGATOR where that applies.
    pub aggregator: Option<Aggregator>,
    /// COMMUNITIES.
    pub communities: Vec<Community>,
    /// ORIGINATOR_ID.
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST.
    pub cluster_list: Vec<Ipv4Addr>,
    /// EXTENDED COMMUNITIES.
    pub ext_communities: Vec<ExtCommunity>,
    /// LARGE_COMMUNITY.
    pub large_communities: Vec<LargeCommunity>,
    /// Only to Customer (RFC 9234).
    pub otc: Option<u32>,
    /// Unrecognized optional transitive attributes, by type code.
    pub unknown: Vec<RawAttribute>,
}

/// What the attribute walk of one UPDATE found.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    pub(crate) attrs: PathAttributes,
    pub(crate) mp_reach: Option<MpReach>,
    pub(crate) mp_unreach: Option<MpUnreach>,
    pub(crate) errors: Vec<AttributeError>,
}

/// A problem with one attribute: the RFC 7606 action, and the RFC 4271 subcode to
/// use should it end in a session reset.
struct Fault {
    fault: AttributeFault,
    action: Rfc7606Action,
    subcode: u8,
}

const fn fault(fault: AttributeFault, action: Rfc7606Action, subcode: u8) -> Fault {
    Fault {
        fault,
        action,
        subcode,
    }
}

use AttributeFault as F;
use Rfc7606Action::{AttributeDiscard as DISCARD, TreatAsWithdraw as WITHDRAW};

/// Which attribute types were seen, to drop repeats (RFC 7606 section 3g).
#[derive(Default)]
struct Seen([u64; 4]);

impl Seen {
    /// Marks `code`; true when it was already marked.
    fn mark(&mut self, code: u8) -> bool {
        let (word, bit) = (usize::from(code >> 6), 1u64 << (code & 63));
        let was = self.0[word] & bit != 0;
        self.0[word] |= bit;
        was
    }

    fn has(&self, code: u8) -> bool {
        self.0[usize::from(code >> 6)] & (1u64 << (code & 63)) != 0
    }
}

fn check_flags(f: u8, want: u8, action: Rfc7606Action) -> Result<(), Fault> {
    if f & (flags::OPTIONAL | flags::TRANSITIVE) == want {
        Ok(())
    } else {
        Err(fault(F::Flags, action, sub::ATTRIBUTE_FLAGS_ERROR))
    }
}

fn exact_len(v: &[u8], n: usize, action: Rfc7606Action) -> Result<(), Fault> {
    if v.len() == n {
        Ok(())
    } else {
        Err(fault(F::Length, action, sub::ATTRIBUTE_LENGTH_ERROR))
    }
}

/// A non-zero multiple of `n` octets, as the list attributes need (RFC 7606
/// sections 7.8, 7.10, 7.14; RFC 8092 section 6).
fn list_len(v: &[u8], n: usize) -> Result<(), Fault> {
    if !v.is_empty() && v.len().is_multiple_of(n) {
        Ok(())
    } else {
        Err(fault(F::Length, WITHDRAW, sub::ATTRIBUTE_LENGTH_ERROR))
    }
}

fn u32_at(v: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    let n = v.len().min(4);
    b[..n].copy_from_slice(&v[..n]);
    u32::from_be_bytes(b)
}

fn ipv4_at(v: &[u8]) -> Ipv4Addr {
    Ipv4Addr::from(u32_at(v))
}

/// A NEXT_HOP that is not a usable host address (RFC 4271 section 6.3).
fn bad_next_hop(a: Ipv4Addr) -> bool {
    a.is_unspecified() || a.is_multicast() || a.is_broadcast() || a.octets()[0] >= 240
}

struct Decoder<'c> {
    ctx: &'c Context,
    /// The UPDATE's NLRI field is non-empty.
    has_nlri_field: bool,
    walk: Walk,
    seen: Seen,
    as4_path: Option<AsPath>,
    as4_aggregator: Option<Aggregator>,
}

impl Decoder<'_> {
    /// Decodes one attribute into the walk. `Err` is a session reset.
    fn attribute(&mut self, f: u8, code: u8, v: &[u8]) -> Result<(), UpdateError> {
        if self.seen.mark(code) {
            if code == type_code::MP_REACH_NLRI || code == type_code::MP_UNREACH_NLRI {
                return Err(UpdateError::new(
                    sub::MALFORMED_ATTRIBUTE_LIST,
                    "MP_REACH_NLRI or MP_UNREACH_NLRI repeated",
                ));
            }
            self.walk.errors.push(AttributeError {
                type_code: code,
                fault: F::Duplicate,
                action: DISCARD,
                subcode: sub::MALFORMED_ATTRIBUTE_LIST,
                data: Bytes::new(),
            });
            return Ok(());
        }
        match self.known(f, code, v) {
            Ok(()) => Ok(()),
            Err(e) if e.action == Rfc7606Action::SessionReset => Err(UpdateError::with_data(
                e.subcode,
                attribute_data(f, code, v),
                match code {
                    type_code::MP_REACH_NLRI => "malformed MP_REACH_NLRI",
                    type_code::MP_UNREACH_NLRI => "malformed MP_UNREACH_NLRI",
                    _ => "unrecognized well-known attribute",
                },
            )),
            Err(e) => {
                self.walk.errors.push(AttributeError {
                    type_code: code,
                    fault: e.fault,
                    action: e.action,
                    subcode: e.subcode,
                    data: if e.subcode == sub::MISSING_WELL_KNOWN_ATTRIBUTE {
                        Bytes::copy_from_slice(&[code])
                    } else {
                        attribute_data(f, code, v)
                    },
                });
                Ok(())
            }
        }
    }

    fn known(&mut self, f: u8, code: u8, v: &[u8]) -> Result<(), Fault> {
        use flags::{
            OPTIONAL_NON_TRANSITIVE as OPT_NT, OPTIONAL_TRANSITIVE as OPT_T, WELL_KNOWN as WK,
        };
        use type_code::*;
        let ctx = self.ctx;
        let a = &mut self.walk.attrs;
        match code {
            // RFC 7606 section 7.1.
            ORIGIN => {
                check_flags(f, WK, WITHDRAW)?;
                exact_len(v, 1, WITHDRAW)?;
                a.origin = Some(Origin::from_u8(v[0]).ok_or(fault(
                    F::Value,
                    WITHDRAW,
                    sub::INVALID_ORIGIN_ATTRIBUTE,
                ))?);
            }
            // Section 7.2, RFC 5065 section 5, RFC 7607.
            AS_PATH => {
                check_flags(f, WK, WITHDRAW)?;
                let path = AsPath::decode(v, ctx.four_octet_as).map_err(|_| malformed_as_path())?;
                let confed_ok = match ctx.peer {
                    PeerKind::External(_) => !path.has_confed(),
                    PeerKind::ConfedExternal(_) => {
                        path.segments.first().map(|s| s.kind) == Some(SegmentType::ConfedSequence)
                    }
                    _ => true,
                };
                if path.contains(0) || !confed_ok {
                    return Err(malformed_as_path());
                }
                a.as_path = Some(path);
            }
            // Section 7.3; RFC 4760 section 3 says to ignore NEXT_HOP when the
            // routes are all in MP_REACH_NLRI, so `decode` then makes a bad one a
            // discard (MP_REACH_NLRI may come later in the walk).
            NEXT_HOP => {
                check_flags(f, WK, WITHDRAW)?;
                exact_len(v, 4, WITHDRAW)?;
                let nh = ipv4_at(v);
                if bad_next_hop(nh) {
                    return Err(fault(F::Value, WITHDRAW, sub::INVALID_NEXT_HOP_ATTRIBUTE));
                }
                a.next_hop = Some(nh);
            }
            // Section 7.4.
            MULTI_EXIT_DISC => {
                check_flags(f, OPT_NT, WITHDRAW)?;
                exact_len(v, 4, WITHDRAW)?;
                a.med = Some(u32_at(v));
            }
            // Section 7.5.
            LOCAL_PREF => {
                if !ctx.peer.is_internal() {
                    return Err(fault(F::NotAllowed, DISCARD, sub::ATTRIBUTE_FLAGS_ERROR));
                }
                check_flags(f, WK, WITHDRAW)?;
                exact_len(v, 4, WITHDRAW)?;
                a.local_pref = Some(u32_at(v));
            }
            // Sections 3f and 7.6.
            ATOMIC_AGGREGATE => {
                check_flags(f, WK, DISCARD)?;
                exact_len(v, 0, DISCARD)?;
                a.atomic_aggregate = true;
            }
            // Sections 3f and 7.7, RFC 7607.
            AGGREGATOR => {
                check_flags(f, OPT_T, DISCARD)?;
                let aggr = if ctx.four_octet_as {
                    exact_len(v, 8, DISCARD)?;
                    Aggregator {
                        asn: u32_at(v),
                        address: ipv4_at(&v[4..]),
                    }
                } else {
                    exact_len(v, 6, DISCARD)?;
                    Aggregator {
                        asn: u32::from(u16::from_be_bytes([v[0], v[1]])),
                        address: ipv4_at(&v[2..]),
                    }
                };
                if aggr.asn == 0 {
                    return Err(fault(F::Value, DISCARD, sub::OPTIONAL_ATTRIBUTE_ERROR));
                }
                a.aggregator = Some(aggr);
            }
            // Section 7.8.
            COMMUNITIES => {
                check_flags(f, OPT_T, WITHDRAW)?;
                list_len(v, 4)?;
                a.communities = v.chunks_exact(4).map(|c| Community(u32_at(c))).collect();
            }
            // Section 7.9.
            ORIGINATOR_ID => {
                if !ctx.peer.is_internal() {
                    return Err(fault(F::NotAllowed, DISCARD, sub::OPTIONAL_ATTRIBUTE_ERROR));
                }
                check_flags(f, OPT_NT, WITHDRAW)?;
                exact_len(v, 4, WITHDRAW)?;
                a.originator_id = Some(ipv4_at(v));
            }
            // Section 7.10.
            CLUSTER_LIST => {
                if !ctx.peer.is_internal() {
                    return Err(fault(F::NotAllowed, DISCARD, sub::OPTIONAL_ATTRIBUTE_ERROR));
                }
                check_flags(f, OPT_NT, WITHDRAW)?;
                list_len(v, 4)?;
                a.cluster_list = v.chunks_exact(4).map(ipv4_at).collect();
            }
            // Sections 5.3 and 7.11: the routes cannot be located, so reset.
            MP_REACH_NLRI => {
                check_flags(f, OPT_NT, Rfc7606Action::SessionReset).map_err(|_| mp_fault())?;
                let reach = MpReach::decode(v, ctx).map_err(|_| mp_fault())?;
                let unagreed = reach.family.is_ipv4_prefix()
                    && matches!(reach.next_hop, NextHop::V6 { .. })
                    && !ctx.extended_next_hop;
                self.walk.mp_reach = Some(reach);
                // RFC 8950 section 4: an IPv6 next hop for IPv4 NLRI only when we
                // advertised the capability. The NLRI are located (the length is
                // one we parse), so RFC 7606 section 2 lets us treat them as
                // withdrawn rather than reset the session.
                if unagreed {
                    return Err(fault(
                        F::NotAllowed,
                        WITHDRAW,
                        sub::OPTIONAL_ATTRIBUTE_ERROR,
                    ));
                }
            }
            MP_UNREACH_NLRI => {
                check_flags(f, OPT_NT, Rfc7606Action::SessionReset).map_err(|_| mp_fault())?;
                self.walk.mp_unreach = Some(MpUnreach::decode(v, ctx).map_err(|_| mp_fault())?);
            }
            // Section 7.14.
            EXTENDED_COMMUNITIES => {
                check_flags(f, OPT_T, WITHDRAW)?;
                list_len(v, 8)?;
                a.ext_communities = v
                    .chunks_exact(8)
                    .map(|c| ExtCommunity(c.try_into().unwrap_or_default()))
                    .collect();
            }
            // RFC 6793 section 6: only from a 2-octet speaker, else discarded.
            AS4_PATH => {
                if ctx.four_octet_as {
                    return Err(fault(F::NotAllowed, DISCARD, sub::OPTIONAL_ATTRIBUTE_ERROR));
                }
                check_flags(f, OPT_T, DISCARD)?;
                let bad = fault(F::Value, DISCARD, sub::OPTIONAL_ATTRIBUTE_ERROR);
                if v.len() < 6 {
                    return Err(bad);
                }
                let path = AsPath::decode(v, true).map_err(|_| as4_fault())?;
                if path.contains(0) {
                    return Err(bad);
                }
                // Confederation segments are dropped, the rest is used.
                self.as4_path = Some(path.without_confed());
            }
            AS4_AGGREGATOR => {
                if ctx.four_octet_as {
                    return Err(fault(F::NotAllowed, DISCARD, sub::OPTIONAL_ATTRIBUTE_ERROR));
                }
                check_flags(f, OPT_T, DISCARD)?;
                exact_len(v, 8, DISCARD)?;
                // RFC 7607: AS 0 makes it malformed, discarded like AGGREGATOR's.
                if u32_at(v) == 0 {
                    return Err(fault(F::Value, DISCARD, sub::OPTIONAL_ATTRIBUTE_ERROR));
                }
                self.as4_aggregator = Some(Aggregator {
                    asn: u32_at(v),
                    address: ipv4_at(&v[4..]),
                });
            }
            // RFC 8092 section 6.
            LARGE_COMMUNITY => {
                check_flags(f, OPT_T, WITHDRAW)?;
                list_len(v, 12)?;
                a.large_communities = v
                    .chunks_exact(12)
                    .map(|c| LargeCommunity::new(u32_at(c), u32_at(&c[4..]), u32_at(&c[8..])))
                    .collect();
            }
            // RFC 9234 section 5.
            OTC => {
                check_flags(f, OPT_T, WITHDRAW)?;
                exact_len(v, 4, WITHDRAW)?;
                a.otc = Some(u32_at(v));
            }
            // RFC 4271 sections 5 and 6.3: an unknown well-known attribute resets the
            // session; unknown optional transitive ones travel on marked Partial;
            // unknown optional non-transitive ones are quietly dropped.
            _ if f & flags::OPTIONAL == 0 => {
                return Err(fault(
                    F::Value,
                    Rfc7606Action::SessionReset,
                    sub::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                ));
            }
            _ if f & flags::TRANSITIVE != 0 => a.unknown.push(RawAttribute {
                flags: (f & !flags::EXTENDED_LENGTH & 0xf0) | flags::PARTIAL,
                type_code: code,
                value: Bytes::copy_from_slice(v),
            }),
            _ => {}
        }
        Ok(())
    }

    /// RFC 7606 section 3d: mandatory attributes of an UPDATE that announces routes.
    fn check_mandatory(&mut self) {
        let legacy = self.has_nlri_field;
        if !legacy && self.walk.mp_reach.is_none() {
            return;
        }
        let mut required = vec![type_code::ORIGIN, type_code::AS_PATH];
        if legacy {
            required.push(type_code::NEXT_HOP);
        }
        if self.ctx.peer == PeerKind::Internal {
            required.push(type_code::LOCAL_PREF);
        }
        for code in required {
            if !self.seen.has(code) {
                self.walk.errors.push(AttributeError {
                    type_code: code,
                    fault: F::Missing,
                    action: WITHDRAW,
                    subcode: sub::MISSING_WELL_KNOWN_ATTRIBUTE,
                    data: Bytes::copy_from_slice(&[code]),
                });
            }
        }
    }

    /// RFC 6793 section 4.2.3: rebuild 4-octet AGGREGATOR and AS_PATH.
    fn merge_as4(&mut self) {
        let a = &mut self.walk.attrs;
        if self.as4_aggregator.is_some()
            && a.aggregator.is_some_and(|g| g.asn != u32::from(AS_TRANS))
        {
            // AS4_AGGREGATOR beside a real 2-octet aggregator: AS4_AGGREGATOR and
            // AS4_PATH are stale. Without AS4_AGGREGATOR, AS4_PATH still applies.
            return;
        }
        if let (Some(aggr), Some(as4)) = (a.aggregator.as_mut(), self.as4_aggregator) {
            *aggr = as4;
        }
        if let (Some(path), Some(as4)) = (a.as_path.as_mut(), self.as4_path.as_ref()) {
            *path = path.merge_as4(as4);
        }
    }
}

fn malformed_as_path() -> Fault {
    fault(F::Value, WITHDRAW, sub::MALFORMED_AS_PATH)
}

fn as4_fault() -> Fault {
    fault(F::Value, DISCARD, sub::OPTIONAL_ATTRIBUTE_ERROR)
}

fn mp_fault() -> Fault {
    fault(
        F::Value,
        Rfc7606Action::SessionReset,
        sub::OPTIONAL_ATTRIBUTE_ERROR,
    )
}

/// Walks an UPDATE's path attributes with RFC 7606 error handling. `Err` is a
/// session reset; every other finding is in `Walk::errors`.
pub(crate) fn decode(buf: &[u8], ctx: &Context, has_nlri_field: bool) -> Result<Walk, UpdateError> {
    let mut d = Decoder {
        ctx,
        has_nlri_field,
        walk: Walk::default(),
        seen: Seen::default(),
        as4_path: None,
        as4_aggregator: None,
    };
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let f = r.u8().unwrap_or_default();
        let code = r.u8();
        let len = if f & flags::EXTENDED_LENGTH != 0 {
            r.u16()
        } else {
            r.u8().map(u16::from)
        };
        let value = len.and_then(|len| r.take(usize::from(len)));
        let (Some(code), Some(v)) = (code, value) else {
            // Section 4: the last attribute over- or underruns the attribute
            // field. Treat-as-withdraw, unless it was the MP attribute that held
            // the routes, which then cannot be found at all.
            if matches!(
                code,
                Some(type_code::MP_REACH_NLRI | type_code::MP_UNREACH_NLRI)
            ) {
                return Err(UpdateError::new(
                    sub::MALFORMED_ATTRIBUTE_LIST,
                    "MP attribute overruns the path attributes",
                ));
            }
            d.walk.errors.push(AttributeError {
                type_code: code.unwrap_or_default(),
                fault: F::Length,
                action: WITHDRAW,
                subcode: sub::MALFORMED_ATTRIBUTE_LIST,
                data: Bytes::new(),
            });
            break;
        };
        d.attribute(f, code, v)?;
    }
    d.check_mandatory();
    if !ctx.four_octet_as {
        d.merge_as4();
    }
    d.walk.attrs.unknown.sort_by_key(|u| u.type_code);
    // RFC 4760 section 3: with all routes in MP_REACH_NLRI, NEXT_HOP is ignored.
    // With no routes at all it is not, and section 5.2 below applies to it.
    if !has_nlri_field && d.walk.mp_reach.is_some() {
        for e in d.walk.errors.iter_mut() {
            if e.type_code == type_code::NEXT_HOP {
                e.action = DISCARD;
            }
        }
    }

    // Section 5.2: without reachable NLRI we cannot be sure the routes were
    // parsed, so any error stronger than attribute discard resets the session.
    if !has_nlri_field
        && d.walk.mp_reach.is_none()
        && let Some(e) = d.walk.errors.iter().find(|e| e.action != DISCARD)
    {
        return Err(UpdateError::with_data(
            e.subcode,
            e.data.clone(),
            "malformed attribute in an UPDATE without reachable NLRI",
        ));
    }
    Ok(d.walk)
}

/// Appends an attribute header, choosing the Extended Length form only when the
/// value needs it.
fn header(out: &mut BytesMut, flags: u8, code: u8, len: usize) {
    if len > 255 {
        out.put_u8(flags | flags::EXTENDED_LENGTH);
        out.put_u8(code);
        out.put_u16(len.min(usize::from(u16::MAX)) as u16);
    } else {
        out.put_u8(flags);
        out.put_u8(code);
        out.put_u8(len as u8);
    }
}

pub(crate) fn put_attribute(out: &mut BytesMut, flags: u8, code: u8, value: &[u8]) {
    header(out, flags, code, value.len());
    out.put_slice(value);
}

impl PathAttributes {
    /// Appends the attributes in ascending type order (RFC 4271 section 5), with
    /// AS4_PATH and AS4_AGGREGATOR when the context is 2-octet and an AS number
    /// does not fit (RFC 6793 section 4.2.2).
    pub fn encode(&self, ctx: &Context, out: &mut BytesMut) {
        use flags::{
            OPTIONAL_NON_TRANSITIVE as OPT_NT, OPTIONAL_TRANSITIVE as OPT_T, WELL_KNOWN as WK,
        };
        use type_code::*;
        let four = ctx.four_octet_as;
        let mut unknown = self.unknown.iter().peekable();
        // Unknown attributes go where their type code sorts.
        let mut upto = |out: &mut BytesMut, code: u8| {
            while let Some(u) = unknown.next_if(|u| u.type_code < code) {
                put_attribute(out, u.flags, u.type_code, &u.value);
            }
        };

        if let Some(o) = self.origin {
            upto(out, ORIGIN);
            put_attribute(out, WK, ORIGIN, &[o.to_u8()]);
        }
        if let Some(path) = &self.as_path {
            upto(out, AS_PATH);
            header(out, WK, AS_PATH, path.encoded_len(four));
            path.encode(out, four);
        }
        if let Some(nh) = self.next_hop {
            upto(out, NEXT_HOP);
            put_attribute(out, WK, NEXT_HOP, &nh.octets());
        }
        if let Some(med) = self.med {
            upto(out, MULTI_EXIT_DISC);
            put_attribute(out, OPT_NT, MULTI_EXIT_DISC, &med.to_be_bytes());
        }
        if let Some(lp) = self.local_pref {
            upto(out, LOCAL_PREF);
            put_attribute(out, WK, LOCAL_PREF, &lp.to_be_bytes());
        }
        if self.atomic_aggregate {
            upto(out, ATOMIC_AGGREGATE);
            put_attribute(out, WK, ATOMIC_AGGREGATE, &[]);
        }
        if let Some(aggr) = self.aggregator {
            upto(out, AGGREGATOR);
            if four {
                header(out, OPT_T, AGGREGATOR, 8);
                out.put_u32(aggr.asn);
            } else {
                header(out, OPT_T, AGGREGATOR, 6);
                out.put_u16(u16::try_from(aggr.asn).unwrap_or(AS_TRANS));
            }
            out.put_slice(&aggr.address.octets());
        }
        if !self.communities.is_empty() {
            upto(out, COMMUNITIES);
            header(out, OPT_T, COMMUNITIES, self.communities.len() * 4);
            for c in &self.communities {
                out.put_u32(c.0);
            }
        }
        if let Some(id) = self.originator_id {
            upto(out, ORIGINATOR_ID);
            put_attribute(out, OPT_NT, ORIGINATOR_ID, &id.octets());
        }
        if !self.cluster_list.is_empty() {
            upto(out, CLUSTER_LIST);
            header(out, OPT_NT, CLUSTER_LIST, self.cluster_list.len() * 4);
            for id in &self.cluster_list {
                out.put_slice(&id.octets());
            }
        }
        if !self.ext_communities.is_empty() {
            upto(out, EXTENDED_COMMUNITIES);
            header(
                out,
                OPT_T,
                EXTENDED_COMMUNITIES,
                self.ext_communities.len() * 8,
            );
            for c in &self.ext_communities {
                out.put_slice(&c.0);
            }
        }
        if !four {
            if let Some(path) = self.as_path.as_ref().filter(|p| p.needs_as4()) {
                upto(out, AS4_PATH);
                let as4 = path.without_confed();
                header(out, OPT_T, AS4_PATH, as4.encoded_len(true));
                as4.encode(out, true);
            }
            if let Some(aggr) = self.aggregator.filter(|a| a.asn > 0xffff) {
                upto(out, AS4_AGGREGATOR);
                header(out, OPT_T, AS4_AGGREGATOR, 8);
                out.put_u32(aggr.asn);
                out.put_slice(&aggr.address.octets());
            }
        }
        if !self.large_communities.is_empty() {
            upto(out, LARGE_COMMUNITY);
            header(
                out,
                OPT_T,
                LARGE_COMMUNITY,
                self.large_communities.len() * 12,
            );
            for c in &self.large_communities {
                out.put_u32(c.global);
                out.put_u32(c.local1);
                out.put_u32(c.local2);
            }
        }
        if let Some(otc) = self.otc {
            upto(out, OTC);
            put_attribute(out, OPT_T, OTC, &otc.to_be_bytes());
        }
        upto(out, u8::MAX);
        if let Some(u) = unknown.next() {
            // Type code 255 sorts last and is not covered by `upto(255)`.
            put_attribute(out, u.flags, u.type_code, &u.value);
        }
    }
}
