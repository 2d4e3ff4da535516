//! SOQL over the book: keyset pages of leads, accounts and contacts,
//! `SELECT f1, f2 FROM Lead [WHERE Id > '00Q…'] ORDER BY Id LIMIT n`, the
//! query a reader resumes from its last id with.

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
    pub limit: usize,
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
    let raw_rest = &words[from + 2..];
    let (after, tail) = match rest.as_slice() {
        ["where", "id", ">", ..] => {
            let value = raw_rest[3].trim_matches('\'').to_string();
            (Some(value), &rest[4..])
        }
        _ => (None, &rest[..]),
    };
    let limit = match tail {
        [] | ["order", "by", "id"] => MAX_ROWS,
        ["order", "by", "id", "limit", n] => match n.parse::<usize>() {
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
        limit,
    }))
}

/// The rows of `query` in id order.
pub(crate) fn rows(st: &State, query: &BookQuery, version: &str) -> Value {
    let start = (query.object, query.after.clone().unwrap_or_default());
    let records: Vec<Value> = st
        .sf_records
        .range(start..)
        .filter(|((o, id), _)| *o == query.object && query.after.as_deref() != Some(id))
        .take(query.limit)
        .map(|((_, id), record)| {
            let mut row = Map::new();
            row.insert(
                "attributes".into(),
                json!({"type": query.name, "url": format!("/services/data/v{version}/sobjects/{}/{id}", query.name)}),
            );
            row.insert("Id".into(), json!(id));
            for f in query.fields.iter().filter(|f| f.as_str() != "Id") {
                row.insert(f.clone(), record.get(f).cloned().unwrap_or(Value::Null));
            }
            Value::Object(row)
        })
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
        ];
        for (q, want) in cases {
            assert_eq!(parse(q), want, "{q}");
        }
        assert!(matches!(
            parse("SELECT Id FROM Lead GROUP BY Id"),
            Some(Err(_))
        ));
    }
}
