//! allot-rules
