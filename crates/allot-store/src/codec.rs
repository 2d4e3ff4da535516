//! The value envelope: `[format version: u8][crc32 of payload: u32 BE][payload]`.
//!
//! Every value the store writes goes through [`seal`]; every read goes through
//! [`unseal`], so a torn or overwritten value is reported as corrupt instead of
//! being parsed into something plausible. The payload is JSON for typed values
//! and raw bytes for embedded-log messages (which are usually JSON already).

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Current envelope format. Bump it when the envelope (not the payload
/// schema) changes; payload schemas carry their own `v` fields.
pub(crate) const FORMAT_VERSION: u8 = 1;

/// Bytes before the payload: version byte and CRC.
const HEADER_LEN: usize = 5;

/// Why an envelope or payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The envelope itself is damaged: maps to `StoreError::Corrupt`.
    Corrupt(String),
    /// The envelope is fine but the JSON does not fit: maps to `StoreError::Codec`.
    Codec(String),
}

/// Wraps a payload in the envelope.
pub(crate) fn seal(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks the envelope and returns the payload.
pub(crate) fn unseal(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    let Some((&version, rest)) = bytes.split_first() else {
        return Err(DecodeError::Corrupt(
            "empty value (expected an envelope)".into(),
        ));
    };
    if version != FORMAT_VERSION {
        return Err(DecodeError::Corrupt(format!(
            "unknown format version {version} (this build reads version {FORMAT_VERSION})"
        )));
    }
    if rest.len() < HEADER_LEN - 1 {
        return Err(DecodeError::Corrupt(format!(
            "value truncated to {} bytes (envelope header is {HEADER_LEN})",
            bytes.len()
        )));
    }
    let (crc, payload) = rest.split_at(HEADER_LEN - 1);
    let stored = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let actual = crc32fast::hash(payload);
    if stored != actual {
        return Err(DecodeError::Corrupt(format!(
            "crc mismatch (stored {stored:08x}, computed {actual:08x} over {} payload bytes)",
            payload.len()
        )));
    }
    Ok(payload)
}

/// Serialises a value as JSON inside an envelope.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, DecodeError> {
    serde_json::to_vec(value)
        .map(|json| seal(&json))
        .map_err(|e| DecodeError::Codec(format!("cannot serialise: {e}")))
}

/// Checks the envelope and parses the JSON payload.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let payload = unseal(bytes)?;
    serde_json::from_slice(payload).map_err(|e| DecodeError::Codec(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_and_rejects_damage() {
        let good = encode(&vec![1, 2, 3]).unwrap();
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 0x01;
        let mut wrong_version = good.clone();
        wrong_version[0] = 9;
        type Case = (&'static str, Vec<u8>, Result<Vec<i32>, &'static str>);
        let cases: Vec<Case> = vec![
            ("good", good.clone(), Ok(vec![1, 2, 3])),
            ("empty", vec![], Err("empty value")),
            ("truncated", good[..3].to_vec(), Err("truncated")),
            ("flipped bit", flipped, Err("crc mismatch")),
            ("version", wrong_version, Err("unknown format version 9")),
            (
                "garbage",
                b"garbage".to_vec(),
                Err("unknown format version"),
            ),
        ];
        for (name, bytes, want) in cases {
            match (decode::<Vec<i32>>(&bytes), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{name}"),
                (Err(DecodeError::Corrupt(detail)), Err(needle)) => {
                    assert!(detail.contains(needle), "{name}: {detail}")
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn intact_envelope_with_wrong_schema_is_a_codec_error() {
        let bytes = encode("not a number").unwrap();
        assert!(matches!(decode::<i64>(&bytes), Err(DecodeError::Codec(_))));
    }
}
