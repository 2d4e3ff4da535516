//! allot-crm
