//! Capabilities advertised in OPEN (RFC 5492) and the ones this crate knows.
//!
//! ```text
//! +------------------------------+
//! | Capability Code (1 octet)    |
//! +------------------------------+
//! | Capability Length (1 octet)  |
//! +------------------------------+
//! | Capability Value (variable)  |
//! +------------------------------+
//! ```
//!
//! Unknown capabilities are kept as [`Capability::Unknown`], never dropped.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::OpenError;
use super::family::{Afi, AfiSafi, Safi};
use super::reader::Reader;

/// Capability codes (IANA "Capability Codes").
pub mod code {
    /// Multiprotocol extensions (RFC 4760).
    pub const MULTIPROTOCOL: u8 = 1;
    /// Route refresh (RFC 2918).
    pub const ROUTE_REFRESH: u8 = 2;
    /// Extended next hop encoding (RFC 8950).
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    /// Extended message (RFC 8654).
    pub const EXTENDED_MESSAGE: u8 = 6;
    /// BGP role (RFC 9234).
    pub const ROLE: u8 = 9;
    /// Graceful restart (RFC 4724).
    pub const GRACEFUL_RESTART: u8 = 64;
    /// 4-octet AS numbers (RFC 6793).
    pub const FOUR_OCTET_AS: u8 = 65;
    /// ADD-PATH (RFC 7911).
    pub const ADD_PATH: u8 = 69;
    /// Enhanced route refresh (RFC 7313).
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
    /// Long-lived graceful restart (RFC 9494).
    pub const LONG_LIVED_GRACEFUL_RESTART: u8 = 71;
    /// FQDN / hostname (draft-walton-bgp-hostname-capability, as FRR sends it).
    pub const FQDN: u8 = 73;
    /// Pre-standard route refresh that older Cisco and FRR still advertise.
    pub const ROUTE_REFRESH_CISCO: u8 = 128;
}

/// Graceful restart flags and per-family forwarding state (RFC 4724 section 3).
///
/// ```text
/// +--------------------------------------------------+
/// | Restart Flags (4 bits)                           |
/// +--------------------------------------------------+
/// | Restart Time in seconds (12 bits)                |
/// +--------------------------------------------------+
/// | Address Family Identifier (16 bits)              |
/// | Subsequent Address Family Identifier (8 bits)    |
/// | Flags for Address Family (8 bits)                |
/// +--------------------------------------------------+
/// | ...                                              |
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct GracefulRestart {
    /// R: the sender has restarted (RFC 4724).
    pub restart_state: bool,
    /// N: graceful restart also applies to NOTIFICATIONs (RFC 8538).
    pub notification: bool,
    /// Restart time in seconds, 0 to 4095.
    pub restart_time: u16,
    /// Families whose routes the sender preserves across a restart.
    pub families: Vec<GracefulRestartFamily>,
}

/// One family of the graceful restart capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct GracefulRestartFamily {
    /// The family.
    pub family: AfiSafi,
    /// F: forwarding state was preserved for this family.
    pub forwarding: bool,
}

/// One family of the long-lived graceful restart capability (RFC 9494 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct LlgrFamily {
    /// The family.
    pub family: AfiSafi,
    /// F: forwarding state was preserved.
    pub forwarding: bool,
    /// Long-lived stale time in seconds (24 bits).
    pub stale_time: u32,
}

/// One entry of the extended next hop capability (RFC 8950 section 3): NLRI of
/// `nlri` may carry next hops of `next_hop_afi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ExtendedNextHop {
    /// The NLRI family (its SAFI is 16 bits in this capability).
    pub nlri_afi: Afi,
    /// The NLRI SAFI.
    pub nlri_safi: u16,
    /// The next hop address family.
    pub next_hop_afi: Afi,
}

/// ADD-PATH direction for one family (RFC 7911 section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum AddPathMode {
    /// Able to receive multiple paths.
    Receive,
    /// Able to send multiple paths.
    Send,
    /// Both.
    Both,
}

