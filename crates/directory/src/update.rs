//! Directory updates, sync requests and the replica rule.
//!
//! A home node (the node of the authority's country, and only it) publishes its changes as an
//! [`UpdateBatch`], the JSON body of an `imi.directory.update` envelope that it signs: each
//! [`DirectoryUpdate`] is the whole authority record as of one per-country sequence number,
//! with `retired` set when the authority was retired. A batch says which stretch of the
//! sequence it **covers**, `(from, to]`: a change published live covers just its own number
//! (`(n-1, n]`); an answer to a sync request covers everything after the asker's mark and
//! carries only the newest update of each authority in that stretch (older ones are
//! superseded), so a replica knows it has seen the stretch without the superseded updates.
//!
//! **The replica rule** ([`Entry::supersedes`]): an authority's entry is replaced only by an
//! update with a higher sequence number; at an equal number (a home node that signed two
//! different updates under one number) the one whose canonical JSON is greater wins. Hence
//! duplicated, late and reordered deliveries converge to the same entries on every node,
//! byte for byte. [`Coverage`] keeps, per country, the sequence number up to which a replica
//! has seen everything (what it asks a sync from).
//!
//! A node asks a home node for what it missed with a [`SyncRequest`] (`imi.directory.sync`):
//! "I have you up to `have`". The home node answers with batches covering `(have, its last]`.

use imi_domain::{Authority, AuthorityError};
use imi_protocol::ids::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The kind of the envelopes that carry an [`UpdateBatch`].
pub const KIND_UPDATE: &str = imi_protocol::Kind::DIRECTORY_UPDATE;
/// The kind of the envelopes that carry a [`SyncRequest`].
pub const KIND_SYNC: &str = imi_protocol::Kind::DIRECTORY_SYNC;
/// Largest update batch body decoded, in bytes.
pub const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;
/// Most updates in one batch (a sync answer is split into batches of at most this many).
pub const MAX_BATCH_UPDATES: usize = 500;
/// Largest sync request body decoded, in bytes.
pub const MAX_SYNC_BYTES: usize = 256;
/// Most stretches a [`Coverage`] keeps above its mark (more are forgotten until a sync).
pub const MAX_COVERAGE_RANGES: usize = 1024;

/// One authority record as of one sequence number of its country.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryUpdate {
    /// The country, which is the node that signs it.
    pub country: NodeId,
    /// The country's sequence number of this change (from 1).
    pub seq: u64,
    /// When the home node made the change, milliseconds since the epoch.
    pub time_ms: i64,
    /// Whether the authority is retired from this change on (requests refuse it).
    #[serde(default)]
    pub retired: bool,
    /// The whole record.
    pub authority: Authority,
}

/// What an update does, for counters and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Created or updated.
    Upsert,
    /// Retired.
    Retire,
}

impl DirectoryUpdate {
    /// What it does.
    pub fn op(&self) -> Op {
        if self.retired { Op::Retire } else { Op::Upsert }
    }
}

/// The body of an `imi.directory.update` envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBatch {
    /// The batch covers the sequence numbers after this one...
    pub from: u64,
    /// ...up to and including this one.
    pub to: u64,
    /// The newest update of each authority changed in `(from, to]`, in sequence order.
    pub updates: Vec<DirectoryUpdate>,
}

/// The body of an `imi.directory.sync` envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// The home node asked (the envelope's one recipient).
    pub country: NodeId,
    /// The asker has everything of that country up to this sequence number.
    pub have: u64,
}

