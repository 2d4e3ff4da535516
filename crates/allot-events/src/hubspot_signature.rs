//! HubSpot webhook request signatures, version 3.
//!
//! `X-HubSpot-Signature-v3` = base64(HMAC-SHA256(client secret,
//! method + URI + raw body + timestamp)), with `X-HubSpot-Request-Timestamp`
//! in epoch milliseconds. Shared by the emulator (signing) and the webhook
//! receiver (verifying). Pure: the current time is an argument.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-HubSpot-Signature-v3";
/// Header carrying the signing time, epoch milliseconds.
pub const TIMESTAMP_HEADER: &str = "X-HubSpot-Request-Timestamp";
/// Requests signed longer ago than this are rejected (replay protection).
pub const MAX_AGE_MS: u64 = 5 * 60 * 1000;

/// Why a webhook signature was refused.
///
/// The answer of a pure check the webhook receiver makes, not the failure of a
/// client call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The timestamp is more than five minutes away from now.
    #[error(
        "webhook timestamp {timestamp_ms} is {age_ms} ms away from now (limit {MAX_AGE_MS} ms)"
    )]
    Stale {
        /// The request's signing time, epoch milliseconds.
        timestamp_ms: u64,
        /// How far that is from now, milliseconds.
        age_ms: u64,
    },
    /// The signature header is not base64.
    #[error("webhook signature is not base64")]
    Malformed,
    /// The signature does not match the request.
    #[error("webhook signature does not match the request")]
    Mismatch,
}

/// The v3 signature of a request, as HubSpot sends it.
///
/// `uri` is the full URL HubSpot called (`https://host/path?query`). As HubSpot
/// does, the percent-escapes of `: / ? @ ! $ ' ( ) * , ;` are decoded first.
pub fn hubspot_signature_v3(
    secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp_ms: u64,
) -> String {
    STANDARD.encode(
        mac(secret, method, uri, body, timestamp_ms)
            .finalize()
            .into_bytes(),
    )
}

