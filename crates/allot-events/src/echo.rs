//! Recognising the change events caused by allot's own writes (loop prevention).

use allot_core::{ChangeEvent, Crm};

/// Who allot is in each CRM, to recognise its own writes coming back as events.
///
/// The rules, per source:
/// * Salesforce: allot sends `Sforce-Call-Options: client=<id>` on every write, and
///   the events it causes carry `;client=<id>` in `changeOrigin`. An event is an echo
///   when one `;`-separated part of its origin is exactly `client=<salesforce_client_id>`
///   (so `client=allot` does not match `client=allot-test`).
/// * HubSpot: the decoded origin is `changeSource` or `changeSource:sourceId`. An event
///   is an echo when its `sourceId` (or, without one, its whole origin) equals one of
///   `hubspot_source_ids`, or when `changeSource` is `INTEGRATION` and the last
///   `:`-separated part of `sourceId` is `hubspot_app_id`. Exact matches only.
/// * Native events are never echoes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EchoFilter {
    /// The `client=` id allot sends in `Sforce-Call-Options`.
    pub salesforce_client_id: Option<String>,
    /// HubSpot `sourceId`s allot writes as (e.g. `userId:45678` of its service user).
    pub hubspot_source_ids: Vec<String>,
    /// allot's HubSpot app id (changes made through the app have source `INTEGRATION`).
    pub hubspot_app_id: Option<String>,
}

impl EchoFilter {
    /// True when the event was caused by allot's own write (see the type's rules).
    pub fn is_own_echo(&self, e: &ChangeEvent) -> bool {
        let Some(origin) = e.origin.as_deref() else {
            return false;
        };
        match e.source {
            Crm::Salesforce => self.salesforce_client_id.as_deref().is_some_and(|id| {
                !id.is_empty()
                    && origin
                        .split(';')
                        .any(|part| part.trim().strip_prefix("client=") == Some(id))
            }),
            Crm::Hubspot => {
                let (source, source_id) = match origin.split_once(':') {
                    Some((s, id)) => (s, Some(id)),
                    None => (origin, None),
                };
                let listed = self
                    .hubspot_source_ids
                    .iter()
                    .any(|id| !id.is_empty() && source_id.unwrap_or(origin) == id);
                let app = self.hubspot_app_id.as_deref().is_some_and(|app| {
                    source.eq_ignore_ascii_case("INTEGRATION")
                        && source_id.and_then(|s| s.rsplit(':').next()) == Some(app)
                });
                listed || app
            }
            Crm::Native => false,
        }
    }
}
