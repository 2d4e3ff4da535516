//! `POST /api/sync` (start a sync run in the pipeline's owner) and
//! `GET /api/sync` (its progress, per object, and pending resyncs).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::Value;

use super::{blocking, command, error, internal, parse_time, Caller};
use crate::api::ApiState;
use crate::backfill::{self, SyncPlan};
use crate::control::ControlCommand;

/// The body of `POST /api/sync`; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SyncBody {
    /// salesforce or hubspot (both when absent).
    #[serde(default)]
    crm: Option<String>,
    /// account, lead, contact: a list or a comma-separated string.
    #[serde(default)]
    objects: Option<Value>,
    /// RFC 3339 or epoch ms: only records modified after it.
    #[serde(default)]
    since: Option<Value>,
    #[serde(default)]
    full: bool,
    #[serde(default)]
    decide: bool,
}

fn plan(body: SyncBody) -> Result<SyncPlan, super::ApiError> {
    let bad = |m: String| error(StatusCode::BAD_REQUEST, m);
    let objects: Vec<String> = match body.objects {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::to_string)
            .filter(|s| !s.is_empty())
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("objects: {v} is not a string")))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(bad(format!(
                "objects: {other} is neither a list nor a comma-separated string"
            )))
        }
    };
    let targets = backfill::targets(body.crm.as_deref(), &objects).map_err(bad)?;
    let since = body
        .since
        .as_ref()
        .map(|v| parse_time("since", v))
        .transpose()?;
    if since.is_some() && body.full {
        return Err(bad("since and full exclude each other".into()));
    }
    Ok(SyncPlan {
        targets,
        since,
        full: body.full,
        decide: body.decide,
    })
}

/// `POST /api/sync`: starts a run (409-like 422 when one is under way).
pub(crate) async fn start(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Option<Json<SyncBody>>,
) -> Response {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    match plan(body) {
        Ok(plan) => {
            command(
                &s,
                ControlCommand::Sync {
                    plan,
                    by: caller.name,
                },
            )
            .await
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /api/sync`: the run (in progress or last), every object's cursor,
/// pending resync requests.
pub(crate) async fn status(State(s): State<ApiState>) -> Response {
    let store = s.store.clone();
    match blocking(move || backfill::status(&store).map_err(internal)).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use allot_core::{Crm, ObjectKind};

    #[test]
    fn bodies_become_plans_or_clear_errors() {
        let body = |v: Value| serde_json::from_value::<SyncBody>(v).unwrap();
        let p = plan(body(serde_json::json!({"crm": "salesforce", "objects": "lead,account", "since": "2026-12-01T00:00:00Z"}))).unwrap();
        assert_eq!(
            p.targets,
            vec![
                (Crm::Salesforce, ObjectKind::Account),
                (Crm::Salesforce, ObjectKind::Lead)
            ]
        );
        assert_eq!(p.since, Some(1_796_083_200_000));
        assert_eq!(plan(SyncBody::default()).unwrap().targets.len(), 5);
        for (v, want) in [
            (serde_json::json!({"crm": "dynamics"}), "crm \"dynamics\""),
            (serde_json::json!({"objects": ["deal"]}), "object \"deal\""),
            (serde_json::json!({"since": "yesterday"}), "since"),
            (serde_json::json!({"since": 1, "full": true}), "exclude"),
        ] {
            let e = plan(body(v.clone())).unwrap_err();
            assert!(
                e.body["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(want),
                "{v}: {}",
                e.body
            );
        }
    }
}
