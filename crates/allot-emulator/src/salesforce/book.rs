//! SOQL over the book: keyset pages of leads, accounts and contacts,
//! `SELECT f1, f2 FROM Lead [WHERE Id > '00Q…' [AND SystemModstamp > T]]
//! ORDER BY Id LIMIT n`, the query a reader resumes from its last id with;
//! `SystemModstamp > T` (or `LastModifiedDate > T`) alone selects the
//! records changed since `T`, the incremental form.

use allot_core::ObjectKind;
use serde_json::{json, Map, Value};

use super::sobject;
use crate::state::State;

/// The most rows one query returns (Salesforce pages at 2,000).
pub(crate) const MAX_ROWS: usize = 2_000;

/// A parsed keyset query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BookQuery {
    pub object: ObjectKind,
    pub name: String,
    pub fields: Vec<String>,
    pub after: Option<String>,
    /// Only records modified after this instant (`iso_millis` form).
    pub since: Option<String>,
    pub limit: usize,
}

/// A SOQL datetime literal (`2026-12-03T10:00:00Z`, `…:00.000Z`) in the
/// emulator's stored form (`…:00.000Z`), so instants compare as strings.
fn stamp(literal: &str) -> Option<String> {
    let b = literal.as_bytes();
    let shaped = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && literal.ends_with('Z');
    match (shaped, b.len()) {
        (true, 20) => Some(format!("{}.000Z", &literal[..19])),
        (true, 24) if b[19] == b'.' => Some(literal.to_string()),
        _ => None,
    }
}

/// Parses the keyset form; `None` when `q` is not over Lead, Account or Contact.
pub(crate) fn parse(q: &str) -> Option<Result<BookQuery, (&'static str, String)>> {
    let words: Vec<&str> = q.split_whitespace().collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let from = lower.iter().position(|w| w == "from")?;
    let name = *words.get(from + 1)?;
    let object = sobject(name)?;
    let malformed = || ("MALFORMED_QUERY", format!("unexpected token in: {q}"));
    if lower.first().map(String::as_str) != Some("select") {
        return Some(Err(malformed()));
    }
    let fields: Vec<String> = words[1..from]
        .join(" ")
        .split(',')
        .map(|f| f.trim().to_string())
        .filter(|f| !f.is_empty())
        .collect();
    let rest: Vec<&str> = lower[from + 2..].iter().map(String::as_str).collect();
    let raw = &words[from + 2..];
    let mut i = 0;
    let (mut after, mut since) = (None, None);
    if rest.first() == Some(&"where") {
        i = 1;
        loop {
            match (rest.get(i), rest.get(i + 1), raw.get(i + 2)) {
                (Some(&"id"), Some(&">"), Some(v)) => after = Some(v.trim_matches('\'').to_string()),
                (Some(&("systemmodstamp" | "lastmodifieddate")), Some(&">"), Some(v)) => {
                    match stamp(v) {
                        Some(t) => since = Some(t),
                        None => {
                            return Some(Err((
                                "INVALID_FIELD",
                                format!("value of filter criterion for field 'SystemModstamp' must be of type dateTime and should not be enclosed in quotes: {v}"),
                            )))
                        }
                    }
                }
                _ => return Some(Err(malformed())),
            }
            i += 3;
            if rest.get(i) == Some(&"and") {
                i += 1;
            } else {
                break;
            }
        }
    }
    let limit = match &rest[i..] {
        [] | ["order", "by", "id"] => MAX_ROWS,
        ["order", "by", "id", "limit", n] | ["limit", n] => match n.parse::<usize>() {
            Ok(n) => n.clamp(1, MAX_ROWS),
            Err(_) => return Some(Err(malformed())),
        },
        _ => return Some(Err(malformed())),
    };
    Some(Ok(BookQuery {
        object,
        name: name.to_string(),
        fields,
        after,
        since,
        limit,
    }))
}

/// Every record `query` selects, in id order, ignoring its limit.
pub(crate) fn matching<'a>(
    st: &'a State,
    query: &'a BookQuery,
) -> impl Iterator<Item = (&'a String, &'a Map<String, Value>)> + 'a {
    let start = (query.object, query.after.clone().unwrap_or_default());
    st.sf_records
        .range(start..)
        .take_while(move |((o, _), _)| *o == query.object)
        .filter(move |((_, id), record)| {
            query.after.as_deref() != Some(id.as_str())
                && query.since.as_deref().is_none_or(|since| {
                    let modified = record
                        .get("SystemModstamp")
                        .or_else(|| record.get("LastModifiedDate"))
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    modified > since
                })
        })
        .map(|((_, id), record)| (id, record))
}

/// One row as the REST query answers it: `attributes`, `Id`, the fields asked for.
pub(crate) fn row(
    query: &BookQuery,
    version: &str,
    id: &str,
    record: &Map<String, Value>,
) -> Map<String, Value> {
    let mut row = Map::new();
    row.insert(
        "attributes".into(),
        json!({"type": query.name, "url": format!("/services/data/v{version}/sobjects/{}/{id}", query.name)}),
    );
    row.insert("Id".into(), json!(id));
    for f in query.fields.iter().filter(|f| f.as_str() != "Id") {
        row.insert(f.clone(), record.get(f).cloned().unwrap_or(Value::Null));
    }
    row
}

/// The rows of `query` in id order (`SELECT COUNT() …`: only `totalSize`).
pub(crate) fn rows(st: &State, query: &BookQuery, version: &str) -> Value {
    if query.fields.len() == 1 && query.fields[0].eq_ignore_ascii_case("count()") {
        let n = matching(st, query).count();
        return json!({"totalSize": n, "done": true, "records": []});
    }
    let records: Vec<Value> = matching(st, query)
        .take(query.limit)
        .map(|(id, record)| Value::Object(row(query, version, id, record)))
        .collect();
    json!({"totalSize": records.len(), "done": true, "records": records})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyset_queries_parse() {
        let ok = |after: Option<&str>, limit| {
            Some(Ok(BookQuery {
                object: ObjectKind::Lead,
                name: "Lead".into(),
                fields: vec!["Id".into(), "OwnerId".into()],
                after: after.map(str::to_string),
                since: None,
                limit,
            }))
        };
        let cases = [
            (
                "SELECT Id, OwnerId FROM Lead ORDER BY Id LIMIT 50",
                ok(None, 50),
            ),
            (
                "select Id,OwnerId from Lead where Id > '00Q1' order by Id limit 9000",
                ok(Some("00Q1"), MAX_ROWS),
            ),
            ("SELECT Id,IsActive FROM User", None),
            (
                "SELECT Id,OwnerId FROM Lead WHERE Id > '00Q1' AND SystemModstamp > 2026-12-03T10:00:00Z ORDER BY Id LIMIT 50",
                Some(Ok(BookQuery {
                    since: Some("2026-12-03T10:00:00.000Z".into()),
                    ..ok(Some("00Q1"), 50).unwrap().unwrap()
                })),
            ),
        ];
        for (q, want) in cases {
            assert_eq!(parse(q), want, "{q}");
        }
        assert!(matches!(
            parse("SELECT Id FROM Lead GROUP BY Id"),
            Some(Err(_))
        ));
        assert!(matches!(
            parse("SELECT Id FROM Lead WHERE SystemModstamp > '2026-12-03'"),
            Some(Err(("INVALID_FIELD", _)))
        ));
    }
}
