//! The engine handle: starting the kernel, sending, local actions, checkpoints, periodic
//! jobs, and the [`Application`] trait through which applications plug in.
//!
//! An application declares the message kinds it handles and sends, whether its traffic is
//! logged, the columns it owns and its periodic jobs; the engine builds its routing table,
//! spawns the jobs on its task tracker and joins them at shutdown.
use crate::apply::{Inbound, LocalFn, LocalOutcome, Route, Routes, Txn};
use crate::commit;
use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::keys;
use crate::metrics::Metrics;
use crate::shared::{DeliveryReport, PeerProtocol, Shared};
use crate::trust::{Identity, allowed_peers, peer_map};
use futures::future::BoxFuture;
use imi_network::{NetworkClient, NetworkEvent};
use imi_protocol::{
    Clock, Draft, Header, MessageId, NodeId, RejectCode, SealRandomness, TrustList,
};
use imi_store::{Column, Durability, ReadStore, Store, WriteBatch};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What a message *means* is decided by an application. The kernel verifies, decrypts and
/// de-duplicates; the application validates the content and writes its effects into a
/// [`Txn`], which the kernel commits atomically with the inbox record and log leaves.
pub trait Application: Send + Sync + 'static {
    /// A short name for logs.
    fn name(&self) -> &'static str;
    /// The message kinds this application handles when they arrive (constants of
    /// [`imi_protocol::Kind`]).
    fn kinds(&self) -> &'static [&'static str] {
        &[]
    }
    /// The kinds it sends without handling them here (e.g. fact reports a member node sends
    /// to the Commission node).
    fn sends(&self) -> &'static [&'static str] {
        &[]
    }
    /// Whether envelopes and receipts of its kinds get leaves in the transparency log.
    fn logged(&self) -> bool {
        true
    }
    /// The store columns it owns (the node opens the store with these and the kernel's).
    fn columns(&self) -> &'static [Column] {
        &[]
    }
    /// Its periodic jobs, spawned by the engine and joined at shutdown.
    fn jobs(&self) -> Vec<PeriodicJob> {
        Vec::new()
    }
    /// Validates and applies a message of one of its kinds. Runs on the commit thread, one
    /// message at a time: keep it short and do no I/O besides `txn`. An `Err` discards
    /// every write in `txn` and becomes a signed `rejected` receipt.
    fn apply(&self, msg: &Inbound<'_>, txn: &mut Txn<'_>) -> Result<(), RejectCode> {
        let _ = (msg, txn);
        Err(RejectCode::UnknownKind)
    }
    /// Called once an accepted message of its kinds is durable (metrics, wake-ups).
    fn committed(&self, header: &Header) {
        let _ = header;
    }
    /// Registers its metrics.
    fn register_metrics(&self, registry: &mut Registry) {
        let _ = registry;
    }
}

/// Why a periodic job's run failed (it is logged, and the job runs again next time).
pub type JobError = Box<dyn std::error::Error + Send + Sync>;

/// A periodic job's body: runs once against the engine.
pub type JobFn = Arc<dyn Fn(Engine) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync>;

/// A job the engine runs on a schedule (and on demand, [`Engine::run_job`]).
#[derive(Clone)]
pub struct PeriodicJob {
    /// Its name (`[engine] job_interval_ms` keys use it).
    pub name: &'static str,
    /// The default interval.
    pub every: Duration,
    /// Whether it also runs once right at start.
    pub at_start: bool,
    /// The body.
    pub run: JobFn,
}

impl PeriodicJob {
    /// A job from an async closure.
    pub fn new<F, Fut, E>(name: &'static str, every: Duration, at_start: bool, f: F) -> Self
    where
        F: Fn(Engine) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), E>> + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        Self {
            name,
            every,
            at_start,
            run: Arc::new(move |e| {
                let fut = f(e);
                Box::pin(async move { fut.await.map_err(|e| Box::new(e) as JobError) })
            }),
        }
    }
}

