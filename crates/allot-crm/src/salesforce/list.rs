//! The whole book of one object, a page at a time, by keyset SOQL:
//! `SELECT … FROM Lead WHERE Id > 'last' ORDER BY Id LIMIT 2000`. The last
//! id is the cursor: a reader persists it and resumes from it. An
//! incremental read adds `AND SystemModstamp > <since>`.

use allot_core::{Crm, Millis, ObjectKind};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::client::SalesforceClient;
use super::request;
use crate::{BookPage, CrmError};

/// Rows per page.
pub const PAGE: usize = 2_000;

/// A SOQL datetime literal (`2026-12-03T10:00:00.000Z`) of epoch ms.
pub fn soql_datetime(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The keyset query after `after` (ids are alphanumeric; quotes refused),
/// of records modified after `since` when given.
pub fn list_soql(
    object: ObjectKind,
    fields: &[&str],
    after: Option<&str>,
    since: Option<Millis>,
) -> String {
    let mut names: Vec<&str> = vec!["Id"];
    names.extend(fields.iter().copied().filter(|f| *f != "Id"));
    let mut conditions: Vec<String> = after
        .filter(|a| a.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(|a| format!("Id > '{a}'"))
        .into_iter()
        .collect();
    if let Some(t) = since {
        conditions.push(format!("SystemModstamp > {}", soql_datetime(t)));
    }
    let filter = match conditions.is_empty() {
        true => String::new(),
        false => format!(" WHERE {}", conditions.join(" AND ")),
    };
    format!(
        "SELECT {} FROM {}{filter} ORDER BY Id LIMIT {PAGE}",
        names.join(","),
        request::sobject_type(object)
    )
}

#[derive(Deserialize)]
struct Answer {
    records: Vec<Map<String, Value>>,
}

/// The rows of one page and the cursor of the next (none when short).
pub fn parse_page(body: &[u8]) -> Result<BookPage, String> {
    let a: Answer = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let full = a.records.len() >= PAGE;
    let records: Vec<(String, Map<String, Value>)> = a
        .records
        .into_iter()
        .filter_map(|mut r| {
            r.remove("attributes");
            let id = r.get("Id")?.as_str()?.to_string();
            Some((id, r))
        })
        .collect();
    let next = full
        .then(|| records.last().map(|(id, _)| id.clone()))
        .flatten();
    Ok(BookPage { records, next })
}

/// `SELECT COUNT() FROM <Type> [WHERE SystemModstamp > since]`.
pub fn count_soql(object: ObjectKind, since: Option<Millis>) -> String {
    let filter = since
        .map(|t| format!(" WHERE SystemModstamp > {}", soql_datetime(t)))
        .unwrap_or_default();
    format!(
        "SELECT COUNT() FROM {}{filter}",
        request::sobject_type(object)
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Count {
    total_size: u64,
}

impl SalesforceClient {
    /// How many records of `object` there are (modified after `since`).
    pub async fn count(&self, object: ObjectKind, since: Option<Millis>) -> Result<u64, CrmError> {
        let path = request::query_path(self.api_version());
        let endpoint = format!("GET {path}");
        let q = vec![("q", count_soql(object, since))];
        let reply = self.send(Method::GET, &path, &q, None).await?;
        if reply.status != 200 {
            return Err(request::error_from_reply(&endpoint, &reply));
        }
        serde_json::from_slice::<Count>(&reply.body)
            .map(|c| c.total_size)
            .map_err(|e| CrmError::Decode {
                crm: Crm::Salesforce,
                endpoint,
                message: e.to_string(),
            })
    }

    /// One page of `object`'s records after the cursor `after`.
    pub async fn list_page(
        &self,
        object: ObjectKind,
        after: Option<&str>,
        since: Option<Millis>,
        fields: &[&str],
    ) -> Result<BookPage, CrmError> {
        let path = request::query_path(self.api_version());
        let endpoint = format!("GET {path}");
        let q = vec![("q", list_soql(object, fields, after, since))];
        let reply = self.send(Method::GET, &path, &q, None).await?;
        if reply.status != 200 {
            return Err(request::error_from_reply(&endpoint, &reply));
        }
        parse_page(&reply.body).map_err(|message| CrmError::Decode {
            crm: Crm::Salesforce,
            endpoint,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyset_soql() {
        let cases = [
            (None, "SELECT Id,OwnerId FROM Lead ORDER BY Id LIMIT 2000"),
            (
                Some("00Q1"),
                "SELECT Id,OwnerId FROM Lead WHERE Id > '00Q1' ORDER BY Id LIMIT 2000",
            ),
            (
                Some("x' OR Id != '"),
                "SELECT Id,OwnerId FROM Lead ORDER BY Id LIMIT 2000",
            ),
        ];
        for (after, want) in cases {
            assert_eq!(
                list_soql(ObjectKind::Lead, &["OwnerId", "Id"], after, None),
                want
            );
        }
        assert_eq!(
            list_soql(ObjectKind::Account, &[], Some("001A"), Some(1_764_756_000_000)),
            "SELECT Id FROM Account WHERE Id > '001A' AND SystemModstamp > 2025-12-03T10:00:00.000Z ORDER BY Id LIMIT 2000"
        );
    }

    #[test]
    fn a_short_page_is_the_last() {
        let body = br#"{"totalSize":1,"done":true,"records":[{"attributes":{"type":"Lead"},"Id":"00Q1","OwnerId":"005A"}]}"#;
        let page = parse_page(body).unwrap();
        assert_eq!(page.records.len(), 1);
        assert_eq!(page.records[0].0, "00Q1");
        assert_eq!(page.next, None);
    }
}
