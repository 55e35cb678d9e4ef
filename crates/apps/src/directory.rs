//! The replicated authority directory.
//!
//! Every node keeps a full replica of every country's authorities in the `directory` column
//! (authority id → the newest [`DirectoryUpdate`] about it, canonical JSON) and serves searches
//! from an in-memory tantivy index ([`imi_directory::SearchIndex`]) built from the replica at
//! the node's first search and kept current from then on (a node nobody searches, such as
//! most of a simulation's, never pays the index's memory). Only the home node changes its
//! country's authorities:
//!
//! 1. A change (create, update, retire; from the API, an import, or the seed at first start)
//!    is a local step on the commit thread: it takes the country's next sequence number
//!    (`directory_meta` `seq`), writes the entry, and queues the batch for every peer
//!    (`directory_out` `pub/<seq>`) in the same commit. Nothing is half-done across a crash.
//! 2. The publisher (job `directory-publish`, 1 s, and right after every change) sends each
//!    queued batch as one `imi.directory.update` envelope to every other member, through the
//!    durable outboxes, then clears the row. A node that is down gets it when it is back.
//! 3. A receiving node checks the batch ([`UpdateBatch::decode`]: the signer is the home node
//!    of every record; else the signed receipt says `not_home_node` and nothing changes),
//!    applies each update by the replica rule ([`imi_directory::Entry::supersedes`]) and
//!    records the covered stretch (`directory_meta` `cov/<CC>`), so duplicated, late and
//!    reordered deliveries converge to byte-identical replicas.
//! 4. The sync job (`directory-sync`, 5 min; and [`DirectoryApp::bootstrap`] at start) asks each member "I have you up to
//!    n" (`imi.directory.sync`); the member queues an answer (`directory_out` `sync/<CC>`,
//!    one row per asker, so repeated asks collapse) and the publisher sends the newest update
//!    of each of its authorities changed after n, in batches of at most
//!    [`imi_directory::update::MAX_BATCH_UPDATES`]. A node that was wiped, restored or new
//!    catches up this way, not by a re-send of everything each time.
//!
//! Directory traffic is not logged in the transparency log (it is public reference data,
//! not case traffic) and its envelopes are pruned after 7 days like the witnesses'.

use crate::AppError;
use imi_directory::update::{KIND_SYNC, KIND_UPDATE, MAX_BATCH_UPDATES};
use imi_directory::{
    DirectoryUpdate, Entry, Hits, SearchError, SearchIndex, SearchQuery, SyncRequest, UpdateBatch,
};
use imi_domain::{Authority, Directory, Vocabulary};
use imi_engine::{Application, Engine, Inbound, LocalOutcome, PeriodicJob, Refusal, Txn};
use imi_protocol::{AuthorityId, Draft, Header, Kind, MessageId, NodeId, RejectCode};
use imi_store::{Column, ReadStore};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::time::Duration;

pub use imi_directory::update::Coverage;

/// Authority id → the newest update about it (canonical JSON).
pub const DIRECTORY: Column = "directory";
/// `seq` → this node's last sequence number (8 bytes, big-endian); `cov/<CC>` → the
/// [`Coverage`] of country CC (JSON).
pub const DIRECTORY_META: Column = "directory_meta";
/// `pub/<seq>` → a batch to send to every member; `sync/<CC>` → the mark CC asked from.
pub const DIRECTORY_OUT: Column = "directory_out";
/// The directory's columns.
pub const COLUMNS: &[Column] = &[DIRECTORY, DIRECTORY_META, DIRECTORY_OUT];
/// How often queued batches and sync answers are sent (they are also sent right after a
/// local change).
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);
/// How often a node asks every member for what it missed (and once at start).
pub const SYNC_INTERVAL: Duration = Duration::from_secs(300);

const SEQ_KEY: &[u8] = b"seq";

fn cov_key(country: NodeId) -> Vec<u8> {
    format!("cov/{country}").into_bytes()
}

