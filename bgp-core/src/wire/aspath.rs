//! AS_PATH and AS4_PATH (RFC 4271 section 4.3, RFC 5065, RFC 6793).
//!
//! ```text
//! +-----------------+-----------------+------------------------------+
//! | segment type    | segment length  | AS numbers (2 or 4 octets) * |
//! | (1 octet)       | (1 octet, #ASes)|                              |
//! +-----------------+-----------------+------------------------------+
//! ```
//!
//! Paths are held with 4-octet AS numbers. Under a 2-octet context the encoder
//! writes [`AS_TRANS`](super::open::AS_TRANS) for the numbers that do not fit and
//! the caller adds an AS4_PATH; the decoder merges AS4_PATH back (section 4.2.3).

use std::fmt;

use bytes::{BufMut, BytesMut};

use super::open::AS_TRANS;
use super::reader::Reader;

/// The kind of an AS_PATH segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum SegmentType {
    /// AS_SET (1): unordered, counts as one AS.
    Set,
    /// AS_SEQUENCE (2): ordered.
    Sequence,
    /// AS_CONFED_SEQUENCE (3), RFC 5065: ordered, inside a confederation.
    ConfedSequence,
    /// AS_CONFED_SET (4), RFC 5065: unordered, inside a confederation.
    ConfedSet,
}

impl SegmentType {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Set,
            2 => Self::Sequence,
            3 => Self::ConfedSequence,
            4 => Self::ConfedSet,
            _ => return None,
        })
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Set => 1,
            Self::Sequence => 2,
            Self::ConfedSequence => 3,
            Self::ConfedSet => 4,
        }
    }

    /// Whether this is a confederation segment.
    pub fn is_confed(self) -> bool {
        matches!(self, Self::ConfedSequence | Self::ConfedSet)
    }
}

/// One AS_PATH segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Segment {
    /// Set or sequence, confederation or not.
    pub kind: SegmentType,
    /// The AS numbers, 1 to 255 of them on the wire.
    pub asns: Vec<u32>,
}

/// An AS path: a list of segments, 4-octet AS numbers throughout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct AsPath {
    /// The segments, nearest AS first.
    pub segments: Vec<Segment>,
}

/// An AS_PATH that is not well formed (RFC 7606 section 7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MalformedAsPath;

impl AsPath {
    /// A path of one AS_SEQUENCE (empty for an empty list).
    pub fn from_sequence(asns: impl IntoIterator<Item = u32>) -> Self {
        let asns: Vec<u32> = asns.into_iter().collect();
        if asns.is_empty() {
            return Self::default();
        }
        Self {
            segments: vec![Segment {
                kind: SegmentType::Sequence,
                asns,
            }],
        }
    }

    /// Decodes segments with 2- or 4-octet AS numbers. A segment of unknown type,
    /// of zero length, or overrunning the attribute makes the whole path malformed.
    pub(crate) fn decode(value: &[u8], four_octet: bool) -> Result<Self, MalformedAsPath> {
        let width = if four_octet { 4 } else { 2 };
        let mut r = Reader::new(value);
        let mut segments = Vec::new();
        while !r.is_empty() {
            let kind = r
                .u8()
                .and_then(SegmentType::from_u8)
                .ok_or(MalformedAsPath)?;
            let n = usize::from(r.u8().ok_or(MalformedAsPath)?);
            if n == 0 {
                return Err(MalformedAsPath);
            }
            let raw = r.take(n * width).ok_or(MalformedAsPath)?;
            let asns = if four_octet {
                raw.chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            } else {
                raw.chunks_exact(2)
                    .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                    .collect()
            };
            segments.push(Segment { kind, asns });
        }
        Ok(Self { segments })
    }

    /// Appends the encoded segments. With `four_octet` false, AS numbers above
    /// 65535 become `AS_TRANS`. Segments longer than 255 ASes are split.
    pub(crate) fn encode(&self, out: &mut BytesMut, four_octet: bool) {
        for seg in &self.segments {
            for chunk in seg.asns.chunks(255) {
                out.put_u8(seg.kind.to_u8());
                out.put_u8(chunk.len() as u8);
                for &asn in chunk {
                    if four_octet {
                        out.put_u32(asn);
                    } else {
                        out.put_u16(u16::try_from(asn).unwrap_or(AS_TRANS));
                    }
                }
            }
        }
    }

    /// The encoded length in octets.
    pub(crate) fn encoded_len(&self, four_octet: bool) -> usize {
        let width = if four_octet { 4 } else { 2 };
        self.segments
            .iter()
            .map(|s| s.asns.len().div_ceil(255) * 2 + s.asns.len() * width)
            .sum()
    }

