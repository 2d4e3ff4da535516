//! HubSpot authentication: a private-app token, or OAuth access tokens
//! refreshed ahead of their `expires_in` (a 401 is not a reliable signal).

use std::fmt;
use std::time::{Duration, Instant};

use allot_core::Crm;
use serde::Deserialize;

use crate::http::{self, Reply};
use crate::CrmError;

/// The OAuth token endpoint, relative to the API base URL.
pub const TOKEN_PATH: &str = "/oauth/v1/token";

/// How the client authenticates.
#[derive(Clone)]
pub enum HubSpotAuth {
    /// A private app's access token; it does not expire.
    PrivateApp { token: String },
    /// A public app's OAuth credentials; access tokens are refreshed with the refresh token.
    OAuth {
        client_id: String,
        client_secret: String,
        refresh_token: String,
    },
}

impl fmt::Debug for HubSpotAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HubSpotAuth::PrivateApp { .. } => f
                .debug_struct("PrivateApp")
                .field("token", &"<redacted>")
                .finish(),
            HubSpotAuth::OAuth { client_id, .. } => f
                .debug_struct("OAuth")
                .field("client_id", client_id)
                .field("client_secret", &"<redacted>")
                .field("refresh_token", &"<redacted>")
                .finish(),
        }
    }
}

/// A usable access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HsToken {
    pub access_token: String,
    /// When the token stops working; `None` for private-app tokens.
    pub expires_at: Option<Instant>,
}

impl HsToken {
    /// Whether the token must be replaced before a call at `now`.
    pub fn needs_refresh(&self, now: Instant, margin: Duration) -> bool {
        self.expires_at
            .is_some_and(|at| needs_refresh(now, at, margin))
    }
}

/// True when `now + margin` has reached `expires_at`.
pub fn needs_refresh(now: Instant, expires_at: Instant, margin: Duration) -> bool {
    now.checked_add(margin).is_none_or(|t| t >= expires_at)
}

/// The form of a refresh request.
pub(crate) fn refresh_form(
    client_id: &str,
    client_secret: &str,
    refresh_token: &str,
) -> [(&'static str, String); 4] {
    [
        ("grant_type", "refresh_token".to_string()),
        ("client_id", client_id.to_string()),
        ("client_secret", client_secret.to_string()),
        ("refresh_token", refresh_token.to_string()),
    ]
}

#[derive(Deserialize)]
struct RefreshBody {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    expires_in: u64,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
}

/// Reads a refresh answer received at `now`: the new token and, when the
/// server rotated it, the new refresh token.
pub(crate) fn parse_refresh_reply(
    reply: &Reply,
    now: Instant,
) -> Result<(HsToken, Option<String>), CrmError> {
    let endpoint = format!("POST {TOKEN_PATH}");
    if reply.status != 200 {
        let message = match serde_json::from_slice::<ErrorBody>(&reply.body) {
            Ok(b) if !b.status.is_empty() || !b.message.is_empty() => {
                format!("{}: {}", b.status, b.message)
            }
            _ => reply.body_snippet(),
        };
        if reply.status >= 500 || reply.status == 429 {
            return Err(CrmError::Api {
                crm: Crm::Hubspot,
                endpoint,
                status: reply.status,
                code: String::new(),
                message,
                retry_after: reply.retry_after(),
            });
        }
        return Err(CrmError::Auth {
            crm: Crm::Hubspot,
            endpoint,
            status: Some(reply.status),
            message,
        });
    }
    let body: RefreshBody = serde_json::from_slice(&reply.body).map_err(|e| CrmError::Decode {
        crm: Crm::Hubspot,
        endpoint,
        message: e.to_string(),
    })?;
    let token = HsToken {
        access_token: body.access_token,
        expires_at: now.checked_add(Duration::from_secs(body.expires_in)),
    };
    Ok((token, body.refresh_token.filter(|t| !t.is_empty())))
}

/// Exchanges the refresh token for a new access token.
pub(crate) async fn refresh(
    http_client: &reqwest::Client,
    base_url: &str,
    client_id: &str,
    client_secret: &str,
    refresh_token: &str,
) -> Result<(HsToken, Option<String>), CrmError> {
    let request = http_client
        .post(http::join(base_url, TOKEN_PATH))
        .header("Accept", "application/json")
        .form(&refresh_form(client_id, client_secret, refresh_token));
    let sent_at = Instant::now();
    let reply = http::execute(Crm::Hubspot, &format!("POST {TOKEN_PATH}"), request).await?;
    parse_refresh_reply(&reply, sent_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: Default::default(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn refresh_reply_is_parsed() {
        let now = Instant::now();
        // The documented answer of POST /oauth/v1/token.
        let body = r#"{"token_type":"bearer","refresh_token":"1e8fbfb1-8e96-4826-8b8d-c8af73715","access_token":"CIrToaiiMhIHAAEAQAAAARiO1ooBIOP0sgEokuLtAEaOaTFnToZ3VjUbtl46MAAAAEAAAAAgAAAAAAAAAAAACAAAAAAAOABAAAAAAAAAAAAAAAQAkIUVrptEzQ4hQHP89Eoahkq-51dhoFSgNuYTFSAFoA","expires_in":1800}"#;
        let (token, refresh) = parse_refresh_reply(&reply(200, body), now).unwrap();
        assert!(token.access_token.starts_with("CIrToaii"));
        assert_eq!(token.expires_at, Some(now + Duration::from_secs(1800)));
        assert_eq!(
            refresh.as_deref(),
            Some("1e8fbfb1-8e96-4826-8b8d-c8af73715")
        );
    }

    #[test]
    fn refresh_errors_are_classified() {
        let cases = [
            (
                400,
                r#"{"status":"BAD_REFRESH_TOKEN","message":"missing or unknown refresh token","correlationId":"c"}"#,
                "BAD_REFRESH_TOKEN: missing or unknown refresh token",
                false,
            ),
            (502, "gateway", "gateway", true),
        ];
        for (status, body, message, retryable) in cases {
            let e = parse_refresh_reply(&reply(status, body), Instant::now()).unwrap_err();
            assert!(e.to_string().contains(message), "{e}");
            assert_eq!(e.retryable(), retryable);
        }
    }

    #[test]
    fn refresh_happens_a_margin_ahead_of_expiry() {
        let t0 = Instant::now();
        let expires = t0 + Duration::from_secs(1800);
        let margin = Duration::from_secs(300);
        let cases = [
            (Duration::ZERO, false),
            (Duration::from_secs(1499), false),
            (Duration::from_secs(1500), true),
            (Duration::from_secs(1900), true),
        ];
        for (elapsed, want) in cases {
            assert_eq!(
                needs_refresh(t0 + elapsed, expires, margin),
                want,
                "{elapsed:?}"
            );
        }
        let private = HsToken {
            access_token: "pat".into(),
            expires_at: None,
        };
        assert!(!private.needs_refresh(t0 + Duration::from_secs(1_000_000), margin));
    }

    #[test]
    fn debug_redacts_secrets() {
        let a = HubSpotAuth::OAuth {
            client_id: "cid".into(),
            client_secret: "topsecret".into(),
            refresh_token: "rt-secret".into(),
        };
        let shown = format!("{a:?}");
        assert!(
            shown.contains("cid") && !shown.contains("topsecret") && !shown.contains("rt-secret")
        );
        assert_eq!(
            refresh_form("c", "s", "r")[0],
            ("grant_type", "refresh_token".into())
        );
    }
}
