//! Pure Salesforce REST request building and answer parsing: no I/O here.

use allot_core::{Crm, ObjectKind};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::http::{snippet, Reply};
use crate::{CrmError, CrmUser, RecordError, RecordResult};

/// At most this many records per `composite/sobjects` call.
pub const MAX_BATCH: usize = 200;
/// The REST API version allot speaks.
pub const API_VERSION: &str = "62.0";

/// The sObject type name of an object kind.
pub fn sobject_type(object: ObjectKind) -> &'static str {
    match object {
        ObjectKind::Lead => "Lead",
        ObjectKind::Account => "Account",
        ObjectKind::Contact => "Contact",
    }
}

/// `/services/data/v62.0/composite/sobjects`
pub fn composite_path(version: &str) -> String {
    format!("/services/data/v{version}/composite/sobjects")
}

/// `/services/data/v62.0/sobjects/Lead/00Q...`
pub fn record_path(version: &str, object: ObjectKind, id: &str) -> String {
    format!(
        "/services/data/v{version}/sobjects/{}/{id}",
        sobject_type(object)
    )
}

/// `/services/data/v62.0/query`
pub fn query_path(version: &str) -> String {
    format!("/services/data/v{version}/query")
}

/// The SOQL that lists users and whether they are active.
pub const USERS_SOQL: &str = "SELECT Id,IsActive FROM User";

/// The body of a composite owner update: `allOrNone` false, one entry per record.
pub fn owner_update_body<I: AsRef<str>, O: AsRef<str>>(
    object: ObjectKind,
    updates: &[(I, O)],
) -> Value {
    let records: Vec<Value> = updates
        .iter()
        .map(|(id, owner)| {
            json!({
                "attributes": {"type": sobject_type(object)},
                "id": id.as_ref(),
                "OwnerId": owner.as_ref(),
            })
        })
        .collect();
    json!({"allOrNone": false, "records": records})
}

/// `Sforce-Limit-Info: api-usage=10018/100000` → `(10018, 100000)`. Other
/// entries (`per-app-api-usage=...`) are skipped.
pub fn parse_limit_info(header: &str) -> Option<(u64, u64)> {
    header.split([';', ',']).find_map(|part| {
        let rest = part.trim().strip_prefix("api-usage=")?;
        let (used, max) = rest.split_once('/')?;
        Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
    })
}

#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default, alias = "statusCode")]
    #[serde(rename = "errorCode")]
    error_code: String,
    #[serde(default)]
    message: String,
}

/// The first `{errorCode, message}` of a Salesforce error array, if the body is one.
pub fn parse_error_array(body: &[u8]) -> Option<(String, String)> {
    let errors: Vec<ApiError> = serde_json::from_slice(body).ok()?;
    let first = errors.into_iter().next()?;
    Some((first.error_code, first.message))
}

/// The error for a non-success answer at `endpoint`.
pub(crate) fn error_from_reply(endpoint: &str, reply: &Reply) -> CrmError {
    let (code, message) =
        parse_error_array(&reply.body).unwrap_or_else(|| (String::new(), reply.body_snippet()));
    let crm = Crm::Salesforce;
    let endpoint = endpoint.to_string();
    match reply.status {
        403 if code == "REQUEST_LIMIT_EXCEEDED" => CrmError::QuotaExhausted {
            crm,
            endpoint,
            message,
        },
        401 => CrmError::Auth {
            crm,
            endpoint,
            status: Some(401),
            message: format!("{code}: {message}"),
        },
        429 => CrmError::RateLimited {
            crm,
            endpoint,
            policy: if code.is_empty() {
                "HTTP_429".into()
            } else {
                code
            },
            retry_after: reply.retry_after(),
            message,
        },
        status => CrmError::Api {
            crm,
            endpoint,
            status,
            code,
            message,
            retry_after: reply.retry_after(),
        },
    }
}

/// Whether a 401 answer says the session is gone (get a new token, retry once).
pub(crate) fn is_invalid_session(reply: &Reply) -> bool {
    reply.status == 401
        && parse_error_array(&reply.body).is_none_or(|(code, _)| code == "INVALID_SESSION_ID")
}

#[derive(Debug, Deserialize)]
struct SaveResult {
    #[serde(default)]
    id: Option<String>,
    success: bool,
    #[serde(default)]
    errors: Vec<SaveError>,
}

