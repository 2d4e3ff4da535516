//! HubSpot CRM v3: private-app or OAuth tokens, batch owner updates, record
//! reads, owners, and webhook signatures (v3).

pub mod auth;
mod client;
mod list;
mod read;
pub mod request;

/// Webhook signatures (v3): kept in `allot-events`, re-exported here.
pub use allot_events::hubspot_signature as signature;
pub use auth::HubSpotAuth;
pub use client::{HubSpotClient, HubSpotConfig};
pub use list::{SEARCH_INTERVAL_MS, SEARCH_PAGE};
pub use request::{HubSpotOwner, HubSpotRateLimit};
pub use signature::{hubspot_signature_v3, verify_hubspot_signature_v3, SignatureError};