impl AddPathMode {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Receive),
            2 => Some(Self::Send),
            3 => Some(Self::Both),
            _ => None,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Receive => 1,
            Self::Send => 2,
            Self::Both => 3,
        }
    }

    /// Whether this side can receive multiple paths.
    pub fn can_receive(self) -> bool {
        matches!(self, Self::Receive | Self::Both)
    }

    /// Whether this side can send multiple paths.
    pub fn can_send(self) -> bool {
        matches!(self, Self::Send | Self::Both)
    }
}

/// One family of the ADD-PATH capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct AddPathFamily {
    /// The family.
    pub family: AfiSafi,
    /// Send, receive or both.
    pub mode: AddPathMode,
}

/// The BGP role of the sender (RFC 9234 section 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Role {
    /// Provider (0).
    Provider,
    /// Route server (1).
    RouteServer,
    /// Route server client (2).
    RouteServerClient,
    /// Customer (3).
    Customer,
    /// Lateral peer (4).
    Peer,
    /// A value this crate does not know.
    Other(u8),
}

impl Role {
    /// The role for its wire value.
    pub fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Provider,
            1 => Self::RouteServer,
            2 => Self::RouteServerClient,
            3 => Self::Customer,
            4 => Self::Peer,
            v => Self::Other(v),
        }
    }

    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::Provider => 0,
            Self::RouteServer => 1,
            Self::RouteServerClient => 2,
            Self::Customer => 3,
            Self::Peer => 4,
            Self::Other(v) => v,
        }
    }
}

/// A capability, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Capability {
    /// Multiprotocol extensions for one family (RFC 4760 section 8).
    Multiprotocol(AfiSafi),
    /// Route refresh (RFC 2918).
    RouteRefresh,
    /// The pre-standard route refresh (code 128).
    RouteRefreshCisco,
    /// Enhanced route refresh (RFC 7313).
    EnhancedRouteRefresh,
    /// 4-octet AS number support, carrying the sender's AS (RFC 6793).
    FourOctetAs(u32),
    /// Graceful restart (RFC 4724, RFC 8538).
    GracefulRestart(GracefulRestart),
    /// Long-lived graceful restart (RFC 9494).
    LongLivedGracefulRestart(Vec<LlgrFamily>),
    /// Extended next hop encoding (RFC 8950).
    ExtendedNextHop(Vec<ExtendedNextHop>),
    /// ADD-PATH (RFC 7911).
    AddPath(Vec<AddPathFamily>),
    /// Extended message (RFC 8654).
    ExtendedMessage,
    /// Host and domain name (draft-walton-bgp-hostname-capability).
    Fqdn {
        /// Host name.
        hostname: String,
        /// Domain name, often empty.
        domain: String,
    },
    /// BGP role (RFC 9234).
    Role(Role),
    /// A capability this crate does not interpret, kept as received.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: Bytes,
    },
}

fn afi_safi(r: &mut Reader<'_>) -> Option<AfiSafi> {
    Some(AfiSafi::new(Afi(r.u16()?), Safi(r.u8()?)))
}

fn put_afi_safi(out: &mut BytesMut, f: AfiSafi) {
    out.put_u16(f.afi.0);
    out.put_u8(f.safi.0);
}

