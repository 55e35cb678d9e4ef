//! `imi-engine`: a national node's message services.
//!
//! The path of a message:
//!
//! * **Sending** ([`Engine::send`]): the draft is sealed and signed (on a blocking thread),
//!   then the committer writes the envelope and one outbox entry per recipient in one
//!   atomic, synced batch. Each destination has a delivery task ([`delivery`]) that sends
//!   the oldest entries first, several in flight, verifies each signed receipt, stores it and
//!   removes the entry; failures are retried with capped exponential backoff and jitter.
//! * **Receiving** ([`inbound`]): size check → decode → verify against the sender's key
//!   valid at creation time → check this node is a recipient → de-duplicate by message id →
//!   decrypt → [`Application`] → one atomic commit (grouped with other messages into one
//!   fsync, see [`commit`]) → signed receipt, sent only after the commit is durable. Every
//!   rejection is a signed `rejected` receipt with a code and changes no state.
//!
//! The engine never talks to libp2p directly: it uses `imi-network`'s client and events.
//! It must never depend on HTTP or the node binary.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod app;
pub mod audit;
pub mod cases;
pub mod commit;
pub mod delivery;
pub mod facts;
pub mod inbound;
pub mod keys;
pub mod log;
pub mod metrics;
pub mod retention;
pub mod witness;

pub use app::{
    Application, Applications, DiagnosticApp, Inbound, LocalCtx, LocalFn, LocalOutcome, Refusal,
    Txn,
};
pub use metrics::Metrics;

use imi_network::{AllowedPeer, Multiaddr, NetworkClient, NetworkEvent, PeerId};
use imi_protocol::{
    Clock, Draft, HpkeKeyPair, MessageId, NodeId, NodeSigner, ReceiptBody, SealRandomness,
    TrustList,
};
use imi_store::Store;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Storage failed.
    #[error("store: {0}")]
    Store(String),
    /// Protocol-level error on local data.
    #[error("protocol: {0}")]
    Protocol(#[from] imi_protocol::ProtocolError),
    /// Network failure.
    #[error("network: {0}")]
    Network(String),
    /// Invalid request by local code or an operator.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The engine is shutting down.
    #[error("engine is shutting down")]
    ShuttingDown,
    /// Internal failure.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<imi_store::StoreError> for EngineError {
    fn from(e: imi_store::StoreError) -> Self {
        EngineError::Store(e.to_string())
    }
}

/// Engine settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Largest envelope accepted or sent, bytes.
    pub max_envelope_bytes: usize,
    /// How far in the future a creation time may lie, ms.
    pub max_future_skew_ms: u64,
    /// Envelopes in flight per destination.
    pub delivery_window: usize,
    /// First retry delay, ms.
    pub backoff_initial_ms: u64,
    /// Largest retry delay, ms.
    pub backoff_max_ms: u64,
    /// Most jobs in one group commit.
    pub max_commit_group: usize,
    /// Inbound envelopes processed concurrently.
    pub max_inbound_concurrency: usize,
    /// Capacity of the committer's queue.
    pub commit_queue: usize,
    /// Under load, how long the committer may wait for more commits to share one fsync, µs
    /// (0 disables). Never applies to an isolated commit.
    pub group_commit_linger_us: u64,
    /// Group size at which the committer stops lingering.
    pub group_commit_target: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_envelope_bytes: imi_protocol::DEFAULT_MAX_ENVELOPE_BYTES,
            max_future_skew_ms: 5 * 60 * 1000,
            delivery_window: 64,
            backoff_initial_ms: 200,
            backoff_max_ms: 30_000,
            max_commit_group: 512,
            max_inbound_concurrency: 256,
            commit_queue: 4096,
            group_commit_linger_us: 2000,
            group_commit_target: 32,
        }
    }
}

/// Key in the `meta` column of the newest accepted trust list (signed bytes).
pub const TRUST_LIST_KEY: &[u8] = b"trust_list";

