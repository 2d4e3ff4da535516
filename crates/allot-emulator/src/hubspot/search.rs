//! `POST /crm/v3/objects/{type}/search`: filters (`GT`, `GTE`, `LT`, `EQ` on
//! `lastmodifieddate`, `hs_object_id` and other properties, ANDed within one
//! filter group), one sort, `limit` ≤ 200, `after` as an offset, and
//! HubSpot's two search caps: 10,000 results per query and about five
//! requests per second per token (over it → 429 `SECONDLY`).

use std::cmp::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::objects::{bad_type, object_json, object_kind};
use super::{error, gate, reply};
use crate::Shared;

/// Search's largest page and deepest offset.
const MAX_LIMIT: usize = 200;
const MAX_RESULTS: usize = 10_000;
/// Search calls per second per token.
const PER_SECOND: usize = 5;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SearchBody {
    #[serde(default)]
    filter_groups: Vec<FilterGroup>,
    #[serde(default)]
    sorts: Vec<Sort>,
    #[serde(default)]
    properties: Vec<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    after: Option<Value>,
}

#[derive(Deserialize)]
struct FilterGroup {
    #[serde(default)]
    filters: Vec<Filter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    property_name: String,
    operator: String,
    #[serde(default)]
    value: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sort {
    property_name: String,
    #[serde(default)]
    direction: Option<String>,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A property's value as search compares it: date-times as epoch ms
/// (filters name them in ms), numbers as numbers, the rest as text.
fn key(name: &str, v: &str) -> Result<f64, String> {
    if name == "lastmodifieddate" || name == "createdate" {
        return Ok(parse_iso(v).unwrap_or(f64::NAN));
    }
    v.parse::<f64>().map_err(|_| v.to_string())
}

/// `2026-12-03T10:00:00.000Z` → epoch ms (the stored stamps' form).
fn parse_iso(v: &str) -> Option<f64> {
    if let Ok(ms) = v.parse::<f64>() {
        return Some(ms);
    }
    let (date, time) = v.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let secs: f64 = t.next()?.parse().ok()?;
    let days = crate::events::days_from_civil(y, m, day);
    Some(((days * 86_400 + h * 3_600 + min * 60) as f64 + secs) * 1000.0)
}

fn compare(name: &str, have: &str, want: &str) -> Option<Ordering> {
    match (key(name, have), key(name, want)) {
        (Ok(a), Ok(b)) => a.partial_cmp(&b),
        _ => Some(have.cmp(want)),
    }
}

fn matches(props: &Map<String, Value>, f: &Filter) -> Result<bool, String> {
    let have = props.get(&f.property_name).map(text).unwrap_or_default();
    let want = text(&f.value);
    let ord = compare(&f.property_name, &have, &want);
    Ok(match f.operator.as_str() {
        "GT" => ord == Some(Ordering::Greater),
        "GTE" => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
        "LT" => ord == Some(Ordering::Less),
        "LTE" => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
        "EQ" => ord == Some(Ordering::Equal),
        "NEQ" => ord != Some(Ordering::Equal),
        "HAS_PROPERTY" => !have.is_empty(),
        "NOT_HAS_PROPERTY" => have.is_empty(),
        other => return Err(format!("Unsupported filter operator {other}")),
    })
}

pub(crate) async fn search(
    AxState(shared): AxState<Arc<Shared>>,
    Path(object_type): Path<String>,
    headers: HeaderMap,
    body: Option<Json<SearchBody>>,
) -> Response {
    shared.delay().await;
    let mut st = shared.lock();
    let path = format!("/crm/v3/objects/{object_type}/search");
    let rate = match gate(
        &mut st,
        &shared,
        "hs.objects.search",
        "POST",
        &path,
        &headers,
    ) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    // Search's own limit, per token, over the last second.
    let token = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let now = Instant::now();
    let window = st.hs_windows.entry(format!("search {token}")).or_default();
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
    {
        window.pop_front();
    }
    if window.len() >= PER_SECOND {
        *st.rec.stats.rate_limited.get_mut(allot_core::Crm::Hubspot) += 1;
        let body = json!({"status": "error", "message": "You have reached your secondly limit.",
            "errorType": "RATE_LIMIT", "correlationId": st.uuid(), "policyName": "SECONDLY"});
        let mut r = reply(Some(&rate), StatusCode::TOO_MANY_REQUESTS, body);
        r.headers_mut().insert("retry-after", HeaderValue::from(1));
        return r;
    }
    window.push_back(now);
    let Some(object) = object_kind(&object_type) else {
        return bad_type(&mut st, &rate, &object_type);
    };
    let Some(Json(body)) = body else {
        return error(
            &mut st,
            Some(&rate),
            StatusCode::BAD_REQUEST,
            "Invalid input JSON on line 1",
            "VALIDATION_ERROR",
        );
    };
    let limit = body.limit.unwrap_or(10).clamp(1, MAX_LIMIT);
    let offset = body
        .after
        .as_ref()
        .map(text)
        .and_then(|a| a.parse::<usize>().ok())
        .unwrap_or(0);
    if offset + limit > MAX_RESULTS {
        let message =
            format!("Search results are limited to {MAX_RESULTS}; page with a narrower filter");
        return error(
            &mut st,
            Some(&rate),
            StatusCode::BAD_REQUEST,
            &message,
            "VALIDATION_ERROR",
        );
    }
    let mut hits: Vec<(&String, &Map<String, Value>)> = Vec::new();
    for ((o, id), props) in st.hs_records.range((object, String::new())..) {
        if *o != object {
            break;
        }
        let mut keep = body.filter_groups.is_empty();
        for g in &body.filter_groups {
            let mut all = true;
            for f in &g.filters {
                match matches(props, f) {
                    Ok(true) => {}
                    Ok(false) => {
                        all = false;
                        break;
                    }
                    Err(message) => {
                        return error(
                            &mut st,
                            Some(&rate),
                            StatusCode::BAD_REQUEST,
                            &message,
                            "VALIDATION_ERROR",
                        );
                    }
                }
            }
            keep |= all;
        }
        if keep {
            hits.push((id, props));
        }
    }
    if let Some(sort) = body.sorts.first() {
        let name = sort.property_name.as_str();
        let text_of = |p: &Map<String, Value>| p.get(name).map(text).unwrap_or_default();
        hits.sort_by(|a, b| compare(name, &text_of(a.1), &text_of(b.1)).unwrap_or(Ordering::Equal));
        if sort.direction.as_deref() == Some("DESCENDING") {
            hits.reverse();
        }
    }
    let total = hits.len();
    let names: Vec<&str> = body.properties.iter().map(String::as_str).collect();
    let selected = (!names.is_empty()).then_some(&names[..]);
    let results: Vec<Value> = hits
        .iter()
        .skip(offset)
        .take(limit)
        .map(|(id, props)| object_json(id, props, selected))
        .collect();
    let mut out = json!({"total": total, "results": results});
    if offset + limit < total {
        out["paging"] = json!({"next": {"after": (offset + limit).to_string()}});
    }
    reply(Some(&rate), StatusCode::OK, out)
}
