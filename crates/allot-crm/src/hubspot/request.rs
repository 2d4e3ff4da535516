//! Pure HubSpot CRM v3 request building and answer parsing: no I/O here.

use std::collections::HashMap;

use allot_core::{Crm, ObjectKind};
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::http::{header_u64, snippet, Reply};
use crate::{CrmError, RecordError, RecordResult};

/// At most this many inputs per batch call.
pub const MAX_BATCH: usize = 100;
/// The owner property of contacts and companies.
pub const OWNER_PROPERTY: &str = "hubspot_owner_id";
/// Owners endpoint.
pub const OWNERS_PATH: &str = "/crm/v3/owners";

/// The CRM v3 object type of an object kind (`contacts`, `companies`).
pub fn object_type(object: ObjectKind) -> Result<&'static str, CrmError> {
    match object {
        ObjectKind::Contact => Ok("contacts"),
        ObjectKind::Account => Ok("companies"),
        ObjectKind::Lead => Err(CrmError::UnsupportedObject {
            crm: Crm::Hubspot,
            object,
        }),
    }
}

/// `/crm/v3/objects/contacts/batch/update`
pub fn batch_update_path(object_type: &str) -> String {
    format!("/crm/v3/objects/{object_type}/batch/update")
}

/// `/crm/v3/objects/contacts/{id}`
pub fn record_path(object_type: &str, id: &str) -> String {
    format!("/crm/v3/objects/{object_type}/{id}")
}

/// `{"inputs":[{"id":..,"properties":{"hubspot_owner_id":..}}]}`
pub fn owner_update_body<I: AsRef<str>, O: AsRef<str>>(updates: &[(I, O)]) -> Value {
    let inputs: Vec<Value> = updates
        .iter()
        .map(|(id, owner)| json!({"id": id.as_ref(), "properties": {OWNER_PROPERTY: owner.as_ref()}}))
        .collect();
    json!({ "inputs": inputs })
}

/// The rate-limit headers HubSpot sends with every authenticated answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubSpotRateLimit {
    /// `X-HubSpot-RateLimit-Max`: calls allowed per interval.
    pub max: u64,
    /// `X-HubSpot-RateLimit-Remaining`: calls left in the current interval.
    pub remaining: u64,
    /// `X-HubSpot-RateLimit-Interval-Milliseconds` (10000 when absent).
    pub interval_ms: u64,
    /// `X-HubSpot-RateLimit-Daily`, when sent.
    pub daily: Option<u64>,
    /// `X-HubSpot-RateLimit-Daily-Remaining`, when sent.
    pub daily_remaining: Option<u64>,
}

/// Reads the rate-limit headers; `None` unless both max and remaining are there.
pub fn parse_rate_limit(headers: &HeaderMap) -> Option<HubSpotRateLimit> {
    Some(HubSpotRateLimit {
        max: header_u64(headers, "x-hubspot-ratelimit-max")?,
        remaining: header_u64(headers, "x-hubspot-ratelimit-remaining")?,
        interval_ms: header_u64(headers, "x-hubspot-ratelimit-interval-milliseconds")
            .unwrap_or(10_000),
        daily: header_u64(headers, "x-hubspot-ratelimit-daily"),
        daily_remaining: header_u64(headers, "x-hubspot-ratelimit-daily-remaining"),
    })
}

/// HubSpot's error body (standard errors, and the 429 shape).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    policy_name: String,
    #[serde(default)]
    error_type: String,
    #[serde(default)]
    errors: Vec<ErrorDetail>,
    #[serde(default)]
    context: HashMap<String, Value>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: String,
}

impl ErrorBody {
    /// The most specific code: a detail's `code`, else the `category`.
    fn code(&self) -> &str {
        self.errors
            .iter()
            .map(|d| d.code.as_str())
            .find(|c| !c.is_empty())
            .unwrap_or(&self.category)
    }

