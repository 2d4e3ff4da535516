//! The HubSpot CRM v3 client: token handling, rate-limit header tracking,
//! batch owner updates, reads and owners.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use allot_core::{Crm, ObjectKind};
use reqwest::Method;
use serde_json::{Map, Value};

use super::auth::{self, HsToken, HubSpotAuth};
use super::request::{self, BatchOutcome, HubSpotOwner, HubSpotRateLimit, MAX_BATCH, OWNERS_PATH};
use crate::http::{self, Reply};
use crate::{lock, CrmError, CrmUser, RecordRead, RecordResult};

/// Everything the HubSpot client needs to know.
#[derive(Debug, Clone)]
pub struct HubSpotConfig {
    /// API base URL (`https://api.hubapi.com`); the OAuth token endpoint is under it too.
    pub base_url: String,
    pub auth: HubSpotAuth,
    /// Timeout of every HTTP request, token refreshes included.
    pub timeout: Duration,
    /// OAuth tokens are refreshed this long before `expires_in` runs out.
    pub refresh_margin: Duration,
}

impl HubSpotConfig {
    /// A config with a 30 s timeout and a 5 minute refresh margin.
    pub fn new(base_url: impl Into<String>, auth: HubSpotAuth) -> HubSpotConfig {
        HubSpotConfig {
            base_url: base_url.into(),
            auth,
            timeout: Duration::from_secs(30),
            refresh_margin: Duration::from_secs(300),
        }
    }
}

/// A HubSpot CRM v3 client. Cheap to clone; clones share the token and the
/// latest rate-limit headers.
#[derive(Debug, Clone)]
pub struct HubSpotClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: HubSpotConfig,
    http: reqwest::Client,
    /// The current token and refresh token; the async lock makes concurrent
    /// callers share one refresh.
    token: tokio::sync::Mutex<TokenState>,
    /// Latest rate-limit headers seen.
    rate: Mutex<Option<HubSpotRateLimit>>,
}

struct TokenState {
    token: Option<HsToken>,
    /// The refresh token in force (HubSpot may rotate it).
    refresh_token: String,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSpotClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HubSpotClient {
    /// Checks the config and builds the HTTP client. No I/O.
    pub fn new(config: HubSpotConfig) -> Result<HubSpotClient, CrmError> {
        if !config.base_url.starts_with("http") {
            return Err(CrmError::Config {
                crm: Crm::Hubspot,
                message: format!("base URL {:?} is not an http(s) URL", config.base_url),
            });
        }
        let state = match &config.auth {
            HubSpotAuth::PrivateApp { token } => TokenState {
                token: Some(HsToken {
                    access_token: token.clone(),
                    expires_at: None,
                }),
                refresh_token: String::new(),
            },
            HubSpotAuth::OAuth { refresh_token, .. } => TokenState {
                token: None,
                refresh_token: refresh_token.clone(),
            },
        };
        let http = http::build(Crm::Hubspot, config.timeout)?;
        Ok(HubSpotClient {
            inner: Arc::new(Inner {
                config,
                http,
                token: tokio::sync::Mutex::new(state),
                rate: Mutex::new(None),
            }),
        })
    }

    /// At most this many inputs per [`HubSpotClient::update_owners`] call.
    pub fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    /// The latest `X-HubSpot-RateLimit-*` headers seen.
    pub fn rate_limit(&self) -> Option<HubSpotRateLimit> {
        *lock(&self.inner.rate)
    }

    /// Sets `hubspot_owner_id` on up to 100 contacts or companies in one batch
    /// call. Results are per input, in input order (see
    /// [`request::parse_batch_reply`] for how a 207 is matched to inputs).
    pub async fn update_owners<I: AsRef<str>, O: AsRef<str>>(
        &self,
        object: ObjectKind,
        updates: &[(I, O)],
    ) -> Result<Vec<RecordResult>, CrmError> {
        let object_type = request::object_type(object)?;
        if updates.len() > MAX_BATCH {
            return Err(CrmError::BatchTooLarge {
                crm: Crm::Hubspot,
                max: MAX_BATCH,
                got: updates.len(),
            });
        }
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let path = request::batch_update_path(object_type);
        let endpoint = format!("POST {path}");
        let body = request::owner_update_body(updates);
        let reply = self.send(Method::POST, &path, &[], Some(&body)).await?;
        if reply.status != 200 && reply.status != 207 {
            return Err(request::error_from_reply(&endpoint, &reply));
        }
        let ids: Vec<&str> = updates.iter().map(|(id, _)| id.as_ref()).collect();
        let outcomes =
            request::parse_batch_answer(&ids, reply.status, &reply.body).map_err(|message| {
                CrmError::Decode {
                    crm: Crm::Hubspot,
                    endpoint,
                    message,
                }
            })?;
        let unanswered: Vec<&str> = ids
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| **o == BatchOutcome::Unanswered)
            .map(|(id, _)| *id)
            .collect();
        let reads = self.confirm_reads(object, &unanswered).await;
        Ok(updates
            .iter()
            .zip(outcomes)
            .map(|((id, owner), outcome)| {
                let id = id.as_ref();
                match outcome {
                    BatchOutcome::Written => RecordResult::success(id),
                    BatchOutcome::Failed(error) => RecordResult::failure(id, error),
                    BatchOutcome::Unanswered => {
                        request::confirm_unanswered(id, owner.as_ref(), reads.get(id))
                    }
                }
            })
            .collect())
    }

