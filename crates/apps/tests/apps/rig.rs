//! The test rig: a federation of real engines in one process, each with its own RocksDB in a
//! temporary directory and its own libp2p network on loopback. A node listens on port 0 the
//! first time (the system picks a free port, no race with other processes) and on that same
//! port when restarted; the rig tells every running node where the others listen.
use imi_apps::diagnostics::DiagnosticApp;
use imi_engine::metrics::PeerLabel;
use imi_engine::{Applications, Engine, EngineConfig, EngineTasks, Identity, InboxRecord, keys};
use imi_network::{Multiaddr, NetworkClient, NetworkConfig, NetworkEvent, PeerId};
use imi_protocol::{
    AuthorityId, Draft, HpkeKeyEntry, HpkeKeyPair, Kind, Member, MessageId, NodeId, NodeSigner,
    Outcome, Receipt, SealRandomness, SigningKeyEntry, SystemClock, Timestamp, TrustList,
};
use imi_store::{Column, ReadStore, RocksConfig, RocksStore, Store};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Upper bound for any wait: a failure guard, not a pacing device.
pub const TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(10);
const DAY_MS: u64 = 24 * 3600 * 1000;

pub fn now_ms() -> Timestamp {
    imi_protocol::Clock::now_ms(&SystemClock)
}

/// Polls `cond` every few milliseconds until it holds; panics after [`TIMEOUT`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {TIMEOUT:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Awaits `f` with the overall [`TIMEOUT`].
pub async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {TIMEOUT:?}: {what}"))
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Options of a federation.
#[derive(Debug, Clone)]
pub struct Options {
    /// Every node's network frame limit.
    pub max_message_bytes: usize,
    /// Nodes that also get a second signing key whose validity ended an hour ago.
    pub expired_keys: Vec<NodeId>,
    /// The protocol version every node announces, and the minimum it accepts from peers
    /// (raw clients announce 1 unless made with [`Federation::raw_client_speaking`]).
    pub protocol_versions: (u16, u16),
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_message_bytes: imi_network::DEFAULT_MAX_MESSAGE_BYTES,
            expired_keys: Vec::new(),
            protocol_versions: (1, 1),
        }
    }
}

/// One member's secrets and places.
pub struct MemberKeys {
    pub signer: NodeSigner,
    pub hpke: HpkeKeyPair,
    /// A signing key on the trust list whose validity ended before now, if asked for.
    pub expired: Option<NodeSigner>,
    /// The port the node listens on: chosen by the system (port 0) when it first starts,
    /// kept so that a restart listens at the same address.
    port: Mutex<Option<u16>>,
    pub dir: tempfile::TempDir,
}

impl MemberKeys {
    pub fn peer_id(&self) -> PeerId {
        imi_engine::peer_id_of(&self.signer.public()).expect("peer id")
    }
    /// Where the node listens once it has started; `None` before.
    pub fn address(&self) -> Option<Multiaddr> {
        let port = (*self.port.lock().expect("port lock"))?;
        Some(
            format!("/ip4/127.0.0.1/tcp/{port}")
                .parse()
                .expect("multiaddr"),
        )
    }
    /// Where to listen: the known port, or port 0 the first time.
    fn listen_address(&self) -> Multiaddr {
        let port = self.port.lock().expect("port lock").unwrap_or(0);
        format!("/ip4/127.0.0.1/tcp/{port}")
            .parse()
            .expect("multiaddr")
    }
}

/// A generated federation: the trust list and every member's keys, port and data directory.
pub struct Federation {
    pub trust: TrustList,
    pub members: BTreeMap<NodeId, MemberKeys>,
    pub options: Options,
    /// The network clients of the nodes started so far, told every address a node learns.
    running: Mutex<Vec<(NodeId, NetworkClient)>>,
}

impl Federation {
    pub fn new(nodes: &[NodeId]) -> Self {
        Self::with(nodes, Options::default())
    }

