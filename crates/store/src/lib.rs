//! # imi-store: the node's key-value storage layer
//!
//! This crate gives the rest of the node one small storage interface, the [`Store`] trait, and
//! two engines behind it:
//!
//! * [`RocksStore`]: the production engine, RocksDB with one column family per [`Column`], the
//!   write-ahead log always on, and memory kept small through [`RocksConfig`] (a shared LRU block
//!   cache, small write buffers, a bounded WAL).
//! * [`MemStore`]: an in-memory engine (one `BTreeMap` per column behind one lock) for tests and
//!   simulations.
//!
//! Both engines run the same test suite (`tests/main.rs`), so code written against
//! `&dyn Store` behaves the same on either.
//!
//! ## Model
//!
//! * Data lives in named columns ([`Column`], a `&'static str`). Keys and values are raw bytes;
//!   keys are ordered bytewise. The store knows nothing about what they encode: versioned
//!   encodings belong to the crates that own the data.
//! * Every change goes through a [`WriteBatch`], applied atomically: all of its operations or
//!   none. Every column a batch names is checked before anything is written, so a batch naming an
//!   unknown column fails with [`StoreError::UnknownColumn`] and changes nothing. Within a batch a
//!   later operation on the same key wins.
//! * [`Durability::Sync`] returns only once the batch is fsync'ed to the WAL;
//!   [`Durability::Buffered`] returns once the batch is in the WAL (it survives a process crash,
//!   but not a power loss). [`Store::sync_count`] counts synced writes, so callers can measure
//!   group commit (messages per fsync).
//!
//! ## Layering
//!
//! This crate is the bottom of the stack: it must never depend on the network, the engine,
//! tokio or any async runtime. All calls block; async callers run them on a blocking thread or a
//! dedicated store actor.

mod mem;
mod rocks;

pub use mem::MemStore;
pub use rocks::{MIN_BLOB_BYTES, RocksConfig, RocksStore};

/// The name of a column (a RocksDB column family, or one map in [`MemStore`]).
pub type Column = &'static str;

/// One key-value pair, as returned by scans: `(key, value)`.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Errors from any [`Store`] engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An operation named a column the store was not opened with.
    #[error("unknown column {0}")]
    UnknownColumn(String),
    /// RocksDB reported an error.
    #[error("rocksdb: {0}")]
    Rocks(String),
    /// A filesystem error outside RocksDB.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The store has been closed.
    #[error("store is closed")]
    Closed,
}

/// One operation of a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Set `key` to `value` in `col`.
    Put {
        /// Column written.
        col: Column,
        /// Key written.
        key: Vec<u8>,
        /// New value.
        value: Vec<u8>,
    },
    /// Remove `key` from `col` (no error if absent).
    Delete {
        /// Column written.
        col: Column,
        /// Key removed.
        key: Vec<u8>,
    },
}

impl Op {
    /// The column this operation writes.
    pub fn column(&self) -> Column {
        match self {
            Op::Put { col, .. } | Op::Delete { col, .. } => col,
        }
    }
}

/// One atomic group of writes, applied in order (a later operation on a key wins).
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    ops: Vec<Op>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put of `key` = `value` in `col`.
    pub fn put(&mut self, col: Column, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(Op::Put {
            col,
            key: key.into(),
            value: value.into(),
        });
    }

    /// Adds a delete of `key` in `col`.
    pub fn delete(&mut self, col: Column, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Delete {
            col,
            key: key.into(),
        });
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True if the batch has no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Appends the operations of `other` after those of `self` (so `other`'s win).
    pub fn append(&mut self, mut other: WriteBatch) {
        self.ops.append(&mut other.ops);
    }

    /// The operations, in application order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }
}

/// How durable a write is when [`Store::write`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the WAL before returning.
    Sync,
    /// Written to the WAL (survives a process crash, not power loss).
    Buffered,
}