    /// The ids the error names: `context.ids`, `context.id`, or `id`.
    fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = ["ids", "id"]
            .iter()
            .filter_map(|k| self.context.get(*k))
            .flat_map(|v| match v {
                Value::Array(items) => items.iter().filter_map(id_text).collect(),
                other => id_text(other).into_iter().collect::<Vec<_>>(),
            })
            .collect();
        ids.extend(self.id.clone());
        ids
    }

    fn record_error(&self) -> RecordError {
        let message = self
            .errors
            .iter()
            .map(|d| d.message.as_str())
            .find(|m| !m.is_empty())
            .unwrap_or(&self.message);
        RecordError::from_code(self.code(), message)
    }
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The error for a non-success answer at `endpoint`.
pub(crate) fn error_from_reply(endpoint: &str, reply: &Reply) -> CrmError {
    let body: ErrorBody = serde_json::from_slice(&reply.body).unwrap_or_else(|_| ErrorBody {
        message: reply.body_snippet(),
        ..ErrorBody::default()
    });
    let endpoint = endpoint.to_string();
    if reply.status == 429 {
        let policy = if body.policy_name.is_empty() {
            "UNKNOWN".to_string()
        } else {
            body.policy_name
        };
        return CrmError::RateLimited {
            crm: Crm::Hubspot,
            endpoint,
            policy,
            retry_after: reply.retry_after(),
            message: body.message,
        };
    }
    if reply.status == 401 || reply.status == 403 {
        return CrmError::Auth {
            crm: Crm::Hubspot,
            endpoint,
            status: Some(reply.status),
            message: format!("{}: {}", body.category, body.message),
        };
    }
    let code = if body.error_type.is_empty() {
        body.code().to_string()
    } else {
        body.error_type.clone()
    };
    CrmError::Api {
        crm: Crm::Hubspot,
        endpoint,
        status: reply.status,
        code,
        message: body.message,
        retry_after: reply.retry_after(),
    }
}

#[derive(Deserialize)]
struct BatchBody {
    #[serde(default)]
    results: Vec<BatchResult>,
    #[serde(default)]
    errors: Vec<ErrorBody>,
}

#[derive(Deserialize)]
struct BatchResult {
    id: Value,
}

/// What a batch update answer says about one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Among `results`: updated.
    Written,
    /// Named by an error (or covered by an error that names no id).
    Failed(RecordError),
    /// In neither `results` nor `errors` of a 207: the answer does not say
    /// whether the update landed, so a read has to tell.
    Unanswered,
}

/// Reads a batch update answer (200 or 207) into per-input outcomes, in input order.
///
/// 200: every input was updated. 207: an input succeeded when its id is among
/// `results[].id`; a failed input takes the error whose `context.ids` (or
/// `context.id`, or `id`) names it, else the first error that names no id;
/// an input none of these cover is [`BatchOutcome::Unanswered`].
pub fn parse_batch_answer(
    ids: &[&str],
    status: u16,
    body: &[u8],
) -> Result<Vec<BatchOutcome>, String> {
    let b: BatchBody =
        serde_json::from_slice(body).map_err(|e| format!("{e} in {}", snippet(body)))?;
    if status == 200 {
        return Ok(ids.iter().map(|_| BatchOutcome::Written).collect());
    }
    let succeeded: Vec<String> = b.results.iter().filter_map(|r| id_text(&r.id)).collect();
    let mut by_id: HashMap<String, RecordError> = HashMap::new();
    let mut unattributed = None;
    for e in &b.errors {
        let named = e.ids();
        if named.is_empty() && unattributed.is_none() {
            unattributed = Some(e.record_error());
        }
        for id in named {
            by_id.entry(id).or_insert_with(|| e.record_error());
        }
    }
    Ok(ids
        .iter()
        .map(|id| {
            if let Some(error) = by_id.get(*id) {
                return BatchOutcome::Failed(error.clone());
            }
            if succeeded.iter().any(|s| s == id) {
                return BatchOutcome::Written;
            }
            unattributed
                .clone()
                .map_or(BatchOutcome::Unanswered, BatchOutcome::Failed)
        })
        .collect())
}

