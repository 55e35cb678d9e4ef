//! Errors and rejection codes.
use serde::{Deserialize, Serialize};

/// Why a node refused an envelope. Carried, signed, in a `rejected` receipt.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RejectCode {
    /// Larger than the receiver's limit; refused before decoding.
    Oversized,
    /// Not a well-formed COSE_Sign1 envelope (bad CBOR, wrong structure, bad field).
    Malformed,
    /// A protocol version this node does not speak.
    UnsupportedVersion,
    /// The sender is not a member of the federation trust list.
    UnknownSender,
    /// The signature does not verify against the sender's key.
    BadSignature,
    /// The signing key exists but was not valid at the envelope's creation time.
    KeyNotValid,
    /// This node is not among the envelope's recipients.
    NotRecipient,
    /// The body could not be decrypted, or its commitment does not match.
    DecryptFailed,
    /// The creation time is too far in the future.
    FromFuture,
    /// A message kind this node does not handle.
    UnknownKind,
    /// A different envelope with this message id was already accepted from this sender.
    Conflict,
    /// The envelope arrived over a connection authenticated as another node than its sender:
    /// nodes do not relay, every envelope comes over its sender's own connection.
    WrongPeer,
    /// The sender exceeded a per-peer quota of the receiver (bytes stored per day, or
    /// envelopes in process); the sender should retry later.
    QuotaExceeded,
    /// The application refused the content (for example an invalid case transition).
    Application(String),
    /// The node failed internally; the sender should retry later.
    Internal,
}

impl RejectCode {
    /// A short stable label, used in metrics and logs.
    pub fn label(&self) -> &str {
        match self {
            RejectCode::Oversized => "oversized",
            RejectCode::Malformed => "malformed",
            RejectCode::UnsupportedVersion => "unsupported_version",
            RejectCode::UnknownSender => "unknown_sender",
            RejectCode::BadSignature => "bad_signature",
            RejectCode::KeyNotValid => "key_not_valid",
            RejectCode::NotRecipient => "not_recipient",
            RejectCode::DecryptFailed => "decrypt_failed",
            RejectCode::FromFuture => "from_future",
            RejectCode::UnknownKind => "unknown_kind",
            RejectCode::Conflict => "conflict",
            RejectCode::WrongPeer => "wrong_peer",
            RejectCode::QuotaExceeded => "quota_exceeded",
            RejectCode::Application(code) => code.as_str(),
            RejectCode::Internal => "internal",
        }
    }

    /// Whether retrying the same bytes later could succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RejectCode::Internal | RejectCode::FromFuture | RejectCode::QuotaExceeded
        )
    }
}

impl std::fmt::Display for RejectCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Input refused; the code says why.
    #[error("rejected: {0}")]
    Rejected(RejectCode),
    /// Encoding failed (local data, not remote input).
    #[error("encoding failed: {0}")]
    Encode(String),
    /// Cryptographic operation failed on local data.
    #[error("crypto: {0}")]
    Crypto(String),
    /// Invalid argument given by local code.
    #[error("invalid: {0}")]
    Invalid(String),
}

impl ProtocolError {
    /// The rejection code, if this error is a rejection.
    pub fn reject_code(&self) -> Option<&RejectCode> {
        match self {
            ProtocolError::Rejected(c) => Some(c),
            _ => None,
        }
    }
}

impl From<RejectCode> for ProtocolError {
    fn from(c: RejectCode) -> Self {
        ProtocolError::Rejected(c)
    }
}
