//! The application interface: what a message *means* is decided by an [`Application`].
//! The engine verifies, decrypts and de-duplicates; the application validates the content
//! and writes its effects into a [`Txn`], which the engine commits atomically together with
//! the inbox record. Later issues plug requests, notifications and the rest in here.
use crate::commit::Overlay;
use imi_protocol::{Header, RejectCode, Timestamp};
use imi_store::{Column, Store, WriteBatch};
use std::collections::BTreeMap;
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

/// Handles some message kinds.
pub trait Application: Send + Sync + 'static {
    /// Whether this application handles messages of `kind`.
    fn handles(&self, kind: &str) -> bool;
    /// Validates and applies a message. Runs on the commit thread, one message at a time:
    /// keep it short and do no I/O besides `txn`. An `Err` discards every write in `txn`.
    fn apply(&self, msg: &Inbound<'_>, txn: &mut Txn<'_>) -> Result<(), RejectCode>;
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

impl From<RejectCode> for Refusal {
    fn from(code: RejectCode) -> Self {
        let detail = code.label().to_owned();
        Self { code, detail }
    }
}

/// A local action, run on the commit thread against the latest state.
pub type LocalFn = Box<dyn FnOnce(&mut Txn<'_>, &LocalCtx) -> Result<LocalOutcome, Refusal> + Send>;

/// The registered applications.
#[derive(Clone, Default)]
pub struct Applications(Vec<Arc<dyn Application>>);

impl Applications {
    /// From a list.
    pub fn new(apps: Vec<Arc<dyn Application>>) -> Self {
        Self(apps)
    }
    /// Whether any application handles `kind`.
    pub fn handles(&self, kind: &str) -> bool {
        self.0.iter().any(|a| a.handles(kind))
    }
    pub(crate) fn apply(&self, msg: &Inbound<'_>, txn: &mut Txn<'_>) -> Result<(), RejectCode> {
        let app = self
            .0
            .iter()
            .find(|a| a.handles(msg.header.kind.as_str()))
            .ok_or(RejectCode::UnknownKind)?;
        app.apply(msg, txn)
    }
}

/// A transaction: reads see the store, the group's earlier writes and this transaction's
/// own writes; writes are buffered until the engine commits them.
pub struct Txn<'a> {
    store: &'a dyn Store,
    group: &'a Overlay,
    local: BTreeMap<(Column, Vec<u8>), Option<Vec<u8>>>,
    batch: WriteBatch,
    leaves: Vec<String>,
    step: Option<String>,
}

impl<'a> Txn<'a> {
    pub(crate) fn new(store: &'a dyn Store, group: &'a Overlay) -> Self {
        Self {
            store,
            group,
            local: BTreeMap::new(),
            batch: WriteBatch::new(),
            leaves: Vec::new(),
            step: None,
        }
    }

    /// Appends a leaf to the node's log with this transaction ([`crate::log`]).
    pub fn log(&mut self, leaf: String) {
        self.leaves.push(leaf);
    }

    /// Names the request step this transaction applies (recorded in the log leaf of its
    /// envelope).
    pub fn set_step(&mut self, step: &str) {
        self.step = Some(step.to_owned());
    }

    /// Reads a value.
    pub fn get(&self, col: Column, key: &[u8]) -> Result<Option<Vec<u8>>, RejectCode> {
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

    pub(crate) fn into_parts(self) -> (WriteBatch, Vec<String>, Option<String>) {
        (self.batch, self.leaves, self.step)
    }
}

/// Decodes a big-endian u64 counter value (0 when absent or malformed).
fn decode_counter(v: Option<Vec<u8>>) -> u64 {
    v.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes)
}

/// Reads a big-endian u64 counter straight from the store (0 when absent).
pub fn read_counter(
    store: &dyn Store,
    col: Column,
    key: &[u8],
) -> Result<u64, imi_store::StoreError> {
    Ok(decode_counter(store.get(col, key)?))
}

/// Key of the total count of applied diagnostic messages in the `app` column.
pub const DIAG_APPLIED: &[u8] = b"diag/applied";

/// The diagnostic application: `imi-node diag send` messages. Its effect is a persistent
/// counter of applied diagnostics (total and per sender), which end-to-end tests use to
/// prove that nothing is lost or applied twice.
#[derive(Debug, Default)]
pub struct DiagnosticApp;

impl DiagnosticApp {
    /// Per-sender counter key.
    pub fn sender_key(node: imi_protocol::NodeId) -> Vec<u8> {
        let mut k = b"diag/applied/".to_vec();
        k.extend_from_slice(node.as_str().as_bytes());
        k
    }
}

impl Application for DiagnosticApp {
    fn handles(&self, kind: &str) -> bool {
        kind == imi_protocol::Kind::DIAGNOSTIC
    }

    fn apply(&self, msg: &Inbound<'_>, txn: &mut Txn<'_>) -> Result<(), RejectCode> {
        if msg.header.case.is_some() {
            return Err(RejectCode::Application("diagnostic_with_case".into()));
        }
        txn.add(crate::keys::APP, DIAG_APPLIED, 1)?;
        txn.add(crate::keys::APP, &Self::sender_key(msg.header.from), 1)?;
        Ok(())
    }
}
