//! Order-preserving tuple keys.
//!
//! A key is a sequence of typed segments, each a tag byte then the value:
//! - `0x01` string: UTF-8 bytes with `0x00` escaped as `0x00 0xFF`, ended by `0x00`;
//! - `0x02` i64: 8 bytes big-endian with the sign bit flipped;
//! - `0x03` u64: 8 bytes big-endian.
//!
//! Byte order of encoded keys equals the order of the tuples, and a tuple's
//! encoding is a prefix of the encoding of any tuple extending it, so range
//! scans (`audit` by record then time) and prefix scans (`state` by kind) are
//! plain sled ranges. The tags make any key decodable without knowing its
//! table, which is how errors and `check` print keys as `lead/00Q1`.

use std::fmt::Write as _;

const TAG_STR: u8 = 0x01;
const TAG_I64: u8 = 0x02;
const TAG_U64: u8 = 0x03;

/// Builds an encoded key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Key(Vec<u8>);

impl Key {
    pub(crate) fn new() -> Key {
        Key(Vec::with_capacity(32))
    }

    pub(crate) fn str(mut self, s: &str) -> Key {
        self.0.push(TAG_STR);
        for &b in s.as_bytes() {
            self.0.push(b);
            if b == 0 {
                self.0.push(0xFF);
            }
        }
        self.0.push(0);
        self
    }

    pub(crate) fn i64(mut self, n: i64) -> Key {
        self.0.push(TAG_I64);
        self.0
            .extend_from_slice(&((n as u64) ^ (1 << 63)).to_be_bytes());
        self
    }

    pub(crate) fn u64(mut self, n: u64) -> Key {
        self.0.push(TAG_U64);
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// One decoded key segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Str(String),
    I64(i64),
    U64(u64),
}

/// Decodes every segment of a key; `None` when the bytes are not a key this
/// module wrote.
pub(crate) fn segments(bytes: &[u8]) -> Option<Vec<Segment>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some((&tag, tail)) = rest.split_first() {
        rest = tail;
        match tag {
            TAG_STR => {
                let mut raw = Vec::new();
                loop {
                    let (&b, tail) = rest.split_first()?;
                    rest = tail;
                    if b != 0 {
                        raw.push(b);
                    } else if rest.first() == Some(&0xFF) {
                        raw.push(0);
                        rest = &rest[1..];
                    } else {
                        break;
                    }
                }
                out.push(Segment::Str(String::from_utf8(raw).ok()?));
            }
            TAG_I64 | TAG_U64 => {
                let (head, tail) = (rest.get(..8)?, &rest[8..]);
                rest = tail;
                let n = u64::from_be_bytes(head.try_into().ok()?);
                out.push(if tag == TAG_I64 {
                    Segment::I64((n ^ (1 << 63)) as i64)
                } else {
                    Segment::U64(n)
                });
            }
            _ => return None,
        }
    }
    Some(out)
}

/// A key for humans: segments joined by `/`, or `0x…` hex when undecodable.
pub(crate) fn display(bytes: &[u8]) -> String {
    match segments(bytes) {
        Some(segs) => {
            let parts: Vec<String> = segs
                .into_iter()
                .map(|s| match s {
                    Segment::Str(s) => s,
                    Segment::I64(n) => n.to_string(),
                    Segment::U64(n) => n.to_string(),
                })
                .collect();
            parts.join("/")
        }
        None => {
            let mut hex = String::from("0x");
            for b in bytes {
                let _ = write!(hex, "{b:02x}");
            }
            hex
        }
    }
}

/// Typed access to a key's segments, for tables whose layout is known.
pub(crate) struct Reader(std::vec::IntoIter<Segment>);

impl Reader {
    pub(crate) fn new(bytes: &[u8]) -> Option<Reader> {
        segments(bytes).map(|s| Reader(s.into_iter()))
    }

    pub(crate) fn str(&mut self) -> Option<String> {
        match self.0.next()? {
            Segment::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn i64(&mut self) -> Option<i64> {
        match self.0.next()? {
            Segment::I64(n) => Some(n),
            _ => None,
        }
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        match self.0.next()? {
            Segment::U64(n) => Some(n),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_like_tuples() {
        let cases: Vec<(Key, Key)> = vec![
            (Key::new().str("a"), Key::new().str("ab")),
            (Key::new().str("a").i64(5), Key::new().str("ab")),
            (Key::new().str("a\0"), Key::new().str("a\0b")),
            (Key::new().str("a"), Key::new().str("a\0")),
            (Key::new().i64(-1), Key::new().i64(0)),
            (Key::new().i64(i64::MIN), Key::new().i64(i64::MAX)),
            (
                Key::new().str("r").i64(10).u64(7),
                Key::new().str("r").i64(10).u64(8),
            ),
            (
                Key::new().str("r").i64(9).u64(u64::MAX),
                Key::new().str("r").i64(10).u64(0),
            ),
            (Key::new().u64(255), Key::new().u64(256)),
        ];
        for (lo, hi) in cases {
            assert!(
                lo.as_ref() < hi.as_ref(),
                "{} < {}",
                display(lo.as_ref()),
                display(hi.as_ref())
            );
        }
    }

    #[test]
    fn keys_display_and_read_back() {
        let cases: Vec<(Key, &str)> = vec![
            (Key::new().str("lead").str("00Q1"), "lead/00Q1"),
            (Key::new().str("r1").i64(-5).u64(3), "r1/-5/3"),
            (Key::new().str("x\0y"), "x\0y"),
            (Key::new(), ""),
        ];
        for (key, want) in cases {
            assert_eq!(display(key.as_ref()), want);
        }
        assert_eq!(display(b"\x07zz"), "0x077a7a");
        assert_eq!(display(&[TAG_I64, 1, 2]), "0x02".to_string() + "0102");
        let mut r = Reader::new(Key::new().str("a").i64(-2).u64(9).as_ref()).unwrap();
        assert_eq!(
            (r.str(), r.i64(), r.u64(), r.str()),
            (Some("a".into()), Some(-2), Some(9), None)
        );
    }
}
