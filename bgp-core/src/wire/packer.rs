//! Packing many routes into as few UPDATEs as fit the negotiated message size.
//!
//! Routes that share an attribute set are announced together: the attributes are
//! encoded once and every UPDATE repeats those bytes, filling the rest of the
//! message (4096 or 65535 octets) with NLRI. IPv4 routes with an IPv4 next hop go
//! in the NLRI field; every other case goes in MP_REACH_NLRI, first among the
//! attributes (RFC 7606 section 5.1). Withdrawals are packed the same way.
//! Messages are appended back to back to one buffer, ready for a single write.

use bytes::{BufMut, BytesMut};

use super::attr::{PathAttributes, flags, type_code};
use super::context::Context;
use super::error::EncodeError;
use super::family::AfiSafi;
use super::header::{self, MessageType};
use super::mp::NextHop;
use super::nlri::{self, Nlri, Prefix};

/// Packs UPDATEs for one session direction.
#[derive(Debug, Clone)]
pub struct UpdatePacker {
    ctx: Context,
    max: usize,
}

impl UpdatePacker {
    /// A packer for messages sent under `ctx`.
    pub fn new(ctx: &Context) -> Self {
        Self {
            ctx: *ctx,
            max: ctx.max_message_len(),
        }
    }

    /// Appends UPDATEs announcing `prefixes` with `attrs` and returns how many
    /// messages were written. IPv4 prefixes with `next_hop` `None` use the NLRI
    /// field and `attrs.next_hop`; anything else goes in MP_REACH_NLRI with
    /// `next_hop` (and `attrs.next_hop` is left out, RFC 4760 section 3).
    pub fn announce<P: Prefix>(
        &self,
        attrs: &PathAttributes,
        next_hop: Option<&NextHop>,
        prefixes: &[Nlri<P>],
        out: &mut BytesMut,
    ) -> Result<usize, EncodeError> {
        let add_path = self.ctx.add_path.contains(P::FAMILY);
        let mut shared = BytesMut::new();
        match next_hop {
            None if P::FAMILY == AfiSafi::IPV4_UNICAST => {
                attrs.encode(&self.ctx, &mut shared);
                self.pack(
                    prefixes,
                    add_path,
                    0,
                    out,
                    |out| {
                        out.put_u16(0);
                        let attr_len_at = out.len();
                        out.put_u16(shared.len() as u16);
                        out.put_slice(&shared);
                        (attr_len_at, None)
                    },
                    |_, _| {},
                )
            }
            None => Err(EncodeError::FieldTooLong(
                "MP_REACH_NLRI without a next hop",
            )),
            Some(nh) => {
                if attrs.next_hop.is_some() {
                    let mut a = attrs.clone();
                    a.next_hop = None;
                    a.encode(&self.ctx, &mut shared);
                } else {
                    attrs.encode(&self.ctx, &mut shared);
                }
                let mut nh_bytes = BytesMut::new();
                nh.encode(&mut nh_bytes);
                self.pack(
                    prefixes,
                    add_path,
                    shared.len(),
                    out,
                    |out| {
                        out.put_u16(0);
                        let attr_len_at = out.len();
                        out.put_u16(0);
                        out.put_u8(flags::OPTIONAL | flags::EXTENDED_LENGTH);
                        out.put_u8(type_code::MP_REACH_NLRI);
                        let mp_len_at = out.len();
                        out.put_u16(0);
                        out.put_u16(P::FAMILY.afi.0);
                        out.put_u8(P::FAMILY.safi.0);
                        out.put_u8(nh_bytes.len() as u8);
                        out.put_slice(&nh_bytes);
                        out.put_u8(0);
                        (attr_len_at, Some(mp_len_at))
                    },
                    |out, _| out.put_slice(&shared),
                )
            }
        }
    }

