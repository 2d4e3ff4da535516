//! The one error type of this crate, with retry hints, and per-record results.

use std::time::Duration;

use allot_core::Crm;
use serde::{Deserialize, Serialize};

/// Everything a CRM client call can fail with.
///
/// Each variant says whether retrying the same call later can help
/// ([`CrmError::retryable`]) and, when the CRM said so, how long to wait
/// ([`CrmError::retry_after`]). Retrying and pacing are the caller's job; the
/// clients retry only once, after refreshing an expired Salesforce session.
#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    /// The client configuration cannot work (bad URL, unreadable key).
    #[error("{crm} client configuration: {message}")]
    Config { crm: Crm, message: String },

    /// More records were passed than one call of this CRM accepts.
    #[error("{crm} batch of {got} records exceeds the limit of {max} per call")]
    BatchTooLarge { crm: Crm, max: usize, got: usize },

    /// The object kind has no counterpart in this CRM (HubSpot has no leads here).
    #[error("{crm} does not support object kind {object}")]
    UnsupportedObject {
        crm: Crm,
        object: allot_core::ObjectKind,
    },

    /// The token endpoint refused the credentials, or a fresh token was refused.
    #[error("{crm} authentication failed at {endpoint}: {message}")]
    Auth {
        crm: Crm,
        endpoint: String,
        status: Option<u16>,
        message: String,
    },

    /// The request did not get an HTTP answer (connect error, timeout, reset).
    #[error("{crm} request to {endpoint} failed: {message}")]
    Transport {
        crm: Crm,
        endpoint: String,
        message: String,
        /// The configured timeout elapsed.
        timeout: bool,
    },

    /// A short-term rate limit answered 429 (HubSpot `TEN_SECONDLY_ROLLING`,
    /// `DAILY`, or a proxy's 429). `policy` is the CRM's `policyName` when sent.
    #[error("{crm} rate limited at {endpoint} (policy {policy}): {message}")]
    RateLimited {
        crm: Crm,
        endpoint: String,
        policy: String,
        retry_after: Option<Duration>,
        message: String,
    },

    /// Salesforce `REQUEST_LIMIT_EXCEEDED`: the org's daily API quota is spent.
    /// Not retryable today: the writer must stop until the quota resets.
    #[error("{crm} daily API quota exhausted at {endpoint}: {message}")]
    QuotaExhausted {
        crm: Crm,
        endpoint: String,
        message: String,
    },

    /// Any other non-success answer, with the CRM's error code when it sent one.
    #[error("{crm} answered {status} at {endpoint}: {code}: {message}")]
    Api {
        crm: Crm,
        endpoint: String,
        status: u16,
        /// `errorCode` (Salesforce) or `category` (HubSpot); empty when absent.
        code: String,
        message: String,
        retry_after: Option<Duration>,
    },

    /// The answer was not in the documented shape.
    #[error("{crm} answer from {endpoint} could not be decoded: {message}")]
    Decode {
        crm: Crm,
        endpoint: String,
        message: String,
    },
}

impl CrmError {
    /// Whether the same call may succeed if sent again later.
    pub fn retryable(&self) -> bool {
        match self {
            CrmError::Transport { .. } => true,
            CrmError::RateLimited { policy, .. } => !policy.eq_ignore_ascii_case("DAILY"),
            CrmError::Api { status, code, .. } => {
                *status >= 500 || *status == 408 || *status == 429 || code_is_transient(code)
            }
            CrmError::Config { .. }
            | CrmError::BatchTooLarge { .. }
            | CrmError::UnsupportedObject { .. }
            | CrmError::Auth { .. }
            | CrmError::QuotaExhausted { .. }
            | CrmError::Decode { .. } => false,
        }
    }

    /// How long the CRM asked the caller to wait (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CrmError::RateLimited { retry_after, .. } | CrmError::Api { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// The CRM the error came from.
    pub fn crm(&self) -> Crm {
        match self {
            CrmError::Config { crm, .. }
            | CrmError::BatchTooLarge { crm, .. }
            | CrmError::UnsupportedObject { crm, .. }
            | CrmError::Auth { crm, .. }
            | CrmError::Transport { crm, .. }
            | CrmError::RateLimited { crm, .. }
            | CrmError::QuotaExhausted { crm, .. }
            | CrmError::Api { crm, .. }
            | CrmError::Decode { crm, .. } => *crm,
        }
    }
}

/// Error codes that describe a momentary condition of the CRM, not of the request.
fn code_is_transient(code: &str) -> bool {
    matches!(
        code,
        "UNABLE_TO_LOCK_ROW" | "SERVER_UNAVAILABLE" | "INTERNAL_ERROR" | "UNKNOWN_EXCEPTION"
    )
}

/// What went wrong with one record of a batch, classified for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordErrorKind {
    /// Row lock contention (`UNABLE_TO_LOCK_ROW`): send the record again.
    Locked,
    /// The owner exists but is inactive (`INACTIVE_OWNER_OR_USER`): pick another owner.
    InactiveOwner,
    /// The owner (or another reference) does not exist
    /// (`INVALID_CROSS_REFERENCE_KEY`, HubSpot `INVALID_OWNER_ID`).
    InvalidReference,
    /// The record does not exist any more (`ENTITY_IS_DELETED`, HubSpot `OBJECT_NOT_FOUND`).
    NotFound,
    /// A server-side failure for this record only: send it again.
    Transient,
    /// Anything else; permanent.
    Other,
}

