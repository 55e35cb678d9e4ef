//! The outbox entries just written, per destination, for a delivery task that has loaded
//! everything before them.
//!
//! A delivery task finds its next entries by reading the outbox column after its cursor, on
//! a blocking thread (store reads stay off the async workers). At a low rate that read is
//! one blocking-thread hop per message, two wake-ups, for an entry the committer has just
//! written and could have handed over. So the committer also appends each entry it wrote
//! (after the write succeeded) to its destination's tail here, and a delivery task whose
//! cursor is exactly the entry before the tail's first takes the entries from here instead.
//!
//! Outbox sequence numbers per destination are consecutive (the committer is the only
//! writer), so "exactly the entry before" is a number check: any gap (an entry dropped from a
//! full tail, a restart, a task that stopped part-way) sends the task back to the store, which
//! is never wrong, only slower. Bounded per destination; when full, the oldest entries go,
//! and entries a task has passed (loaded from the store) go when it next asks.
use imi_protocol::{MessageId, NodeId};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Entries kept at most per destination.
pub(crate) const MAX_PER_PEER: usize = 256;

/// One outbox entry written: its sequence number, message and log flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TailEntry {
    pub seq: u64,
    pub id: MessageId,
    pub logged: bool,
}

/// See the module docs.
pub(crate) struct Tails {
    peers: HashMap<NodeId, Mutex<VecDeque<TailEntry>>>,
}

impl Tails {
    pub(crate) fn new(peers: impl IntoIterator<Item = NodeId>) -> Self {
        Self {
            peers: peers
                .into_iter()
                .map(|p| (p, Mutex::new(VecDeque::new())))
                .collect(),
        }
    }

    /// Appends an entry written for `peer` (entries come in sequence order).
    pub(crate) fn push(&self, peer: NodeId, entry: TailEntry) {
        let Some(Ok(mut tail)) = self.peers.get(&peer).map(|t| t.lock()) else {
            return;
        };
        if tail.len() >= MAX_PER_PEER {
            tail.pop_front();
        }
        tail.push_back(entry);
    }

    /// Up to `limit` entries that follow `after` (the sequence number of the last entry the
    /// task loaded) without a gap, removed from the tail together with any older ones; `None`
    /// when the tail does not continue from `after` (the task reads the store instead).
    pub(crate) fn take_after(
        &self,
        peer: NodeId,
        after: u64,
        limit: usize,
    ) -> Option<Vec<TailEntry>> {
        let mut tail = self.peers.get(&peer)?.lock().ok()?;
        while tail.front().is_some_and(|e| e.seq <= after) {
            tail.pop_front();
        }
        if tail.front()?.seq != after.checked_add(1)? {
            return None;
        }
        let n = limit.min(tail.len());
        Some(tail.drain(..n).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(seq: u64) -> TailEntry {
        TailEntry {
            seq,
            id: MessageId::from_slice(&[seq as u8; 16]).unwrap(),
            logged: seq.is_multiple_of(2),
        }
    }

    #[test]
    fn entries_continue_only_from_the_entry_before_them() {
        let at = NodeId::AT;
        let de = NodeId::DE;
        let t = Tails::new([at]);
        for n in 5..=7 {
            t.push(at, e(n));
        }
        // A task whose cursor is at 3 would skip 4: it reads the store.
        assert_eq!(t.take_after(at, 3, 10), None);
        // At 5: 6 and 7 follow (5 is dropped as loaded already).
        assert_eq!(t.take_after(at, 5, 1), Some(vec![e(6)]));
        assert_eq!(t.take_after(at, 6, 10), Some(vec![e(7)]));
        assert_eq!(t.take_after(at, 7, 10), None, "empty");
        // A peer without a tail, and the last sequence number, never panic.
        assert_eq!(t.take_after(de, 0, 10), None);
        t.push(at, e(u64::MAX));
        assert_eq!(t.take_after(at, u64::MAX, 10), None);
    }

    #[test]
    fn a_full_tail_drops_its_oldest_and_the_gap_is_seen() {
        let at = NodeId::AT;
        let t = Tails::new([at]);
        for n in 0..MAX_PER_PEER as u64 + 2 {
            t.push(at, e(n));
        }
        // 0 and 1 were dropped: a task at 0 must read the store for 1.
        assert_eq!(t.take_after(at, 0, 10), None);
        let got = t.take_after(at, 1, 3).unwrap();
        assert_eq!(got, vec![e(2), e(3), e(4)]);
        // Entries older than the task's cursor are dropped as it asks.
        assert_eq!(t.take_after(at, 100, 1), Some(vec![e(101)]));
    }
}
