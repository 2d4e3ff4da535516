//! Salesforce OAuth: client credentials and the JWT bearer flow.
//!
//! Neither flow returns an expiry or a refresh token: a token is used until an
//! API call answers 401 `INVALID_SESSION_ID`, then a new one is fetched.

use std::fmt;

use allot_core::Crm;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::http::{self, Reply};
use crate::CrmError;

/// The token endpoint, relative to the login (My Domain) URL.
pub const TOKEN_PATH: &str = "/services/oauth2/token";
/// The JWT bearer grant type.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime of a JWT assertion; Salesforce accepts at most three minutes.
pub const JWT_LIFETIME_SECS: u64 = 170;

/// How the client obtains an access token.
#[derive(Clone)]
pub enum SalesforceAuth {
    /// OAuth 2.0 client credentials of a connected app (runs as its run-as user).
    ClientCredentials {
        client_id: String,
        client_secret: String,
    },
    /// OAuth 2.0 JWT bearer: an RS256 assertion signed with the connected
    /// app's certificate key.
    JwtBearer {
        /// The connected app's consumer key (`iss`).
        client_id: String,
        /// The Salesforce username to act as (`sub`).
        username: String,
        /// `aud`: `https://login.salesforce.com`, `https://test.salesforce.com`,
        /// or the community URL.
        audience: String,
        /// PKCS#1 or PKCS#8 PEM of the RSA private key.
        private_key_pem: String,
    },
}

impl fmt::Debug for SalesforceAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SalesforceAuth::ClientCredentials { client_id, .. } => f
                .debug_struct("ClientCredentials")
                .field("client_id", client_id)
                .field("client_secret", &"<redacted>")
                .finish(),
            SalesforceAuth::JwtBearer {
                client_id,
                username,
                audience,
                ..
            } => f
                .debug_struct("JwtBearer")
                .field("client_id", client_id)
                .field("username", username)
                .field("audience", audience)
                .field("private_key_pem", &"<redacted>")
                .finish(),
        }
    }
}

/// The claims of a JWT bearer assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    /// Expiry, epoch seconds.
    pub exp: u64,
}

impl JwtClaims {
    /// Claims for an assertion made at `now_secs`, expiring within three minutes.
    pub fn new(client_id: &str, username: &str, audience: &str, now_secs: u64) -> JwtClaims {
        JwtClaims {
            iss: client_id.to_string(),
            sub: username.to_string(),
            aud: audience.to_string(),
            exp: now_secs + JWT_LIFETIME_SECS,
        }
    }
}

/// A parsed private key, ready to sign assertions (parsed once, at client creation).
#[derive(Clone)]
pub(crate) struct Signer(EncodingKey);

impl Signer {
    pub fn from_pem(pem: &str) -> Result<Signer, CrmError> {
        EncodingKey::from_rsa_pem(pem.as_bytes())
            .map(Signer)
            .map_err(|e| CrmError::Config {
                crm: Crm::Salesforce,
                message: format!("JWT bearer private key is not an RSA PEM: {e}"),
            })
    }

    /// The signed RS256 assertion for `claims`.
    pub fn assertion(&self, claims: &JwtClaims) -> Result<String, CrmError> {
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &self.0).map_err(|e| {
            CrmError::Config {
                crm: Crm::Salesforce,
                message: format!("cannot sign the JWT assertion: {e}"),
            }
        })
    }
}

/// A cached access token and the instance it is valid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SfToken {
    pub access_token: String,
    /// Base URL for API calls (`instance_url`), or the login URL when absent.
    pub instance_url: String,
}

/// The form fields of a token request. `assertion` is required for JWT bearer.
pub(crate) fn token_form(auth: &SalesforceAuth, assertion: Option<&str>) -> Vec<(String, String)> {
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    match auth {
        SalesforceAuth::ClientCredentials {
            client_id,
            client_secret,
        } => vec![
            pair("grant_type", "client_credentials"),
            pair("client_id", client_id),
            pair("client_secret", client_secret),
        ],
        SalesforceAuth::JwtBearer { .. } => vec![
            pair("grant_type", JWT_BEARER_GRANT),
            pair("assertion", assertion.unwrap_or_default()),
        ],
    }
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    #[serde(default)]
    instance_url: Option<String>,
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Reads a token endpoint answer.
pub(crate) fn parse_token_reply(reply: &Reply, login_url: &str) -> Result<SfToken, CrmError> {
    let endpoint = format!("POST {TOKEN_PATH}");
    if reply.status != 200 {
        let message = match serde_json::from_slice::<OAuthErrorBody>(&reply.body) {
            Ok(b) if !b.error.is_empty() => format!("{}: {}", b.error, b.error_description),
            _ => reply.body_snippet(),
        };
        if reply.status >= 500 {
            return Err(CrmError::Api {
                crm: Crm::Salesforce,
                endpoint,
                status: reply.status,
                code: String::new(),
                message,
                retry_after: reply.retry_after(),
            });
        }
        return Err(CrmError::Auth {
            crm: Crm::Salesforce,
            endpoint,
            status: Some(reply.status),
            message,
        });
    }
    let body: TokenBody = serde_json::from_slice(&reply.body).map_err(|e| CrmError::Decode {
        crm: Crm::Salesforce,
        endpoint,
        message: e.to_string(),
    })?;
    Ok(SfToken {
        access_token: body.access_token,
        instance_url: body
            .instance_url
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| login_url.to_string()),
    })
}

