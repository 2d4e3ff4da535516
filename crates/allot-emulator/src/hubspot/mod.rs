//! The HubSpot side: OAuth refresh, CRM v3 objects (read, update, batch
//! update), owners. Authenticated answers carry the rate-limit headers of a
//! real rolling 10-second window per token; over it → 429 `TEN_SECONDLY_ROLLING`.

mod batch_read;
mod list;
mod objects;
mod owners;
mod search;
mod token;

use std::sync::Arc;
use std::time::{Duration, Instant};

use allot_core::Crm;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::faults::Injected;
use crate::state::State;
use crate::stats::{prune, ReceivedRequest, WINDOW};
use crate::Shared;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/oauth/v1/token", post(token::token))
        .route("/crm/v3/objects/{object_type}", get(list::list))
        .route(
            "/crm/v3/objects/{object_type}/batch/read",
            post(batch_read::batch_read),
        )
        .route("/crm/v3/objects/{object_type}/search", post(search::search))
        .route(
            "/crm/v3/objects/{object_type}/batch/update",
            post(objects::batch_update),
        )
        .route(
            "/crm/v3/objects/{object_type}/{id}",
            get(objects::get_object).patch(objects::patch_object),
        )
        .route("/crm/v3/owners", get(owners::owners))
}

/// The rate-limit headers of one answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateHeaders {
    pub max: u64,
    pub remaining: u64,
    pub daily: u64,
    pub daily_remaining: u64,
}

/// Counts the call and checks, in order: token, daily limit, rolling window,
/// injected faults. On refusal, the answer to send.
pub(crate) fn gate(
    st: &mut State,
    shared: &Shared,
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &HeaderMap,
) -> Result<RateHeaders, Box<Response>> {
    let now = Instant::now();
    st.rec.arrive(
        ReceivedRequest {
            crm: Crm::Hubspot,
            endpoint: endpoint.to_string(),
            method: method.to_string(),
            path: path.to_string(),
            auto_assign: None,
            call_options: None,
        },
        now,
    );
    let opts = &shared.opts;
    let token = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim()
        .to_string();
    let private =
        opts.hubspot_private_app_token.as_deref() == Some(token.as_str()) && !token.is_empty();
    if !private {
        match st.hs_tokens.get(&token) {
            Some(expires) if *expires > now => {}
            Some(expires) => {
                let minutes = now.duration_since(*expires).as_secs() / 60;
                let message = format!(
                    "The OAuth token used to make this call expired {minutes} minute(s) ago."
                );
                return Err(Box::new(error(
                    st,
                    None,
                    StatusCode::UNAUTHORIZED,
                    &message,
                    "EXPIRED_AUTHENTICATION",
                )));
            }
            None => {
                let message = "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview";
                return Err(Box::new(error(
                    st,
                    None,
                    StatusCode::UNAUTHORIZED,
                    message,
                    "INVALID_AUTHENTICATION",
                )));
            }
        }
    }
    let max = opts.hubspot_rate_limit_per_10s;
    let window = st.hs_windows.entry(token).or_default();
    prune(window, now);
    let used = window.len() as u64;
    let oldest = window.front().copied();
    let mut rate = RateHeaders {
        max,
        remaining: max.saturating_sub(used),
        daily: opts.hubspot_daily_limit,
        daily_remaining: opts.hubspot_daily_limit.saturating_sub(st.hs_daily_used),
    };
    if st.hs_daily_used >= opts.hubspot_daily_limit {
        return Err(Box::new(rate_limited(
            st,
            &rate,
            "DAILY",
            "You have reached your daily limit.",
            None,
        )));
    }
    if used >= max {
        let wait = oldest.map_or(WINDOW, |t| WINDOW.saturating_sub(now.duration_since(t)));
        let secs = wait.as_millis().div_ceil(1000).max(1) as u64;
        let message = "You have reached your ten_secondly_rolling limit.";
        return Err(Box::new(rate_limited(
            st,
            &rate,
            "TEN_SECONDLY_ROLLING",
            message,
            Some(secs),
        )));
    }
    window.push_back(now);
    st.hs_daily_used += 1;
    rate.remaining -= 1;
    rate.daily_remaining = rate.daily_remaining.saturating_sub(1);
    if let Some(injected) = st.faults.draw(Crm::Hubspot, now) {
        *st.rec.stats.faults_injected.get_mut(Crm::Hubspot) += 1;
        return Err(Box::new(match injected {
            Injected::Storm {
                retry_after_secs,
                policy,
            } => {
                let message = format!(
                    "You have reached your {} limit.",
                    policy.to_ascii_lowercase()
                );
                rate_limited(st, &rate, &policy, &message, Some(retry_after_secs))
            }
            Injected::Status(429) => {
                let message = "You have reached your ten_secondly_rolling limit.";
                rate_limited(st, &rate, "TEN_SECONDLY_ROLLING", message, Some(1))
            }
            Injected::Status(s) => {
                let status = StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                error(
                    st,
                    Some(&rate),
                    status,
                    "internal error (emulated)",
                    "INTERNAL_ERROR",
                )
            }
        }));
    }
    Ok(rate)
}

/// A 429 in HubSpot's shape, counted.
fn rate_limited(
    st: &mut State,
    rate: &RateHeaders,
    policy: &str,
    message: &str,
    retry_after: Option<u64>,
) -> Response {
    *st.rec.stats.rate_limited.get_mut(Crm::Hubspot) += 1;
    let body = json!({
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": st.uuid(),
        "policyName": policy,
    });
    let mut response = reply(Some(rate), StatusCode::TOO_MANY_REQUESTS, body);
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
    }
    response
}

/// HubSpot's standard error body.
pub(crate) fn error(
    st: &mut State,
    rate: Option<&RateHeaders>,
    status: StatusCode,
    message: &str,
    category: &str,
) -> Response {
    let body = json!({
        "status": "error",
        "message": message,
        "correlationId": st.uuid(),
        "category": category,
    });
    reply(rate, status, body)
}

/// A JSON answer with the rate-limit headers, when the call was authenticated.
pub(crate) fn reply(rate: Option<&RateHeaders>, status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Some(r) = rate {
        let h = response.headers_mut();
        h.insert("x-hubspot-ratelimit-max", HeaderValue::from(r.max));
        h.insert(
            "x-hubspot-ratelimit-remaining",
            HeaderValue::from(r.remaining),
        );
        h.insert(
            "x-hubspot-ratelimit-interval-milliseconds",
            HeaderValue::from(WINDOW.as_millis() as u64),
        );
        h.insert("x-hubspot-ratelimit-daily", HeaderValue::from(r.daily));
        h.insert(
            "x-hubspot-ratelimit-daily-remaining",
            HeaderValue::from(r.daily_remaining),
        );
    }
    response
}

/// Expiry of a token issued now with `ttl_secs`.
pub(crate) fn expiry(ttl_secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(ttl_secs)
}
