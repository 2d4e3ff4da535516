//! Salesforce REST: OAuth (client credentials, JWT bearer), composite owner
//! updates, record reads and the users query.

pub mod auth;
mod client;
mod list;
mod read;
pub mod request;

pub use auth::{JwtClaims, SalesforceAuth};
pub use client::{SalesforceClient, SalesforceConfig};
