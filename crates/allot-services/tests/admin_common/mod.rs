//! A store with known records, the embedded owner of the pipeline with its
//! controller, and the API router in front of them, driven by hand.
#![allow(clippy::unwrap_used, dead_code)]

use std::sync::Arc;

use allot_core::{Millis, ObjectKind, Record, StateOp};
use allot_rules::RuleSet;
use allot_services::admin::{AdminCtx, Auth};
use allot_services::api::{self, ApiState};
use allot_services::control::{ControlHandle, Controller};
use allot_services::embedded::EmbeddedIngest;
use allot_services::hydrate::Hydrator;
use allot_services::metrics::Metrics;
use allot_services::pipeline::{EchoConfig, FieldMaps, Pipeline};
use allot_store::Store;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::Notify;
use tower::ServiceExt;

pub const V1: &str = r#"
version = "v1"
[[reps]]
id = "ana"
[[reps]]
id = "ben"
[[reps]]
id = "cara"
[[teams]]
id = "t"
members = ["ana", "ben"]
[[territories]]
id = "us"
owner = { team = "t" }
criteria = { field = "country", equals = "US" }
"#;

pub const V2: &str = r#"
version = "v2"
[[reps]]
id = "ana"
[[reps]]
id = "ben"
[[reps]]
id = "cara"
[[territories]]
id = "us"
owner = { rep = "cara" }
criteria = { field = "country", equals = "US" }
"#;

pub const TOKENS: &str =
    "root:admin:admin-secret-1, ops:operator:operator-secret-1, eve:viewer:viewer-secret-1";
pub const ADMIN: &str = "admin-secret-1";
pub const OPERATOR: &str = "operator-secret-1";
pub const VIEWER: &str = "viewer-secret-1";

pub struct Rig {
    pub app: Router,
    pub ingest: EmbeddedIngest,
    pub store: Arc<Store>,
    /// A time after every API call's clock reading, for the owner's steps.
    pub t0: Millis,
}

/// `n` US leads `L0..`, owned alternately by ana and ben, under v1.
pub fn rig(n: usize, rate: u32) -> Rig {
    let store = Arc::new(Store::temporary().unwrap());
    store.put_rule_version("v1", V1, 0, Some("test")).unwrap();
    let mut b = store.batch();
    for i in 0..n {
        let owner = if i % 2 == 0 { "ana" } else { "ben" };
        let r = Record::new(ObjectKind::Lead, format!("L{i}"))
            .with("country", "US")
            .with_owner(owner);
        b.put_record(&r, None);
        b.apply_state_ops(&[StateOp::OpenDelta {
            rep: owner.into(),
            delta: 1,
        }]);
    }
    store.commit(b).unwrap();
    let rules = Arc::new(RuleSet::from_toml(V1, "v1").unwrap());
    let metrics = Metrics::new();
    let pipeline = Pipeline::new(
        store.clone(),
        rules.clone(),
        FieldMaps::default(),
        EchoConfig::default(),
        Hydrator::Off,
        metrics.clone(),
    )
    .unwrap();
    let (handle, inbox) = ControlHandle::channel();
    let mut ingest = EmbeddedIngest {
        store: store.clone(),
        pipeline,
        outbox_ready: Arc::new(Notify::new()),
        max_chunk: 64,
        sla: None,
        control: Some(Controller::new(Some(inbox), rules, rate)),
    };
    let t0 = allot_services::now_ms() + 60_000;
    let c = ingest.control.as_mut().unwrap();
    c.start(&mut ingest.pipeline, t0).unwrap();
    let state = ApiState {
        store: store.clone(),
        metrics,
        admin: AdminCtx::new(Auth::parse(TOKENS).unwrap(), handle),
    };
    Rig {
        app: api::router(state),
        ingest,
        store,
        t0,
    }
}

fn request(method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some_and(|b| b.trim_start().starts_with(['{', '['])) {
        b = b.header("content-type", "application/json");
    }
    b.body(Body::from(body.unwrap_or_default().to_string()))
        .unwrap()
}

/// The status, the `WWW-Authenticate` header and the JSON body of one call.
pub async fn call_full(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let r = app
        .clone()
        .oneshot(request(method, path, token, body))
        .await
        .unwrap();
    let status = r.status();
    let www = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, www, v)
}

pub async fn call(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let (s, _, v) = call_full(app, method, path, token, body).await;
    (s, v)
}

/// A call whose command the owner applies (at `rig.t0`) while it waits.
pub async fn call_owned(
    rig: &mut Rig,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let app = rig.app.clone();
    let (method, path, token, body) = (
        method.to_string(),
        path.to_string(),
        token.map(str::to_string),
        body.map(str::to_string),
    );
    let mut task =
        tokio::spawn(
            async move { call(&app, &method, &path, token.as_deref(), body.as_deref()).await },
        );
    loop {
        let c = rig.ingest.control.as_mut().unwrap();
        tokio::select! {
            r = &mut task => return r.unwrap(),
            Some(env) = c.next() => rig.ingest.command(env, rig.t0).await.unwrap(),
        }
    }
}
