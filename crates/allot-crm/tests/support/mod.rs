//! Starts the emulator on 127.0.0.1:0 for the contract tests.

#![allow(dead_code)]

use allot_emulator::{Emulator, EmulatorOptions, Seed};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Active Salesforce users.
pub const SF_ALICE: &str = "0055f000001AAAAAA4";
pub const SF_BOB: &str = "0055f000001ABBBAA4";
/// An inactive Salesforce user.
pub const SF_GONE: &str = "0055f000001AHHHAA4";
pub const LEAD_1: &str = "00Q5f000006QW00EAC";
pub const LEAD_2: &str = "00Q5f000006RW01IAC";
pub const LEAD_3: &str = "00Q5f000006SW02MAC";
pub const ACCOUNT_1: &str = "0015f00002JUX00EAA";
/// HubSpot owners (the last one archived).
pub const HS_MAYA: &str = "910901";
pub const HS_DIEGO: &str = "910902";
pub const HS_ARCHIVED: &str = "910906";
pub const CONTACT_1: &str = "65059681000";
pub const CONTACT_2: &str = "65059681007";
pub const COMPANY_1: &str = "18230745500";

/// A small seed with the ids above.
pub fn seed() -> Seed {
    let text = format!(
        r#"{{
      "salesforce": {{
        "users": [
          {{"Id": "{SF_ALICE}", "Name": "Alice Ng", "Email": "alice@acme.example", "IsActive": true}},
          {{"Id": "{SF_BOB}", "Name": "Bob Roy", "Email": "bob@acme.example", "IsActive": true}},
          {{"Id": "{SF_GONE}", "Name": "Gone Person", "Email": "gone@acme.example", "IsActive": false}}
        ],
        "leads": [
          {{"Id": "{LEAD_1}", "LastName": "Mcclure", "Company": "Cardinal", "Country": "United States", "State": "CA", "OwnerId": "{SF_ALICE}"}},
          {{"Id": "{LEAD_2}", "LastName": "Hale", "Company": "Harbor", "Country": "Germany", "OwnerId": "{SF_ALICE}"}},
          {{"Id": "{LEAD_3}", "LastName": "Rossi", "Company": "Verdant", "Country": "France", "OwnerId": "{SF_BOB}"}}
        ],
        "accounts": [
          {{"Id": "{ACCOUNT_1}", "Name": "Atlas Robotics", "BillingCountry": "United States", "BillingState": "TX", "OwnerId": "{SF_BOB}"}}
        ]
      }},
      "hubspot": {{
        "owners": [
          {{"id": "{HS_MAYA}", "userId": 4512001, "email": "maya@acme.example", "firstName": "Maya", "lastName": "Okafor"}},
          {{"id": "{HS_DIEGO}", "userId": 4512002, "email": "diego@acme.example", "firstName": "Diego", "lastName": "Santos"}},
          {{"id": "{HS_ARCHIVED}", "userId": 4512006, "email": "sam@acme.example", "firstName": "Sam", "lastName": "Patel", "archived": true}}
        ],
        "contacts": [
          {{"id": "{CONTACT_1}", "properties": {{"email": "brenda@cardinal.example", "country": "Germany", "hubspot_owner_id": "{HS_MAYA}"}}}},
          {{"id": "{CONTACT_2}", "properties": {{"email": "marcus@harbor.example", "country": "United States"}}}}
        ],
        "companies": [
          {{"id": "{COMPANY_1}", "properties": {{"name": "Atlas Robotics", "domain": "atlasrobotics.example", "hubspot_owner_id": "{HS_DIEGO}"}}}}
        ]
      }}
    }}"#
    );
    Seed::from_json(&text, "test seed").expect("test seed")
}

/// A running emulator; dropping it stops the server.
pub struct Running {
    pub base: String,
    pub emulator: Emulator,
    _stop: oneshot::Sender<()>,
}

/// Serves `seed` with `opts` on an ephemeral loopback port.
pub async fn start(seed: Seed, opts: EmulatorOptions) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let emulator = Emulator::new(seed, opts);
    let (stop, stopped) = oneshot::channel::<()>();
    let serve = emulator.serve(listener, async {
        let _ = stopped.await;
    });
    tokio::spawn(serve);
    Running {
        base,
        emulator,
        _stop: stop,
    }
}

/// The emulator's default options.
pub fn opts() -> EmulatorOptions {
    EmulatorOptions::default()
}
