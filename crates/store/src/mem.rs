//! In-memory engine: one `BTreeMap` per column behind one `RwLock`.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::{
    Column, Durability, Entry, Op, ReadStore, Store, StoreError, WriteBatch, prefix_successor,
};

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// An in-memory [`Store`] for tests and simulations. Nothing is persisted.
///
/// A batch is applied under one write lock, so readers see all of it or none of it.
#[derive(Debug)]
pub struct MemStore {
    columns: RwLock<HashMap<Column, Map>>,
    syncs: AtomicU64,
    /// Total length of all keys and values; only changed under the write lock.
    bytes: AtomicU64,
}

impl MemStore {
    /// A new, empty store with the given columns.
    pub fn new(columns: &[Column]) -> Self {
        Self {
            columns: RwLock::new(columns.iter().map(|c| (*c, Map::new())).collect()),
            syncs: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    // A panic while holding the lock cannot leave a half-applied batch visible in a way that
    // matters more than losing the store, and `BTreeMap` operations only panic on allocation
    // failure; so a poisoned lock is simply taken over.
    fn read(&self) -> RwLockReadGuard<'_, HashMap<Column, Map>> {
        self.columns.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, HashMap<Column, Map>> {
        self.columns.write().unwrap_or_else(PoisonError::into_inner)
    }
}

fn len(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
}

fn column<'a>(cols: &'a HashMap<Column, Map>, col: &str) -> Result<&'a Map, StoreError> {
    cols.get(col)
        .ok_or_else(|| StoreError::UnknownColumn(col.to_owned()))
}

fn collect<'a>(it: impl Iterator<Item = (&'a Vec<u8>, &'a Vec<u8>)>, limit: usize) -> Vec<Entry> {
    it.take(limit)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn bounded<'a>(
    map: &'a Map,
    start: &[u8],
    end: Option<&[u8]>,
) -> Box<dyn DoubleEndedIterator<Item = (&'a Vec<u8>, &'a Vec<u8>)> + 'a> {
    match end {
        // BTreeMap::range panics on an empty/inverted range; such a range has no entries.
        Some(end) if end <= start => Box::new(std::iter::empty()),
        Some(end) => Box::new(map.range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))),
        None => Box::new(map.range::<[u8], _>((Bound::Included(start), Bound::Unbounded))),
    }
}

impl ReadStore for MemStore {
    fn get(&self, col: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let cols = self.read();
        Ok(column(&cols, col)?.get(key).cloned())
    }

    fn range(
        &self,
        col: Column,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let cols = self.read();
        let map = column(&cols, col)?;
        Ok(collect(bounded(map, start, end), limit))
    }

    fn scan_prefix(
        &self,
        col: Column,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let cols = self.read();
        let map = column(&cols, col)?;
        let end = prefix_successor(prefix);
        Ok(collect(bounded(map, prefix, end.as_deref()), limit))
    }

    fn last_with_prefix(&self, col: Column, prefix: &[u8]) -> Result<Option<Entry>, StoreError> {
        let cols = self.read();
        let map = column(&cols, col)?;
        let end = prefix_successor(prefix);
        Ok(bounded(map, prefix, end.as_deref())
            .next_back()
            .map(|(k, v)| (k.clone(), v.clone())))
    }

    fn last_before(
        &self,
        col: Column,
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let cols = self.read();
        let map = column(&cols, col)?;
        Ok(bounded(map, &[], end)
            .rev()
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

impl Store for MemStore {
    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), StoreError> {
        let mut cols = self.write_lock();
        if let Some(op) = batch
            .ops()
            .iter()
            .find(|op| !cols.contains_key(op.column()))
        {
            return Err(StoreError::UnknownColumn(op.column().to_owned()));
        }
        let mut added: u64 = 0;
        let mut removed: u64 = 0;
        for op in batch.ops {
            match op {
                Op::Put { col, key, value } => {
                    if let Some(map) = cols.get_mut(col) {
                        let key_len = len(&key);
                        added += key_len + len(&value);
                        if let Some(old) = map.insert(key, value) {
                            removed += key_len + len(&old);
                        }
                    }
                }
                Op::Delete { col, key } => {
                    if let Some(map) = cols.get_mut(col)
                        && let Some(old) = map.remove(&key)
                    {
                        removed += len(&key) + len(&old);
                    }
                }
            }
        }
        // Still under the write lock, so the counter cannot go below zero in between.
        self.bytes.fetch_add(added, Ordering::Relaxed);
        self.bytes.fetch_sub(removed, Ordering::Relaxed);
        if durability == Durability::Sync {
            self.syncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn sync_count(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn memory_usage_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}