/// Fetches a new token from `{login_url}/services/oauth2/token`.
pub(crate) async fn fetch_token(
    http_client: &reqwest::Client,
    login_url: &str,
    auth: &SalesforceAuth,
    signer: Option<&Signer>,
    now_secs: u64,
) -> Result<SfToken, CrmError> {
    let assertion = match (auth, signer) {
        (
            SalesforceAuth::JwtBearer {
                client_id,
                username,
                audience,
                ..
            },
            Some(signer),
        ) => Some(signer.assertion(&JwtClaims::new(client_id, username, audience, now_secs))?),
        _ => None,
    };
    let form = token_form(auth, assertion.as_deref());
    let request = http_client
        .post(http::join(login_url, TOKEN_PATH))
        .header("Accept", "application/json")
        .form(&form);
    let reply = http::execute(Crm::Salesforce, &format!("POST {TOKEN_PATH}"), request).await?;
    parse_token_reply(&reply, login_url)
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
    fn token_reply_is_parsed() {
        // The documented client-credentials answer.
        let body = r#"{"access_token":"00D5f000005WnWg!AQ0AQH0","signature":"uAhd5VnP8rOD7jPQ8Ne0tVcUHtB+zeqxaRvmG8F5AeY=",
            "scope":"api","instance_url":"https://acme.my.salesforce.com","id":"https://login.salesforce.com/id/00D5f000005WnWgEAK/0055f000005mc66AAA",
            "token_type":"Bearer","issued_at":"1714153779000"}"#;
        let t = parse_token_reply(&reply(200, body), "https://login.example").unwrap();
        assert_eq!(t.access_token, "00D5f000005WnWg!AQ0AQH0");
        assert_eq!(t.instance_url, "https://acme.my.salesforce.com");

        let t = parse_token_reply(&reply(200, r#"{"access_token":"x"}"#), "https://l").unwrap();
        assert_eq!(t.instance_url, "https://l");
    }

    #[test]
    fn token_errors_are_auth_errors() {
        let cases = [
            (
                400,
                r#"{"error":"invalid_client","error_description":"invalid client credentials"}"#,
                "invalid_client: invalid client credentials",
                false,
            ),
            (
                400,
                r#"{"error":"invalid_grant","error_description":"expired authorization code"}"#,
                "invalid_grant: expired authorization code",
                false,
            ),
            (503, "down", "down", true),
        ];
        for (status, body, message, retryable) in cases {
            let e = parse_token_reply(&reply(status, body), "l").unwrap_err();
            assert!(e.to_string().contains(message), "{e}");
            assert_eq!(e.retryable(), retryable, "{e}");
        }
    }

    #[test]
    fn jwt_claims_expire_within_three_minutes() {
        let c = JwtClaims::new(
            "3MVG9",
            "ops@acme.example",
            "https://login.salesforce.com",
            1_000,
        );
        assert_eq!(c.iss, "3MVG9");
        assert_eq!(c.sub, "ops@acme.example");
        assert_eq!(c.aud, "https://login.salesforce.com");
        assert!(c.exp > 1_000 && c.exp <= 1_000 + 180);
    }

    #[test]
    fn token_forms_follow_the_grant() {
        let cc = SalesforceAuth::ClientCredentials {
            client_id: "id".into(),
            client_secret: "secret".into(),
        };
        let form = token_form(&cc, None);
        assert!(form.contains(&("grant_type".into(), "client_credentials".into())));
        assert!(form.contains(&("client_secret".into(), "secret".into())));
        assert!(!format!("{cc:?}").contains("secret\""));

        let jwt = SalesforceAuth::JwtBearer {
            client_id: "id".into(),
            username: "u".into(),
            audience: "a".into(),
            private_key_pem: "pem".into(),
        };
        let form = token_form(&jwt, Some("a.b.c"));
        assert_eq!(
            form,
            vec![
                ("grant_type".to_string(), JWT_BEARER_GRANT.to_string()),
                ("assertion".to_string(), "a.b.c".to_string())
            ]
        );
    }

    #[test]
    fn bad_pem_is_a_config_error() {
        let e = Signer::from_pem("not a key").err().unwrap();
        assert!(matches!(e, CrmError::Config { .. }), "{e}");
    }
}
