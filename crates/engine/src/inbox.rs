//! The inbox record: what this node keeps of every envelope it accepted, so that a resend
//! is answered `duplicate` (same bytes) or `conflict` (same id, other bytes) for ever. The
//! exception are unlogged kinds (witness traffic): their records are pruned after a week,
//! and their applications refuse envelopes too old to be de-duplicated ([`crate::prune`]).
use crate::error::EngineError;
use serde::{Deserialize, Serialize};

/// The durable record of an accepted inbound envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboxRecord {
    /// SHA-256 of the envelope bytes.
    #[serde(with = "serde_bytes")]
    pub envelope_hash: [u8; 32],
    /// When it was received.
    pub received: u64,
    /// Its kind.
    pub kind: String,
    /// The signed `accepted` receipt this node issued.
    #[serde(with = "serde_bytes")]
    pub receipt: Vec<u8>,
}

impl InboxRecord {
    /// CBOR encoding.
    pub fn encode(&self) -> Result<Vec<u8>, EngineError> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).map_err(|e| EngineError::Internal(e.to_string()))?;
        Ok(out)
    }
    /// Decodes; `None` if corrupt.
    pub fn decode(b: &[u8]) -> Option<Self> {
        ciborium::from_reader(b).ok()
    }
}
