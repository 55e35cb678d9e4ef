//! The receiving path: size check → decode → verify against the sender's key valid at
//! creation time → check this node is a recipient → check the connection is the sender's
//! own (no relaying) → de-duplicate → decrypt → application → atomic commit → signed
//! receipt (only after the commit is durable).
//!
//! Every envelope is answered with a signed receipt. A rejection writes nothing.
use crate::commit::{Committed, Job};
use crate::inbox::InboxRecord;
use crate::keys;
use crate::metrics::{CodeLabel, KindLabel, Metrics, PeerQuotaLabel};
use crate::shared::{PeerProtocol, Shared};
use imi_network::{InboundId, InboundPayload, NetworkEvent, PeerId};
use imi_protocol::{
    Envelope, Header, MessageId, NodeId, Outcome, ReceiptBody, RejectCode, Timestamp, sha256,
};
use prometheus_client::metrics::gauge::Gauge;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// An inbound envelope waiting for verification.
struct Queued {
    id: InboundId,
    payload: InboundPayload,
    received: Timestamp,
    /// Its receipt may be a group receipt.
    group_receipts: bool,
    /// The peer's handler slot, held until the envelope is answered.
    slot: OwnedSemaphorePermit,
    /// The peer's in-process gauge, decremented when it is answered.
    gauge: Option<Gauge>,
}

/// How long after its last envelope a peer still counts as sending.
const ACTIVE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// Envelopes waiting for verification, one queue per peer, served round robin: a peer
/// with a thousand envelopes waiting delays another peer's next envelope by at most one of
/// its own per verifier. While more than one peer is sending, a peer with `contended`
/// envelopes in process (taken, not yet answered) is passed over until one is answered, so
/// that its work cannot fill the committer's groups ahead of the others'.
struct Fair<T> {
    queues: HashMap<PeerId, VecDeque<T>>,
    ring: VecDeque<PeerId>,
    busy: HashMap<PeerId, usize>,
    seen: HashMap<PeerId, std::time::Instant>,
}

impl<T> Default for Fair<T> {
    fn default() -> Self {
        Self {
            queues: HashMap::new(),
            ring: VecDeque::new(),
            busy: HashMap::new(),
            seen: HashMap::new(),
        }
    }
}

impl<T> Fair<T> {
    fn push(&mut self, peer: PeerId, item: T, now: std::time::Instant) {
        let q = self.queues.entry(peer).or_default();
        if q.is_empty() {
            self.ring.push_back(peer);
        }
        q.push_back(item);
        self.seen.insert(peer, now);
    }

    /// The next envelope, round robin over the peers that may take one more into process:
    /// every peer while at most one is sending, those under `contended` otherwise.
    fn pop(&mut self, now: std::time::Instant, contended: usize) -> Option<(PeerId, T)> {
        self.seen
            .retain(|_, t| now.saturating_duration_since(*t) < ACTIVE_FOR);
        let share = if self.seen.len() > 1 {
            contended.max(1)
        } else {
            usize::MAX
        };
        for _ in 0..self.ring.len() {
            let peer = self.ring.pop_front()?;
            if self.busy.get(&peer).copied().unwrap_or(0) >= share {
                self.ring.push_back(peer);
                continue;
            }
            let q = self.queues.get_mut(&peer)?;
            let item = q.pop_front()?;
            if q.is_empty() {
                self.queues.remove(&peer);
            } else {
                self.ring.push_back(peer);
            }
            *self.busy.entry(peer).or_default() += 1;
            return Some((peer, item));
        }
        None
    }

    /// An envelope taken by [`Fair::pop`] was answered.
    fn done(&mut self, peer: PeerId) {
        if let Some(n) = self.busy.get_mut(&peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.busy.remove(&peer);
            }
        }
    }
}

