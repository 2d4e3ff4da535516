//! Errors of the stages.

use allot_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("crm: {0}")]
    Crm(#[from] allot_crm::CrmError),
    #[error("{what}: {detail}")]
    Invalid { what: String, detail: String },
    #[error("stage {stage} stopped: {detail}")]
    Stopped { stage: &'static str, detail: String },
}

impl ServiceError {
    /// Whether trying the same work again may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            ServiceError::Store(e) => e.retryable(),
            ServiceError::Crm(e) => e.retryable(),
            ServiceError::Invalid { .. } | ServiceError::Stopped { .. } => false,
        }
    }
}
