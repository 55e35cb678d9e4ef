//! What an application sees of the kernel when it applies something: an [`Inbound`]
//! message or a local action ([`LocalFn`], [`LocalCtx`]), both writing into a [`Txn`] that
//! the committer commits atomically with the kernel's own records (inbox, envelope, outbox,
//! log leaves). Also the routing table the kernel builds from the registered applications.
//!
//! This module depends on no other module of the kernel.
use imi_protocol::{Header, RejectCode, Timestamp};
use imi_store::{Column, ReadStore, WriteBatch};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A verified, decrypted inbound message.
#[derive(Debug)]
pub struct Inbound<'a> {
    /// The verified header.
    pub header: &'a Header,
    /// The plaintext body.
    pub body: &'a [u8],
    /// When this node received it.
    pub received: Timestamp,
    /// The trust list the envelope was verified against.
    pub trust: &'a imi_protocol::TrustList,
}

/// The context of a local action: the time it happens (the envelope's signed creation
/// time when there is one) and its envelope's message id.
#[derive(Debug, Clone, Copy)]
pub struct LocalCtx {
    /// When, ms.
    pub at: Timestamp,
    /// The message id of the envelope sent with the action, if any.
    pub message_id: Option<imi_protocol::MessageId>,
}

/// What a local action produced.
#[derive(Debug, Clone)]
pub struct LocalOutcome {
    /// Whether to commit the action's writes and envelope. `false` for a replay answered
    /// from an earlier result (an idempotent retry): nothing is written or sent.
    pub write: bool,
    /// The action's result, for the caller (e.g. a JSON response).
    pub result: Vec<u8>,
}

/// Why a local action refused: a stable code and a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The code (the same an inbound message would be rejected with).
    pub code: RejectCode,
    /// What exactly was wrong (no personal data).
    pub detail: String,
}

impl Refusal {
    /// An application refusal.
    pub fn new(code: &str, detail: impl Into<String>) -> Self {
        Self {
            code: RejectCode::Application(code.to_owned()),
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.label(), self.detail)
    }
}

impl From<RejectCode> for Refusal {
    fn from(code: RejectCode) -> Self {
        let detail = code.label().to_owned();
        Self { code, detail }
    }
}

/// A local action, run on the commit thread against the latest state.
pub type LocalFn = Box<dyn FnOnce(&mut Txn<'_>, &LocalCtx) -> Result<LocalOutcome, Refusal> + Send>;

/// Applies an inbound message of one kind ([`crate::Application::apply`]).
pub(crate) type ApplyFn =
    Arc<dyn Fn(&Inbound<'_>, &mut Txn<'_>) -> Result<(), RejectCode> + Send + Sync>;
/// Told after an accepted message of one kind is durable ([`crate::Application::committed`]).
pub(crate) type CommittedFn = Arc<dyn Fn(&Header) + Send + Sync>;

/// Where messages of one kind go.
#[derive(Clone)]
pub(crate) struct Route {
    /// Applies an inbound message; `None` for a kind this node only sends.
    pub apply: Option<ApplyFn>,
    /// After-commit hook of the handling application.
    pub committed: Option<CommittedFn>,
    /// Whether envelopes and receipts of this kind get log leaves.
    pub logged: bool,
}

/// The kernel's routing table, built from the registered applications: kind → route. The
/// commit thread and the inbound path consult it; they never see an application itself.
#[derive(Clone, Default)]
pub(crate) struct Routes(HashMap<String, Route>);

impl Routes {
    /// Adds a route; the first application to claim a kind keeps it.
    pub(crate) fn insert(&mut self, kind: &str, route: Route) {
        let entry = self.0.entry(kind.to_owned()).or_insert(Route {
            apply: None,
            committed: None,
            logged: route.logged,
        });
        if entry.apply.is_none() && route.apply.is_some() {
            entry.apply = route.apply;
            entry.committed = route.committed;
            entry.logged = route.logged;
        }
    }
    /// Whether an application handles inbound messages of `kind`.
    pub(crate) fn handles(&self, kind: &str) -> bool {
        self.0.get(kind).is_some_and(|r| r.apply.is_some())
    }
    /// Whether messages of `kind` are logged (kinds no application declares are).
    pub(crate) fn logged(&self, kind: &str) -> bool {
        self.0.get(kind).is_none_or(|r| r.logged)
    }
    /// Applies an inbound message with the application that handles its kind.
    pub(crate) fn apply(&self, msg: &Inbound<'_>, txn: &mut Txn<'_>) -> Result<(), RejectCode> {
        let apply = self
            .0
            .get(msg.header.kind.as_str())
            .and_then(|r| r.apply.as_ref())
            .ok_or(RejectCode::UnknownKind)?;
        apply(msg, txn)
    }
    /// Runs the after-commit hook of a durable accepted message.
    pub(crate) fn committed(&self, header: &Header) {
        if let Some(f) = self
            .0
            .get(header.kind.as_str())
            .and_then(|r| r.committed.as_ref())
        {
            f(header);
        }
    }
}

/// The overlay of a group commit: writes not yet on disk, visible to later jobs in the
/// group.
pub(crate) type Overlay = BTreeMap<(Column, Vec<u8>), Option<Vec<u8>>>;

/// Columns whose writes the overlay does not record: the engine writes them and nothing in a
/// commit group reads them back (sealed envelopes, the log's leaves and tree nodes, which
/// [`crate::log::LogState`] keeps in memory for the group). Recording them copied every
/// envelope's ciphertext once more per message. [`Txn`] refuses to read them.
const UNRECORDED: &[Column] = &[
    crate::keys::ENV_IN,
    crate::keys::ENV_OUT,
    crate::keys::LOG_LEAVES,
    crate::keys::LOG_NODES,
];

/// Records a batch's writes in the group's overlay.
pub(crate) fn record_overlay(overlay: &mut Overlay, b: &WriteBatch) {
    for op in b.ops() {
        if UNRECORDED.contains(&op.column()) {
            continue;
        }
        match op {
            imi_store::Op::Put { col, key, value } => {
                overlay.insert((*col, key.clone()), Some(value.clone()));
            }
            imi_store::Op::Delete { col, key } => {
                overlay.insert((*col, key.clone()), None);
            }
        }
    }
}

/// Refuses a transaction's read of a column the group's overlay does not record
/// ([`UNRECORDED`]): it could miss a write of an earlier job in the same group.
fn unrecorded(col: Column) -> Result<(), RejectCode> {
    if UNRECORDED.contains(&col) {
        tracing::error!(
            column = col,
            "a transaction read a column it cannot see whole"
        );
        return Err(RejectCode::Internal);
    }
    Ok(())
}

/// The overlay of a transaction outside any group commit ([`Txn::detached`]).
static NO_GROUP: Overlay = BTreeMap::new();

/// A transaction: reads see the store, the group's earlier writes and this transaction's
/// own writes; writes are buffered until the engine commits them.
pub struct Txn<'a> {
    store: &'a dyn ReadStore,
    group: &'a Overlay,
    local: BTreeMap<(Column, Vec<u8>), Option<Vec<u8>>>,
    batch: WriteBatch,
    leaves: Vec<String>,
}

