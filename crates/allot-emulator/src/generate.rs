//! Generated books: `allot emulator --generate N` adds N accounts, N leads
//! and N contacts per CRM (HubSpot leads are contacts in lifecycle stage
//! `lead`), owned by the seed's active users and owners, with addresses in
//! countries the demo rules cover and lead e-mail domains that match a
//! generated account (so lead-to-account has something to find).
//!
//! Everything is a function of the index: the same N gives the same book.

use serde_json::{json, Map, Value};

use crate::events::sf_new_id;
use crate::seed::{HsRecord, Seed};

/// Where a generated record is: country name, ISO code, state, city, postal code, street.
const PLACES: [(&str, &str, &str, &str, &str, &str); 12] = [
    (
        "United States",
        "US",
        "CA",
        "San Francisco",
        "94105",
        "415 Mission St",
    ),
    (
        "United States",
        "US",
        "NY",
        "New York",
        "10119",
        "1 Penn Plaza",
    ),
    (
        "United States",
        "US",
        "TX",
        "Austin",
        "78701",
        "600 Congress Ave",
    ),
    (
        "United States",
        "US",
        "IL",
        "Chicago",
        "60601",
        "200 E Randolph St",
    ),
    (
        "Canada",
        "CA",
        "ON",
        "Toronto",
        "M5V 2T6",
        "290 Bremner Blvd",
    ),
    (
        "United Kingdom",
        "GB",
        "",
        "London",
        "SW1A 1AA",
        "10 Whitehall",
    ),
    (
        "Germany",
        "DE",
        "",
        "Berlin",
        "10115",
        "Invalidenstrasse 116",
    ),
    ("France", "FR", "", "Paris", "75001", "1 Rue de Rivoli"),
    (
        "Ireland",
        "IE",
        "",
        "Dublin",
        "D02 X285",
        "1 Grand Canal Sq",
    ),
    ("Spain", "ES", "", "Madrid", "28013", "Gran Via 28"),
    ("Japan", "JP", "", "Tokyo", "100-0005", "2-7-2 Marunouchi"),
    ("Australia", "AU", "NSW", "Sydney", "2000", "1 Martin Pl"),
];

/// Salesforce and HubSpot spellings of the same industries.
const INDUSTRIES: [(&str, &str); 6] = [
    ("Software", "COMPUTER_SOFTWARE"),
    ("Healthcare", "HOSPITAL_HEALTH_CARE"),
    ("Manufacturing", "MACHINERY"),
    ("Financial Services", "FINANCIAL_SERVICES"),
    ("Retail", "RETAIL"),
    ("Education", "EDUCATION_MANAGEMENT"),
];

const WORDS: [&str; 16] = [
    "Amber", "Birch", "Cobalt", "Delta", "Ember", "Fjord", "Granite", "Harbor", "Indigo",
    "Juniper", "Kestrel", "Lumen", "Meridian", "Nimbus", "Orchid", "Pioneer",
];
const KINDS: [&str; 8] = [
    "Analytics",
    "Systems",
    "Logistics",
    "Health",
    "Foods",
    "Robotics",
    "Capital",
    "Labs",
];
const FIRST: [&str; 10] = [
    "Alex", "Blair", "Casey", "Devon", "Emery", "Finley", "Harper", "Jules", "Morgan", "Rowan",
];
const LAST: [&str; 10] = [
    "Abbott", "Brooks", "Castillo", "Dimitrov", "Eriksen", "Fujita", "Gallo", "Haddad", "Ivanova",
    "Jensen",
];

/// Generated Salesforce ids start here, far from the ids the emulator mints.
const SF_BASE: u64 = 7_000_000_000;

/// A cheap, well-spread hash of an index (splitmix64), so neighbours differ.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn pick<T: Copy>(list: &[T], h: u64) -> T {
    list[(h % list.len() as u64) as usize]
}

/// The generated company `i`: name and domain.
fn company(i: u64) -> (String, String) {
    let h = mix(i);
    let (w, k) = (pick(&WORDS, h), pick(&KINDS, h >> 8));
    (
        format!("{w} {k} {i}"),
        format!("{}-{}-{i}.example", w.to_lowercase(), k.to_lowercase()),
    )
}

fn person(i: u64) -> (&'static str, &'static str) {
    let h = mix(i ^ 0xABCD);
    (pick(&FIRST, h), pick(&LAST, h >> 8))
}

fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl Seed {
    /// Adds `n` generated accounts, leads and contacts to each CRM side
    /// (HubSpot: `n` companies, `n` lead-stage and `n` customer contacts).
    /// Owners come from the seed's active users and unarchived owners; a
    /// side with none gets records without owners.
    pub fn generate(&mut self, n: u64) {
        let sf_owners: Vec<String> = self
            .salesforce
            .users
            .iter()
            .filter(|u| u.is_active)
            .map(|u| u.id.clone())
            .collect();
        let hs_owners: Vec<String> = self
            .hubspot
            .owners
            .iter()
            .filter(|o| !o.archived)
            .map(|o| o.id.clone())
            .collect();
        let owner = |list: &[String], h: u64| -> Value {
            if list.is_empty() {
                Value::Null
            } else {
                Value::String(list[(h % list.len() as u64) as usize].clone())
            }
        };
        let sf = &mut self.salesforce;
        let hs = &mut self.hubspot;
        sf.accounts.reserve(n as usize);
        sf.leads.reserve(n as usize);
        sf.contacts.reserve(n as usize);
        for i in 0..n {
            let h = mix(i);
            let (name, domain) = company(i);
            let (country, _, state, city, zip, street) = pick(&PLACES, h >> 16);
            let (sf_industry, hs_industry) = pick(&INDUSTRIES, h >> 24);
            let employees = 5 + (h >> 32) % 20_000;
            let account_id = sf_new_id("001", SF_BASE + i);
            sf.accounts.push(map(json!({
                "Id": account_id, "Name": name, "Website": format!("https://www.{domain}"),
                "BillingStreet": street, "BillingCity": city, "BillingState": state,
                "BillingPostalCode": zip, "BillingCountry": country, "Industry": sf_industry,
                "NumberOfEmployees": employees, "Type": "Prospect",
                "OwnerId": owner(&sf_owners, h >> 40),
            })));
            // A lead at a (different) generated company, so lead-to-account finds its account.
            let at = mix(i ^ 0x5EED) % n;
            let (lead_company, lead_domain) = company(at);
            let (first, last) = person(i);
            let lh = mix(at);
            let (l_country, _, l_state, l_city, l_zip, l_street) = pick(&PLACES, lh >> 16);
            sf.leads.push(map(json!({
                "Id": sf_new_id("00Q", SF_BASE + i), "FirstName": first, "LastName": last,
                "Company": lead_company, "Email": format!("{}.{}{i}@{lead_domain}", first.to_lowercase(), last.to_lowercase()),
                "Street": l_street, "City": l_city, "State": l_state, "PostalCode": l_zip,
                "Country": l_country, "Industry": pick(&INDUSTRIES, lh >> 24).0,
                "NumberOfEmployees": 5 + (lh >> 32) % 20_000, "LeadSource": "Web",
                "Status": "Open - Not Contacted", "OwnerId": owner(&sf_owners, h >> 44),
            })));
            sf.contacts.push(map(json!({
                "Id": sf_new_id("003", SF_BASE + i), "FirstName": last, "LastName": first,
                "Email": format!("{}.{}{i}@{domain}", last.to_lowercase(), first.to_lowercase()),
                "AccountId": account_id, "MailingStreet": street, "MailingCity": city,
                "MailingState": state, "MailingPostalCode": zip, "MailingCountry": country,
                "OwnerId": owner(&sf_owners, h >> 40),
            })));
            let company_props = json!({
                "name": name, "domain": domain, "address": street, "city": city, "state": state,
                "zip": zip, "country": country, "industry": hs_industry,
                "numberofemployees": employees.to_string(), "hubspot_owner_id": owner(&hs_owners, h >> 40),
            });
            hs.companies.push(HsRecord {
                id: format!("7{i:010}"),
                properties: map(company_props),
            });
            let lead_props = json!({
                "firstname": first, "lastname": last,
                "email": format!("{}.{}{i}@{lead_domain}", first.to_lowercase(), last.to_lowercase()),
                "company": lead_company, "website": lead_domain, "address": l_street, "city": l_city,
                "state": l_state, "zip": l_zip, "country": l_country,
                "industry": pick(&INDUSTRIES, lh >> 24).1,
                "numberofemployees": (5 + (lh >> 32) % 20_000).to_string(),
                "lifecyclestage": "lead", "hubspot_owner_id": owner(&hs_owners, h >> 44),
            });
            hs.contacts.push(HsRecord {
                id: format!("8{i:010}"),
                properties: map(lead_props),
            });
            let contact_props = json!({
                "firstname": last, "lastname": first,
                "email": format!("{}.{}{i}@{domain}", last.to_lowercase(), first.to_lowercase()),
                "company": name, "website": domain, "address": street, "city": city, "state": state,
                "zip": zip, "country": country, "industry": hs_industry,
                "numberofemployees": employees.to_string(),
                "lifecyclestage": "customer", "hubspot_owner_id": owner(&hs_owners, h >> 40),
            });
            hs.contacts.push(HsRecord {
                id: format!("9{i:010}"),
                properties: map(contact_props),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Seed {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../config/emulator-seed.json");
        Seed::load(&path).unwrap()
    }

    #[test]
    fn generated_books_are_sized_owned_and_repeatable() {
        let mut a = demo();
        let before = (a.salesforce.accounts.len(), a.hubspot.contacts.len());
        a.generate(500);
        assert_eq!(a.salesforce.accounts.len(), before.0 + 500);
        assert_eq!(
            a.salesforce.leads.len() - demo().salesforce.leads.len(),
            500
        );
        assert_eq!(a.salesforce.contacts.len(), 500);
        assert_eq!(
            a.hubspot.companies.len() - demo().hubspot.companies.len(),
            500
        );
        assert_eq!(a.hubspot.contacts.len(), before.1 + 1_000);
        // Still a valid seed: unique ids, every owner a seeded user or owner.
        assert!(a.problems().is_empty(), "{:?}", &a.problems()[..3]);
        let mut b = demo();
        b.generate(500);
        assert_eq!(a, b);
        // Lead e-mail domains are the domains of generated accounts.
        let domains: std::collections::BTreeSet<String> = (0..500).map(|i| company(i).1).collect();
        let lead = a.salesforce.leads.last().unwrap();
        let email = lead["Email"].as_str().unwrap();
        assert!(
            domains.contains(email.split('@').nth(1).unwrap()),
            "{email}"
        );
        // Owners spread over every active user.
        let owners: std::collections::BTreeSet<&str> = a
            .salesforce
            .accounts
            .iter()
            .filter_map(|r| r.get("OwnerId").and_then(Value::as_str))
            .collect();
        let active = a.salesforce.users.iter().filter(|u| u.is_active).count();
        assert_eq!(owners.len(), active);
    }
}
