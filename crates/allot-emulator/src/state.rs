//! The emulator's in-memory world: users, owners, records, sessions, limits,
//! faults, counters, and the delivery of change events.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use allot_core::{Crm, ObjectKind};
use serde_json::{Map, Value};

use crate::events::{iso_millis, sf_new_id};
use crate::faults::{FaultPatch, Faults};
use crate::seed::{HsOwner, Seed, SfUser};
use crate::stats::{Recorder, Stats};
use crate::{EmittedEvent, EmulatorOptions, EventSink};

/// Records of one CRM side, by object kind and id. Salesforce records hold
/// REST fields (`Id`, `OwnerId`, ...); HubSpot records hold properties.
pub(crate) type Records = BTreeMap<(ObjectKind, String), Map<String, Value>>;

/// A Salesforce session behind an access token.
#[derive(Debug, Clone)]
pub(crate) struct SfSession {
    /// The user the session runs as (`commitUser` of the changes it makes).
    pub user_id: String,
}

/// Where HubSpot webhook batches go, and how they are signed.
pub(crate) struct Webhook {
    pub url: String,
    pub secret: String,
    pub client: reqwest::Client,
    pub delivered: Arc<AtomicU64>,
    pub failed: Arc<AtomicU64>,
}

/// A query cursor: the page size and what the query selects.
#[derive(Debug, Clone)]
pub(crate) struct QueryCursor {
    pub fields: Vec<String>,
    pub active: Option<bool>,
}

pub(crate) struct State {
    pub sf_users: Vec<SfUser>,
    pub hs_owners: Vec<HsOwner>,
    pub sf_records: Records,
    pub hs_records: Records,
    pub sf_sessions: HashMap<String, SfSession>,
    /// OAuth access token → expiry.
    pub hs_tokens: HashMap<String, Instant>,
    /// Accepted calls per HubSpot token within the rolling window.
    pub hs_windows: HashMap<String, VecDeque<Instant>>,
    pub hs_daily_used: u64,
    pub sf_usage: u64,
    pub query_cursors: HashMap<String, QueryCursor>,
    /// Bulk API 2.0 query jobs by job id.
    pub bulk_jobs: HashMap<String, crate::salesforce::bulk::BulkJob>,
    pub faults: Faults,
    pub rec: Recorder,
    counter: u64,
    replay_id: u64,
    commit_number: u64,
    hs_event_id: u64,
    sink: EventSink,
    webhook: Option<Webhook>,
}