    /// The path length for best-path selection (RFC 4271 section 9.1.2.2): an
    /// AS_SET counts as one, confederation segments do not count (RFC 5065).
    pub fn len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentType::Sequence => s.asns.len(),
                SegmentType::Set => 1,
                SegmentType::ConfedSequence | SegmentType::ConfedSet => 0,
            })
            .sum()
    }

    /// Whether the path has no AS that counts (see [`AsPath::len`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether any segment is a confederation segment.
    pub fn has_confed(&self) -> bool {
        self.segments.iter().any(|s| s.kind.is_confed())
    }

    /// Whether an AS number does not fit in two octets (outside confederation
    /// segments, which AS4_PATH never carries): then a 2-octet peer needs AS4_PATH.
    pub fn needs_as4(&self) -> bool {
        self.segments
            .iter()
            .filter(|s| !s.kind.is_confed())
            .any(|s| s.asns.iter().any(|&a| a > 0xffff))
    }

    /// The path without confederation segments: the content of AS4_PATH.
    pub(crate) fn without_confed(&self) -> Self {
        Self {
            segments: self
                .segments
                .iter()
                .filter(|s| !s.kind.is_confed())
                .cloned()
                .collect(),
        }
    }

    /// The first AS of the path: the neighbor AS for eBGP routes.
    pub fn first_as(&self) -> Option<u32> {
        let seg = self.segments.first()?;
        match seg.kind {
            SegmentType::Sequence => seg.asns.first().copied(),
            _ => None,
        }
    }

    /// The origin AS: the last AS of a trailing sequence.
    pub fn origin_as(&self) -> Option<u32> {
        let seg = self.segments.last()?;
        match seg.kind {
            SegmentType::Sequence => seg.asns.last().copied(),
            _ => None,
        }
    }

    /// Whether `asn` appears anywhere in the path (loop detection).
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// Puts `asn` in front `times` times, as eBGP export and prepend policies do.
    pub fn prepend(&mut self, asn: u32, times: usize) {
        match self.segments.first_mut() {
            Some(seg) if seg.kind == SegmentType::Sequence && seg.asns.len() + times <= 255 => {
                seg.asns.splice(0..0, std::iter::repeat_n(asn, times));
            }
            _ => self.segments.insert(
                0,
                Segment {
                    kind: SegmentType::Sequence,
                    asns: vec![asn; times],
                },
            ),
        }
    }

    /// Merges an AS4_PATH into this 2-octet AS_PATH (RFC 6793 section 4.2.3):
    /// when AS_PATH counts fewer ASes than AS4_PATH, AS4_PATH is ignored; otherwise
    /// the leading ASes of AS_PATH that AS4_PATH does not cover are kept (and any
    /// leading confederation segments, which AS4_PATH never carries) and AS4_PATH
    /// follows.
    pub(crate) fn merge_as4(&self, as4: &AsPath) -> AsPath {
        let (n, n4) = (self.len(), as4.len());
        if n < n4 {
            return self.clone();
        }
        let mut need = n - n4;
        let mut segments = Vec::with_capacity(self.segments.len() + as4.segments.len());
        for seg in &self.segments {
            if seg.kind.is_confed() {
                // Only leading ones: AS4_PATH never carries them, so one after an
                // AS could not be sent on in 2-octet form and read back the same.
                if segments.iter().all(|s: &Segment| s.kind.is_confed()) {
                    segments.push(seg.clone());
                }
                continue;
            }
            if need == 0 {
                break;
            }
            match seg.kind {
                SegmentType::Set => {
                    segments.push(seg.clone());
                    need -= 1;
                }
                _ => {
                    let take = need.min(seg.asns.len());
                    segments.push(Segment {
                        kind: seg.kind,
                        asns: seg.asns[..take].to_vec(),
                    });
                    need -= take;
                }
            }
        }
        let mut rest = as4.segments.iter().cloned();
        // One sequence rather than two when the kept part and AS4_PATH meet
        // sequence to sequence, as the path was before the 2-octet hop.
        if let (Some(last), Some(first)) = (segments.last_mut(), as4.segments.first())
            && last.kind == SegmentType::Sequence
            && first.kind == SegmentType::Sequence
            && last.asns.len() + first.asns.len() <= 255
        {
            last.asns.extend_from_slice(&first.asns);
            rest.next();
        }
        segments.extend(rest);
        AsPath { segments }
    }
}

impl fmt::Display for AsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.segments {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            let (open, close) = match seg.kind {
                SegmentType::Sequence => ("", ""),
                SegmentType::Set => ("{", "}"),
                SegmentType::ConfedSequence => ("(", ")"),
                SegmentType::ConfedSet => ("[", "]"),
            };
            f.write_str(open)?;
            for (i, asn) in seg.asns.iter().enumerate() {
                if i > 0 {
                    f.write_str(
                        if seg.kind == SegmentType::Sequence
                            || seg.kind == SegmentType::ConfedSequence
                        {
                            " "
                        } else {
                            ","
                        },
                    )?;
                }
                write!(f, "{asn}")?;
            }
            f.write_str(close)?;
        }
        Ok(())
    }
}