/// Decodes one fixed-size record after another until the value is consumed.
fn records<T>(
    value: &[u8],
    size: usize,
    what: &'static str,
    mut one: impl FnMut(&mut Reader<'_>) -> Option<T>,
) -> Result<Vec<T>, OpenError> {
    if !value.len().is_multiple_of(size) {
        return Err(OpenError::Malformed(what));
    }
    let mut r = Reader::new(value);
    let mut out = Vec::with_capacity(value.len() / size);
    while !r.is_empty() {
        out.push(one(&mut r).ok_or(OpenError::Malformed(what))?);
    }
    Ok(out)
}

impl Capability {
    /// The capability code.
    pub fn code(&self) -> u8 {
        match self {
            Self::Multiprotocol(_) => code::MULTIPROTOCOL,
            Self::RouteRefresh => code::ROUTE_REFRESH,
            Self::RouteRefreshCisco => code::ROUTE_REFRESH_CISCO,
            Self::EnhancedRouteRefresh => code::ENHANCED_ROUTE_REFRESH,
            Self::FourOctetAs(_) => code::FOUR_OCTET_AS,
            Self::GracefulRestart(_) => code::GRACEFUL_RESTART,
            Self::LongLivedGracefulRestart(_) => code::LONG_LIVED_GRACEFUL_RESTART,
            Self::ExtendedNextHop(_) => code::EXTENDED_NEXT_HOP,
            Self::AddPath(_) => code::ADD_PATH,
            Self::ExtendedMessage => code::EXTENDED_MESSAGE,
            Self::Fqdn { .. } => code::FQDN,
            Self::Role(_) => code::ROLE,
            Self::Unknown { code, .. } => *code,
        }
    }

    /// Decodes one capability value. A known capability whose value has the wrong
    /// shape is an OPEN error, not silently ignored.
    pub fn decode(code: u8, value: &[u8]) -> Result<Self, OpenError> {
        let exact = |n: usize, what| {
            if value.len() == n {
                Ok(())
            } else {
                Err(OpenError::Malformed(what))
            }
        };
        let mut r = Reader::new(value);
        Ok(match code {
            code::MULTIPROTOCOL => {
                exact(4, "multiprotocol capability length")?;
                let afi = Afi(r.u16().unwrap_or_default());
                let _reserved = r.u8();
                let safi = Safi(r.u8().unwrap_or_default());
                Self::Multiprotocol(AfiSafi::new(afi, safi))
            }
            code::ROUTE_REFRESH => {
                exact(0, "route refresh capability length")?;
                Self::RouteRefresh
            }
            code::ROUTE_REFRESH_CISCO => {
                exact(0, "route refresh capability length")?;
                Self::RouteRefreshCisco
            }
            code::ENHANCED_ROUTE_REFRESH => {
                exact(0, "enhanced route refresh capability length")?;
                Self::EnhancedRouteRefresh
            }
            code::EXTENDED_MESSAGE => {
                exact(0, "extended message capability length")?;
                Self::ExtendedMessage
            }
            code::FOUR_OCTET_AS => {
                exact(4, "4-octet AS capability length")?;
                Self::FourOctetAs(r.u32().unwrap_or_default())
            }
            code::ROLE => {
                exact(1, "role capability length")?;
                Self::Role(Role::from_u8(r.u8().unwrap_or_default()))
            }
            code::GRACEFUL_RESTART => {
                let head = r
                    .u16()
                    .ok_or(OpenError::Malformed("graceful restart capability"))?;
                let families = records(r.rest(), 4, "graceful restart capability", |r| {
                    let family = afi_safi(r)?;
                    let flags = r.u8()?;
                    Some(GracefulRestartFamily {
                        family,
                        forwarding: flags & 0x80 != 0,
                    })
                })?;
                Self::GracefulRestart(GracefulRestart {
                    restart_state: head & 0x8000 != 0,
                    notification: head & 0x4000 != 0,
                    restart_time: head & 0x0fff,
                    families,
                })
            }
            code::LONG_LIVED_GRACEFUL_RESTART => Self::LongLivedGracefulRestart(records(
                value,
                7,
                "long-lived graceful restart capability",
                |r| {
                    let family = afi_safi(r)?;
                    let flags = r.u8()?;
                    let t = r.array::<3>()?;
                    Some(LlgrFamily {
                        family,
                        forwarding: flags & 0x80 != 0,
                        stale_time: u32::from_be_bytes([0, t[0], t[1], t[2]]),
                    })
                },
            )?),
            code::EXTENDED_NEXT_HOP => {
                Self::ExtendedNextHop(records(value, 6, "extended next hop capability", |r| {
                    Some(ExtendedNextHop {
                        nlri_afi: Afi(r.u16()?),
                        nlri_safi: r.u16()?,
                        next_hop_afi: Afi(r.u16()?),
                    })
                })?)
            }
            code::ADD_PATH => Self::AddPath(records(value, 4, "ADD-PATH capability", |r| {
                let family = afi_safi(r)?;
                let mode = AddPathMode::from_u8(r.u8()?)?;
                Some(AddPathFamily { family, mode })
            })?),
            code::FQDN => {
                let fqdn = (|| {
                    let n = usize::from(r.u8()?);
                    let host = r.take(n)?;
                    let n = usize::from(r.u8()?);
                    let domain = r.take(n)?;
                    r.is_empty().then_some((host, domain))
                })()
                .ok_or(OpenError::Malformed("FQDN capability"))?;
                match (std::str::from_utf8(fqdn.0), std::str::from_utf8(fqdn.1)) {
                    (Ok(h), Ok(d)) => Self::Fqdn {
                        hostname: h.to_owned(),
                        domain: d.to_owned(),
                    },
                    // Not text: keep the bytes rather than guess an encoding.
                    _ => Self::Unknown {
                        code,
                        value: Bytes::copy_from_slice(value),
                    },
                }
            }
            _ => Self::Unknown {
                code,
                value: Bytes::copy_from_slice(value),
            },
        })
    }

    /// Appends code, length and value.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u8(self.code());
        let len_at = out.len();
        out.put_u8(0);
        match self {
            Self::Multiprotocol(f) => {
                out.put_u16(f.afi.0);
                out.put_u8(0);
                out.put_u8(f.safi.0);
            }
            Self::RouteRefresh
            | Self::RouteRefreshCisco
            | Self::EnhancedRouteRefresh
            | Self::ExtendedMessage => {}
            Self::FourOctetAs(asn) => out.put_u32(*asn),
            Self::Role(role) => out.put_u8(role.to_u8()),
            Self::GracefulRestart(gr) => {
                let mut head = gr.restart_time & 0x0fff;
                if gr.restart_state {
                    head |= 0x8000;
                }
                if gr.notification {
                    head |= 0x4000;
                }
                out.put_u16(head);
                for f in &gr.families {
                    put_afi_safi(out, f.family);
                    out.put_u8(if f.forwarding { 0x80 } else { 0 });
                }
            }
            Self::LongLivedGracefulRestart(families) => {
                for f in families {
                    put_afi_safi(out, f.family);
                    out.put_u8(if f.forwarding { 0x80 } else { 0 });
                    out.put_slice(&f.stale_time.min(0x00ff_ffff).to_be_bytes()[1..]);
                }
            }
            Self::ExtendedNextHop(entries) => {
                for e in entries {
                    out.put_u16(e.nlri_afi.0);
                    out.put_u16(e.nlri_safi);
                    out.put_u16(e.next_hop_afi.0);
                }
            }
            Self::AddPath(families) => {
                for f in families {
                    put_afi_safi(out, f.family);
                    out.put_u8(f.mode.to_u8());
                }
            }
            Self::Fqdn { hostname, domain } => {
                for s in [hostname, domain] {
                    let b = &s.as_bytes()[..s.len().min(255)];
                    out.put_u8(b.len() as u8);
                    out.put_slice(b);
                }
            }
            Self::Unknown { value, .. } => out.put_slice(value),
        }
        let len = out.len() - len_at - 1;
        // A capability value longer than 255 octets cannot be expressed; callers
        // build capabilities from bounded configuration, so clamp rather than panic.
        out[len_at] = len.min(255) as u8;
    }

    /// The encoded size: code, length and value.
    pub fn encoded_len(&self) -> usize {
        let mut tmp = BytesMut::new();
        self.encode(&mut tmp);
        tmp.len()
    }
}
