//! The Salesforce REST client: token cache, the required headers, limit
//! tracking, and the one retry after an expired session.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use allot_core::{Crm, ObjectKind};
use reqwest::Method;
use serde_json::{Map, Value};

use super::auth::{self, SalesforceAuth, SfToken, Signer};
use super::request::{self, MAX_BATCH};
use crate::http::{self, Reply};
use crate::{lock, CrmError, CrmUser, RecordResult};

/// Everything the Salesforce client needs to know.
#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    /// Login / My Domain URL the token is requested from
    /// (`https://acme.my.salesforce.com`). API calls go to the token's `instance_url`.
    pub login_url: String,
    pub auth: SalesforceAuth,
    /// REST API version without the `v` (`62.0`).
    pub api_version: String,
    /// Sent as `Sforce-Call-Options: client=<id>` on every call, so the change
    /// events allot causes come back marked as its own.
    pub call_options_client: String,
    /// Timeout of every HTTP request, token requests included.
    pub timeout: Duration,
}

impl SalesforceConfig {
    /// A config with API version 62.0, client name `allot` and a 30 s timeout.
    pub fn new(login_url: impl Into<String>, auth: SalesforceAuth) -> SalesforceConfig {
        SalesforceConfig {
            login_url: login_url.into(),
            auth,
            api_version: request::API_VERSION.to_string(),
            call_options_client: "allot".to_string(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// A Salesforce REST client. Cheap to clone; clones share the token cache and
/// the latest limit usage.
#[derive(Debug, Clone)]
pub struct SalesforceClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: SalesforceConfig,
    http: reqwest::Client,
    signer: Option<Signer>,
    /// The current token; the async lock also makes concurrent callers share one fetch.
    token: tokio::sync::Mutex<Option<SfToken>>,
    /// Latest `Sforce-Limit-Info` api-usage seen.
    usage: Mutex<Option<(u64, u64)>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesforceClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SalesforceClient {
    /// Checks the config (parses the JWT key) and builds the HTTP client. No I/O.
    pub fn new(config: SalesforceConfig) -> Result<SalesforceClient, CrmError> {
        let signer = match &config.auth {
            SalesforceAuth::JwtBearer {
                private_key_pem, ..
            } => Some(Signer::from_pem(private_key_pem)?),
            SalesforceAuth::ClientCredentials { .. } => None,
        };
        if !config.login_url.starts_with("http") {
            return Err(CrmError::Config {
                crm: Crm::Salesforce,
                message: format!("login URL {:?} is not an http(s) URL", config.login_url),
            });
        }
        let http = http::build(Crm::Salesforce, config.timeout)?;
        Ok(SalesforceClient {
            inner: Arc::new(Inner {
                config,
                http,
                signer,
                token: tokio::sync::Mutex::new(None),
                usage: Mutex::new(None),
            }),
        })
    }

    /// At most this many records per [`SalesforceClient::update_owners`] call.
    pub fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    /// The REST API version this client speaks (`62.0`).
    pub(super) fn api_version(&self) -> &str {
        &self.inner.config.api_version
    }

    /// The latest `api-usage=N/M` the org reported, `(used, daily quota)`.
    pub fn limit_usage(&self) -> Option<(u64, u64)> {
        *lock(&self.inner.usage)
    }

    /// Sets `OwnerId` on up to 200 records of one kind in one composite call
    /// (`allOrNone` false). Results are per record, in input order.
    pub async fn update_owners<I: AsRef<str>, O: AsRef<str>>(
        &self,
        object: ObjectKind,
        updates: &[(I, O)],
    ) -> Result<Vec<RecordResult>, CrmError> {
        if updates.len() > MAX_BATCH {
            return Err(CrmError::BatchTooLarge {
                crm: Crm::Salesforce,
                max: MAX_BATCH,
                got: updates.len(),
            });
        }
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let path = request::composite_path(&self.inner.config.api_version);
        let endpoint = format!("PATCH {path}");
        let body = request::owner_update_body(object, updates);
        let reply = self.send(Method::PATCH, &path, &[], Some(&body)).await?;
        if reply.status != 200 {
            return Err(request::error_from_reply(&endpoint, &reply));
        }
        let ids: Vec<&str> = updates.iter().map(|(id, _)| id.as_ref()).collect();
        request::parse_save_results(&ids, &reply.body).map_err(|message| CrmError::Decode {
            crm: Crm::Salesforce,
            endpoint,
            message,
        })
    }

    /// Reads a record's fields (all fields when `fields` is empty); `None` when
    /// the record does not exist (404).
    pub async fn get_record(
        &self,
        object: ObjectKind,
        id: &str,
        fields: &[&str],
    ) -> Result<Option<Map<String, Value>>, CrmError> {
        let path = request::record_path(&self.inner.config.api_version, object, id);
        let query: Vec<(&str, String)> = if fields.is_empty() {
            Vec::new()
        } else {
            vec![("fields", fields.join(","))]
        };
        let reply = self.send(Method::GET, &path, &query, None).await?;
        match reply.status {
            200 => serde_json::from_slice(&reply.body)
                .map(Some)
                .map_err(|e| decode_error(&format!("GET {path}"), e)),
            404 => Ok(None),
            _ => Err(request::error_from_reply(&format!("GET {path}"), &reply)),
        }
    }

    /// Every user with its active flag, through SOQL `SELECT Id,IsActive FROM User`
    /// (all pages, following `nextRecordsUrl`).
    pub async fn users(&self) -> Result<Vec<CrmUser>, CrmError> {
        let first = request::query_path(&self.inner.config.api_version);
        let mut users = Vec::new();
        let mut next = Some((first, vec![("q", request::USERS_SOQL.to_string())]));
        let mut seen: HashSet<String> = HashSet::new();
        // A repeated `nextRecordsUrl` stops the loop at once; the bound on
        // pages guards against a server that makes up new ones forever.
        for page_no in 1..=10_000usize {
            let Some((path, query)) = next.take() else {
                return Ok(users);
            };
            let endpoint = format!("GET {path}");
            let reply = self.send(Method::GET, &path, &query, None).await?;
            if reply.status != 200 {
                return Err(request::error_from_reply(&endpoint, &reply));
            }
            let page =
                request::parse_query_page(&reply.body).map_err(|message| CrmError::Decode {
                    crm: Crm::Salesforce,
                    endpoint: endpoint.clone(),
                    message,
                })?;
            users.extend(request::users_from_records(&page.records));
            if let Some(p) = &page.next {
                if !seen.insert(p.clone()) {
                    return Err(CrmError::Decode {
                        crm: Crm::Salesforce,
                        endpoint,
                        message: format!(
                            "page {page_no} of users gives nextRecordsUrl {p:?}, a cursor already \
                             followed: the server loops its paging, users not read"
                        ),
                    });
                }
            }
            next = page.next.map(|p| (p, Vec::new()));
        }
        Err(CrmError::Decode {
            crm: Crm::Salesforce,
            endpoint: "GET query".into(),
            message: "more than 10000 pages of users".into(),
        })
    }

    /// Ids of the active users (see [`SalesforceClient::users`]).
    pub async fn active_users(&self) -> Result<Vec<String>, CrmError> {
        Ok(self
            .users()
            .await?
            .into_iter()
            .filter(|u| u.active)
            .map(|u| u.id)
            .collect())
    }

    /// Sends one API call with the cached token; on 401 `INVALID_SESSION_ID`
    /// fetches a new token and sends once more.
    pub(super) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Reply, CrmError> {
        let token = self.token(None).await?;
        let reply = self.send_once(&token, &method, path, query, body).await?;
        if !request::is_invalid_session(&reply) {
            return Ok(reply);
        }
        tracing::info!(path, "salesforce session expired, fetching a new token");
        let token = self.token(Some(&token)).await?;
        self.send_once(&token, &method, path, query, body).await
    }

    /// One HTTP exchange with the required headers; records the limit usage.
    async fn send_once(
        &self,
        token: &SfToken,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Reply, CrmError> {
        let mut request = self
            .inner
            .http
            .request(method.clone(), http::join(&token.instance_url, path))
            .bearer_auth(&token.access_token)
            .header("Accept", "application/json")
            .header("Sforce-Auto-Assign", "FALSE")
            .header(
                "Sforce-Call-Options",
                format!("client={}", self.inner.config.call_options_client),
            );
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let reply = http::execute(Crm::Salesforce, &format!("{method} {path}"), request).await?;
        if let Some(usage) = http::header_str(&reply.headers, "sforce-limit-info")
            .and_then(request::parse_limit_info)
        {
            *lock(&self.inner.usage) = Some(usage);
        }
        Ok(reply)
    }

    /// The cached token, or a new one. `stale` is a token an API call just
    /// refused: it is dropped unless another caller already replaced it.
    async fn token(&self, stale: Option<&SfToken>) -> Result<SfToken, CrmError> {
        let mut cached = self.inner.token.lock().await;
        if let (Some(stale), Some(current)) = (stale, cached.as_ref()) {
            if current == stale {
                *cached = None;
            }
        }
        if let Some(token) = cached.as_ref() {
            return Ok(token.clone());
        }
        let now_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let config = &self.inner.config;
        let token = auth::fetch_token(
            &self.inner.http,
            &config.login_url,
            &config.auth,
            self.inner.signer.as_ref(),
            now_secs,
        )
        .await?;
        *cached = Some(token.clone());
        Ok(token)
    }
}

fn decode_error(endpoint: &str, e: serde_json::Error) -> CrmError {
    CrmError::Decode {
        crm: Crm::Salesforce,
        endpoint: endpoint.to_string(),
        message: e.to_string(),
    }
}
