//! Decode errors. Each one *is* the NOTIFICATION to send: its code, subcode and
//! data follow RFC 4271 section 6 (and RFC 7313, RFC 9072 where they apply), so a
//! session answers a decode failure with [`DecodeError::notification`] and nothing
//! else.
//!
//! UPDATE errors that RFC 7606 does not punish with a session reset are not errors
//! here: they come back inside the decoded [`Update`](super::Update) as
//! [`AttributeError`]s, each with its [`Rfc7606Action`].

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::notification::{Notification, code, subcode};

/// What RFC 7606 section 2 says to do about a malformed UPDATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rfc7606Action {
    /// Drop the malformed attribute and go on with the rest of the UPDATE.
    AttributeDiscard,
    /// Treat every route the UPDATE announces as withdrawn (section 2).
    TreatAsWithdraw,
    /// Send the NOTIFICATION and close the session.
    SessionReset,
}

/// The Message Header errors of RFC 4271 section 6.1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The 16-octet marker is not all ones.
    #[error("connection not synchronized: marker is not all ones")]
    ConnectionNotSynchronized,
    /// The length field is shorter than the type allows, or longer than negotiated.
    #[error("bad message length {0}")]
    BadMessageLength(u16),
    /// The type octet names no message this speaker knows.
    #[error("bad message type {0}")]
    BadMessageType(u8),
}

impl HeaderError {
    fn notification(&self) -> Notification {
        use subcode::header::*;
        match *self {
            Self::ConnectionNotSynchronized => {
                Notification::new(code::MESSAGE_HEADER, CONNECTION_NOT_SYNCHRONIZED)
            }
            // Data: the erroneous length field (section 6.1).
            Self::BadMessageLength(len) => Notification::with_data(
                code::MESSAGE_HEADER,
                BAD_MESSAGE_LENGTH,
                Bytes::copy_from_slice(&len.to_be_bytes()),
            ),
            // Data: the erroneous type field.
            Self::BadMessageType(t) => Notification::with_data(
                code::MESSAGE_HEADER,
                BAD_MESSAGE_TYPE,
                Bytes::copy_from_slice(&[t]),
            ),
        }
    }
}

/// The OPEN Message errors of RFC 4271 section 6.2 that a decoder can see.
/// Bad Peer AS and capability policy are the session's to judge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Version is not 4.
    #[error("unsupported BGP version {0}")]
    UnsupportedVersion(u8),
    /// Hold time is 1 or 2 seconds (section 4.2: zero or at least three).
    #[error("unacceptable hold time {0}")]
    UnacceptableHoldTime(u16),
    /// BGP Identifier is zero (RFC 6286 section 2.2).
    #[error("bad BGP identifier 0.0.0.0")]
    BadBgpIdentifier,
    /// An optional parameter other than capabilities (RFC 5492).
    #[error("unsupported optional parameter type {0}")]
    UnsupportedOptionalParameter(u8),
    /// Optional parameters or a known capability whose lengths do not add up.
    #[error("malformed OPEN: {0}")]
    Malformed(&'static str),
}

impl OpenError {
    fn notification(&self) -> Notification {
        use subcode::open::*;
        match *self {
            // Data: the largest locally supported version, two octets.
            Self::UnsupportedVersion(_) => Notification::with_data(
                code::OPEN_MESSAGE,
                UNSUPPORTED_VERSION_NUMBER,
                Bytes::from_static(&[0, 4]),
            ),
            Self::UnacceptableHoldTime(_) => {
                Notification::new(code::OPEN_MESSAGE, UNACCEPTABLE_HOLD_TIME)
            }
            Self::BadBgpIdentifier => Notification::new(code::OPEN_MESSAGE, BAD_BGP_IDENTIFIER),
            Self::UnsupportedOptionalParameter(_) => {
                Notification::new(code::OPEN_MESSAGE, UNSUPPORTED_OPTIONAL_PARAMETER)
            }
            Self::Malformed(_) => Notification::new(code::OPEN_MESSAGE, UNSPECIFIC),
        }
    }
}

/// UPDATE Message errors that reset the session (RFC 4271 section 6.3 as revised
/// by RFC 7606). `data` is the NOTIFICATION's data field as section 6.3 prescribes
/// for the subcode (usually the offending attribute: flags, type, length, value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateError {
    /// UPDATE Message Error subcode (see [`subcode::update`]).
    pub subcode: u8,
    /// The NOTIFICATION data.
    pub data: Bytes,
    /// What was wrong, for logs.
    pub reason: &'static str,
}

impl UpdateError {
    pub(crate) fn new(subcode: u8, reason: &'static str) -> Self {
        Self {
            subcode,
            data: Bytes::new(),
            reason,
        }
    }

    pub(crate) fn with_data(subcode: u8, data: Bytes, reason: &'static str) -> Self {
        Self {
            subcode,
            data,
            reason,
        }
    }

