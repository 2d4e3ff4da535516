//! Simulate one record, and replay a time range of the embedded raw log
//! under given rules: both decide in a scratch copy of the state and change
//! nothing.

use std::collections::HashMap;

use allot_core::{ChangeKind, Crm, Millis, ObjectKind, Record, Value as FieldValue};
use allot_events::{decode, merge, Format};
use allot_rules::RuleSet;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{blocking, compile, effective, error, internal, parse_time, ApiError};
use crate::api::ApiState;
use crate::pipeline::FieldMaps;
use crate::raw::{RawEntry, RAW_LOG};

#[derive(Deserialize)]
pub(crate) struct At {
    /// Decision time, RFC 3339; now when absent.
    now: Option<String>,
}

/// `POST /api/simulate`: the body is a record (`{"object","id","owner"?,"fields"}`);
/// the answer is the decision the active rules would make now, with its explanation.
pub(crate) async fn simulate(
    State(s): State<ApiState>,
    Query(at): Query<At>,
    body: axum::body::Bytes,
) -> Response {
    let record: Record = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("body: not a record ({e}); expected {{\"object\":\"lead\",\"id\":\"…\",\"fields\":{{…}}}}"),
            ).into_response()
        }
    };
    let now = match at.now.as_deref() {
        None => crate::now_ms(),
        Some(t) => match parse_time("now", &json!(t)) {
            Ok(t) => t,
            Err(r) => return r.into_response(),
        },
    };
    let (store, ctx) = (s.store.clone(), s.admin.clone());
    let r = blocking(move || {
        let (rules, _) = effective(&ctx, &store, now)?;
        let state = store.engine_state().map_err(internal)?;
        let out = allot_rules::decide(&rules, &state, &record, now);
        serde_json::to_value(&out.decision).map_err(internal)
    })
    .await;
    r.map(|v| Json(v).into_response())
        .unwrap_or_else(IntoResponse::into_response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayReq {
    /// Raw entries received from this time (RFC 3339 or ms) …
    from: Value,
    /// … until before this one.
    to: Value,
    /// A stored rule version id; the active rules when absent.
    rules: Option<String>,
    /// A rules file to replay under instead of a stored version.
    rules_toml: Option<String>,
}

/// Log entries read per step.
const READ_CHUNK: usize = 1024;
/// A decision made this long after an entry arrived still counts as its decision.
const DECIDED_WITHIN_MS: Millis = 10 * 60_000;

/// `POST /api/replay`: every raw entry received in `[from, to)` decoded and
/// decided again, in arrival order, in a scratch copy of today's state;
/// lists the decisions whose owner differs from the one decided then (a
/// different member of the same team is rotation, not a difference).
pub(crate) async fn replay(State(s): State<ApiState>, Json(req): Json<ReplayReq>) -> Response {
    let from = match parse_time("from", &req.from) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    let to = match parse_time("to", &req.to) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    if to <= from {
        return error(StatusCode::BAD_REQUEST, "to must be after from").into_response();
    }
    let (store, ctx) = (s.store.clone(), s.admin.clone());
    let now = crate::now_ms();
    let r = blocking(move || {
        let rules: std::sync::Arc<RuleSet> = match (&req.rules, &req.rules_toml) {
            (Some(_), Some(_)) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "give rules (a version id) or rules_toml, not both",
                ))
            }
            (Some(id), None) => {
                let v = store.rule_version(id).map_err(internal)?.ok_or_else(|| {
                    error(
                        StatusCode::NOT_FOUND,
                        format!("rules: no rule version {id:?}"),
                    )
                })?;
                compile(&ctx, &v)?
            }
            (None, Some(text)) => std::sync::Arc::new(
                RuleSet::from_toml(text, "rules_toml")
                    .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?,
            ),
            (None, None) => effective(&ctx, &store, now)?.0,
        };
        run_replay(&store, &rules, from, to)
    })
    .await;
    r.map(|v| Json(v).into_response())
        .unwrap_or_else(IntoResponse::into_response)
}

