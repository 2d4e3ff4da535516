//! The demo stream of `allot run`: a few new leads and contacts created in
//! the emulator, as a user would, so a newcomer sees assignments happen.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use serde_json::{json, Value};

const PEOPLE: &[(&str, &str, &str, &str, u32)] = &[
    ("Rosa", "Delgado", "US", "CA", 85),
    ("Henrik", "Vogel", "Germany", "", 240),
    ("Aiko", "Sato", "Japan", "", 60),
    ("Oliver", "Grant", "United Kingdom", "", 1800),
    ("Maple", "Leduc", "Canada", "ON", 30),
    ("Claire", "Moreau", "France", "", 420),
    ("Dev", "Kapoor", "India", "", 3200),
    ("Nora", "Quinn", "USA", "NY", 15),
    ("Lars", "Berg", "Sweden", "", 95),
    ("Ava", "Brooks", "US", "TX", 5000),
    ("Mateo", "Ruiz", "Spain", "", 70),
    ("Grace", "Lin", "Australia", "", 140),
];

pub async fn stream(
    emulator: String,
    api: String,
    count: usize,
    names: HashMap<String, String>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let Ok(http) = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    else {
        return;
    };
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        _ = &mut stop => return,
    }
    println!("\ndemo: creating {count} leads and contacts in the emulator …");
    let mut ids = Vec::new();
    for i in 0..count {
        let (first, last, country, state, employees) = PEOPLE[i % PEOPLE.len()];
        let company = format!("{last} Labs {i}");
        let domain = format!("{}-labs-{i}.example", last.to_lowercase());
        let body = if i % 2 == 0 {
            json!({ "crm": "salesforce", "object": "lead", "fields": {
                "FirstName": first, "LastName": last, "Company": company, "Email": format!("{}@{domain}", first.to_lowercase()),
                "Country": country, "State": state, "NumberOfEmployees": employees, "LeadSource": "Web", "Status": "Open - Not Contacted" } })
        } else {
            json!({ "crm": "hubspot", "object": "contact", "properties": {
                "firstname": first, "lastname": last, "company": company, "email": format!("{}@{domain}", first.to_lowercase()),
                "country": country, "state": state, "numberofemployees": employees.to_string() } })
        };
        match http
            .post(format!("{emulator}/_emulator/records"))
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                let v: Value = r.json().await.unwrap_or_default();
                if let Some(id) = v.get("id").and_then(Value::as_str) {
                    ids.push(id.to_string());
                }
            }
            Ok(r) => println!("demo: emulator answered {}", r.status()),
            Err(e) => println!("demo: emulator not reachable: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = &mut stop => return,
        }
    }
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        _ = &mut stop => return,
    }
    for id in ids {
        let Ok(r) = http
            .get(format!("{api}/api/records/{id}/decisions"))
            .send()
            .await
        else {
            continue;
        };
        let v: Value = r.json().await.unwrap_or_default();
        let Some(d) = v
            .get("decisions")
            .and_then(Value::as_array)
            .and_then(|l| l.last())
            .cloned()
        else {
            println!("demo: {id}: no decision yet");
            continue;
        };
        let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
        let owner = s("owner");
        let name = names
            .get(&owner)
            .map_or(owner.clone(), |n| format!("{n} ({owner})"));
        println!(
            "demo: {} {id} → {name}, territory {}, {}",
            s("object"),
            s("territory"),
            s("strategy")
        );
    }
    println!("demo: ask why with  curl {api}/api/records/<ID>/decisions   ·   owners in the CRM: {emulator}/_emulator/owners\n");
}