    /// Reads back the owner of the inputs a 207 left out (`batch/read`); an
    /// id missing from the map could not be read (the call failed), which
    /// [`request::confirm_unanswered`] turns into a retry.
    async fn confirm_reads(&self, object: ObjectKind, ids: &[&str]) -> HashMap<String, RecordRead> {
        if ids.is_empty() {
            return HashMap::new();
        }
        match self
            .read_records(object, ids, &[request::OWNER_PROPERTY])
            .await
        {
            Ok(reads) => {
                tracing::info!(%object, records = ids.len(), "hubspot 207 left inputs out, read them back");
                reads.into_iter().collect()
            }
            Err(error) => {
                tracing::warn!(%object, records = ids.len(), %error, "hubspot 207 left inputs out and reading them back failed");
                HashMap::new()
            }
        }
    }

    /// Reads a record's properties (HubSpot's default set when `properties` is
    /// empty); `None` when it does not exist (404).
    pub async fn get_record(
        &self,
        object: ObjectKind,
        id: &str,
        properties: &[&str],
    ) -> Result<Option<Map<String, Value>>, CrmError> {
        let path = request::record_path(request::object_type(object)?, id);
        let endpoint = format!("GET {path}");
        let query: Vec<(&str, String)> = if properties.is_empty() {
            Vec::new()
        } else {
            vec![("properties", properties.join(","))]
        };
        let reply = self.send(Method::GET, &path, &query, None).await?;
        match reply.status {
            200 => request::parse_record(&reply.body)
                .map(Some)
                .map_err(|message| CrmError::Decode {
                    crm: Crm::Hubspot,
                    endpoint,
                    message,
                }),
            404 => Ok(None),
            _ => Err(request::error_from_reply(&endpoint, &reply)),
        }
    }