/// Runs the inbound loop until cancelled or the network stops.
///
/// The loop itself never waits: it puts each envelope in its peer's queue (or, when the peer
/// holds all its `max_inbound_per_peer` slots, answers `quota_exceeded` at once) and goes on.
/// Verifiers, one per core, take envelopes round robin across peers and verify and decrypt
/// them (the CPU-heavy part); the commit and the receipt then proceed in a task of their own,
/// at most `max_inbound_concurrency` at once.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut events: mpsc::Receiver<NetworkEvent>,
    cancel: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(shared.config.max_inbound_concurrency.max(1)));
    let per_peer = shared
        .config
        .max_inbound_per_peer
        .clamp(1, shared.config.max_inbound_concurrency.max(1));
    let mut slots: HashMap<PeerId, Arc<Semaphore>> = HashMap::new();
    let fair = Arc::new(Mutex::new(Fair::<Queued>::default()));
    let ready = Arc::new(Notify::new());
    let verifiers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..verifiers {
        workers.spawn(verifier(
            shared.clone(),
            fair.clone(),
            ready.clone(),
            limit.clone(),
            cancel.clone(),
        ));
    }
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => break,
            ev = events.recv() => match ev { Some(ev) => ev, None => break },
        };
        match ev {
            NetworkEvent::InboundRequest {
                peer,
                id,
                payload,
                group_receipts,
            } => {
                let received = shared.clock.now_ms();
                let node = shared.node_of_peer(&peer);
                let slot = slots
                    .entry(peer)
                    .or_insert_with(|| Arc::new(Semaphore::new(per_peer)))
                    .clone()
                    .try_acquire_owned();
                let Ok(slot) = slot else {
                    let shared = shared.clone();
                    tokio::spawn(async move { over_slots(&shared, peer, node, id, payload).await });
                    continue;
                };
                let gauge = node.map(|n| {
                    shared
                        .metrics
                        .peer_inbound_in_process
                        .get_or_create(&Metrics::peer(n))
                        .clone()
                });
                if let Some(g) = &gauge {
                    g.inc();
                }
                if let Ok(mut f) = fair.lock() {
                    f.push(
                        peer,
                        Queued {
                            id,
                            payload,
                            received,
                            group_receipts,
                            slot,
                            gauge,
                        },
                        std::time::Instant::now(),
                    );
                }
                ready.notify_one();
            }
            NetworkEvent::Shed { peer, bytes } => {
                let node = shared
                    .node_of_peer(&peer)
                    .map_or_else(|| "other".to_owned(), |n| n.to_string());
                tracing::warn!(peer = %node, bytes, "an inbound envelope was shed: the peer's unanswered bytes are over budget");
                shared
                    .metrics
                    .quota_refused
                    .get_or_create(&PeerQuotaLabel::new(node, "pending_bytes"))
                    .inc();
            }
            NetworkEvent::PeerConnected(p) => {
                shared.set_connected(p, true);
                tracing::debug!(peer = %p, "peer connected");
            }
            NetworkEvent::PeerDisconnected(p) => {
                shared.set_connected(p, false);
                tracing::debug!(peer = %p, "peer disconnected");
            }
            NetworkEvent::Refused { peer, addr } => {
                tracing::warn!(peer = ?peer, addr = ?addr, "refused a connection from a peer not on the trust list")
            }
            NetworkEvent::ListeningOn(a) => tracing::info!(addr = %a, "listening"),
            NetworkEvent::PeerIdentified {
                peer,
                protocol_version,
            } => {
                if let Some(node) = shared.node_of_peer(&peer) {
                    tracing::debug!(peer = %node, protocol_version, "peer identified");
                    shared.set_protocol(
                        node,
                        PeerProtocol {
                            version: Some(protocol_version),
                            refused: false,
                        },
                    );
                }
            }
            NetworkEvent::ProtocolRefused {
                peer,
                announced,
                protocol_version,
                minimum,
                repeated,
            } => {
                // Only members on the allow list get this far, so the labels are bounded.
                let Some(node) = shared.node_of_peer(&peer) else {
                    continue;
                };
                if repeated {
                    tracing::debug!(peer = %node, %announced, minimum, "peer refused again: protocol version below the minimum");
                } else {
                    tracing::warn!(peer = %node, %announced, protocol_version = ?protocol_version, minimum, "peer refused: it speaks an IMI protocol version below this node's minimum (network.min_protocol_version); it is dialed again periodically and accepted once it is upgraded");
                }
                shared.set_protocol(
                    node,
                    PeerProtocol {
                        version: protocol_version,
                        refused: true,
                    },
                );
                shared
                    .metrics
                    .peer_protocol_refused
                    .get_or_create(&Metrics::peer(node))
                    .inc();
            }
        }
    }
    cancel.cancel();
    while workers.join_next().await.is_some() {}
    tracing::debug!("inbound loop stopped");
}