/// How often the kernel dials listed peers it is not connected to.
pub const REDIAL_INTERVAL: Duration = Duration::from_secs(10);

/// Bodies up to this size are sealed on the calling worker, larger ones on a blocking thread.
const INLINE_SEAL_BYTES: usize = 64 * 1024;

/// The registered applications.
#[derive(Clone, Default)]
pub struct Applications(Vec<Arc<dyn Application>>);

impl Applications {
    /// From a list; the first application to claim a kind handles it.
    pub fn new(apps: Vec<Arc<dyn Application>>) -> Self {
        Self(apps)
    }
    /// The kernel's columns and every application's, each once.
    pub fn columns(&self) -> Vec<Column> {
        let mut cols: Vec<Column> = keys::ALL.to_vec();
        for a in &self.0 {
            for c in a.columns() {
                if !cols.contains(c) {
                    cols.push(c);
                }
            }
        }
        cols
    }
    /// Registers every application's metrics.
    pub fn register_metrics(&self, registry: &mut Registry) {
        for a in &self.0 {
            a.register_metrics(registry);
        }
    }
    fn routes(&self) -> Routes {
        let mut routes = Routes::default();
        for app in &self.0 {
            for kind in app.kinds() {
                let a = app.clone();
                let c = app.clone();
                routes.insert(
                    kind,
                    Route {
                        apply: Some(Arc::new(move |m, t| a.apply(m, t))),
                        committed: Some(Arc::new(move |h| c.committed(h))),
                        logged: app.logged(),
                    },
                );
            }
            for kind in app.sends() {
                routes.insert(
                    kind,
                    Route {
                        apply: None,
                        committed: None,
                        logged: app.logged(),
                    },
                );
            }
        }
        routes
    }
    fn jobs(&self) -> Vec<PeriodicJob> {
        self.0.iter().flat_map(|a| a.jobs()).collect()
    }
}

/// What the engine starts with.
pub struct Start {
    /// This node's keys.
    pub identity: Identity,
    /// The trust list in force ([`crate::settle_trust_list`]).
    pub trust: TrustList,
    /// The store, opened with [`Applications::columns`].
    pub store: Arc<dyn Store>,
    /// The network task's client.
    pub network: NetworkClient,
    /// The network task's events.
    pub events: mpsc::Receiver<NetworkEvent>,
    /// The applications.
    pub apps: Applications,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Settings.
    pub config: EngineConfig,
}

/// A running engine. Cloning shares it.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
    jobs: Arc<Vec<PeriodicJob>>,
}

/// The engine's tasks (inbound loop, delivery tasks, periodic jobs) and its committer
/// thread, to join at shutdown.
pub struct EngineTasks {
    tracker: TaskTracker,
    committer: Option<std::thread::JoinHandle<()>>,
    commit_tx: mpsc::Sender<commit::Job>,
}

impl EngineTasks {
    /// Waits for every task to stop (after the cancel token fired; a job run in progress
    /// finishes first), then for the committer to commit what is queued and exit.
    pub async fn join(mut self) {
        self.tracker.close();
        self.tracker.wait().await;
        // Jobs queued before this one are committed and answered; the thread then exits.
        let _ = self.commit_tx.send(commit::Job::Stop).await;
        if let Some(c) = self.committer.take() {
            let _ = tokio::task::spawn_blocking(move || c.join()).await;
        }
    }
}

