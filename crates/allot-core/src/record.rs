//! CRM-neutral records and field values.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Millis;

/// The kinds of CRM object allot routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Lead,
    Account,
    Contact,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 3] = [ObjectKind::Lead, ObjectKind::Account, ObjectKind::Contact];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Lead => "lead",
            ObjectKind::Account => "account",
            ObjectKind::Contact => "contact",
        }
    }

    /// Parses `lead`, `account`, `contact` (any case), and the Salesforce
    /// entity names / HubSpot object names that mean the same thing.
    pub fn parse(s: &str) -> Option<ObjectKind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "lead" | "leads" => Some(ObjectKind::Lead),
            "account" | "accounts" | "company" | "companies" | "0-2" => Some(ObjectKind::Account),
            "contact" | "contacts" | "0-1" => Some(ObjectKind::Contact),
            _ => None,
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field value as carried by a CRM: JSON scalars only. Nested CRM values
/// (compound addresses) are flattened by the decoders before they get here.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as text, `None` for null. Numbers print without a trailing `.0`.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Bool(b) => Some(b.to_string()),
            Value::Num(n) => Some(fmt_num(*n)),
            Value::Str(s) => Some(s.clone()),
        }
    }

    /// The value as a number: numbers, and strings that parse as one
    /// (CRMs send `"120"` as often as `120`). Thousands separators are accepted.
    pub fn as_num(&self) -> Option<f64> {
        match self {
            Value::Num(n) if n.is_finite() => Some(*n),
            Value::Str(s) => {
                let t: String = s
                    .trim()
                    .chars()
                    .filter(|c| *c != ',' && *c != '_')
                    .collect();
                t.parse::<f64>().ok().filter(|n| n.is_finite())
            }
            _ => None,
        }
    }
}

/// Hand-written so that decoding a scalar costs one visit, not one failed
/// attempt per variant as an untagged derive would.
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number, boolean or null")
            }
            fn visit_unit<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
                Ok(Value::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
                Ok(Value::Num(n as f64))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
                Ok(Value::Num(n as f64))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
                Ok(Value::Num(n))
            }
            fn visit_str<E>(self, s: &str) -> Result<Value, E> {
                Ok(Value::Str(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> Result<Value, E> {
                Ok(Value::Str(s))
            }
        }
        d.deserialize_any(V)
    }
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Num(n)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Num(n as f64)
    }
}

/// A CRM record as the engine sees it.
///
/// `fields` holds canonical field names (`country`, `state`, `postal_code`,
/// `city`, `industry`, `employees`, `annual_revenue`, `email`, `website`,
/// `domain`, `company`, `lead_source`, ...) after a field map was applied, and
/// any other CRM field under its raw name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub object: ObjectKind,
    pub id: String,
    /// The CRM user id that owns the record now, if any.
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
    /// When the current owner got the record (for existing-owner protection windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_since: Option<Millis>,
    /// Last modification time known for the record (lead-to-account prefers the newest account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Millis>,
    /// Marked by a delete event; restored by undelete.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl Record {
    pub fn new(object: ObjectKind, id: impl Into<String>) -> Self {
        Record {
            object,
            id: id.into(),
            owner: None,
            fields: BTreeMap::new(),
            owner_since: None,
            updated_at: None,
            deleted: false,
        }
    }

    /// A field, treating an explicit null like a missing field.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.fields.get(name).filter(|v| !v.is_null())
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(name.to_string(), value.into());
        self
    }

    pub fn with_owner(mut self, owner: &str) -> Self {
        self.owner = Some(owner.to_string());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_round_trips_as_plain_json() {
        let cases = [
            ("null", Value::Null),
            ("true", Value::Bool(true)),
            ("12.5", Value::Num(12.5)),
            ("\"US\"", Value::Str("US".into())),
        ];
        for (json, want) in cases {
            let got: Value = serde_json::from_str(json).unwrap();
            assert_eq!(got, want, "{json}");
            assert_eq!(serde_json::to_string(&got).unwrap(), json);
        }
    }

    #[test]
    fn numbers_parse_from_strings() {
        let cases = [
            (Value::from("1,200"), Some(1200.0)),
            (Value::from(" 42 "), Some(42.0)),
            (Value::from("n/a"), None),
            (Value::Num(7.0), Some(7.0)),
            (Value::Null, None),
        ];
        for (v, want) in cases {
            assert_eq!(v.as_num(), want, "{v:?}");
        }
    }

    #[test]
    fn object_kind_parses_crm_names() {
        let cases = [
            ("Lead", Some(ObjectKind::Lead)),
            ("companies", Some(ObjectKind::Account)),
            ("0-1", Some(ObjectKind::Contact)),
            ("Opportunity", None),
        ];
        for (s, want) in cases {
            assert_eq!(ObjectKind::parse(s), want, "{s}");
        }
    }

    #[test]
    fn null_field_reads_as_missing() {
        let r = Record::new(ObjectKind::Lead, "1").with("country", Value::Null);
        assert!(r.field("country").is_none());
    }
}
