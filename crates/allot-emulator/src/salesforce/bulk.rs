//! Bulk API 2.0 query jobs over the book:
//! `POST /services/data/vXX.X/jobs/query` creates a job for a SOQL query over
//! Lead, Account or Contact; `GET .../jobs/query/{id}` reports its state
//! (`UploadComplete` → `InProgress` on the first poll → `JobComplete` or
//! `Failed` on the next); `PATCH .../jobs/query/{id}` with
//! `{"state":"Aborted"}` aborts it; `GET .../jobs/query/{id}/results
//! ?maxRecords=N&locator=L` pages the rows as CSV with `Sforce-NumberOfRecords`
//! and `Sforce-Locator` (`null` on the last page). Results are only served
//! at the API version the job was created with (409 otherwise).
//!
//! The rows are a snapshot taken when the job completes: records changed
//! afterwards do not move between pages.

use std::collections::HashMap;
use std::sync::Arc;

use allot_core::Crm;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::book::{self, BookQuery};
use super::{error, gate, reply};
use crate::events::{iso_millis, sf_new_id};
use crate::state::{now_ms, State};
use crate::Shared;

/// Rows per results page when `maxRecords` is absent.
pub(crate) const DEFAULT_MAX_RECORDS: usize = 50_000;
/// The most rows one results page holds, whatever `maxRecords` asks.
pub(crate) const MAX_RECORDS_CAP: usize = 100_000;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobState {
    UploadComplete,
    InProgress,
    JobComplete,
    Failed,
    Aborted,
}

impl JobState {
    fn name(self) -> &'static str {
        match self {
            JobState::UploadComplete => "UploadComplete",
            JobState::InProgress => "InProgress",
            JobState::JobComplete => "JobComplete",
            JobState::Failed => "Failed",
            JobState::Aborted => "Aborted",
        }
    }

    fn finished(self) -> bool {
        matches!(
            self,
            JobState::JobComplete | JobState::Failed | JobState::Aborted
        )
    }
}

/// One query job.
#[derive(Debug, Clone)]
pub(crate) struct BulkJob {
    pub id: String,
    /// `query` or `queryAll`.
    pub operation: String,
    /// The sObject named after `FROM` (as written).
    pub object: String,
    pub created_by: String,
    pub created: String,
    pub modstamp: String,
    /// API version without the `v`, as the job was created with.
    pub api_version: String,
    pub state: JobState,
    /// The parsed query and its explicit `LIMIT`, or why it cannot run.
    pub query: Result<(BookQuery, Option<usize>), String>,
    /// The CSV columns: the fields of the query as written.
    pub columns: Vec<String>,
    /// The rows, snapshotted at completion; `None` is a null cell.
    pub rows: Vec<Vec<Option<String>>>,
    pub error_message: Option<String>,
}

impl BulkJob {
    fn info(&self) -> Value {
        let mut info = json!({
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": self.created_by,
            "createdDate": self.created,
            "systemModstamp": self.modstamp,
            "state": self.state.name(),
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": self.api_version.parse::<f64>().unwrap_or_default(),
            "jobType": "V2Query",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        });
        if self.state == JobState::JobComplete {
            info["numberRecordsProcessed"] = json!(self.rows.len());
            info["retries"] = json!(0);
            info["totalProcessingTime"] = json!(0);
        }
        if let Some(message) = &self.error_message {
            info["errorMessage"] = json!(message);
        }
        info
    }

    /// One poll: the first moves a new job to `InProgress`, the next finishes it.
    fn advance(&mut self, st: &State) {
        match self.state {
            JobState::UploadComplete => self.state = JobState::InProgress,
            JobState::InProgress => self.finish(st),
            _ => {}
        }
        self.modstamp = salesforce_time(now_ms());
    }

    fn finish(&mut self, st: &State) {
        match &self.query {
            Ok((query, limit)) => {
                self.rows = book::matching(st, query)
                    .take(limit.unwrap_or(usize::MAX))
                    .map(|(id, record)| {
                        self.columns
                            .iter()
                            .map(|c| {
                                if c.eq_ignore_ascii_case("Id") {
                                    Some(id.clone())
                                } else {
                                    cell(record.get(c))
                                }
                            })
                            .collect()
                    })
                    .collect();
                self.state = JobState::JobComplete;
            }
            Err(message) => {
                self.error_message = Some(message.clone());
                self.state = JobState::Failed;
            }
        }
    }
}

