//! `POST /services/oauth2/token`: client credentials and JWT bearer grants.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::json;

use crate::state::{now_ms, SfSession, State};
use crate::Shared;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Salesforce refuses assertions that expire more than three minutes out;
/// a few seconds of clock skew are tolerated.
const MAX_JWT_LIFETIME_SECS: i64 = 180 + 5;

fn oauth_error(error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

pub(crate) async fn token(
    AxState(shared): AxState<Arc<Shared>>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let mut st = shared.lock();
    st.rec.count("sf.token");
    let Ok(Form(form)) = form else {
        return oauth_error(
            "invalid_request",
            "body must be application/x-www-form-urlencoded",
        );
    };
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let opts = &shared.opts;
    let user_id = match field("grant_type") {
        "client_credentials" => {
            if field("client_id") != opts.salesforce_client_id {
                return oauth_error("invalid_client_id", "client identifier invalid");
            }
            if field("client_secret") != opts.salesforce_client_secret {
                return oauth_error("invalid_client", "invalid client credentials");
            }
            st.default_sf_user(opts.salesforce_run_as_user.as_deref())
        }
        JWT_BEARER => match check_assertion(&st, &shared, field("assertion")) {
            Ok(user) => user,
            Err((error, description)) => return oauth_error(error, &description),
        },
        "" => return oauth_error("invalid_request", "grant_type is required"),
        _ => return oauth_error("unsupported_grant_type", "grant type not supported"),
    };
    let n = st.next();
    let org = "00D5f000005WnWgEAK";
    let access_token = format!("{}!AQEmu.{n:016x}", &org[..15]);
    st.sf_sessions.insert(
        access_token.clone(),
        SfSession {
            user_id: user_id.clone(),
        },
    );
    let instance_url = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("http://{h}"))
        .unwrap_or_default();
    let body = json!({
        "access_token": access_token,
        "signature": "emulated",
        "scope": "api",
        "instance_url": instance_url,
        "id": format!("{instance_url}/id/{org}/{user_id}"),
        "token_type": "Bearer",
        "issued_at": now_ms().to_string(),
    });
    Json(body).into_response()
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: i64,
}

/// An OAuth error: `(error, error_description)`.
type OAuthError = (&'static str, String);

/// Checks a JWT bearer assertion; the user it names, or the OAuth error.
fn check_assertion(st: &State, shared: &Shared, assertion: &str) -> Result<String, OAuthError> {
    let invalid = |d: &str| ("invalid_grant", d.to_string());
    let claims: Claims = match &shared.opts.salesforce_jwt_public_key_pem {
        Some(pem) => {
            let key = DecodingKey::from_rsa_pem(pem.as_bytes())
                .map_err(|_| invalid("emulator public key is not an RSA PEM"))?;
            let mut validation = Validation::new(Algorithm::RS256);
            validation.validate_aud = false;
            validation.validate_exp = false;
            validation.required_spec_claims.clear();
            jsonwebtoken::decode::<Claims>(assertion, &key, &validation)
                .map_err(|_| invalid("invalid assertion"))?
                .claims
        }
        None => {
            let payload = assertion
                .split('.')
                .nth(1)
                .and_then(|p| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
                .ok_or_else(|| invalid("invalid assertion"))?;
            serde_json::from_slice(&payload).map_err(|_| invalid("invalid assertion"))?
        }
    };
    if claims.iss != shared.opts.salesforce_client_id {
        return Err(("invalid_client_id", "client identifier invalid".into()));
    }
    if claims.aud.is_empty() {
        return Err(invalid("audience is invalid"));
    }
    let now = now_ms() / 1000;
    if claims.exp <= now {
        return Err(invalid("expired authorization code"));
    }
    if claims.exp - now > MAX_JWT_LIFETIME_SECS {
        return Err(invalid("assertion expiry is more than 3 minutes away"));
    }
    st.sf_users
        .iter()
        .find(|u| {
            u.is_active
                && (u.username.as_deref() == Some(claims.sub.as_str()) || u.email == claims.sub)
        })
        .map(|u| u.id.clone())
        .ok_or_else(|| invalid("user hasn't approved this consumer"))
}
