//! Rule versions: validate, upload as a draft, list, dry-run against the
//! active version, activate (now or later), roll back.

use allot_core::{EngineState, Millis};
use allot_rules::realign::Realigner;
use allot_rules::{Diagnostic, RuleSet};
use allot_store::{RuleVersion, DRY_RUN, JOB};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{
    active_version, blocking, command, compile, error, internal, parse_time, ApiError, Caller,
};
use crate::api::ApiState;
use crate::control::{ControlCommand, RealignJob, REALIGN_JOB};

/// Numeric field summed per rep in dry-run balance figures (as `allot realign`).
const BALANCE_FIELD: &str = "annual_revenue";

/// What activation requires: a dry run of the version against the active one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DryRun {
    pub v: u8,
    pub version_id: String,
    /// The version that was active when it ran.
    pub against: String,
    pub at: Millis,
    pub by: String,
    pub records: u64,
    pub moved: u64,
}

#[derive(Deserialize)]
pub(crate) struct Origin {
    /// File name used in diagnostics.
    name: Option<String>,
}

fn diagnostics(list: &[Diagnostic], origin: &str) -> Vec<Value> {
    list.iter()
        .map(|d| {
            json!({
                "severity": if d.warning { "warning" } else { "error" },
                "line": d.at.map(|a| a.0),
                "column": d.at.map(|a| a.1),
                "message": d.message,
                "text": d.render(origin),
            })
        })
        .collect()
}

/// Compiles `text`, or the 422 answer listing every problem at `origin:line:col`.
fn check(text: &str, origin: &str) -> Result<RuleSet, ApiError> {
    RuleSet::from_toml(text, origin).map_err(|e| ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        body: json!({
            "status": "error",
            "message": e.to_string(),
            "diagnostics": diagnostics(&e.diagnostics, origin),
        }),
    })
}

fn summary(v: &RuleVersion, state: &str) -> Value {
    json!({
        "version_id": v.version_id,
        "effective_at": v.effective_at,
        "activated_by": v.activated_by,
        "state": state,
    })
}

/// `GET /api/rules`: the version in force, its text and what it holds.
pub(crate) async fn active(State(s): State<ApiState>) -> Response {
    let ctx = s.admin.clone();
    let store = s.store.clone();
    let now = crate::now_ms();
    let r = blocking(move || {
        let v = active_version(&store, now)?;
        let rules = compile(&ctx, &v)?;
        let mut out = summary(&v, "active");
        out["toml"] = json!(v.toml);
        out["reps"] = json!(rules.reps.len());
        out["teams"] = json!(rules.teams.len());
        out["territories"] = json!(rules.territories.len());
        out["warnings"] = json!(diagnostics(&rules.warnings, &v.version_id));
        Ok(out)
    })
    .await;
    r.map(|v| Json(v).into_response())
        .unwrap_or_else(IntoResponse::into_response)
}

/// `POST /api/rules/validate`: the body is a rules file.
pub(crate) async fn validate(Query(o): Query<Origin>, body: String) -> Response {
    let origin = o.name.unwrap_or_else(|| "rules.toml".into());
    match check(&body, &origin) {
        Ok(rules) => Json(json!({
            "status": "ok",
            "version_id": rules.version,
            "reps": rules.reps.len(),
            "teams": rules.teams.len(),
            "territories": rules.territories.len(),
            "warnings": diagnostics(&rules.warnings, &origin),
        }))
        .into_response(),
        Err(r) => r.into_response(),
    }
}

