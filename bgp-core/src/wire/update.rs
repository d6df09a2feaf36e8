//! UPDATE (RFC 4271 section 4.3): the structural parse ([`RawUpdate`], zero-copy)
//! and the validated message ([`Update`]) with its RFC 7606 outcome.
//!
//! ```text
//! +-----------------------------------------------------+
//! |   Withdrawn Routes Length (2 octets)                |
//! +-----------------------------------------------------+
//! |   Withdrawn Routes (variable)                       |
//! +-----------------------------------------------------+
//! |   Total Path Attribute Length (2 octets)            |
//! +-----------------------------------------------------+
//! |   Path Attributes (variable)                        |
//! +-----------------------------------------------------+
//! |   Network Layer Reachability Information (variable) |
//! +-----------------------------------------------------+
//! ```

use bytes::{BufMut, BytesMut};
use ipnet::Ipv4Net;

use super::attr::{self, PathAttributes, flags, type_code};
use super::context::Context;
use super::error::{AttributeError, Rfc7606Action, UpdateError};
use super::family::AfiSafi;
use super::mp::{MpReach, MpUnreach};
use super::nlri::{self, Nlri};
use super::notification::subcode::update as sub;

/// The three fields of an UPDATE body, located but not interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawUpdate<'a> {
    /// Withdrawn Routes: IPv4 NLRI.
    pub withdrawn: &'a [u8],
    /// Path Attributes.
    pub attributes: &'a [u8],
    /// NLRI: IPv4 NLRI.
    pub nlri: &'a [u8],
}

impl<'a> RawUpdate<'a> {
    /// Splits an UPDATE body (after the header). Lengths that do not add up are a
    /// Malformed Attribute List (RFC 4271 section 6.3, RFC 7606 section 3b).
    pub fn parse(body: &'a [u8]) -> Result<Self, UpdateError> {
        let malformed = || {
            UpdateError::new(
                sub::MALFORMED_ATTRIBUTE_LIST,
                "withdrawn routes or path attribute length exceeds the message",
            )
        };
        let (wlen, rest) = body.split_first_chunk::<2>().ok_or_else(malformed)?;
        let wlen = usize::from(u16::from_be_bytes(*wlen));
        if rest.len() < wlen + 2 {
            return Err(malformed());
        }
        let (withdrawn, rest) = rest.split_at(wlen);
        let (alen, rest) = rest.split_first_chunk::<2>().ok_or_else(malformed)?;
        let alen = usize::from(u16::from_be_bytes(*alen));
        if rest.len() < alen {
            return Err(malformed());
        }
        let (attributes, nlri) = rest.split_at(alen);
        Ok(Self {
            withdrawn,
            attributes,
            nlri,
        })
    }

    /// Decodes and validates every field (RFC 7606). `Err` is a session reset;
    /// anything milder is reported in [`Update::errors`].
    pub fn validate(&self, ctx: &Context) -> Result<Update, UpdateError> {
        let add_path = ctx.add_path.contains(AfiSafi::IPV4_UNICAST);
        let invalid = |_| UpdateError::new(sub::INVALID_NETWORK_FIELD, "malformed IPv4 NLRI");
        let withdrawn = nlri::decode(self.withdrawn, add_path).map_err(invalid)?;
        let announced = nlri::decode(self.nlri, add_path).map_err(invalid)?;
        let walk = attr::decode(self.attributes, ctx, !self.nlri.is_empty())?;
        Ok(Update {
            withdrawn,
            attributes: walk.attrs,
            nlri: announced,
            mp_reach: walk.mp_reach,
            mp_unreach: walk.mp_unreach,
            errors: walk.errors,
        })
    }
}