impl<'a> Txn<'a> {
    pub(crate) fn new(store: &'a dyn ReadStore, group: &'a Overlay) -> Self {
        Self {
            store,
            group,
            local: BTreeMap::new(),
            batch: WriteBatch::new(),
            leaves: Vec::new(),
        }
    }

    /// A transaction over `store` alone, outside the committer: it reads the store and its
    /// own writes, and buffers its writes for [`Txn::into_batch`]. It runs an application's
    /// `apply` without an engine (the fuzz targets in `fuzz/` feed it hostile bodies); the
    /// engine itself never makes one.
    pub fn detached(store: &'a dyn ReadStore) -> Self {
        Self::new(store, &NO_GROUP)
    }

    /// The writes of a [`Txn::detached`] transaction, for the caller to write or discard
    /// (its log leaves are dropped).
    pub fn into_batch(self) -> WriteBatch {
        self.batch
    }

    /// Appends a leaf to the node's log with this transaction (`crate::log`).
    pub fn log(&mut self, leaf: String) {
        self.leaves.push(leaf);
    }

    /// Reads a value.
    pub fn get(&self, col: Column, key: &[u8]) -> Result<Option<Vec<u8>>, RejectCode> {
        unrecorded(col)?;
        let k = (col, key.to_vec());
        if let Some(v) = self.local.get(&k) {
            return Ok(v.clone());
        }
        if let Some(v) = self.group.get(&k) {
            return Ok(v.clone());
        }
        self.store.get(col, key).map_err(|e| {
            tracing::error!(error = %e, "store read failed in transaction");
            RejectCode::Internal
        })
    }

    /// The greatest key of `col` as this transaction sees it (the store, the group's writes
    /// and its own; keys deleted in the group still count).
    pub fn last_key(&self, col: Column) -> Result<Option<Vec<u8>>, RejectCode> {
        unrecorded(col)?;
        let stored = self
            .store
            .last_with_prefix(col, &[])
            .map_err(|e| {
                tracing::error!(error = %e, "store read failed in transaction");
                RejectCode::Internal
            })?
            .map(|(k, _)| k);
        let pending = self
            .group
            .keys()
            .chain(self.local.keys())
            .filter(|(c, _)| *c == col)
            .map(|(_, k)| k.clone());
        Ok(stored.into_iter().chain(pending).max())
    }

