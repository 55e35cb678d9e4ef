//! `imi-protocol`: the contract between the national nodes of the IMI federation.
//!
//! Everything two nodes must agree on lives here and nowhere else: node and message
//! identifiers, the signed envelope (a COSE_Sign1, RFC 9052, signed with ed25519), the
//! HPKE-sealed body (RFC 9180: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305),
//! signed receipts, the governance-signed federation trust list, and the [`Clock`] through
//! which all code reads time. The byte formats are pinned by the test vectors in
//! `protocol/vectors/`, so a second implementation can be written from this crate and its
//! vectors alone.
//!
//! This crate must never depend on tokio, libp2p, rocksdb or HTTP: it is pure data and
//! cryptography. Code here parses remote input, so it never panics, never unwraps and never
//! indexes unchecked; every decode is size-limited before it starts.

mod cbor;
pub mod clock;
pub mod cose;
pub mod dates;
mod dhkem;
pub mod envelope;
mod error;
pub mod fields;
pub mod ids;
pub mod keys;
pub mod merkle;
pub mod receipt;
pub mod trust;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use envelope::{
    Draft, Envelope, Header, Kind, OpenedBody, RecipientKey, SealRandomness, Sealed,
    SealedEnvelope, VerifiedEnvelope, seal_and_sign, seal_and_sign_parts,
};
pub use error::{ProtocolError, RejectCode};
pub use fields::{
    FIELDS_AAD_PREFIX, MAX_SEALED_FIELDS_BYTES, SealedFields, open_fields, random_field_key,
    random_nonce, seal_fields,
};
pub use ids::{AuthorityId, CaseId, MessageId, NodeId, Role};
pub use keys::{HpkeKeyPair, KeyId, NodeSigner, key_id};
pub use receipt::{GroupCache, Outcome, Receipt, ReceiptBody};
pub use trust::{HpkeKeyEntry, Member, SigningKeyEntry, TrustList};

/// The protocol version this crate speaks; it is in every signed header.
pub const PROTOCOL_VERSION: u16 = 1;

/// Default upper bound on an envelope's encoded size (4 MiB), checked before decoding.
pub const DEFAULT_MAX_ENVELOPE_BYTES: usize = 4 * 1024 * 1024;
/// Upper bound on a receipt's encoded size, checked before decoding.
pub const MAX_RECEIPT_BYTES: usize = 4 * 1024;
/// At most this many receipts under one group signature (a group receipt's `count`).
pub const MAX_RECEIPT_GROUP: u64 = 1024;
/// Upper bound on a trust list's encoded size.
pub const MAX_TRUST_LIST_BYTES: usize = 1024 * 1024;
/// At most this many recipients per envelope (every node of the federation).
pub const MAX_RECIPIENTS: usize = 31;
/// How long after its `valid_until` a signing key's messages are still accepted (30 days):
/// long enough for a retried outbox to drain after a key rotation, short enough that a
/// retired key cannot sign backdated messages indefinitely.
pub const KEY_EXPIRY_GRACE_MS: u64 = 30 * 24 * 3600 * 1000;
/// At most this many causal predecessors per envelope.
pub const MAX_PREDECESSORS: usize = 64;

/// SHA-256 of some bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