    pub fn with(nodes: &[NodeId], options: Options) -> Self {
        init_tracing();
        let now = now_ms();
        let mut members = BTreeMap::new();
        let mut list = Vec::new();
        for node in nodes {
            let signer = NodeSigner::generate(*node);
            let hpke = HpkeKeyPair::generate();
            let expired = options
                .expired_keys
                .contains(node)
                .then(|| NodeSigner::generate(*node));
            let mut signing_keys = Vec::new();
            if let Some(old) = &expired {
                signing_keys.push(SigningKeyEntry {
                    public: old.public(),
                    valid_from: now - 2 * DAY_MS,
                    valid_until: now - 3600 * 1000,
                });
            }
            signing_keys.push(SigningKeyEntry {
                public: signer.public(),
                // Ten days back: tests may date envelopes days into the past.
                valid_from: now - 10 * DAY_MS,
                valid_until: now + DAY_MS,
            });
            // In the base directory of integration tests (on disk, so fsync costs something).
            let dir = tempfile::Builder::new()
                .prefix(&format!("engine-{node}-"))
                .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
                .expect("tempdir");
            let keys = MemberKeys {
                signer,
                hpke,
                expired,
                port: Mutex::new(None),
                dir,
            };
            list.push(Member {
                node: *node,
                role: node.default_role(),
                signing_keys,
                hpke_keys: vec![HpkeKeyEntry {
                    public: keys.hpke.public(),
                    valid_from: now - 10 * DAY_MS,
                    valid_until: now + DAY_MS,
                }],
                // Ports are chosen by the system when each node first starts (port 0); the
                // rig tells the running nodes (`Federation::allowed`).
                addresses: Vec::new(),
            });
            members.insert(*node, keys);
        }
        let trust = TrustList {
            version: 1,
            issued: now,
            members: list,
        };
        trust.validate().expect("valid trust list");
        Self {
            trust,
            members,
            options,
            running: Mutex::new(Vec::new()),
        }
    }

    /// `node`'s allow list: every other member's keys, at the address it listens on once
    /// it has started.
    pub fn allowed(&self, node: NodeId) -> Vec<imi_network::AllowedPeer> {
        let mut out = imi_engine::allowed_peers(&self.trust, node, now_ms(), &Default::default());
        for p in &mut out {
            let addr = self
                .members
                .values()
                .find(|m| {
                    m.peer_id() == p.peer
                        || m.expired.as_ref().is_some_and(|e| {
                            imi_engine::peer_id_of(&e.public()).ok() == Some(p.peer)
                        })
                })
                .and_then(MemberKeys::address);
            p.addrs = addr.into_iter().collect();
        }
        out
    }

    /// Records where `node` listens and tells every running node (and the raw clients).
    async fn learned(&self, node: NodeId, client: &NetworkClient) {
        let m = self.member(node);
        let deadline = Instant::now() + TIMEOUT;
        let port = loop {
            let port = client
                .listen_addrs()
                .await
                .expect("listen addrs")
                .iter()
                .find_map(|a| {
                    let text = a.to_string();
                    let (_, port) = text.split_once("/tcp/")?;
                    port.split('/').next()?.parse::<u16>().ok()
                });
            if let Some(port) = port {
                break port;
            }
            assert!(Instant::now() < deadline, "{node} never started listening");
            tokio::time::sleep(POLL).await;
        };
        *m.port.lock().expect("port lock") = Some(port);
        let clients: Vec<(NodeId, NetworkClient)> = {
            let mut running = self.running.lock().expect("running lock");
            running.push((node, client.clone()));
            running.clone()
        };
        for (n, c) in clients {
            // A stopped node's client answers with an error; nothing to tell it.
            let _ = c.set_allowed(self.allowed(n)).await;
        }
    }

    pub fn member(&self, node: NodeId) -> &MemberKeys {
        self.members
            .get(&node)
            .unwrap_or_else(|| panic!("{node} is not in the federation"))
    }

    pub fn data_dir(&self, node: NodeId) -> PathBuf {
        self.member(node).dir.path().join("db")
    }

    /// Small, fast retries so that the tests do not wait on backoff.
    /// Fast retries; no periodic job runs unless a test runs it (`Engine::run_job`), so
    /// that what a test counts is what it sent.
    pub fn engine_config() -> EngineConfig {
        EngineConfig {
            backoff_initial_ms: 50,
            backoff_max_ms: 500,
            job_interval_ms: [
                "redial",
                "checkpoint",
                "witness-answers",
                "retention",
                "fact-report",
                "prune",
                "trust-list",
            ]
            .into_iter()
            .map(|j| (j.to_owned(), 0))
            .collect(),
            ..EngineConfig::default()
        }
    }