/// Current wall-clock time, epoch milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl State {
    pub fn new(seed: Seed, opts: &EmulatorOptions) -> State {
        let created = iso_millis(now_ms());
        let mut sf_records = Records::new();
        let sf_lists = [
            (ObjectKind::Lead, seed.salesforce.leads),
            (ObjectKind::Account, seed.salesforce.accounts),
            (ObjectKind::Contact, seed.salesforce.contacts),
        ];
        for (object, list) in sf_lists {
            for mut fields in list {
                let Some(id) = fields.get("Id").and_then(Value::as_str).map(str::to_string) else {
                    continue;
                };
                for stamp in ["CreatedDate", "LastModifiedDate"] {
                    fields
                        .entry(stamp)
                        .or_insert_with(|| Value::String(created.clone()));
                }
                sf_records.insert((object, id), fields);
            }
        }
        let mut hs_records = Records::new();
        let hs_lists = [
            (ObjectKind::Contact, seed.hubspot.contacts),
            (ObjectKind::Account, seed.hubspot.companies),
        ];
        for (object, list) in hs_lists {
            for r in list {
                let mut props = r.properties;
                props.insert("hs_object_id".into(), Value::String(r.id.clone()));
                for stamp in ["createdate", "lastmodifieddate"] {
                    props
                        .entry(stamp)
                        .or_insert_with(|| Value::String(created.clone()));
                }
                hs_records.insert((object, r.id), props);
            }
        }
        let webhook = opts.webhook_url.as_ref().and_then(|url| {
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .build()
                .ok()?;
            Some(Webhook {
                url: url.clone(),
                secret: opts.hubspot_client_secret.clone(),
                client,
                delivered: Arc::default(),
                failed: Arc::default(),
            })
        });
        let mut state = State {
            sf_users: seed.salesforce.users,
            hs_owners: seed.hubspot.owners,
            sf_records,
            hs_records,
            sf_sessions: HashMap::new(),
            hs_tokens: HashMap::new(),
            hs_windows: HashMap::new(),
            hs_daily_used: 0,
            sf_usage: opts.salesforce_api_usage_start,
            query_cursors: HashMap::new(),
            bulk_jobs: HashMap::new(),
            faults: Faults::new(opts.rng_seed),
            rec: Recorder::default(),
            counter: 0,
            replay_id: 1_000,
            commit_number: 1_100_638_500_000,
            hs_event_id: 1_893_400_000,
            sink: opts.events.clone(),
            webhook,
        };
        state.apply_faults(&opts.faults);
        state
    }

    /// A fresh number for tokens, ids and correlation ids.
    pub fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// A fresh UUID-shaped id (correlation ids, transaction keys).
    pub fn uuid(&mut self) -> String {
        let n = self.next();
        format!("00000000-0000-4000-8000-{n:012x}")
    }

    /// A fresh Salesforce record id for an object kind.
    pub fn new_sf_id(&mut self, object: ObjectKind) -> String {
        let prefix = match object {
            ObjectKind::Lead => "00Q",
            ObjectKind::Account => "001",
            ObjectKind::Contact => "003",
        };
        let n = self.next() + 9_000_000;
        sf_new_id(prefix, n)
    }

    /// A fresh numeric HubSpot record id.
    pub fn new_hs_id(&mut self) -> String {
        (70_000_000_000 + self.next()).to_string()
    }

    /// The next CDC replay id and commit number.
    pub fn next_commit(&mut self) -> (u64, u64) {
        self.replay_id += 1;
        self.commit_number += 1;
        (self.replay_id, self.commit_number)
    }

    /// The next HubSpot event id.
    pub fn next_event_id(&mut self) -> u64 {
        self.hs_event_id += 1;
        self.hs_event_id
    }

    pub fn records(&self, crm: Crm) -> &Records {
        match crm {
            Crm::Hubspot => &self.hs_records,
            _ => &self.sf_records,
        }
    }

    /// The user changes made without a session run as: the first active user.
    pub fn default_sf_user(&self, configured: Option<&str>) -> String {
        configured
            .map(str::to_string)
            .or_else(|| {
                self.sf_users
                    .iter()
                    .find(|u| u.is_active)
                    .map(|u| u.id.clone())
            })
            .unwrap_or_else(|| "005000000000000AAA".into())
    }

    /// Applies a fault patch, including token expiry and user activity.
    pub fn apply_faults(&mut self, patch: &FaultPatch) {
        self.faults.apply(patch, Instant::now());
        if patch.expire_tokens {
            self.sf_sessions.clear();
            self.hs_tokens.clear();
        }
        let changes = patch
            .inactive_users
            .iter()
            .map(|id| (id, false))
            .chain(patch.active_users.iter().map(|id| (id, true)));
        for (id, active) in changes {
            for u in self.sf_users.iter_mut().filter(|u| &u.id == id) {
                u.is_active = active;
            }
            for o in self.hs_owners.iter_mut().filter(|o| &o.id == id) {
                o.archived = !active;
            }
        }
    }

    /// Current counters.
    pub fn stats(&self) -> Stats {
        let mut stats = self.rec.stats.clone();
        stats.salesforce_api_usage = self.sf_usage;
        if let Some(w) = &self.webhook {
            stats.webhook_deliveries = w.delivered.load(Ordering::Relaxed);
            stats.webhook_failures = w.failed.load(Ordering::Relaxed);
        }
        stats
    }

    /// Sends one Salesforce change event to the sink.
    pub fn deliver_sf(&mut self, key: &str, event: &Value) {
        *self.rec.stats.events_emitted.get_mut(Crm::Salesforce) += 1;
        self.sink.send(EmittedEvent {
            crm: Crm::Salesforce,
            key: key.to_string(),
            body: event.to_string().into_bytes(),
        });
    }

    /// Sends one HubSpot webhook batch (up to 100 events) to the sink and, when
    /// configured, POSTs it signed to the webhook URL.
    pub fn deliver_hs(&mut self, batch: Vec<Value>) {
        for chunk in batch.chunks(100) {
            *self.rec.stats.events_emitted.get_mut(Crm::Hubspot) += chunk.len() as u64;
            let key = chunk
                .first()
                .and_then(|e| e.get("objectId"))
                .map(|v| v.to_string().trim_matches('"').to_string())
                .unwrap_or_default();
            let body = Value::Array(chunk.to_vec()).to_string().into_bytes();
            if let Some(w) = &self.webhook {
                crate::webhook::post(w, body.clone());
            }
            self.sink.send(EmittedEvent {
                crm: Crm::Hubspot,
                key,
                body,
            });
        }
    }
}
