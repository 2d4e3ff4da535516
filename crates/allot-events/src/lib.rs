//! allot-events