/// Chooses between the trust list from the config file and the one this node accepted
/// earlier (persisted in its store): the version only grows, so an older file never
/// replaces a newer accepted list. Persists the file's list when it is the newer one.
pub fn settle_trust_list(
    store: &dyn Store,
    file_bytes: Vec<u8>,
    governance_public: &[u8; 32],
) -> Result<TrustList, EngineError> {
    let from_file = TrustList::verify(&file_bytes, governance_public)?;
    let stored = match store.get(keys::META, TRUST_LIST_KEY)? {
        Some(b) => Some(TrustList::verify(&b, governance_public)?),
        None => None,
    };
    match stored {
        Some(stored) if stored.version > from_file.version => {
            tracing::warn!(
                file_version = from_file.version,
                accepted_version = stored.version,
                "the trust list file is older than the one this node accepted; using the accepted one"
            );
            Ok(stored)
        }
        Some(stored) if stored.version == from_file.version && stored != from_file => {
            Err(EngineError::Invalid(format!(
                "two different trust lists carry version {}",
                stored.version
            )))
        }
        _ => {
            let mut batch = imi_store::WriteBatch::new();
            batch.put(keys::META, TRUST_LIST_KEY.to_vec(), file_bytes);
            store.write(batch, imi_store::Durability::Sync)?;
            Ok(from_file)
        }
    }
}

/// This node's keys.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Signing key (also the libp2p identity).
    pub signer: NodeSigner,
    /// HPKE key pairs (current and, during rotation, previous).
    pub hpke: Vec<HpkeKeyPair>,
}

/// The durable record of an accepted inbound envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboxRecord {
    /// SHA-256 of the envelope bytes.
    #[serde(with = "serde_bytes")]
    pub envelope_hash: [u8; 32],
    /// When it was received.
    pub received: u64,
    /// Its kind.
    pub kind: String,
    /// The signed `accepted` receipt this node issued.
    #[serde(with = "serde_bytes")]
    pub receipt: Vec<u8>,
}

impl InboxRecord {
    /// CBOR encoding.
    pub fn encode(&self) -> Result<Vec<u8>, EngineError> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).map_err(|e| EngineError::Internal(e.to_string()))?;
        Ok(out)
    }
    /// Decodes; `None` if corrupt.
    pub fn decode(b: &[u8]) -> Option<Self> {
        ciborium::from_reader(b).ok()
    }
}

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

/// The PeerId of an ed25519 public key (a node's libp2p identity).
pub fn peer_id_of(public: &[u8; 32]) -> Result<PeerId, EngineError> {
    let pk = libp2p_identity::ed25519::PublicKey::try_from_bytes(public)
        .map_err(|e| EngineError::Invalid(e.to_string()))?;
    Ok(libp2p_identity::PublicKey::from(pk).to_peer_id())
}

/// PeerId → node, for every signing key on the trust list.
fn peer_map(trust: &TrustList) -> HashMap<PeerId, NodeId> {
    trust
        .all_signing_keys()
        .filter_map(|(node, k)| peer_id_of(&k.public).ok().map(|p| (p, node)))
        .collect()
}

/// The libp2p keypair of a node's signing seed.
pub fn libp2p_keypair(signer: &NodeSigner) -> Result<imi_network::Keypair, EngineError> {
    imi_network::Keypair::ed25519_from_bytes(signer.seed())
        .map_err(|e| EngineError::Invalid(e.to_string()))
}

/// The allow list for the network: every other member's keys and addresses.
pub fn allowed_peers(trust: &TrustList, me: NodeId) -> Vec<AllowedPeer> {
    let mut out = Vec::new();
    for m in trust.members.iter().filter(|m| m.node != me) {
        let addrs: Vec<Multiaddr> = m.addresses.iter().filter_map(|a| a.parse().ok()).collect();
        for k in &m.signing_keys {
            if let Ok(peer) = peer_id_of(&k.public) {
                out.push(AllowedPeer {
                    peer,
                    addrs: addrs.clone(),
                });
            }
        }
    }
    out
}

