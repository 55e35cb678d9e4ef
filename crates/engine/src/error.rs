//! The kernel's error type.
use crate::apply::Refusal;
use std::sync::Arc;

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Storage failed.
    #[error("store: {0}")]
    Store(#[from] imi_store::StoreError),
    /// The group commit this job was part of failed; nothing of the group was written.
    #[error("group commit failed: {0}")]
    GroupCommit(#[source] Arc<imi_store::StoreError>),
    /// Protocol-level error on local data.
    #[error("protocol: {0}")]
    Protocol(#[from] imi_protocol::ProtocolError),
    /// Network failure.
    #[error("network: {0}")]
    Network(#[from] imi_network::NetworkError),
    /// A local action refused (its stable code and detail); nothing was written or sent.
    #[error("refused: {0}")]
    Refused(Refusal),
    /// Invalid request by local code or an operator.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The engine is shutting down.
    #[error("engine is shutting down")]
    ShuttingDown,
    /// Internal failure.
    #[error("internal: {0}")]
    Internal(String),
}