    /// Starts `node`: opens its store, spawns its network on its port, starts its engine.
    pub async fn start(&self, node: NodeId) -> Node {
        self.start_with(
            node,
            Applications::new(vec![Arc::new(DiagnosticApp::default())]),
        )
        .await
    }

    /// Like [`Federation::start`], with these applications.
    pub async fn start_with(&self, node: NodeId, apps: Applications) -> Node {
        self.start_configured(node, apps, Self::engine_config())
            .await
    }

    /// Like [`Federation::start_with`], with this engine configuration.
    pub async fn start_configured(
        &self,
        node: NodeId,
        apps: Applications,
        engine_config: EngineConfig,
    ) -> Node {
        self.start_clocked(node, apps, engine_config, Arc::new(SystemClock))
            .await
    }

    /// Like [`Federation::start_configured`], on `clock` (a `ManualClock` the test moves).
    pub async fn start_clocked(
        &self,
        node: NodeId,
        apps: Applications,
        engine_config: EngineConfig,
        clock: Arc<dyn imi_protocol::Clock>,
    ) -> Node {
        let m = self.member(node);
        let store = Arc::new(
            RocksStore::open(
                &self.data_dir(node),
                &imi_apps::columns(),
                &RocksConfig {
                    filtered_columns: imi_apps::filtered_columns(),
                    blob_columns: imi_engine::Engine::blob_columns().to_vec(),
                    ..RocksConfig::default()
                },
            )
            .expect("open rocksdb"),
        );
        let cancel = CancellationToken::new();
        let config = NetworkConfig {
            listen: vec![m.listen_address()],
            max_message_bytes: self.options.max_message_bytes,
            request_timeout: Duration::from_secs(20),
            protocol_version: self.options.protocol_versions.0,
            min_peer_protocol_version: self.options.protocol_versions.1,
            ..NetworkConfig::default()
        };
        let (client, events, net_task) = imi_network::spawn(
            imi_engine::libp2p_keypair(&m.signer).expect("libp2p keypair"),
            config,
            self.allowed(node),
            cancel.clone(),
        )
        .expect("spawn network");
        let identity = Identity {
            signer: m.signer.clone(),
            hpke: vec![m.hpke.clone()],
        };
        let (engine, tasks) = Engine::start(
            imi_engine::Start {
                identity,
                trust: self.trust.clone(),
                store: store.clone(),
                network: client.clone(),
                events,
                apps,
                clock,
                config: engine_config,
            },
            cancel.clone(),
        )
        .expect("start engine");
        // Listening before we return, and every running node knows where.
        self.learned(node, &client).await;
        Node {
            id: node,
            engine: Some(engine),
            tasks: Some(tasks),
            net_task: Some(net_task),
            cancel,
            store,
        }
    }

    /// A network client with `node`'s identity (so on everyone's allow list) but no engine
    /// behind it: the tests drive the wire with it. Events are drained and ignored.
    pub fn raw_client(&self, node: NodeId, max_message_bytes: usize) -> RawClient {
        let m = self.member(node);
        let keypair = imi_engine::libp2p_keypair(&m.signer).expect("libp2p keypair");
        self.raw_client_with(keypair, self.allowed(node), max_message_bytes, false)
    }

    /// Like [`Federation::raw_client`], announcing IMI protocol `version` through identify.
    pub fn raw_client_speaking(&self, node: NodeId, version: u16) -> RawClient {
        let m = self.member(node);
        let keypair = imi_engine::libp2p_keypair(&m.signer).expect("libp2p keypair");
        self.raw_client_configured(
            keypair,
            self.allowed(node),
            NetworkConfig {
                protocol_version: version,
                ..NetworkConfig::default()
            },
            false,
        )
    }

    /// Like [`Federation::raw_client`], for a test in which the node under test also sends
    /// to `node`: requests to it are left unanswered (the sender's outbox keeps them).
    pub fn deaf_client(&self, node: NodeId) -> RawClient {
        let m = self.member(node);
        let keypair = imi_engine::libp2p_keypair(&m.signer).expect("libp2p keypair");
        self.raw_client_with(
            keypair,
            self.allowed(node),
            imi_network::DEFAULT_MAX_MESSAGE_BYTES,
            true,
        )
    }