/// Takes envelopes round robin across peers, verifies and decrypts each, and hands it to a
/// task that commits it and answers.
async fn verifier(
    shared: Arc<Shared>,
    fair: Arc<Mutex<Fair<Queued>>>,
    ready: Arc<Notify>,
    limit: Arc<Semaphore>,
    cancel: CancellationToken,
) {
    let contended = shared.config.inbound_share_contended;
    loop {
        let next = fair
            .lock()
            .ok()
            .and_then(|mut f| f.pop(std::time::Instant::now(), contended));
        let Some((peer, q)) = next else {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ready.notified() => continue,
            }
        };
        let permit = tokio::select! {
            _ = cancel.cancelled() => return,
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        shared.metrics.received.inc();
        let prepared = match q.payload {
            InboundPayload::Oversized { declared } => {
                tracing::warn!(peer = %peer, declared, "oversized envelope refused before decoding");
                Prepared::Reject {
                    code: RejectCode::Oversized,
                    id: None,
                    sender: None,
                    hash: [0; 32],
                }
            }
            // Verification and decryption run inline on the runtime's worker: ~150 µs of CPU
            // per envelope, and a hop to the blocking pool cost more in context switches than
            // it saved (measured: 9 % of the receiver's CPU in task switching).
            InboundPayload::Bytes(bytes) => prepare(&shared, peer, bytes, q.received),
        };
        let (shared, id, received, slot, gauge) =
            (shared.clone(), q.id, q.received, q.slot, q.gauge);
        let group = q.group_receipts;
        let (fair, ready) = (fair.clone(), ready.clone());
        tokio::spawn(async move {
            answer(&shared, peer, id, prepared, received, group).await;
            if let Some(g) = gauge {
                g.dec();
            }
            drop((permit, slot));
            // Its share is free again: a verifier may be waiting for it.
            if let Ok(mut f) = fair.lock() {
                f.done(peer);
            }
            ready.notify_one();
        });
        // Let the other verifiers and tasks run between two envelopes.
        tokio::task::yield_now().await;
    }
}

/// Answers an envelope from a peer that has all its handler slots in use: `quota_exceeded`,
/// signed, naming the bytes but nothing decoded from them (the sender retries later).
async fn over_slots(
    shared: &Arc<Shared>,
    peer: PeerId,
    node: Option<NodeId>,
    id: InboundId,
    payload: InboundPayload,
) {
    let received = shared.clock.now_ms();
    shared.metrics.received.inc();
    let hash = match &payload {
        InboundPayload::Bytes(b) => sha256(b),
        InboundPayload::Oversized { .. } => [0; 32],
    };
    drop(payload);
    shared
        .metrics
        .quota_refused
        .get_or_create(&PeerQuotaLabel::new(
            node.map_or_else(|| "other".to_owned(), |n| n.to_string()),
            "inbound_slots",
        ))
        .inc();
    let receipt = reject(
        shared,
        peer,
        RejectCode::QuotaExceeded,
        None,
        None,
        hash,
        received,
    );
    if let Some(receipt) = receipt
        && let Err(e) = shared.network.respond(id, receipt).await
    {
        tracing::debug!(peer = %peer, error = %e, "could not send receipt");
    }
}

/// The decision before commit.
enum Prepared {
    Reject {
        code: RejectCode,
        id: Option<MessageId>,
        sender: Option<NodeId>,
        hash: [u8; 32],
    },
    Duplicate {
        id: MessageId,
        sender: NodeId,
        hash: [u8; 32],
        kind: KindLabel,
    },
    Ready {
        header: Box<Header>,
        bytes: Vec<u8>,
        hash: [u8; 32],
        body: Vec<u8>,
    },
}

