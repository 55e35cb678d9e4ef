//! Retention of personal data (IMI Regulation 1024/2012, Art. 14): a closed or withdrawn
//! case is **blocked** `block_after_days` after it ended (its data visible to no ordinary
//! user; an auditor reads it only through an explicit, logged action) and **deleted**
//! `delete_after_days` after it ended, per legal area (catalogue `[retention]`, defaults 183
//! and 1096 days). Each node applies its own schedule to its own copy.
//!
//! Deletion destroys the case's data key, its encrypted record and attachments **and the
//! stored copies of its envelopes** (whose bodies this node's HPKE key could still open) in
//! one batch with a tombstone row and a `retention` log leaf (signed into the next
//! checkpoint), then flushes and compacts the columns so that neither the key nor any
//! ciphertext remains in RocksDB's files. What stays is what proves the trail without
//! content: the log leaves (hashes and metadata of every envelope), the receipts both sides
//! signed (each naming the envelope's hash) and the case's metadata — so the case's evidence
//! bundle still verifies, with its envelopes marked erased by the signed retention leaf.
//!
//! A deleted key is never re-created: a later step or a replayed create of the case is
//! refused (`case_erased`), and the case id is also appended (fsync) to a tombstone file
//! outside the database *before* the deletion, which the node re-applies at start — so
//! restoring an older backup of the database does not bring the data back.
use crate::AppError;
use crate::requests::{CASE_FILES, CASE_KEYS, CASES, Cases};
use imi_audit::leaf::Leaf;
use imi_engine::{Application, Engine, LocalOutcome, PeriodicJob, keys};
use imi_protocol::CaseId;
use imi_protocol::dates::DAY_MS;
use imi_store::{Column, Durability, WriteBatch};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Blocked cases: case id → when (ms, BE).
pub const BLOCKED: Column = "blocked";
/// Erased cases: case id → when (ms, BE). Never removed.
pub const TOMBSTONES: Column = "tombstones";
/// When a closed case's next retention action falls due: time (ms, 8 bytes BE) ++ case id
/// → empty. Written with the case's index once it is terminal (its blocking time), moved to
/// its erasure time once it is blocked, removed once it is erased: a run reads the rows up
/// to now, not every case the node ever held. A row left behind (the case had a later step,
/// the catalogue's periods changed) is checked against the case when reached and replaced
/// by the right one. The first run of each process writes every case's row (every case
/// read once): a store written by an earlier release, restored from a backup or governed by
/// another catalogue then has them all.
pub const RETENTION_DUE: Column = "retention_due";
/// Whether this process gave every case, and every alert, its row of when it falls due.
#[derive(Debug, Default)]
pub(crate) struct DueIndexed {
    pub(crate) cases: std::sync::atomic::AtomicBool,
    pub(crate) alerts: std::sync::atomic::AtomicBool,
}

/// Rows read at a time from [`RETENTION_DUE`] and `case_index`.
const DUE_CHUNK: usize = 512;

/// The columns erasure purges: the case's key, record and files, and the stored copies of
/// its envelopes.
const PURGED: &[Column] = &[CASE_KEYS, CASES, CASE_FILES, keys::ENV_IN, keys::ENV_OUT];

/// [`TOMBSTONES`] key of the mark "erased data still in the files": written in the batch
/// that deletes a case's data, removed once the erased columns are purged. A run purges
/// once after all its erasures (a purge compacts whole columns), and a purge that a crash
/// or an error cut off is done by the next run. Not a case id (those are 16 bytes).
pub const PURGE_PENDING: &[u8] = b"purge-pending";

/// How often the retention schedule runs (the `retention` job; also once at start).
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(60);

/// The retention application: owns [`BLOCKED`], [`TOMBSTONES`] and [`RETENTION_DUE`] and
/// runs the schedule.
pub struct Retention {
    cases: Arc<Cases>,
    tombstones: Option<PathBuf>,
    metrics: RetentionMetrics,
}

