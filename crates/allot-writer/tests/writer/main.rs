//! The writer against the CRM emulator on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod batching;
mod common;
mod faults;
