//! Outbound envelopes just committed, kept in memory for their delivery tasks.
//!
//! The committer writes a new envelope to the `env_out` column and one outbox entry per
//! recipient, then wakes the recipients' delivery tasks, which load the entries and need the
//! envelope's bytes and case. Reading them back from RocksDB costs a point read (often from
//! an SST file: the memtables are small) and a parse of the envelope for its case. So the
//! committer also hands each new envelope's bytes and case here, just before the group's
//! write (and takes them back if the write fails), and a delivery task takes them instead
//! of reading. What is not here (a restart, an
//! envelope evicted, a resend after a failure) is read from the store as before: this is a
//! shortcut over the same bytes, never the only copy.
//!
//! Bounded by bytes. When full, entries older than [`MAX_AGE`] make room (a destination that
//! is down keeps its backlog in the store, not here); if that is not enough, the new ones are
//! not kept. Under a backlog the oldest entries are the next to be sent, so they are the
//! ones worth keeping.
use imi_protocol::{CaseId, MessageId};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bytes of envelopes kept at most (default for [`FreshEnvelopes::new`]).
pub(crate) const DEFAULT_CAPACITY_BYTES: usize = 512 * 1024;
/// Age after which an entry not yet taken may make room for new ones.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(10);

struct Fresh {
    bytes: Vec<u8>,
    case: Option<CaseId>,
    /// Delivery tasks (one per recipient) that have not taken it yet.
    readers: usize,
    kept: Instant,
}

#[derive(Default)]
struct Inner {
    map: HashMap<MessageId, Fresh>,
    /// Insertion order, oldest first; may name entries already taken (compacted lazily).
    order: VecDeque<MessageId>,
    bytes: usize,
}

impl Inner {
    /// Removes `id`'s entry and its bytes from the count.
    fn remove(&mut self, id: &MessageId) -> Option<Fresh> {
        let gone = self.map.remove(id)?;
        self.bytes = self.bytes.saturating_sub(gone.bytes.len());
        Some(gone)
    }
}

/// See the module docs.
pub(crate) struct FreshEnvelopes {
    inner: Mutex<Inner>,
    capacity: usize,
}

/// A new envelope for [`FreshEnvelopes::insert`]: id, bytes, case, number of recipients.
pub(crate) type NewEnvelope = (MessageId, Vec<u8>, Option<CaseId>, usize);

