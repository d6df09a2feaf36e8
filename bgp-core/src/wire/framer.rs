//! Framing a TCP byte stream into whole BGP messages.
//!
//! Reads arrive in any size; the framer buffers until a whole message is there,
//! checking marker and length as soon as the 19 header octets are in, so a peer
//! that is out of sync is answered at once with the right NOTIFICATION instead
//! of being waited on.

use bytes::{Bytes, BytesMut};

use super::context::MAX_MESSAGE_LEN;
use super::error::HeaderError;
use super::header::{HEADER_LEN, Header};

/// Splits a byte stream into messages.
#[derive(Debug, Clone)]
pub struct Framer {
    max_len: usize,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer {
    /// A framer that accepts messages of up to 4096 octets, as before the OPEN
    /// exchange.
    pub fn new() -> Self {
        Self {
            max_len: MAX_MESSAGE_LEN,
        }
    }

    /// Raises (or lowers) the accepted length once extended messages are
    /// negotiated (RFC 8654).
    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len;
    }

    /// The accepted length.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Takes the next whole message off the front of `buf`, or `None` when more
    /// octets are needed. A bad marker, length or type is an error: the session
    /// sends its NOTIFICATION and closes, so the buffer need not be resynchronized.
    pub fn next_frame(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, HeaderError> {
        let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let header = Header::decode(head, self.max_len)?;
        let len = usize::from(header.length);
        if buf.len() < len {
            buf.reserve(len - buf.len());
            return Ok(None);
        }
        Ok(Some(buf.split_to(len).freeze()))
    }
}
