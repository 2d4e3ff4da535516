//! Shared by the writer tests and the writer benchmark: the emulator on
//! 127.0.0.1:0 with generated records, CRM clients for it, owner changes,
//! and a writer running in a task.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use allot_core::{Crm, ObjectKind, OwnerChange, Strategy, DECISION_VERSION};
use allot_crm::{
    CrmClient, HubSpotAuth, HubSpotClient, HubSpotConfig, SalesforceAuth, SalesforceClient,
    SalesforceConfig,
};
use allot_emulator::{Emulator, EmulatorOptions, HsOwner, HsRecord, Seed, SfUser};
use allot_store::{OutboxKey, Store};
use allot_writer::{Writer, WriterConfig, WriterError, WriterMetrics};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

pub const ALICE: &str = "0055f000001AAAAAA4";
pub const BOB: &str = "0055f000001ABBBAA4";
pub const CAROL: &str = "0055f000001ACCCAA4";
/// Inactive.
pub const GONE: &str = "0055f000001AHHHAA4";
/// No such user.
pub const NOBODY: &str = "0055f000001AZZZAA4";
pub const MAYA: &str = "910901";
pub const DIEGO: &str = "910902";

pub fn lead(i: usize) -> String {
    format!("00Q5f{i:013}")
}

pub fn contact(i: usize) -> String {
    format!("{}", 65_000_000_000u64 + i as u64)
}

/// `leads` Salesforce leads owned by Alice, `contacts` HubSpot contacts owned by Maya.
pub fn seed(leads: usize, contacts: usize) -> Seed {
    let user = |id: &str, name: &str, active: bool| SfUser {
        id: id.into(),
        name: name.into(),
        email: format!("{}@acme.example", name.to_lowercase()),
        username: None,
        is_active: active,
    };
    let owner = |id: &str, email: &str| HsOwner {
        id: id.into(),
        user_id: None,
        email: email.into(),
        first_name: String::new(),
        last_name: String::new(),
        archived: false,
    };
    let mut s = Seed::default();
    s.salesforce.users = vec![
        user(ALICE, "Alice", true),
        user(BOB, "Bob", true),
        user(CAROL, "Carol", true),
        user(GONE, "Gone", false),
    ];
    s.salesforce.leads = (0..leads)
        .map(|i| {
            let v = json!({"Id": lead(i), "LastName": format!("L{i}"), "Company": "Acme", "OwnerId": ALICE});
            v.as_object().cloned().unwrap_or_default()
        })
        .collect();
    s.hubspot.owners = vec![
        owner(MAYA, "maya@acme.example"),
        owner(DIEGO, "diego@acme.example"),
    ];
    s.hubspot.contacts = (0..contacts)
        .map(|i| {
            let mut properties = Map::new();
            properties.insert("email".into(), json!(format!("c{i}@x.example")));
            properties.insert("hubspot_owner_id".into(), json!(MAYA));
            HsRecord {
                id: contact(i),
                properties,
            }
        })
        .collect();
    s
}

/// The emulator, served until dropped.
pub struct Emu {
    pub emulator: Emulator,
    pub base: String,
    _stop: oneshot::Sender<()>,
}

pub async fn emulator(seed: Seed, opts: EmulatorOptions) -> Emu {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let emulator = Emulator::new(seed, opts);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(emulator.serve(listener, async {
        let _ = stopped.await;
    }));
    Emu {
        emulator,
        base,
        _stop: stop,
    }
}

impl Emu {
    pub fn salesforce(&self) -> CrmClient {
        let o = EmulatorOptions::default();
        let auth = SalesforceAuth::ClientCredentials {
            client_id: o.salesforce_client_id,
            client_secret: o.salesforce_client_secret,
        };
        CrmClient::Salesforce(
            SalesforceClient::new(SalesforceConfig::new(&self.base, auth)).unwrap(),
        )
    }

    pub fn hubspot(&self) -> CrmClient {
        let token = EmulatorOptions::default()
            .hubspot_private_app_token
            .unwrap();
        let auth = HubSpotAuth::PrivateApp { token };
        CrmClient::HubSpot(HubSpotClient::new(HubSpotConfig::new(&self.base, auth)).unwrap())
    }