/// What operators watch of retention: the backlog (cases whose blocking or erasure is due
/// and not done, as the last run left them: 0 after a run that completed) and when a run
/// last completed.
#[derive(Clone, Default)]
pub struct RetentionMetrics {
    /// `imi_retention_backlog{action="block"|"erase"}`.
    pub backlog: Family<ActionLabel, Gauge>,
    /// `imi_retention_last_success_timestamp_seconds` (the node's clock).
    pub last_success: Gauge,
}

/// The `action` label of [`RetentionMetrics::backlog`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    /// `block` or `erase`.
    pub action: String,
}

impl RetentionMetrics {
    /// The backlog gauge of `action`.
    pub fn backlog(&self, action: &str) -> i64 {
        self.backlog
            .get_or_create(&ActionLabel {
                action: action.to_owned(),
            })
            .get()
    }

    fn set_backlog(&self, block: usize, erase: usize) {
        for (action, n) in [("block", block), ("erase", erase)] {
            self.backlog
                .get_or_create(&ActionLabel {
                    action: action.to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// One run at `now`, with the gauges set from its outcome: a failed run leaves the
    /// backlog it could not clear.
    async fn run(
        &self,
        engine: &Engine,
        cases: &Cases,
        now: u64,
        tombstones: Option<&Path>,
    ) -> Result<RetentionReport, AppError> {
        match run_retention(engine, cases, now, tombstones).await {
            Ok(r) => {
                self.set_backlog(0, 0);
                self.last_success
                    .set(i64::try_from(now / 1000).unwrap_or(i64::MAX));
                Ok(r)
            }
            Err(e) => {
                if let Ok((block, erase)) = backlog(engine.reader().as_ref(), cases, now) {
                    self.set_backlog(block, erase);
                }
                tracing::error!(error = %e, "retention run failed; what is due stays due");
                Err(e)
            }
        }
    }
}

impl Retention {
    /// Retention of `cases`' data; erased case ids are also appended to `tombstones` (a file
    /// outside the database) when given.
    pub fn new(cases: Arc<Cases>, tombstones: Option<PathBuf>) -> Self {
        Self {
            cases,
            tombstones,
            metrics: RetentionMetrics::default(),
        }
    }

    /// Its metrics.
    pub fn metrics(&self) -> &RetentionMetrics {
        &self.metrics
    }

    /// One run at `now` ([`run_retention`]), the metrics set from its outcome.
    pub async fn run(&self, engine: &Engine, now: u64) -> Result<RetentionReport, AppError> {
        self.metrics
            .run(engine, &self.cases, now, self.tombstones.as_deref())
            .await
    }

    /// Re-applies the tombstone file ([`enforce_tombstones`]); 0 without one.
    pub async fn enforce_tombstones(&self, engine: &Engine) -> Result<usize, AppError> {
        match &self.tombstones {
            Some(p) => enforce_tombstones(engine, p).await,
            None => Ok(0),
        }
    }
}

impl Application for Retention {
    fn name(&self) -> &'static str {
        "retention"
    }

    fn columns(&self) -> &'static [Column] {
        &[BLOCKED, TOMBSTONES, RETENTION_DUE]
    }

    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "imi_retention_backlog",
            "Cases whose blocking or erasure is due and not done, as the last retention run left them (0 after a run that completed)",
            self.metrics.backlog.clone(),
        );
        registry.register(
            "imi_retention_last_success_timestamp_seconds",
            "When a retention run last completed (unix seconds, the node's clock)",
            self.metrics.last_success.clone(),
        );
    }

    fn jobs(&self) -> Vec<PeriodicJob> {
        let cases = self.cases.clone();
        let tombstones = self.tombstones.clone();
        let metrics = self.metrics.clone();
        vec![PeriodicJob::new(
            "retention",
            RETENTION_INTERVAL,
            true,
            move |engine: Engine| {
                let cases = cases.clone();
                let tombstones = tombstones.clone();
                let metrics = metrics.clone();
                async move {
                    let now = engine.now_ms();
                    let r = metrics
                        .run(&engine, &cases, now, tombstones.as_deref())
                        .await?;
                    if r.blocked + r.deleted + r.alerts_erased > 0 {
                        tracing::info!(
                            blocked = r.blocked,
                            deleted = r.deleted,
                            alerts = r.alerts_erased,
                            "retention run"
                        );
                    }
                    Ok::<(), AppError>(())
                }
            },
        )]
    }
}