#[derive(Debug, Deserialize)]
struct SaveError {
    #[serde(default, rename = "statusCode")]
    status_code: String,
    #[serde(default)]
    message: String,
}

/// Reads the ordered `[{id, success, errors}]` answer of a composite update.
/// Results are matched to `ids` by position (failed entries carry no id).
pub fn parse_save_results(ids: &[&str], body: &[u8]) -> Result<Vec<RecordResult>, String> {
    let results: Vec<SaveResult> =
        serde_json::from_slice(body).map_err(|e| format!("{e} in {}", snippet(body)))?;
    if results.len() != ids.len() {
        return Err(format!(
            "{} results for {} records",
            results.len(),
            ids.len()
        ));
    }
    Ok(ids
        .iter()
        .zip(results)
        .map(|(id, r)| {
            let id = r.id.as_deref().filter(|_| r.success).unwrap_or(id);
            if r.success {
                return RecordResult::success(id);
            }
            let error = r.errors.into_iter().next().map_or_else(
                || RecordError::from_code("UNKNOWN", "failed without an error"),
                |e| RecordError::from_code(&e.status_code, &e.message),
            );
            RecordResult::failure(id, error)
        })
        .collect())
}

/// One page of a SOQL query answer.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPage {
    pub records: Vec<Map<String, Value>>,
    /// Path of the next page (`nextRecordsUrl`), absent on the last page.
    pub next: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryBody {
    #[serde(default)]
    records: Vec<Map<String, Value>>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    next_records_url: Option<String>,
}

/// Reads `{"totalSize","done","nextRecordsUrl","records":[...]}`.
pub fn parse_query_page(body: &[u8]) -> Result<QueryPage, String> {
    let b: QueryBody = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let next = if b.done { None } else { b.next_records_url };
    Ok(QueryPage {
        records: b.records,
        next,
    })
}

