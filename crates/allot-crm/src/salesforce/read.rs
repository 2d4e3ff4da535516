//! Records by id in one call: `POST composite/sobjects/{Type}` with up to
//! 2,000 ids. The answer is in id order, `null` for an id that is gone or
//! not visible to the integration user.

use allot_core::{Crm, ObjectKind};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::client::SalesforceClient;
use super::request;
use crate::CrmError;

/// One id and its record, `None` when it is gone.
pub type Row = (String, Option<Map<String, Value>>);

/// At most this many ids per composite read.
pub const MAX_READ: usize = 2_000;

/// `/services/data/v62.0/composite/sobjects/Lead`
pub fn read_path(version: &str, object: ObjectKind) -> String {
    format!(
        "/services/data/v{version}/composite/sobjects/{}",
        request::sobject_type(object)
    )
}

/// `{"ids":[...],"fields":[...]}`; `Id` is always among the fields.
pub fn read_body<S: AsRef<str>>(ids: &[S], fields: &[&str]) -> Value {
    let mut names: Vec<&str> = vec!["Id"];
    names.extend(fields.iter().copied().filter(|f| *f != "Id"));
    let ids: Vec<&str> = ids.iter().map(AsRef::as_ref).collect();
    json!({"ids": ids, "fields": names})
}

/// Matches the answer to `ids`: the record (without `attributes`) or `None`.
pub fn parse_read<S: AsRef<str>>(ids: &[S], body: &[u8]) -> Result<Vec<Row>, String> {
    let rows: Vec<Option<Map<String, Value>>> =
        serde_json::from_slice(body).map_err(|e| format!("expected an array of records: {e}"))?;
    if rows.len() != ids.len() {
        return Err(format!(
            "{} records answered for {} ids",
            rows.len(),
            ids.len()
        ));
    }
    Ok(ids
        .iter()
        .zip(rows)
        .map(|(id, row)| {
            let row = row.map(|mut r| {
                r.remove("attributes");
                r
            });
            (id.as_ref().to_string(), row)
        })
        .collect())
}

impl SalesforceClient {
    /// At most this many ids per [`SalesforceClient::read_records`] call.
    pub fn max_read(&self) -> usize {
        MAX_READ
    }

    /// The named fields of up to 2,000 records of one kind, in `ids` order;
    /// `None` for a record that is gone. A field the user may not read fails
    /// the whole call (400).
    pub async fn read_records<S: AsRef<str>>(
        &self,
        object: ObjectKind,
        ids: &[S],
        fields: &[&str],
    ) -> Result<Vec<Row>, CrmError> {
        if ids.len() > MAX_READ {
            return Err(CrmError::BatchTooLarge {
                crm: Crm::Salesforce,
                max: MAX_READ,
                got: ids.len(),
            });
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let path = read_path(self.api_version(), object);
        let endpoint = format!("POST {path}");
        let body = read_body(ids, fields);
        let reply = self.send(Method::POST, &path, &[], Some(&body)).await?;
        if reply.status != 200 {
            return Err(request::error_from_reply(&endpoint, &reply));
        }
        parse_read(ids, &reply.body).map_err(|message| CrmError::Decode {
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
    fn answers_match_ids_in_order() {
        let body = br#"[{"attributes":{"type":"Lead"},"Id":"00Q1","Company":"Acme"},null]"#;
        let got = parse_read(&["00Q1", "00Q2"], body).unwrap();
        assert_eq!(got[0].0, "00Q1");
        assert_eq!(
            got[0].1.as_ref().and_then(|r| r.get("Company")),
            Some(&json!("Acme"))
        );
        assert!(got[0]
            .1
            .as_ref()
            .is_some_and(|r| !r.contains_key("attributes")));
        assert_eq!(got[1], ("00Q2".to_string(), None));
        let cases: [(&[u8], &str); 2] = [
            (b"[null]", "1 records answered for 2 ids"),
            (b"{}", "expected an array of records"),
        ];
        for (body, want) in cases {
            let e = parse_read(&["a", "b"], body).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn body_always_reads_the_id() {
        assert_eq!(
            read_body(&["00Q1"], &["Company", "Id"]),
            json!({"ids": ["00Q1"], "fields": ["Id", "Company"]})
        );
    }
}