/// What a retention run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RetentionReport {
    /// Cases blocked.
    pub blocked: usize,
    /// Cases deleted.
    pub deleted: usize,
    /// Alerts whose identity was erased (closed or past their validity).
    pub alerts_erased: usize,
}

/// Whether a case is blocked.
pub fn is_blocked(store: &dyn imi_store::ReadStore, id: &CaseId) -> Result<bool, AppError> {
    Ok(store.get(BLOCKED, id.as_bytes())?.is_some())
}

/// Whether a case was erased.
pub fn is_erased(store: &dyn imi_store::ReadStore, id: &CaseId) -> Result<bool, AppError> {
    Ok(store.get(TOMBSTONES, id.as_bytes())?.is_some())
}

/// The stored envelopes of a case: (column, key) of every `envelope_out` and
/// `envelope_in` leaf of the case in the log, found along the case's chain of leaves (not
/// by reading the whole log, which made each erasure cost a read of every leaf).
fn case_envelopes(
    store: &dyn imi_store::ReadStore,
    id: &CaseId,
) -> Result<Vec<(imi_store::Column, Vec<u8>)>, AppError> {
    let case = id.to_string();
    let mut out = Vec::new();
    for (_, leaf, _) in imi_engine::log::case_steps(store, id)? {
        if leaf.get("case") != Some(case.as_str()) {
            continue;
        }
        let Some(msg) = leaf
            .get("id")
            .and_then(|m| m.parse::<imi_protocol::MessageId>().ok())
        else {
            continue;
        };
        match (
            leaf.kind.as_str(),
            leaf.get("from").and_then(|f| f.parse().ok()),
        ) {
            ("envelope_out", _) => out.push((keys::ENV_OUT, msg.as_bytes().to_vec())),
            ("envelope_in", Some(from)) => out.push((keys::ENV_IN, keys::node_msg_key(from, &msg))),
            _ => {}
        }
    }
    Ok(out)
}

fn leaf(case: &CaseId, action: &str, at: u64) -> String {
    Leaf::new("retention", &[&case.to_string(), action, &at.to_string()]).text()
}

/// Reads the tombstone file (one case id per line).
pub fn read_tombstone_file(path: &Path) -> Result<Vec<CaseId>, AppError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(AppError::File {
            path: path.to_owned(),
            source: e,
        }),
    }
}