/// A record field as a CSV cell: strings as they are, numbers and booleans
/// in their JSON form, null and absent fields empty.
fn cell(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// `2026-12-03T10:00:00.000+0000`, the form job infos carry.
fn salesforce_time(ms: i64) -> String {
    let iso = iso_millis(ms);
    match iso.strip_suffix('Z') {
        Some(base) => format!("{base}+0000"),
        None => iso,
    }
}

/// An explicit trailing `LIMIT n`, which bulk queries honour without the
/// REST page cap.
fn explicit_limit(q: &str) -> Option<usize> {
    let words: Vec<&str> = q.split_whitespace().collect();
    match words.as_slice() {
        [.., limit, n] if limit.eq_ignore_ascii_case("limit") => n.parse().ok(),
        _ => None,
    }
}

/// The query a job runs, or the message it fails with.
fn plan(q: &str) -> (String, Result<(BookQuery, Option<usize>), String>) {
    let words: Vec<&str> = q.split_whitespace().collect();
    let object = words
        .iter()
        .position(|w| w.eq_ignore_ascii_case("from"))
        .and_then(|i| words.get(i + 1))
        .map(|w| w.to_string())
        .unwrap_or_default();
    let query = match book::parse(q) {
        Some(Ok(query)) if query.fields.is_empty() => {
            Err(format!("MALFORMED_QUERY: no fields selected in: {q}"))
        }
        Some(Ok(query)) => Ok((query, explicit_limit(q))),
        Some(Err((code, message))) => Err(format!("{code}: {message}")),
        None if object.is_empty() => Err(format!("MALFORMED_QUERY: unexpected token in: {q}")),
        None => Err(format!(
            "INVALID_TYPE: sObject type '{object}' is not supported."
        )),
    };
    (object, query)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    #[serde(default)]
    operation: String,
    #[serde(default)]
    query: String,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    column_delimiter: Option<String>,
    #[serde(default)]
    line_ending: Option<String>,
}

fn bad_request(st: &State, shared: &Shared, code: &str, message: &str) -> Response {
    error(st, shared, StatusCode::BAD_REQUEST, code, message, &[])
}

fn not_found(st: &State, shared: &Shared, job: &str) -> Response {
    let message = format!("Job with id '{job}' not found");
    error(
        st,
        shared,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        &message,
        &[],
    )
}

pub(crate) async fn create(
    AxState(shared): AxState<Arc<Shared>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.delay().await;
    let mut st = shared.lock();
    let path = format!("/services/data/{version}/jobs/query");
    let ctx = match gate(
        &mut st,
        &shared,
        "sf.bulk.create",
        "POST",
        &path,
        &version,
        &headers,
    ) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let parsed = serde_json::from_slice::<Value>(&body).and_then(|v| {
        if v.is_object() {
            serde_json::from_value::<CreateBody>(v)
        } else {
            Err(serde::de::Error::custom("expected a JSON object"))
        }
    });
    let create = match parsed {
        Ok(b) => b,
        Err(e) => {
            let message = format!("Json Deserialization failed: {e}");
            return bad_request(&st, &shared, "JSON_PARSER_ERROR", &message);
        }
    };
    if !matches!(create.operation.as_str(), "query" | "queryAll") {
        let message = format!(
            "Invalid operation '{}': query jobs take 'query' or 'queryAll'",
            create.operation
        );
        return bad_request(&st, &shared, "INVALIDJOB", &message);
    }
    if create.query.trim().is_empty() {
        return bad_request(&st, &shared, "INVALIDJOB", "A query job needs a query");
    }
    let settings = [
        ("contentType", create.content_type.as_deref(), "CSV"),
        (
            "columnDelimiter",
            create.column_delimiter.as_deref(),
            "COMMA",
        ),
        ("lineEnding", create.line_ending.as_deref(), "LF"),
    ];
    for (name, value, supported) in settings {
        if let Some(v) = value.filter(|v| *v != supported) {
            let message = format!("{name} '{v}' is not supported here; only {supported} is");
            return bad_request(&st, &shared, "INVALIDJOB", &message);
        }
    }
    let (object, query) = plan(&create.query);
    let columns = match &query {
        Ok((q, _)) => q.fields.clone(),
        Err(_) => Vec::new(),
    };
    let n = st.next();
    let created = salesforce_time(now_ms());
    let job = BulkJob {
        id: sf_new_id("750", n),
        operation: create.operation,
        object,
        created_by: ctx.session.user_id.clone(),
        created: created.clone(),
        modstamp: created,
        api_version: ctx.version.clone(),
        state: JobState::UploadComplete,
        query,
        columns,
        rows: Vec::new(),
        error_message: None,
    };
    let info = job.info();
    st.bulk_jobs.insert(job.id.clone(), job);
    reply(&st, &shared, StatusCode::OK, Some(info))
}

pub(crate) async fn job(
    AxState(shared): AxState<Arc<Shared>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    shared.delay().await;
    let mut st = shared.lock();
    let path = format!("/services/data/{version}/jobs/query/{id}");
    if let Err(r) = gate(
        &mut st,
        &shared,
        "sf.bulk.job",
        "GET",
        &path,
        &version,
        &headers,
    ) {
        return *r;
    }
    let Some(mut job) = st.bulk_jobs.remove(&id) else {
        return not_found(&st, &shared, &id);
    };
    job.advance(&st);
    let info = job.info();
    st.bulk_jobs.insert(id, job);
    reply(&st, &shared, StatusCode::OK, Some(info))
}

#[derive(Deserialize)]
struct StateBody {
    state: String,
}

pub(crate) async fn abort(
    AxState(shared): AxState<Arc<Shared>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.delay().await;
    let mut st = shared.lock();
    let path = format!("/services/data/{version}/jobs/query/{id}");
    if let Err(r) = gate(
        &mut st,
        &shared,
        "sf.bulk.abort",
        "PATCH",
        &path,
        &version,
        &headers,
    ) {
        return *r;
    }
    let wanted = match serde_json::from_slice::<StateBody>(&body) {
        Ok(b) => b.state,
        Err(e) => {
            let message = format!("Json Deserialization failed: {e}");
            return bad_request(&st, &shared, "JSON_PARSER_ERROR", &message);
        }
    };
    if wanted != "Aborted" {
        let message = format!("A query job can only be set to 'Aborted', not '{wanted}'");
        return bad_request(&st, &shared, "INVALIDJOB", &message);
    }
    let Some(job) = st.bulk_jobs.get_mut(&id) else {
        return not_found(&st, &shared, &id);
    };
    if job.state.finished() {
        let message = format!(
            "Job {id} is {} and can no longer be aborted",
            job.state.name()
        );
        return bad_request(&st, &shared, "INVALIDJOB", &message);
    }
    job.state = JobState::Aborted;
    job.modstamp = salesforce_time(now_ms());
    let info = job.info();
    reply(&st, &shared, StatusCode::OK, Some(info))
}

/// `maxRecords`: absent → the default, capped; zero or not a number is refused.
fn max_records(raw: Option<&String>) -> Result<usize, String> {
    match raw {
        None => Ok(DEFAULT_MAX_RECORDS),
        Some(v) => match v.parse::<usize>() {
            Ok(0) | Err(_) => Err(format!(
                "maxRecords must be a positive whole number, got '{v}'"
            )),
            Ok(n) => Ok(n.min(MAX_RECORDS_CAP)),
        },
    }
}

/// The opaque locator of the page starting at row `offset`.
pub(crate) fn locator(offset: usize) -> String {
    STANDARD_NO_PAD.encode(offset.to_string())
}

fn locator_offset(locator: &str) -> Option<usize> {
    let bytes = STANDARD_NO_PAD.decode(locator).ok()?;
    String::from_utf8(bytes).ok()?.parse().ok()
}

/// One CSV row as Salesforce writes it: every value quoted (quotes doubled,
/// RFC 4180), a null cell left empty, LF at the end.
fn push_row<'a>(out: &mut String, cells: impl Iterator<Item = Option<&'a str>>) {
    for (i, c) in cells.enumerate() {
        if i > 0 {
            out.push(',');
        }
        if let Some(field) = c {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        }
    }
    out.push('\n');
}