/// Why an update batch or sync request is refused. [`UpdateError::code`] is the rejection
/// code of the signed receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// Larger than the limit, refused before decoding.
    #[error("body of {0} bytes is over the limit")]
    TooLarge(usize),
    /// Not the JSON shape of the body.
    #[error("malformed body: {0}")]
    Malformed(String),
    /// An update about another country's authority, or signed by a node that is not its
    /// home node.
    #[error("{sender} may not change authorities of {country}")]
    NotHomeNode {
        /// Who signed.
        sender: NodeId,
        /// Whose authority it is.
        country: NodeId,
    },
    /// The covered stretch is empty, or an update's number lies outside it, or numbers are
    /// not increasing.
    #[error("sequence numbers do not match the covered stretch")]
    BadSequence,
    /// More updates than [`MAX_BATCH_UPDATES`], or the same authority twice.
    #[error("too many updates, or one authority twice")]
    BadBatch,
    /// The authority record is not valid.
    #[error("invalid authority: {0}")]
    Authority(#[from] AuthorityError),
    /// A sync request about a node that is not its recipient.
    #[error("sync request about {asked} sent to {recipient}")]
    WrongRecipient {
        /// The node it asks about.
        asked: NodeId,
        /// The node it was sent to.
        recipient: NodeId,
    },
}

impl UpdateError {
    /// The stable code, sent in the signed receipt.
    pub fn code(&self) -> &'static str {
        match self {
            UpdateError::TooLarge(_) => "too_large",
            UpdateError::Malformed(_) => "malformed",
            UpdateError::NotHomeNode { .. } => "not_home_node",
            UpdateError::BadSequence => "bad_sequence",
            UpdateError::BadBatch => "bad_batch",
            UpdateError::Authority(e) => e.code(),
            UpdateError::WrongRecipient { .. } => "wrong_recipient",
        }
    }
}

impl UpdateBatch {
    /// Decodes and checks a batch signed by `sender`: size first, then shape, then that
    /// every update is about `sender`'s own country, numbered inside the covered stretch in
    /// increasing order, one per authority, each record valid.
    pub fn decode(bytes: &[u8], sender: NodeId) -> Result<UpdateBatch, UpdateError> {
        if bytes.len() > MAX_BATCH_BYTES {
            return Err(UpdateError::TooLarge(bytes.len()));
        }
        let batch: UpdateBatch =
            serde_json::from_slice(bytes).map_err(|e| UpdateError::Malformed(e.to_string()))?;
        batch.check(sender)?;
        Ok(batch)
    }

    /// The checks of [`UpdateBatch::decode`] on a batch in memory.
    pub fn check(&self, sender: NodeId) -> Result<(), UpdateError> {
        if self.from >= self.to {
            return Err(UpdateError::BadSequence);
        }
        if self.updates.len() > MAX_BATCH_UPDATES {
            return Err(UpdateError::BadBatch);
        }
        let mut last = self.from;
        let mut ids = BTreeSet::new();
        for u in &self.updates {
            for country in [u.country, u.authority.country] {
                if country != sender {
                    return Err(UpdateError::NotHomeNode { sender, country });
                }
            }
            if u.seq <= last || u.seq > self.to {
                return Err(UpdateError::BadSequence);
            }
            last = u.seq;
            if !ids.insert(&u.authority.id) {
                return Err(UpdateError::BadBatch);
            }
            u.authority.validate()?;
        }
        Ok(())
    }

    /// The body bytes (canonical JSON).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl SyncRequest {
    /// Decodes a sync request and checks it asks its recipient about itself.
    pub fn decode(bytes: &[u8], recipient: NodeId) -> Result<SyncRequest, UpdateError> {
        if bytes.len() > MAX_SYNC_BYTES {
            return Err(UpdateError::TooLarge(bytes.len()));
        }
        let req: SyncRequest =
            serde_json::from_slice(bytes).map_err(|e| UpdateError::Malformed(e.to_string()))?;
        if req.country != recipient {
            return Err(UpdateError::WrongRecipient {
                asked: req.country,
                recipient,
            });
        }
        Ok(req)
    }

    /// The body bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A replica's entry for one authority: the newest update it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The update.
    pub update: DirectoryUpdate,
}

