//! Re-reading records from the CRM when an event does not carry enough:
//! Salesforce gap events, HubSpot single-property events about records not
//! seen before, creates without fields.

use std::collections::BTreeMap;

use allot_core::{Crm, ObjectKind, Value};
use allot_crm::{CrmClient, CrmError};

/// Where records are re-read from. The set is closed.
#[derive(Debug, Clone, Default)]
pub enum Hydrator {
    /// No CRM to ask (replays, tests): records keep what events carried.
    #[default]
    Off,
    /// One client per CRM.
    Crm(Vec<CrmClient>),
}

impl Hydrator {
    /// The record's current fields (CRM names, scalars only), `None` when the
    /// CRM does not know it or no client serves `crm`.
    pub async fn fetch(
        &self,
        crm: Crm,
        object: ObjectKind,
        id: &str,
        fields: &[&str],
    ) -> Result<Option<BTreeMap<String, Value>>, CrmError> {
        let Hydrator::Crm(clients) = self else {
            return Ok(None);
        };
        let Some(client) = clients.iter().find(|c| c.crm() == crm) else {
            return Ok(None);
        };
        let Some(map) = client.get_record(object, id, fields).await? else {
            return Ok(None);
        };
        Ok(Some(
            map.into_iter()
                .filter_map(|(k, v)| scalar(v).map(|v| (k, v)))
                .collect(),
        ))
    }

    pub fn enabled(&self) -> bool {
        matches!(self, Hydrator::Crm(c) if !c.is_empty())
    }
}

fn scalar(v: serde_json::Value) -> Option<Value> {
    match v {
        serde_json::Value::Null => Some(Value::Null),
        serde_json::Value::Bool(b) => Some(Value::Bool(b)),
        serde_json::Value::Number(n) => n.as_f64().map(Value::Num),
        serde_json::Value::String(s) => Some(Value::Str(s)),
        _ => None,
    }
}
