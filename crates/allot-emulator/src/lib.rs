//! A CRM emulator speaking the Salesforce REST and HubSpot CRM v3 wire
//! formats, for tests and demos: OAuth token endpoints, record reads and
//! writes, batch owner updates with the vendors' limits and error bodies,
//! limit headers, fault injection, and change events in the vendors' shapes
//! (Salesforce CDC, HubSpot webhooks).
//!
//! All state is in memory behind one mutex; handlers never hold it across an
//! await.
//!
//! Endpoints:
//! - Salesforce: `POST /services/oauth2/token` (client credentials, JWT
//!   bearer); `GET|PATCH /services/data/v62.0/sobjects/{Type}/{id}`;
//!   `PATCH /services/data/v62.0/composite/sobjects` (≤ 200 records);
//!   `GET /services/data/v62.0/query?q=SELECT Id,IsActive FROM User` and
//!   `GET .../query/{locator}` for further pages.
//! - HubSpot: `POST /oauth/v1/token` (refresh token);
//!   `GET|PATCH /crm/v3/objects/{contacts|companies}/{id}`;
//!   `POST /crm/v3/objects/{contacts|companies}/batch/update` (≤ 100 inputs);
//!   `GET /crm/v3/owners?limit=&after=&email=&archived=`.
//! - Admin: `GET|POST /_emulator/faults` ([`FaultPatch`]), `GET /_emulator/stats`
//!   ([`Stats`]), `GET /_emulator/requests` ([`ReceivedRequest`]),
//!   `GET /_emulator/owners` ([`OwnersView`]), `POST /_emulator/records`
//!   ([`UpsertRecord`], one or an array), `GET /_emulator/records/{crm}/{object}/{id}`
//!   ([`RecordView`]).

mod admin;
mod events;
mod faults;
mod generate;
mod hubspot;
mod salesforce;
mod seed;
mod state;
mod stats;
mod webhook;
mod writes;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use allot_core::{Crm, ObjectKind};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedSender;

pub use admin::{OwnersView, RecordView, UpsertRecord};
pub use events::{iso_millis, sf_id18};
pub use faults::{FaultPatch, FaultView, Side, Storm};
pub use seed::{HsOwner, HsRecord, HubSpotSeed, SalesforceSeed, Seed, SfUser};
pub use stats::{PerSide, ReceivedRequest, Stats};

use state::State;

/// The one error type of this crate.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The seed file cannot be read or is inconsistent.
    #[error("seed {origin}: {}", problems.join("; "))]
    Seed {
        origin: String,
        problems: Vec<String>,
    },
    /// An admin request names something that does not exist or makes no sense.
    #[error("emulator request: {0}")]
    BadRequest(String),
    /// The HTTP server stopped with an I/O error.
    #[error("emulator server: {0}")]
    Serve(#[from] std::io::Error),
}

/// One change event, in the vendor's wire shape: a Salesforce CDC event
/// (Streaming/CometD shape) or a HubSpot webhook batch (JSON array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmittedEvent {
    pub crm: Crm,
    /// The record id the event is about (the first one for a HubSpot batch):
    /// the natural partition key.
    pub key: String,
    pub body: Vec<u8>,
}

/// Where change events go.
#[derive(Debug, Clone, Default)]
pub enum EventSink {
    /// Nowhere (still counted in the stats).
    #[default]
    Discard,
    /// Into a channel; a closed channel drops events silently.
    Channel(UnboundedSender<EmittedEvent>),
}

impl EventSink {
    fn send(&self, event: EmittedEvent) {
        if let EventSink::Channel(tx) = self {
            // A receiver that went away means nobody is listening any more.
            let _ = tx.send(event);
        }
    }
}

