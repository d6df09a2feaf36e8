//! Shared by the fuzz targets: how input bytes pick a session context.

use bgp_core::wire::{AddPathFamilies, AfiSafi, Context, PeerKind};

/// The context named by two input bytes. First byte: bit 0 four-octet AS, bit 1
/// extended message, bits 2-3 ADD-PATH (none, IPv4, IPv6, both). Second byte,
/// bits 0-1: the peer (unknown, internal, external AS 65001, confederation
/// external AS 65002); bit 2: extended next hop.
pub fn context(b0: u8, b1: u8) -> Context {
    let mut add_path = AddPathFamilies::NONE;
    if b0 & 0x04 != 0 {
        add_path.insert(AfiSafi::IPV4_UNICAST);
    }
    if b0 & 0x08 != 0 {
        add_path.insert(AfiSafi::IPV6_UNICAST);
    }
    let peer = match b1 & 3 {
        0 => PeerKind::Unknown,
        1 => PeerKind::Internal,
        2 => PeerKind::External(65001),
        _ => PeerKind::ConfedExternal(65002),
    };
    Context {
        four_octet_as: b0 & 0x01 != 0,
        extended_message: b0 & 0x02 != 0,
        add_path,
        peer,
        extended_next_hop: b1 & 4 != 0,
    }
}
