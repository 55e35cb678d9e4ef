//! Prometheus metrics of the engine. Labels are node ids and rejection codes only: never
//! case content or personal data.
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Label: a peer node.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabel {
    /// Node id.
    pub peer: String,
}

/// Label: a peer node and a rejection code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerCodeLabel {
    /// Node id.
    pub peer: String,
    /// Rejection code.
    pub code: String,
}

/// Label: a message kind. Only kinds an application of this node declares are used as
/// labels (anything else is `other`), so the series are bounded.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// Message kind.
    pub kind: String,
}

impl KindLabel {
    /// The label of a kind this node implements; `other` for anything else.
    pub fn of(kind: &str) -> Self {
        let kind = imi_protocol::Kind::ALL
            .iter()
            .find(|k| **k == kind)
            .copied()
            .unwrap_or("other");
        Self {
            kind: kind.to_owned(),
        }
    }
}

/// Label: a peer node and one of its quotas (`inbound_slots`, `bytes_per_day`,
/// `pending_bytes`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerQuotaLabel {
    /// Node id.
    pub peer: String,
    /// The quota.
    pub quota: String,
}

impl PeerQuotaLabel {
    pub(crate) fn new(peer: impl std::fmt::Display, quota: &str) -> Self {
        Self {
            peer: peer.to_string(),
            quota: quota.to_owned(),
        }
    }
}

/// Label: a rejection code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// Rejection code.
    pub code: String,
}

/// Most distinct application rejection codes kept as labels per peer; later ones are
/// counted as `other`.
pub const MAX_CODES_PER_PEER: usize = 32;

/// A rejection code a peer sent, as it may appear in a metric label or a log line: protocol
/// codes as they are; an application code only if it has the shape of one (`[a-z0-9_]`, 1 to
/// 48 characters) and is among the first [`MAX_CODES_PER_PEER`] distinct ones seen from that
/// peer; anything else `other`. A peer chooses these strings; they must not choose our series.
#[derive(Clone, Default)]
pub struct PeerCodes(
    std::sync::Arc<
        std::sync::Mutex<std::collections::HashMap<String, std::collections::HashSet<String>>>,
    >,
);

impl PeerCodes {
    /// The bounded label of `code` from `peer`.
    pub fn label(&self, peer: &str, code: &imi_protocol::RejectCode) -> String {
        let imi_protocol::RejectCode::Application(c) = code else {
            return code.label().to_owned();
        };
        let shaped = !c.is_empty()
            && c.len() <= 48
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !shaped {
            return "other".to_owned();
        }
        let Ok(mut seen) = self.0.lock() else {
            return "other".to_owned();
        };
        let codes = seen.entry(peer.to_owned()).or_default();
        if codes.contains(c.as_str()) || codes.len() < MAX_CODES_PER_PEER {
            codes.insert(c.clone());
            c.clone()
        } else {
            "other".to_owned()
        }
    }
}

/// Seconds from sending an envelope to holding the destination's verified receipt, per
/// destination: buckets from 0.5 ms doubling to about 16 s.
#[derive(Clone)]
pub struct ReceiptLatency(pub Family<PeerLabel, Histogram, fn() -> Histogram>);

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
}

impl Default for ReceiptLatency {
    fn default() -> Self {
        Self(Family::new_with_constructor(latency_histogram))
    }
}

