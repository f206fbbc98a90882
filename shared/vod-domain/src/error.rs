//! Error types of the domain: what callers (API, ingest) map to HTTP statuses or retries.
use thiserror::Error;

/// A failure of a storage port (table or bucket). Transient unless stated otherwise.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A conditional write lost a race: the item changed since it was read.
    #[error("conflicting concurrent update of {0}")]
    Conflict(String),
    #[error("storage backend failed: {0}")]
    Backend(String),
    #[error("stored item is malformed: {0}")]
    Corrupt(String),
}

/// Errors of domain operations.
#[derive(Debug, Error)]
pub enum DomainError {
    #[error("{0}")]
    Invalid(String),
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        DomainError::Invalid(msg.into())
    }
    pub fn asset_not_found(id: impl Into<String>) -> Self {
        DomainError::NotFound {
            kind: "asset",
            id: id.into(),
        }
    }
}
