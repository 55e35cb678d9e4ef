//! Prometheus metrics of the engine. Labels are node ids and rejection codes only: never
//! case content or personal data.
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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

/// Label: a rejection code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// Rejection code.
    pub code: String,
}

/// All engine metrics. Cloning shares them.
#[derive(Clone, Default)]
pub struct Metrics {
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
    /// Inbound messages committed, by kind (counted once the commit is durable).
    pub committed_by_kind: Family<KindLabel, Counter>,
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