fn append_tombstone(path: &Path, id: &CaseId) -> Result<(), AppError> {
    let io = |e: std::io::Error| AppError::File {
        path: path.to_owned(),
        source: e,
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    writeln!(f, "{id}").map_err(io)?;
    f.sync_all().map_err(io)
}

/// Deletes one case's personal data now (tombstone file first, then the atomic
/// deletion with its log leaf, then the purge of the files).
pub async fn erase_case(
    engine: &Engine,
    id: CaseId,
    now: u64,
    tombstone_file: Option<&Path>,
) -> Result<(), AppError> {
    delete_case_data(engine, id, now, tombstone_file).await?;
    purge_pending(engine).await?;
    Ok(())
}

/// Purges the erased data still in the files, if [`PURGE_PENDING`] says there is some;
/// returns whether it did.
pub async fn purge_pending(engine: &Engine) -> Result<bool, AppError> {
    let Some(mark) = engine.reader().get(TOMBSTONES, PURGE_PENDING)? else {
        return Ok(false);
    };
    engine.purge(PURGED).await?;
    // Cleared only if no erasure set it again meanwhile (that one's data may have been
    // deleted after the purge's compaction passed it).
    engine
        .local_step(
            None,
            Box::new(move |txn, _| {
                let same = txn.get(TOMBSTONES, PURGE_PENDING)?.as_deref() == Some(&mark[..]);
                if same {
                    txn.delete(TOMBSTONES, PURGE_PENDING.to_vec());
                }
                Ok(LocalOutcome {
                    write: same,
                    result: Vec::new(),
                })
            }),
        )
        .await?;
    tracing::info!("erased data purged from the files (retention)");
    Ok(true)
}

/// The deletion part of [`erase_case`]: the tombstone file, then one atomic batch that
/// deletes the case's data, writes its tombstone and log leaf and marks a purge as due
/// ([`PURGE_PENDING`]). The bytes stay in the store's files until [`purge_pending`].
async fn delete_case_data(
    engine: &Engine,
    id: CaseId,
    now: u64,
    tombstone_file: Option<&Path>,
) -> Result<(), AppError> {
    if let Some(p) = tombstone_file {
        append_tombstone(p, &id)?;
    }
    let store = engine.reader();
    let files: Vec<Vec<u8>> = store
        .scan_prefix(CASE_FILES, id.as_bytes(), usize::MAX)?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    // The case's envelopes as stored (their bodies are encrypted to this node's HPKE key
    // or to the counterpart's): found through the log's leaves of the case.
    let envelopes = case_envelopes(store.as_ref(), &id)?;
    engine
        .local_step(
            None,
            Box::new(move |txn, _| {
                let first = txn.get(TOMBSTONES, id.as_bytes())?.is_none();
                // Erased data is blocked data: a case erased without having been blocked
                // first (one a restored backup brought back from before its blocking) is
                // blocked in the same batch, so that users no longer see it and auditors
                // are told it is erased.
                if txn.get(BLOCKED, id.as_bytes())?.is_none() {
                    txn.put(BLOCKED, id.as_bytes().to_vec(), now.to_be_bytes().to_vec());
                    txn.log(leaf(&id, "block", now));
                }
                txn.delete(CASE_KEYS, id.as_bytes().to_vec());
                txn.delete(CASES, id.as_bytes().to_vec());
                for k in files {
                    txn.delete(CASE_FILES, k);
                }
                for (col, k) in envelopes {
                    txn.delete(col, k);
                }
                if first {
                    txn.put(
                        TOMBSTONES,
                        id.as_bytes().to_vec(),
                        now.to_be_bytes().to_vec(),
                    );
                    txn.log(leaf(&id, "delete", now));
                }
                // The case id makes the mark's value differ from any earlier one.
                let mut mark = now.to_be_bytes().to_vec();
                mark.extend_from_slice(id.as_bytes());
                txn.put(TOMBSTONES, PURGE_PENDING.to_vec(), mark);
                Ok(LocalOutcome {
                    write: true,
                    result: Vec::new(),
                })
            }),
        )
        .await?;
    tracing::info!(case = %id, "case data deleted (retention)");
    Ok(())
}

/// Re-applies the tombstone file (at start): any case listed there whose data is in
/// the database again (a restored backup) is erased again.
pub async fn enforce_tombstones(engine: &Engine, tombstone_file: &Path) -> Result<usize, AppError> {
    let mut n = 0;
    for id in read_tombstone_file(tombstone_file)? {
        let store = engine.reader();
        let resurrected = store.get(CASE_KEYS, id.as_bytes())?.is_some()
            || store.get(CASES, id.as_bytes())?.is_some()
            || store.get(TOMBSTONES, id.as_bytes())?.is_none();
        if resurrected {
            tracing::warn!(case = %id, "erased case found in the database (restored backup?); erasing again");
            delete_case_data(engine, id, engine.now_ms(), None).await?;
            n += 1;
        }
    }
    purge_pending(engine).await?;
    Ok(n)
}

/// What the schedule says of a case at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    Block,
    Erase,
}

/// A terminal case's blocking and erasure times, by its area's retention in the catalogue.
fn times(cases: &Cases, ix: &crate::requests::CaseIndex) -> (u64, u64) {
    let r = cases
        .catalogue()
        .area(&ix.area)
        .map(|a| a.retention())
        .unwrap_or_default();
    (
        ix.updated
            .saturating_add(u64::from(r.block_after_days) * DAY_MS),
        ix.updated
            .saturating_add(u64::from(r.delete_after_days) * DAY_MS),
    )
}

