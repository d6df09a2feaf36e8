//! The message header (RFC 4271 section 4.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                           Marker                              +
//! |                      (16 octets, all ones)                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Length               |      Type     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use bytes::{BufMut, BytesMut};

use super::context::MAX_MESSAGE_LEN;
use super::error::{EncodeError, HeaderError};

/// Length of the fixed header: marker, length and type.
pub const HEADER_LEN: usize = 19;
/// The all-ones marker.
pub const MARKER: [u8; 16] = [0xff; 16];

/// The message types (RFC 4271 section 4.1, RFC 2918).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// OPEN (1).
    Open = 1,
    /// UPDATE (2).
    Update = 2,
    /// NOTIFICATION (3).
    Notification = 3,
    /// KEEPALIVE (4).
    Keepalive = 4,
    /// ROUTE-REFRESH (5), RFC 2918.
    RouteRefresh = 5,
}

impl MessageType {
    /// The type for a type octet, or a Bad Message Type error.
    pub fn from_u8(t: u8) -> Result<Self, HeaderError> {
        Ok(match t {
            1 => Self::Open,
            2 => Self::Update,
            3 => Self::Notification,
            4 => Self::Keepalive,
            5 => Self::RouteRefresh,
            _ => return Err(HeaderError::BadMessageType(t)),
        })
    }

    /// The shortest valid message of this type, header included (section 6.1).
    pub fn min_len(self) -> usize {
        match self {
            Self::Open => 29,
            Self::Update => 23,
            Self::Notification => 21,
            Self::Keepalive => 19,
            Self::RouteRefresh => 23,
        }
    }

    /// The longest valid message of this type under `max` (the negotiated maximum):
    /// OPEN and KEEPALIVE never exceed 4096 octets (RFC 8654 section 4).
    pub fn max_len(self, max: usize) -> usize {
        match self {
            Self::Keepalive => HEADER_LEN,
            Self::Open => MAX_MESSAGE_LEN,
            _ => max,
        }
    }
}

/// A validated header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Total message length, header included.
    pub length: u16,
    /// Message type.
    pub kind: MessageType,
}

impl Header {
    /// Checks marker, length and type (section 6.1) for a message of at most `max`
    /// octets. `buf` must hold at least [`HEADER_LEN`] octets.
    pub fn decode(buf: &[u8; HEADER_LEN], max: usize) -> Result<Self, HeaderError> {
        if buf[..16] != MARKER {
            return Err(HeaderError::ConnectionNotSynchronized);
        }
        let length = u16::from_be_bytes([buf[16], buf[17]]);
        let len = usize::from(length);
        if len < HEADER_LEN || len > max {
            return Err(HeaderError::BadMessageLength(length));
        }
        let kind = MessageType::from_u8(buf[18])?;
        if len < kind.min_len() || len > kind.max_len(max) {
            return Err(HeaderError::BadMessageLength(length));
        }
        Ok(Self { length, kind })
    }
}

/// Writes a header with a placeholder length; returns where the message starts so
/// [`finish`] can fill the length in.
pub(crate) fn begin(out: &mut BytesMut, kind: MessageType) -> usize {
    let start = out.len();
    out.put_slice(&MARKER);
    out.put_u16(0);
    out.put_u8(kind as u8);
    start
}

/// Fills in the length of the message begun at `start`, or fails (and removes the
/// partial message) when it exceeds `max`.
pub(crate) fn finish(out: &mut BytesMut, start: usize, max: usize) -> Result<(), EncodeError> {
    let len = out.len() - start;
    if len > max {
        out.truncate(start);
        return Err(EncodeError::TooLong { len, max });
    }
    out[start + 16..start + 18].copy_from_slice(&(len as u16).to_be_bytes());
    Ok(())
}
