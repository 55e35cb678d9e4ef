//! Column names and key layouts of the engine's persistent state.
//!
//! | column | key | value |
//! |---|---|---|
//! | `meta` | text name | engine metadata (trust list bytes, counters) |
//! | `env_out` | message id (16) | envelope bytes as signed |
//! | `outbox` | peer (2) ‖ seq (8, big-endian) | message id (16) ‖ enqueued ms (8, BE) |
//! | `receipts_out` | peer (2) ‖ message id (16) | receipt bytes as received |
//! | `dead` | peer (2) ‖ message id (16) | `rejected` receipt bytes as received |
//! | `inbox` | sender (2) ‖ message id (16) | CBOR [`crate::InboxRecord`] incl. our signed receipt |
//! | `env_in` | sender (2) ‖ message id (16) | envelope bytes as received |
//! | `app` | application-defined | application-defined |
//! | `case_keys` | case id (16) | the case's data key, wrapped under the node's data key |
//! | `cases` | case id (16) | the case record (CBOR), encrypted under the case's data key |
//! | `case_index` | case id (16) | CBOR [`crate::cases::CaseIndex`]: metadata only, no personal data |
//! | `case_files` | case id (16) ‖ SHA-256 (32) | attachment bytes, encrypted under the case's data key |
//! | `access_log` | seq (8, big-endian) | CBOR [`crate::cases::AccessRecord`]: reads of personal data |
//! | `users` | `u/` ‖ user id, `t/` ‖ token SHA-256 | user record, user id |
//! | `idempotency` | user id ‖ 0 ‖ key | SHA-256 of the request (32) ‖ the first response |
//! | `facts` | member node: case id (16); `EU`: case hex ‖ 0 ‖ `q`/`s` | member: CBOR [`crate::facts::FactReport`] last reported; `EU`: CBOR [`crate::facts::StoredReport`] per side |
//! | `log_leaves` | index (8, BE) | leaf text ([`imi_audit::leaf`]) |
//! | `log_nodes` | level (1) ‖ index (8, BE) | hash of a perfect subtree |
//! | `checkpoints` | size (8, BE) | signed checkpoint note (with cosignatures) |
//! | `witness` | node id | CBOR size and root of that node's log this node saw last |
//! | `witness_out` | node id | CBOR answer (cosignature) to send to that node |
//! | `alarms` | seq (8, BE) | JSON witness alarm |
//! | `blocked` | case id (16) | when it was blocked (ms, BE) |
//! | `tombstones` | case id (16) | when its data was erased (ms, BE); never removed |
//! | `facts_pending` | case id (16) | CBOR [`crate::facts::FactReport`] not yet enqueued for `EU` |
use imi_protocol::{MessageId, NodeId};
use imi_store::Column;

/// Engine metadata.
pub const META: Column = "meta";
/// Envelopes this node signed.
pub const ENV_OUT: Column = "env_out";
/// The per-destination FIFO outbox.
pub const OUTBOX: Column = "outbox";
/// Receipts received for sent envelopes.
pub const RECEIPTS_OUT: Column = "receipts_out";
/// Envelopes a peer rejected, with the rejection receipt.
pub const DEAD: Column = "dead";
/// Accepted inbound envelopes: the de-duplication record.
pub const INBOX: Column = "inbox";
/// Inbound envelope bytes.
pub const ENV_IN: Column = "env_in";
/// Application state.
pub const APP: Column = "app";

/// Wrapped per-case data keys.
pub const CASE_KEYS: Column = "case_keys";
/// Encrypted case records.
pub const CASES: Column = "cases";
/// Plaintext case metadata for lists and filters.
pub const CASE_INDEX: Column = "case_index";
/// Encrypted attachment contents.
pub const CASE_FILES: Column = "case_files";
/// Reads of personal data through the API.
pub const ACCESS_LOG: Column = "access_log";
/// API users and token hashes.
pub const USERS: Column = "users";
/// Idempotency keys of API POSTs.
pub const IDEMPOTENCY: Column = "idempotency";

/// Indicator facts (reported by a member node; received by the Commission node).
pub const FACTS: Column = "facts";
/// Fact reports waiting to be enqueued for the Commission node.
pub const FACTS_PENDING: Column = "facts_pending";

/// Log leaves.
pub const LOG_LEAVES: Column = "log_leaves";
/// Log perfect-subtree hashes.
pub const LOG_NODES: Column = "log_nodes";
/// Signed checkpoints.
pub const CHECKPOINTS: Column = "checkpoints";

/// What this node, as a witness, saw last of each log: node → size and root.
pub const WITNESS: Column = "witness";
/// Witness answers waiting to be sent: node → answer.
pub const WITNESS_OUT: Column = "witness_out";
/// Witness alarms: seq → JSON record.
pub const ALARMS: Column = "alarms";

/// Blocked cases (retention): case id → when.
pub const BLOCKED: Column = "blocked";
/// Erased cases (retention): case id → when. Never removed.
pub const TOMBSTONES: Column = "tombstones";

/// Every column the engine uses.
pub const ALL: &[Column] = &[
    META,
    ENV_OUT,
    OUTBOX,
    RECEIPTS_OUT,
    DEAD,
    INBOX,
    ENV_IN,
    APP,
    CASE_KEYS,
    CASES,
    CASE_INDEX,
    CASE_FILES,
    ACCESS_LOG,
    USERS,
    IDEMPOTENCY,
    FACTS,
    FACTS_PENDING,
    LOG_LEAVES,
    LOG_NODES,
    CHECKPOINTS,
    WITNESS,
    WITNESS_OUT,
    ALARMS,
    BLOCKED,
    TOMBSTONES,
];

/// `peer ‖ seq`.
pub fn outbox_key(peer: NodeId, seq: u64) -> Vec<u8> {
    let mut k = peer.as_bytes().to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// `node ‖ message id`.
pub fn node_msg_key(node: NodeId, id: &MessageId) -> Vec<u8> {
    let mut k = node.as_bytes().to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

/// Decodes an outbox value: message id and enqueue time.
pub fn decode_outbox_value(v: &[u8]) -> Option<(MessageId, u64)> {
    let id = MessageId::from_slice(v.get(..16)?)?;
    let t = u64::from_be_bytes(v.get(16..24)?.try_into().ok()?);
    Some((id, t))
}

/// Encodes an outbox value.
pub fn outbox_value(id: &MessageId, enqueued: u64) -> Vec<u8> {
    let mut v = id.as_bytes().to_vec();
    v.extend_from_slice(&enqueued.to_be_bytes());
    v
}

/// Decodes the sequence number of an outbox key.
pub fn outbox_seq(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(2..10)?.try_into().ok()?))
}
