//! The applications' error type.
use imi_engine::EngineError;
use imi_store::StoreError;
use std::path::PathBuf;

/// Errors of the applications.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The kernel failed (store, commit, network, shutdown).
    #[error(transparent)]
    Engine(EngineError),
    /// A store read failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A file outside the store (the tombstone file).
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A step or action was refused: its stable code (the one a receiving node puts in a
    /// `rejected` receipt) and detail, no personal data. Nothing was written or sent.
    #[error("refused: {0}")]
    Refused(imi_engine::Refusal),
    /// Internal failure.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<imi_engine::Refusal> for AppError {
    fn from(r: imi_engine::Refusal) -> Self {
        AppError::Refused(r)
    }
}

/// A refusal stays a refusal; anything else is the kernel's failure.
impl From<EngineError> for AppError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Refused(r) => AppError::Refused(r),
            other => AppError::Engine(other),
        }
    }
}
