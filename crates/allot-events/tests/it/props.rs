//! Decoding never panics, whatever the input.

use allot_events::{decode, decode_lines, Format};
use proptest::prelude::*;
use serde_json::{json, Value as J};

const FORMATS: [Format; 4] = [
    Format::Auto,
    Format::SalesforceCdc,
    Format::Hubspot,
    Format::Native,
];

/// Keys the decoders look at, so random JSON reaches deep into them.
const KEYS: &[&str] = &[
    "ChangeEventHeader",
    "payload",
    "schema",
    "event",
    "replayId",
    "ReplayId",
    "channel",
    "data",
    "entityName",
    "recordIds",
    "changeType",
    "changedFields",
    "nulledFields",
    "sequenceNumber",
    "commitTimestamp",
    "transactionKey",
    "changeOrigin",
    "commitUser",
    "BillingAddress",
    "Name",
    "Address",
    "_ObjectType",
    "Id",
    "subscriptionType",
    "eventType",
    "eventId",
    "objectId",
    "objectTypeId",
    "propertyName",
    "propertyValue",
    "occurredAt",
    "changeSource",
    "sourceId",
    "subscriptionId",
    "v",
    "event_id",
    "source",
    "object",
    "record_id",
    "change",
    "fields",
];
const WORDS: &[&str] = &[
    "Lead",
    "Account",
    "Contact",
    "CREATE",
    "UPDATE",
    "DELETE",
    "UNDELETE",
    "GAP_UPDATE",
    "GAP_OVERFLOW",
    "contact.creation",
    "company.propertyChange",
    "object.creation",
    "0-1",
    "0-2",
    "BillingAddress.State",
    "native",
    "lead",
    "update",
    "overflow",
    "",
    "x.y",
    "1",
];

fn arb_json() -> impl Strategy<Value = J> {
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop::sample::select(WORDS).prop_map(|w| json!(w)),
        ".{0,8}".prop_map(J::String),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(J::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|kv| {
                J::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        for format in FORMATS {
            let _ = decode(&bytes, format);
        }
    }

    #[test]
    fn json_ish_text_never_panics(text in r#"[\[\]{}",:0-9a-zA-Z_. \\\n-]{0,200}"#) {
        for format in FORMATS {
            let _ = decode(text.as_bytes(), format);
            let _ = decode_lines(&text, format);
        }
    }

    #[test]
    fn random_json_with_known_keys_never_panics(value in arb_json()) {
        let text = value.to_string();
        for format in FORMATS {
            let got = decode(text.as_bytes(), format);
            for e in &got.errors {
                prop_assert!(!e.to_string().is_empty() && !e.kind().is_empty());
            }
            let _ = decode_lines(&text, format);
        }
    }
}