fn pub_key(seq: u64) -> Vec<u8> {
    let mut k = b"pub/".to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn sync_key(asker: NodeId) -> Vec<u8> {
    format!("sync/{asker}").into_bytes()
}

/// The directory a node's services read: a snapshot that changes as updates apply.
#[derive(Debug, Clone, Default)]
pub struct SharedDirectory(Arc<RwLock<Arc<Directory>>>);

impl SharedDirectory {
    /// The directory as it is now.
    pub fn snapshot(&self) -> Arc<Directory> {
        self.0
            .read()
            .map(|d| d.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn change(&self, f: impl FnOnce(&mut Directory)) {
        let mut guard = self.0.write().unwrap_or_else(|p| p.into_inner());
        let mut next = (**guard).clone();
        f(&mut next);
        *guard = Arc::new(next);
    }
}

impl From<Directory> for SharedDirectory {
    fn from(d: Directory) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(d))))
    }
}

impl From<Arc<Directory>> for SharedDirectory {
    fn from(d: Arc<Directory>) -> Self {
        Self(Arc::new(RwLock::new(d)))
    }
}

/// What one local change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The record, as of its new sequence number.
    Applied(Box<DirectoryUpdate>),
    /// The record was already exactly so: nothing written, nothing sent.
    Unchanged,
}

/// What searches and requests read: the directory in memory and its index.
struct Core {
    shared: SharedDirectory,
    vocabulary: Arc<Vocabulary>,
    /// The search index, built from `shared` at the first search ([`Core::index`]).
    index: OnceLock<SearchIndex>,
    /// Held while the index is built, and by an update that finds no index: an update is
    /// either in the snapshot the index is built from or applied to the index built.
    building: Mutex<()>,
    authorities: Gauge,
    index_builds: Counter,
}

impl Core {
    fn apply(&self, updates: &[DirectoryUpdate]) {
        if updates.is_empty() {
            return;
        }
        self.shared.change(|d| {
            for u in updates {
                if let Err(e) = d.set(u.authority.clone(), u.retired) {
                    tracing::error!(authority = %u.authority.id, error = %e, "directory entry refused in memory");
                }
            }
        });
        if let Some(index) = self.built()
            && let Err(e) = index.apply(updates.iter().map(|u| (&u.authority, u.retired)))
        {
            tracing::error!(error = %e, "directory index update failed");
        }
        self.authorities
            .set(i64::try_from(self.shared.snapshot().len()).unwrap_or(i64::MAX));
    }

    /// The index if it is built. Called after a change of `shared`: when there is no index
    /// yet, it waits for a build under way (which may have taken its snapshot before the
    /// change) to finish, and then answers for it.
    fn built(&self) -> Option<&SearchIndex> {
        if let Some(index) = self.index.get() {
            return Some(index);
        }
        let _building = self.building.lock().unwrap_or_else(|p| p.into_inner());
        self.index.get()
    }

    /// The index, built now from the directory in memory if it is not yet.
    fn index(&self) -> Result<&SearchIndex, SearchError> {
        if let Some(index) = self.index.get() {
            return Ok(index);
        }
        let _building = self.building.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(index) = self.index.get() {
            return Ok(index);
        }
        let started = std::time::Instant::now();
        let snapshot = self.shared.snapshot();
        let index = SearchIndex::build(
            self.vocabulary.clone(),
            snapshot.iter().map(|a| (a, snapshot.is_retired(&a.id))),
        )?;
        self.index_builds.inc();
        tracing::info!(
            authorities = snapshot.len(),
            ms = started.elapsed().as_millis(),
            "directory search index built"
        );
        Ok(self.index.get_or_init(|| index))
    }
}

/// Updates from other nodes, durable, waiting for the indexer thread.
#[derive(Default)]
struct Pending {
    state: Mutex<(Vec<DirectoryUpdate>, bool)>,
    wake: Condvar,
}

