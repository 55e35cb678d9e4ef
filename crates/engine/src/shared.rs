//! The state every kernel task shares: identity, trust list, store, clock, config,
//! metrics, the network client, the committer's queue, the routing table and the delivery
//! wake-ups and watchers.
use crate::apply::Routes;
use crate::commit;
use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::metrics::Metrics;
use crate::trust::{Identity, peer_id_of};
use imi_network::{NetworkClient, PeerId};
use imi_protocol::{Clock, MessageId, NodeId, ReceiptBody, TrustList};
use imi_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};

/// What a destination said about a sent envelope.
#[derive(Debug, Clone)]
pub struct DeliveryReport {
    /// Destination.
    pub to: NodeId,
    /// The verified receipt.
    pub receipt: ReceiptBody,
    /// Time from the send call to the verified receipt.
    pub round_trip: Duration,
}

/// The IMI protocol version a peer announced when it last connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PeerProtocol {
    /// The version it announced (`None`: one that did not parse).
    pub version: Option<u16>,
    /// Whether this node refuses it for being below the configured minimum.
    pub refused: bool,
}

/// A waiter for one delivery: when the send started, and where to report.
pub(crate) type Watcher = (std::time::Instant, oneshot::Sender<DeliveryReport>);

pub(crate) struct Shared {
    pub me: NodeId,
    pub identity: Identity,
    pub trust: RwLock<Arc<TrustList>>,
    /// PeerId → node, for every listed signing key.
    pub peers: RwLock<HashMap<PeerId, NodeId>>,
    /// The peers with an open connection (the network's connected and disconnected events).
    pub connected: RwLock<std::collections::HashSet<PeerId>>,
    /// The protocol version each peer last announced (the network's identify events).
    pub protocols: Mutex<std::collections::BTreeMap<NodeId, PeerProtocol>>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub config: EngineConfig,
    pub metrics: Metrics,
    pub network: NetworkClient,
    pub commit_tx: mpsc::Sender<commit::Job>,
    pub routes: Routes,
    /// Wakes a destination's delivery task.
    pub wake: HashMap<NodeId, Arc<Notify>>,
    /// Watchers of pending deliveries: (destination, message id) → waiter.
    pub watchers: Mutex<HashMap<(NodeId, MessageId), Watcher>>,
    /// Envelopes just committed, for the delivery tasks (a shortcut over the store).
    pub fresh: Arc<crate::fresh::FreshEnvelopes>,
    /// Outbox entries just written, per destination (a shortcut over the outbox column).
    pub tails: Arc<crate::tail::Tails>,
}

impl Shared {
    pub(crate) fn trust(&self) -> Arc<TrustList> {
        self.trust
            .read()
            .map(|t| t.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Hands a job to the committer and waits for its answer (given after the write).
    pub(crate) async fn commit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> commit::Job,
    ) -> Result<T, EngineError> {
        let (reply, done) = oneshot::channel();
        self.commit_tx
            .send(job(reply))
            .await
            .map_err(|_| EngineError::ShuttingDown)?;
        done.await.map_err(|_| EngineError::ShuttingDown)?
    }

    /// The node whose listed signing key is `peer`'s identity.
    pub(crate) fn node_of_peer(&self, peer: &PeerId) -> Option<NodeId> {
        self.peers
            .read()
            .map(|m| m.get(peer).copied())
            .unwrap_or_else(|p| p.into_inner().get(peer).copied())
    }

    /// Records the protocol version `node` announced, for `Engine::peer_protocols` and the
    /// `imi_peer_protocol_version` gauge (0 for a version that did not parse).
    pub(crate) fn set_protocol(&self, node: NodeId, protocol: PeerProtocol) {
        self.metrics
            .peer_protocol_version
            .get_or_create(&Metrics::peer(node))
            .set(protocol.version.map_or(0, i64::from));
        self.protocols
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(node, protocol);
    }

    /// Records that `peer` is connected (or no longer is).
    pub(crate) fn set_connected(&self, peer: PeerId, up: bool) {
        let mut set = self
            .connected
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if up {
            set.insert(peer);
        } else {
            set.remove(&peer);
        }
    }

    /// The identity to send to `node` under, after `failures` failed attempts in a row.
    ///
    /// A member's keys valid now, newest first: during a key rotation two are, and until
    /// the member restarts with its new key only the old one answers. So the newest key
    /// with an open connection is taken; without one, the keys are tried in turn, one per
    /// attempt (the newest first). A member with no key valid now is tried under its last.
    pub(crate) fn peer_id(&self, node: NodeId, failures: u32) -> Option<PeerId> {
        let trust = self.trust();
        let now = self.clock.now_ms();
        let m = trust.member(node)?;
        let mut valid: Vec<&imi_protocol::SigningKeyEntry> = m
            .signing_keys
            .iter()
            .filter(|k| k.valid_from <= now && now < k.valid_until)
            .collect();
        valid.sort_by_key(|k| std::cmp::Reverse(k.valid_from));
        let peers: Vec<PeerId> = valid
            .iter()
            .filter_map(|k| peer_id_of(&k.public).ok())
            .collect();
        if peers.is_empty() {
            return m
                .signing_keys
                .last()
                .and_then(|k| peer_id_of(&k.public).ok());
        }
        let connected = self
            .connected
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(p) = peers.iter().find(|p| connected.contains(p)) {
            return Some(*p);
        }
        let i = usize::try_from(failures).unwrap_or(0) % peers.len();
        peers.get(i).copied()
    }
}