impl Entry {
    /// The stored bytes (canonical JSON; replicas compare equal byte for byte).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&self.update).unwrap_or_default()
    }

    /// Reads stored bytes.
    pub fn decode(bytes: &[u8]) -> Option<Entry> {
        serde_json::from_slice(bytes)
            .ok()
            .map(|update| Entry { update })
    }

    /// Whether `update` replaces this entry: a higher sequence number, or at an equal number
    /// a greater canonical encoding (deterministic whatever the order of arrival).
    pub fn supersedes(&self, update: &DirectoryUpdate) -> bool {
        match update.seq.cmp(&self.update.seq) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => {
                serde_json::to_vec(update).unwrap_or_default() > self.encode()
            }
        }
    }
}

/// What a replica has seen of one country's sequence: everything up to `mark`, and some
/// stretches above it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coverage {
    /// Every sequence number up to this one has been seen.
    pub mark: u64,
    /// Stretches `(from, to]` above the mark, disjoint and ordered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub above: Vec<(u64, u64)>,
}

impl Coverage {
    /// Records that `(from, to]` has been seen; returns whether anything changed.
    pub fn add(&mut self, from: u64, to: u64) -> bool {
        if to <= self.mark || from >= to {
            return false;
        }
        let before = self.clone();
        self.above.push((from.max(self.mark), to));
        self.above.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.above.len());
        for (f, t) in self.above.drain(..) {
            match merged.last_mut() {
                Some(last) if f <= last.1 => last.1 = last.1.max(t),
                _ => merged.push((f, t)),
            }
        }
        while let Some(&(f, t)) = merged.first() {
            if f <= self.mark {
                self.mark = self.mark.max(t);
                merged.remove(0);
            } else {
                break;
            }
        }
        merged.truncate(MAX_COVERAGE_RANGES);
        self.above = merged;
        *self != before
    }

    /// The highest sequence number seen at all.
    pub fn highest(&self) -> u64 {
        self.above.last().map_or(self.mark, |r| r.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imi_domain::Level;
    use imi_protocol::ids::AuthorityId;
    use std::collections::BTreeMap;

    fn authority(id: &str, country: NodeId, name: &str) -> Authority {
        Authority {
            id: AuthorityId::new(id).unwrap(),
            country,
            names: BTreeMap::from([("en".to_owned(), name.to_owned())]),
            level: Level::National,
            areas: vec![],
            procedures: vec![],
            professions: vec![],
            competences: vec![],
            city: None,
            region: None,
        }
    }

    fn update(seq: u64, id: &str, name: &str) -> DirectoryUpdate {
        DirectoryUpdate {
            country: NodeId::DE,
            seq,
            time_ms: 1,
            retired: false,
            authority: authority(id, NodeId::DE, name),
        }
    }

    #[test]
    fn only_the_home_node_signs_its_authorities() {
        let batch = UpdateBatch {
            from: 0,
            to: 1,
            updates: vec![update(1, "DE-X", "x")],
        };
        assert!(UpdateBatch::decode(&batch.encode(), NodeId::DE).is_ok());
        let e = UpdateBatch::decode(&batch.encode(), NodeId::AT).unwrap_err();
        assert_eq!(e.code(), "not_home_node");
        // the update says AT, the record is German: refused even when AT signs
        let mut lying = batch.clone();
        lying.updates[0].country = NodeId::AT;
        assert_eq!(
            UpdateBatch::decode(&lying.encode(), NodeId::AT)
                .unwrap_err()
                .code(),
            "not_home_node"
        );
    }

    #[test]
    fn batches_are_checked_before_use() {
        let ok = UpdateBatch {
            from: 0,
            to: 3,
            updates: vec![update(1, "DE-X", "x"), update(3, "DE-Y", "y")],
        };
        assert!(ok.check(NodeId::DE).is_ok());
        for (bad, code) in [
            (
                UpdateBatch {
                    from: 3,
                    to: 3,
                    ..ok.clone()
                },
                "bad_sequence",
            ),
            (
                UpdateBatch {
                    to: 2,
                    ..ok.clone()
                },
                "bad_sequence",
            ),
            (
                UpdateBatch {
                    from: 1,
                    ..ok.clone()
                },
                "bad_sequence",
            ),
            (
                UpdateBatch {
                    updates: vec![update(3, "DE-Y", "y"), update(1, "DE-X", "x")],
                    ..ok.clone()
                },
                "bad_sequence",
            ),
            (
                UpdateBatch {
                    updates: vec![update(1, "DE-X", "x"), update(2, "DE-X", "y")],
                    ..ok.clone()
                },
                "bad_batch",
            ),
            (
                UpdateBatch {
                    updates: vec![update(1, "DE-X", " ")],
                    ..ok.clone()
                },
                "bad_name",
            ),
        ] {
            assert_eq!(bad.check(NodeId::DE).unwrap_err().code(), code, "{bad:?}");
        }
        assert_eq!(
            UpdateBatch::decode(&vec![b' '; MAX_BATCH_BYTES + 1], NodeId::DE)
                .unwrap_err()
                .code(),
            "too_large"
        );
        assert_eq!(
            UpdateBatch::decode(br#"{"from":0,"to":1,"updates":[],"x":1}"#, NodeId::DE)
                .unwrap_err()
                .code(),
            "malformed"
        );
        assert_eq!(
            SyncRequest::decode(br#"{"country":"AT","have":3}"#, NodeId::DE)
                .unwrap_err()
                .code(),
            "wrong_recipient"
        );
        assert_eq!(
            SyncRequest::decode(br#"{"country":"DE","have":3}"#, NodeId::DE).unwrap(),
            SyncRequest {
                country: NodeId::DE,
                have: 3
            }
        );
    }

    #[test]
    fn the_replica_rule_converges_whatever_the_order() {
        let ups = [
            update(1, "DE-X", "one"),
            update(2, "DE-X", "two"),
            update(2, "DE-X", "two, equivocated"),
            update(3, "DE-X", "three"),
        ];
        let mut results = BTreeSet::new();
        // every permutation of the four, each delivered twice
        let orders: [[usize; 4]; 6] = [
            [0, 1, 2, 3],
            [3, 2, 1, 0],
            [1, 3, 0, 2],
            [2, 0, 3, 1],
            [0, 2, 1, 3],
            [3, 0, 2, 1],
        ];
        for order in orders {
            let mut entry: Option<Entry> = None;
            for i in order.iter().chain(order.iter()) {
                let u = &ups[*i];
                if entry.as_ref().is_none_or(|e| e.supersedes(u)) {
                    entry = Some(Entry { update: u.clone() });
                }
            }
            results.insert(entry.unwrap().encode());
        }
        assert_eq!(results.len(), 1);
        // without the last update, the equivocation at 2 is settled the same way everywhere
        let mut a = Entry {
            update: ups[1].clone(),
        };
        let b = Entry {
            update: ups[2].clone(),
        };
        if a.supersedes(&b.update) {
            a = b.clone();
        }
        let mut c = b;
        if c.supersedes(&ups[1]) {
            c = Entry {
                update: ups[1].clone(),
            };
        }
        assert_eq!(a.encode(), c.encode());
    }

    #[test]
    fn coverage_merges_stretches_into_a_mark() {
        let mut c = Coverage::default();
        assert!(c.add(2, 3));
        assert_eq!((c.mark, c.highest()), (0, 3));
        assert!(c.add(0, 1));
        assert_eq!(c.mark, 1);
        assert!(!c.add(0, 1), "a duplicate changes nothing");
        assert!(c.add(1, 2));
        assert_eq!(
            c,
            Coverage {
                mark: 3,
                above: vec![]
            }
        );
        assert!(c.add(10, 20));
        assert!(c.add(3, 12));
        assert_eq!(
            c,
            Coverage {
                mark: 20,
                above: vec![]
            }
        );
        assert!(!c.add(5, 6));
        assert!(!c.add(7, 7));
    }
}