pub(crate) async fn results(
    AxState(shared): AxState<Arc<Shared>>,
    Path((version, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    shared.delay().await;
    let mut st = shared.lock();
    let path = format!("/services/data/{version}/jobs/query/{id}/results");
    let ctx = match gate(
        &mut st,
        &shared,
        "sf.bulk.results",
        "GET",
        &path,
        &version,
        &headers,
    ) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Some(job) = st.bulk_jobs.get(&id) else {
        return not_found(&st, &shared, &id);
    };
    if job.api_version != ctx.version {
        let message = format!(
            "Job {id} was created with API version {}; fetch its results with that version, not {}",
            job.api_version, ctx.version
        );
        return error(
            &st,
            &shared,
            StatusCode::CONFLICT,
            "API_VERSION_MISMATCH",
            &message,
            &[],
        );
    }
    if job.state != JobState::JobComplete {
        let message = format!(
            "Job {id} is {}; results are available once it is JobComplete",
            job.state.name()
        );
        return bad_request(&st, &shared, "INVALIDJOB", &message);
    }
    let size = match max_records(params.get("maxRecords")) {
        Ok(n) => n,
        Err(message) => return bad_request(&st, &shared, "INVALID_QUERY_PARAMETER", &message),
    };
    let offset = match params.get("locator") {
        None => 0,
        Some(l) => match locator_offset(l).filter(|o| *o <= job.rows.len()) {
            Some(o) => o,
            None => {
                let message = format!("Invalid locator '{l}' for job {id}");
                return bad_request(&st, &shared, "INVALID_LOCATOR", &message);
            }
        },
    };
    let mut csv = String::new();
    push_row(&mut csv, job.columns.iter().map(|c| Some(c.as_str())));
    let end = offset.saturating_add(size).min(job.rows.len());
    for row in &job.rows[offset..end] {
        push_row(&mut csv, row.iter().map(Option::as_deref));
    }
    let next = if end < job.rows.len() {
        locator(end)
    } else {
        "null".to_string()
    };
    let count = end - offset;
    st.rec.read(Crm::Salesforce, count);
    let (mut parts, _) = reply(&st, &shared, StatusCode::OK, None).into_parts();
    let h = &mut parts.headers;
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=UTF-8"),
    );
    h.insert("sforce-numberofrecords", HeaderValue::from(count));
    if let Ok(v) = HeaderValue::from_str(&next) {
        h.insert("sforce-locator", v);
    }
    Response::from_parts(parts, Body::from(csv))
}

#[cfg(test)]
#[path = "bulk_tests.rs"]
mod tests;