/// Reading a store: what an application is given (writes go through the committer).
///
/// All methods block. Keys are ordered bytewise.
pub trait ReadStore: Send + Sync + 'static {
    /// The value of `key` in `col`, if any.
    fn get(&self, col: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// As [`get`](Self::get), for a value read once (an envelope loaded to be sent, then
    /// deleted when it is receipted): the blocks read for it are not kept in a block cache,
    /// where they would push out what is read again.
    fn get_uncached(&self, col: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(col, key)
    }

    /// Key-ordered (bytewise) entries with key >= start and key < end (end None = unbounded), at
    /// most `limit`.
    fn range(
        &self,
        col: Column,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError>;

    /// Entries whose key starts with prefix, ordered, at most limit.
    fn scan_prefix(
        &self,
        col: Column,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError>;

    /// Last (greatest) key in column with given prefix, if any.
    fn last_with_prefix(&self, col: Column, prefix: &[u8]) -> Result<Option<Entry>, StoreError>;

    /// The greatest entries with key < `end` (`None`: all), at most `limit`, greatest first:
    /// the newest of a column keyed by a growing number without reading the rest.
    fn last_before(
        &self,
        col: Column,
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError>;
}

/// A key-value store with named columns and atomic batches.
///
/// All methods block. Keys are ordered bytewise.
pub trait Store: ReadStore {
    /// Applies `batch`. Atomic: all ops or none. Every column is validated before anything is
    /// written.
    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), StoreError>;

    /// Number of synced (fsync'ed) writes so far — used to measure group commit (messages per
    /// fsync).
    fn sync_count(&self) -> u64;

    /// Flushes memtables; used at graceful shutdown.
    fn flush(&self) -> Result<(), StoreError>;

    /// Makes deleted data physically gone from `cols`: flushes every memtable (so that no
    /// write-ahead log still holds it) and compacts the columns down to the last level (so
    /// that no table file does). For erasure; slow.
    fn purge(&self, cols: &[Column]) -> Result<(), StoreError> {
        let _ = cols;
        self.flush()
    }

    /// Approximate memory used in bytes: memtables + block cache for RocksDB, the size of keys
    /// and values for the memory engine.
    fn memory_usage_bytes(&self) -> u64;
}

/// Calls `f` with every entry of `col` with key >= `start` and < `end` (`None`: unbounded), in
/// key order, reading `chunk` (at least 1) entries at a time, until `f` returns `false` or the
/// entries end: a walk over a column of any size holding one chunk at a time.
pub fn for_each_entry(
    store: &dyn ReadStore,
    col: Column,
    start: &[u8],
    end: Option<&[u8]>,
    chunk: usize,
    mut f: impl FnMut(Vec<u8>, Vec<u8>) -> bool,
) -> Result<(), StoreError> {
    let chunk = chunk.max(1);
    let mut from = start.to_vec();
    loop {
        let rows = store.range(col, &from, end, chunk)?;
        let full = rows.len() == chunk;
        let Some(last) = rows.last().map(|(k, _)| k.clone()) else {
            return Ok(());
        };
        for (k, v) in rows {
            if !f(k, v) {
                return Ok(());
            }
        }
        if !full {
            return Ok(());
        }
        // The next chunk starts just after the last key read (its successor in byte order).
        from = last;
        from.push(0);
    }
}

/// The smallest key greater than every key starting with `prefix`, or `None` if there is none
/// (the prefix is empty or all `0xff`).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < u8::MAX {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor() {
        assert_eq!(prefix_successor(b""), None);
        assert_eq!(prefix_successor(&[0xff, 0xff]), None);
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[1, 0xff]), Some(vec![2]));
    }

    #[test]
    fn batch_append_keeps_order() {
        let mut a = WriteBatch::new();
        a.put("c", b"k".to_vec(), b"1".to_vec());
        let mut b = WriteBatch::new();
        b.delete("c", b"k".to_vec());
        a.append(b);
        assert_eq!(a.len(), 2);
        assert!(!a.is_empty());
        assert_eq!(
            a.ops().last(),
            Some(&Op::Delete {
                col: "c",
                key: b"k".to_vec()
            })
        );
    }
}