/// Commits a prepared envelope (or refuses it) and sends the signed receipt.
async fn answer(
    shared: &Arc<Shared>,
    peer: PeerId,
    id: InboundId,
    prepared: Prepared,
    received: Timestamp,
    group: bool,
) {
    let receipt = match prepared {
        Prepared::Reject {
            code,
            id,
            sender,
            hash,
        } => reject(shared, peer, code, id, sender, hash, received),
        Prepared::Duplicate {
            id,
            sender,
            hash,
            kind,
        } => duplicate(shared, id, sender, hash, received, &kind),
        Prepared::Ready {
            header,
            bytes,
            hash,
            body,
        } => {
            let msg = header.id;
            let sender = header.from;
            let kind = KindLabel::of(header.kind.as_str());
            let committed = shared
                .commit(|reply| Job::Inbound {
                    header,
                    bytes,
                    hash,
                    body,
                    received,
                    trust: shared.trust(),
                    group,
                    reply,
                })
                .await;
            match committed {
                Ok(Committed::Accepted(receipt)) => {
                    shared.metrics.accepted.get_or_create(&kind).inc();
                    tracing::debug!(peer = %sender, msg = %msg, "accepted");
                    Some(receipt)
                }
                Ok(Committed::Duplicate) => duplicate(shared, msg, sender, hash, received, &kind),
                Ok(Committed::Rejected(code)) => {
                    reject(shared, peer, code, Some(msg), Some(sender), hash, received)
                }
                Err(e) => {
                    tracing::error!(error = %e, msg = %msg, "commit failed");
                    reject(
                        shared,
                        peer,
                        RejectCode::Internal,
                        Some(msg),
                        Some(sender),
                        hash,
                        received,
                    )
                }
            }
        }
    };
    if let Some(receipt) = receipt
        && let Err(e) = shared.network.respond(id, receipt).await
    {
        tracing::debug!(peer = %peer, error = %e, "could not send receipt");
    }
}

fn prepare(shared: &Shared, peer: PeerId, bytes: Vec<u8>, received: Timestamp) -> Prepared {
    let hash = sha256(&bytes);
    let env = match Envelope::parse(bytes, shared.config.max_envelope_bytes) {
        Ok(e) => e,
        Err(code) => {
            return Prepared::Reject {
                code,
                id: None,
                sender: None,
                hash,
            };
        }
    };
    let (id, sender) = (env.header().id, env.header().from);
    let trust = shared.trust();
    let verified = match env.verify(
        &trust,
        shared.me,
        received,
        shared.config.max_future_skew_ms,
    ) {
        Ok(v) => v,
        Err(code) => {
            return Prepared::Reject {
                code,
                id: Some(id),
                sender: Some(sender),
                hash,
            };
        }
    };
    // No relaying: the connection must be authenticated with one of the sender's own
    // signing keys on the trust list (its libp2p identity).
    if shared.node_of_peer(&peer) != Some(sender) {
        return Prepared::Reject {
            code: RejectCode::WrongPeer,
            id: Some(id),
            sender: Some(sender),
            hash,
        };
    }
    match shared
        .store
        .get(keys::INBOX, &keys::node_msg_key(sender, &id))
    {
        Ok(Some(existing)) => {
            let same = InboxRecord::decode(&existing).is_some_and(|r| r.envelope_hash == hash);
            return if same {
                Prepared::Duplicate {
                    id,
                    sender,
                    hash,
                    kind: KindLabel::of(verified.header().kind.as_str()),
                }
            } else {
                Prepared::Reject {
                    code: RejectCode::Conflict,
                    id: Some(id),
                    sender: Some(sender),
                    hash,
                }
            };
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %e, "inbox read failed");
            return Prepared::Reject {
                code: RejectCode::Internal,
                id: Some(id),
                sender: Some(sender),
                hash,
            };
        }
    }
    if !shared.routes.handles(verified.header().kind.as_str()) {
        return Prepared::Reject {
            code: RejectCode::UnknownKind,
            id: Some(id),
            sender: Some(sender),
            hash,
        };
    }
    match verified.open(shared.me, &shared.identity.hpke) {
        Ok(opened) => {
            let header = Box::new(verified.header().clone());
            Prepared::Ready {
                header,
                bytes: verified.into_bytes(),
                hash,
                body: opened.body,
            }
        }
        Err(code) => Prepared::Reject {
            code,
            id: Some(id),
            sender: Some(sender),
            hash,
        },
    }
}

