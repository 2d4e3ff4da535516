//! The whole book of contacts or companies, a page at a time:
//! `GET /crm/v3/objects/{type}?limit=100&after=…&properties=…`, following
//! `paging.next.after`, the cursor a reader persists and resumes from.

use allot_core::{Crm, ObjectKind};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::client::HubSpotClient;
use super::request;
use crate::{BookPage, CrmError};

/// Records per page (HubSpot's largest).
pub const PAGE: usize = 100;

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
        properties: &[&str],
    ) -> Result<BookPage, CrmError> {
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
