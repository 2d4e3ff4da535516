//! Replay files: JSON lines and whole-file arrays, with line numbers.

use allot_core::ChangeKind;
use allot_events::{decode_lines, Format};
use serde_json::json;

/// One entry as (line, Ok(change kinds) | Err(message)).
type Entry = (usize, Result<Vec<ChangeKind>, String>);

fn summary(text: &str, format: Format) -> Vec<Entry> {
    decode_lines(text, format)
        .into_iter()
        .map(|(line, r)| {
            (
                line,
                r.map(|evs| evs.iter().map(|e| e.change).collect())
                    .map_err(|e| e.to_string()),
            )
        })
        .collect()
}

#[test]
fn replay_files() {
    let hs =
        |id: u64, t: &str| json!({"eventId": id, "subscriptionType": t, "objectId": 9}).to_string();
    let native = json!({"v": 1, "source": "native", "event_id": "n", "object": "lead", "record_id": "L", "change": "create"});
    use ChangeKind::*;
    let cases: Vec<(String, Vec<Entry>)> = vec![
        // A bad line in the middle; blank lines skipped, numbering kept.
        (
            format!("{}\n{{\"eventId\": oops\n\n{}\n", hs(1, "contact.creation"), hs(2, "contact.deletion")),
            vec![
                (1, Ok(vec![Create])),
                (2, Err("not JSON at line 1 column 13: expected value".into())),
                (4, Ok(vec![Delete])),
            ],
        ),
        // A line holding a batch with one bad element: what decoded, then the error.
        (
            format!("\r\n{}\r\n", json!([{"eventId": 1, "subscriptionType": "contact.creation", "objectId": 1}, {"eventId": 2, "subscriptionType": "contact.creation"}])),
            vec![
                (2, Ok(vec![Create])),
                (2, Err("hubspot event [1] (eventId 2): missing field \"objectId\"".into())),
            ],
        ),
        // One JSON array over many lines: each element reports the line it starts on.
        (
            format!("[\n  {},\n  {{\"eventId\": 3,\n    \"subscriptionType\": \"contact.nope\", \"objectId\": 1}},\n  {}\n]\n", hs(1, "company.creation"), native),
            vec![
                (2, Ok(vec![Create])),
                (3, Err("hubspot event (eventId 3): unknown subscriptionType \"contact.nope\"".into())),
                (5, Ok(vec![Create])),
            ],
        ),
        // Broken JSON inside an element is positioned in the file.
        (
            format!("[\n {},\n {{\"eventId\": ]\n", hs(1, "contact.creation")),
            vec![
                (2, Ok(vec![Create])),
                (3, Err("not JSON at line 3 column 14: expected value".into())),
                // Its `]` closed the element's `{`, so the array really is unterminated.
                (4, Err("not JSON at line 4 column 1: EOF while parsing a list (missing `]`)".into())),
            ],
        ),
        // Truncated array: what was complete decodes, then where it broke.
        (
            format!("[\n {},\n {}", hs(1, "contact.creation"), hs(2, "contact.creation")),
            vec![
                (2, Ok(vec![Create])),
                (3, Ok(vec![Create])),
                (3, Err("not JSON at line 3 column 66: EOF while parsing a list (missing `]`)".into())),
            ],
        ),
        ("[\n]\n".into(), vec![]),
        ("\n\n".into(), vec![]),
    ];
    for (text, expected) in cases {
        assert_eq!(summary(&text, Format::Auto), expected, "{text}");
    }
}
