//! `Framer` on a byte stream fed in chunks whose sizes come from the input.
//!
//! Input: `[switch, sizes, stream...]`. With bit 7 of `switch` set, the framer's
//! limit is raised to 65535 (RFC 8654) once `switch & 0x7f` frames are out.
//! `sizes` 0 feeds the stream whole; otherwise the chunk at offset `pos` is
//! `1 + (stream[pos] ^ sizes) % sizes` octets.
//!
//! Checks: no panic; every frame is one whole message whose length field matches
//! and stays within the limit; the frames are the stream's prefix in order; the
//! frames and the error (if any) do not depend on how the stream was chunked;
//! every frame decodes under `Context::MODERN` without a header error when the
//! framer's limit was 4096.

#![no_main]

use bgp_core::wire::{Context, DecodeError, Framer, HEADER_LEN, HeaderError, Message};
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    frames: Vec<Bytes>,
    error: Option<HeaderError>,
}

fn run(stream: &[u8], switch_at: Option<usize>, chunk: impl Fn(usize) -> usize) -> Outcome {
    let mut framer = Framer::new();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut pos = 0;
    while pos < stream.len() {
        let n = chunk(pos).clamp(1, stream.len() - pos);
        buf.extend_from_slice(&stream[pos..pos + n]);
        pos += n;
        loop {
            if switch_at.is_some_and(|k| frames.len() >= k) {
                framer.set_max_len(65535);
            }
            let max = framer.max_len();
            match framer.next_frame(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.len() >= HEADER_LEN && frame.len() <= max);
                    let length = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
                    assert_eq!(
                        length,
                        frame.len(),
                        "frame length disagrees with its header"
                    );
                    match Message::decode(&frame, &Context::MODERN) {
                        Err(DecodeError::Header(e)) if max <= 4096 => {
                            panic!("framer accepted a frame whose header does not decode: {e}")
                        }
                        Ok(m) => {
                            let _ = m.kind();
                        }
                        Err(e) => {
                            let _ = e.notification();
                        }
                    }
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        frames,
                        error: Some(e),
                    };
                }
            }
        }
    }
    let consumed: usize = frames.iter().map(Bytes::len).sum();
    assert_eq!(
        consumed + buf.len(),
        stream.len(),
        "octets lost or duplicated"
    );
    Outcome {
        frames,
        error: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let [switch, sizes, stream @ ..] = data else {
        return;
    };
    let switch_at = (switch & 0x80 != 0).then_some(usize::from(switch & 0x7f));
    let sizes = usize::from(*sizes);
    let chunked = run(stream, switch_at, |pos| {
        if sizes == 0 {
            stream.len()
        } else {
            1 + (usize::from(stream[pos]) ^ sizes) % sizes
        }
    });
    let mut at = 0;
    for f in &chunked.frames {
        assert_eq!(
            &stream[at..at + f.len()],
            &f[..],
            "frames are not the stream in order"
        );
        at += f.len();
    }
    let whole = run(stream, switch_at, |_| stream.len());
    assert_eq!(
        chunked, whole,
        "framing depends on how the stream was chunked"
    );
});