/// Checks a v3 signature in constant time, and that `timestamp_ms` is within
/// five minutes of `now_ms`.
pub fn verify_hubspot_signature_v3(
    secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp_ms: u64,
    signature: &str,
    now_ms: u64,
) -> Result<(), SignatureError> {
    let age_ms = now_ms.abs_diff(timestamp_ms);
    if age_ms > MAX_AGE_MS {
        return Err(SignatureError::Stale {
            timestamp_ms,
            age_ms,
        });
    }
    let given = STANDARD
        .decode(signature.trim())
        .map_err(|_| SignatureError::Malformed)?;
    mac(secret, method, uri, body, timestamp_ms)
        .verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

fn mac(secret: &str, method: &str, uri: &str, body: &[u8], timestamp_ms: u64) -> Hmac<Sha256> {
    // HMAC accepts keys of any length: the fallback is never taken.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
    mac.update(method.as_bytes());
    mac.update(decode_uri(uri).as_bytes());
    mac.update(body);
    mac.update(timestamp_ms.to_string().as_bytes());
    mac
}

/// Decodes the escapes HubSpot decodes before signing; others stay as sent.
fn decode_uri(uri: &str) -> String {
    const DECODED: [(&str, char); 12] = [
        ("3A", ':'),
        ("2F", '/'),
        ("3F", '?'),
        ("40", '@'),
        ("21", '!'),
        ("24", '$'),
        ("27", '\''),
        ("28", '('),
        ("29", ')'),
        ("2A", '*'),
        ("2C", ','),
        ("3B", ';'),
    ];
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        let esc = rest.get(pos + 1..pos + 3).unwrap_or("");
        let hit = DECODED
            .iter()
            .find(|(hex, _)| hex.eq_ignore_ascii_case(esc));
        match hit {
            Some((_, c)) => {
                out.push(*c);
                rest = &rest[pos + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[pos + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    const URI: &str = "https://allot.example/webhooks/hubspot";
    const BODY: &[u8] = br#"[{"eventId":1,"subscriptionType":"contact.propertyChange"}]"#;
    const TS: u64 = 1_714_153_779_512;

    #[test]
    fn signature_matches_an_independent_computation() {
        // HMAC-SHA256 over the concatenation, computed in one piece.
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
        let mut msg = format!("POST{URI}").into_bytes();
        msg.extend_from_slice(BODY);
        msg.extend_from_slice(TS.to_string().as_bytes());
        m.update(&msg);
        let want = STANDARD.encode(m.finalize().into_bytes());
        assert_eq!(hubspot_signature_v3(SECRET, "POST", URI, BODY, TS), want);
    }

    #[test]
    fn round_trip_and_rejections() {
        let sig = hubspot_signature_v3(SECRET, "POST", URI, BODY, TS);
        let four_min = TS + 4 * 60 * 1000;
        let six_min = TS + 6 * 60 * 1000;
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            &'a [u8],
            u64,
            String,
            u64,
            Result<(), SignatureError>,
        );
        let cases: Vec<Case> = vec![
            ("ok", SECRET, URI, BODY, TS, sig.clone(), TS, Ok(())),
            (
                "ok 4 min later",
                SECRET,
                URI,
                BODY,
                TS,
                sig.clone(),
                four_min,
                Ok(()),
            ),
            (
                "stale",
                SECRET,
                URI,
                BODY,
                TS,
                sig.clone(),
                six_min,
                Err(SignatureError::Stale {
                    timestamp_ms: TS,
                    age_ms: 6 * 60 * 1000,
                }),
            ),
            (
                "future",
                SECRET,
                URI,
                BODY,
                TS,
                sig.clone(),
                TS - 6 * 60 * 1000,
                Err(SignatureError::Stale {
                    timestamp_ms: TS,
                    age_ms: 6 * 60 * 1000,
                }),
            ),
            (
                "wrong secret",
                "other",
                URI,
                BODY,
                TS,
                sig.clone(),
                TS,
                Err(SignatureError::Mismatch),
            ),
            (
                "tampered body",
                SECRET,
                URI,
                b"[]",
                TS,
                sig.clone(),
                TS,
                Err(SignatureError::Mismatch),
            ),
            (
                "other uri",
                SECRET,
                "https://allot.example/x",
                BODY,
                TS,
                sig.clone(),
                TS,
                Err(SignatureError::Mismatch),
            ),
            (
                "replayed timestamp",
                SECRET,
                URI,
                BODY,
                TS + 1,
                sig.clone(),
                TS,
                Err(SignatureError::Mismatch),
            ),
            (
                "truncated",
                SECRET,
                URI,
                BODY,
                TS,
                sig[..10].to_string(),
                TS,
                Err(SignatureError::Malformed),
            ),
            (
                "not base64",
                SECRET,
                URI,
                BODY,
                TS,
                "%%%".into(),
                TS,
                Err(SignatureError::Malformed),
            ),
            (
                "empty",
                SECRET,
                URI,
                BODY,
                TS,
                String::new(),
                TS,
                Err(SignatureError::Mismatch),
            ),
        ];
        for (name, secret, uri, body, ts, sig, now, want) in cases {
            let got = verify_hubspot_signature_v3(secret, "POST", uri, body, ts, &sig, now);
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn uri_escapes_are_decoded_like_hubspot() {
        let cases = [
            ("https://a.example/p?x=1%3A2", "https://a.example/p?x=1:2"),
            (
                "https://a.example/p?e=a%40b.example%2C%3b",
                "https://a.example/p?e=a@b.example,;",
            ),
            ("https://a.example/p?s=a%20b", "https://a.example/p?s=a%20b"),
            ("https://a.example/100%", "https://a.example/100%"),
        ];
        for (raw, want) in cases {
            assert_eq!(decode_uri(raw), want, "{raw}");
        }
        let encoded = hubspot_signature_v3(SECRET, "POST", "https://a.example/p?e=a%40b", b"", TS);
        let decoded = hubspot_signature_v3(SECRET, "POST", "https://a.example/p?e=a@b", b"", TS);
        assert_eq!(encoded, decoded);
    }
}