/// A decoded UPDATE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// Withdrawn IPv4 unicast routes.
    pub withdrawn: Vec<Nlri<Ipv4Net>>,
    /// The attributes shared by every announced route.
    pub attributes: PathAttributes,
    /// Announced IPv4 unicast routes (next hop in `attributes.next_hop`).
    pub nlri: Vec<Nlri<Ipv4Net>>,
    /// Routes announced by MP_REACH_NLRI.
    pub mp_reach: Option<MpReach>,
    /// Routes withdrawn by MP_UNREACH_NLRI.
    pub mp_unreach: Option<MpUnreach>,
    /// Attribute errors the session survives (RFC 7606), empty when all is well.
    /// Encoding ignores this field.
    pub errors: Vec<AttributeError>,
}

impl Update {
    /// Decodes an UPDATE body under `ctx`.
    pub fn decode(body: &[u8], ctx: &Context) -> Result<Self, UpdateError> {
        RawUpdate::parse(body)?.validate(ctx)
    }

    /// The End-of-RIB marker for `family` (RFC 4724 section 2): an empty UPDATE for
    /// IPv4 unicast, an empty MP_UNREACH_NLRI for any other family.
    pub fn end_of_rib(family: AfiSafi) -> Self {
        let mut u = Self::default();
        if family != AfiSafi::IPV4_UNICAST {
            u.mp_unreach = Some(MpUnreach::end_of_rib(family));
        }
        u
    }

    /// The family this UPDATE marks the End-of-RIB of, if it is such a marker.
    pub fn end_of_rib_family(&self) -> Option<AfiSafi> {
        if !self.withdrawn.is_empty()
            || !self.nlri.is_empty()
            || self.mp_reach.is_some()
            || self.attributes != PathAttributes::default()
        {
            return None;
        }
        match &self.mp_unreach {
            None => Some(AfiSafi::IPV4_UNICAST),
            Some(u) if u.withdrawn.is_empty() => Some(u.family),
            Some(_) => None,
        }
    }

    /// The strongest RFC 7606 action among [`Update::errors`] (section 3h).
    pub fn action(&self) -> Option<Rfc7606Action> {
        self.errors.iter().map(|e| e.action).max()
    }

    /// Whether every route this UPDATE announces must be taken as withdrawn.
    pub fn treat_as_withdraw(&self) -> bool {
        self.action() == Some(Rfc7606Action::TreatAsWithdraw)
    }

    /// Appends the UPDATE body: MP attributes first (RFC 7606 section 5.1), then
    /// the others in type order.
    pub fn encode_body(&self, ctx: &Context, out: &mut BytesMut) {
        let add_path = ctx.add_path.contains(AfiSafi::IPV4_UNICAST);
        out.put_u16(nlri::encoded_len(&self.withdrawn, add_path) as u16);
        nlri::encode(&self.withdrawn, add_path, out);
        let len_at = out.len();
        out.put_u16(0);
        if let Some(u) = &self.mp_unreach {
            mp_header(out, type_code::MP_UNREACH_NLRI, u.encoded_len(ctx));
            u.encode_value(ctx, out);
        }
        if let Some(r) = &self.mp_reach {
            mp_header(out, type_code::MP_REACH_NLRI, r.encoded_len(ctx));
            r.encode_value(ctx, out);
        }
        self.attributes.encode(ctx, out);
        let alen = out.len() - len_at - 2;
        out[len_at..len_at + 2]
            .copy_from_slice(&(alen.min(usize::from(u16::MAX)) as u16).to_be_bytes());
        nlri::encode(&self.nlri, add_path, out);
    }
}

/// The header of an MP attribute (optional, non-transitive), in its 2-octet
/// length form when the value needs it.
pub(crate) fn mp_header(out: &mut BytesMut, code: u8, len: usize) {
    if len > 255 {
        out.put_u8(flags::OPTIONAL | flags::EXTENDED_LENGTH);
        out.put_u8(code);
        out.put_u16(len.min(usize::from(u16::MAX)) as u16);
    } else {
        out.put_u8(flags::OPTIONAL);
        out.put_u8(code);
        out.put_u8(len as u8);
    }
}