/// Reads a batch update answer into per-input results, in input order, with
/// no read behind it: an input the answer leaves out is a failure coded
/// `UNKNOWN` (see [`parse_batch_answer`]; the client confirms those by a read).
pub fn parse_batch_reply(
    ids: &[&str],
    status: u16,
    body: &[u8],
) -> Result<Vec<RecordResult>, String> {
    Ok(parse_batch_answer(ids, status, body)?
        .into_iter()
        .zip(ids)
        .map(|(outcome, id)| match outcome {
            BatchOutcome::Written => RecordResult::success(id),
            BatchOutcome::Failed(error) => RecordResult::failure(id, error),
            BatchOutcome::Unanswered => RecordResult::failure(
                id,
                RecordError::from_code("UNKNOWN", "neither in results nor in errors"),
            ),
        })
        .collect())
}

/// The code of an input a 207 left out and a read did not show written.
pub const UNANSWERED: &str = "UNANSWERED";

/// Settles an input a 207 left out of both `results` and `errors`, given what
/// a read of the record found: written when it already has `owner`; gone
/// (`OBJECT_NOT_FOUND`, permanent) when the read says it does not exist;
/// otherwise a retryable [`UNANSWERED`] failure, so the update is sent again.
pub fn confirm_unanswered(id: &str, owner: &str, read: Option<&crate::RecordRead>) -> RecordResult {
    use crate::{RecordErrorKind, RecordRead};
    let retry = |why: String| {
        RecordResult::failure(
            id,
            RecordError {
                code: UNANSWERED.into(),
                message: format!("left out of the 207's results and errors, and {why}"),
                retryable: true,
                kind: RecordErrorKind::Transient,
            },
        )
    };
    match read {
        Some(RecordRead::Found(props)) => {
            let now = props.get(OWNER_PROPERTY).and_then(id_text);
            if now.as_deref() == Some(owner) {
                RecordResult::success(id)
            } else {
                retry(format!(
                    "a read shows {OWNER_PROPERTY} {now:?}, not {owner:?}"
                ))
            }
        }
        Some(RecordRead::Missing) => RecordResult::failure(
            id,
            RecordError::from_code(
                "OBJECT_NOT_FOUND",
                "left out of the 207's results and errors, and a read says it does not exist",
            ),
        ),
        Some(RecordRead::NotRead(why)) => retry(format!("the read did not answer for it: {why}")),
        None => retry("it could not be read back".into()),
    }
}

/// The `properties` of a `GET /crm/v3/objects/{type}/{id}` answer.
pub fn parse_record(body: &[u8]) -> Result<Map<String, Value>, String> {
    #[derive(Deserialize)]
    struct RecordBody {
        #[serde(default)]
        properties: Map<String, Value>,
    }
    serde_json::from_slice::<RecordBody>(body)
        .map(|r| r.properties)
        .map_err(|e| e.to_string())
}

/// A HubSpot owner: a user who can own records. `id` is what `hubspot_owner_id` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubSpotOwner {
    pub id: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    /// The HubSpot user behind the owner (not what records hold).
    #[serde(default)]
    pub user_id: Option<i64>,
    #[serde(default)]
    pub archived: bool,
}

/// One page of owners and the cursor of the next page.
pub fn parse_owners_page(body: &[u8]) -> Result<(Vec<HubSpotOwner>, Option<String>), String> {
    #[derive(Deserialize)]
    struct Page {
        #[serde(default)]
        results: Vec<HubSpotOwner>,
        #[serde(default)]
        paging: Option<Value>,
    }
    let page: Page = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let after = page
        .paging
        .as_ref()
        .and_then(|p| p.pointer("/next/after"))
        .and_then(id_text);
    Ok((page.results, after))
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