    /// A network client of `node` with the identity of `signer` (one of `node`'s keys, e.g.
    /// its expired one), which knows every member's address.
    pub fn raw_client_as(&self, node: NodeId, signer: &NodeSigner) -> RawClient {
        let keypair = imi_engine::libp2p_keypair(signer).expect("libp2p keypair");
        let allowed = self
            .members
            .values()
            .filter(|m| m.signer.node != node)
            .map(|m| imi_network::AllowedPeer {
                peer: m.peer_id(),
                addrs: m.address().into_iter().collect(),
            })
            .collect();
        self.raw_client_with(
            keypair,
            allowed,
            imi_network::DEFAULT_MAX_MESSAGE_BYTES,
            false,
        )
    }

    /// A network client with a fresh identity that is on nobody's trust list, but which
    /// itself knows every member's address.
    pub fn stranger_client(&self) -> RawClient {
        let stranger = NodeSigner::generate(NodeId::EU);
        let keypair = imi_engine::libp2p_keypair(&stranger).expect("libp2p keypair");
        let allowed = self
            .members
            .values()
            .map(|m| imi_network::AllowedPeer {
                peer: m.peer_id(),
                addrs: m.address().into_iter().collect(),
            })
            .collect();
        self.raw_client_with(
            keypair,
            allowed,
            imi_network::DEFAULT_MAX_MESSAGE_BYTES,
            false,
        )
    }

    fn raw_client_with(
        &self,
        keypair: imi_network::Keypair,
        allowed: Vec<imi_network::AllowedPeer>,
        max_message_bytes: usize,
        deaf: bool,
    ) -> RawClient {
        let config = NetworkConfig {
            max_message_bytes,
            ..NetworkConfig::default()
        };
        self.raw_client_configured(keypair, allowed, config, deaf)
    }

    fn raw_client_configured(
        &self,
        keypair: imi_network::Keypair,
        allowed: Vec<imi_network::AllowedPeer>,
        config: NetworkConfig,
        deaf: bool,
    ) -> RawClient {
        let cancel = CancellationToken::new();
        let config = NetworkConfig {
            request_timeout: Duration::from_secs(10),
            ..config
        };
        let (client, mut events, task) =
            imi_network::spawn(keypair, config, allowed, cancel.clone())
                .expect("spawn raw network");
        let drain = tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if let NetworkEvent::InboundRequest { .. } = ev
                    && !deaf
                {
                    panic!("the raw test client does not serve requests");
                }
            }
        });
        RawClient {
            client,
            cancel,
            task,
            drain,
        }
    }

    /// Seals and signs a diagnostic-shaped draft as `signer` (any key, listed or not).
    pub fn seal(
        &self,
        signer: &NodeSigner,
        kind: &str,
        to: &[NodeId],
        body: Vec<u8>,
        created: Timestamp,
    ) -> (MessageId, Vec<u8>) {
        let draft = Draft {
            kind: Kind::new(kind).expect("kind"),
            step: None,
            authority: AuthorityId::new(&format!("{}-OPS", signer.node)).expect("authority"),
            to: to.to_vec(),
            case: None,
            prev: vec![],
            body,
        };
        let rnd = SealRandomness::random(to.len());
        let bytes = imi_protocol::seal_and_sign(&draft, created, signer, &self.trust, &rnd)
            .expect("seal and sign");
        (rnd.id, bytes)
    }

    /// Seals and signs `draft` as `from` (created now), sends it to `to` over `raw` (a
    /// client connected as `from`) and returns the verified receipt's outcome.
    pub async fn send_draft(
        &self,
        raw: &RawClient,
        from: NodeId,
        to: NodeId,
        draft: &Draft,
    ) -> imi_protocol::Outcome {
        let rnd = SealRandomness::random(draft.to.len());
        let bytes = imi_protocol::seal_and_sign(
            draft,
            now_ms(),
            &self.member(from).signer,
            &self.trust,
            &rnd,
        )
        .expect("seal and sign");
        self.exchange(raw, to, bytes).await
    }

    /// Seals `body` as an envelope of `kind` about `case` from `from`'s operations authority
    /// (`<from>-IMI`: facts, checkpoints) to `to` (created now), sends it over a raw
    /// connection of `from`'s opened for it and returns the verified receipt's outcome.
    pub async fn send_operations(
        &self,
        from: NodeId,
        to: NodeId,
        kind: &str,
        case: Option<imi_protocol::CaseId>,
        body: Vec<u8>,
    ) -> imi_protocol::Outcome {
        let raw = self.raw_client(from, imi_network::DEFAULT_MAX_MESSAGE_BYTES);
        let draft = Draft {
            kind: Kind::new(kind).expect("kind"),
            step: None,
            authority: AuthorityId::new(&format!("{from}-IMI")).expect("authority"),
            to: vec![to],
            case,
            prev: vec![],
            body,
        };
        let outcome = self.send_draft(&raw, from, to, &draft).await;
        raw.stop().await;
        outcome
    }

    /// Seals a message of `kind` with `body` from `from` to `to` (created now), sends it over
    /// `raw` (a client connected as `from`) and returns the verified receipt's outcome.
    pub async fn send_body(
        &self,
        raw: &RawClient,
        from: NodeId,
        to: NodeId,
        kind: &str,
        body: Vec<u8>,
    ) -> imi_protocol::Outcome {
        let (_, bytes) = self.seal(&self.member(from).signer, kind, &[to], body, now_ms());
        self.exchange(raw, to, bytes).await
    }

    /// Sends sealed `bytes` to `to` over `raw` and returns the verified receipt's outcome.
    async fn exchange(&self, raw: &RawClient, to: NodeId, bytes: Vec<u8>) -> imi_protocol::Outcome {
        let peer = self.member(to).peer_id();
        let response = within("the receiver answers", raw.client.request(peer, bytes))
            .await
            .expect("the receiver answers with a receipt");
        self.verify_receipt(response, to).body.outcome
    }

    /// Verifies a receipt as signed by `receiver` against the trust list.
    pub fn verify_receipt(&self, bytes: Vec<u8>, receiver: NodeId) -> Receipt {
        Receipt::verify(bytes, &self.trust, receiver)
            .unwrap_or_else(|code| panic!("receipt from {receiver} does not verify: {code}"))
    }
}

