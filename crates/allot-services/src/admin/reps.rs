//! Reps: availability as the engine sees it now, out of office, capacity,
//! active, and offboarding (preview, then apply).

use allot_core::Record;
use allot_rules::overrides::{with_overrides, Cap, RepOverride};
use allot_rules::{iso, Rep, RuleSet};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{
    blocking, command, effective, error, internal, overrides, parse_time, ApiError, Caller,
};
use crate::api::ApiState;
use crate::control::{owned_by, ControlCommand};

fn rep_row(
    rep: &Rep,
    rules: &RuleSet,
    state: &allot_core::EngineState,
    over: Option<&RepOverride>,
    now: i64,
) -> Value {
    let teams: Vec<&str> = rules
        .teams
        .iter()
        .filter(|t| t.members.iter().any(|&m| rules.reps[m].id == rep.id))
        .map(|t| t.id.as_str())
        .collect();
    let why = rep.ineligible(None, state, now);
    json!({
        "id": rep.id,
        "name": rep.name,
        "teams": teams,
        "active": rep.active,
        "out_of_office_until": rep.away_until(now).map(iso),
        "in_working_hours": rep.in_working_hours(now),
        "timezone": rep.tz.name(),
        "open": state.open_count(&rep.id),
        "today": state.daily_count(&rep.id, rep.day(now)),
        "max_open": rep.max_open,
        "max_per_day": rep.max_per_day,
        "eligible_now": why.is_none(),
        "reason": why,
        "override": over,
    })
}

/// `GET /api/reps`: every rep of the active rules with overrides applied.
pub(crate) async fn list(State(s): State<ApiState>) -> Response {
    let (store, ctx) = (s.store.clone(), s.admin.clone());
    let now = crate::now_ms();
    let r = blocking(move || {
        let (rules, over) = effective(&ctx, &store, now)?;
        let state = store.engine_state().map_err(internal)?;
        let reps: Vec<Value> = rules
            .reps
            .iter()
            .map(|r| rep_row(r, &rules, &state, over.get(&r.id), now))
            .collect();
        Ok(json!({ "rules_version": rules.version, "at": iso(now), "reps": reps }))
    })
    .await;
    r.map(|v| Json(v).into_response())
        .unwrap_or_else(IntoResponse::into_response)
}

/// The rep's current override, after checking the rep exists.
async fn current(s: &ApiState, rep: &str) -> Result<RepOverride, ApiError> {
    let (store, ctx, rep) = (s.store.clone(), s.admin.clone(), rep.to_string());
    blocking(move || {
        let (rules, mut over) = effective(&ctx, &store, crate::now_ms())?;
        if rules.rep(&rep).is_none() {
            return Err(error(
                StatusCode::NOT_FOUND,
                format!("no rep {rep:?} in the active rules"),
            ));
        }
        Ok(over.remove(&rep).unwrap_or_default())
    })
    .await
}

async fn set(s: &ApiState, rep: String, over: RepOverride, by: String) -> Response {
    command(s, ControlCommand::SetRepOverride { rep, over, by }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ooo {
    from: Option<Value>,
    until: Value,
}

/// `PUT /api/reps/{id}/ooo {"from"?, "until"}`: out of office from `from` (now) until `until`.
pub(crate) async fn set_ooo(
    State(s): State<ApiState>,
    Path(rep): Path<String>,
    Extension(caller): Extension<Caller>,
    Json(o): Json<Ooo>,
) -> Response {
    let now = crate::now_ms();
    let from = match o.from.as_ref().map(|v| parse_time("from", v)) {
        None => now,
        Some(Ok(t)) => t,
        Some(Err(r)) => return r.into_response(),
    };
    let until = match parse_time("until", &o.until) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    if until <= from {
        return error(
            StatusCode::BAD_REQUEST,
            format!("until ({}) must be after from ({})", iso(until), iso(from)),
        )
        .into_response();
    }
    let mut over = match current(&s, &rep).await {
        Ok(o) => o,
        Err(r) => return r.into_response(),
    };
    over.out_of_office.push((from, until));
    set(&s, rep, over, caller.name).await
}

/// `DELETE /api/reps/{id}/ooo`: drops the out-of-office windows set through the API.
pub(crate) async fn clear_ooo(
    State(s): State<ApiState>,
    Path(rep): Path<String>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let mut over = match current(&s, &rep).await {
        Ok(o) => o,
        Err(r) => return r.into_response(),
    };
    over.out_of_office.clear();
    set(&s, rep, over, caller.name).await
}

fn cap(what: &str, v: &Value) -> Result<Cap, ApiError> {
    match v {
        Value::Null => Ok(Cap { max: None }),
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(|n| Cap { max: Some(n) })
            .ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("{what}: {n} is not a whole number ≥ 0"),
                )
            }),
        other => Err(error(
            StatusCode::BAD_REQUEST,
            format!("{what}: {other} is not a number or null (no cap)"),
        )),
    }
}

