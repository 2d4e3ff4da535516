//! Records by id in one call: `POST /crm/v3/objects/{type}/batch/read` with
//! up to 100 inputs. A 207 lists the ids it could not read in `errors[]`;
//! an id in neither `results` nor `errors` is reported as not read (`None`
//! would claim it is gone).

use std::collections::HashMap;

use allot_core::{Crm, ObjectKind};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::client::HubSpotClient;
use super::request;
use crate::{CrmError, RecordRead as Read};

/// At most this many inputs per batch read.
pub const MAX_READ: usize = 100;

/// `/crm/v3/objects/contacts/batch/read`
pub fn read_path(object_type: &str) -> String {
    format!("/crm/v3/objects/{object_type}/batch/read")
}

/// The body the spec requires: `properties`, `propertiesWithHistory`, `inputs`.
pub fn read_body<S: AsRef<str>>(ids: &[S], properties: &[&str]) -> Value {
    let inputs: Vec<Value> = ids.iter().map(|id| json!({"id": id.as_ref()})).collect();
    json!({
        "properties": properties,
        "propertiesWithHistory": [],
        "inputs": inputs,
    })
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    results: Vec<ResultRow>,
    #[serde(default)]
    errors: Vec<ErrorRow>,
}

#[derive(Deserialize)]
struct ResultRow {
    id: String,
    #[serde(default)]
    properties: Map<String, Value>,
}

#[derive(Deserialize)]
struct ErrorRow {
    #[serde(default)]
    category: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    context: HashMap<String, Vec<String>>,
}

/// Matches a 200/207 answer to `ids`, in input order.
pub fn parse_read<S: AsRef<str>>(ids: &[S], body: &[u8]) -> Result<Vec<(String, Read)>, String> {
    let answer: Answer = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut found: HashMap<String, Map<String, Value>> = answer
        .results
        .into_iter()
        .map(|r| (r.id, r.properties))
        .collect();
    let mut failed: HashMap<String, Read> = HashMap::new();
    for e in answer.errors {
        let read = if e.category == "OBJECT_NOT_FOUND" {
            Read::Missing
        } else {
            Read::NotRead(format!("{}: {}", e.category, e.message))
        };
        for id in e.context.get("ids").into_iter().flatten() {
            failed.insert(id.clone(), read.clone());
        }
    }
    Ok(ids
        .iter()
        .map(|id| {
            let id = id.as_ref();
            let read = match found.remove(id) {
                Some(p) => Read::Found(p),
                None => failed
                    .remove(id)
                    .unwrap_or_else(|| Read::NotRead("neither in results nor in errors".into())),
            };
            (id.to_string(), read)
        })
        .collect())
}

impl HubSpotClient {
    /// At most this many ids per [`HubSpotClient::read_records`] call.
    pub fn max_read(&self) -> usize {
        MAX_READ
    }

    /// The named properties of up to 100 contacts or companies, in `ids` order.
    pub async fn read_records<S: AsRef<str>>(
        &self,
        object: ObjectKind,
        ids: &[S],
        properties: &[&str],
    ) -> Result<Vec<(String, Read)>, CrmError> {
        if ids.len() > MAX_READ {
            return Err(CrmError::BatchTooLarge {
                crm: Crm::Hubspot,
                max: MAX_READ,
                got: ids.len(),
            });
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let path = read_path(request::object_type(object)?);
        let endpoint = format!("POST {path}");
        let body = read_body(ids, properties);
        let reply = self.send(Method::POST, &path, &[], Some(&body)).await?;
        if reply.status != 200 && reply.status != 207 {
            return Err(request::error_from_reply(&endpoint, &reply));
        }
        parse_read(ids, &reply.body).map_err(|message| CrmError::Decode {
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
    fn a_207_is_matched_to_inputs() {
        let body = br#"{"status":"COMPLETE","results":[{"id":"1","properties":{"email":"a@x.io"}}],
            "numErrors":2,"errors":[
              {"status":"error","category":"OBJECT_NOT_FOUND","message":"Could not get some CONTACT objects","context":{"ids":["2"]}},
              {"status":"error","category":"VALIDATION_ERROR","message":"bad","context":{"ids":["3"]}}]}"#;
        let got = parse_read(&["1", "2", "3", "4"], body).unwrap();
        let want = [
            (
                "1",
                Read::Found(
                    json!({"email":"a@x.io"})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                ),
            ),
            ("2", Read::Missing),
            ("3", Read::NotRead("VALIDATION_ERROR: bad".into())),
            (
                "4",
                Read::NotRead("neither in results nor in errors".into()),
            ),
        ];
        for ((id, read), (want_id, want_read)) in got.iter().zip(want) {
            assert_eq!((id.as_str(), read), (want_id, &want_read));
        }
    }

    #[test]
    fn body_has_every_field_the_spec_requires() {
        assert_eq!(
            read_body(&["7"], &["email"]),
            json!({"properties":["email"],"propertiesWithHistory":[],"inputs":[{"id":"7"}]})
        );
    }
}