fn due(
    store: &dyn imi_store::ReadStore,
    cases: &Cases,
    id: &CaseId,
    ix: &crate::requests::CaseIndex,
    now: u64,
) -> Result<Option<Due>, AppError> {
    if !ix.terminal {
        return Ok(None);
    }
    let (block_at, delete_at) = times(cases, ix);
    Ok(if now >= delete_at && !is_erased(store, id)? {
        Some(Due::Erase)
    } else if now >= block_at && now < delete_at && !is_blocked(store, id)? {
        Some(Due::Block)
    } else {
        None
    })
}

/// The [`RETENTION_DUE`] key of case `id` at `at`.
fn due_key(at: u64, id: &CaseId) -> Vec<u8> {
    [&at.to_be_bytes()[..], id.as_bytes()].concat()
}

/// Written with a case's index (`requests`): once the case is terminal, the row of its
/// blocking time.
pub(crate) fn schedule(
    txn: &mut imi_engine::Txn<'_>,
    cases: &Cases,
    id: &CaseId,
    ix: &crate::requests::CaseIndex,
) {
    if ix.terminal {
        let (block_at, _) = times(cases, ix);
        txn.put(RETENTION_DUE, due_key(block_at, id), Vec::new());
    }
}

/// When case `id`'s next retention action falls due as it is stored now: none before it is
/// terminal or once it is erased; its erasure once it is blocked; else its blocking.
fn next_due(
    store: &dyn imi_store::ReadStore,
    cases: &Cases,
    id: &CaseId,
) -> Result<Option<u64>, AppError> {
    match Cases::index(store, id)? {
        Some(ix) => next_due_of(store, cases, id, &ix),
        None => Ok(None),
    }
}

/// [`next_due`] of a case whose index is `ix`.
fn next_due_of(
    store: &dyn imi_store::ReadStore,
    cases: &Cases,
    id: &CaseId,
    ix: &crate::requests::CaseIndex,
) -> Result<Option<u64>, AppError> {
    if !ix.terminal || is_erased(store, id)? {
        return Ok(None);
    }
    let (block_at, delete_at) = times(cases, ix);
    Ok(Some(if is_blocked(store, id)? {
        delete_at
    } else {
        block_at
    }))
}

/// Calls `f` with every case's index, [`DUE_CHUNK`] rows read at a time.
fn for_each_case(
    store: &dyn imi_store::ReadStore,
    mut f: impl FnMut(CaseId, crate::requests::CaseIndex) -> Result<(), AppError>,
) -> Result<(), AppError> {
    let mut after = None;
    loop {
        let page = Cases::scan_index(store, after.as_ref(), DUE_CHUNK)?;
        let done = page.len() < DUE_CHUNK;
        for (id, ix) in page {
            f(id, ix)?;
            after = Some(id);
        }
        if done {
            return Ok(());
        }
    }
}

/// Gives every case its [`RETENTION_DUE`] row of when it falls due as stored now (every
/// case read once), at the first run of this process; rows already there stay (a row that
/// is not due when reached is replaced).
async fn index_due(engine: &Engine, cases: &Cases) -> Result<(), AppError> {
    use std::sync::atomic::Ordering;
    if cases.due_indexed.cases.load(Ordering::Acquire) {
        return Ok(());
    }
    let store = engine.reader();
    let mut rows = WriteBatch::new();
    let mut n = 0usize;
    for_each_case(store.as_ref(), |id, ix| {
        if let Some(at) = next_due_of(store.as_ref(), cases, &id, &ix)? {
            rows.put(RETENTION_DUE, due_key(at, &id), Vec::new());
            n += 1;
        }
        Ok(())
    })?;
    if n > 0 {
        engine.write(rows, Durability::Sync).await?;
    }
    cases.due_indexed.cases.store(true, Ordering::Release);
    tracing::info!(cases = n, "closed cases given their retention times");
    Ok(())
}

/// The [`RETENTION_DUE`] rows up to `now`: (key, case id), in time order.
type DueRow = (Vec<u8>, Option<CaseId>);

fn due_rows(store: &dyn imi_store::ReadStore, now: u64) -> Result<Vec<DueRow>, AppError> {
    let mut rows = Vec::new();
    imi_store::for_each_entry(
        store,
        RETENTION_DUE,
        &[],
        Some(&now.saturating_add(1).to_be_bytes()),
        DUE_CHUNK,
        |k, _| {
            let id = k.get(8..).and_then(CaseId::from_slice);
            rows.push((k, id));
            true
        },
    )?;
    Ok(rows)
}