    /// All owners that are archived (`true`) or not (`false`), all pages.
    pub async fn owners(&self, archived: bool) -> Result<Vec<HubSpotOwner>, CrmError> {
        let endpoint = format!("GET {OWNERS_PATH}");
        let mut owners = Vec::new();
        let mut after: Option<String> = None;
        let mut seen: HashSet<String> = HashSet::new();
        // A repeated cursor stops the loop at once; the bound on pages guards
        // against a server that makes up new cursors forever.
        for page_no in 1..=10_000usize {
            let mut query = vec![
                ("limit", "100".to_string()),
                ("archived", archived.to_string()),
            ];
            if let Some(a) = after.take() {
                query.push(("after", a));
            }
            let reply = self.send(Method::GET, OWNERS_PATH, &query, None).await?;
            if reply.status != 200 {
                return Err(request::error_from_reply(&endpoint, &reply));
            }
            let (page, next) =
                request::parse_owners_page(&reply.body).map_err(|message| CrmError::Decode {
                    crm: Crm::Hubspot,
                    endpoint: endpoint.clone(),
                    message,
                })?;
            owners.extend(page);
            match next {
                Some(n) if !seen.insert(n.clone()) => {
                    return Err(CrmError::Decode {
                        crm: Crm::Hubspot,
                        endpoint,
                        message: format!(
                            "page {page_no} of owners (archived={archived}) gives paging.next.after {n:?}, \
                             a cursor already followed: the server loops its paging, owners not read"
                        ),
                    });
                }
                Some(n) => after = Some(n),
                None => return Ok(owners),
            }
        }
        Err(CrmError::Decode {
            crm: Crm::Hubspot,
            endpoint,
            message: "more than 10000 pages of owners".into(),
        })
    }

    /// Every owner, active and archived, as CRM users (`active` = not archived).
    pub async fn users(&self) -> Result<Vec<CrmUser>, CrmError> {
        let mut owners = self.owners(false).await?;
        owners.extend(self.owners(true).await?);
        Ok(owners
            .into_iter()
            .map(|o| {
                let name = [o.first_name.as_deref(), o.last_name.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                CrmUser {
                    id: o.id,
                    active: !o.archived,
                    email: o.email,
                    name: Some(name).filter(|n| !n.is_empty()),
                }
            })
            .collect())
    }

    /// Sends one call with a valid token; with OAuth, a 401 forces one refresh
    /// and one more try (tokens are refreshed ahead of expiry anyway).
    pub(super) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Reply, CrmError> {
        let token = self.token(None).await?;
        let reply = self.send_once(&token, &method, path, query, body).await?;
        let oauth = matches!(self.inner.config.auth, HubSpotAuth::OAuth { .. });
        if reply.status != 401 || !oauth {
            return Ok(reply);
        }
        tracing::info!(path, "hubspot token refused, refreshing");
        let token = self.token(Some(&token)).await?;
        self.send_once(&token, &method, path, query, body).await
    }

    /// One HTTP exchange; records the rate-limit headers.
    async fn send_once(
        &self,
        token: &HsToken,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Reply, CrmError> {
        let mut request = self
            .inner
            .http
            .request(
                method.clone(),
                http::join(&self.inner.config.base_url, path),
            )
            .bearer_auth(&token.access_token)
            .header("Accept", "application/json");
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let reply = http::execute(Crm::Hubspot, &format!("{method} {path}"), request).await?;
        if let Some(rate) = request::parse_rate_limit(&reply.headers) {
            *lock(&self.inner.rate) = Some(rate);
        }
        Ok(reply)
    }

    /// A token valid for at least the refresh margin. `refused` is a token the
    /// API just refused: it is replaced unless another caller already did.
    async fn token(&self, refused: Option<&HsToken>) -> Result<HsToken, CrmError> {
        let HubSpotAuth::OAuth {
            client_id,
            client_secret,
            ..
        } = &self.inner.config.auth
        else {
            let state = self.inner.token.lock().await;
            return state.token.clone().ok_or_else(|| CrmError::Config {
                crm: Crm::Hubspot,
                message: "no private app token".into(),
            });
        };
        let mut state = self.inner.token.lock().await;
        let margin = self.inner.config.refresh_margin;
        if let Some(token) = state.token.as_ref() {
            let fresh = !token.needs_refresh(Instant::now(), margin);
            if fresh && refused != Some(token) {
                return Ok(token.clone());
            }
        }
        let (token, rotated) = auth::refresh(
            &self.inner.http,
            &self.inner.config.base_url,
            client_id,
            client_secret,
            &state.refresh_token,
        )
        .await?;
        if let Some(r) = rotated {
            state.refresh_token = r;
        }
        state.token = Some(token.clone());
        Ok(token)
    }
}