    /// The record's owner in the emulator.
    pub fn owner(&self, crm: Crm, object: ObjectKind, id: &str) -> Option<String> {
        let field = if crm == Crm::Hubspot {
            "hubspot_owner_id"
        } else {
            "OwnerId"
        };
        let record = self.emulator.record(crm, object, id)?;
        record
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    pub fn calls(&self, endpoint: &str) -> u64 {
        self.emulator
            .stats()
            .calls
            .get(endpoint)
            .copied()
            .unwrap_or(0)
    }
}

pub fn change(crm: Crm, object: ObjectKind, id: &str, owner: &str, decided_at: i64) -> OwnerChange {
    OwnerChange {
        v: DECISION_VERSION,
        crm: Some(crm),
        record_id: id.to_string(),
        object,
        owner: owner.to_string(),
        previous_owner: None,
        decided_at,
        event_id: format!("ev-{id}-{decided_at}"),
        territory: None,
        strategy: Strategy::OnlyCandidate,
    }
}

/// `n` lead changes to `owner` decided at `at`.
pub fn lead_changes(n: usize, owner: &str, at: i64) -> Vec<OwnerChange> {
    (0..n)
        .map(|i| change(Crm::Salesforce, ObjectKind::Lead, &lead(i), owner, at))
        .collect()
}

/// `n` contact changes to `owner` decided at `at`.
pub fn contact_changes(n: usize, owner: &str, at: i64) -> Vec<OwnerChange> {
    (0..n)
        .map(|i| change(Crm::Hubspot, ObjectKind::Contact, &contact(i), owner, at))
        .collect()
}

/// A store of its own for one test.
pub fn store() -> Arc<Store> {
    Arc::new(Store::temporary().unwrap())
}

pub fn put_all(store: &Store, changes: &[OwnerChange]) {
    let mut b = store.batch();
    for c in changes {
        b.outbox_put(c);
    }
    store.commit(b).unwrap();
}

/// Whether every change's outbox entry is settled (done or failed).
pub fn settled(store: &Store, changes: &[OwnerChange]) -> bool {
    changes.iter().all(|c| {
        store
            .outbox_get(&OutboxKey::of(c))
            .unwrap()
            .is_some_and(|e| !e.state.is_open())
    })
}

/// Polls `cond` every 20 ms until it holds or `limit` passes.
pub async fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// A writer running in a task.
pub struct Running {
    pub task: JoinHandle<Result<(), WriterError>>,
    pub wake: Arc<Notify>,
    pub metrics: WriterMetrics,
    stop: Option<oneshot::Sender<()>>,
}

pub fn spawn(store: Arc<Store>, clients: Vec<CrmClient>, config: WriterConfig) -> Running {
    let metrics = WriterMetrics::new();
    let writer = Writer::new(store, clients, config, metrics.clone()).unwrap();
    let wake = Arc::new(Notify::new());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(writer.run(wake.clone(), async {
        let _ = stopped.await;
    }));
    Running {
        task,
        wake,
        metrics,
        stop: Some(stop),
    }
}

impl Running {
    /// Asks the writer to stop, waits for it, and hands back its metrics
    /// (complete then: each settle commits to the store before counting).
    pub async fn stop(mut self) -> Result<WriterMetrics, WriterError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("writer stops within 30 s")
            .expect("writer task does not panic")
            .map(|()| self.metrics)
    }

    pub fn calls(&self, crm: &str, outcome: &str) -> u64 {
        self.metrics.calls.with_label_values(&[crm, outcome]).get()
    }

    pub fn written(&self, crm: &str) -> u64 {
        self.metrics.changes_written.with_label_values(&[crm]).get()
    }
}

/// A config for tests: short linger, fast backoff, fixed jitter.
pub fn quick_config() -> WriterConfig {
    WriterConfig {
        linger_ms: 100,
        backoff_base_ms: 20,
        backoff_max_ms: 500,
        jitter_seed: Some(7),
        ..WriterConfig::default()
    }
}

/// A TCP proxy in front of the emulator that can hold `PATCH` requests for
/// a while before passing them on, even when the client has gone away: a
/// write that lands in the CRM after its sender stopped waiting for it.
pub struct LaggyProxy {
    pub base: String,
    pub delay_ms: Arc<std::sync::atomic::AtomicU64>,
}

pub async fn laggy_proxy(upstream: &str) -> LaggyProxy {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.trim_start_matches("http://").to_string();
    let delay_ms = Arc::new(AtomicU64::new(0));
    let delay = delay_ms.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let (mut client_rx, mut client_tx) = client.into_split();
            let (mut server_rx, mut server_tx) = server.into_split();
            let (chunks, mut queued) =
                tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
            let delay = delay.clone();
            // Client → queue: each chunk gets a release time, in order.
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut release = tokio::time::Instant::now();
                while let Ok(n) = client_rx.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let now = tokio::time::Instant::now();
                    let hold = if buf[..n].starts_with(b"PATCH ") {
                        Duration::from_millis(delay.load(Ordering::SeqCst))
                    } else {
                        Duration::ZERO
                    };
                    release = release.max(now + hold);
                    if chunks.send((release, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            });
            // Queue → server, never closing the server side early (a closed
            // connection would make the server drop the request).
            tokio::spawn(async move {
                while let Some((at, chunk)) = queued.recv().await {
                    tokio::time::sleep_until(at).await;
                    if server_tx.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_secs(10)).await;
            });
            // Server → client, while the client is there.
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
            });
        }
    });
    LaggyProxy { base, delay_ms }
}

impl Emu {
    /// A Salesforce client that talks to the emulator through `proxy`.
    pub fn salesforce_via(&self, proxy: &LaggyProxy) -> CrmClient {
        let o = EmulatorOptions::default();
        let auth = SalesforceAuth::ClientCredentials {
            client_id: o.salesforce_client_id,
            client_secret: o.salesforce_client_secret,
        };
        CrmClient::Salesforce(
            SalesforceClient::new(SalesforceConfig::new(&proxy.base, auth)).unwrap(),
        )
    }
}
