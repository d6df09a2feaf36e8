//! ROUTE-REFRESH (RFC 2918 section 3) with the message subtypes of enhanced route
//! refresh (RFC 7313 section 3.2).
//!
//! ```text
//!  0       7      15      23      31
//! +-------+-------+-------+-------+
//! |      AFI      | Subtype| SAFI |
//! +-------+-------+-------+-------+
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{HeaderError, RouteRefreshError};
use super::family::{Afi, AfiSafi, Safi};

/// The message subtype (the octet that RFC 2918 called Reserved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteRefreshSubtype {
    /// A plain request to re-advertise (0).
    Request,
    /// Beginning of Route Refresh, BoRR (1).
    BeginningOfRefresh,
    /// End of Route Refresh, EoRR (2).
    EndOfRefresh,
    /// Any other value: the receiver ignores the message (RFC 7313 section 5).
    Other(u8),
}

impl RouteRefreshSubtype {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Request,
            1 => Self::BeginningOfRefresh,
            2 => Self::EndOfRefresh,
            v => Self::Other(v),
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Request => 0,
            Self::BeginningOfRefresh => 1,
            Self::EndOfRefresh => 2,
            Self::Other(v) => v,
        }
    }
}

/// A ROUTE-REFRESH message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteRefresh {
    /// The family to refresh.
    pub family: AfiSafi,
    /// Request, BoRR or EoRR.
    pub subtype: RouteRefreshSubtype,
}

impl RouteRefresh {
    /// A plain refresh request for `family`.
    pub fn request(family: AfiSafi) -> Self {
        Self {
            family,
            subtype: RouteRefreshSubtype::Request,
        }
    }

    /// Decodes the body. `message` is the whole message (the NOTIFICATION data of
    /// an invalid BoRR or EoRR). A plain request may carry ORF entries after the
    /// fixed part (RFC 5291); they are not supported and ignored.
    pub(crate) fn decode(body: &[u8], message: &[u8]) -> Result<Self, super::DecodeError> {
        let Some(fixed) = body.first_chunk::<4>() else {
            return Err(HeaderError::BadMessageLength(message.len() as u16).into());
        };
        let subtype = RouteRefreshSubtype::from_u8(fixed[2]);
        if body.len() != 4
            && matches!(
                subtype,
                RouteRefreshSubtype::BeginningOfRefresh | RouteRefreshSubtype::EndOfRefresh
            )
        {
            return Err(RouteRefreshError::InvalidMessageLength {
                subtype: fixed[2],
                message: Bytes::copy_from_slice(message),
            }
            .into());
        }
        Ok(Self {
            family: AfiSafi::new(
                Afi(u16::from_be_bytes([fixed[0], fixed[1]])),
                Safi(fixed[3]),
            ),
            subtype,
        })
    }

    pub(crate) fn encode_body(&self, out: &mut BytesMut) {
        out.put_u16(self.family.afi.0);
        out.put_u8(self.subtype.to_u8());
        out.put_u8(self.family.safi.0);
    }
}
