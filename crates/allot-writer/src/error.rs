//! The writer's error type, with retry hints.
//!
//! CRM failures are not errors of the writer: they are outcomes it handles
//! (retry, pause, failed-writes table). What reaches the caller of
//! [`super::Writer::run`] is what the writer cannot handle itself.

use allot_store::StoreError;

/// Everything building or running the writer can fail with.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// The configuration cannot work; every problem is listed.
    #[error("writer config: {}", problems.join("; "))]
    Config { problems: Vec<String> },

    /// The store refused a read or a commit.
    #[error("writer store: {0}")]
    Store(#[from] StoreError),

    /// A blocking store task panicked or was cancelled.
    #[error("writer store task {what} did not finish: {detail}")]
    Task { what: &'static str, detail: String },
}

impl WriterError {
    /// Whether running the writer again may succeed without changing anything.
    pub fn retryable(&self) -> bool {
        match self {
            WriterError::Config { .. } => false,
            WriterError::Store(e) => e.retryable(),
            WriterError::Task { .. } => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_and_whether_to_retry() {
        let cases = [
            (
                WriterError::Config {
                    problems: vec!["a".into(), "b".into()],
                },
                "writer config: a; b",
                false,
            ),
            (
                WriterError::Task {
                    what: "commit",
                    detail: "cancelled".into(),
                },
                "writer store task commit did not finish: cancelled",
                true,
            ),
        ];
        for (err, text, retry) in cases {
            assert_eq!(err.to_string(), text);
            assert_eq!(err.retryable(), retry, "{text}");
        }
    }
}
