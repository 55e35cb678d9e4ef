//! Pruning the traffic audit does not need: envelopes of the kinds whose application declares
//! them unlogged ([`crate::Application::logged`] is `false`: witness checkpoints and
//! cosignatures). What audit needs of them is kept by their applications (the cosigned
//! checkpoints in `checkpoints`, each log's last seen size and root in `witness`, the
//! alarms); the envelopes themselves, their inbox records and receipts are not, and without
//! pruning they grow with every checkpoint sent to every peer.
//!
//! The `prune` job deletes, once they are older than [`UNLOGGED_RETENTION_MS`]:
//!
//! * accepted inbound envelopes of unlogged kinds (`inbox`, `env_in`);
//! * sent envelopes of unlogged kinds that no outbox entry still waits for (`env_out`), with
//!   the receipts and rejections received for them (`receipts_out`, `dead`).
//!
//! An inbox record is what answers a resent envelope `duplicate`; so that a pruned one can
//! never be applied twice, applications of unlogged kinds refuse an envelope signed more than
//! [`STALE_UNLOGGED_MS`] before its receipt (code `stale`), half the retention.
use crate::apply::Routes;
use crate::error::EngineError;
use crate::inbox::InboxRecord;
use crate::keys;
use imi_protocol::{Envelope, MessageId, Timestamp};
use imi_store::{ReadStore, WriteBatch};
use std::collections::HashSet;

/// How long envelopes of unlogged kinds are kept, ms (7 days).
pub const UNLOGGED_RETENTION_MS: Timestamp = 7 * keys::DAY_MS;

/// How much older than its receipt an envelope of an unlogged kind may be signed and still be
/// applied, ms (half of [`UNLOGGED_RETENTION_MS`]): its inbox record outlives that by far.
pub const STALE_UNLOGGED_MS: Timestamp = UNLOGGED_RETENTION_MS / 2;

/// How often the `prune` job runs.
pub const PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// What a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Inbound envelopes (with their inbox records).
    pub inbound: usize,
    /// Sent envelopes (with their receipts).
    pub outbound: usize,
}

const PAGE: usize = 1024;

/// Every entry of `col`, a page at a time.
fn scan(
    store: &dyn ReadStore,
    col: imi_store::Column,
    mut each: impl FnMut(&[u8], &[u8]),
) -> Result<(), EngineError> {
    let mut start = Vec::new();
    loop {
        let rows = store.range(col, &start, None, PAGE)?;
        let done = rows.len() < PAGE;
        for (k, v) in &rows {
            each(k, v);
        }
        match rows.last() {
            Some((k, _)) if !done => {
                start = k.clone();
                start.push(0);
            }
            _ => return Ok(()),
        }
    }
}

/// The deletions of a prune of what was received or sent before `before`.
pub(crate) fn plan(
    store: &dyn ReadStore,
    routes: &Routes,
    before: Timestamp,
    max_envelope_bytes: usize,
) -> Result<(WriteBatch, PruneReport), EngineError> {
    let mut batch = WriteBatch::new();
    let mut report = PruneReport::default();
    scan(store, keys::INBOX, |k, v| {
        if let Some(r) = InboxRecord::decode(v)
            && !routes.logged(&r.kind)
            && r.received < before
        {
            batch.delete(keys::INBOX, k.to_vec());
            batch.delete(keys::ENV_IN, k.to_vec());
            report.inbound += 1;
        }
    })?;
    let mut waiting = HashSet::new();
    scan(store, keys::OUTBOX, |_, v| {
        if let Some(e) = keys::decode_outbox_value(v) {
            waiting.insert(e.id);
        }
    })?;
    scan(store, keys::ENV_OUT, |k, v| {
        let Some(id) = MessageId::from_slice(k) else {
            return;
        };
        if waiting.contains(&id) {
            return;
        }
        let Ok(env) = Envelope::parse(v.to_vec(), max_envelope_bytes) else {
            return;
        };
        let h = env.header();
        if routes.logged(h.kind.as_str()) || h.created >= before {
            return;
        }
        batch.delete(keys::ENV_OUT, k.to_vec());
        for peer in &h.to {
            batch.delete(keys::RECEIPTS_OUT, keys::node_msg_key(*peer, &id));
            batch.delete(keys::DEAD, keys::node_msg_key(*peer, &id));
        }
        report.outbound += 1;
    })?;
    Ok((batch, report))
}
