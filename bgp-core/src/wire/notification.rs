//! NOTIFICATION (RFC 4271 section 4.5) with the error codes and subcodes of
//! section 6 and of the RFCs that extend them (RFC 4486, RFC 6608, RFC 7313,
//! RFC 8203/9003, RFC 8538, RFC 9234, RFC 9687).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Error code    | Error subcode |   Data (variable)             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::family::{Afi, AfiSafi, Safi};

/// NOTIFICATION error codes (RFC 4271 section 4.5 and IANA).
pub mod code {
    /// Message Header Error (RFC 4271 section 6.1).
    pub const MESSAGE_HEADER: u8 = 1;
    /// OPEN Message Error (RFC 4271 section 6.2).
    pub const OPEN_MESSAGE: u8 = 2;
    /// UPDATE Message Error (RFC 4271 section 6.3).
    pub const UPDATE_MESSAGE: u8 = 3;
    /// Hold Timer Expired (RFC 4271 section 6.5).
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    /// Finite State Machine Error (RFC 4271 section 6.6, RFC 6608).
    pub const FSM: u8 = 5;
    /// Cease (RFC 4271 section 6.7, RFC 4486).
    pub const CEASE: u8 = 6;
    /// ROUTE-REFRESH Message Error (RFC 7313 section 5).
    pub const ROUTE_REFRESH: u8 = 7;
    /// Send Hold Timer Expired (RFC 9687).
    pub const SEND_HOLD_TIMER_EXPIRED: u8 = 8;
}

/// Error subcodes, one module per error code.
pub mod subcode {
    /// Message Header Error subcodes (RFC 4271 section 6.1).
    pub mod header {
        /// The marker is not all ones.
        pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
        /// The length field is out of range for the message type.
        pub const BAD_MESSAGE_LENGTH: u8 = 2;
        /// The type field is not a known message type.
        pub const BAD_MESSAGE_TYPE: u8 = 3;
    }
    /// OPEN Message Error subcodes (RFC 4271 section 6.2, RFC 5492, RFC 9234).
    pub mod open {
        /// No more specific subcode applies (IANA, RFC 4271 errata 4493).
        pub const UNSPECIFIC: u8 = 0;
        /// Version is not 4.
        pub const UNSUPPORTED_VERSION_NUMBER: u8 = 1;
        /// The peer's AS is not the one configured.
        pub const BAD_PEER_AS: u8 = 2;
        /// The BGP Identifier is not acceptable.
        pub const BAD_BGP_IDENTIFIER: u8 = 3;
        /// An optional parameter type is not recognized.
        pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
        /// Hold time is 1 or 2 seconds, or not acceptable by configuration.
        pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
        /// A required capability is not supported by the peer (RFC 5492).
        pub const UNSUPPORTED_CAPABILITY: u8 = 7;
        /// BGP roles do not pair up (RFC 9234).
        pub const ROLE_MISMATCH: u8 = 11;
    }
    /// UPDATE Message Error subcodes (RFC 4271 section 6.3).
    pub mod update {
        /// Attribute and field lengths do not add up, or an attribute repeats.
        pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
        /// A well-known attribute type this speaker does not know.
        pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
        /// A mandatory well-known attribute is absent.
        pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
        /// Attribute flags conflict with the attribute type.
        pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
        /// Attribute length is wrong for the attribute type.
        pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
        /// ORIGIN has an undefined value.
        pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
        /// NEXT_HOP is syntactically or semantically invalid.
        pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
        /// An optional attribute is malformed.
        pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
        /// The NLRI field is syntactically incorrect.
        pub const INVALID_NETWORK_FIELD: u8 = 10;
        /// AS_PATH is syntactically incorrect.
        pub const MALFORMED_AS_PATH: u8 = 11;
    }
    /// Finite State Machine Error subcodes (RFC 6608).
    pub mod fsm {
        /// No more specific subcode applies.
        pub const UNSPECIFIED: u8 = 0;
        /// An unexpected message in OpenSent.
        pub const UNEXPECTED_IN_OPENSENT: u8 = 1;
        /// An unexpected message in OpenConfirm.
        pub const UNEXPECTED_IN_OPENCONFIRM: u8 = 2;
        /// An unexpected message in Established.
        pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
    }
    /// Cease subcodes (RFC 4486, RFC 8538, RFC 9384).
    pub mod cease {
        /// Maximum number of prefixes reached.
        pub const MAX_PREFIXES: u8 = 1;
        /// Administrative shutdown (may carry a shutdown communication, RFC 9003).
        pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
        /// The peer was removed from the configuration.
        pub const PEER_DECONFIGURED: u8 = 3;
        /// Administrative reset (may carry a shutdown communication, RFC 9003).
        pub const ADMINISTRATIVE_RESET: u8 = 4;
        /// The connection was refused.
        pub const CONNECTION_REJECTED: u8 = 5;
        /// Some other configuration change.
        pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
        /// Connection collision resolution (RFC 4271 section 6.8).
        pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
        /// Out of resources.
        pub const OUT_OF_RESOURCES: u8 = 8;
        /// Hard reset: no graceful restart for this session (RFC 8538).
        pub const HARD_RESET: u8 = 9;
        /// BFD went down (RFC 9384).
        pub const BFD_DOWN: u8 = 10;
    }
    /// ROUTE-REFRESH Message Error subcodes (RFC 7313 section 5).
    pub mod route_refresh {
        /// A BoRR or EoRR whose length is not 4 octets after the header.
        pub const INVALID_MESSAGE_LENGTH: u8 = 1;
    }
}