/// All engine metrics. Cloning shares them.
#[derive(Clone, Default)]
pub struct Metrics {
    /// The labels of peers' rejection codes (bounded).
    pub peer_codes: PeerCodes,
    /// Outbox entries per destination.
    pub queue_depth: Family<PeerLabel, Gauge>,
    /// Age of the oldest outbox entry per destination, seconds.
    pub oldest_queued_age_seconds: Family<PeerLabel, Gauge<f64, AtomicU64>>,
    /// Envelopes receipted `accepted` or `duplicate` per destination.
    pub delivered: Family<PeerLabel, Counter>,
    /// Failed delivery attempts that will be retried, per destination.
    pub retries: Family<PeerLabel, Counter>,
    /// Current retry backoff per destination, seconds (0 when delivering normally).
    pub backoff_seconds: Family<PeerLabel, Gauge<f64, AtomicU64>>,
    /// Envelopes a destination rejected, by code.
    pub rejected_by_peer: Family<PeerCodeLabel, Counter>,
    /// Send-to-receipt time per destination.
    pub receipt_latency: ReceiptLatency,
    /// Inbound envelopes received (all outcomes).
    pub received: Counter,
    /// Inbound envelopes accepted, by kind.
    pub accepted: Family<KindLabel, Counter>,
    /// Inbound envelopes answered `duplicate`, by kind.
    pub duplicates: Family<KindLabel, Counter>,
    /// Inbound envelopes rejected, by code.
    pub inbound_rejected: Family<CodeLabel, Counter>,
    /// Synced group commits (fsyncs of the write-ahead log).
    pub commit_groups_synced: Counter,
    /// Inbound messages committed.
    pub committed_messages: Counter,
    /// Group receipts: signatures made over the receipts of several accepted envelopes.
    pub receipt_groups: Counter,
    /// Receipts signed in groups (each group signature covers several).
    pub receipts_grouped: Counter,
    /// Inbound messages committed, by kind (counted once the commit is durable).
    pub committed_by_kind: Family<KindLabel, Counter>,
    /// Inbound envelopes refused (or shed unanswered) because a peer was over a quota.
    pub quota_refused: Family<PeerQuotaLabel, Counter>,
    /// Trust lists refused (`code`: `not_newer` for a rollback or a replay, `bad_signature`,
    /// `not_listed` when it drops this node's key, `invalid`).
    pub trust_list_refused: Family<CodeLabel, Counter>,
    /// Envelope bytes accepted from each peer today (UTC), against its daily quota.
    pub peer_bytes_today: Family<PeerLabel, Gauge>,
    /// Inbound envelopes in process per peer, against its slot quota.
    pub peer_inbound_in_process: Family<PeerLabel, Gauge>,
    /// The protocol version each peer last announced (0: one that did not parse).
    pub peer_protocol_version: Family<PeerLabel, Gauge>,
    /// Connections refused because the peer announced a protocol version below the minimum.
    pub peer_protocol_refused: Family<PeerLabel, Counter>,
    /// Where the delivery tasks found the envelopes they sent.
    pub delivery_loads: DeliveryLoads,
    /// Where the delivery tasks found their next outbox entries: handed over by the committer
    /// (`memory`) or read from the outbox column (`store`), one count per refill.
    pub delivery_refills: DeliveryLoads,
}

/// A counter pair labelled by `source`: what the delivery tasks took from memory (kept there
/// since its commit) and what they read back from the store. Counts envelopes in
/// [`Metrics::delivery_loads`] and refills of the outbox entries in
/// [`Metrics::delivery_refills`].
#[derive(Clone)]
pub struct DeliveryLoads {
    family: Family<SourceLabel, Counter>,
    /// Taken from memory.
    pub memory: Counter,
    /// Read from the store.
    pub store: Counter,
}

impl Default for DeliveryLoads {
    fn default() -> Self {
        let family = Family::<SourceLabel, Counter>::default();
        let counter = |source: &str| {
            family
                .get_or_create(&SourceLabel {
                    source: source.to_owned(),
                })
                .clone()
        };
        let (memory, store) = (counter("memory"), counter("store"));
        Self {
            family,
            memory,
            store,
        }
    }
}

/// Label: where something came from.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// The source.
    pub source: String,
}

