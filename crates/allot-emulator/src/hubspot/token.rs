//! `POST /oauth/v1/token`: the refresh-token grant.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::expiry;
use crate::state::State;
use crate::Shared;

fn refused(st: &mut State, status: &str, message: &str) -> Response {
    let body = json!({"status": status, "message": message, "correlationId": st.uuid()});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

pub(crate) async fn token(
    AxState(shared): AxState<Arc<Shared>>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let mut st = shared.lock();
    st.rec.count("hs.token");
    let Ok(Form(form)) = form else {
        return refused(
            &mut st,
            "BAD_REQUEST",
            "body must be application/x-www-form-urlencoded",
        );
    };
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let opts = &shared.opts;
    if field("grant_type") != "refresh_token" {
        return refused(
            &mut st,
            "BAD_GRANT_TYPE",
            "grant_type must be refresh_token",
        );
    }
    if field("client_id") != opts.hubspot_client_id {
        return refused(&mut st, "BAD_CLIENT_ID", "missing or unknown client id");
    }
    if field("client_secret") != opts.hubspot_client_secret {
        return refused(
            &mut st,
            "BAD_CLIENT_SECRET",
            "missing or invalid client secret",
        );
    }
    if field("refresh_token") != opts.hubspot_refresh_token {
        return refused(
            &mut st,
            "BAD_REFRESH_TOKEN",
            "missing or unknown refresh token",
        );
    }
    let n = st.next();
    let access_token = format!("CJSP5qf1MhIHAgEAQAAAARiO1ooBIEmu{n:016x}");
    st.hs_tokens
        .insert(access_token.clone(), expiry(opts.hubspot_token_ttl_secs));
    let body = json!({
        "token_type": "bearer",
        "refresh_token": opts.hubspot_refresh_token,
        "access_token": access_token,
        "expires_in": opts.hubspot_token_ttl_secs,
    });
    Json(body).into_response()
}
