//! OPEN (RFC 4271 section 4.2) with capabilities as optional parameters
//! (RFC 5492) and the extended optional parameters length of RFC 9072.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+
//! |    Version    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     My Autonomous System      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Hold Time           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         BGP Identifier                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Opt Parm Len  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |             Optional Parameters (variable)                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};

use super::capability::Capability;
use super::error::OpenError;
use super::reader::Reader;

/// The only BGP version there is.
pub const BGP_VERSION: u8 = 4;
/// The 2-octet stand-in for a 4-octet AS number (RFC 6793 section 9).
pub const AS_TRANS: u16 = 23456;

const PARAM_CAPABILITIES: u8 = 2;
const PARAM_EXTENDED_LENGTH: u8 = 255;

/// How capabilities were spread over optional parameters. The RFC leaves it open
/// (FRR sends one parameter per capability, BIRD one for all); keeping it lets a
/// decoded OPEN re-encode to the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum ParamLayout {
    /// All capabilities in one optional parameter (or none when there are none).
    #[default]
    Single,
    /// Each capability in an optional parameter of its own.
    OnePerParameter,
    /// Any other grouping: the number of capabilities in each parameter.
    Grouped(Vec<usize>),
}

/// An OPEN message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Open {
    /// My Autonomous System: the 2-octet AS, [`AS_TRANS`] for a 4-octet one.
    pub my_as: u16,
    /// Proposed hold time in seconds: 0 or at least 3.
    pub hold_time: u16,
    /// The sender's BGP Identifier.
    pub bgp_id: Ipv4Addr,
    /// The capabilities advertised, in order.
    pub capabilities: Vec<Capability>,
    /// How the capabilities were grouped into optional parameters.
    pub layout: ParamLayout,
}

impl Open {
    /// An OPEN for `asn` that puts the 2-octet form (or [`AS_TRANS`]) in My
    /// Autonomous System; add [`Capability::FourOctetAs`] to announce the rest.
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr, capabilities: Vec<Capability>) -> Self {
        Self {
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time,
            bgp_id,
            capabilities,
            layout: ParamLayout::Single,
        }
    }

    /// The sender's AS: from the 4-octet AS capability if present (RFC 6793
    /// section 4.1), else My Autonomous System.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    /// Decodes the OPEN body (after the header), checking what RFC 4271 section
    /// 6.2 lets a receiver check without configuration.
    pub fn decode(body: &[u8]) -> Result<Self, OpenError> {
        let mut r = Reader::new(body);
        let short = OpenError::Malformed("OPEN shorter than its fixed fields");
        let version = r.u8().ok_or(short.clone())?;
        if version != BGP_VERSION {
            return Err(OpenError::UnsupportedVersion(version));
        }
        let my_as = r.u16().ok_or(short.clone())?;
        let hold_time = r.u16().ok_or(short.clone())?;
        if hold_time == 1 || hold_time == 2 {
            return Err(OpenError::UnacceptableHoldTime(hold_time));
        }
        let bgp_id = Ipv4Addr::from(r.u32().ok_or(short.clone())?);
        if bgp_id.is_unspecified() {
            return Err(OpenError::BadBgpIdentifier);
        }
        let opt_len = r.u8().ok_or(short)?;

        // RFC 9072: Opt Parm Len 255 followed by a parameter type of 255 means a
        // 2-octet length follows, and every parameter has a 2-octet length.
        let extended = opt_len == 255 && r.remaining() > 0 && body.get(10) == Some(&255);
        let params = if extended {
            r.u8();
            let len = r
                .u16()
                .ok_or(OpenError::Malformed("extended optional parameters length"))?;
            r.take(usize::from(len))
        } else {
            r.take(usize::from(opt_len))
        }
        .ok_or(OpenError::Malformed("optional parameters length"))?;
        if !r.is_empty() {
            return Err(OpenError::Malformed("octets after the optional parameters"));
        }

        let mut capabilities = Vec::new();
        let mut groups = Vec::new();
        let mut p = Reader::new(params);
        while !p.is_empty() {
            let param_type = p.u8().ok_or(OpenError::Malformed("optional parameter"))?;
            let len = if extended {
                p.u16()
            } else {
                p.u8().map(u16::from)
            }
            .ok_or(OpenError::Malformed("optional parameter length"))?;
            let value = p
                .take(usize::from(len))
                .ok_or(OpenError::Malformed("optional parameter length"))?;
            if param_type != PARAM_CAPABILITIES {
                return Err(OpenError::UnsupportedOptionalParameter(param_type));
            }
            let before = capabilities.len();
            let mut c = Reader::new(value);
            while !c.is_empty() {
                let code = c.u8().ok_or(OpenError::Malformed("capability"))?;
                let len = c.u8().ok_or(OpenError::Malformed("capability length"))?;
                let value = c
                    .take(usize::from(len))
                    .ok_or(OpenError::Malformed("capability length"))?;
                capabilities.push(Capability::decode(code, value)?);
            }
            groups.push(capabilities.len() - before);
        }

        let layout = if groups.len() <= 1 {
            ParamLayout::Single
        } else if groups.iter().all(|&n| n == 1) {
            ParamLayout::OnePerParameter
        } else {
            ParamLayout::Grouped(groups)
        };
        Ok(Self {
            my_as,
            hold_time,
            bgp_id,
            capabilities,
            layout,
        })
    }

    /// Appends the OPEN body, using the RFC 9072 extended form only when the
    /// parameters do not fit the classic one.
    pub fn encode_body(&self, out: &mut BytesMut) {
        out.put_u8(BGP_VERSION);
        out.put_u16(self.my_as);
        out.put_u16(self.hold_time);
        out.put_u32(u32::from(self.bgp_id));

        let groups: Vec<&[Capability]> = match &self.layout {
            // Empty parameters of a decoded grouping are kept, to re-encode as received.
            ParamLayout::Single if self.capabilities.is_empty() => Vec::new(),
            ParamLayout::Single => vec![&self.capabilities[..]],
            ParamLayout::OnePerParameter => self.capabilities.chunks(1).collect(),
            ParamLayout::Grouped(sizes) => {
                let mut rest = &self.capabilities[..];
                let mut groups = Vec::with_capacity(sizes.len() + 1);
                for &n in sizes {
                    let (head, tail) = rest.split_at(n.min(rest.len()));
                    groups.push(head);
                    rest = tail;
                }
                if !rest.is_empty() {
                    groups.push(rest);
                }
                groups
            }
        };
        let mut encoded: Vec<BytesMut> = Vec::with_capacity(groups.len());
        for g in &groups {
            let mut b = BytesMut::new();
            for c in *g {
                c.encode(&mut b);
            }
            encoded.push(b);
        }
        let classic_len: usize = encoded.iter().map(|b| b.len() + 2).sum();
        let extended = classic_len > 255 || encoded.iter().any(|b| b.len() > 255);
        if extended {
            let total: usize = encoded.iter().map(|b| b.len() + 3).sum();
            out.put_u8(255);
            out.put_u8(PARAM_EXTENDED_LENGTH);
            out.put_u16(total.min(usize::from(u16::MAX)) as u16);
            for b in &encoded {
                out.put_u8(PARAM_CAPABILITIES);
                out.put_u16(b.len() as u16);
                out.put_slice(b);
            }
        } else {
            out.put_u8(classic_len as u8);
            for b in &encoded {
                out.put_u8(PARAM_CAPABILITIES);
                out.put_u8(b.len() as u8);
                out.put_slice(b);
            }
        }
    }
}
