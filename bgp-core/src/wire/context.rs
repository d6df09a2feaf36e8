//! The per-session decoding and encoding context.
//!
//! What the two speakers negotiated in their OPENs changes how the same bytes read:
//! AS numbers in AS_PATH are two or four octets (RFC 6793), NLRI carry a path
//! identifier or not (RFC 7911, per family and per direction), and a message may be
//! up to 4096 or 65535 octets long (RFC 8654), and IPv4 routes may come with IPv6
//! next hops or not (RFC 8950). A session keeps one [`Context`] for
//! what it receives and one for what it sends.

use super::family::AfiSafi;

/// Largest BGP message without the extended message capability (RFC 4271 section 4.1).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Largest BGP message when both speakers advertised extended messages (RFC 8654).
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;

/// The families for which NLRI carry ADD-PATH path identifiers (RFC 7911 section 3).
///
/// A small set: only IPv4 and IPv6 unicast are carried with path identifiers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AddPathFamilies(u8);

impl AddPathFamilies {
    const IPV4: u8 = 1;
    const IPV6: u8 = 2;

    /// No family uses path identifiers.
    pub const NONE: AddPathFamilies = AddPathFamilies(0);
    /// Both unicast families use path identifiers.
    pub const ALL: AddPathFamilies = AddPathFamilies(Self::IPV4 | Self::IPV6);

    fn bit(family: AfiSafi) -> u8 {
        if family == AfiSafi::IPV4_UNICAST {
            Self::IPV4
        } else if family == AfiSafi::IPV6_UNICAST {
            Self::IPV6
        } else {
            0
        }
    }

    /// Adds a family (a no-op for families other than IPv4 and IPv6 unicast).
    pub fn insert(&mut self, family: AfiSafi) {
        self.0 |= Self::bit(family);
    }

    /// Whether NLRI of `family` carry a path identifier.
    pub fn contains(self, family: AfiSafi) -> bool {
        Self::bit(family) & self.0 != 0
    }
}

/// Who the peer is, for the RFC 7606 rules that depend on it (LOCAL_PREF,
/// ORIGINATOR_ID and CLUSTER_LIST from external peers, the first AS of the path,
/// confederation segments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PeerKind {
    /// Not known: the checks that need it are skipped.
    #[default]
    Unknown,
    /// An internal (iBGP) peer.
    Internal,
    /// An external (eBGP) peer in the given AS.
    External(u32),
    /// A peer in another member AS of our confederation (RFC 5065), given.
    ConfedExternal(u32),
}

impl PeerKind {
    /// Whether LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST are meaningful from this
    /// peer (internal, or inside the confederation).
    pub fn is_internal(self) -> bool {
        !matches!(self, Self::External(_))
    }
}

/// What a session negotiated that changes the wire format, for one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Context {
    /// Both speakers advertised the 4-octet AS capability (RFC 6793).
    pub four_octet_as: bool,
    /// Both speakers advertised the extended message capability (RFC 8654).
    pub extended_message: bool,
    /// Families whose NLRI carry path identifiers in this direction (RFC 7911).
    pub add_path: AddPathFamilies,
    /// Who the peer is (decoding only).
    pub peer: PeerKind,
    /// IPv4 NLRI may carry an IPv6 next hop in this direction (RFC 8950): when
    /// receiving, we advertised the extended next hop capability for IPv4
    /// unicast; when sending, the peer did. Without it, such a route is
    /// treated as withdrawn on receipt.
    pub extended_next_hop: bool,
}

impl Context {
    /// The context before or without any negotiation: 2-octet AS numbers, 4096-octet
    /// messages, no path identifiers. This is what an OPEN is decoded under.
    pub const LEGACY: Context = Context {
        four_octet_as: false,
        extended_message: false,
        add_path: AddPathFamilies::NONE,
        peer: PeerKind::Unknown,
        extended_next_hop: false,
    };

    /// What every current implementation negotiates: 4-octet AS numbers, 4096-octet
    /// messages, no path identifiers.
    pub const MODERN: Context = Context {
        four_octet_as: true,
        ..Self::LEGACY
    };

    /// The largest message this context allows for UPDATE and ROUTE-REFRESH.
    /// OPEN and KEEPALIVE never exceed 4096 octets (RFC 8654 section 4).
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }
}

impl Default for Context {
    fn default() -> Self {
        Self::MODERN
    }
}