/// A NOTIFICATION message: the error that closes a session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notification {
    /// Error code (see [`code`]).
    pub code: u8,
    /// Error subcode (see [`subcode`]), 0 where the code has none.
    pub subcode: u8,
    /// Diagnostic data whose meaning depends on code and subcode.
    pub data: Bytes,
}

impl Notification {
    /// A NOTIFICATION with no data.
    pub fn new(code: u8, subcode: u8) -> Self {
        Self::with_data(code, subcode, Bytes::new())
    }

    /// A NOTIFICATION with diagnostic data.
    pub fn with_data(code: u8, subcode: u8, data: impl Into<Bytes>) -> Self {
        Self {
            code,
            subcode,
            data: data.into(),
        }
    }

    /// Cease with a shutdown communication (RFC 9003): `subcode` should be
    /// administrative shutdown or reset. The message is cut to 255 octets on a UTF-8
    /// character boundary.
    pub fn cease_with_message(subcode: u8, message: &str) -> Self {
        let mut end = message.len().min(255);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let mut data = BytesMut::with_capacity(end + 1);
        data.put_u8(end as u8);
        data.put_slice(&message.as_bytes()[..end]);
        Self::with_data(code::CEASE, subcode, data.freeze())
    }

    /// Cease "maximum number of prefixes reached" with the RFC 4486 data: the
    /// family and the configured upper bound.
    pub fn max_prefixes(family: AfiSafi, limit: u32) -> Self {
        let mut data = BytesMut::with_capacity(7);
        data.put_u16(family.afi.0);
        data.put_u8(family.safi.0);
        data.put_u32(limit);
        Self::with_data(code::CEASE, subcode::cease::MAX_PREFIXES, data.freeze())
    }

    /// The shutdown communication of a Cease administrative shutdown or reset
    /// (RFC 9003), if the data holds a valid one.
    pub fn shutdown_message(&self) -> Option<&str> {
        use subcode::cease::{ADMINISTRATIVE_RESET, ADMINISTRATIVE_SHUTDOWN};
        if self.code != code::CEASE
            || !(self.subcode == ADMINISTRATIVE_SHUTDOWN || self.subcode == ADMINISTRATIVE_RESET)
        {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..usize::from(len))?;
        std::str::from_utf8(text).ok()
    }

    /// The family and limit of a Cease "maximum number of prefixes" (RFC 4486).
    pub fn max_prefixes_data(&self) -> Option<(AfiSafi, u32)> {
        if self.code != code::CEASE || self.subcode != subcode::cease::MAX_PREFIXES {
            return None;
        }
        let d: &[u8; 7] = self.data.get(..7)?.try_into().ok()?;
        let family = AfiSafi::new(Afi(u16::from_be_bytes([d[0], d[1]])), Safi(d[2]));
        Some((family, u32::from_be_bytes([d[3], d[4], d[5], d[6]])))
    }