fn sign(shared: &Shared, body: ReceiptBody) -> Option<Vec<u8>> {
    match body.sign(&shared.identity.signer) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(error = %e, "could not sign receipt");
            None
        }
    }
}

fn duplicate(
    shared: &Shared,
    id: MessageId,
    sender: NodeId,
    hash: [u8; 32],
    received: Timestamp,
    kind: &KindLabel,
) -> Option<Vec<u8>> {
    shared.metrics.duplicates.get_or_create(kind).inc();
    tracing::debug!(peer = %sender, msg = %id, "duplicate");
    sign(
        shared,
        ReceiptBody {
            v: imi_protocol::PROTOCOL_VERSION,
            message_id: Some(id),
            envelope_hash: hash,
            receiver: shared.me,
            sender: Some(sender),
            received,
            outcome: Outcome::Duplicate,
        },
    )
}

fn reject(
    shared: &Shared,
    peer: PeerId,
    code: RejectCode,
    id: Option<MessageId>,
    sender: Option<NodeId>,
    hash: [u8; 32],
    received: Timestamp,
) -> Option<Vec<u8>> {
    shared
        .metrics
        .inbound_rejected
        .get_or_create(&CodeLabel {
            code: code.label().to_owned(),
        })
        .inc();
    tracing::warn!(peer = %peer, code = %code, msg = ?id.map(|i| i.to_string()), "rejected an inbound envelope");
    sign(
        shared,
        ReceiptBody {
            v: imi_protocol::PROTOCOL_VERSION,
            message_id: id,
            envelope_hash: hash,
            receiver: shared.me,
            sender,
            received,
            outcome: Outcome::Rejected(code),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_served_round_robin() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let now = std::time::Instant::now();
        let mut f = Fair::default();
        for i in 0..5 {
            f.push(a, i, now);
        }
        f.push(b, 100, now);
        let order: Vec<(PeerId, i32)> = std::iter::from_fn(|| f.pop(now, usize::MAX)).collect();
        assert_eq!(
            order,
            [(a, 0), (b, 100), (a, 1), (a, 2), (a, 3), (a, 4)],
            "B's one envelope waits for one of A's, not for all five"
        );
        assert!(f.queues.is_empty() && f.ring.is_empty());
    }

    #[test]
    fn a_peer_holds_only_its_share_while_another_sends() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let t0 = std::time::Instant::now();
        let mut f = Fair::default();
        // Alone, A is not limited by the contended share.
        for i in 0..4 {
            f.push(a, i, t0);
        }
        let alone: Vec<i32> = std::iter::from_fn(|| f.pop(t0, 2))
            .map(|(_, i)| i)
            .collect();
        assert_eq!(alone, [0, 1, 2, 3]);
        for _ in 0..4 {
            f.done(a);
        }
        // With B sending too, A has at most 2 in process; B's envelope passes A's queue.
        for i in 10..15 {
            f.push(a, i, t0);
        }
        f.push(b, 100, t0);
        let taken: Vec<(PeerId, i32)> = std::iter::from_fn(|| f.pop(t0, 2)).collect();
        assert_eq!(taken, [(a, 10), (b, 100), (a, 11)]);
        assert!(
            f.pop(t0, 2).is_none(),
            "A waits for one of its two to be answered"
        );
        f.done(a);
        assert_eq!(f.pop(t0, 2), Some((a, 12)));
        // A second after B's last envelope, A is alone again.
        let later = t0 + ACTIVE_FOR + std::time::Duration::from_millis(1);
        f.push(a, 15, later);
        assert_eq!(f.pop(later, 2), Some((a, 13)));
        assert_eq!(f.pop(later, 2), Some((a, 14)));
    }
}
