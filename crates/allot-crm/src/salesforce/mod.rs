//! Salesforce REST: OAuth (client credentials, JWT bearer), composite owner
//! updates, record reads, the users query and Bulk API 2.0 query jobs.

pub mod auth;
mod bulk;
mod client;
mod list;
mod read;
pub mod request;

pub use auth::{JwtClaims, SalesforceAuth};
pub use bulk::{bulk_soql, BulkState};
pub use client::{SalesforceClient, SalesforceConfig};
pub use list::{count_soql, soql_datetime};