/// A waiter for one delivery: when the send started, and where to report.
pub(crate) type Watcher = (std::time::Instant, oneshot::Sender<DeliveryReport>);

pub(crate) struct Shared {
    pub me: NodeId,
    pub identity: Identity,
    pub trust: RwLock<Arc<TrustList>>,
    /// PeerId → node, for every listed signing key.
    pub peers: RwLock<HashMap<PeerId, NodeId>>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub config: EngineConfig,
    pub metrics: Metrics,
    pub network: NetworkClient,
    pub commit_tx: mpsc::Sender<commit::Job>,
    pub apps: Applications,
    /// Wakes a destination's delivery task.
    pub wake: HashMap<NodeId, Arc<Notify>>,
    /// Watchers of pending deliveries: (destination, message id) → waiter.
    pub watchers: Mutex<HashMap<(NodeId, MessageId), Watcher>>,
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

    pub(crate) fn peer_id(&self, node: NodeId) -> Option<PeerId> {
        let trust = self.trust();
        let now = self.clock.now_ms();
        let m = trust.member(node)?;
        let key = m
            .signing_keys
            .iter()
            .filter(|k| k.valid_from <= now && now < k.valid_until)
            .max_by_key(|k| k.valid_from)
            .or_else(|| m.signing_keys.last())?;
        peer_id_of(&key.public).ok()
    }
}

/// A running engine. Cloning shares it.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

/// Handles of the engine's tasks, to await at shutdown.
pub struct EngineTasks {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    committer: Option<std::thread::JoinHandle<()>>,
    commit_tx: mpsc::Sender<commit::Job>,
}

impl EngineTasks {
    /// Waits for every task to stop (after the cancel token fired), then for the committer
    /// to drain its queue and exit.
    pub async fn join(mut self) {
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        // Jobs queued before this one are committed and answered; the thread then exits.
        let _ = self.commit_tx.send(commit::Job::Stop).await;
        if let Some(c) = self.committer.take() {
            let _ = tokio::task::spawn_blocking(move || c.join()).await;
        }
    }
}