    /// Writes a value.
    pub fn put(&mut self, col: Column, key: Vec<u8>, value: Vec<u8>) {
        self.local.insert((col, key.clone()), Some(value.clone()));
        self.batch.put(col, key, value);
    }

    /// Deletes a value.
    pub fn delete(&mut self, col: Column, key: Vec<u8>) {
        self.local.insert((col, key.clone()), None);
        self.batch.delete(col, key);
    }

    /// Reads a big-endian u64 counter (0 when absent).
    pub fn counter(&self, col: Column, key: &[u8]) -> Result<u64, RejectCode> {
        Ok(decode_counter(self.get(col, key)?))
    }

    /// Adds to a big-endian u64 counter.
    pub fn add(&mut self, col: Column, key: &[u8], n: u64) -> Result<u64, RejectCode> {
        let v = self.counter(col, key)?.saturating_add(n);
        self.put(col, key.to_vec(), v.to_be_bytes().to_vec());
        Ok(v)
    }

    pub(crate) fn into_parts(self) -> (WriteBatch, Vec<String>) {
        (self.batch, self.leaves)
    }
}

/// Decodes a big-endian u64 counter value (0 when absent or malformed).
fn decode_counter(v: Option<Vec<u8>>) -> u64 {
    v.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes)
}

/// Reads a big-endian u64 counter straight from the store (0 when absent).
pub fn read_counter(
    store: &dyn ReadStore,
    col: Column,
    key: &[u8],
) -> Result<u64, imi_store::StoreError> {
    Ok(decode_counter(store.get(col, key)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(apply: bool, logged: bool) -> Route {
        Route {
            apply: apply.then(|| -> ApplyFn { Arc::new(|_, _| Ok(())) }),
            committed: None,
            logged,
        }
    }

    #[test]
    fn routes_follow_the_declaring_application() {
        let mut r = Routes::default();
        // A kind only sent here (no handler) takes the sender's logging choice.
        r.insert("imi.cosignature", route(false, false));
        assert!(!r.handles("imi.cosignature"));
        assert!(!r.logged("imi.cosignature"));
        // The handler, registered later, takes the kind over.
        r.insert("imi.cosignature", route(true, false));
        assert!(r.handles("imi.cosignature"));
        // The first handler keeps it.
        r.insert("diagnostic", route(true, true));
        r.insert("diagnostic", route(true, false));
        assert!(r.logged("diagnostic"));
        // Kinds no application declares are not handled and are logged.
        assert!(!r.handles("unknown.kind"));
        assert!(r.logged("unknown.kind"));
    }

    #[test]
    fn the_overlay_skips_the_columns_no_transaction_reads() {
        use imi_store::MemStore;
        let mut b = WriteBatch::new();
        for col in UNRECORDED {
            b.put(col, b"k".to_vec(), b"sealed".to_vec());
        }
        b.put(crate::keys::INBOX, b"k".to_vec(), b"record".to_vec());
        b.delete(crate::keys::META, b"gone".to_vec());
        let mut overlay = Overlay::new();
        record_overlay(&mut overlay, &b);
        let recorded: Vec<Column> = overlay.keys().map(|(c, _)| *c).collect();
        assert_eq!(recorded, [crate::keys::INBOX, crate::keys::META]);
        // A transaction cannot read what the overlay may be missing.
        let store = MemStore::new(crate::Engine::columns());
        let txn = Txn::new(&store, &overlay);
        for col in UNRECORDED {
            assert_eq!(txn.get(col, b"k"), Err(RejectCode::Internal));
            assert_eq!(txn.last_key(col), Err(RejectCode::Internal));
        }
        assert_eq!(
            txn.get(crate::keys::INBOX, b"k").unwrap(),
            Some(b"record".to_vec())
        );
    }

    #[test]
    fn a_detached_transaction_reads_the_store_and_its_writes_and_hands_them_over() {
        use imi_store::{Durability, MemStore, Store};
        let store = MemStore::new(&["c"]);
        let mut seed = WriteBatch::new();
        seed.put("c", b"k".to_vec(), b"stored".to_vec());
        store.write(seed, Durability::Buffered).unwrap();
        let mut txn = Txn::detached(&store);
        assert_eq!(txn.get("c", b"k").unwrap(), Some(b"stored".to_vec()));
        txn.put("c", b"k".to_vec(), b"new".to_vec());
        txn.delete("c", b"gone".to_vec());
        assert_eq!(txn.get("c", b"k").unwrap(), Some(b"new".to_vec()));
        let batch = txn.into_batch();
        assert_eq!(batch.len(), 2);
        // Nothing reached the store.
        assert_eq!(store.get("c", b"k").unwrap(), Some(b"stored".to_vec()));
    }
}
