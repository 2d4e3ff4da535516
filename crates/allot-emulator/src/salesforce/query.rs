//! SOQL over users, just the family `SELECT <fields> FROM User
//! [WHERE IsActive = true|false]`, with `nextRecordsUrl` paging.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::{error, gate, reply};
use crate::seed::SfUser;
use crate::state::{QueryCursor, State};
use crate::Shared;

/// User fields the emulator can select.
const USER_FIELDS: [&str; 5] = ["Id", "IsActive", "Name", "Email", "Username"];

/// A refused query: `(errorCode, message)`.
type QueryError = (&'static str, String);

/// Parses `SELECT f1, f2 FROM User [WHERE IsActive = true|false]`.
pub(crate) fn parse_users_soql(q: &str) -> Result<QueryCursor, QueryError> {
    let q = q.split_whitespace().collect::<Vec<_>>().join(" ");
    let lower = q.to_ascii_lowercase();
    let malformed = || ("MALFORMED_QUERY", format!("unexpected token in: {q}"));
    let from = match (lower.starts_with("select "), lower.find(" from ")) {
        (true, Some(from)) if from > 7 => from,
        _ => return Err(malformed()),
    };
    let mut fields = Vec::new();
    for f in q[7..from].split(',').map(str::trim) {
        let Some(known) = USER_FIELDS.iter().find(|k| k.eq_ignore_ascii_case(f)) else {
            return Err((
                "INVALID_FIELD",
                format!("No such column '{f}' on entity 'User'."),
            ));
        };
        fields.push(known.to_string());
    }
    let tail: Vec<&str> = q[from + 6..].split(' ').collect();
    let entity = tail.first().copied().unwrap_or_default();
    if !entity.eq_ignore_ascii_case("User") {
        return Err((
            "INVALID_TYPE",
            format!("sObject type '{entity}' is not supported."),
        ));
    }
    let filter: Vec<String> = tail[1..].iter().map(|t| t.to_ascii_lowercase()).collect();
    let filter: Vec<&str> = filter.iter().map(String::as_str).collect();
    let active = match filter.as_slice() {
        [] => None,
        ["where", "isactive", "=", v] | ["where", "isactive=", v] => {
            Some(parse_bool(v).ok_or_else(malformed)?)
        }
        ["where", cond] => {
            let v = cond.strip_prefix("isactive=").ok_or_else(malformed)?;
            Some(parse_bool(v).ok_or_else(malformed)?)
        }
        _ => return Err(malformed()),
    };
    Ok(QueryCursor { fields, active })
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn user_record(u: &SfUser, fields: &[String], version: &str) -> Value {
    let mut m = Map::new();
    m.insert(
        "attributes".into(),
        json!({"type": "User", "url": format!("/services/data/v{version}/sobjects/User/{}", u.id)}),
    );
    for f in fields {
        let v = match f.as_str() {
            "Id" => json!(u.id),
            "IsActive" => json!(u.is_active),
            "Name" => json!(u.name),
            "Email" => json!(u.email),
            _ => json!(u.username.clone().unwrap_or_else(|| u.email.clone())),
        };
        m.insert(f.clone(), v);
    }
    Value::Object(m)
}

/// One page of the query from `offset`, with a locator for the next page.
fn page(
    st: &mut State,
    shared: &Shared,
    cursor: &QueryCursor,
    locator: Option<String>,
    offset: usize,
    version: &str,
) -> Value {
    let matching: Vec<&SfUser> = st
        .sf_users
        .iter()
        .filter(|u| cursor.active.is_none_or(|a| u.is_active == a))
        .collect();
    let size = shared.opts.salesforce_query_page_size.max(1);
    let records: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(size)
        .map(|u| user_record(u, &cursor.fields, version))
        .collect();
    let total = matching.len();
    let done = offset + size >= total;
    let mut body = json!({"totalSize": total, "done": done, "records": records});
    if !done {
        let locator = locator.unwrap_or_else(|| format!("01gEMU{:012}", st.next()));
        st.query_cursors.insert(locator.clone(), cursor.clone());
        body["nextRecordsUrl"] = json!(format!(
            "/services/data/v{version}/query/{locator}-{}",
            offset + size
        ));
    }
    body
}

pub(crate) async fn query(
    AxState(shared): AxState<Arc<Shared>>,
    Path(version): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    shared.delay().await;
    let mut st = shared.lock();
    let path = format!("/services/data/{version}/query");
    let ctx = match gate(
        &mut st, &shared, "sf.query", "GET", &path, &version, &headers,
    ) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let q = params.get("q").map(String::as_str).unwrap_or_default();
    match super::book::parse(q) {
        Some(Ok(book)) => {
            let body = super::book::rows(&st, &book, &ctx.version);
            return reply(&st, &shared, StatusCode::OK, Some(body));
        }
        Some(Err((code, message))) => {
            return error(&st, &shared, StatusCode::BAD_REQUEST, code, &message, &[]);
        }
        None => {}
    }
    match parse_users_soql(q) {
        Ok(cursor) => {
            let body = page(&mut st, &shared, &cursor, None, 0, &ctx.version);
            reply(&st, &shared, StatusCode::OK, Some(body))
        }
        Err((code, message)) => error(&st, &shared, StatusCode::BAD_REQUEST, code, &message, &[]),
    }
}

pub(crate) async fn query_more(
    AxState(shared): AxState<Arc<Shared>>,
    Path((version, locator)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    shared.delay().await;
    let mut st = shared.lock();
    let path = format!("/services/data/{version}/query/{locator}");
    let ctx = match gate(
        &mut st, &shared, "sf.query", "GET", &path, &version, &headers,
    ) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let found = locator.rsplit_once('-').and_then(|(id, offset)| {
        let cursor = st.query_cursors.get(id)?.clone();
        Some((id.to_string(), cursor, offset.parse::<usize>().ok()?))
    });
    match found {
        Some((id, cursor, offset)) => {
            let body = page(&mut st, &shared, &cursor, Some(id), offset, &ctx.version);
            reply(&st, &shared, StatusCode::OK, Some(body))
        }
        None => error(
            &st,
            &shared,
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
            &[],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_query_family_is_parsed() {
        let ok = |fields: &[&str],
                  active: Option<bool>|
         -> Result<(Vec<String>, Option<bool>), &'static str> {
            Ok((fields.iter().map(|f| f.to_string()).collect(), active))
        };
        let cases = [
            (
                "SELECT Id,IsActive FROM User",
                ok(&["Id", "IsActive"], None),
            ),
            (
                "select id, isactive, Name from user",
                ok(&["Id", "IsActive", "Name"], None),
            ),
            (
                "SELECT Id FROM User WHERE IsActive = true",
                ok(&["Id"], Some(true)),
            ),
            (
                "SELECT Id FROM User WHERE IsActive=false",
                ok(&["Id"], Some(false)),
            ),
            ("SELECT Id, Phone FROM User", Err("INVALID_FIELD")),
            ("SELECT Id FROM Lead", Err("INVALID_TYPE")),
            ("SELECT Id FROM User LIMIT 5", Err("MALFORMED_QUERY")),
            ("DELETE User", Err("MALFORMED_QUERY")),
        ];
        for (q, want) in cases {
            let got = parse_users_soql(q)
                .map(|c| (c.fields, c.active))
                .map_err(|(code, _)| code);
            assert_eq!(got, want, "{q}");
        }
    }
}
