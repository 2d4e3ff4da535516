//! CRM field names → allot canonical field names, per CRM and object kind.
//!
//! A map is read from TOML (see `config/fieldmaps/*.toml`, embedded as defaults):
//! one table per object kind, each key a canonical name, each value the CRM field
//! or the CRM fields in order of preference. Fields no entry names keep their raw
//! CRM names.

use std::collections::BTreeMap;

use allot_core::{Crm, ObjectKind, Value};
use serde::Deserialize;

use crate::domain::domain_of;
use crate::error::FieldMapError;

/// The canonical name that sets [`allot_core::Record::owner`] instead of a field.
pub const OWNER: &str = "owner";
/// The canonical name derived from `email` / `website` when no CRM field gives it.
pub const DOMAIN: &str = "domain";
/// Every built-in canonical name (a map may add more under `[<object>.extra]`).
pub const CANONICAL: [&str; 13] = [
    "country",
    "state",
    "postal_code",
    "city",
    "industry",
    "employees",
    "annual_revenue",
    "email",
    "website",
    DOMAIN,
    "company",
    "lead_source",
    OWNER,
];

const SALESFORCE_TOML: &str = include_str!("../../../config/fieldmaps/salesforce.toml");
const HUBSPOT_TOML: &str = include_str!("../../../config/fieldmaps/hubspot.toml");

/// Field names of one CRM mapped to allot's canonical names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldMap {
    objects: BTreeMap<ObjectKind, ObjectMap>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ObjectMap {
    /// canonical → CRM fields, most preferred first.
    to_crm: BTreeMap<String, Vec<String>>,
    /// CRM field → canonical.
    to_canonical: BTreeMap<String, String>,
}

impl FieldMap {
    /// Parses and checks a field map. Unknown tables and keys are errors (a typo in
    /// a canonical name must not silently drop a field); all problems are reported
    /// together.
    pub fn from_toml(text: &str) -> Result<FieldMap, FieldMapError> {
        let file: FileRepr = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        let mut problems = Vec::new();
        let mut objects = BTreeMap::new();
        for (kind, repr) in [
            (ObjectKind::Lead, file.lead),
            (ObjectKind::Account, file.account),
            (ObjectKind::Contact, file.contact),
        ] {
            if let Some(repr) = repr {
                objects.insert(kind, repr.validate(kind, &mut problems));
            }
        }
        if problems.is_empty() {
            Ok(FieldMap { objects })
        } else {
            Err(FieldMapError::Invalid { problems })
        }
    }

    /// The shipped Salesforce map (`config/fieldmaps/salesforce.toml`, embedded).
    pub fn salesforce_default() -> FieldMap {
        // The embedded file is checked by a test; an empty map is the fallback.
        FieldMap::from_toml(SALESFORCE_TOML).unwrap_or_default()
    }

    /// The shipped HubSpot map (`config/fieldmaps/hubspot.toml`, embedded).
    pub fn hubspot_default() -> FieldMap {
        FieldMap::from_toml(HUBSPOT_TOML).unwrap_or_default()
    }

    /// Native events already use canonical names: every canonical name maps to itself.
    pub fn identity() -> FieldMap {
        let mut om = ObjectMap::default();
        for name in CANONICAL {
            om.to_crm.insert(name.to_string(), vec![name.to_string()]);
            om.to_canonical.insert(name.to_string(), name.to_string());
        }
        FieldMap {
            objects: ObjectKind::ALL.iter().map(|k| (*k, om.clone())).collect(),
        }
    }

    /// The default map for a CRM.
    pub fn for_crm(crm: Crm) -> FieldMap {
        match crm {
            Crm::Salesforce => FieldMap::salesforce_default(),
            Crm::Hubspot => FieldMap::hubspot_default(),
            Crm::Native => FieldMap::identity(),
        }
    }

    /// The canonical name of a CRM field, `None` when the field is unmapped.
    pub fn canonical(&self, object: ObjectKind, crm_field: &str) -> Option<&str> {
        self.objects
            .get(&object)?
            .to_canonical
            .get(crm_field)
            .map(String::as_str)
    }

