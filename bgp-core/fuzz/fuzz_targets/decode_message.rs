//! `Message::decode` on arbitrary bytes under a context picked by the first two
//! input bytes (see `common::context`).
//!
//! - Decoding must not panic.
//! - A message that decodes must re-encode (unless it no longer fits, which a
//!   2-octet context adding AS4_PATH can cause) and decode again to the same
//!   value, `Update::errors` aside: the differential check for encode/decode
//!   asymmetry.
//! - A message that does not decode must yield a NOTIFICATION that encodes.

#![no_main]

use bgp_core::wire::{EncodeError, Message};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fn without_errors(mut m: Message) -> Message {
    if let Message::Update(u) = &mut m {
        u.errors.clear();
    }
    m
}

fuzz_target!(|data: &[u8]| {
    let [b0, b1, frame @ ..] = data else {
        return;
    };
    let ctx = common::context(*b0, *b1);
    match Message::decode(frame, &ctx) {
        Ok(first) => {
            let mut out = BytesMut::new();
            match first.encode(&ctx, &mut out) {
                Ok(()) => {}
                Err(EncodeError::TooLong { .. }) => {
                    assert!(
                        out.is_empty(),
                        "a failed encode must leave the buffer as it was"
                    );
                    return;
                }
                Err(e) => panic!("re-encoding a decoded message failed: {e}\n{first:?}"),
            }
            let second = Message::decode(&out, &ctx).unwrap_or_else(|e| {
                panic!(
                    "re-encoded message does not decode: {e}\nfirst: {first:?}\nbytes: {:02x?}",
                    &out[..]
                )
            });
            let (first, second) = (without_errors(first), without_errors(second));
            assert_eq!(first, second, "decode(encode(decode(x))) != decode(x)");
        }
        Err(e) => {
            let n = e.notification();
            let mut out = BytesMut::new();
            // May be TooLong: an invalid BoRR/EoRR's NOTIFICATION carries the whole
            // message (RFC 7313 section 5), so it can exceed the message size.
            let _ = Message::Notification(n).encode(&ctx, &mut out);
            let _ = e.to_string();
        }
    }
});