/// The indexer thread: takes everything pending at once (the latest update of each
/// authority), applies it to the directory in memory and the index in one commit. It keeps
/// that work off the commit thread, and many small batches cost one index commit.
fn indexer(core: Arc<Core>, pending: Arc<Pending>) {
    loop {
        let updates = {
            let mut g = pending.state.lock().unwrap_or_else(|p| p.into_inner());
            while g.0.is_empty() && !g.1 {
                g = pending.wake.wait(g).unwrap_or_else(|p| p.into_inner());
            }
            if g.0.is_empty() {
                return;
            }
            std::mem::take(&mut g.0)
        };
        // Later updates of an authority supersede earlier ones (they were applied in order).
        let mut latest: HashMap<AuthorityId, DirectoryUpdate> = HashMap::new();
        for u in updates {
            latest.insert(u.authority.id.clone(), u);
        }
        let batch: Vec<DirectoryUpdate> = latest.into_values().collect();
        core.apply(&batch);
    }
}

/// The directory application of a node.
pub struct DirectoryApp {
    me: NodeId,
    core: Arc<Core>,
    vocabulary: Arc<Vocabulary>,
    /// Updates applied by inbound messages whose commit is not yet durable.
    stash: Mutex<HashMap<MessageId, Vec<DirectoryUpdate>>>,
    pending: Arc<Pending>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    updates: Family<[(&'static str, &'static str); 1], Counter>,
    /// One [`DirectoryApp::publish`] at a time: the job (which also runs at start) and a
    /// change's own publish would otherwise read the same queued row and both send it.
    publishing: tokio::sync::Mutex<()>,
}

impl Drop for DirectoryApp {
    fn drop(&mut self) {
        {
            let mut g = self.pending.state.lock().unwrap_or_else(|p| p.into_inner());
            g.1 = true;
        }
        self.pending.wake.notify_all();
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl std::fmt::Debug for DirectoryApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryApp")
            .field("me", &self.me)
            .finish()
    }
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %e, "directory storage failed");
    Refusal::from(RejectCode::Internal)
}

impl DirectoryApp {
    /// Opens the replica stored in `store` and builds its search index.
    pub fn open(
        me: NodeId,
        vocabulary: Arc<Vocabulary>,
        store: &dyn ReadStore,
    ) -> Result<Self, AppError> {
        let app = Self::empty(me, vocabulary)?;
        app.reload(store)?;
        Ok(app)
    }

    /// An empty replica (for a store not opened yet; [`DirectoryApp::reload`] fills it).
    pub fn empty(me: NodeId, vocabulary: Arc<Vocabulary>) -> Result<Self, AppError> {
        let core = Arc::new(Core {
            shared: Directory::new().into(),
            vocabulary: vocabulary.clone(),
            index: OnceLock::new(),
            building: Mutex::new(()),
            authorities: Gauge::default(),
            index_builds: Counter::default(),
        });
        let pending = Arc::new(Pending::default());
        let thread = {
            let (core, pending) = (core.clone(), pending.clone());
            std::thread::Builder::new()
                .name("directory-index".into())
                .spawn(move || indexer(core, pending))
                .map_err(|e| AppError::Internal(e.to_string()))?
        };
        Ok(Self {
            me,
            core,
            vocabulary,
            stash: Mutex::new(HashMap::new()),
            pending,
            thread: Mutex::new(Some(thread)),
            updates: Family::default(),
            publishing: tokio::sync::Mutex::new(()),
        })
    }

    /// Reloads the in-memory directory from the stored replica (and the search index, if
    /// one is built).
    pub fn reload(&self, store: &dyn ReadStore) -> Result<(), AppError> {
        let entries = read_all(store)?;
        let mut directory = Directory::new();
        for e in &entries {
            directory
                .set(e.update.authority.clone(), e.update.retired)
                .map_err(|err| AppError::Internal(format!("stored authority: {err}")))?;
        }
        self.core.shared.change(|d| *d = directory);
        if let Some(index) = self.core.built() {
            index
                .replace_all(
                    entries
                        .iter()
                        .map(|e| (&e.update.authority, e.update.retired)),
                )
                .map_err(|e| AppError::Internal(e.to_string()))?;
        }
        self.core
            .authorities
            .set(i64::try_from(entries.len()).unwrap_or(i64::MAX));
        Ok(())
    }

    /// The directory the other services read.
    pub fn shared(&self) -> SharedDirectory {
        self.core.shared.clone()
    }