    /// The CRM fields that give a canonical field, most preferred first (which
    /// fields to read when hydrating a record over REST).
    pub fn crm_fields_for(&self, object: ObjectKind, canonical: &str) -> Vec<&str> {
        self.objects
            .get(&object)
            .and_then(|om| om.to_crm.get(canonical))
            .map(|fields| fields.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Every CRM field the map names for an object kind, sorted (a hydration field list).
    pub fn mapped_crm_fields(&self, object: ObjectKind) -> Vec<&str> {
        self.objects
            .get(&object)
            .map(|om| om.to_canonical.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// CRM fields → canonical fields.
    ///
    /// A canonical field takes the first of its CRM fields that is present and not
    /// null, else null if one of them is present as null (cleared). Unmapped fields
    /// keep their raw names. `domain` is derived from `email`, else `website` (see
    /// [`domain_of`]) when the result has no non-null `domain`.
    pub fn apply(
        &self,
        object: ObjectKind,
        fields: &BTreeMap<String, Value>,
    ) -> BTreeMap<String, Value> {
        let mut out = self.apply_mapped(object, fields);
        if out.get(DOMAIN).is_none_or(Value::is_null) {
            if let Some(d) = derive_domain(&out) {
                out.insert(DOMAIN.to_string(), Value::Str(d));
            }
        }
        out
    }

    /// [`FieldMap::apply`] without deriving `domain`.
    pub(crate) fn apply_mapped(
        &self,
        object: ObjectKind,
        fields: &BTreeMap<String, Value>,
    ) -> BTreeMap<String, Value> {
        let Some(om) = self.objects.get(&object) else {
            return fields.clone();
        };
        let mut out: BTreeMap<String, Value> = fields
            .iter()
            .filter(|(k, _)| !om.to_canonical.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (canonical, crm_fields) in &om.to_crm {
            let present = crm_fields.iter().filter_map(|f| fields.get(f));
            let mut chosen: Option<&Value> = None;
            for v in present {
                if !v.is_null() {
                    chosen = Some(v);
                    break;
                }
                chosen.get_or_insert(v);
            }
            if let Some(v) = chosen {
                out.insert(canonical.clone(), v.clone());
            }
        }
        out
    }
}

/// The domain of canonical `email`, else of `website`.
pub(crate) fn derive_domain(fields: &BTreeMap<String, Value>) -> Option<String> {
    ["email", "website"]
        .iter()
        .filter_map(|k| fields.get(*k).and_then(Value::as_text))
        .find_map(|text| domain_of(&text))
}

fn toml_error(text: &str, e: &toml::de::Error) -> FieldMapError {
    let location = e.span().map_or_else(String::new, |span| {
        let before = &text.as_bytes()[..span.start.min(text.len())];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |p| p + 1);
        format!(" at line {line} column {}", span.start - line_start + 1)
    });
    FieldMapError::Toml {
        location,
        message: e.message().trim().to_string(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    lead: Option<ObjectRepr>,
    account: Option<ObjectRepr>,
    contact: Option<ObjectRepr>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectRepr {
    country: Option<OneOrMany>,
    state: Option<OneOrMany>,
    postal_code: Option<OneOrMany>,
    city: Option<OneOrMany>,
    industry: Option<OneOrMany>,
    employees: Option<OneOrMany>,
    annual_revenue: Option<OneOrMany>,
    email: Option<OneOrMany>,
    website: Option<OneOrMany>,
    domain: Option<OneOrMany>,
    company: Option<OneOrMany>,
    lead_source: Option<OneOrMany>,
    owner: Option<OneOrMany>,
    /// Canonical names beyond the built-in ones.
    #[serde(default)]
    extra: BTreeMap<String, OneOrMany>,
}

impl ObjectRepr {
    fn validate(self, kind: ObjectKind, problems: &mut Vec<String>) -> ObjectMap {
        let builtin = [
            ("country", self.country),
            ("state", self.state),
            ("postal_code", self.postal_code),
            ("city", self.city),
            ("industry", self.industry),
            ("employees", self.employees),
            ("annual_revenue", self.annual_revenue),
            ("email", self.email),
            ("website", self.website),
            (DOMAIN, self.domain),
            ("company", self.company),
            ("lead_source", self.lead_source),
            (OWNER, self.owner),
        ];
        let mut entries: Vec<(String, OneOrMany)> = builtin
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect();
        for (name, v) in self.extra {
            if CANONICAL.contains(&name.as_str()) {
                problems.push(format!(
                    "[{kind}.extra] {name}: is a built-in name, set it in [{kind}]"
                ));
            } else if name.trim().is_empty() {
                problems.push(format!("[{kind}.extra]: empty canonical name"));
            } else {
                entries.push((name, v));
            }
        }
        let mut om = ObjectMap::default();
        for (canonical, v) in entries {
            let fields = match v {
                OneOrMany::One(f) => vec![f],
                OneOrMany::Many(fs) => fs,
            };
            if fields.is_empty() {
                problems.push(format!("[{kind}] {canonical}: empty list of CRM fields"));
            }
            for f in &fields {
                if f.trim().is_empty() {
                    problems.push(format!("[{kind}] {canonical}: empty CRM field name"));
                } else if let Some(other) = om.to_canonical.get(f) {
                    problems.push(format!(
                        "[{kind}] {canonical}: CRM field \"{f}\" is already mapped to {other}"
                    ));
                } else {
                    om.to_canonical.insert(f.clone(), canonical.clone());
                }
            }
            om.to_crm.insert(canonical, fields);
        }
        om
    }
}
