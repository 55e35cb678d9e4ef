//! Reads of the per-destination FIFO outbox (`outbox` column, key `peer ‖ seq`). Only the
//! committer writes it: it appends entries with the envelope that creates them and deletes
//! each once its receipt is stored.
use crate::error::EngineError;
use crate::keys::{self, OutboxValue};
use imi_protocol::NodeId;
use imi_store::Store;

/// An outbox row: its key and its value (`None` if corrupt).
pub(crate) type Row = (Vec<u8>, Option<OutboxValue>);

/// Up to `limit` entries for `node` after `cursor` (or from the head).
pub(crate) fn entries(
    store: &dyn Store,
    node: NodeId,
    cursor: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<Row>, EngineError> {
    let start = match cursor {
        Some(c) => {
            let mut s = c.to_vec();
            s.push(0);
            s
        }
        None => node.as_bytes().to_vec(),
    };
    Ok(store
        .range(keys::OUTBOX, &start, Some(&keys::prefix_end(node)), limit)?
        .into_iter()
        .map(|(k, v)| {
            let decoded = keys::decode_outbox_value(&v);
            (k, decoded)
        })
        .collect())
}

/// The enqueue time of the oldest entry for `node`.
pub(crate) fn oldest_enqueued(store: &dyn Store, node: NodeId) -> Result<Option<u64>, EngineError> {
    Ok(entries(store, node, None, 1)?
        .first()
        .and_then(|(_, v)| v.map(|v| v.enqueued)))
}

/// The number of entries for `node` (read once at start; the committer keeps the gauge
/// exact afterwards).
pub(crate) fn count(store: &dyn Store, node: NodeId) -> Result<usize, EngineError> {
    Ok(store
        .range(
            keys::OUTBOX,
            &node.as_bytes(),
            Some(&keys::prefix_end(node)),
            usize::MAX,
        )?
        .len())
}

/// The sequence number the next entry for `node` gets.
pub(crate) fn next_seq(store: &dyn Store, node: NodeId) -> Result<u64, EngineError> {
    let last = store.last_with_prefix(keys::OUTBOX, &node.as_bytes())?;
    Ok(last
        .and_then(|(k, _)| keys::outbox_seq(&k))
        .map_or(0, |s| s.saturating_add(1)))
}