    /// Always [`Rfc7606Action::SessionReset`]: the other outcomes are not errors.
    pub fn action(&self) -> Rfc7606Action {
        Rfc7606Action::SessionReset
    }
}

impl fmt::Display for UpdateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = Notification::new(code::UPDATE_MESSAGE, self.subcode);
        write!(
            f,
            "{}: {}",
            n.subcode_name().unwrap_or("UPDATE error"),
            self.reason
        )
    }
}

impl std::error::Error for UpdateError {}

/// A ROUTE-REFRESH message error (RFC 7313 section 5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteRefreshError {
    /// A BoRR or EoRR whose body is not exactly four octets; carries the message.
    #[error("ROUTE-REFRESH subtype {subtype} with invalid length")]
    InvalidMessageLength {
        /// The message subtype.
        subtype: u8,
        /// The whole message, header included: the NOTIFICATION data.
        message: Bytes,
    },
}

/// Why a received message could not be decoded: the NOTIFICATION to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Message header error.
    #[error("header: {0}")]
    Header(#[from] HeaderError),
    /// OPEN message error.
    #[error("OPEN: {0}")]
    Open(#[from] OpenError),
    /// UPDATE message error that resets the session.
    #[error("UPDATE: {0}")]
    Update(#[from] UpdateError),
    /// ROUTE-REFRESH message error.
    #[error("ROUTE-REFRESH: {0}")]
    RouteRefresh(#[from] RouteRefreshError),
}

impl DecodeError {
    /// The NOTIFICATION to send for this error.
    pub fn notification(&self) -> Notification {
        match self {
            Self::Header(e) => e.notification(),
            Self::Open(e) => e.notification(),
            Self::Update(e) => {
                Notification::with_data(code::UPDATE_MESSAGE, e.subcode, e.data.clone())
            }
            Self::RouteRefresh(RouteRefreshError::InvalidMessageLength { message, .. }) => {
                Notification::with_data(
                    code::ROUTE_REFRESH,
                    subcode::route_refresh::INVALID_MESSAGE_LENGTH,
                    message.clone(),
                )
            }
        }
    }
}

/// What was wrong with an attribute that RFC 7606 lets the session survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttributeFault {
    /// Optional/transitive flags conflict with the type (RFC 7606 section 3c).
    Flags,
    /// The length is wrong for the type.
    Length,
    /// The value is undefined or syntactically wrong.
    Value,
    /// A mandatory well-known attribute is absent (RFC 7606 section 3d).
    Missing,
    /// The attribute repeats; later copies are dropped (RFC 7606 section 3g).
    Duplicate,
    /// Not allowed from this kind of peer (e.g. LOCAL_PREF from an external peer).
    NotAllowed,
}

/// An attribute problem the session survives, with the RFC 7606 outcome.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttributeError {
    /// The attribute type code.
    pub type_code: u8,
    /// What was wrong.
    pub fault: AttributeFault,
    /// What RFC 7606 says to do: discard the attribute or treat as withdraw.
    pub action: Rfc7606Action,
    /// The RFC 4271 UPDATE Message Error subcode, had this been a session reset.
    pub subcode: u8,
    /// The offending attribute as received (flags, type, length, value), or the
    /// type code of a missing one: the data to log, or to send on a reset.
    pub data: Bytes,
}

impl fmt::Display for AttributeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fault = match self.fault {
            AttributeFault::Flags => "bad flags",
            AttributeFault::Length => "bad length",
            AttributeFault::Value => "bad value",
            AttributeFault::Missing => "missing",
            AttributeFault::Duplicate => "duplicate",
            AttributeFault::NotAllowed => "not allowed from this peer",
        };
        let action = match self.action {
            Rfc7606Action::AttributeDiscard => "attribute discarded",
            Rfc7606Action::TreatAsWithdraw => "treated as withdraw",
            Rfc7606Action::SessionReset => "session reset",
        };
        write!(
            f,
            "attribute {} ({}): {fault}, {action}",
            self.type_code,
            super::attr::type_name(self.type_code)
        )
    }
}

/// Errors while encoding: a message that does not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message would exceed the negotiated maximum length.
    #[error("message of {len} octets exceeds the maximum of {max}")]
    TooLong {
        /// The length the message would have.
        len: usize,
        /// The maximum allowed.
        max: usize,
    },
    /// A field exceeds what its length field can express.
    #[error("{0} too long to encode")]
    FieldTooLong(&'static str),
}

/// The attribute as the NOTIFICATION data of RFC 4271 section 6.3: flags, type,
/// length and value as received.
pub(crate) fn attribute_data(flags: u8, type_code: u8, value: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(value.len() + 4);
    let extended = flags & super::attr::flags::EXTENDED_LENGTH != 0;
    out.put_u8(flags);
    out.put_u8(type_code);
    if extended {
        out.put_u16(value.len() as u16);
    } else {
        out.put_u8(value.len() as u8);
    }
    out.put_slice(value);
    out.freeze()
}