/// Every case whose blocking or erasure is due at `now` and not done, in due-time order,
/// found through [`RETENTION_DUE`] (every case read, before this process indexed them).
fn due_cases(
    store: &dyn imi_store::ReadStore,
    cases: &Cases,
    now: u64,
) -> Result<Vec<(CaseId, Due)>, AppError> {
    let mut out = Vec::new();
    if !cases
        .due_indexed
        .cases
        .load(std::sync::atomic::Ordering::Acquire)
    {
        for_each_case(store, |id, ix| {
            if let Some(d) = due(store, cases, &id, &ix, now)? {
                out.push((id, d));
            }
            Ok(())
        })?;
        return Ok(out);
    }
    let mut seen = std::collections::HashSet::new();
    for (_, id) in due_rows(store, now)? {
        let Some(id) = id.filter(|id| seen.insert(*id)) else {
            continue;
        };
        if let Some(ix) = Cases::index(store, &id)?
            && let Some(d) = due(store, cases, &id, &ix, now)?
        {
            out.push((id, d));
        }
    }
    Ok(out)
}

/// Replaces the [`RETENTION_DUE`] rows up to `now` by each case's next one (after a run's
/// blockings and erasures: none for an erased case, the erasure time for a blocked one).
async fn reschedule(engine: &Engine, cases: &Cases, now: u64) -> Result<(), AppError> {
    let store = engine.reader();
    let rows = due_rows(store.as_ref(), now)?;
    if rows.is_empty() {
        return Ok(());
    }
    let mut batch = WriteBatch::new();
    for (key, _) in &rows {
        batch.delete(RETENTION_DUE, key.clone());
    }
    let mut seen = std::collections::HashSet::new();
    for (_, id) in &rows {
        // A case whose next time has passed too keeps its row: the next run acts on it.
        if let Some(id) = id.filter(|id| seen.insert(*id))
            && let Some(at) = next_due(store.as_ref(), cases, &id)?
        {
            batch.put(RETENTION_DUE, due_key(at, &id), Vec::new());
        }
    }
    engine.write(batch, Durability::Sync).await?;
    Ok(())
}

/// The cases whose blocking, and whose erasure, is due at `now` and not done.
pub fn backlog(
    store: &dyn imi_store::ReadStore,
    cases: &Cases,
    now: u64,
) -> Result<(usize, usize), AppError> {
    let due = due_cases(store, cases, now)?;
    let erase = due.iter().filter(|(_, d)| *d == Due::Erase).count();
    Ok((due.len() - erase, erase))
}

/// One retention run at `now`: blocks and deletes what the schedule says.
pub async fn run_retention(
    engine: &Engine,
    cases: &Cases,
    now: u64,
    tombstone_file: Option<&Path>,
) -> Result<RetentionReport, AppError> {
    let mut report = RetentionReport::default();
    index_due(engine, cases).await?;
    for (id, action) in due_cases(engine.reader().as_ref(), cases, now)? {
        match action {
            Due::Erase => {
                delete_case_data(engine, id, now, tombstone_file).await?;
                report.deleted += 1;
            }
            Due::Block => {
                engine
                    .local_step(
                        None,
                        Box::new(move |txn, _| {
                            if txn.get(BLOCKED, id.as_bytes())?.is_none() {
                                txn.put(
                                    BLOCKED,
                                    id.as_bytes().to_vec(),
                                    now.to_be_bytes().to_vec(),
                                );
                                txn.log(leaf(&id, "block", now));
                            }
                            Ok(LocalOutcome {
                                write: true,
                                result: Vec::new(),
                            })
                        }),
                    )
                    .await?;
                tracing::info!(case = %id, "case data blocked (retention)");
                report.blocked += 1;
            }
        }
    }
    reschedule(engine, cases, now).await?;
    // One purge for all the run's erasures, or for an earlier run's that did not finish.
    purge_pending(engine).await?;
    report.alerts_erased = crate::alerts::erase_expired(engine, cases, now).await?;
    Ok(report)
}
