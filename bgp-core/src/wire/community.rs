//! Communities (RFC 1997), extended communities (RFC 4360) and large communities
//! (RFC 8092).

use std::fmt;
use std::str::FromStr;

/// A standard community: two 16-bit halves, conventionally `AS:value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    /// Graceful shutdown (RFC 8326): lower the preference of this path.
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);
    /// Accept own (RFC 7611).
    pub const ACCEPT_OWN: Community = Community(0xFFFF_0001);
    /// Long-lived graceful restart stale (RFC 9494).
    pub const LLGR_STALE: Community = Community(0xFFFF_0006);
    /// Do not keep as long-lived stale (RFC 9494).
    pub const NO_LLGR: Community = Community(0xFFFF_0007);
    /// Blackhole (RFC 7999).
    pub const BLACKHOLE: Community = Community(0xFFFF_029A);
    /// Do not advertise outside the AS or confederation (RFC 1997).
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    /// Do not advertise to any peer (RFC 1997).
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    /// Do not advertise to external peers, even in the confederation (RFC 1997).
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);

    /// The community `asn:value`.
    pub const fn new(asn: u16, value: u16) -> Self {
        Self(((asn as u32) << 16) | value as u32)
    }

    /// The high half, conventionally an AS number.
    pub fn asn(self) -> u16 {
        (self.0 >> 16) as u16
    }

    /// The low half.
    pub fn value(self) -> u16 {
        self.0 as u16
    }

    /// The name of a well-known community, as FRR and BIRD print it.
    pub fn well_known_name(self) -> Option<&'static str> {
        Some(match self {
            Self::GRACEFUL_SHUTDOWN => "graceful-shutdown",
            Self::ACCEPT_OWN => "accept-own",
            Self::LLGR_STALE => "llgr-stale",
            Self::NO_LLGR => "no-llgr",
            Self::BLACKHOLE => "blackhole",
            Self::NO_EXPORT => "no-export",
            Self::NO_ADVERTISE => "no-advertise",
            Self::NO_EXPORT_SUBCONFED => "local-AS",
            _ => return None,
        })
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.well_known_name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}:{}", self.asn(), self.value()),
        }
    }
}

/// A community that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid community {0:?}: expected ASN:VALUE (each 0-65535) or a well-known name")]
pub struct ParseCommunityError(String);

impl FromStr for Community {
    type Err = ParseCommunityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let named = [
            Self::GRACEFUL_SHUTDOWN,
            Self::ACCEPT_OWN,
            Self::LLGR_STALE,
            Self::NO_LLGR,
            Self::BLACKHOLE,
            Self::NO_EXPORT,
            Self::NO_ADVERTISE,
            Self::NO_EXPORT_SUBCONFED,
        ];
        if let Some(c) = named.into_iter().find(|c| {
            c.well_known_name()
                .is_some_and(|n| n.eq_ignore_ascii_case(s))
        }) {
            return Ok(c);
        }
        let err = || ParseCommunityError(s.to_owned());
        let (a, v) = s.split_once(':').ok_or_else(err)?;
        Ok(Self::new(
            a.parse().map_err(|_| err())?,
            v.parse().map_err(|_| err())?,
        ))
    }
}

/// An extended community (RFC 4360): eight octets, a type, a subtype and a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtCommunity(pub [u8; 8]);

impl ExtCommunity {
    /// A 2-octet-AS route target (type 0x00, subtype 0x02): `rt ASN:VALUE`.
    pub fn route_target(asn: u16, value: u32) -> Self {
        let mut b = [0u8; 8];
        b[1] = 0x02;
        b[2..4].copy_from_slice(&asn.to_be_bytes());
        b[4..8].copy_from_slice(&value.to_be_bytes());
        Self(b)
    }

    /// The type octet (its high bits say IANA authority and transitivity).
    pub fn kind(self) -> u8 {
        self.0[0]
    }

    /// The subtype octet.
    pub fn subtype(self) -> u8 {
        self.0[1]
    }

    /// Whether the community may cross AS boundaries (bit 1 of the type clear).
    pub fn is_transitive(self) -> bool {
        self.0[0] & 0x40 == 0
    }
}

impl fmt::Display for ExtCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let name = match b[1] {
            0x02 => "rt",
            0x03 => "soo",
            _ => "",
        };
        match (b[0] & 0x3f, name) {
            (0x00, n) if !n.is_empty() => write!(f, "{n} {}:{}", u16_at(2), u32_at(4)),
            (0x02, n) if !n.is_empty() => write!(f, "{n} {}:{}", u32_at(2), u16_at(6)),
            (0x01, n) if !n.is_empty() => {
                let ip = std::net::Ipv4Addr::new(b[2], b[3], b[4], b[5]);
                write!(f, "{n} {ip}:{}", u16_at(6))
            }
            _ => {
                f.write_str("0x")?;
                b.iter().try_for_each(|x| write!(f, "{x:02x}"))
            }
        }
    }
}

/// A large community (RFC 8092): `global:local1:local2`, each 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    /// Global administrator, an AS number.
    pub global: u32,
    /// First local data part.
    pub local1: u32,
    /// Second local data part.
    pub local2: u32,
}

impl LargeCommunity {
    /// The large community `global:local1:local2`.
    pub const fn new(global: u32, local1: u32, local2: u32) -> Self {
        Self {
            global,
            local1,
            local2,
        }
    }
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.global, self.local1, self.local2)
    }
}

/// A large community that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid large community {0:?}: expected GLOBAL:LOCAL1:LOCAL2 (each 0-4294967295)")]
pub struct ParseLargeCommunityError(String);

impl FromStr for LargeCommunity {
    type Err = ParseLargeCommunityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseLargeCommunityError(s.to_owned());
        let mut it = s.split(':').map(|p| p.parse::<u32>().map_err(|_| err()));
        let (Some(g), Some(l1), Some(l2), None) = (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(err());
        };
        Ok(Self::new(g?, l1?, l2?))
    }
}

/// Communities serialize as operators write them: `65001:100`, `no-export`,
/// `rt 65001:1`, `65001:1:2`.
macro_rules! serialize_as_text {
    ($($t:ty),*) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}
serialize_as_text!(Community, ExtCommunity, LargeCommunity);