/// `POST /api/rules/versions`: validates the body and stores it as a draft.
pub(crate) async fn upload(
    State(s): State<ApiState>,
    Query(o): Query<Origin>,
    body: String,
) -> Response {
    let origin = o.name.unwrap_or_else(|| "rules.toml".into());
    let rules = match check(&body, &origin) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let store = s.store.clone();
    let id = rules.version.clone();
    let r = blocking(move || {
        if let Some(old) = store.rule_version(&id).map_err(internal)? {
            if old.toml != body {
                return Err(error(
                    StatusCode::CONFLICT,
                    format!("rule version {id:?} already exists with different text; versions are immutable: change `version` in the file"),
                ));
            }
            return Ok((StatusCode::OK, summary(&old, "existing")));
        }
        store
            .put_rule_version(&id, &body, crate::now_ms(), None)
            .map_err(internal)?;
        let v = store
            .rule_version(&id)
            .map_err(internal)?
            .ok_or_else(|| internal("stored version vanished"))?;
        Ok((StatusCode::CREATED, summary(&v, "draft")))
    })
    .await;
    match r {
        Ok((status, mut v)) => {
            v["warnings"] = json!(diagnostics(&rules.warnings, &origin));
            v["message"] = json!(format!("stored rule version {}", rules.version));
            (status, Json(v)).into_response()
        }
        Err(r) => r.into_response(),
    }
}

fn state_of(v: &RuleVersion, active: Option<&str>, now: Millis) -> &'static str {
    match () {
        _ if Some(v.version_id.as_str()) == active => "active",
        _ if v.activated_by.is_none() => "draft",
        _ if v.effective_at > now => "scheduled",
        _ => "inactive",
    }
}

