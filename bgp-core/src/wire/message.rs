//! A whole BGP message: header plus one of the five bodies.

use bytes::BytesMut;

use super::context::{Context, MAX_MESSAGE_LEN};
use super::error::{DecodeError, EncodeError, HeaderError};
use super::header::{self, HEADER_LEN, Header, MessageType};
use super::notification::Notification;
use super::open::Open;
use super::route_refresh::RouteRefresh;
use super::update::Update;

/// A BGP message.
// UPDATE dominates the traffic and is moved once from decoder to consumer, so it
// is kept inline rather than boxed to spare an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE.
    Update(Update),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// The message type.
    pub fn kind(&self) -> MessageType {
        match self {
            Self::Open(_) => MessageType::Open,
            Self::Update(_) => MessageType::Update,
            Self::Notification(_) => MessageType::Notification,
            Self::Keepalive => MessageType::Keepalive,
            Self::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }

    /// Decodes one whole message, header included, under `ctx`. The slice must be
    /// exactly one message (as [`Framer`](super::Framer) yields them); a length
    /// field that disagrees with it is a Bad Message Length.
    pub fn decode(frame: &[u8], ctx: &Context) -> Result<Self, DecodeError> {
        let Some(head) = frame.first_chunk::<HEADER_LEN>() else {
            return Err(HeaderError::BadMessageLength(
                frame.len().min(usize::from(u16::MAX)) as u16
            )
            .into());
        };
        let header = Header::decode(head, ctx.max_message_len())?;
        if usize::from(header.length) != frame.len() {
            return Err(HeaderError::BadMessageLength(header.length).into());
        }
        let body = &frame[HEADER_LEN..];
        Ok(match header.kind {
            MessageType::Open => Self::Open(Open::decode(body)?),
            MessageType::Update => Self::Update(Update::decode(body, ctx)?),
            MessageType::Notification => Self::Notification(
                Notification::decode_body(body)
                    .ok_or(HeaderError::BadMessageLength(header.length))?,
            ),
            MessageType::Keepalive => Self::Keepalive,
            MessageType::RouteRefresh => Self::RouteRefresh(RouteRefresh::decode(body, frame)?),
        })
    }

    /// Appends the encoded message to `out`. Fails, leaving `out` as it was, when
    /// the message would exceed what `ctx` allows (4096 octets for OPEN and
    /// KEEPALIVE, RFC 8654).
    pub fn encode(&self, ctx: &Context, out: &mut BytesMut) -> Result<(), EncodeError> {
        let kind = self.kind();
        let max = match kind {
            MessageType::Open | MessageType::Keepalive => MAX_MESSAGE_LEN,
            _ => ctx.max_message_len(),
        };
        let start = header::begin(out, kind);
        match self {
            Self::Open(o) => o.encode_body(out),
            Self::Update(u) => u.encode_body(ctx, out),
            // A NOTIFICATION must always go out: its data (the offending message
            // or attribute) is cut to fit the peer's limit (RFC 8654 section 5).
            Self::Notification(n) if n.data.len() > max - 21 => {
                let mut cut = n.clone();
                cut.data.truncate(max - 21);
                cut.encode_body(out);
            }
            Self::Notification(n) => n.encode_body(out),
            Self::Keepalive => {}
            Self::RouteRefresh(r) => r.encode_body(out),
        }
        header::finish(out, start, max)
    }

    /// Encodes into a new buffer.
    pub fn to_bytes(&self, ctx: &Context) -> Result<BytesMut, EncodeError> {
        let mut out = BytesMut::new();
        self.encode(ctx, &mut out)?;
        Ok(out)
    }
}

impl From<Open> for Message {
    fn from(m: Open) -> Self {
        Self::Open(m)
    }
}

impl From<Update> for Message {
    fn from(m: Update) -> Self {
        Self::Update(m)
    }
}

impl From<Notification> for Message {
    fn from(m: Notification) -> Self {
        Self::Notification(m)
    }
}

impl From<RouteRefresh> for Message {
    fn from(m: RouteRefresh) -> Self {
        Self::RouteRefresh(m)
    }
}
