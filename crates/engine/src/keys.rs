//! Column names and key layouts of the kernel's persistent state. Applications declare
//! their own columns ([`crate::Application::columns`]); the store is opened with both.
//!
//! | column | key | value |
//! |---|---|---|
//! | `meta` | text name | kernel metadata (trust list bytes, log size, witness bookkeeping) |
//! | `env_out` | message id (16) | envelope bytes as signed |
//! | `outbox` | peer (2) ‖ seq (8, big-endian) | message id (16) ‖ enqueued ms (8, BE) ‖ flags (1) |
//! | `receipts_out` | peer (2) ‖ message id (16) | receipt bytes as received |
//! | `dead` | peer (2) ‖ message id (16) | `rejected` receipt bytes as received |
//! | `inbox` | sender (2) ‖ message id (16) | CBOR [`crate::InboxRecord`] incl. our signed receipt |
//! | `env_in` | sender (2) ‖ message id (16) | envelope bytes as received |
//! | `log_leaves` | index (8, BE) | leaf text ([`imi_audit::leaf`]) |
//! | `log_nodes` | level (1) ‖ index (8, BE) | hash of a perfect subtree |
//! | `checkpoints` | size (8, BE) | signed checkpoint note (with cosignatures) |
//!
//! The outbox flags byte: bit 0 set = the envelope's kind is logged (its receipt gets a log
//! leaf). Entries written before the byte existed (24 bytes) are read by parsing the stored
//! envelope's kind.
use imi_protocol::{MessageId, NodeId};
use imi_store::Column;

/// Kernel metadata.
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
/// Log leaves.
pub const LOG_LEAVES: Column = "log_leaves";
/// Log perfect-subtree hashes.
pub const LOG_NODES: Column = "log_nodes";
/// Signed checkpoints.
pub const CHECKPOINTS: Column = "checkpoints";
/// Beside a case's leaf that records neither an envelope nor a receipt (a read of personal
/// data, a retention action): the index of the case's newest envelope or receipt leaf
/// before it, so that a case's steps are found without walking its reads
/// ([`crate::log::case_steps`]). A local index, not evidence.
pub const LOG_SKIP: Column = "log_skip";

/// Every column the kernel uses.
pub const ALL: &[Column] = &[
    META,
    ENV_OUT,
    OUTBOX,
    RECEIPTS_OUT,
    DEAD,
    INBOX,
    ENV_IN,
    LOG_LEAVES,
    LOG_NODES,
    CHECKPOINTS,
    LOG_SKIP,
];

/// The kernel's columns read mostly by point lookups of absent keys, which a bloom filter
/// answers without reading a block: `inbox`, which every received envelope's duplicate check
/// reads and almost never finds (see `imi_store::RocksConfig::filtered_columns`), and
/// `log_skip`, which [`crate::log::case_steps`] asks about each envelope and receipt leaf
/// of a case (they have no row).
pub const FILTERED: &[Column] = &[INBOX, LOG_SKIP];

/// The kernel's columns of sealed envelopes, whose values go to blob files whatever their
/// size (see `imi_store::RocksConfig::blob_columns`): written once, read back rarely,
/// ciphertext that compression cannot shrink, so the tables' compactions need not rewrite
/// them.
pub const BLOBS: &[Column] = &[ENV_OUT, ENV_IN];

/// `meta` key of the newest accepted trust list (signed bytes).
pub const TRUST_LIST_KEY: &[u8] = b"trust_list";

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

/// `META` key of a peer's daily byte quota usage: `quota/bytes/<node>` → the UTC day
/// (days since 1970) and the envelope bytes accepted from the peer that day, two `u64`
/// big-endian.
pub fn quota_key(node: NodeId) -> Vec<u8> {
    let mut k = b"quota/bytes/".to_vec();
    k.extend_from_slice(&node.as_bytes());
    k
}

/// Encodes a quota usage row ([`quota_key`]).
pub fn encode_quota(day: u64, used: u64) -> Vec<u8> {
    let mut v = day.to_be_bytes().to_vec();
    v.extend_from_slice(&used.to_be_bytes());
    v
}

/// Decodes a quota usage row ([`quota_key`]).
pub fn decode_quota(v: &[u8]) -> Option<(u64, u64)> {
    let day = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
    let used = u64::from_be_bytes(v.get(8..16)?.try_into().ok()?);
    Some((day, used))
}

/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;

/// A decoded outbox value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxValue {
    /// The queued envelope.
    pub id: MessageId,
    /// When it was enqueued, ms.
    pub enqueued: u64,
    /// Whether its receipt gets a log leaf; `None` for an entry written before the flag.
    pub logged: Option<bool>,
}

/// Decodes an outbox value.
pub fn decode_outbox_value(v: &[u8]) -> Option<OutboxValue> {
    let id = MessageId::from_slice(v.get(..16)?)?;
    let enqueued = u64::from_be_bytes(v.get(16..24)?.try_into().ok()?);
    let logged = v.get(24).map(|f| f & 1 == 1);
    Some(OutboxValue {
        id,
        enqueued,
        logged,
    })
}

/// Encodes an outbox value.
pub fn outbox_value(id: &MessageId, enqueued: u64, logged: bool) -> Vec<u8> {
    let mut v = id.as_bytes().to_vec();
    v.extend_from_slice(&enqueued.to_be_bytes());
    v.push(u8::from(logged));
    v
}

/// Decodes the sequence number of an outbox key.
pub fn outbox_seq(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(2..10)?.try_into().ok()?))
}

/// The end (exclusive) of `node`'s key range in a `node ‖ …` column.
pub fn prefix_end(node: NodeId) -> Vec<u8> {
    let [a, b] = node.as_bytes();
    vec![a, b.saturating_add(1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_values_round_trip_and_old_entries_decode() {
        let id = MessageId::from_slice(&[7; 16]).unwrap();
        let v = outbox_value(&id, 42, false);
        assert_eq!(
            decode_outbox_value(&v),
            Some(OutboxValue {
                id,
                enqueued: 42,
                logged: Some(false)
            })
        );
        let old = &v[..24];
        assert_eq!(decode_outbox_value(old).unwrap().logged, None);
        assert_eq!(decode_outbox_value(&v[..23]), None);
    }
}