    /// This node.
    pub fn node(&self) -> NodeId {
        self.me
    }

    /// The controlled vocabularies (professions and competences).
    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocabulary
    }

    /// The replica's entry for an authority: the record, whether it is retired, its
    /// sequence number and time.
    pub fn entry(
        &self,
        store: &dyn ReadStore,
        id: &AuthorityId,
    ) -> Result<Option<Entry>, AppError> {
        Ok(store
            .get(DIRECTORY, id.as_str().as_bytes())?
            .and_then(|v| Entry::decode(&v)))
    }

    /// Searches the replica. The first search that passes [`SearchIndex::check`] builds the
    /// index (about 0.9 s for 12,500 authorities, BENCHMARKS.md); later ones use it.
    pub fn search(&self, q: &SearchQuery) -> Result<Hits, SearchError> {
        SearchIndex::check(q)?;
        self.core.index()?.search(q)
    }

    /// Whether the search index is built (it is at the first search).
    pub fn index_built(&self) -> bool {
        self.core.index.get().is_some()
    }

    /// What this replica has seen of each country's sequence.
    pub fn coverage(&self, store: &dyn ReadStore) -> Result<Vec<(NodeId, Coverage)>, AppError> {
        let mut out = Vec::new();
        for (k, v) in store.scan_prefix(DIRECTORY_META, b"cov/", 64)? {
            let country = std::str::from_utf8(k.get(4..).unwrap_or_default())
                .ok()
                .and_then(|c| c.parse().ok());
            if let (Some(c), Ok(cov)) = (country, serde_json::from_slice::<Coverage>(&v)) {
                out.push((c, cov));
            }
        }
        Ok(out)
    }

    /// This node's last sequence number.
    pub fn own_seq(store: &dyn ReadStore) -> Result<u64, AppError> {
        Ok(store
            .get(DIRECTORY_META, SEQ_KEY)?
            .map_or(0, |v| be_u64(&v)))
    }

    /// Hands durable updates from other nodes to the indexer thread.
    fn queue_for_index(&self, updates: Vec<DirectoryUpdate>) {
        {
            let mut g = self.pending.state.lock().unwrap_or_else(|p| p.into_inner());
            g.0.extend(updates);
        }
        self.pending.wake.notify_one();
    }

    /// Creates, updates or retires authorities of this node's country, as one change: each
    /// record that differs from the replica's gets the next sequence number; the batch is
    /// queued for every member in the same commit and sent at once. `retired` says, per
    /// record, whether it is retired from this change on.
    pub async fn change(
        &self,
        engine: &Engine,
        records: Vec<(Authority, bool)>,
    ) -> Result<Vec<Change>, AppError> {
        self.change_dated(engine, records, None).await
    }

    /// [`DirectoryApp::change`], dated `time_ms` instead of now (the seed's records carry
    /// time 0: a node that re-imports its seed after losing its data numbers and encodes
    /// them exactly as before).
    async fn change_dated(
        &self,
        engine: &Engine,
        records: Vec<(Authority, bool)>,
        time_ms: Option<i64>,
    ) -> Result<Vec<Change>, AppError> {
        let me = self.me;
        for (a, _) in &records {
            if a.country != me {
                return Err(AppError::Refused(Refusal::new(
                    "not_home_node",
                    format!("{me} may only change authorities of {me}, not {}", a.id),
                )));
            }
            a.validate()
                .map_err(|e| AppError::Refused(Refusal::new(e.code(), e.to_string())))?;
        }
        let mut applied = Vec::new();
        let mut changes = Vec::new();
        for chunk in records.chunks(MAX_BATCH_UPDATES) {
            let chunk = chunk.to_vec();
            let outcome = engine
                .local_step(
                    None,
                    Box::new(move |txn, ctx| {
                        let mut seq = txn.get(DIRECTORY_META, SEQ_KEY)?.map_or(0, |v| be_u64(&v));
                        let from = seq;
                        let mut out: Vec<Option<DirectoryUpdate>> = Vec::new();
                        let mut batch = Vec::new();
                        for (authority, retired) in chunk {
                            let key = authority.id.as_str().as_bytes().to_vec();
                            let old = txn.get(DIRECTORY, &key)?.and_then(|v| Entry::decode(&v));
                            if old.as_ref().is_some_and(|e| {
                                e.update.authority == authority && e.update.retired == retired
                            }) {
                                out.push(None);
                                continue;
                            }
                            seq += 1;
                            let update = DirectoryUpdate {
                                country: me,
                                seq,
                                time_ms: time_ms
                                    .unwrap_or_else(|| i64::try_from(ctx.at).unwrap_or(i64::MAX)),
                                retired,
                                authority,
                            };
                            txn.put(
                                DIRECTORY,
                                key,
                                Entry {
                                    update: update.clone(),
                                }
                                .encode(),
                            );
                            batch.push(update.clone());
                            out.push(Some(update));
                        }
                        if !batch.is_empty() {
                            txn.put(DIRECTORY_META, SEQ_KEY.to_vec(), seq.to_be_bytes().to_vec());
                            let mut cov = read_coverage(txn, me)?;
                            cov.add(from, seq);
                            txn.put(
                                DIRECTORY_META,
                                cov_key(me),
                                serde_json::to_vec(&cov).map_err(internal)?,
                            );
                            let body = UpdateBatch {
                                from,
                                to: seq,
                                updates: batch,
                            }
                            .encode();
                            txn.put(DIRECTORY_OUT, pub_key(seq), body);
                        }
                        Ok(LocalOutcome {
                            write: true,
                            result: serde_json::to_vec(&out).map_err(internal)?,
                        })
                    }),
                )
                .await?;
            let out: Vec<Option<DirectoryUpdate>> = serde_json::from_slice(&outcome.result)
                .map_err(|e| AppError::Internal(e.to_string()))?;
            for u in out {
                match u {
                    Some(u) => {
                        applied.push(u.clone());
                        changes.push(Change::Applied(Box::new(u)));
                    }
                    None => changes.push(Change::Unchanged),
                }
            }
        }
        // This node's own changes reach memory and the index at once (a coordinator sees
        // its change in the next search); other nodes' go through the indexer thread.
        self.core.apply(&applied);
        self.updates
            .get_or_create(&[("result", "published")])
            .inc_by(applied.len() as u64);
        if !applied.is_empty() {
            // Sent now; a crash before this leaves the rows for the next run of the job.
            if let Err(e) = self.publish(engine).await {
                tracing::warn!(error = %e, "directory publish deferred");
            }
        }
        Ok(changes)
    }

    /// Starts the replica from the node's directory seed file: this country's records are
    /// imported as this node's first change (when it has made none yet), and other
    /// countries' records the replica lacks are taken at sequence number 0, which any signed
    /// update of their home node supersedes (so a node can address the authorities the
    /// federation ships with before it has heard from their node). Returns (own imported,
    /// foreign preloaded).
    pub async fn bootstrap(
        &self,
        engine: &Engine,
        seed: &Directory,
    ) -> Result<(usize, usize), AppError> {
        let own: Vec<(Authority, bool)> = seed
            .iter()
            .filter(|a| a.country == self.me)
            .map(|a| (a.clone(), false))
            .collect();
        let mut imported = 0;
        if !own.is_empty() && Self::own_seq(engine.reader().as_ref())? == 0 {
            imported = self
                .change_dated(engine, own, Some(0))
                .await?
                .iter()
                .filter(|c| matches!(c, Change::Applied(_)))
                .count();
        }
        let current = self.core.shared.snapshot();
        let foreign: Vec<DirectoryUpdate> = seed
            .iter()
            .filter(|a| a.country != self.me && !current.contains(&a.id))
            .map(|a| DirectoryUpdate {
                country: a.country,
                seq: 0,
                time_ms: 0,
                retired: false,
                authority: a.clone(),
            })
            .collect();
        // Ask every member for what this node lacks, before the node serves anyone (and
        // every few minutes after, by the job). A failure here must not keep the node down.
        if let Err(e) = self.sync(engine).await {
            tracing::warn!(error = %e, "directory sync at start failed; the job asks again");
        }
        if foreign.is_empty() {
            return Ok((imported, 0));
        }
        let rows = foreign.clone();
        let outcome = engine
            .local_step(
                None,
                Box::new(move |txn, _| {
                    let mut taken = Vec::new();
                    for u in rows {
                        let key = u.authority.id.as_str().as_bytes().to_vec();
                        if txn.get(DIRECTORY, &key)?.is_none() {
                            txn.put(DIRECTORY, key, Entry { update: u.clone() }.encode());
                            taken.push(u);
                        }
                    }
                    Ok(LocalOutcome {
                        write: true,
                        result: serde_json::to_vec(&taken).map_err(internal)?,
                    })
                }),
            )
            .await?;
        let taken: Vec<DirectoryUpdate> = serde_json::from_slice(&outcome.result)
            .map_err(|e| AppError::Internal(e.to_string()))?;
        self.core.apply(&taken);
        Ok((imported, taken.len()))
    }

    /// Sends every queued batch to every member that can be sealed to now (a member without
    /// a valid HPKE key is skipped, not waited for: its sync ask brings it up to date once it
    /// has one again) and every owed sync answer to its asker; returns how many envelopes
    /// were sent.
    pub async fn publish(&self, engine: &Engine) -> Result<usize, AppError> {
        let _one_at_a_time = self.publishing.lock().await;
        let reader = engine.reader();
        let peers = reachable(engine);
        let mut sent = 0;
        for (key, value) in reader.scan_prefix(DIRECTORY_OUT, b"pub/", 64)? {
            if peers.is_empty() {
                engine.clear_if_unchanged(DIRECTORY_OUT, key, value).await?;
                continue;
            }
            // The batch and the clearing of its row in one commit: sent once, also across
            // a crash.
            let draft = Self::draft(engine, KIND_UPDATE, peers.clone(), value.clone())?;
            engine
                .send_and_clear(draft, DIRECTORY_OUT, key, value)
                .await?;
            sent += 1;
        }
        for (key, value) in reader.scan_prefix(DIRECTORY_OUT, b"sync/", 64)? {
            let asker: Option<NodeId> = std::str::from_utf8(key.get(5..).unwrap_or_default())
                .ok()
                .and_then(|c| c.parse().ok());
            let bodies = match asker.filter(|a| peers.contains(a)) {
                Some(_) => self.sync_answer(reader.as_ref(), be_u64(&value))?,
                None => Vec::new(),
            };
            let (Some(asker), Some((last, rest))) = (asker, bodies.split_last()) else {
                engine.clear_if_unchanged(DIRECTORY_OUT, key, value).await?;
                continue;
            };
            // Every batch but the last alone; the last with the clearing of the ask (a crash
            // before it answers the ask again, which the asker applies idempotently).
            for body in rest {
                engine
                    .send(Self::draft(engine, KIND_UPDATE, vec![asker], body.clone())?)
                    .await?;
                sent += 1;
            }
            let draft = Self::draft(engine, KIND_UPDATE, vec![asker], last.clone())?;
            engine
                .send_and_clear(draft, DIRECTORY_OUT, key, value)
                .await?;
            sent += 1;
        }
        Ok(sent)
    }

    /// The batches that bring a replica from `have` to this node's last sequence number:
    /// the newest update of each own authority changed after `have`, in sequence order.
    pub fn sync_answer(&self, store: &dyn ReadStore, have: u64) -> Result<Vec<Vec<u8>>, AppError> {
        let last = Self::own_seq(store)?;
        if have >= last {
            return Ok(Vec::new());
        }
        let mut newer: Vec<DirectoryUpdate> = read_country(store, self.me)?
            .into_iter()
            .map(|e| e.update)
            .filter(|u| u.country == self.me && u.seq > have)
            .collect();
        newer.sort_by_key(|u| u.seq);
        // The entries were read after the sequence number: a change committed in between
        // has a higher number than `last`, and the batch must cover it.
        let last = newer.last().map_or(last, |u| u.seq.max(last));
        let mut out = Vec::new();
        let mut from = have;
        let chunks: Vec<Vec<DirectoryUpdate>> = newer
            .chunks(MAX_BATCH_UPDATES)
            .map(<[DirectoryUpdate]>::to_vec)
            .collect();
        let n = chunks.len();
        for (i, updates) in chunks.into_iter().enumerate() {
            let to = if i + 1 == n {
                last
            } else {
                updates.last().map_or(last, |u| u.seq)
            };
            out.push(UpdateBatch { from, to, updates }.encode());
            from = to;
        }
        if out.is_empty() {
            // Everything after `have` was superseded by... nothing: an empty stretch.
            out.push(
                UpdateBatch {
                    from: have,
                    to: last,
                    updates: Vec::new(),
                }
                .encode(),
            );
        }
        Ok(out)
    }

    /// Asks every member for what this node has not seen of its country; returns how many
    /// asks were sent.
    pub async fn sync(&self, engine: &Engine) -> Result<usize, AppError> {
        let reader = engine.reader();
        let coverage: HashMap<NodeId, Coverage> =
            self.coverage(reader.as_ref())?.into_iter().collect();
        let mut sent = 0;
        for peer in reachable(engine) {
            let have = coverage.get(&peer).map_or(0, |c| c.mark);
            let body = SyncRequest {
                country: peer,
                have,
            }
            .encode();
            engine
                .send(Self::draft(engine, KIND_SYNC, vec![peer], body)?)
                .await?;
            sent += 1;
        }
        Ok(sent)
    }

    fn draft(
        engine: &Engine,
        kind: &str,
        to: Vec<NodeId>,
        body: Vec<u8>,
    ) -> Result<Draft, AppError> {
        let kind = Kind::new(kind).map_err(|e| AppError::Internal(e.to_string()))?;
        Ok(Draft {
            kind,
            step: None,
            authority: engine.operations_authority()?,
            to,
            case: None,
            prev: Vec::new(),
            body,
        })
    }

    fn apply_batch(&self, msg: &Inbound<'_>, txn: &mut Txn<'_>) -> Result<(), RejectCode> {
        let from = msg.header.from;
        let batch = UpdateBatch::decode(msg.body, from).map_err(|e| {
            self.updates.get_or_create(&[("result", "refused")]).inc();
            tracing::warn!(peer = %from, code = e.code(), "directory update refused");
            RejectCode::Application(e.code().to_owned())
        })?;
        let mut changed = Vec::new();
        for u in batch.updates {
            let key = u.authority.id.as_str().as_bytes().to_vec();
            let old = txn.get(DIRECTORY, &key)?.and_then(|v| Entry::decode(&v));
            if old.as_ref().is_none_or(|e| e.supersedes(&u)) {
                txn.put(DIRECTORY, key, Entry { update: u.clone() }.encode());
                changed.push(u);
            }
        }
        let mut cov = read_coverage(txn, from)?;
        if cov.add(batch.from, batch.to) {
            let bytes = serde_json::to_vec(&cov).map_err(|_| RejectCode::Internal)?;
            txn.put(DIRECTORY_META, cov_key(from), bytes);
        }
        if !changed.is_empty() {
            let mut stash = self.stash.lock().map_err(|_| RejectCode::Internal)?;
            stash.insert(msg.header.id, changed);
        }
        Ok(())
    }

    fn apply_sync(&self, msg: &Inbound<'_>, txn: &mut Txn<'_>) -> Result<(), RejectCode> {
        let req = SyncRequest::decode(msg.body, self.me)
            .map_err(|e| RejectCode::Application(e.code().to_owned()))?;
        txn.put(
            DIRECTORY_OUT,
            sync_key(msg.header.from),
            req.have.to_be_bytes().to_vec(),
        );
        Ok(())
    }
}