/// A test-driven network endpoint.
pub struct RawClient {
    pub client: NetworkClient,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    drain: tokio::task::JoinHandle<()>,
}

impl RawClient {
    pub async fn stop(self) {
        self.cancel.cancel();
        within("raw network task stops", self.task)
            .await
            .expect("raw network task");
        within("raw event drain stops", self.drain)
            .await
            .expect("raw client drain task panicked");
    }
}

/// A running node.
pub struct Node {
    pub id: NodeId,
    engine: Option<Engine>,
    tasks: Option<EngineTasks>,
    net_task: Option<tokio::task::JoinHandle<()>>,
    cancel: CancellationToken,
    store: Arc<RocksStore>,
}

impl Node {
    pub fn engine(&self) -> &Engine {
        self.engine.as_ref().expect("engine running")
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub fn applied(&self) -> u64 {
        imi_apps::diagnostics::applied(self.store()).expect("diagnostic_applied")
    }

    pub fn queue_depth(&self, peer: NodeId) -> i64 {
        self.engine().queue_depth(peer)
    }

    pub fn rows(&self, col: Column) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.store.range(col, &[], None, usize::MAX).expect("range")
    }

    pub fn count(&self, col: Column) -> usize {
        self.rows(col).len()
    }

    pub fn inbox_record(&self, from: NodeId, id: &MessageId) -> Option<InboxRecord> {
        self.store
            .get(keys::INBOX, &keys::node_msg_key(from, id))
            .expect("get inbox")
            .map(|v| InboxRecord::decode(&v).expect("inbox record decodes"))
    }

    pub fn retries(&self, peer: NodeId) -> u64 {
        self.engine()
            .metrics()
            .retries
            .get_or_create(&PeerLabel {
                peer: peer.to_string(),
            })
            .get()
    }

    pub fn backoff_seconds(&self, peer: NodeId) -> f64 {
        self.engine()
            .metrics()
            .backoff_seconds
            .get_or_create(&PeerLabel {
                peer: peer.to_string(),
            })
            .get()
    }