impl RecordErrorKind {
    /// Classifies a vendor error code (Salesforce `statusCode`, HubSpot `code` or `category`).
    pub fn from_code(code: &str) -> RecordErrorKind {
        match code {
            "UNABLE_TO_LOCK_ROW" => RecordErrorKind::Locked,
            "INACTIVE_OWNER_OR_USER" => RecordErrorKind::InactiveOwner,
            "INVALID_CROSS_REFERENCE_KEY" | "INVALID_OWNER_ID" => RecordErrorKind::InvalidReference,
            "ENTITY_IS_DELETED" | "NOT_FOUND" | "OBJECT_NOT_FOUND" => RecordErrorKind::NotFound,
            c if code_is_transient(c) => RecordErrorKind::Transient,
            _ => RecordErrorKind::Other,
        }
    }

    /// Whether sending the same record again may succeed.
    pub fn retryable(self) -> bool {
        matches!(self, RecordErrorKind::Locked | RecordErrorKind::Transient)
    }
}

/// Why one record of a batch was not updated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordError {
    /// The vendor's code, as sent (`INACTIVE_OWNER_OR_USER`, `INVALID_OWNER_ID`, ...).
    pub code: String,
    pub message: String,
    /// Whether sending the record again may succeed.
    pub retryable: bool,
    /// The classification a caller branches on (re-route on `InactiveOwner`).
    pub kind: RecordErrorKind,
}

impl RecordError {
    /// Builds an error from a vendor code, classifying it.
    pub fn from_code(code: &str, message: &str) -> RecordError {
        let kind = RecordErrorKind::from_code(code);
        RecordError {
            code: code.to_string(),
            message: message.to_string(),
            retryable: kind.retryable(),
            kind,
        }
    }

    /// The owner is inactive in the CRM: the caller should choose another owner.
    pub fn is_inactive_owner(&self) -> bool {
        self.kind == RecordErrorKind::InactiveOwner
    }
}

/// The outcome for one record of an `update_owners` call, in input order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordResult {
    pub id: String,
    pub ok: bool,
    pub error: Option<RecordError>,
}

impl RecordResult {
    /// A record that was updated.
    pub fn success(id: &str) -> RecordResult {
        RecordResult {
            id: id.to_string(),
            ok: true,
            error: None,
        }
    }

    /// A record that was not updated, and why.
    pub fn failure(id: &str, error: RecordError) -> RecordResult {
        RecordResult {
            id: id.to_string(),
            ok: false,
            error: Some(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_codes_are_classified() {
        let cases = [
            ("UNABLE_TO_LOCK_ROW", RecordErrorKind::Locked, true),
            (
                "INACTIVE_OWNER_OR_USER",
                RecordErrorKind::InactiveOwner,
                false,
            ),
            (
                "INVALID_CROSS_REFERENCE_KEY",
                RecordErrorKind::InvalidReference,
                false,
            ),
            ("INVALID_OWNER_ID", RecordErrorKind::InvalidReference, false),
            ("ENTITY_IS_DELETED", RecordErrorKind::NotFound, false),
            ("OBJECT_NOT_FOUND", RecordErrorKind::NotFound, false),
            ("SERVER_UNAVAILABLE", RecordErrorKind::Transient, true),
            (
                "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                RecordErrorKind::Other,
                false,
            ),
        ];
        for (code, kind, retryable) in cases {
            let e = RecordError::from_code(code, "m");
            assert_eq!(e.kind, kind, "{code}");
            assert_eq!(e.retryable, retryable, "{code}");
            assert_eq!(
                e.is_inactive_owner(),
                kind == RecordErrorKind::InactiveOwner
            );
        }
    }

    #[test]
    fn errors_say_whether_to_retry() {
        let api = |status: u16, code: &str| CrmError::Api {
            crm: Crm::Salesforce,
            endpoint: "e".into(),
            status,
            code: code.into(),
            message: "m".into(),
            retry_after: None,
        };
        let limited = |policy: &str| CrmError::RateLimited {
            crm: Crm::Hubspot,
            endpoint: "e".into(),
            policy: policy.into(),
            retry_after: Some(Duration::from_secs(3)),
            message: "m".into(),
        };
        let cases = [
            (api(500, "UNKNOWN_EXCEPTION"), true),
            (api(503, ""), true),
            (api(400, "UNABLE_TO_LOCK_ROW"), true),
            (api(400, "EXCEEDED_ID_LIMIT"), false),
            (api(404, "NOT_FOUND"), false),
            (limited("TEN_SECONDLY_ROLLING"), true),
            (limited("DAILY"), false),
            (
                CrmError::QuotaExhausted {
                    crm: Crm::Salesforce,
                    endpoint: "e".into(),
                    message: "m".into(),
                },
                false,
            ),
            (
                CrmError::Transport {
                    crm: Crm::Hubspot,
                    endpoint: "e".into(),
                    message: "m".into(),
                    timeout: true,
                },
                true,
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.retryable(), want, "{err}");
        }
        assert_eq!(
            limited("TEN_SECONDLY_ROLLING").retry_after(),
            Some(Duration::from_secs(3))
        );
        assert_eq!(api(500, "").retry_after(), None);
    }
}