/// The members the directory talks to: every national node with an HPKE key valid at this
/// instant (the Commission node holds no directory: it receives only indicator facts).
fn reachable(engine: &Engine) -> Vec<NodeId> {
    let trust = engine.trust_list();
    let now = engine.now_ms();
    engine
        .peers()
        .into_iter()
        .filter(|p| {
            trust
                .member(*p)
                .is_some_and(|m| m.role == imi_protocol::Role::National)
                && trust.hpke_key(*p, now).is_some()
        })
        .collect()
}

/// The first key after every key that starts with `prefix` (`None`: no end).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn be_u64(v: &[u8]) -> u64 {
    v.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

fn read_coverage(txn: &Txn<'_>, country: NodeId) -> Result<Coverage, RejectCode> {
    Ok(txn
        .get(DIRECTORY_META, &cov_key(country))?
        .and_then(|v| serde_json::from_slice(&v).ok())
        .unwrap_or_default())
}

/// Every entry of the replica, ordered by authority id.
pub fn read_all(store: &dyn ReadStore) -> Result<Vec<Entry>, AppError> {
    read_prefix(store, b"")
}

/// The entries of one country (ids start with its code and a dash), ordered by id.
pub fn read_country(store: &dyn ReadStore, country: NodeId) -> Result<Vec<Entry>, AppError> {
    read_prefix(store, format!("{country}-").as_bytes())
}