/// Whether the difference is only the rotation: the same territory, whose
/// team the owner decided then belongs to (the round-robin cursor of today's
/// state is not the one of then).
fn same_team(rules: &RuleSet, d: &allot_core::Decision, then_owner: Option<&str>) -> bool {
    let (Some(t), Some(then_owner)) = (
        d.territory.as_deref().and_then(|t| rules.territory(t)),
        then_owner,
    ) else {
        return false;
    };
    match &t.owner {
        Some(allot_rules::Owner::Team { team, .. }) => rules.teams[*team]
            .members
            .iter()
            .any(|&m| rules.reps[m].id == then_owner),
        _ => false,
    }
}

fn run_replay(
    store: &allot_store::Store,
    rules: &RuleSet,
    from: Millis,
    to: Millis,
) -> Result<Value, ApiError> {
    let maps = FieldMaps::default();
    let mut state = store.engine_state().map_err(internal)?;
    let mut scratch: HashMap<(ObjectKind, String), Record> = HashMap::new();
    let log = store.log(RAW_LOG);
    let mut offset = log.start_offset().map_err(internal)?;
    let (mut entries, mut events, mut decided, mut undecidable) = (0u64, 0u64, 0u64, 0u64);
    let mut differences = Vec::new();
    loop {
        let chunk = log.read(offset, READ_CHUNK).map_err(internal)?;
        let Some(&(last, _)) = chunk.last() else {
            break;
        };
        offset = last + 1;
        for (_, bytes) in chunk {
            let Ok(raw) = serde_json::from_slice::<RawEntry>(&bytes) else {
                continue;
            };
            if raw.received_at < from || raw.received_at >= to {
                continue;
            }
            entries += 1;
            let format = raw.format.parse().unwrap_or(Format::Auto);
            let decoded = decode(raw.body.as_bytes(), format);
            undecidable += decoded.errors.len() as u64;
            for event in decoded.events {
                events += 1;
                let Some(id) = event.record_id.clone() else {
                    continue;
                };
                if matches!(
                    event.change,
                    ChangeKind::Delete | ChangeKind::Overflow | ChangeKind::OwnerRefused
                ) {
                    continue;
                }
                let key = (event.object, id.clone());
                let before = match scratch.get(&key) {
                    Some(r) => Some(r.clone()),
                    None => store
                        .record(event.object, &id)
                        .map_err(internal)?
                        .map(|(r, _)| r),
                };
                let merged = merge(before, None, &event, maps.get(event.source));
                let Some(mut record) = merged.record else {
                    continue;
                };
                if event.source != Crm::Native {
                    record
                        .fields
                        .insert("crm".into(), FieldValue::from(event.source.as_str()));
                }
                // What was decided for this record when the entry arrived.
                let then = store
                    .audit_for(&id, raw.received_at, raw.received_at + DECIDED_WITHIN_MS)
                    .map_err(internal)?
                    .into_iter()
                    .find(|d| d.object == event.object);
                let Some(then) = then else {
                    scratch.insert(key, record);
                    continue;
                };
                record.owner = then.previous_owner.clone();
                decided += 1;
                let out = allot_rules::decide(rules, &state, &record, then.decided_at);
                state.apply_owned(out.ops);
                let d = out.decision;
                if d.owner != then.owner && !same_team(rules, &d, then.owner.as_deref()) {
                    differences.push(json!({
                        "id": id,
                        "object": event.object,
                        "received_at": raw.received_at,
                        "decided_at": then.decided_at,
                        "then_owner": then.owner,
                        "then_rules_version": then.rules_version,
                        "replay_owner": d.owner,
                        "replay_territory": d.territory,
                        "explanation": d.explanation,
                    }));
                }
                record.owner = d.owner.clone().or(record.owner);
                scratch.insert(key, record);
            }
        }
    }
    Ok(json!({
        "rules_version": rules.version,
        "from": from,
        "to": to,
        "entries": entries,
        "events": events,
        "decisions": decided,
        "undecodable": undecidable,
        "changed": differences.len(),
        "differences": differences,
    }))
}
