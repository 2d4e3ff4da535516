//! The whole book of contacts or companies, a page at a time:
//! `GET /crm/v3/objects/{type}?limit=100&after=…&properties=…`, following
//! `paging.next.after`, the cursor a reader persists and resumes from.
//!
//! Incremental reads use search instead: `POST /crm/v3/objects/{type}/search`
//! with `lastmodifieddate GT since` and `hs_object_id GT <last id>`, sorted by
//! `hs_object_id`, 200 per page. The last id is the cursor, so no query ever
//! pages past search's 10,000-result cap. Search has its own limit (about 4
//! requests per second per token): callers pace it ([`SEARCH_INTERVAL_MS`]).

use allot_core::{Crm, Millis, ObjectKind};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::client::HubSpotClient;
use super::request;
use crate::{BookPage, CrmError};

/// Records per page (HubSpot's largest).
pub const PAGE: usize = 100;
/// Records per search page (search's largest).
pub const SEARCH_PAGE: usize = 200;
/// The least time between two search calls of one token.
pub const SEARCH_INTERVAL_MS: u64 = 250;

/// The body of the incremental search after the id `after`.
pub fn search_body(properties: &[&str], after: Option<&str>, since: Millis) -> Value {
    let mut filters = vec![json!({
        "propertyName": "lastmodifieddate", "operator": "GT", "value": since.to_string()
    })];
    if let Some(a) = after {
        filters.push(json!({"propertyName": "hs_object_id", "operator": "GT", "value": a}));
    }
    json!({
        "filterGroups": [{"filters": filters}],
        "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        "properties": properties,
        "limit": SEARCH_PAGE,
    })
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    results: Vec<Row>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Row {
    id: String,
    #[serde(default)]
    properties: Map<String, Value>,
}

#[derive(Deserialize)]
struct Paging {
    next: Option<Next>,
}

#[derive(Deserialize)]
struct Next {
    after: String,
}

/// The rows of one page and the cursor of the next.
pub fn parse_page(body: &[u8]) -> Result<BookPage, String> {
    let a: Answer = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(BookPage {
        records: a
            .results
            .into_iter()
            .map(|r| (r.id, r.properties))
            .collect(),
        next: a.paging.and_then(|p| p.next).map(|n| n.after),
    })
}

impl HubSpotClient {
    /// One page of `object`'s records after the cursor `after`.
    pub async fn list_page(
        &self,
        object: ObjectKind,
        after: Option<&str>,
        since: Option<Millis>,
        properties: &[&str],
    ) -> Result<BookPage, CrmError> {
        if let Some(since) = since {
            return self.search_page(object, after, since, properties).await;
        }
        let path = format!("/crm/v3/objects/{}", request::object_type(object)?);
        let endpoint = format!("GET {path}");
        let mut q = vec![
            ("limit", PAGE.to_string()),
            ("properties", properties.join(",")),
        ];
        if let Some(a) = after {
            q.push(("after", a.to_string()));
        }
        let reply = self.send(Method::GET, &path, &q, None).await?;
        if reply.status != 200 {
            return Err(request::error_from_reply(&endpoint, &reply));
        }
        parse_page(&reply.body).map_err(|message| CrmError::Decode {
            crm: Crm::Hubspot,
            endpoint,
            message,
        })
    }
}

impl HubSpotClient {
    /// One page of the records modified after `since`, ids after `after`.
    async fn search_page(
        &self,
        object: ObjectKind,
        after: Option<&str>,
        since: Millis,
        properties: &[&str],
    ) -> Result<BookPage, CrmError> {
        let path = format!("/crm/v3/objects/{}/search", request::object_type(object)?);
        let endpoint = format!("POST {path}");
        let body = search_body(properties, after, since);
        let reply = self.send(Method::POST, &path, &[], Some(&body)).await?;
        if reply.status != 200 {
            return Err(request::error_from_reply(&endpoint, &reply));
        }
        let mut page = parse_page(&reply.body).map_err(|message| CrmError::Decode {
            crm: Crm::Hubspot,
            endpoint,
            message,
        })?;
        // Keyset: the next query starts after the last id of a full page.
        page.next = (page.records.len() >= SEARCH_PAGE)
            .then(|| page.records.last().map(|(id, _)| id.clone()))
            .flatten();
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_the_cursor() {
        let cases: [(&[u8], usize, Option<&str>); 2] = [
            (
                br#"{"results":[{"id":"1","properties":{"email":"a@x.io"}}],"paging":{"next":{"after":"1","link":"l"}}}"#,
                1,
                Some("1"),
            ),
            (br#"{"results":[]}"#, 0, None),
        ];
        for (body, n, next) in cases {
            let p = parse_page(body).unwrap();
            assert_eq!((p.records.len(), p.next.as_deref()), (n, next));
        }
    }
}