fn read_prefix(store: &dyn ReadStore, prefix: &[u8]) -> Result<Vec<Entry>, AppError> {
    let mut out = Vec::new();
    let mut start: Vec<u8> = prefix.to_vec();
    let end = prefix_end(prefix);
    loop {
        let page = store.range(DIRECTORY, &start, end.as_deref(), 1024)?;
        let Some((last, _)) = page.last() else {
            break;
        };
        let mut next = last.clone();
        next.push(0);
        let full = page.len() == 1024;
        for (k, v) in page {
            match Entry::decode(&v) {
                Some(e) => out.push(e),
                None => {
                    tracing::error!(key = %String::from_utf8_lossy(&k), "unreadable directory entry")
                }
            }
        }
        if !full {
            break;
        }
        start = next;
    }
    Ok(out)
}

/// The application registered with the engine (the [`DirectoryApp`] is shared with the API).
pub struct DirectoryApplication(pub Arc<DirectoryApp>);

impl Application for DirectoryApplication {
    fn name(&self) -> &'static str {
        "directory"
    }
    fn kinds(&self) -> &'static [&'static str] {
        &[KIND_UPDATE, KIND_SYNC]
    }
    fn logged(&self) -> bool {
        false
    }
    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }
    fn jobs(&self) -> Vec<PeriodicJob> {
        let publish = self.0.clone();
        let sync = self.0.clone();
        vec![
            PeriodicJob::new(
                "directory-publish",
                PUBLISH_INTERVAL,
                true,
                move |engine: Engine| {
                    let app = publish.clone();
                    async move { app.publish(&engine).await.map(|_| ()) }
                },
            ),
            PeriodicJob::new(
                "directory-sync",
                SYNC_INTERVAL,
                false,
                move |engine: Engine| {
                    let app = sync.clone();
                    async move { app.sync(&engine).await.map(|_| ()) }
                },
            ),
        ]
    }
    fn apply(&self, msg: &Inbound<'_>, txn: &mut Txn<'_>) -> Result<(), RejectCode> {
        match msg.header.kind.as_str() {
            KIND_UPDATE => self.0.apply_batch(msg, txn),
            KIND_SYNC => self.0.apply_sync(msg, txn),
            _ => Err(RejectCode::UnknownKind),
        }
    }
    fn committed(&self, header: &Header) {
        let changed = self
            .0
            .stash
            .lock()
            .ok()
            .and_then(|mut s| s.remove(&header.id));
        if let Some(changed) = changed {
            self.0
                .updates
                .get_or_create(&[("result", "applied")])
                .inc_by(changed.len() as u64);
            self.0.queue_for_index(changed);
        }
    }
    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "imi_directory_updates",
            "Directory updates: published by this node, applied from others, refused (by result)",
            self.0.updates.clone(),
        );
        registry.register(
            "imi_directory_authorities",
            "Authorities in this node's directory replica (every country, retired included)",
            self.0.core.authorities.clone(),
        );
        registry.register(
            "imi_directory_index_builds",
            "Builds of the directory search index (once, at the node's first search)",
            self.0.core.index_builds.clone(),
        );
    }
}
