//! Starts the emulator on 127.0.0.1:0 with an event channel, and speaks
//! to it as raw HTTP clients do.

#![allow(dead_code)]

use allot_core::Crm;
use allot_emulator::{EmittedEvent, Emulator, EmulatorOptions, EventSink, Seed};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::sync::oneshot;

pub const LEAD: &str = "00Q5f000006QW00EAC";
pub const ALICE: &str = "0055f000001AAAAAA4";
pub const BOB: &str = "0055f000001ABBBAA4";
pub const CONTACT: &str = "65059681000";
pub const MAYA: &str = "910901";
pub const PAT: &str = "pat-na1-emulator";

pub fn seed() -> Seed {
    let text = json!({
        "salesforce": {
            "users": [
                {"Id": ALICE, "Name": "Alice", "Email": "alice@acme.example", "IsActive": true},
                {"Id": BOB, "Name": "Bob", "Email": "bob@acme.example", "IsActive": true}
            ],
            "leads": [{"Id": LEAD, "LastName": "Mcclure", "Company": "Cardinal", "State": "CA", "OwnerId": ALICE}]
        },
        "hubspot": {
            "owners": [{"id": MAYA, "userId": 4512001, "email": "maya@acme.example"}],
            "contacts": [{"id": CONTACT, "properties": {"email": "brenda@cardinal.example"}}]
        }
    });
    Seed::from_json(&text.to_string(), "test").unwrap()
}

pub struct Running {
    pub base: String,
    pub emulator: Emulator,
    pub events: UnboundedReceiver<EmittedEvent>,
    pub http: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

pub async fn start(mut opts: EmulatorOptions) -> Running {
    let (tx, events) = unbounded_channel();
    opts.events = EventSink::Channel(tx);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let emulator = Emulator::new(seed(), opts);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(emulator.serve(listener, async {
        let _ = stopped.await;
    }));
    Running {
        base,
        emulator,
        events,
        http: reqwest::Client::new(),
        _stop: stop,
    }
}

impl Running {
    pub async fn sf_token(&self) -> String {
        let o = EmulatorOptions::default();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", o.salesforce_client_id.as_str()),
            ("client_secret", o.salesforce_client_secret.as_str()),
        ];
        let r = self
            .http
            .post(format!("{}/services/oauth2/token", self.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["instance_url"], self.base.as_str());
        body["access_token"].as_str().unwrap().to_string()
    }

    pub async fn sf(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("Sforce-Call-Options", "client=allot-writer")
            .header("Sforce-Auto-Assign", "FALSE");
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    pub async fn hs(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(PAT);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    pub fn next_event(&mut self) -> (Crm, Value) {
        let e = self.events.try_recv().expect("an event");
        (e.crm, serde_json::from_slice(&e.body).unwrap())
    }
}
