//! CRM REST clients: Salesforce and HubSpot.
//!
//! Each client handles its CRM's authentication, batch limits and limit
//! headers, and answers per-record results with retry hints. The clients
//! retry only once, after a refused session; retrying, backoff and pacing are
//! the writer's job, helped by the pure [`TokenBucket`] and [`Backoff`] here.
//! Every caller of one CRM draws on that connection's [`Budget`] (over the
//! pure [`Limiter`]), so together they stay under the CRM's limits.
//!
//! Each adapter is split into `auth` (tokens), `request` (pure request
//! building and answer parsing), and `client` (sending).

pub mod budget;
mod error;
mod http;
pub mod hubspot;
pub mod limiter;
mod pacing;
pub mod salesforce;

use std::sync::{Mutex, MutexGuard};

use allot_core::{Crm, Millis, ObjectKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use budget::{Budget, Budgets};
pub use error::{CrmError, RecordError, RecordErrorKind, RecordResult};
pub use hubspot::{
    hubspot_signature_v3, verify_hubspot_signature_v3, HubSpotAuth, HubSpotClient, HubSpotConfig,
    HubSpotOwner, HubSpotRateLimit, SignatureError,
};
pub use limiter::{Limiter, PauseReason, Pressure, RateConfig};
pub use pacing::{Backoff, TokenBucket};
pub use salesforce::{SalesforceAuth, SalesforceClient, SalesforceConfig};

/// A CRM user who can own records: a Salesforce `User` or a HubSpot owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmUser {
    /// The id records hold as their owner (`OwnerId`, `hubspot_owner_id`).
    pub id: String,
    /// Salesforce `IsActive`; HubSpot: not archived.
    pub active: bool,
    pub email: Option<String>,
    pub name: Option<String>,
}

/// The latest usage a CRM reported, for pacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "crm", rename_all = "lowercase")]
pub enum LimitInfo {
    /// `Sforce-Limit-Info: api-usage=used/max` (daily API requests).
    Salesforce { used: u64, max: u64 },
    /// HubSpot's rolling-window headers.
    Hubspot(HubSpotRateLimit),
}

/// What a batched read found for one id.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordRead {
    /// The record's fields (properties), CRM names.
    Found(Map<String, Value>),
    /// The CRM says it does not exist (or is not visible to allot).
    Missing,
    /// Not read this time (a partial answer): read it again.
    NotRead(String),
}

/// One page of an object's book and the cursor of the next page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BookPage {
    /// `(id, fields)` in id order, CRM field names.
    pub records: Vec<(String, Map<String, Value>)>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<String>,
}

/// A client of one of the supported CRMs. The set is closed, so an enum.
#[derive(Debug, Clone)]
pub enum CrmClient {
    Salesforce(SalesforceClient),
    HubSpot(HubSpotClient),
}

impl CrmClient {
    /// Which CRM this client talks to.
    pub fn crm(&self) -> Crm {
        match self {
            CrmClient::Salesforce(_) => Crm::Salesforce,
            CrmClient::HubSpot(_) => Crm::Hubspot,
        }
    }

    /// At most this many records per `update_owners` call (200 / 100).
    pub fn max_batch(&self) -> usize {
        match self {
            CrmClient::Salesforce(c) => c.max_batch(),
            CrmClient::HubSpot(c) => c.max_batch(),
        }
    }

    /// Sets the owner of up to [`CrmClient::max_batch`] records of one kind;
    /// per-record results in input order.
    pub async fn update_owners<I: AsRef<str>, O: AsRef<str>>(
        &self,
        object: ObjectKind,
        updates: &[(I, O)],
    ) -> Result<Vec<RecordResult>, CrmError> {
        match self {
            CrmClient::Salesforce(c) => c.update_owners(object, updates).await,
            CrmClient::HubSpot(c) => c.update_owners(object, updates).await,
        }
    }

    /// Reads the named fields (properties) of a record; `None` when it does not exist.
    pub async fn get_record(
        &self,
        object: ObjectKind,
        id: &str,
        fields: &[&str],
    ) -> Result<Option<Map<String, Value>>, CrmError> {
        match self {
            CrmClient::Salesforce(c) => c.get_record(object, id, fields).await,
            CrmClient::HubSpot(c) => c.get_record(object, id, fields).await,
        }
    }

    /// At most this many ids per [`CrmClient::read_records`] call (2,000 / 100).
    pub fn max_read(&self) -> usize {
        match self {
            CrmClient::Salesforce(c) => c.max_read(),
            CrmClient::HubSpot(c) => c.max_read(),
        }
    }

    /// The named fields of up to [`CrmClient::max_read`] records of one kind
    /// in one call (Salesforce `composite/sobjects/{Type}`, HubSpot
    /// `batch/read`), in `ids` order.
    pub async fn read_records<S: AsRef<str>>(
        &self,
        object: ObjectKind,
        ids: &[S],
        fields: &[&str],
    ) -> Result<Vec<(String, RecordRead)>, CrmError> {
        match self {
            CrmClient::Salesforce(c) => Ok(c
                .read_records(object, ids, fields)
                .await?
                .into_iter()
                .map(|(id, r)| (id, r.map_or(RecordRead::Missing, RecordRead::Found)))
                .collect()),
            CrmClient::HubSpot(c) => c.read_records(object, ids, fields).await,
        }
    }

    /// One page of `object`'s whole book after the cursor `after` (keyset
    /// SOQL on Salesforce, the list endpoint on HubSpot), or only of the
    /// records modified after `since` (`SystemModstamp`; HubSpot search on
    /// `lastmodifieddate`, which callers pace: [`hubspot::SEARCH_INTERVAL_MS`]).
    pub async fn list_page(
        &self,
        object: ObjectKind,
        after: Option<&str>,
        since: Option<Millis>,
        fields: &[&str],
    ) -> Result<BookPage, CrmError> {
        match self {
            CrmClient::Salesforce(c) => c.list_page(object, after, since, fields).await,
            CrmClient::HubSpot(c) => c.list_page(object, after, since, fields).await,
        }
    }

    /// Every user who can own records, with whether they are active.
    pub async fn users(&self) -> Result<Vec<CrmUser>, CrmError> {
        match self {
            CrmClient::Salesforce(c) => c.users().await,
            CrmClient::HubSpot(c) => c.users().await,
        }
    }

    /// The latest limit headers seen, if any call was answered yet.
    pub fn limit_info(&self) -> Option<LimitInfo> {
        match self {
            CrmClient::Salesforce(c) => c
                .limit_usage()
                .map(|(used, max)| LimitInfo::Salesforce { used, max }),
            CrmClient::HubSpot(c) => c.rate_limit().map(LimitInfo::Hubspot),
        }
    }
}

/// Locks a mutex guarding plain data; a panic elsewhere cannot leave that data
/// half-written, so poisoning is ignored.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
