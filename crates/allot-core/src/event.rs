//! The one normalised change event every source is decoded into.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Millis, ObjectKind, Value};

/// Version of the [`ChangeEvent`] JSON schema (`v` field).
pub const EVENT_VERSION: u8 = 1;

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Crm {
    Salesforce,
    Hubspot,
    /// allot's own JSON envelope (already canonical field names).
    Native,
}

impl Crm {
    pub fn as_str(self) -> &'static str {
        match self {
            Crm::Salesforce => "salesforce",
            Crm::Hubspot => "hubspot",
            Crm::Native => "native",
        }
    }
}

impl fmt::Display for Crm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Create,
    Update,
    Delete,
    Undelete,
    /// The CRM could not send the change itself (Salesforce GAP_*): re-read the record.
    Gap,
    /// A delete the CRM could not describe (Salesforce GAP_DELETE): the
    /// record counts as deleted only once a read confirms it is gone.
    GapDelete,
    /// Too many changes to describe (Salesforce GAP_OVERFLOW): resync the whole object kind.
    Overflow,
    /// The CRM refused allot's write of an owner because that owner is
    /// inactive there. Made by the writer ([`ChangeEvent::owner_refused`]),
    /// never by a CRM: the record is decided again without that owner.
    /// `fields` holds `owner` (refused) and `previous_owner` (what the CRM
    /// still shows), under those names.
    #[serde(rename = "owner_refused")]
    OwnerRefused,
}

/// A decoded, normalised change to one record.
///
/// `fields` holds exactly the values the event carried, under the CRM's own
/// field names (compound fields flattened to the REST names, e.g.
/// `BillingAddress.State` → `BillingState`). A `Value::Null` in `fields` means
/// the CRM said the field was cleared; a field that is absent was not sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    pub v: u8,
    pub source: Crm,
    /// Unique per event and record (dedupe key): replay id or HubSpot eventId,
    /// suffixed with the record id when one CRM event fans out to several records.
    pub event_id: String,
    pub object: ObjectKind,
    /// `None` only for [`ChangeKind::Overflow`].
    pub record_id: Option<String>,
    pub change: ChangeKind,
    /// Fields the CRM says changed (CRM names). Empty for creates when not sent.
    #[serde(default)]
    pub changed_fields: Vec<String>,
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
    /// Commit time in the CRM, epoch ms.
    #[serde(default)]
    pub commit_time: Option<Millis>,
    /// Order within one CRM transaction (Salesforce `sequenceNumber`).
    #[serde(default)]
    pub sequence: Option<i64>,
    #[serde(default)]
    pub commit_user: Option<String>,
    /// Who caused the change: Salesforce `changeOrigin`, HubSpot `changeSource`/`sourceId`.
    #[serde(default)]
    pub origin: Option<String>,
    /// Salesforce `transactionKey`, HubSpot `subscriptionId`, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<String>,
    /// Where `event_id` is unique, besides the CRM: Salesforce replay ids
    /// within a channel (allot scopes them by object, each object's change
    /// events being one channel's), HubSpot `eventId`s within a portal and
    /// app (`portal/app`). `None` for native events and old messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// The scope of the events allot makes itself ([`ChangeKind::OwnerRefused`]).
pub const WRITER_SCOPE: &str = "allot-writer";

impl ChangeEvent {
    /// The event saying the CRM refused `change` for an inactive owner: its
    /// id is the change's (event and decision time), so a repeat of the
    /// refusal is the same event and is dropped as a duplicate.
    pub fn owner_refused(change: &crate::OwnerChange, reason: &str, at: Millis) -> ChangeEvent {
        let text = |s: &str| Value::from(s);
        let mut fields = BTreeMap::new();
        fields.insert("owner".to_string(), text(&change.owner));
        fields.insert(
            "previous_owner".to_string(),
            change.previous_owner.as_deref().map_or(Value::Null, text),
        );
        fields.insert("reason".to_string(), text(reason));
        ChangeEvent {
            v: EVENT_VERSION,
            source: change.crm.unwrap_or(Crm::Native),
            event_id: format!(
                "refused:{}:{}:{}",
                change.record_id, change.decided_at, change.owner
            ),
            object: change.object,
            record_id: Some(change.record_id.clone()),
            change: ChangeKind::OwnerRefused,
            changed_fields: Vec::new(),
            fields,
            commit_time: Some(at),
            sequence: None,
            commit_user: None,
            origin: Some("allot".to_string()),
            transaction: None,
            scope: Some(WRITER_SCOPE.to_string()),
        }
    }

    /// The event taking `rep` off a record allot gave them (offboarding in
    /// microservice mode): an [`ChangeKind::OwnerRefused`] event whose
    /// `note` opens the explanation. The CRM still shows `rep`, so the
    /// record is decided again as it is, without them. `event_id` is the
    /// caller's, stable across repeats.
    pub fn owner_withdrawn(
        object: crate::ObjectKind,
        record_id: &str,
        source: Crm,
        rep: &str,
        note: &str,
        event_id: &str,
        at: Millis,
    ) -> ChangeEvent {
        let mut fields = BTreeMap::new();
        fields.insert("owner".to_string(), Value::from(rep));
        fields.insert("note".to_string(), Value::from(note));
        ChangeEvent {
            v: EVENT_VERSION,
            source,
            event_id: event_id.to_string(),
            object,
            record_id: Some(record_id.to_string()),
            change: ChangeKind::OwnerRefused,
            changed_fields: Vec::new(),
            fields,
            commit_time: Some(at),
            sequence: None,
            commit_user: None,
            origin: Some("allot".to_string()),
            transaction: None,
            scope: Some(WRITER_SCOPE.to_string()),
        }
    }

    /// The note of an [`Self::owner_withdrawn`] event.
    pub fn withdrawal(&self) -> Option<String> {
        if self.change != ChangeKind::OwnerRefused {
            return None;
        }
        self.fields.get("note")?.as_text()
    }

    /// The refused and the previous owner of a [`ChangeKind::OwnerRefused`] event.
    pub fn refusal(&self) -> Option<(String, Option<String>)> {
        if self.change != ChangeKind::OwnerRefused {
            return None;
        }
        let owner = self.fields.get("owner")?.as_text()?;
        let previous = self.fields.get("previous_owner").and_then(Value::as_text);
        Some((owner, previous))
    }

    /// The dedupe key: CRM, scope and event id, so ids that collide across
    /// channels, portals or CRMs stay apart (`salesforce/lead/17`).
    pub fn dedupe_key(&self) -> String {
        format!(
            "{}/{}/{}",
            self.source,
            self.scope.as_deref().unwrap_or("-"),
            self.event_id
        )
    }

    /// Ordering key for "is this event older than what was applied": commit
    /// time, then sequence. Missing parts sort first.
    pub fn order_key(&self) -> (Millis, i64) {
        (
            self.commit_time.unwrap_or(Millis::MIN),
            self.sequence.unwrap_or(i64::MIN),
        )
    }
}