/// How the emulator behaves. Every field has a demo default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmulatorOptions {
    /// Consumer key accepted by the Salesforce token endpoint (client
    /// credentials `client_id`, JWT bearer `iss`).
    pub salesforce_client_id: String,
    pub salesforce_client_secret: String,
    /// Public key (PEM) that JWT bearer assertions must verify with; without
    /// it only the claims are checked.
    pub salesforce_jwt_public_key_pem: Option<String>,
    /// The user client-credentials sessions and admin edits run as; the
    /// first active seeded user when absent.
    pub salesforce_run_as_user: Option<String>,
    /// Daily API request quota (`Sforce-Limit-Info` max); over it → 403.
    pub salesforce_daily_quota: u64,
    /// API usage already spent when the emulator starts.
    pub salesforce_api_usage_start: u64,
    /// Records per SOQL query page.
    pub salesforce_query_page_size: usize,
    /// A private-app token accepted by the HubSpot API (never expires).
    pub hubspot_private_app_token: Option<String>,
    pub hubspot_client_id: String,
    /// Also the key webhook batches are signed with.
    pub hubspot_client_secret: String,
    pub hubspot_refresh_token: String,
    /// `expires_in` of issued OAuth access tokens.
    pub hubspot_token_ttl_secs: u64,
    /// Calls per rolling 10 seconds per token (100 Free/Starter, 190 Pro/Enterprise).
    pub hubspot_rate_limit_per_10s: u64,
    pub hubspot_daily_limit: u64,
    pub hubspot_portal_id: u64,
    pub hubspot_app_id: u64,
    /// POST HubSpot webhook batches here, signed with the client secret.
    pub webhook_url: Option<String>,
    /// Emit CREATE events for every seeded record when serving starts.
    pub emit_seed_events: bool,
    /// Seed of the fault RNG.
    pub rng_seed: u64,
    /// Faults in force from the start.
    pub faults: FaultPatch,
    /// Where change events go (not configurable from files).
    #[serde(skip)]
    pub events: EventSink,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            salesforce_client_id: "allot-emulator-client".into(),
            salesforce_client_secret: "allot-emulator-secret".into(),
            salesforce_jwt_public_key_pem: None,
            salesforce_run_as_user: None,
            salesforce_daily_quota: 100_000,
            salesforce_api_usage_start: 0,
            salesforce_query_page_size: 2_000,
            hubspot_private_app_token: Some("pat-na1-emulator".into()),
            hubspot_client_id: "allot-emulator-hubspot-client".into(),
            hubspot_client_secret: "allot-emulator-hubspot-secret".into(),
            hubspot_refresh_token: "allot-emulator-refresh-token".into(),
            hubspot_token_ttl_secs: 1_800,
            hubspot_rate_limit_per_10s: 100,
            hubspot_daily_limit: 250_000,
            hubspot_portal_id: 62_515,
            hubspot_app_id: 1_160_452,
            webhook_url: None,
            emit_seed_events: false,
            rng_seed: 0x5eed,
            faults: FaultPatch::default(),
            events: EventSink::Discard,
        }
    }
}

/// The emulator. Cheap to clone; clones share the same world.
#[derive(Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub opts: EmulatorOptions,
    pub state: Mutex<State>,
    seed_events_sent: AtomicBool,
}

impl Shared {
    /// The state; poisoning is ignored (no handler leaves it half-written on panic
    /// in a way later calls could not live with).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps the configured latency (outside the lock).
    pub async fn delay(&self) {
        let latency = self.lock().faults.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }
}

impl Emulator {
    /// An emulator holding `seed`, with `opts` (faults in `opts.faults` apply at once).
    pub fn new(seed: Seed, opts: EmulatorOptions) -> Emulator {
        let state = State::new(seed, &opts);
        Emulator {
            shared: Arc::new(Shared {
                opts,
                state: Mutex::new(state),
                seed_events_sent: AtomicBool::new(false),
            }),
        }
    }

    /// The axum router of both APIs and the admin endpoints.
    pub fn router(&self) -> Router {
        Router::new()
            .merge(salesforce::routes())
            .merge(hubspot::routes())
            .merge(admin::routes())
            .fallback(admin::not_found)
            .with_state(self.shared.clone())
    }

    /// Serves on `listener` until `shutdown` completes. Seeded CREATE events
    /// are emitted first when `emit_seed_events` is set (once per emulator).
    pub fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = Result<(), EmulatorError>> + Send + 'static {
        let router = self.router();
        let emulator = self.clone();
        async move {
            if emulator.shared.opts.emit_seed_events
                && !emulator
                    .shared
                    .seed_events_sent
                    .swap(true, Ordering::SeqCst)
            {
                writes::emit_seed_events(&emulator.shared);
            }
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "crm emulator listening");
            }
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await?;
            Ok(())
        }
    }

    /// Current counters (same as `GET /_emulator/stats`).
    pub fn stats(&self) -> Stats {
        self.shared.lock().stats()
    }

    /// The API requests received so far (the last 10,000), with their headers.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.lock().rec.received.iter().cloned().collect()
    }

    /// Changes the faults (same as `POST /_emulator/faults`).
    pub fn set_faults(&self, patch: &FaultPatch) -> FaultView {
        let mut st = self.shared.lock();
        st.apply_faults(patch);
        st.faults.view()
    }

    /// A record's current fields (Salesforce) or properties (HubSpot).
    pub fn record(&self, crm: Crm, object: ObjectKind, id: &str) -> Option<Map<String, Value>> {
        self.shared
            .lock()
            .records(crm)
            .get(&(object, id.to_string()))
            .cloned()
    }

    /// The current owner of every record.
    pub fn owners(&self) -> OwnersView {
        admin::owners_view(&self.shared.lock())
    }

    /// Creates or updates a record as a person in the CRM's UI would, emitting
    /// the change event (same as `POST /_emulator/records`).
    pub fn upsert_record(&self, request: UpsertRecord) -> Result<RecordView, EmulatorError> {
        writes::upsert(&self.shared, request)
    }
}