    /// The code's name, as operators read it in logs.
    pub fn code_name(&self) -> &'static str {
        match self.code {
            code::MESSAGE_HEADER => "Message Header Error",
            code::OPEN_MESSAGE => "OPEN Message Error",
            code::UPDATE_MESSAGE => "UPDATE Message Error",
            code::HOLD_TIMER_EXPIRED => "Hold Timer Expired",
            code::FSM => "Finite State Machine Error",
            code::CEASE => "Cease",
            code::ROUTE_REFRESH => "ROUTE-REFRESH Message Error",
            code::SEND_HOLD_TIMER_EXPIRED => "Send Hold Timer Expired",
            _ => "Unknown Error",
        }
    }

    /// The subcode's name, or `None` where the code defines no such subcode.
    pub fn subcode_name(&self) -> Option<&'static str> {
        use subcode::*;
        Some(match (self.code, self.subcode) {
            (code::MESSAGE_HEADER, header::CONNECTION_NOT_SYNCHRONIZED) => {
                "Connection Not Synchronized"
            }
            (code::MESSAGE_HEADER, header::BAD_MESSAGE_LENGTH) => "Bad Message Length",
            (code::MESSAGE_HEADER, header::BAD_MESSAGE_TYPE) => "Bad Message Type",
            (code::OPEN_MESSAGE, open::UNSPECIFIC) => "Unspecific",
            (code::OPEN_MESSAGE, open::UNSUPPORTED_VERSION_NUMBER) => "Unsupported Version Number",
            (code::OPEN_MESSAGE, open::BAD_PEER_AS) => "Bad Peer AS",
            (code::OPEN_MESSAGE, open::BAD_BGP_IDENTIFIER) => "Bad BGP Identifier",
            (code::OPEN_MESSAGE, open::UNSUPPORTED_OPTIONAL_PARAMETER) => {
                "Unsupported Optional Parameter"
            }
            (code::OPEN_MESSAGE, open::UNACCEPTABLE_HOLD_TIME) => "Unacceptable Hold Time",
            (code::OPEN_MESSAGE, open::UNSUPPORTED_CAPABILITY) => "Unsupported Capability",
            (code::OPEN_MESSAGE, open::ROLE_MISMATCH) => "Role Mismatch",
            (code::UPDATE_MESSAGE, update::MALFORMED_ATTRIBUTE_LIST) => "Malformed Attribute List",
            (code::UPDATE_MESSAGE, update::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE) => {
                "Unrecognized Well-known Attribute"
            }
            (code::UPDATE_MESSAGE, update::MISSING_WELL_KNOWN_ATTRIBUTE) => {
                "Missing Well-known Attribute"
            }
            (code::UPDATE_MESSAGE, update::ATTRIBUTE_FLAGS_ERROR) => "Attribute Flags Error",
            (code::UPDATE_MESSAGE, update::ATTRIBUTE_LENGTH_ERROR) => "Attribute Length Error",
            (code::UPDATE_MESSAGE, update::INVALID_ORIGIN_ATTRIBUTE) => "Invalid ORIGIN Attribute",
            (code::UPDATE_MESSAGE, update::INVALID_NEXT_HOP_ATTRIBUTE) => {
                "Invalid NEXT_HOP Attribute"
            }
            (code::UPDATE_MESSAGE, update::OPTIONAL_ATTRIBUTE_ERROR) => "Optional Attribute Error",
            (code::UPDATE_MESSAGE, update::INVALID_NETWORK_FIELD) => "Invalid Network Field",
            (code::UPDATE_MESSAGE, update::MALFORMED_AS_PATH) => "Malformed AS_PATH",
            (code::FSM, fsm::UNSPECIFIED) => "Unspecified",
            (code::FSM, fsm::UNEXPECTED_IN_OPENSENT) => "Unexpected Message in OpenSent",
            (code::FSM, fsm::UNEXPECTED_IN_OPENCONFIRM) => "Unexpected Message in OpenConfirm",
            (code::FSM, fsm::UNEXPECTED_IN_ESTABLISHED) => "Unexpected Message in Established",
            (code::CEASE, cease::MAX_PREFIXES) => "Maximum Number of Prefixes Reached",
            (code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN) => "Administrative Shutdown",
            (code::CEASE, cease::PEER_DECONFIGURED) => "Peer De-configured",
            (code::CEASE, cease::ADMINISTRATIVE_RESET) => "Administrative Reset",
            (code::CEASE, cease::CONNECTION_REJECTED) => "Connection Rejected",
            (code::CEASE, cease::OTHER_CONFIGURATION_CHANGE) => "Other Configuration Change",
            (code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION) => {
                "Connection Collision Resolution"
            }
            (code::CEASE, cease::OUT_OF_RESOURCES) => "Out of Resources",
            (code::CEASE, cease::HARD_RESET) => "Hard Reset",
            (code::CEASE, cease::BFD_DOWN) => "BFD Down",
            (code::ROUTE_REFRESH, route_refresh::INVALID_MESSAGE_LENGTH) => {
                "Invalid Message Length"
            }
            _ => return None,
        })
    }

    pub(crate) fn decode_body(body: &[u8]) -> Option<Self> {
        let (&code, rest) = body.split_first()?;
        let (&subcode, data) = rest.split_first()?;
        Some(Self::with_data(code, subcode, Bytes::copy_from_slice(data)))
    }

    pub(crate) fn encode_body(&self, out: &mut BytesMut) {
        out.put_u8(self.code);
        out.put_u8(self.subcode);
        out.put_slice(&self.data);
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code_name())?;
        match self.subcode_name() {
            Some(name) => write!(f, "/{name}")?,
            None if self.subcode != 0 => write!(f, "/subcode {}", self.subcode)?,
            None => {}
        }
        if let Some(msg) = self.shutdown_message() {
            write!(f, " \"{}\"", msg.escape_debug())?;
        } else if let Some((family, limit)) = self.max_prefixes_data() {
            write!(f, " ({family} limit {limit})")?;
        } else if !self.data.is_empty() {
            f.write_str(" data ")?;
            for b in self.data.iter().take(32) {
                write!(f, "{b:02x}")?;
            }
            if self.data.len() > 32 {
                f.write_str("...")?;
            }
        }
        Ok(())
    }
}