/// `GET /api/rules/versions`: every version with its state and dry run.
pub(crate) async fn versions(State(s): State<ApiState>) -> Response {
    let store = s.store.clone();
    let now = crate::now_ms();
    let r = blocking(move || {
        let active = store.active_rule_version(now).map_err(internal)?;
        let active = active.as_ref().map(|v| v.version_id.as_str());
        let mut out = Vec::new();
        for v in store.rule_versions().map_err(internal)? {
            let mut item = summary(&v, state_of(&v, active, now));
            let dry: Option<DryRun> = store.admin_get(DRY_RUN, &v.version_id).map_err(internal)?;
            item["dry_run"] = json!(dry);
            out.push(item);
        }
        Ok(json!({ "versions": out }))
    })
    .await;
    r.map(|v| Json(v).into_response())
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/rules/versions/{id}`: one version with its text.
pub(crate) async fn version(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    let store = s.store.clone();
    let now = crate::now_ms();
    let r = blocking(move || {
        let v = store
            .rule_version(&id)
            .map_err(internal)?
            .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no rule version {id:?}")))?;
        let active = store.active_rule_version(now).map_err(internal)?;
        let mut out = summary(
            &v,
            state_of(&v, active.as_ref().map(|a| a.version_id.as_str()), now),
        );
        out["toml"] = json!(v.toml);
        let dry: Option<DryRun> = store.admin_get(DRY_RUN, &id).map_err(internal)?;
        out["dry_run"] = json!(dry);
        Ok(out)
    })
    .await;
    r.map(|v| Json(v).into_response())
        .unwrap_or_else(IntoResponse::into_response)
}

/// `POST /api/rules/versions/{id}/dry-run`: every known record decided under
/// the active version and under this one, as `allot realign --json` reports
/// it; remembered so the version can be activated.
pub(crate) async fn dry_run(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let store = s.store.clone();
    let ctx = s.admin.clone();
    let now = crate::now_ms();
    let r = blocking(move || {
        let candidate = store
            .rule_version(&id)
            .map_err(internal)?
            .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no rule version {id:?}")))?;
        let active = active_version(&store, now)?;
        let (old, new) = (compile(&ctx, &active)?, compile(&ctx, &candidate)?);
        let mut realigner = Realigner::new(
            &old,
            &new,
            EngineState::default(),
            now,
            Some(BALANCE_FIELD.into()),
        );
        for r in store.records() {
            let (record, _) = r.map_err(internal)?;
            if !record.deleted {
                realigner.push(&record);
            }
        }
        let report = realigner.finish();
        let dry = DryRun {
            v: 1,
            version_id: id.clone(),
            against: active.version_id.clone(),
            at: now,
            by: caller.name.clone(),
            records: report.records,
            moved: report.moved,
        };
        store
            .admin_put(DRY_RUN, &id, json!(dry))
            .map_err(internal)?;
        serde_json::to_value(&report).map_err(internal)
    })
    .await;
    r.map(|v| Json(v).into_response())
        .unwrap_or_else(IntoResponse::into_response)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Activate {
    /// RFC 3339 or epoch ms; now when absent.
    effective_at: Option<Value>,
}

/// `POST /api/rules/versions/{id}/activate`: needs a dry run against the
/// version active now.
pub(crate) async fn activate(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    body: Option<Json<Activate>>,
) -> Response {
    let now = crate::now_ms();
    let a = body.map(|b| b.0).unwrap_or_default();
    let effective_at = match a
        .effective_at
        .as_ref()
        .map(|v| parse_time("effective_at", v))
    {
        None => now,
        Some(Ok(t)) => t,
        Some(Err(r)) => return r.into_response(),
    };
    let store = s.store.clone();
    let vid = id.clone();
    let checked = blocking(move || {
        if store.rule_version(&vid).map_err(internal)?.is_none() {
            return Err(error(StatusCode::NOT_FOUND, format!("no rule version {vid:?}")));
        }
        let active = active_version(&store, now)?;
        if effective_at < active.effective_at {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("effective_at {} is before the effective time of the version in force ({}, {}): it would never take effect", allot_rules::iso(effective_at), active.version_id, allot_rules::iso(active.effective_at)),
            ));
        }
        if active.version_id == vid {
            return Ok(());
        }
        let dry: Option<DryRun> = store.admin_get(DRY_RUN, &vid).map_err(internal)?;
        match dry {
            Some(d) if d.against == active.version_id => Ok(()),
            Some(d) => Err(error(
                StatusCode::CONFLICT,
                format!("the dry run of {vid} compared it with {}, but {} is active now: run POST /api/rules/versions/{vid}/dry-run again first", d.against, active.version_id),
            )),
            None => Err(error(
                StatusCode::CONFLICT,
                format!("rule version {vid} has no dry run against the active version {}: run POST /api/rules/versions/{vid}/dry-run first", active.version_id),
            )),
        }
    })
    .await;
    if let Err(r) = checked {
        return r.into_response();
    }
    command(
        &s,
        ControlCommand::ActivateRules {
            version_id: id,
            effective_at,
            by: caller.name,
            toml: None,
        },
    )
    .await
}

/// `POST /api/rules/rollback`: activates the version that was in force
/// before the current one, now (no dry run needed: it was in force).
pub(crate) async fn rollback(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let store = s.store.clone();
    let now = crate::now_ms();
    let previous = blocking(move || {
        let active = active_version(&store, now)?;
        let past: Vec<RuleVersion> = store
            .rule_versions()
            .map_err(internal)?
            .into_iter()
            .filter(|v| v.activated_by.is_some() && v.effective_at <= now)
            .collect();
        past.iter()
            .rev()
            .find(|v| v.version_id != active.version_id)
            .map(|v| v.version_id.clone())
            .ok_or_else(|| {
                error(
                    StatusCode::CONFLICT,
                    format!(
                        "nothing to roll back to: {} is the only version that was ever active",
                        active.version_id
                    ),
                )
            })
    })
    .await;
    match previous {
        Ok(version_id) => {
            command(
                &s,
                ControlCommand::ActivateRules {
                    version_id,
                    effective_at: now,
                    by: caller.name,
                    toml: None,
                },
            )
            .await
        }
        Err(r) => r.into_response(),
    }
}

/// `GET /api/rules/realignment`: the last realignment's progress.
pub(crate) async fn realignment(State(s): State<ApiState>) -> Response {
    let store = s.store.clone();
    let r = blocking(move || {
        let job: Option<RealignJob> = store.admin_get(JOB, REALIGN_JOB).map_err(internal)?;
        Ok(json!({ "realignment": job }))
    })
    .await;
    r.map(|v| Json(v).into_response())
        .unwrap_or_else(IntoResponse::into_response)
}
