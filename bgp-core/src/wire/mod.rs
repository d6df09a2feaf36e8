//! The BGP-4 wire codec.
//!
//! - Decoding: [`Framer`] cuts a TCP byte stream into messages; [`Message::decode`]
//!   turns one into a typed message under the session's [`Context`]. A failure is a
//!   [`DecodeError`] whose [`notification`](DecodeError::notification) is exactly
//!   what RFC 4271 section 6 says to send. UPDATE problems that RFC 7606 lets a
//!   session survive come back inside the [`Update`] as [`AttributeError`]s.
//! - Encoding: [`Message::encode`] for single messages; [`UpdatePacker`] to put many
//!   routes that share attributes into as few UPDATEs as fit.
//!
//! ```
//! use bgp_core::wire::{Context, Framer, Message};
//! use bytes::BytesMut;
//!
//! let mut stream = BytesMut::new();
//! Message::Keepalive.encode(&Context::MODERN, &mut stream).unwrap();
//! let frame = Framer::new().next_frame(&mut stream).unwrap().unwrap();
//! assert_eq!(Message::decode(&frame, &Context::MODERN).unwrap(), Message::Keepalive);
//! ```

mod aspath;
mod attr;
mod capability;
mod community;
mod context;
mod error;
mod family;
mod framer;
mod header;
mod message;
mod mp;
mod nlri;
mod notification;
mod open;
mod packer;
mod reader;
mod route_refresh;
mod update;

pub use aspath::{AsPath, Segment, SegmentType};
pub use attr::{Aggregator, Origin, PathAttributes, RawAttribute, flags, type_code, type_name};
pub use capability::{
    AddPathFamily, AddPathMode, Capability, ExtendedNextHop, GracefulRestart,
    GracefulRestartFamily, LlgrFamily, Role, code as capability_code,
};
pub use community::{
    Community, ExtCommunity, LargeCommunity, ParseCommunityError, ParseLargeCommunityError,
};
pub use context::{AddPathFamilies, Context, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN, PeerKind};
pub use error::{
    AttributeError, AttributeFault, DecodeError, EncodeError, HeaderError, OpenError,
    Rfc7606Action, RouteRefreshError, UpdateError,
};
pub use family::{Afi, AfiSafi, Safi};
pub use framer::Framer;
pub use header::{HEADER_LEN, Header, MARKER, MessageType};
pub use message::Message;
pub use mp::{MpReach, MpUnreach, NextHop, Prefixes};
pub use nlri::{Nlri, Prefix};
pub use notification::{Notification, code as error_code, subcode as error_subcode};
pub use open::{AS_TRANS, BGP_VERSION, Open, ParamLayout};
pub use packer::{UpdatePacker, end_of_rib};
pub use route_refresh::{RouteRefresh, RouteRefreshSubtype};
pub use update::{RawUpdate, Update};