/// `PUT /api/reps/{id}/capacity {"max_open"?: n|null, "max_per_day"?: n|null, "reset"?: true}`.
pub(crate) async fn capacity(
    State(s): State<ApiState>,
    Path(rep): Path<String>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<Map<String, Value>>,
) -> Response {
    if let Some(k) = body
        .keys()
        .find(|k| !["max_open", "max_per_day", "reset"].contains(&k.as_str()))
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unknown field {k:?} (max_open, max_per_day, reset)"),
        )
        .into_response();
    }
    if body.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "give max_open and/or max_per_day (a number, or null for no cap), or reset: true",
        )
        .into_response();
    }
    let mut over = match current(&s, &rep).await {
        Ok(o) => o,
        Err(r) => return r.into_response(),
    };
    if body.get("reset") == Some(&Value::Bool(true)) {
        over.max_open = None;
        over.max_per_day = None;
    }
    for (key, slot) in [
        ("max_open", &mut over.max_open),
        ("max_per_day", &mut over.max_per_day),
    ] {
        if let Some(v) = body.get(key) {
            match cap(key, v) {
                Ok(c) => *slot = Some(c),
                Err(r) => return r.into_response(),
            }
        }
    }
    set(&s, rep, over, caller.name).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Active {
    active: Option<bool>,
}

/// `PUT /api/reps/{id}/active {"active": bool|null}` (null: as the rule file says).
pub(crate) async fn active(
    State(s): State<ApiState>,
    Path(rep): Path<String>,
    Extension(caller): Extension<Caller>,
    Json(a): Json<Active>,
) -> Response {
    let mut over = match current(&s, &rep).await {
        Ok(o) => o,
        Err(r) => return r.into_response(),
    };
    over.active = a.active;
    set(&s, rep, over, caller.name).await
}

#[derive(Deserialize)]
pub(crate) struct Preview {
    preview: Option<bool>,
}

/// `POST /api/reps/{id}/offboard?preview=true|false`: where each open record
/// of the rep would go once they are inactive; `preview=false` does it.
pub(crate) async fn offboard(
    State(s): State<ApiState>,
    Path(rep): Path<String>,
    Query(q): Query<Preview>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if q.preview == Some(false) {
        if let Err(r) = current(&s, &rep).await {
            return r.into_response();
        }
        return command(
            &s,
            ControlCommand::Offboard {
                rep,
                by: caller.name,
                over: None,
            },
        )
        .await;
    }
    let (store, ctx) = (s.store.clone(), s.admin.clone());
    let now = crate::now_ms();
    let r = blocking(move || {
        let (rules, mut over) = effective(&ctx, &store, now)?;
        if rules.rep(&rep).is_none() {
            return Err(error(
                StatusCode::NOT_FOUND,
                format!("no rep {rep:?} in the active rules"),
            ));
        }
        over.entry(rep.clone()).or_default().active = Some(false);
        let base = super::compile(&ctx, &super::active_version(&store, now)?)?;
        let rules = with_overrides(&base, &over);
        let mut state = store.engine_state().map_err(internal)?;
        let records: Vec<Record> = owned_by(&store, &rep).map_err(internal)?;
        let mut moves = Vec::new();
        for record in &records {
            let out = allot_rules::decide(&rules, &state, record, now);
            let d = out.decision;
            if d.changed {
                state.apply_owned(out.ops);
            }
            moves.push(json!({
                "id": record.id,
                "object": record.object,
                "to_owner": d.owner,
                "territory": d.territory,
                "changed": d.changed,
                "explanation": d.explanation,
            }));
        }
        let _ = overrides; // the stored overrides are the base of the preview
        Ok(json!({ "rep": rep, "preview": true, "open_records": records.len(), "moves": moves }))
    })
    .await;
    r.map(|v| Json(v).into_response())
        .unwrap_or_else(IntoResponse::into_response)
}