    /// Appends UPDATEs withdrawing `prefixes` and returns how many were written.
    /// IPv4 unicast uses the Withdrawn Routes field, other families
    /// MP_UNREACH_NLRI.
    pub fn withdraw<P: Prefix>(
        &self,
        prefixes: &[Nlri<P>],
        out: &mut BytesMut,
    ) -> Result<usize, EncodeError> {
        let add_path = self.ctx.add_path.contains(P::FAMILY);
        if P::FAMILY == AfiSafi::IPV4_UNICAST {
            // The Withdrawn Routes Length comes first; the NLRI follow it and the
            // (empty) attribute length is written once they are in.
            self.pack(
                prefixes,
                add_path,
                2,
                out,
                |out| {
                    let wlen_at = out.len();
                    out.put_u16(0);
                    (wlen_at, None)
                },
                |out, wlen_at| {
                    patch_u16(out, wlen_at, out.len() - wlen_at - 2);
                    out.put_u16(0);
                },
            )
        } else {
            self.pack(
                prefixes,
                add_path,
                0,
                out,
                |out| {
                    out.put_u16(0);
                    let attr_len_at = out.len();
                    out.put_u16(0);
                    out.put_u8(flags::OPTIONAL | flags::EXTENDED_LENGTH);
                    out.put_u8(type_code::MP_UNREACH_NLRI);
                    let mp_len_at = out.len();
                    out.put_u16(0);
                    out.put_u16(P::FAMILY.afi.0);
                    out.put_u8(P::FAMILY.safi.0);
                    (attr_len_at, Some(mp_len_at))
                },
                |_, _| {},
            )
        }
    }

    /// The shared loop: `open` writes everything before the NLRI and returns the
    /// offsets of the length fields to patch (the attribute or withdrawn length,
    /// and the MP attribute's), `close` writes the `trailer` octets after them.
    fn pack<P: Prefix>(
        &self,
        prefixes: &[Nlri<P>],
        add_path: bool,
        trailer: usize,
        out: &mut BytesMut,
        open: impl Fn(&mut BytesMut) -> (usize, Option<usize>),
        close: impl Fn(&mut BytesMut, usize),
    ) -> Result<usize, EncodeError> {
        let mut count = 0;
        let mut rest = prefixes;
        while let Some(first) = rest.first() {
            out.reserve(self.max);
            let start = header::begin(out, MessageType::Update);
            let (len_at, mp_len_at) = open(out);
            let budget = self.max.saturating_sub(out.len() - start + trailer);
            let mut used = 0;
            let mut n = 0;
            for p in rest {
                let len = p.prefix.encoded_len(add_path);
                if used + len > budget {
                    break;
                }
                nlri::encode_one(p, add_path, out);
                used += len;
                n += 1;
            }
            if n == 0 {
                out.truncate(start);
                return Err(EncodeError::TooLong {
                    len: self.max - budget + first.prefix.encoded_len(add_path),
                    max: self.max,
                });
            }
            rest = &rest[n..];
            if let Some(at) = mp_len_at {
                patch_u16(out, at, out.len() - at - 2);
            }
            close(out, len_at);
            if mp_len_at.is_some() {
                patch_u16(out, len_at, out.len() - len_at - 2);
            }
            header::finish(out, start, self.max)?;
            count += 1;
        }
        Ok(count)
    }
}

fn patch_u16(out: &mut BytesMut, at: usize, value: usize) {
    out[at..at + 2].copy_from_slice(&(value as u16).to_be_bytes());
}

/// Appends an End-of-RIB marker for `family` (RFC 4724 section 2).
pub fn end_of_rib(family: AfiSafi, out: &mut BytesMut) {
    let start = header::begin(out, MessageType::Update);
    out.put_u16(0);
    if family == AfiSafi::IPV4_UNICAST {
        out.put_u16(0);
    } else {
        out.put_u16(6);
        out.put_u8(flags::OPTIONAL);
        out.put_u8(type_code::MP_UNREACH_NLRI);
        out.put_u8(3);
        out.put_u16(family.afi.0);
        out.put_u8(family.safi.0);
    }
    patch_u16(out, start + 16, out.len() - start);
}