impl Metrics {
    /// Registers every metric under the `imi` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("imi");
        r.register(
            "outbox_queue_depth",
            "Outbox entries per destination node",
            self.queue_depth.clone(),
        );
        r.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest queued envelope per destination node",
            self.oldest_queued_age_seconds.clone(),
        );
        r.register(
            "delivered",
            "Envelopes receipted by the destination",
            self.delivered.clone(),
        );
        r.register(
            "delivery_retries",
            "Failed delivery attempts to be retried",
            self.retries.clone(),
        );
        r.register(
            "delivery_backoff_seconds",
            "Current retry backoff per destination",
            self.backoff_seconds.clone(),
        );
        r.register(
            "receipt_latency_seconds",
            "Seconds from sending an envelope to holding the destination's verified receipt",
            self.receipt_latency.0.clone(),
        );
        r.register(
            "outbound_rejected",
            "Envelopes rejected by the destination, by code",
            self.rejected_by_peer.clone(),
        );
        r.register(
            "inbound_received",
            "Inbound envelopes received",
            self.received.clone(),
        );
        r.register(
            "inbound_accepted",
            "Inbound envelopes accepted, by kind",
            self.accepted.clone(),
        );
        r.register(
            "inbound_duplicates",
            "Inbound envelopes answered duplicate, by kind",
            self.duplicates.clone(),
        );
        r.register(
            "inbound_rejected",
            "Inbound envelopes rejected, by code",
            self.inbound_rejected.clone(),
        );
        r.register(
            "store_synced_commits",
            "Synced group commits (WAL fsyncs)",
            self.commit_groups_synced.clone(),
        );
        r.register(
            "store_committed_messages",
            "Inbound messages committed",
            self.committed_messages.clone(),
        );
        r.register(
            "receipt_groups",
            "Group signatures made over the receipts of several accepted envelopes",
            self.receipt_groups.clone(),
        );
        r.register(
            "receipts_grouped",
            "Receipts signed in groups, one signature per group",
            self.receipts_grouped.clone(),
        );
        r.register(
            "quota_refused",
            "Inbound envelopes refused or shed because a peer was over a quota, by peer and quota",
            self.quota_refused.clone(),
        );
        r.register(
            "trust_list_refused",
            "Trust lists refused: an older or equal version (rollback), a bad signature, one that drops this node's key",
            self.trust_list_refused.clone(),
        );
        r.register(
            "peer_bytes_today",
            "Envelope bytes accepted from a peer today (UTC), against its daily quota",
            self.peer_bytes_today.clone(),
        );
        r.register(
            "peer_inbound_in_process",
            "Inbound envelopes in process per peer, against its slot quota",
            self.peer_inbound_in_process.clone(),
        );
        r.register(
            "peer_protocol_version",
            "The IMI protocol version each peer last announced (0: one that did not parse)",
            self.peer_protocol_version.clone(),
        );
        r.register(
            "delivery_envelope_loads",
            "Envelopes the delivery tasks loaded, by source: memory (kept since their commit) or store (read back: after a restart, a retry, or beyond the memory's bound)",
            self.delivery_loads.family.clone(),
        );
        r.register(
            "delivery_outbox_reads",
            "Refills of the delivery tasks, by source: memory (the entries the committer just wrote, handed over) or store (a read of the outbox column: at start, after a retry, behind a backlog)",
            self.delivery_refills.family.clone(),
        );
        r.register(
            "peer_protocol_refused",
            "Connections refused because the peer announced a protocol version below network.min_protocol_version",
            self.peer_protocol_refused.clone(),
        );
        r.register(
            "store_committed_messages_by_kind",
            "Inbound messages committed, by kind",
            self.committed_by_kind.clone(),
        );
    }

    pub(crate) fn peer(node: imi_protocol::NodeId) -> PeerLabel {
        PeerLabel {
            peer: node.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imi_protocol::RejectCode;

    #[test]
    fn peer_codes_are_bounded() {
        let codes = PeerCodes::default();
        assert_eq!(codes.label("DE", &RejectCode::Malformed), "malformed");
        let app = |c: &str| RejectCode::Application(c.to_owned());
        assert_eq!(
            codes.label("DE", &app("invalid_transition")),
            "invalid_transition"
        );
        // Free text a peer chose is not a label.
        assert_eq!(codes.label("DE", &app("x\" } evil{")), "other");
        assert_eq!(codes.label("DE", &app(&"a".repeat(49))), "other");
        // At most MAX_CODES_PER_PEER distinct codes per peer; known ones keep their label.
        for i in 0..100 {
            let _ = codes.label("AT", &app(&format!("code_{i}")));
        }
        let distinct: std::collections::HashSet<String> = (0..100)
            .map(|i| codes.label("AT", &app(&format!("code_{i}"))))
            .collect();
        assert_eq!(distinct.len(), MAX_CODES_PER_PEER + 1, "{distinct:?}");
        assert!(distinct.contains("other"));
        assert_eq!(codes.label("AT", &app("code_0")), "code_0");
        // Another peer has its own budget.
        assert_eq!(codes.label("HU", &app("code_99")), "code_99");
    }
}
