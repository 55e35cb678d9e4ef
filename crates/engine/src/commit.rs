//! The committer: one thread that owns every write, so that a group of commits from many
//! concurrent messages is written as one atomic, synced RocksDB batch (group commit).
//!
//! Jobs arrive on a bounded channel. The thread takes the first job, then whatever else is
//! already queued (up to `max_group`), runs them in order against an overlay that sees the
//! group's earlier writes, writes the whole group once (synced if any job needs it), and
//! only then answers each job. A receipt is therefore never sent before its commit is
//! durable, and a message applied in a group is de-duplicated against the rest of that group.
//! A local action that refused is answered after the write too: a caller who tries again
//! reads the state it was refused against.
use crate::apply::{
    Inbound, LocalCtx, LocalFn, LocalOutcome, Overlay, Refusal, Routes, Txn, record_overlay,
};
use crate::error::EngineError;
use crate::inbox::InboxRecord;
use crate::keys;
use crate::metrics::{KindLabel, Metrics, PeerQuotaLabel};
use imi_protocol::{
    Header, MessageId, NodeId, NodeSigner, Outcome, ReceiptBody, RejectCode, Timestamp,
};
use imi_store::{Durability, Store, WriteBatch};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Something to commit.
pub(crate) enum Job {
    /// An inbound, verified and decrypted envelope.
    Inbound {
        header: Box<Header>,
        bytes: Vec<u8>,
        hash: [u8; 32],
        body: Vec<u8>,
        received: Timestamp,
        trust: Arc<imi_protocol::TrustList>,
        /// Its receipt may be a group receipt (it came in a batch whose sender reads them).
        group: bool,
        reply: oneshot::Sender<Result<Committed, EngineError>>,
    },
    /// A new outbound envelope: store it and append one outbox entry per recipient.
    Send {
        id: MessageId,
        bytes: Vec<u8>,
        signed: SignedHeader,
        to: Vec<NodeId>,
        enqueued: Timestamp,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// A local action (an authority's step on a case): `apply` runs here against the
    /// group's overlay; if it succeeds its writes, and the envelope with its outbox
    /// entries when there is one, are committed atomically. If it fails nothing is written.
    Local {
        envelope: Option<LocalEnvelope>,
        at: Timestamp,
        apply: LocalFn,
        reply: LocalReply,
    },
    /// Finish the current group and stop (graceful shutdown).
    Stop,
    /// A plain batch (outbox bookkeeping), with log leaves to append in it.
    Write {
        batch: WriteBatch,
        durability: Durability,
        leaves: Vec<imi_audit::leaf::Leaf>,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
}

/// The envelope of a local action.
pub(crate) struct LocalEnvelope {
    pub id: MessageId,
    pub bytes: Vec<u8>,
    pub signed: SignedHeader,
    pub to: Vec<NodeId>,
}

/// The signed header and SHA-256 of an envelope this node sealed, taken when it was sealed
/// (off the commit thread) for its log leaf.
pub(crate) struct SignedHeader {
    pub header: Box<Header>,
    pub hash: [u8; 32],
}

impl Job {
    fn needs_sync(&self) -> bool {
        match self {
            Job::Inbound { .. } | Job::Send { .. } | Job::Local { .. } => true,
            Job::Write { durability, .. } => *durability == Durability::Sync,
            Job::Stop => false,
        }
    }
}

/// What happened to an inbound envelope.
#[derive(Debug)]
pub(crate) enum Committed {
    /// Applied; here is the signed `accepted` receipt, stored with the record.
    Accepted(Vec<u8>),
    /// Already applied before.
    Duplicate,
    /// Refused by the application or as a conflicting duplicate; nothing written.
    Rejected(RejectCode),
}

/// An accepted envelope of the group whose receipt is signed with the others' at the end of
/// the group ([`Committer::sign_receipts`]).
pub(crate) struct Unsigned {
    body: ReceiptBody,
    /// Its inbox record, without the receipt yet.
    record: InboxRecord,
    inbox_key: Vec<u8>,
    case: Option<imi_protocol::CaseId>,
    /// Whether the receipt gets a log leaf.
    logged: bool,
    /// Its place in the group's replies.
    reply: usize,
}

/// Signs `bodies` in order, `per_group` (at least 1) under one signature at a time: a run of
/// one gets a single receipt. Returns the receipts and the size of each group signed.
fn sign_in_groups(
    bodies: &[ReceiptBody],
    signer: &NodeSigner,
    per_group: usize,
) -> Result<(Vec<Vec<u8>>, Vec<usize>), imi_protocol::ProtocolError> {
    let mut receipts = Vec::with_capacity(bodies.len());
    let mut groups = Vec::new();
    for chunk in bodies.chunks(per_group.max(1)) {
        match chunk {
            [one] => receipts.push(one.sign(signer)?),
            many => {
                receipts.extend(ReceiptBody::sign_group(many, signer)?);
                groups.push(many.len());
            }
        }
    }
    Ok((receipts, groups))
}

/// Linger only after a group with at least this many commits needing an fsync: a sign of
/// sustained load. At low rates each such commit is alone in its group and nothing waits.
const LINGER_MIN_PREVIOUS_GROUP: usize = 2;
/// Polling step while lingering for a fuller group.
const LINGER_STEP: std::time::Duration = std::time::Duration::from_micros(100);

pub(crate) struct Committer {
    /// Most time to wait for a fuller group when under load.
    pub linger: std::time::Duration,
    /// Group size at which lingering stops.
    pub linger_target: usize,
    pub store: Arc<dyn Store>,
    pub routes: Routes,
    pub signer: NodeSigner,
    pub metrics: Metrics,
    pub max_group: usize,
    /// Next outbox sequence number per destination.
    pub next_seq: HashMap<NodeId, u64>,
    /// Told which peers got new outbox entries.
    pub on_enqueued: Box<dyn Fn(NodeId) + Send>,
    /// The transparency log's right edge.
    pub log: crate::log::LogState,
    /// Settings (the per-peer daily byte quota).
    pub config: crate::config::EngineConfig,
    /// Where a group's new envelopes go once written, for the delivery tasks.
    pub fresh: Arc<crate::fresh::FreshEnvelopes>,
    /// Where a group's new outbox entries go once written, for the delivery tasks.
    pub tails: Arc<crate::tail::Tails>,
}

/// What a group's writes change in the outboxes, acted on around its write.
#[derive(Default)]
struct GroupOutbox {
    /// Outbox depth changes, applied to the gauge once the write succeeds: the committer
    /// sees every outbox write, so the gauge is exact.
    depth_delta: HashMap<NodeId, i64>,
    /// Destinations with new entries, whose delivery tasks are woken after the write.
    peers: Vec<NodeId>,
    /// The new envelopes, for the delivery tasks (see `fresh`).
    fresh: Vec<crate::fresh::NewEnvelope>,
    /// The new outbox entries in the order written, for the delivery tasks (see `tail`).
    tails: Vec<(NodeId, crate::tail::TailEntry)>,
}

/// Where a local action's result goes.
pub(crate) type LocalReply = oneshot::Sender<Result<LocalOutcome, EngineError>>;

enum Reply {
    /// With the header of an accepted message, for the after-commit hook and the metrics.
    Inbound(
        oneshot::Sender<Result<Committed, EngineError>>,
        Committed,
        Option<Box<Header>>,
    ),
    Unit(oneshot::Sender<Result<(), EngineError>>),
    Local(LocalReply, LocalOutcome),
    /// A local action that refused: answered after the group's write too, so that a caller
    /// who tries again reads the state it was refused against.
    Refused(LocalReply, Refusal),
}

impl Committer {
    /// Initialises outbox sequence numbers from the store.
    pub fn load_sequences(&mut self) -> Result<(), EngineError> {
        for node in imi_protocol::NodeId::ALL {
            let next = crate::outbox::next_seq(self.store.as_ref(), *node)?;
            self.next_seq.insert(*node, next);
            let depth = crate::outbox::count(self.store.as_ref(), *node)?;
            if depth > 0 {
                let gauge = self
                    .metrics
                    .queue_depth
                    .get_or_create(&Metrics::peer(*node));
                gauge.set(i64::try_from(depth).unwrap_or(i64::MAX));
            }
        }
        Ok(())
    }

    /// Runs until every sender of the channel is gone.
    pub fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut last_group = 0usize;
        while let Some(first) = rx.blocking_recv() {
            let mut stop = matches!(first, Job::Stop);
            let mut jobs = vec![first];
            Self::drain(&mut rx, &mut jobs, self.max_group, &mut stop);
            // Under load (the previous group was large), linger briefly so that one
            // fsync covers more commits. An isolated commit never waits: latency at low
            // rates is unchanged.
            if last_group >= LINGER_MIN_PREVIOUS_GROUP && !stop {
                let mut waited = std::time::Duration::ZERO;
                while jobs.len() < self.linger_target.min(self.max_group)
                    && waited < self.linger
                    && !stop
                {
                    std::thread::sleep(LINGER_STEP);
                    waited += LINGER_STEP;
                    Self::drain(&mut rx, &mut jobs, self.max_group, &mut stop);
                }
            }
            // Count only commits that need an fsync (inbound messages, sends, synced writes):
            // receipt bookkeeping rides along and says nothing about load.
            last_group = jobs.iter().filter(|j| j.needs_sync()).count();
            self.commit_group(jobs);
            if stop {
                break;
            }
        }
        tracing::debug!("committer stopped");
    }

    fn drain(rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>, max: usize, stop: &mut bool) {
        while jobs.len() < max && !*stop {
            match rx.try_recv() {
                Ok(j) => {
                    *stop = matches!(j, Job::Stop);
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
    }

    fn commit_group(&mut self, jobs: Vec<Job>) {
        let mut overlay = Overlay::new();
        let mut batch = WriteBatch::new();
        let mut durability = Durability::Buffered;
        let mut replies = Vec::with_capacity(jobs.len());
        let mut group = GroupOutbox::default();
        let mut accepted = 0u64;
        // Accepted envelopes whose receipts are signed together once the group is known.
        let mut unsigned: Vec<Unsigned> = Vec::new();
        let seq_snapshot = self.next_seq.clone();
        self.log.start_group();
        let log_snapshot = self.log.clone();
        for job in jobs {
            match job {
                Job::Inbound {
                    header,
                    bytes,
                    hash,
                    body,
                    received,
                    trust,
                    group: groupable,
                    reply,
                } => {
                    // Its reply, if it is accepted, is the next one.
                    let to_sign = groupable.then_some((&mut unsigned, replies.len()));
                    let outcome = self.apply_inbound(
                        &header,
                        bytes,
                        hash,
                        &body,
                        received,
                        &trust,
                        &mut overlay,
                        &mut batch,
                        to_sign,
                    );
                    match outcome {
                        Ok(c) => {
                            let header = if matches!(c, Committed::Accepted(_)) {
                                durability = Durability::Sync;
                                accepted += 1;
                                Some(header)
                            } else {
                                None
                            };
                            replies.push(Reply::Inbound(reply, c, header));
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                }
                Job::Send {
                    id,
                    bytes,
                    signed,
                    to,
                    enqueued,
                    reply,
                } => {
                    durability = Durability::Sync;
                    let mut b = WriteBatch::new();
                    let logged = self.log_envelope_out(&mut b, &signed);
                    let case = signed.header.case;
                    self.enqueue(&mut b, id, bytes, case, &to, enqueued, logged, &mut group);
                    record_overlay(&mut overlay, &b);
                    batch.append(b);
                    replies.push(Reply::Unit(reply));
                }
                Job::Local {
                    envelope,
                    at,
                    apply,
                    reply,
                } => {
                    let mut txn = Txn::new(self.store.as_ref(), &overlay);
                    let ctx = LocalCtx {
                        at,
                        message_id: envelope.as_ref().map(|e| e.id),
                    };
                    match apply(&mut txn, &ctx) {
                        Err(refusal) => replies.push(Reply::Refused(reply, refusal)),
                        Ok(outcome) => {
                            let (mut b, leaves) = txn.into_parts();
                            if outcome.write {
                                durability = Durability::Sync;
                                let logged = envelope
                                    .as_ref()
                                    .is_some_and(|e| self.log_envelope_out(&mut b, &e.signed));
                                for l in &leaves {
                                    self.log.append(self.store.as_ref(), &mut b, l);
                                }
                                if let Some(e) = envelope {
                                    self.enqueue(
                                        &mut b,
                                        e.id,
                                        e.bytes,
                                        e.signed.header.case,
                                        &e.to,
                                        at,
                                        logged,
                                        &mut group,
                                    );
                                }
                                record_overlay(&mut overlay, &b);
                                batch.append(b);
                            }
                            replies.push(Reply::Local(reply, outcome));
                        }
                    }
                }
                Job::Stop => {}
                Job::Write {
                    batch: mut b,
                    durability: d,
                    leaves,
                    reply,
                } => {
                    for l in leaves {
                        self.log.append_leaf(self.store.as_ref(), &mut b, l);
                    }
                    if d == Durability::Sync {
                        durability = Durability::Sync;
                    }
                    for op in b.ops() {
                        if let imi_store::Op::Delete { col, key } = op
                            && *col == keys::OUTBOX
                            && let Some(node) = key.get(..2).and_then(NodeId::from_bytes)
                        {
                            *group.depth_delta.entry(node).or_default() -= 1;
                        }
                    }
                    record_overlay(&mut overlay, &b);
                    batch.append(b);
                    replies.push(Reply::Unit(reply));
                }
            }
        }
        // Kept before the write, so that every outbox row a delivery task can read has its
        // envelope here already; forgotten again if the write fails (their ids are then in
        // no row, and never will be).
        let signed = self.sign_receipts(unsigned, &mut batch, &mut replies);
        self.log.finish_group(&mut batch);
        let fresh_ids: Vec<MessageId> = group.fresh.iter().map(|f| f.0).collect();
        self.fresh.insert(std::mem::take(&mut group.fresh));
        let result = match signed {
            Err(e) => Err(e),
            Ok(()) if batch.is_empty() => Ok(()),
            Ok(()) => self.store.write(batch, durability),
        };
        match result {
            Ok(()) => {
                self.log.group_written();
                if durability == Durability::Sync {
                    self.metrics.commit_groups_synced.inc();
                }
                self.metrics.committed_messages.inc_by(accepted);
                for (node, d) in group.depth_delta {
                    self.metrics
                        .queue_depth
                        .get_or_create(&Metrics::peer(node))
                        .inc_by(d);
                }
                for r in replies {
                    match r {
                        Reply::Inbound(tx, c, header) => {
                            if let Some(h) = header {
                                self.metrics
                                    .committed_by_kind
                                    .get_or_create(&KindLabel::of(h.kind.as_str()))
                                    .inc();
                                self.routes.committed(&h);
                            }
                            let _ = tx.send(Ok(c));
                        }
                        Reply::Unit(tx) => {
                            let _ = tx.send(Ok(()));
                        }
                        Reply::Local(tx, o) => {
                            let _ = tx.send(Ok(o));
                        }
                        Reply::Refused(tx, refusal) => {
                            let _ = tx.send(Err(EngineError::Refused(refusal)));
                        }
                    }
                }
                for (peer, entry) in group.tails {
                    self.tails.push(peer, entry);
                }
                group.peers.sort();
                group.peers.dedup();
                for p in group.peers {
                    (self.on_enqueued)(p);
                }
            }
            Err(e) => {
                // Nothing of the group was written: undo the sequence numbers handed out
                // and the log leaves appended.
                self.fresh.forget(&fresh_ids);
                self.next_seq = seq_snapshot;
                self.log = log_snapshot;
                tracing::error!(error = %e, "group commit failed");
                let e = Arc::new(e);
                for r in replies {
                    let err = EngineError::GroupCommit(e.clone());
                    match r {
                        Reply::Inbound(tx, _, _) => {
                            let _ = tx.send(Err(err));
                        }
                        Reply::Unit(tx) => {
                            let _ = tx.send(Err(err));
                        }
                        Reply::Local(tx, _) | Reply::Refused(tx, _) => {
                            let _ = tx.send(Err(err));
                        }
                    }
                }
            }
        }
    }

    /// Signs the receipts of the group's accepted envelopes that may have group receipts:
    /// with one signature when there are several (each receipt still verifiable on its own;
    /// one per [`imi_protocol::MAX_RECEIPT_GROUP`] of them), as a single receipt when there is
    /// one. Each goes into its inbox record, its log leaf
    /// and its reply, in the group's batch. An error (none is expected: every body names
    /// this node) fails the whole group, as a failed write would.
    fn sign_receipts(
        &mut self,
        unsigned: Vec<Unsigned>,
        batch: &mut WriteBatch,
        replies: &mut [Reply],
    ) -> Result<(), imi_store::StoreError> {
        if unsigned.is_empty() {
            return Ok(());
        }
        let failed = |e: imi_protocol::ProtocolError| {
            imi_store::StoreError::Io(std::io::Error::other(format!(
                "signing the group's receipts failed: {e}"
            )))
        };
        // A group receipt covers at most MAX_RECEIPT_GROUP receipts: a larger commit group
        // (`engine.max_commit_group` above it) signs several.
        let per_group = usize::try_from(imi_protocol::MAX_RECEIPT_GROUP).unwrap_or(usize::MAX);
        let bodies: Vec<ReceiptBody> = unsigned.iter().map(|u| u.body.clone()).collect();
        let (receipts, groups) =
            sign_in_groups(&bodies, &self.signer, per_group).map_err(failed)?;
        for g in groups {
            self.metrics.receipt_groups.inc();
            self.metrics.receipts_grouped.inc_by(g as u64);
        }
        for (u, receipt) in unsigned.into_iter().zip(receipts) {
            self.put_receipt(
                batch,
                u.record,
                u.inbox_key,
                &receipt,
                &u.body,
                u.case,
                u.logged,
            )
            .map_err(|e| imi_store::StoreError::Io(std::io::Error::other(e.to_string())))?;
            if let Some(Reply::Inbound(_, Committed::Accepted(r), _)) = replies.get_mut(u.reply) {
                *r = receipt;
            }
        }
        Ok(())
    }

    /// Writes a signed `accepted` receipt where it belongs: its log leaf (if the kind is
    /// logged) and the inbox record that holds it.
    #[allow(clippy::too_many_arguments)]
    fn put_receipt(
        &mut self,
        b: &mut WriteBatch,
        mut record: InboxRecord,
        inbox_key: Vec<u8>,
        receipt: &[u8],
        body: &ReceiptBody,
        case: Option<imi_protocol::CaseId>,
        logged: bool,
    ) -> Result<(), EngineError> {
        if logged {
            let leaf = crate::log::receipt_leaf(false, receipt, body, case.as_ref());
            self.log.append_leaf(self.store.as_ref(), b, leaf);
        }
        record.receipt = receipt.to_vec();
        b.put(keys::INBOX, inbox_key, record.encode()?);
        Ok(())
    }

    /// Appends the log leaf of an envelope this node signed, if its kind is logged; returns
    /// whether it is.
    fn log_envelope_out(&mut self, b: &mut WriteBatch, signed: &SignedHeader) -> bool {
        let logged = self.routes.logged(signed.header.kind.as_str());
        if logged {
            let leaf = crate::log::envelope_leaf(true, &signed.hash, &signed.header);
            self.log.append_leaf(self.store.as_ref(), b, leaf);
        }
        logged
    }

    /// Stores an outbound envelope and appends one outbox entry per recipient; notes in
    /// `group` what the write changes for the delivery tasks.
    #[allow(clippy::too_many_arguments)]
    fn enqueue(
        &mut self,
        b: &mut WriteBatch,
        id: MessageId,
        bytes: Vec<u8>,
        case: Option<imi_protocol::CaseId>,
        to: &[NodeId],
        enqueued: Timestamp,
        logged: bool,
        group: &mut GroupOutbox,
    ) {
        group.fresh.push((id, bytes.clone(), case, to.len()));
        group.peers.extend_from_slice(to);
        b.put(keys::ENV_OUT, id.as_bytes().to_vec(), bytes);
        for peer in to {
            let seq = self.next_seq.entry(*peer).or_insert(0);
            b.put(
                keys::OUTBOX,
                keys::outbox_key(*peer, *seq),
                keys::outbox_value(&id, enqueued, logged),
            );
            group.tails.push((
                *peer,
                crate::tail::TailEntry {
                    seq: *seq,
                    id,
                    logged,
                },
            ));
            *seq = seq.saturating_add(1);
            *group.depth_delta.entry(*peer).or_default() += 1;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_inbound(
        &mut self,
        header: &Header,
        bytes: Vec<u8>,
        hash: [u8; 32],
        body: &[u8],
        received: Timestamp,
        trust: &imi_protocol::TrustList,
        overlay: &mut Overlay,
        batch: &mut WriteBatch,
        to_sign: Option<(&mut Vec<Unsigned>, usize)>,
    ) -> Result<Committed, EngineError> {
        let inbox_key = keys::node_msg_key(header.from, &header.id);
        let existing = match overlay.get(&(keys::INBOX, inbox_key.clone())) {
            Some(v) => v.clone(),
            None => self.store.get(keys::INBOX, &inbox_key)?,
        };
        if let Some(existing) = existing {
            let same = InboxRecord::decode(&existing).is_some_and(|r| r.envelope_hash == hash);
            return Ok(if same {
                Committed::Duplicate
            } else {
                Committed::Rejected(RejectCode::Conflict)
            });
        }
        // The sender's daily byte quota, counted on this thread (one writer), in the same
        // batch as the message: a restart neither forgets nor double-counts it.
        let quota = match self.config.bytes_per_day_of(header.from) {
            Some(limit) => {
                let key = keys::quota_key(header.from);
                let stored = match overlay.get(&(keys::META, key.clone())) {
                    Some(v) => v.clone(),
                    None => self.store.get(keys::META, &key)?,
                };
                let day = received / keys::DAY_MS;
                let used = stored
                    .as_deref()
                    .and_then(keys::decode_quota)
                    .filter(|(d, _)| *d == day)
                    .map_or(0, |(_, used)| used);
                let used = used.saturating_add(bytes.len() as u64);
                if used > limit {
                    self.metrics
                        .quota_refused
                        .get_or_create(&PeerQuotaLabel::new(header.from, "bytes_per_day"))
                        .inc();
                    return Ok(Committed::Rejected(RejectCode::QuotaExceeded));
                }
                Some((key, keys::encode_quota(day, used), used))
            }
            None => None,
        };
        let mut txn = Txn::new(self.store.as_ref(), overlay);
        let msg = Inbound {
            header,
            body,
            received,
            trust,
        };
        if let Err(code) = self.routes.apply(&msg, &mut txn) {
            return Ok(Committed::Rejected(code));
        }
        let (mut b, leaves) = txn.into_parts();
        let receipt_body = ReceiptBody {
            v: imi_protocol::PROTOCOL_VERSION,
            message_id: Some(header.id),
            envelope_hash: hash,
            receiver: self.signer.node,
            sender: Some(header.from),
            received,
            outcome: Outcome::Accepted,
        };
        let logged = self.routes.logged(header.kind.as_str());
        if logged {
            self.log.append_leaf(
                self.store.as_ref(),
                &mut b,
                crate::log::envelope_leaf(false, &hash, header),
            );
            for l in &leaves {
                self.log.append(self.store.as_ref(), &mut b, l);
            }
        }
        let record = InboxRecord {
            envelope_hash: hash,
            received,
            kind: header.kind.to_string(),
            receipt: Vec::new(),
        };
        let receipt = match to_sign {
            Some((unsigned, reply)) => {
                // Signed with the group's other receipts before the write
                // (`sign_receipts`); the record without it stands in the overlay meanwhile,
                // so that a copy later in the group is found a duplicate.
                overlay.insert((keys::INBOX, inbox_key.clone()), Some(record.encode()?));
                unsigned.push(Unsigned {
                    body: receipt_body,
                    record,
                    inbox_key: inbox_key.clone(),
                    case: header.case,
                    logged,
                    reply,
                });
                Vec::new()
            }
            None => {
                let receipt = receipt_body
                    .sign(&self.signer)
                    .map_err(|e| EngineError::Internal(e.to_string()))?;
                self.put_receipt(
                    &mut b,
                    record,
                    inbox_key.clone(),
                    &receipt,
                    &receipt_body,
                    header.case,
                    logged,
                )?;
                receipt
            }
        };
        b.put(keys::ENV_IN, inbox_key, bytes);
        if let Some((key, value, used)) = quota {
            b.put(keys::META, key, value);
            self.metrics
                .peer_bytes_today
                .get_or_create(&Metrics::peer(header.from))
                .set(i64::try_from(used).unwrap_or(i64::MAX));
        }
        record_overlay(overlay, &b);
        batch.append(b);
        Ok(Committed::Accepted(receipt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imi_protocol::Receipt;

    fn body(n: u8) -> ReceiptBody {
        ReceiptBody {
            v: imi_protocol::PROTOCOL_VERSION,
            message_id: Some(MessageId([n; 16])),
            envelope_hash: [n; 32],
            receiver: NodeId::DE,
            sender: Some(NodeId::AT),
            received: 1_767_225_600_000,
            outcome: Outcome::Accepted,
        }
    }

    /// The group of a group receipt (its fourth field), to tell which signature covers it.
    fn group_of(receipt: &[u8]) -> Vec<u8> {
        let v: ciborium::Value = ciborium::from_reader(receipt).unwrap();
        let ciborium::Value::Map(entries) = v else {
            panic!("not a map")
        };
        let (_, ciborium::Value::Bytes(g)) = &entries[3] else {
            panic!("no group")
        };
        g.clone()
    }

    #[test]
    fn receipts_beyond_the_largest_group_are_signed_in_several() {
        let signer = NodeSigner::from_seed(NodeId::DE, &[7; 32]);
        let bodies: Vec<ReceiptBody> = (0..9).map(body).collect();
        let (receipts, groups) = sign_in_groups(&bodies, &signer, 4).unwrap();
        assert_eq!(groups, vec![4, 4], "two groups of four, then one alone");
        assert_eq!(receipts.len(), 9);
        let g: Vec<Vec<u8>> = receipts[..8].iter().map(|r| group_of(r)).collect();
        assert!(g[..4].iter().all(|x| *x == g[0]) && g[4..].iter().all(|x| *x == g[4]));
        assert_ne!(g[0], g[4]);
        assert!(
            !Receipt::is_group(&receipts[8]),
            "a run of one is a single receipt"
        );
        // Every receipt verifies on its own, as its own body.
        let trust = imi_protocol::TrustList {
            version: 1,
            issued: 0,
            members: vec![imi_protocol::Member {
                node: NodeId::DE,
                role: imi_protocol::Role::National,
                signing_keys: vec![imi_protocol::SigningKeyEntry {
                    public: signer.public(),
                    valid_from: 0,
                    valid_until: u64::MAX,
                }],
                hpke_keys: vec![],
                addresses: vec![],
            }],
        };
        for (r, b) in receipts.into_iter().zip(&bodies) {
            assert_eq!(&Receipt::verify(r, &trust, NodeId::DE).unwrap().body, b);
        }
        // One per call when nothing is larger than a group.
        assert_eq!(sign_in_groups(&bodies, &signer, 1024).unwrap().1, vec![9]);
    }
}