impl FreshEnvelopes {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            capacity,
        }
    }

    /// Keeps the envelopes of a group about to be written (before the write, so that a
    /// delivery task that reads their outbox rows finds them here; [`FreshEnvelopes::forget`]
    /// if the write fails).
    pub(crate) fn insert(&self, envelopes: Vec<NewEnvelope>) {
        if envelopes.is_empty() || self.capacity == 0 {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let now = Instant::now();
        for (id, bytes, case, readers) in envelopes {
            if readers == 0 {
                continue;
            }
            // Room from entries nobody took in time, oldest first.
            while inner.bytes + bytes.len() > self.capacity {
                let Some(oldest) = inner.order.front().copied() else {
                    break;
                };
                if inner
                    .map
                    .get(&oldest)
                    .is_some_and(|e| now.saturating_duration_since(e.kept) < MAX_AGE)
                {
                    break;
                }
                // Stale, or already taken.
                inner.remove(&oldest);
                inner.order.pop_front();
            }
            if inner.bytes + bytes.len() > self.capacity {
                continue;
            }
            inner.bytes += bytes.len();
            if let Some(old) = inner.map.insert(
                id,
                Fresh {
                    bytes,
                    case,
                    readers,
                    kept: now,
                },
            ) {
                inner.bytes = inner.bytes.saturating_sub(old.bytes.len());
            }
            inner.order.push_back(id);
        }
        // Taken entries leave their ids in `order`; drop them once they dominate.
        if inner.order.len() > 2 * inner.map.len() + 64 {
            let Inner { map, order, .. } = &mut *inner;
            order.retain(|id| map.contains_key(id));
        }
    }

    /// Drops envelopes whose group was not written.
    pub(crate) fn forget(&self, ids: &[MessageId]) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        for id in ids {
            inner.remove(id);
        }
    }

    /// The bytes and case of `id` for one of its recipients' delivery tasks; the entry goes
    /// once every recipient has taken it.
    pub(crate) fn take(&self, id: &MessageId) -> Option<(Vec<u8>, Option<CaseId>)> {
        let mut inner = self.inner.lock().ok()?;
        let entry = inner.map.get_mut(id)?;
        if entry.readers > 1 {
            entry.readers -= 1;
            return Some((entry.bytes.clone(), entry.case));
        }
        let gone = inner.remove(id)?;
        Some((gone.bytes, gone.case))
    }

    /// Envelopes and bytes held (for tests).
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        self.inner
            .lock()
            .map(|i| (i.map.len(), i.bytes))
            .unwrap_or((0, 0))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn id(n: u8) -> MessageId {
        MessageId::from_slice(&[n; 16]).unwrap()
    }

    #[test]
    fn each_recipient_takes_it_once_then_it_is_gone() {
        let f = FreshEnvelopes::new(1024);
        f.insert(vec![(id(1), vec![7; 100], None, 2)]);
        assert_eq!(f.take(&id(1)).unwrap().0, vec![7; 100]);
        assert_eq!(f.held(), (1, 100));
        assert_eq!(f.take(&id(1)).unwrap().0, vec![7; 100]);
        assert_eq!(f.held(), (0, 0));
        assert!(f.take(&id(1)).is_none());
    }

    #[test]
    fn when_full_the_oldest_stay_until_stale_and_order_stays_bounded() {
        let f = FreshEnvelopes::new(250);
        for n in 0..5 {
            f.insert(vec![(id(n), vec![n; 100], None, 1)]);
        }
        // 500 bytes offered, 250 kept: the two oldest, the next to be sent.
        assert_eq!(f.held(), (2, 200));
        assert!(f.take(&id(2)).is_none());
        assert_eq!(f.take(&id(1)).unwrap().0, vec![1; 100]);
        // Stale entries make room for new ones.
        f.inner.lock().unwrap().map.values_mut().for_each(|e| {
            e.kept = Instant::now().checked_sub(MAX_AGE).unwrap();
        });
        f.insert(vec![
            (id(7), vec![7; 100], None, 1),
            (id(8), vec![8; 100], None, 1),
        ]);
        assert!(f.take(&id(0)).is_none(), "the stale entry made room");
        assert_eq!(f.held(), (2, 200));
        assert_eq!(f.take(&id(8)).unwrap().0, vec![8; 100]);
        // Many inserted and taken at once: the order list does not grow without bound.
        for round in 0..1000u32 {
            let n = (round % 200) as u8;
            f.insert(vec![(id(n), vec![1; 10], None, 1)]);
            f.take(&id(n));
        }
        let inner = f.inner.lock().unwrap();
        assert!(inner.order.len() <= 2 * inner.map.len() + 65);
    }

    #[test]
    fn a_group_not_written_is_forgotten() {
        let f = FreshEnvelopes::new(1024);
        f.insert(vec![
            (id(1), vec![1; 10], None, 1),
            (id(2), vec![2; 10], None, 1),
        ]);
        f.forget(&[id(1)]);
        assert!(f.take(&id(1)).is_none());
        assert_eq!(f.held(), (1, 10));
    }

    #[test]
    fn nothing_is_kept_without_capacity_or_recipients() {
        let f = FreshEnvelopes::new(0);
        f.insert(vec![(id(1), vec![1; 10], None, 1)]);
        assert_eq!(f.held(), (0, 0));
        let f = FreshEnvelopes::new(100);
        f.insert(vec![
            (id(1), vec![1; 10], None, 0),
            (id(2), vec![1; 101], None, 1),
        ]);
        assert_eq!(f.held(), (0, 0));
    }
}