impl Engine {
    /// The kernel's own columns (applications add theirs: [`Applications::columns`]).
    pub fn columns() -> &'static [Column] {
        keys::ALL
    }

    /// The kernel's columns that should carry a bloom filter ([`keys::FILTERED`]).
    pub fn filtered_columns() -> &'static [Column] {
        keys::FILTERED
    }

    /// The kernel's columns whose values all go to blob files ([`keys::BLOBS`]).
    pub fn blob_columns() -> &'static [Column] {
        keys::BLOBS
    }

    /// Starts the engine: the committer thread, the inbound loop, a delivery task per
    /// member and every periodic job. Everything stops when `cancel` fires; then
    /// [`EngineTasks::join`] waits for it.
    pub fn start(
        start: Start,
        cancel: CancellationToken,
    ) -> Result<(Engine, EngineTasks), EngineError> {
        let Start {
            identity,
            trust,
            store,
            network,
            events,
            apps,
            clock,
            config,
        } = start;
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
        let peers = peer_map(&trust, clock.now_ms());
        let routes = apps.routes();
        let stop_tx = commit_tx.clone();
        let fresh = Arc::new(crate::fresh::FreshEnvelopes::new(
            config.fresh_envelope_bytes,
        ));
        let tails = Arc::new(crate::tail::Tails::new(wake.keys().copied()));
        let shared = Arc::new(Shared {
            me,
            identity: identity.clone(),
            trust: RwLock::new(Arc::new(trust)),
            peers: RwLock::new(peers),
            connected: RwLock::default(),
            protocols: Mutex::default(),
            store: store.clone(),
            clock,
            config: config.clone(),
            metrics: metrics.clone(),
            network,
            commit_tx,
            routes: routes.clone(),
            wake: wake.clone(),
            watchers: Mutex::new(HashMap::new()),
            fresh: fresh.clone(),
            tails: tails.clone(),
        });
        let wake_for_committer = wake.clone();
        let log_state = crate::log::LogState::load(store.as_ref())?;
        let mut committer = commit::Committer {
            log: log_state,
            linger: Duration::from_micros(config.group_commit_linger_us),
            linger_target: config.group_commit_target.max(1),
            store,
            routes,
            signer: identity.signer.clone(),
            metrics,
            max_group: config.max_commit_group.max(1),
            next_seq: HashMap::new(),
            config: config.clone(),
            fresh,
            tails,
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
        let mut jobs = vec![PeriodicJob::new(
            "redial",
            REDIAL_INTERVAL,
            true,
            |e: Engine| async move {
                // Keys that expired since the last run leave the allow list.
                e.refresh_allow_list().await?;
                // A peer that was down (or started after us) is reconnected without waiting
                // for traffic, so readiness recovers by itself.
                e.shared.network.dial_all().await?;
                Ok::<(), EngineError>(())
            },
        )];
        jobs.push(PeriodicJob::new(
            "prune",
            crate::prune::PRUNE_INTERVAL,
            false,
            |e: Engine| async move {
                let before = e
                    .now_ms()
                    .saturating_sub(crate::prune::UNLOGGED_RETENTION_MS);
                e.prune_unlogged(before).await.map(|_| ())
            },
        ));
        jobs.extend(apps.jobs());
        let engine = Engine {
            shared: shared.clone(),
            jobs: Arc::new(jobs),
        };
        let tracker = TaskTracker::new();
        tracker.spawn(crate::inbound::run(shared.clone(), events, cancel.clone()));
        for node in wake.keys() {
            tracker.spawn(crate::delivery::run(shared.clone(), *node, cancel.clone()));
        }
        for job in engine.jobs.iter() {
            let every = match config.job_interval_ms.get(job.name) {
                Some(0) => continue,
                Some(ms) => Duration::from_millis(*ms),
                None => job.every,
            };
            tracker.spawn(schedule(engine.clone(), job.clone(), every, cancel.clone()));
        }
        Ok((
            engine,
            EngineTasks {
                tracker,
                committer: Some(committer),
                commit_tx: stop_tx,
            },
        ))
    }

    /// Runs the periodic job `name` now (e.g. `imi-node audit checkpoint`, or a test that
    /// turned the job's schedule off).
    pub async fn run_job(&self, name: &str) -> Result<(), JobError> {
        let job = self
            .jobs
            .iter()
            .find(|j| j.name == name)
            .ok_or_else(|| EngineError::Invalid(format!("no periodic job {name}")))?;
        (job.run)(self.clone()).await
    }

    /// The names of the periodic jobs.
    pub fn job_names(&self) -> Vec<&'static str> {
        self.jobs.iter().map(|j| j.name).collect()
    }

    /// Signs a checkpoint of the log as it is now (C2SP signed note, origin
    /// `imi-federation.invalid/log/<node>`) and stores it; returns the note. If the log has
    /// not grown since the last checkpoint, returns that one.
    pub async fn checkpoint(&self) -> Result<String, EngineError> {
        let store = self.shared.store.clone();
        let signer = self.shared.identity.signer.clone();
        let (note, batch) = tokio::task::spawn_blocking(move || {
            crate::checkpoint::current(store.as_ref(), &signer)
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))??;
        if let Some(batch) = batch {
            self.write(batch, Durability::Sync).await?;
            tracing::info!("log checkpoint signed");
        }
        Ok(note)
    }

    /// Signs a C2SP note `body` with this node's signing key under the key name `name` (a
    /// statement about its log, such as a case's head in an evidence bundle).
    pub fn sign_note(&self, body: &str, name: &str) -> String {
        imi_audit::note::SignedNote::sign(body, name, &self.shared.identity.signer).text()
    }

    /// Deletes the envelopes of unlogged kinds (witness traffic) received or sent before
    /// `before`, with their inbox records and receipts ([`crate::prune`]; the `prune` job
    /// runs it for what is older than [`crate::prune::UNLOGGED_RETENTION_MS`]).
    pub async fn prune_unlogged(
        &self,
        before: imi_protocol::Timestamp,
    ) -> Result<crate::prune::PruneReport, EngineError> {
        let (store, routes, max) = (
            self.shared.store.clone(),
            self.shared.routes.clone(),
            self.shared.config.max_envelope_bytes,
        );
        let (batch, report) = tokio::task::spawn_blocking(move || {
            crate::prune::plan(store.as_ref(), &routes, before, max)
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))??;
        if report != crate::prune::PruneReport::default() {
            self.write(batch, Durability::Buffered).await?;
            tracing::info!(
                inbound = report.inbound,
                outbound = report.outbound,
                "pruned witness traffic audit does not need"
            );
        }
        Ok(report)
    }

    /// Writes a batch through the committer (so it is ordered with every other write).
    pub async fn write(
        &self,
        batch: WriteBatch,
        durability: Durability,
    ) -> Result<(), EngineError> {
        self.shared
            .commit(|reply| commit::Job::Write {
                batch,
                durability,
                leaves: Vec::new(),
                reply,
            })
            .await
    }

    /// The node's clock, now.
    pub fn now_ms(&self) -> imi_protocol::Timestamp {
        self.shared.clock.now_ms()
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
        let refused = |code: &str, e: EngineError| {
            s.metrics
                .trust_list_refused
                .get_or_create(&crate::metrics::CodeLabel { code: code.into() })
                .inc();
            tracing::error!(code, error = %e, "refused a trust list");
            e
        };
        let newer = TrustList::verify(&bytes, governance_public)
            .map_err(|e| refused("bad_signature", e.into()))?;
        let held = s.trust();
        if let Err(e) = held.check_update(&newer) {
            tracing::error!(
                offered = newer.version,
                held = held.version,
                "a trust list not newer than the one in force was offered: a rollback or a replay"
            );
            return Err(refused("not_newer", e.into()));
        }
        if newer.member(s.me).is_none_or(|m| {
            !m.signing_keys
                .iter()
                .any(|k| k.public == s.identity.signer.public())
        }) {
            return Err(refused(
                "not_listed",
                EngineError::Invalid("the new trust list does not list this node's key".into()),
            ));
        }
        let mut batch = imi_store::WriteBatch::new();
        batch.put(keys::META, keys::TRUST_LIST_KEY.to_vec(), bytes);
        s.commit(|reply| commit::Job::Write {
            batch,
            durability: imi_store::Durability::Sync,
            leaves: Vec::new(),
            reply,
        })
        .await?;
        let version = newer.version;
        *s.trust
            .write()
            .map_err(|_| EngineError::Internal("poisoned".into()))? = Arc::new(newer);
        self.set_allow_list().await?;
        tracing::info!(version, "accepted a newer trust list");
        Ok(version)
    }

    /// Recomputes the allow list from the trust list at the clock's now and, if a key
    /// expired (or was added) since, hands it to the network (which disconnects peers that
    /// left it). Runs with every `redial`.
    pub async fn refresh_allow_list(&self) -> Result<(), EngineError> {
        let s = &self.shared;
        let now = s.clock.now_ms();
        let fresh = peer_map(&s.trust(), now);
        let same = s
            .peers
            .read()
            .map_err(|_| EngineError::Internal("poisoned".into()))?
            .eq(&fresh);
        if !same {
            self.set_allow_list().await?;
        }
        Ok(())
    }

    async fn set_allow_list(&self) -> Result<(), EngineError> {
        let s = &self.shared;
        let now = s.clock.now_ms();
        let trust = s.trust();
        *s.peers
            .write()
            .map_err(|_| EngineError::Internal("poisoned".into()))? = peer_map(&trust, now);
        s.network
            .set_allowed(allowed_peers(&trust, s.me, now, &s.config.peer_addresses))
            .await?;
        Ok(())
    }

    /// The network client.
    pub fn network(&self) -> &NetworkClient {
        &self.shared.network
    }

    /// Read access to the node's store, for applications (every write goes through the
    /// committer: [`Engine::local_step`], [`Engine::write`]). The HTTP API never takes it:
    /// it calls the applications.
    pub fn reader(&self) -> Arc<dyn ReadStore> {
        self.shared.store.clone()
    }

    /// Makes deleted data of `cols` physically gone (flush and compaction to the last
    /// level; slow): erasure under the retention rules.
    pub async fn purge(&self, cols: &'static [Column]) -> Result<(), EngineError> {
        let store = self.shared.store.clone();
        tokio::task::spawn_blocking(move || store.purge(cols))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))??;
        Ok(())
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
    /// the latest committed state; if it refuses ([`EngineError::Refused`]) nothing is
    /// written or sent. Returns once everything is durable.
    pub async fn local_step(
        &self,
        draft: Option<Draft>,
        apply: LocalFn,
    ) -> Result<LocalOutcome, EngineError> {
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
    ) -> Result<(LocalOutcome, Vec<oneshot::Receiver<DeliveryReport>>), EngineError> {
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
        let sent = matches!(&result, Ok(o) if o.write);
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

    /// Checks the recipients, then seals and signs `draft` (with the signed header and the
    /// hash of the bytes for the log leaf, so that the commit thread need not decode them);
    /// refuses an envelope over the size limit.
    async fn seal(
        &self,
        draft: Draft,
        created: u64,
    ) -> Result<(MessageId, Vec<u8>, commit::SignedHeader), EngineError> {
        let s = &self.shared;
        let body_len = draft.body.len();
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
        let seal = move || {
            let rnd = SealRandomness::random(draft.to.len());
            let sealed = imi_protocol::seal_and_sign_parts(&draft, created, &signer, &trust, &rnd)?;
            // Test builds check the header and hash against the bytes' own decoding.
            #[cfg(debug_assertions)]
            {
                let env = imi_protocol::Envelope::parse(sealed.bytes.clone(), usize::MAX).map_err(
                    |c| EngineError::Internal(format!("own envelope does not parse: {c}")),
                )?;
                if env.header() != &sealed.header || env.hash() != sealed.hash {
                    return Err(EngineError::Internal(
                        "own envelope decodes to another header or hash".into(),
                    ));
                }
            }
            let signed = commit::SignedHeader {
                header: Box::new(sealed.header),
                hash: sealed.hash,
            };
            Ok::<_, EngineError>((rnd.id, sealed.bytes, signed))
        };
        // A small envelope (the common case: 70–130 µs of cryptography) is sealed here, on the
        // worker: a blocking thread would cost two wake-ups, more than the sealing itself at
        // a low rate. A large body (a file) goes to a blocking thread.
        let (id, bytes, signed) = if body_len <= INLINE_SEAL_BYTES {
            seal()?
        } else {
            tokio::task::spawn_blocking(seal)
                .await
                .map_err(|e| EngineError::Internal(e.to_string()))??
        };
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
    /// outbox in one commit with clearing its row, unless a newer value replaced the row
    /// meanwhile (that one goes next round): a row is sent once, also across a crash. At
    /// most 256 rows per call; returns how many were sent.
    pub async fn send_pending(
        &self,
        col: imi_store::Column,
        kind: &str,
        route: impl Fn(&[u8]) -> Option<(NodeId, Option<imi_protocol::CaseId>)>,
    ) -> Result<usize, EngineError> {
        let kind = imi_protocol::Kind::new(kind)?;
        let authority = self.operations_authority()?;
        let rows = self.shared.store.scan_prefix(col, &[], 256)?;
        let mut sent = 0;
        for (key, value) in rows {
            let Some((to, case)) = route(&key) else {
                continue;
            };
            let draft = Draft {
                kind: kind.clone(),
                step: None,
                authority: authority.clone(),
                to: vec![to],
                case,
                prev: Vec::new(),
                body: value.clone(),
            };
            self.send_and_clear(draft, col, key, value).await?;
            sent += 1;
        }
        Ok(sent)
    }

    /// Sends `draft` through the durable outbox and deletes the row `key` of `col` if it
    /// still holds `value`, in one commit: one fsync instead of two, and a crash between
    /// sending and clearing can no longer send the row's envelope twice. For rows that queue
    /// something to send (pending facts, grants, directory batches).
    pub async fn send_and_clear(
        &self,
        draft: Draft,
        col: imi_store::Column,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> Result<(), EngineError> {
        self.send_and_clear_all(draft, col, vec![(key, value)])
            .await
    }

    /// [`Engine::send_and_clear`] for several rows whose contents `draft` carries together:
    /// each `(key, value)` row of `col` is deleted if it still holds its value.
    pub async fn send_and_clear_all(
        &self,
        draft: Draft,
        col: imi_store::Column,
        rows: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(), EngineError> {
        self.local_step(Some(draft), clear_unchanged(col, rows))
            .await?;
        Ok(())
    }

    /// Deletes the row `key` of `col` if it still holds `value` (a row sent from an outbox
    /// column is cleared unless a newer value replaced it meanwhile; that one goes next).
    pub async fn clear_if_unchanged(
        &self,
        col: imi_store::Column,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> Result<(), EngineError> {
        self.local_step(None, clear_unchanged(col, vec![(key, value)]))
            .await?;
        Ok(())
    }

    /// The node's own operations authority, `<CC>-IMI`, in whose name it sends the traffic
    /// no competent authority sends (facts, checkpoints, directory updates).
    pub fn operations_authority(&self) -> Result<imi_protocol::AuthorityId, EngineError> {
        Ok(imi_protocol::AuthorityId::new(&format!(
            "{}-IMI",
            self.node()
        ))?)
    }

    /// Outbox entries waiting for `peer`.
    pub fn queue_depth(&self, peer: NodeId) -> i64 {
        self.shared
            .metrics
            .queue_depth
            .get_or_create(&Metrics::peer(peer))
            .get()
    }

    /// Members other than this node.
    pub fn peers(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.shared.wake.keys().copied().collect();
        v.sort();
        v
    }

    /// The members that witness this node's log (`engine.witnesses`): the ones that
    /// follow this node in the ring of member ids, sorted and wrapping round.
    pub fn witnesses(&self) -> Vec<NodeId> {
        witness_ring(self.node(), &self.peers(), self.shared.config.witnesses)
    }

    /// The IMI protocol version each member announced when it last connected, and whether
    /// this node refuses it for being below `network.min_protocol_version`. Members that
    /// have not connected since this node started are not listed.
    pub fn peer_protocols(&self) -> std::collections::BTreeMap<NodeId, PeerProtocol> {
        self.shared
            .protocols
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Which members are connected now.
    pub async fn connected(&self) -> Result<Vec<NodeId>, EngineError> {
        let peers = self.shared.network.connected_peers().await?;
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

/// A local action that deletes each row `key` of `col` that still holds its `value`.
fn clear_unchanged(col: imi_store::Column, rows: Vec<(Vec<u8>, Vec<u8>)>) -> LocalFn {
    Box::new(move |txn, _| {
        for (key, value) in rows {
            if txn.get(col, &key)?.as_deref() == Some(value.as_slice()) {
                txn.delete(col, key);
            }
        }
        Ok(LocalOutcome {
            write: true,
            result: Vec::new(),
        })
    })
}

/// The `count` members of `peers` that follow `me` in the ring of member ids (sorted as
/// text, `AT` < `BE` < … < `EU` < `FI`, wrapping round); every peer, in that order, when
/// `count` is 0 or at least their number.
pub fn witness_ring(me: NodeId, peers: &[NodeId], count: usize) -> Vec<NodeId> {
    let mut ring: Vec<NodeId> = peers.iter().copied().filter(|p| *p != me).collect();
    ring.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    ring.dedup();
    if count == 0 || count >= ring.len() {
        return ring;
    }
    let after = ring.partition_point(|p| p.as_str() < me.as_str());
    ring.rotate_left(after);
    ring.truncate(count);
    ring
}

/// Runs `job` every `every` until `cancel` fires; a run in progress finishes first.
async fn schedule(engine: Engine, job: PeriodicJob, every: Duration, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    if !job.at_start {
        // The first tick of an interval is immediate.
        tick.tick().await;
    }
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(e) = (job.run)(engine.clone()).await {
            tracing::warn!(job = job.name, error = %e, "periodic job failed");
        }
    }
    tracing::debug!(job = job.name, "periodic job stopped");
}

#[cfg(test)]
mod tests {
    use super::witness_ring;
    use imi_protocol::NodeId;

    fn ids(s: &str) -> Vec<NodeId> {
        s.split_whitespace().map(|c| c.parse().unwrap()).collect()
    }

    #[test]
    fn the_witnesses_are_the_members_after_this_one_in_the_ring() {
        let peers = ids("FR AT EU DE BE");
        assert_eq!(witness_ring("CZ".parse().unwrap(), &peers, 2), ids("DE EU"));
        // Wrapping round past the last id.
        assert_eq!(
            witness_ring("FR".parse().unwrap(), &ids("AT BE DE EU"), 3),
            ids("AT BE DE")
        );
        assert_eq!(
            witness_ring("EU".parse().unwrap(), &ids("AT BE DE FR"), 2),
            ids("FR AT")
        );
        // Fewer members than asked, or 0: every other member, sorted; never itself.
        assert_eq!(
            witness_ring("AT".parse().unwrap(), &ids("AT DE BE"), 8),
            ids("BE DE")
        );
        assert_eq!(
            witness_ring("AT".parse().unwrap(), &ids("FR DE BE"), 0),
            ids("BE DE FR")
        );
        assert!(witness_ring("AT".parse().unwrap(), &[], 3).is_empty());
        // Every member witnesses exactly as many logs as witness its own.
        let all = ids("AT BE BG CY CZ DE DK EE EL ES EU FI FR");
        for k in 1..all.len() {
            let mut witnessed = std::collections::BTreeMap::<NodeId, usize>::new();
            for me in &all {
                let w = witness_ring(*me, &all, k);
                assert_eq!(w.len(), k);
                for x in w {
                    *witnessed.entry(x).or_default() += 1;
                }
            }
            assert!(witnessed.values().all(|n| *n == k), "{k}: {witnessed:?}");
        }
    }
}