/// Users from `SELECT Id,IsActive FROM User` records (extra fields are kept
/// when present: `Name`, `Email`).
pub fn users_from_records(records: &[Map<String, Value>]) -> Vec<CrmUser> {
    records
        .iter()
        .filter_map(|r| {
            let text = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
            Some(CrmUser {
                id: text("Id")?,
                active: r.get("IsActive").and_then(Value::as_bool).unwrap_or(false),
                email: text("Email"),
                name: text("Name"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: Default::default(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn limit_info_is_parsed() {
        let cases = [
            ("api-usage=10018/100000", Some((10018, 100000))),
            (
                "api-usage=25/5000; per-app-api-usage=17/250(appName=sample-app)",
                Some((25, 5000)),
            ),
            ("per-app-api-usage=17/250(appName=x)", None),
            ("api-usage=abc/5", None),
            ("", None),
        ];
        for (header, want) in cases {
            assert_eq!(parse_limit_info(header), want, "{header}");
        }
    }

    #[test]
    fn owner_update_body_matches_the_composite_shape() {
        let body = owner_update_body(ObjectKind::Lead, &[("00Q1", "0051"), ("00Q2", "0052")]);
        let want = json!({"allOrNone": false, "records": [
            {"attributes": {"type": "Lead"}, "id": "00Q1", "OwnerId": "0051"},
            {"attributes": {"type": "Lead"}, "id": "00Q2", "OwnerId": "0052"},
        ]});
        assert_eq!(body, want);
        assert_eq!(
            composite_path(API_VERSION),
            "/services/data/v62.0/composite/sobjects"
        );
        assert_eq!(
            record_path(API_VERSION, ObjectKind::Account, "001x"),
            "/services/data/v62.0/sobjects/Account/001x"
        );
    }

    #[test]
    fn documented_save_results_are_matched_by_position() {
        // From the composite sObject collections documentation: failed entries carry no id.
        let body = r#"[
           {"id":"00Q5f000005bwLFEAY","success":true,"errors":[]},
           {"success":false,"errors":[{"statusCode":"INACTIVE_OWNER_OR_USER","message":"operation performed with inactive user [0055f000001BBBBAA2] as owner of lead","fields":[]}]},
           {"success":false,"errors":[{"statusCode":"INVALID_CROSS_REFERENCE_KEY","message":"invalid cross reference id","fields":["OwnerId"]}]},
           {"success":false,"errors":[{"statusCode":"UNABLE_TO_LOCK_ROW","message":"unable to obtain exclusive access to this record","fields":[]}]}
        ]"#;
        let ids = ["00Q5f000005bwLFEAY", "00Q2", "00Q3", "00Q4"];
        let got = parse_save_results(&ids, body.as_bytes()).unwrap();
        let summary: Vec<(&str, bool, Option<&str>, Option<bool>)> = got
            .iter()
            .map(|r| {
                let e = r.error.as_ref();
                (
                    r.id.as_str(),
                    r.ok,
                    e.map(|e| e.code.as_str()),
                    e.map(|e| e.retryable),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("00Q5f000005bwLFEAY", true, None, None),
                ("00Q2", false, Some("INACTIVE_OWNER_OR_USER"), Some(false)),
                (
                    "00Q3",
                    false,
                    Some("INVALID_CROSS_REFERENCE_KEY"),
                    Some(false)
                ),
                ("00Q4", false, Some("UNABLE_TO_LOCK_ROW"), Some(true)),
            ]
        );
        assert!(got[1].error.as_ref().unwrap().is_inactive_owner());
        assert!(parse_save_results(&["a"], b"[]").is_err());
        assert!(parse_save_results(&["a"], b"{}").is_err());
    }

    #[test]
    fn error_answers_map_to_variants() {
        let cases: [(u16, &str, &str); 6] = [
            (
                403,
                r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#,
                "quota",
            ),
            (
                400,
                r#"[{"message":"record limit reached. cannot submit more than 200 records into this call","errorCode":"EXCEEDED_ID_LIMIT"}]"#,
                "api:EXCEEDED_ID_LIMIT",
            ),
            (
                401,
                r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
                "auth",
            ),
            (
                503,
                r#"[{"message":"Server unavailable","errorCode":"SERVER_UNAVAILABLE"}]"#,
                "api:SERVER_UNAVAILABLE",
            ),
            (
                429,
                r#"[{"message":"slow down","errorCode":"TOO_MANY_REQUESTS"}]"#,
                "limited",
            ),
            (502, "<html>bad gateway</html>", "api:"),
        ];
        for (status, body, want) in cases {
            let got = match error_from_reply("PATCH /x", &reply(status, body)) {
                CrmError::QuotaExhausted { .. } => "quota".to_string(),
                CrmError::Auth { .. } => "auth".to_string(),
                CrmError::RateLimited { .. } => "limited".to_string(),
                CrmError::Api { code, .. } => format!("api:{code}"),
                other => format!("{other:?}"),
            };
            assert_eq!(got, want, "{status} {body}");
        }
    }

    #[test]
    fn invalid_session_is_recognised() {
        let cases = [
            (
                401,
                r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
                true,
            ),
            (401, "", true),
            (
                401,
                r#"[{"message":"x","errorCode":"INVALID_AUTH_HEADER"}]"#,
                false,
            ),
            (
                403,
                r#"[{"message":"x","errorCode":"INVALID_SESSION_ID"}]"#,
                false,
            ),
        ];
        for (status, body, want) in cases {
            assert_eq!(
                is_invalid_session(&reply(status, body)),
                want,
                "{status} {body}"
            );
        }
    }

    #[test]
    fn query_pages_and_users_are_read() {
        let body = r#"{"totalSize":3,"done":false,"nextRecordsUrl":"/services/data/v62.0/query/01gD0000002HU6KIAW-2000",
          "records":[{"attributes":{"type":"User","url":"/services/data/v62.0/sobjects/User/0055f000001AAAAAA2"},"Id":"0055f000001AAAAAA2","IsActive":true},
                     {"attributes":{"type":"User","url":"/services/data/v62.0/sobjects/User/0055f000001BBBBAA2"},"Id":"0055f000001BBBBAA2","IsActive":false}]}"#;
        let page = parse_query_page(body.as_bytes()).unwrap();
        assert_eq!(
            page.next.as_deref(),
            Some("/services/data/v62.0/query/01gD0000002HU6KIAW-2000")
        );
        let users = users_from_records(&page.records);
        let got: Vec<(&str, bool)> = users.iter().map(|u| (u.id.as_str(), u.active)).collect();
        assert_eq!(
            got,
            vec![("0055f000001AAAAAA2", true), ("0055f000001BBBBAA2", false)]
        );

        let last = parse_query_page(br#"{"totalSize":0,"done":true,"records":[]}"#).unwrap();
        assert_eq!(last.next, None);
    }
}