    pub fn delivered(&self, peer: NodeId) -> u64 {
        self.engine()
            .metrics()
            .delivered
            .get_or_create(&PeerLabel {
                peer: peer.to_string(),
            })
            .get()
    }

    /// Sends one diagnostic to `to` and waits for its verified receipt.
    pub async fn send_diag(&self, to: &[NodeId]) -> (MessageId, Vec<imi_engine::DeliveryReport>) {
        let (id, rx) = self
            .engine()
            .send_watched(diag_draft(self.id, to))
            .await
            .expect("send_watched");
        let mut reports = Vec::new();
        for r in rx {
            reports.push(
                within("delivery report", r)
                    .await
                    .expect("delivery report sender dropped"),
            );
        }
        (id, reports)
    }

    /// Sends one diagnostic to `to` and asserts every recipient accepted it.
    pub async fn send_diag_accepted(&self, to: &[NodeId]) -> MessageId {
        let (id, reports) = self.send_diag(to).await;
        for r in reports {
            assert_eq!(
                r.receipt.outcome,
                Outcome::Accepted,
                "{} → {}: {:?}",
                self.id,
                r.to,
                r.receipt
            );
            assert_eq!(r.receipt.message_id, Some(id));
        }
        id
    }

    /// Stops the node: cancels, waits for every engine task and the committer, the network
    /// task, and for the store to be released (closed) so its directory can be reopened.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        // The committer exits when the last handle to the engine is gone.
        drop(self.engine.take());
        within(
            "engine tasks and committer stop (is an Engine clone still alive?)",
            self.tasks.take().expect("tasks").join(),
        )
        .await;
        within(
            "network task stops",
            self.net_task.take().expect("net task"),
        )
        .await
        .expect("network task panicked");
        let store = self.store.clone();
        drop(self);
        wait_until("the store to be released by the engine", || {
            Arc::strong_count(&store) == 1
        })
        .await;
        drop(store);
    }
}

impl Drop for Node {
    /// A node dropped without [`Node::stop`] (a failing test) still stops its tasks.
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The signed header's step of a request body (the body's transition), as an honest sender
/// names it.
pub fn step_of(body: &[u8]) -> Option<Kind> {
    imi_domain::message::decode_message(body)
        .and_then(|m| Kind::new(m.step.transition.kind().as_str()).ok())
}

pub fn diag_draft(from: NodeId, to: &[NodeId]) -> Draft {
    Draft {
        kind: Kind::new(Kind::DIAGNOSTIC).expect("kind"),
        step: None,
        authority: AuthorityId::new(&format!("{from}-OPS")).expect("authority"),
        to: to.to_vec(),
        case: None,
        prev: vec![],
        body: b"ping".to_vec(),
    }
}

/// The commit thread of an engine, held by a local step that waits (see [`hold_commits`]).
pub struct HeldCommits {
    release: std::sync::mpsc::SyncSender<()>,
    holder: tokio::task::JoinHandle<Result<imi_engine::LocalOutcome, imi_engine::EngineError>>,
}

impl HeldCommits {
    /// Lets the commit thread go on, and waits for the holding step to finish.
    pub async fn release(self) {
        self.release.send(()).expect("the holding step waits");
        within("the holding step", self.holder)
            .await
            .expect("the holding step panicked")
            .expect("the holding step");
    }
}

/// Holds `engine`'s commit thread inside a local step until [`HeldCommits::release`]: the
/// commits queued meanwhile form the next group together. Returns once the thread is held.
pub async fn hold_commits(engine: &Engine) -> HeldCommits {
    let (release, hold) = std::sync::mpsc::sync_channel::<()>(1);
    let (held_tx, held) = tokio::sync::oneshot::channel::<()>();
    let e = engine.clone();
    let holder = tokio::spawn(async move {
        e.local_step(
            None,
            Box::new(move |_, _| {
                let _ = held_tx.send(());
                let _ = hold.recv_timeout(TIMEOUT);
                Ok(imi_engine::LocalOutcome {
                    write: false,
                    result: Vec::new(),
                })
            }),
        )
        .await
    });
    within("the commit thread to be held", held)
        .await
        .expect("the holding step ran");
    HeldCommits { release, holder }
}
