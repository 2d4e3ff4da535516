//! The Salesforce side: OAuth token endpoint, sObject reads and writes,
//! composite owner updates, the users query. Every API answer carries
//! `Sforce-Limit-Info`; the daily quota answers 403 `REQUEST_LIMIT_EXCEEDED`.

mod book;
pub(crate) mod bulk;
mod query;
mod read;
mod records;
mod token;

use std::sync::Arc;
use std::time::Instant;

use allot_core::{Crm, ObjectKind};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::faults::Injected;
use crate::state::{SfSession, State};
use crate::stats::ReceivedRequest;
use crate::Shared;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/services/oauth2/token", post(token::token))
        .route(
            "/services/data/{version}/sobjects/{sobject}/{id}",
            get(records::get_record).patch(records::patch_record),
        )
        .route(
            "/services/data/{version}/composite/sobjects",
            patch(records::composite),
        )
        .route(
            "/services/data/{version}/composite/sobjects/{sobject}",
            post(read::read_many),
        )
        .route("/services/data/{version}/query", get(query::query))
        .route(
            "/services/data/{version}/query/{locator}",
            get(query::query_more),
        )
        .route("/services/data/{version}/jobs/query", post(bulk::create))
        .route(
            "/services/data/{version}/jobs/query/{id}",
            get(bulk::job).patch(bulk::abort),
        )
        .route(
            "/services/data/{version}/jobs/query/{id}/results",
            get(bulk::results),
        )
}

/// What a call that passed the gate knows about its caller.
pub(crate) struct SfCtx {
    pub session: SfSession,
    /// The `client=` of `Sforce-Call-Options`, when sent.
    pub client: Option<String>,
    /// API version without the `v`.
    pub version: String,
}

/// The sObject an API name stands for (`Lead`, `Account`, `Contact`).
pub(crate) fn sobject(name: &str) -> Option<ObjectKind> {
    match name {
        "Lead" => Some(ObjectKind::Lead),
        "Account" => Some(ObjectKind::Account),
        "Contact" => Some(ObjectKind::Contact),
        _ => None,
    }
}

/// `client=allot, other=x` → `allot`.
fn call_options_client(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let value = part.trim().strip_prefix("client=")?.trim();
        (!value.is_empty()).then(|| value.to_string())
    })
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_string)
}

/// Counts the call and checks, in order: session, daily quota, injected faults.
/// On refusal, the answer to send.
pub(crate) fn gate(
    st: &mut State,
    shared: &Shared,
    endpoint: &str,
    method: &str,
    path: &str,
    version: &str,
    headers: &HeaderMap,
) -> Result<SfCtx, Box<Response>> {
    let now = Instant::now();
    let call_options = header(headers, "sforce-call-options");
    st.rec.arrive(
        ReceivedRequest {
            crm: Crm::Salesforce,
            endpoint: endpoint.to_string(),
            method: method.to_string(),
            path: path.to_string(),
            auto_assign: header(headers, "sforce-auto-assign"),
            call_options: call_options.clone(),
        },
        now,
    );
    let Some(version) = version.strip_prefix('v').map(str::to_string) else {
        return Err(Box::new(error(
            st,
            shared,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
            &[],
        )));
    };
    let token = header(headers, "authorization")
        .and_then(|h| h.strip_prefix("Bearer ").map(str::to_string))
        .unwrap_or_default();
    let Some(session) = st.sf_sessions.get(token.trim()).cloned() else {
        return Err(Box::new(error(
            st,
            shared,
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
            &[],
        )));
    };
    if st.sf_usage >= shared.opts.salesforce_daily_quota {
        return Err(Box::new(error(
            st,
            shared,
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
            &[],
        )));
    }
    st.sf_usage += 1;
    if let Some(injected) = st.faults.draw(Crm::Salesforce, now) {
        *st.rec.stats.faults_injected.get_mut(Crm::Salesforce) += 1;
        return Err(Box::new(injected_answer(st, shared, injected)));
    }
    Ok(SfCtx {
        session,
        client: call_options.as_deref().and_then(call_options_client),
        version,
    })
}

fn injected_answer(st: &mut State, shared: &Shared, injected: Injected) -> Response {
    let (status, retry_after) = match &injected {
        Injected::Storm {
            retry_after_secs, ..
        } => (429, Some(*retry_after_secs)),
        Injected::Status(429) => (429, Some(1)),
        Injected::Status(s) => (*s, None),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (code, message) = match status.as_u16() {
        429 => ("REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded."),
        503 => ("SERVER_UNAVAILABLE", "Server temporarily unavailable (emulated)"),
        _ => ("UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)"),
    };
    if status.as_u16() == 429 {
        *st.rec.stats.rate_limited.get_mut(Crm::Salesforce) += 1;
    }
    let mut response = error(st, shared, status, code, message, &[]);
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
    }
    response
}

/// A JSON answer with `Sforce-Limit-Info`.
pub(crate) fn reply(
    st: &State,
    shared: &Shared,
    status: StatusCode,
    body: Option<Value>,
) -> Response {
    let mut response = match body {
        Some(b) => (status, Json(b)).into_response(),
        None => status.into_response(),
    };
    let info = format!(
        "api-usage={}/{}",
        st.sf_usage, shared.opts.salesforce_daily_quota
    );
    if let Ok(v) = HeaderValue::from_str(&info) {
        response.headers_mut().insert("sforce-limit-info", v);
    }
    response
}

/// The vendor's error array `[{"message","errorCode","fields"}]`.
pub(crate) fn error(
    st: &State,
    shared: &Shared,
    status: StatusCode,
    code: &str,
    message: &str,
    fields: &[&str],
) -> Response {
    let body = json!([{"message": message, "errorCode": code, "fields": fields}]);
    reply(st, shared, status, Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_options_client_is_extracted() {
        let cases = [
            ("client=allot", Some("allot")),
            (
                "client=allot-writer, defaultNamespace=ns",
                Some("allot-writer"),
            ),
            ("defaultNamespace=ns,client=x", Some("x")),
            ("defaultNamespace=ns", None),
            ("client=", None),
        ];
        for (h, want) in cases {
            assert_eq!(call_options_client(h).as_deref(), want, "{h}");
        }
    }
}
