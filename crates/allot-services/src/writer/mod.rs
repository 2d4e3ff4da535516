//! The writer: owner changes from the outbox to the CRM.