impl Engine {
    /// The store columns the engine needs.
    pub fn columns() -> &'static [imi_store::Column] {
        keys::ALL
    }

    /// Starts the engine: the committer thread, the inbound loop and a delivery task per
    /// member. Everything stops when `cancel` fires.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        identity: Identity,
        trust: TrustList,
        store: Arc<dyn Store>,
        network: NetworkClient,
        events: mpsc::Receiver<NetworkEvent>,
        apps: Applications,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
        cancel: CancellationToken,
    ) -> Result<(Engine, EngineTasks), EngineError> {
        let me = identity.signer.node;
        if trust.member(me).is_none() {
            return Err(EngineError::Invalid(format!(
                "{me} is not on the trust list"
            )));
        }
        let metrics = Metrics::default();
        let (commit_tx, commit_rx) = mpsc::channel(config.commit_queue.max(1));
        let mut wake = HashMap::new();
        for m in trust.members.iter().filter(|m| m.node != me) {
            wake.insert(m.node, Arc::new(Notify::new()));
        }
        let peers = peer_map(&trust);
        let applied = app::read_counter(store.as_ref(), keys::APP, app::DIAG_APPLIED)?;
        metrics
            .diagnostic_applied
            .set(i64::try_from(applied).unwrap_or(i64::MAX));
        let stop_tx = commit_tx.clone();
        let shared = Arc::new(Shared {
            me,
            identity: identity.clone(),
            trust: RwLock::new(Arc::new(trust)),
            peers: RwLock::new(peers),
            store: store.clone(),
            clock,
            config: config.clone(),
            metrics: metrics.clone(),
            network,
            commit_tx,
            apps: apps.clone(),
            wake: wake.clone(),
            watchers: Mutex::new(HashMap::new()),
        });
        let wake_for_committer = wake.clone();
        let log_state = log::LogState::load(store.as_ref())?;
        let mut committer = commit::Committer {
            log: log_state,
            linger: Duration::from_micros(config.group_commit_linger_us),
            linger_target: config.group_commit_target.max(1),
            store,
            apps,
            signer: identity.signer.clone(),
            metrics,
            max_group: config.max_commit_group.max(1),
            next_seq: HashMap::new(),
            on_enqueued: Box::new(move |peer| {
                if let Some(n) = wake_for_committer.get(&peer) {
                    n.notify_one();
                }
            }),
        };
        committer.load_sequences()?;
        let committer = std::thread::Builder::new()
            .name("imi-committer".into())
            .spawn(move || committer.run(commit_rx))
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(inbound::run(
            shared.clone(),
            events,
            cancel.clone(),
        )));
        for node in wake.keys() {
            tasks.push(tokio::spawn(delivery::run(
                shared.clone(),
                *node,
                cancel.clone(),
            )));
        }
        Ok((
            Engine { shared },
            EngineTasks {
                tasks,
                committer: Some(committer),
                commit_tx: stop_tx,
            },
        ))
    }

    /// This node.
    pub fn node(&self) -> NodeId {
        self.shared.me
    }

    /// The metrics (register them once in the node's registry).
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The current trust list.
    pub fn trust_list(&self) -> Arc<TrustList> {
        self.shared.trust()
    }

    /// Accepts a newer governance-signed trust list: verifies the signature, requires a
    /// strictly greater version, persists it (synced) and swaps it in, updating the
    /// network's allow list. Members added by the new list get delivery tasks at the next
    /// restart.
    pub async fn update_trust_list(
        &self,
        bytes: Vec<u8>,
        governance_public: &[u8; 32],
    ) -> Result<u64, EngineError> {
        let s = &self.shared;
        let newer = TrustList::verify(&bytes, governance_public)?;
        s.trust().check_update(&newer)?;
        if newer.member(s.me).is_none_or(|m| {
            !m.signing_keys
                .iter()
                .any(|k| k.public == s.identity.signer.public())
        }) {
            return Err(EngineError::Invalid(
                "the new trust list does not list this node's key".into(),
            ));
        }
        let mut batch = imi_store::WriteBatch::new();
        batch.put(keys::META, TRUST_LIST_KEY.to_vec(), bytes);
        s.commit(|reply| commit::Job::Write {
            batch,
            durability: imi_store::Durability::Sync,
            leaves: Vec::new(),
            reply,
        })
        .await?;
        let version = newer.version;
        let allowed = allowed_peers(&newer, s.me);
        *s.peers
            .write()
            .map_err(|_| EngineError::Internal("poisoned".into()))? = peer_map(&newer);
        *s.trust
            .write()
            .map_err(|_| EngineError::Internal("poisoned".into()))? = Arc::new(newer);
        s.network
            .set_allowed(allowed)
            .await
            .map_err(|e| EngineError::Network(e.to_string()))?;
        tracing::info!(version, "accepted a newer trust list");
        Ok(version)
    }

    /// The network client.
    pub fn network(&self) -> &NetworkClient {
        &self.shared.network
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// Seals, signs and durably enqueues a message for every recipient. Returns once the
    /// envelope and its outbox entries are on disk.
    pub async fn send(&self, draft: Draft) -> Result<MessageId, EngineError> {
        Ok(self.send_inner(draft, false).await?.0)
    }

    /// Like [`Engine::send`], and returns one receiver per recipient that yields the
    /// verified receipt when it arrives.
    pub async fn send_watched(
        &self,
        draft: Draft,
    ) -> Result<(MessageId, Vec<oneshot::Receiver<DeliveryReport>>), EngineError> {
        self.send_inner(draft, true).await
    }

    async fn send_inner(
        &self,
        draft: Draft,
        watch: bool,
    ) -> Result<(MessageId, Vec<oneshot::Receiver<DeliveryReport>>), EngineError> {
        let s = &self.shared;
        let started = std::time::Instant::now();
        let created = s.clock.now_ms();
        let to = draft.to.clone();
        let (id, bytes, signed) = self.seal(draft, created).await?;
        let mut receivers = Vec::new();
        if watch {
            let mut w = s
                .watchers
                .lock()
                .map_err(|_| EngineError::Internal("poisoned".into()))?;
            for node in &to {
                let (tx, rx) = oneshot::channel();
                w.insert((*node, id), (started, tx));
                receivers.push(rx);
            }
        }
        s.commit(|reply| commit::Job::Send {
            id,
            bytes,
            signed,
            to,
            enqueued: created,
            reply,
        })
        .await?;
        Ok((id, receivers))
    }

    /// Runs a local action on the commit thread, atomically with the envelope of `draft`
    /// (sealed, signed and enqueued for its recipients) when there is one. The action sees
    /// the latest committed state; if it refuses (`Ok(Err(code))`) nothing is written or
    /// sent. Returns once everything is durable.
    pub async fn local_step(
        &self,
        draft: Option<Draft>,
        apply: LocalFn,
    ) -> Result<Result<LocalOutcome, app::Refusal>, EngineError> {
        Ok(self.local_step_watched(draft, apply, false).await?.0)
    }

    /// Like [`Engine::local_step`]; with `watch`, also returns one receiver per recipient
    /// of the envelope that yields its verified receipt (none when the action refused or
    /// was a replay).
    pub async fn local_step_watched(
        &self,
        draft: Option<Draft>,
        apply: LocalFn,
        watch: bool,
    ) -> Result<
        (
            Result<LocalOutcome, app::Refusal>,
            Vec<oneshot::Receiver<DeliveryReport>>,
        ),
        EngineError,
    > {
        let s = &self.shared;
        let started = std::time::Instant::now();
        let created = s.clock.now_ms();
        let envelope = match draft {
            None => None,
            Some(draft) => {
                let to = draft.to.clone();
                let (id, bytes, signed) = self.seal(draft, created).await?;
                Some(commit::LocalEnvelope {
                    id,
                    bytes,
                    signed,
                    to,
                })
            }
        };
        let mut receivers = Vec::new();
        let watched: Vec<(NodeId, MessageId)> = match (&envelope, watch) {
            (Some(e), true) => e.to.iter().map(|n| (*n, e.id)).collect(),
            _ => Vec::new(),
        };
        if !watched.is_empty() {
            let mut w = s
                .watchers
                .lock()
                .map_err(|_| EngineError::Internal("poisoned".into()))?;
            for key in &watched {
                let (tx, rx) = oneshot::channel();
                w.insert(*key, (started, tx));
                receivers.push(rx);
            }
        }
        let result = s
            .commit(|reply| commit::Job::Local {
                envelope,
                at: created,
                apply,
                reply,
            })
            .await;
        let sent = matches!(&result, Ok(Ok(o)) if o.write);
        if !sent && !watched.is_empty() {
            if let Ok(mut w) = s.watchers.lock() {
                for key in &watched {
                    w.remove(key);
                }
            }
            receivers.clear();
        }
        Ok((result?, receivers))
    }

    /// Checks the recipients, then seals and signs `draft` on a blocking thread (which also
    /// reads back the signed header and hashes the bytes for the log leaf, so the commit
    /// thread does not); refuses an envelope over the size limit.
    async fn seal(
        &self,
        draft: Draft,
        created: u64,
    ) -> Result<(MessageId, Vec<u8>, commit::SignedHeader), EngineError> {
        let s = &self.shared;
        if let Some(n) = draft
            .to
            .iter()
            .find(|n| **n == s.me || !s.wake.contains_key(n))
        {
            return Err(EngineError::Invalid(format!(
                "{n} is not a destination of this node"
            )));
        }
        let trust = s.trust();
        let signer = s.identity.signer.clone();
        let (id, bytes, signed) = tokio::task::spawn_blocking(move || {
            let rnd = SealRandomness::random(draft.to.len());
            let bytes = imi_protocol::seal_and_sign(&draft, created, &signer, &trust, &rnd)?;
            let env = imi_protocol::Envelope::parse(bytes.clone(), usize::MAX)
                .map_err(|c| EngineError::Internal(format!("own envelope does not parse: {c}")))?;
            let signed = commit::SignedHeader {
                header: Box::new(env.header().clone()),
                hash: env.hash(),
            };
            Ok::<_, EngineError>((rnd.id, bytes, signed))
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))??;
        let max = s.config.max_envelope_bytes;
        if bytes.len() > max {
            return Err(EngineError::Invalid(format!(
                "envelope of {} bytes exceeds the {max}-byte limit",
                bytes.len()
            )));
        }
        Ok((id, bytes, signed))
    }

    /// Sends the rows of a "pending" column as envelopes of `kind` (the row's value is the
    /// body; `route` gives the destination and case from the key), each through the durable
    /// outbox, then clears each row unless a newer value replaced it meanwhile (that one goes
    /// next round). At most 256 rows per call; returns how many were sent.
    pub(crate) async fn send_pending(
        &self,
        col: imi_store::Column,
        kind: &str,
        route: impl Fn(&[u8]) -> Option<(NodeId, Option<imi_protocol::CaseId>)>,
    ) -> Result<usize, EngineError> {
        let kind = imi_protocol::Kind::new(kind)?;
        let authority = imi_protocol::AuthorityId::new(&format!("{}-IMI", self.node()))?;
        let rows = self.store().scan_prefix(col, &[], 256)?;
        let mut sent = 0;
        for (key, value) in rows {
            let Some((to, case)) = route(&key) else {
                continue;
            };
            self.send(Draft {
                kind: kind.clone(),
                authority: authority.clone(),
                to: vec![to],
                case,
                prev: Vec::new(),
                body: value.clone(),
            })
            .await?;
            let outcome = self
                .local_step(
                    None,
                    Box::new(move |txn, _| {
                        if txn.get(col, &key)?.as_deref() == Some(value.as_slice()) {
                            txn.delete(col, key);
                        }
                        Ok(LocalOutcome {
                            write: true,
                            result: Vec::new(),
                        })
                    }),
                )
                .await?;
            outcome.map_err(|r| EngineError::Internal(r.detail))?;
            sent += 1;
        }
        Ok(sent)
    }

    /// Outbox entries waiting for `peer`.
    pub fn queue_depth(&self, peer: NodeId) -> i64 {
        self.shared
            .metrics
            .queue_depth
            .get_or_create(&Metrics::peer(peer))
            .get()
    }

    /// Persistent count of applied diagnostic messages.
    pub fn diagnostic_applied(&self) -> Result<u64, EngineError> {
        Ok(app::read_counter(
            self.shared.store.as_ref(),
            keys::APP,
            app::DIAG_APPLIED,
        )?)
    }

    /// Members other than this node.
    pub fn peers(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.shared.wake.keys().copied().collect();
        v.sort();
        v
    }

    /// Which members are connected now.
    pub async fn connected(&self) -> Result<Vec<NodeId>, EngineError> {
        let peers = self
            .shared
            .network
            .connected_peers()
            .await
            .map_err(|e| EngineError::Network(e.to_string()))?;
        let map = self
            .shared
            .peers
            .read()
            .map_err(|_| EngineError::Internal("poisoned".into()))?;
        let mut v: Vec<NodeId> = peers.iter().filter_map(|p| map.get(p).copied()).collect();
        v.sort();
        v.dedup();
        Ok(v)
    }
}
