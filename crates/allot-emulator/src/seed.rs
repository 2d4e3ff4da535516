//! The seed file: users, owners and records the emulator starts with.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::EmulatorError;

/// Everything the emulator starts with, per CRM.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub salesforce: SalesforceSeed,
    #[serde(default)]
    pub hubspot: HubSpotSeed,
}

/// Salesforce users and records. Records are REST-shaped field maps with an `Id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceSeed {
    #[serde(default)]
    pub users: Vec<SfUser>,
    #[serde(default)]
    pub leads: Vec<Map<String, Value>>,
    #[serde(default)]
    pub accounts: Vec<Map<String, Value>>,
    #[serde(default)]
    pub contacts: Vec<Map<String, Value>>,
}

/// A Salesforce user, as `SELECT Id, Name, Email, IsActive FROM User` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SfUser {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
    /// The login name; JWT bearer assertions name it in `sub`. Defaults to the email.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default = "yes")]
    pub is_active: bool,
}

/// HubSpot owners and records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSpotSeed {
    #[serde(default)]
    pub owners: Vec<HsOwner>,
    #[serde(default)]
    pub contacts: Vec<HsRecord>,
    #[serde(default)]
    pub companies: Vec<HsRecord>,
}

/// A HubSpot owner, as `GET /crm/v3/owners` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HsOwner {
    pub id: String,
    #[serde(default)]
    pub user_id: Option<i64>,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub archived: bool,
}

/// A HubSpot contact or company.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsRecord {
    pub id: String,
    #[serde(default)]
    pub properties: Map<String, Value>,
}

fn yes() -> bool {
    true
}

impl Seed {
    /// Parses and checks a seed; every problem is reported at once.
    pub fn from_json(text: &str, origin: &str) -> Result<Seed, EmulatorError> {
        let seed: Seed = serde_json::from_str(text).map_err(|e| EmulatorError::Seed {
            origin: origin.to_string(),
            problems: vec![e.to_string()],
        })?;
        let problems = seed.problems();
        if problems.is_empty() {
            Ok(seed)
        } else {
            Err(EmulatorError::Seed {
                origin: origin.to_string(),
                problems,
            })
        }
    }

    /// Reads a seed file.
    pub fn load(path: &Path) -> Result<Seed, EmulatorError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| EmulatorError::Seed {
            origin: origin.clone(),
            problems: vec![e.to_string()],
        })?;
        Seed::from_json(&text, &origin)
    }

    /// Missing or duplicate ids, and owners that name nobody.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        let sf = &self.salesforce;
        for u in &sf.users {
            if !seen.insert(u.id.clone()) {
                problems.push(format!("salesforce user {} appears twice", u.id));
            }
        }
        let sf_lists = [
            ("leads", &sf.leads),
            ("accounts", &sf.accounts),
            ("contacts", &sf.contacts),
        ];
        for (list, records) in sf_lists {
            for (i, r) in records.iter().enumerate() {
                let Some(id) = r.get("Id").and_then(Value::as_str) else {
                    problems.push(format!("salesforce.{list}[{i}] has no string Id"));
                    continue;
                };
                if !seen.insert(id.to_string()) {
                    problems.push(format!("salesforce.{list}[{i}]: id {id} appears twice"));
                }
                if let Some(owner) = r.get("OwnerId").and_then(Value::as_str) {
                    if !sf.users.iter().any(|u| u.id == owner) {
                        problems.push(format!(
                            "salesforce.{list}[{i}]: OwnerId {owner} is no seeded user"
                        ));
                    }
                }
            }
        }
        let hs = &self.hubspot;
        let mut hs_seen = BTreeSet::new();
        for o in &hs.owners {
            if !hs_seen.insert(format!("owner:{}", o.id)) {
                problems.push(format!("hubspot owner {} appears twice", o.id));
            }
        }
        for (list, records) in [("contacts", &hs.contacts), ("companies", &hs.companies)] {
            for (i, r) in records.iter().enumerate() {
                if r.id.is_empty() || !hs_seen.insert(format!("{list}:{}", r.id)) {
                    problems.push(format!(
                        "hubspot.{list}[{i}]: id {:?} is empty or appears twice",
                        r.id
                    ));
                }
                if let Some(owner) = r.properties.get("hubspot_owner_id").and_then(Value::as_str) {
                    if !owner.is_empty() && !hs.owners.iter().any(|o| o.id == owner) {
                        problems.push(format!(
                            "hubspot.{list}[{i}]: hubspot_owner_id {owner} is no seeded owner"
                        ));
                    }
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_problems_are_all_reported() {
        let text = r#"{
          "salesforce": {"users": [{"Id": "005A", "Name": "A", "Email": "a@x.example", "IsActive": true}],
                         "leads": [{"Id": "00QA", "OwnerId": "005Z"}, {"Company": "no id"}, {"Id": "00QA"}]},
          "hubspot": {"owners": [{"id": "1"}], "contacts": [{"id": "7", "properties": {"hubspot_owner_id": "9"}}]}
        }"#;
        let Err(EmulatorError::Seed { problems, .. }) = Seed::from_json(text, "t") else {
            panic!("seed should be refused");
        };
        assert_eq!(
            problems,
            vec![
                "salesforce.leads[0]: OwnerId 005Z is no seeded user",
                "salesforce.leads[1] has no string Id",
                "salesforce.leads[2]: id 00QA appears twice",
                "hubspot.contacts[0]: hubspot_owner_id 9 is no seeded owner",
            ]
        );
    }

    #[test]
    fn unknown_sections_are_refused_and_defaults_apply() {
        assert!(Seed::from_json(r#"{"dynamics": {}}"#, "t").is_err());
        let seed = Seed::from_json(r#"{"salesforce": {"users": [{"Id": "005A"}]}}"#, "t").unwrap();
        assert!(seed.salesforce.users[0].is_active);
        assert!(seed.hubspot.owners.is_empty());
    }

    #[test]
    fn the_demo_seed_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/emulator-seed.json");
        let seed = Seed::load(&path).unwrap();
        assert!(seed.salesforce.users.len() >= 8);
        assert!(seed.hubspot.owners.len() >= 6);
        assert!(seed.salesforce.leads.len() >= 20);
        assert!(seed.hubspot.contacts.len() >= 20);
    }
}
