//! The node's append-only transparency log (RFC 6962 hashing, [`imi_audit`]).
//!
//! The committer appends a leaf ([`imi_audit::leaf`]) for every envelope this node sends or
//! accepts, every receipt it signs or receives, every read of personal data and every
//! retention action, **in the same atomic batch** as the action it records. It stores the
//! leaf text (`log_leaves`), the hash of every perfect subtree the leaf completes
//! (`log_nodes`), and the new size (`meta`, `log/size`), so that roots and proofs of any
//! size cost O(log² n) reads. Checkpoints (C2SP signed notes) are stored in `checkpoints`.
//!
//! Which kinds are logged is the applications' choice ([`crate::Application::logged`]):
//! witness traffic is not, since logging it would make each checkpoint grow the log the
//! next one covers.
use crate::keys;
use imi_audit::leaf::Leaf;
use imi_audit::merkle::{self, Hash, Nodes};
use imi_protocol::{CaseId, Header, MessageId, NodeId, ReceiptBody};
use imi_store::{ReadStore, StoreError, WriteBatch};
use std::collections::HashMap;

/// `meta` key of the log size.
pub const SIZE_KEY: &[u8] = b"log/size";
/// `meta` key prefix of a case's head: the index of the case's latest leaf (followed by the
/// 16-byte case id).
pub const CASE_HEAD_PREFIX: &[u8] = b"log/case/";

/// How many written case heads the committer keeps in memory (then it starts over).
const WRITTEN_HEADS: usize = 65_536;

/// `meta` key of a case's head.
pub fn case_head_key(case: &CaseId) -> Vec<u8> {
    let mut k = CASE_HEAD_PREFIX.to_vec();
    k.extend_from_slice(case.as_bytes());
    k
}

/// The index of the case's latest leaf, as stored.
pub fn case_head(store: &dyn ReadStore, case: &CaseId) -> Result<Option<u64>, StoreError> {
    Ok(store
        .get(keys::META, &case_head_key(case))?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map(u64::from_be_bytes))
}

/// One leaf by index.
pub fn leaf_at(store: &dyn ReadStore, index: u64) -> Result<Option<(Leaf, String)>, StoreError> {
    Ok(store
        .get(keys::LOG_LEAVES, &index.to_be_bytes())?
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|t| Some((Leaf::parse(&t)?, t))))
}

/// The leaves of a case below tree size `size`, newest first, by following the `prev` chain
/// from the case's head: the case's whole history in the log up to that size.
pub fn case_chain(
    store: &dyn ReadStore,
    case: &CaseId,
    size: u64,
) -> Result<Vec<(u64, Leaf, String)>, StoreError> {
    let mut out = Vec::new();
    let mut next = case_head(store, case)?;
    while let Some(i) = next {
        let Some((leaf, text)) = leaf_at(store, i)? else {
            break;
        };
        next = match leaf.prev() {
            imi_audit::leaf::Prev::After(p) if p < i => Some(p),
            _ => None,
        };
        if i < size {
            out.push((i, leaf, text));
        }
    }
    Ok(out)
}

/// Whether a leaf of this kind records an envelope or a receipt (a step of its case), not a
/// read or another action of this node.
pub fn is_step_kind(kind: &str) -> bool {
    matches!(
        kind,
        "envelope_out" | "envelope_in" | "receipt_in" | "receipt_out"
    )
}

/// The case's envelope and receipt leaves ([`is_step_kind`]), newest first: the `prev`
/// chain from the case's head, jumping over the case's other leaves (reads of personal data
/// are a leaf each, and a case read a thousand times would otherwise cost a thousand leaf
/// reads on every read) through their `log_skip` rows. Leaves written before that index
/// existed have no row and are walked one by one; the caller skips the kinds it does not
/// want.
pub fn case_steps(
    store: &dyn ReadStore,
    case: &CaseId,
) -> Result<Vec<(u64, Leaf, String)>, StoreError> {
    let mut out = Vec::new();
    let mut next = case_head(store, case)?;
    while let Some(i) = next {
        if let Some(v) = store.get(keys::LOG_SKIP, &i.to_be_bytes())? {
            next = decode_skip(&v).filter(|s| *s < i);
            continue;
        }
        let Some((leaf, text)) = leaf_at(store, i)? else {
            break;
        };
        next = match leaf.prev() {
            imi_audit::leaf::Prev::After(p) if p < i => Some(p),
            _ => None,
        };
        out.push((i, leaf, text));
    }
    Ok(out)
}

/// A `log_skip` value: 8 bytes, or none when the case had no step leaf before.
fn encode_skip(step: Option<u64>) -> Vec<u8> {
    step.map_or_else(Vec::new, |s| s.to_be_bytes().to_vec())
}

fn decode_skip(v: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(v).ok().map(u64::from_be_bytes)
}

/// Where a case's walk to its steps goes on from its head `head`: the head itself if it is a
/// step leaf (or a leaf from before the index), else its `log_skip` target.
fn step_of(store: &dyn ReadStore, head: u64) -> Option<u64> {
    match store.get(keys::LOG_SKIP, &head.to_be_bytes()) {
        Ok(Some(v)) => decode_skip(&v),
        _ => Some(head),
    }
}

/// `log_nodes` key.
pub fn node_key(level: u32, index: u64) -> Vec<u8> {
    let mut k = vec![u8::try_from(level).unwrap_or(u8::MAX)];
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// Reads perfect-subtree hashes from the store: a leaf's own hash (level 0) from its text
/// in `log_leaves`, the levels above from `log_nodes`.
pub struct StoreNodes<'a>(pub &'a dyn ReadStore);

impl Nodes for StoreNodes<'_> {
    fn node(&self, level: u32, index: u64) -> Option<Hash> {
        if level == 0 {
            let text = self
                .0
                .get(keys::LOG_LEAVES, &index.to_be_bytes())
                .ok()
                .flatten()?;
            return Some(merkle::leaf_hash(&text));
        }
        self.0
            .get(keys::LOG_NODES, &node_key(level, index))
            .ok()
            .flatten()
            .and_then(|v| v.try_into().ok())
    }
}

/// Every leaf of the log below `size`, parsed: index, leaf, exact text. Leaves that do not
/// parse (none should) are skipped. The whole log in memory: for a reader that needs it all
/// (the simulator's accounting); a node answering a request walks it with
/// [`for_each_leaf`].
pub fn leaves(store: &dyn ReadStore, size: u64) -> Result<Vec<(u64, Leaf, String)>, StoreError> {
    let mut out = Vec::new();
    for_each_leaf(store, size, |i, leaf, text| out.push((i, leaf, text)))?;
    Ok(out)
}

/// How many leaves [`for_each_leaf`] reads at a time.
const LEAF_CHUNK: usize = 1024;

/// Calls `f` with every leaf of the log below `size` (index, leaf, exact text), in index
/// order, reading 1,024 leaves at a time: what it holds at once is one chunk, whatever
/// the log's size (a node that has logged millions of events answering a time-range bundle).
/// Leaves that do not parse (none should) are skipped.
pub fn for_each_leaf(
    store: &dyn ReadStore,
    size: u64,
    f: impl FnMut(u64, Leaf, String),
) -> Result<(), StoreError> {
    for_each_leaf_in_chunks(store, size, LEAF_CHUNK, f)
}

fn for_each_leaf_in_chunks(
    store: &dyn ReadStore,
    size: u64,
    chunk: usize,
    mut f: impl FnMut(u64, Leaf, String),
) -> Result<(), StoreError> {
    let end = size.to_be_bytes();
    imi_store::for_each_entry(store, keys::LOG_LEAVES, &[], Some(&end), chunk, |k, v| {
        let parsed = <[u8; 8]>::try_from(k.as_slice())
            .ok()
            .zip(String::from_utf8(v).ok())
            .and_then(|(i, text)| Some((u64::from_be_bytes(i), Leaf::parse(&text)?, text)));
        if let Some((i, leaf, text)) = parsed {
            f(i, leaf, text);
        }
        true
    })
}

/// The log's size as stored.
pub fn size(store: &dyn ReadStore) -> Result<u64, StoreError> {
    Ok(store
        .get(keys::META, SIZE_KEY)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes))
}

/// A case's newest leaf and where the walk to its steps goes on from it: the leaf itself
/// if it records an envelope or a receipt, else the newest such leaf before it (`None`:
/// there is none).
#[derive(Debug, Clone, Copy)]
struct Head {
    index: u64,
    step: Option<u64>,
}

/// The committer's view of the log's right edge: the size and the hashes of the perfect
/// subtrees still waiting for a right sibling (one per set bit of the size).
#[derive(Debug, Clone, Default)]
pub struct LogState {
    /// Leaves so far.
    pub size: u64,
    /// The size when the current commit group started ([`LogState::finish_group`]).
    size_at_start: u64,
    frontier: Vec<Option<Hash>>,
    /// Case heads appended in the current commit group (not yet readable from the store),
    /// each with where the walk to the case's steps goes on from it ([`step_of`]).
    heads: HashMap<CaseId, Head>,
    /// Case heads of written groups, most recent first to be kept: spares a store read for a
    /// case that is active. Shared by the state's clones (the committer's snapshot) and only
    /// filled after a group's write succeeded, so it never holds a head that is not stored.
    written: std::sync::Arc<std::sync::Mutex<HashMap<CaseId, Head>>>,
}

impl LogState {
    /// Loads the state from the store.
    pub fn load(store: &dyn ReadStore) -> Result<Self, StoreError> {
        let size = size(store)?;
        let nodes = StoreNodes(store);
        let mut frontier = Vec::new();
        for level in 0..64u32 {
            if size >> level == 0 {
                break;
            }
            frontier.push(if (size >> level) & 1 == 1 {
                nodes.node(level, (size >> level) - 1)
            } else {
                None
            });
        }
        Ok(Self {
            size,
            size_at_start: size,
            frontier,
            heads: HashMap::new(),
            written: Default::default(),
        })
    }

    /// Starts a commit group: the case heads of earlier groups are read from the store (a
    /// group that failed to write left none behind).
    pub fn start_group(&mut self) {
        self.heads.clear();
        self.size_at_start = self.size;
    }

    /// The group's write succeeded: its case heads are stored, and kept for the next groups.
    pub fn group_written(&mut self) {
        if let Ok(mut w) = self.written.lock() {
            if w.len() + self.heads.len() > WRITTEN_HEADS {
                w.clear();
            }
            w.extend(self.heads.drain());
        }
    }

    /// Appends a leaf to `batch`; returns its index. A leaf of a case gets `prev`, the index
    /// of the case's previous leaf (read from `store` or this group's earlier appends), and
    /// becomes the case's head in the same batch.
    pub fn append(&mut self, store: &dyn ReadStore, batch: &mut WriteBatch, text: &str) -> u64 {
        match Leaf::parse(text) {
            Some(leaf) => self.append_leaf(store, batch, leaf),
            None => self.append_text(batch, text.as_bytes().to_vec()),
        }
    }

    /// [`LogState::append`] for a leaf already built (the engine's own leaves): not
    /// formatted, parsed and formatted again.
    pub fn append_leaf(
        &mut self,
        store: &dyn ReadStore,
        batch: &mut WriteBatch,
        leaf: Leaf,
    ) -> u64 {
        let chained = self.chain(store, batch, leaf);
        self.append_text(batch, chained.into_bytes())
    }

    /// Fills in `prev` of the next leaf if it is a case's (and makes it the case's head); a
    /// leaf of no case is unchanged. Returns the leaf's text.
    fn chain(&mut self, store: &dyn ReadStore, batch: &mut WriteBatch, mut leaf: Leaf) -> String {
        let index = self.size;
        let Some(case) = leaf.case().and_then(|c| c.parse::<CaseId>().ok()) else {
            return leaf.text();
        };
        let prev = match self.heads.get(&case) {
            Some(p) => Some(*p),
            None => match self.written.lock().ok().and_then(|w| w.get(&case).copied()) {
                Some(p) => Some(p),
                None => case_head(store, &case).ok().flatten().map(|h| Head {
                    index: h,
                    step: step_of(store, h),
                }),
            },
        };
        leaf.set(
            "prev",
            &prev.map_or_else(|| "-".to_owned(), |p| p.index.to_string()),
        );
        let step = if is_step_kind(&leaf.kind) {
            Some(index)
        } else {
            let step = prev.and_then(|p| p.step);
            batch.put(
                keys::LOG_SKIP,
                index.to_be_bytes().to_vec(),
                encode_skip(step),
            );
            step
        };
        self.heads.insert(case, Head { index, step });
        batch.put(
            keys::META,
            case_head_key(&case),
            index.to_be_bytes().to_vec(),
        );
        leaf.text()
    }

    /// Writes the next leaf's bytes and the tree nodes above it that it completes (its own
    /// hash is not stored: [`StoreNodes`] hashes the text); returns its index.
    fn append_text(&mut self, batch: &mut WriteBatch, text: Vec<u8>) -> u64 {
        let index = self.size;
        let mut h = merkle::leaf_hash(&text);
        batch.put(keys::LOG_LEAVES, index.to_be_bytes().to_vec(), text);
        let mut level = 0usize;
        loop {
            if self.frontier.len() <= level {
                self.frontier.push(None);
            }
            let Some(slot) = self.frontier.get_mut(level) else {
                break;
            };
            match slot.take() {
                Some(left) => {
                    h = merkle::node_hash(&left, &h);
                    let lvl = u32::try_from(level + 1).unwrap_or(u32::MAX);
                    batch.put(
                        keys::LOG_NODES,
                        node_key(lvl, index >> (level + 1)),
                        h.to_vec(),
                    );
                    level += 1;
                }
                None => {
                    *slot = Some(h);
                    break;
                }
            }
        }
        self.size += 1;
        index
    }

    /// Ends a commit group's batch: the log's new size, once for all the leaves the group
    /// appended (nothing when it appended none). The committer calls it last, before the
    /// write, so that the size and the leaves are stored together.
    pub fn finish_group(&self, batch: &mut WriteBatch) {
        if self.size != self.size_at_start {
            batch.put(
                keys::META,
                SIZE_KEY.to_vec(),
                self.size.to_be_bytes().to_vec(),
            );
        }
    }
}

/// The leaf of an envelope this node sent (`out`) or accepted. Every field, the step
/// included, is the signed header's.
pub fn envelope_leaf(out: bool, hash: &[u8; 32], h: &Header) -> Leaf {
    let to: Vec<&str> = h.to.iter().map(NodeId::as_str).collect();
    Leaf::new(
        if out { "envelope_out" } else { "envelope_in" },
        &[
            &hex::encode(hash),
            &h.id.to_string(),
            h.kind.as_str(),
            h.from.as_str(),
            &to.join(","),
            &h.case.map_or_else(|| "-".to_owned(), |c| c.to_string()),
            &h.created.to_string(),
            h.step.as_ref().map_or("-", |s| s.as_str()),
        ],
    )
}

/// The leaf of a receipt this node received (`incoming`) or signed, for an envelope of
/// `case`.
pub fn receipt_leaf(
    incoming: bool,
    bytes: &[u8],
    body: &ReceiptBody,
    case: Option<&CaseId>,
) -> Leaf {
    Leaf::new(
        if incoming {
            "receipt_in"
        } else {
            "receipt_out"
        },
        &[
            &hex::encode(imi_protocol::sha256(bytes)),
            &body
                .message_id
                .map_or_else(String::new, |m: MessageId| m.to_string()),
            &case.map_or_else(|| "-".to_owned(), ToString::to_string),
            body.receiver.as_str(),
            body.outcome.label(),
            &body.received.to_string(),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use imi_store::{Durability, MemStore, Store};

    fn leaf(case: &CaseId, at: u64) -> String {
        Leaf::new("retention", &[&case.to_string(), "block", &at.to_string()]).text()
    }

    fn prev_of(store: &MemStore, index: u64) -> imi_audit::leaf::Prev {
        leaf_at(store, index).unwrap().unwrap().0.prev()
    }

    #[test]
    fn a_built_leaf_is_appended_as_its_text_would_be() {
        use imi_audit::leaf::Prev;
        let store = MemStore::new(crate::Engine::columns());
        let (a, b) = (CaseId([1; 16]), CaseId([2; 16]));
        let header = |case: Option<CaseId>| Header {
            v: imi_protocol::PROTOCOL_VERSION,
            id: MessageId([9; 16]),
            kind: imi_protocol::Kind::new("diagnostic").unwrap(),
            step: None,
            from: NodeId::AT,
            authority: imi_protocol::AuthorityId::new("AT-NC").unwrap(),
            to: vec![NodeId::DE, NodeId::HU],
            case,
            prev: vec![],
            created: 7,
            commitment: [0; 32],
        };
        let leaves = [
            envelope_leaf(true, &[1; 32], &header(Some(a))),
            envelope_leaf(false, &[2; 32], &header(None)),
            Leaf::new("retention", &[&b.to_string(), "block", "8"]),
            envelope_leaf(true, &[3; 32], &header(Some(a))),
            Leaf::new("retention", &[&b.to_string(), "delete\nline", "9"]),
        ];
        let (mut by_text, mut by_leaf) = (LogState::default(), LogState::default());
        let (mut texts, mut built) = (WriteBatch::new(), WriteBatch::new());
        for l in &leaves {
            by_text.append(&store, &mut texts, &l.text());
            by_leaf.append_leaf(&store, &mut built, l.clone());
        }
        // The same writes, the chain included: a's second leaf names its first.
        assert_eq!(texts.ops(), built.ops());
        store.write(built, Durability::Sync).unwrap();
        assert_eq!(prev_of(&store, 3), Prev::After(0));
        assert_eq!(prev_of(&store, 4), Prev::After(2));
        // Text that is not a leaf is logged as it is, chained to nothing.
        let odd = "imi-leaf/1\ntype=other\ncase=x\n";
        let mut batch = WriteBatch::new();
        by_leaf.append(&store, &mut batch, odd);
        let leaf_writes: Vec<&imi_store::Op> = batch
            .ops()
            .iter()
            .filter(|op| op.column() != keys::LOG_NODES)
            .collect();
        assert_eq!(
            leaf_writes,
            [&imi_store::Op::Put {
                col: keys::LOG_LEAVES,
                key: 5u64.to_be_bytes().to_vec(),
                value: odd.as_bytes().to_vec(),
            }]
        );
    }

    #[test]
    fn a_leafs_own_hash_is_read_from_its_text_and_the_tree_matches_one_built_in_memory() {
        let store = MemStore::new(crate::Engine::columns());
        let mut log = LogState::default();
        let mut tree = merkle::MemTree::default();
        for round in 0..5u64 {
            log.start_group();
            let mut batch = WriteBatch::new();
            for i in 0..(round * 3 + 1) {
                let text = leaf(&CaseId([(i % 3) as u8; 16]), round * 100 + i);
                let index = log.append(&store, &mut batch, &text);
                let stored = store_text_after(&batch, index);
                tree.push(merkle::leaf_hash(stored.as_bytes()));
            }
            // No level-0 row is written: a leaf's hash is its text's.
            assert!(!batch.ops().iter().any(|op| matches!(op,
                imi_store::Op::Put { col, key, .. } if *col == keys::LOG_NODES && key[0] == 0)));
            log.finish_group(&mut batch);
            store.write(batch, Durability::Sync).unwrap();
            log.group_written();
        }
        let nodes = StoreNodes(&store);
        let n = tree.size();
        assert_eq!(n, 35);
        for size in 1..=n {
            assert_eq!(
                merkle::root(&nodes, size),
                merkle::root(&tree, size),
                "root {size}"
            );
        }
        for i in 0..n {
            assert_eq!(nodes.node(0, i), tree.node(0, i));
            assert_eq!(
                merkle::inclusion_proof(&nodes, i, n),
                merkle::inclusion_proof(&tree, i, n)
            );
        }
        assert_eq!(nodes.node(0, n), None, "no leaf past the end");
        // A restart finds the right edge from the stored tree.
        let again = LogState::load(&store).unwrap();
        assert_eq!(again.size, n);
        assert_eq!(again.frontier, log.frontier);
    }

    /// The text `batch` writes for leaf `index`.
    fn store_text_after(batch: &WriteBatch, index: u64) -> String {
        batch
            .ops()
            .iter()
            .find_map(|op| match op {
                imi_store::Op::Put { col, key, value }
                    if *col == keys::LOG_LEAVES && key.as_slice() == index.to_be_bytes() =>
                {
                    Some(String::from_utf8(value.clone()).unwrap())
                }
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn case_leaves_chain_across_groups_and_a_failed_group_leaves_no_trace() {
        use imi_audit::leaf::Prev;
        let store = MemStore::new(crate::Engine::columns());
        let (a, b) = (CaseId([1; 16]), CaseId([2; 16]));
        let mut log = LogState::default();
        // Group 1: a, b, a.
        log.start_group();
        let mut batch = WriteBatch::new();
        for (case, at) in [(&a, 1), (&b, 2), (&a, 3)] {
            log.append(&store, &mut batch, &leaf(case, at));
        }
        log.finish_group(&mut batch);
        // The size goes into the batch once for the group, after its leaves.
        let sizes = batch
            .ops()
            .iter()
            .filter(|op| matches!(op, imi_store::Op::Put { col, key, .. } if *col == keys::META && key.as_slice() == SIZE_KEY))
            .count();
        assert_eq!(sizes, 1);
        store.write(batch, Durability::Sync).unwrap();
        assert_eq!(size(&store).unwrap(), 3);
        log.group_written();
        assert_eq!(prev_of(&store, 0), Prev::First);
        assert_eq!(prev_of(&store, 1), Prev::First);
        assert_eq!(prev_of(&store, 2), Prev::After(0));
        // Group 2 fails: its state is rolled back as the committer does, nothing written.
        let snapshot = log.clone();
        log.start_group();
        let mut lost = WriteBatch::new();
        log.append(&store, &mut lost, &leaf(&a, 4));
        drop(lost);
        log = snapshot;
        // Group 3: a's next leaf names 2 (not the lost 3), b's names 1.
        log.start_group();
        let mut batch = WriteBatch::new();
        log.append(&store, &mut batch, &leaf(&a, 5));
        log.append(&store, &mut batch, &leaf(&b, 6));
        log.finish_group(&mut batch);
        store.write(batch, Durability::Sync).unwrap();
        log.group_written();
        assert_eq!(prev_of(&store, 3), Prev::After(2));
        assert_eq!(prev_of(&store, 4), Prev::After(1));
        // A fresh state (a restart) reads the heads from the store.
        let mut again = LogState::load(&store).unwrap();
        again.start_group();
        let mut batch = WriteBatch::new();
        again.append(&store, &mut batch, &leaf(&a, 7));
        again.finish_group(&mut batch);
        store.write(batch, Durability::Sync).unwrap();
        assert_eq!(size(&store).unwrap(), 6);
        // A group without leaves leaves the size alone.
        again.start_group();
        let mut batch = WriteBatch::new();
        again.finish_group(&mut batch);
        assert!(batch.is_empty());
        assert_eq!(prev_of(&store, 5), Prev::After(3));
        let chain: Vec<u64> = case_chain(&store, &a, u64::MAX)
            .unwrap()
            .into_iter()
            .map(|(i, _, _)| i)
            .collect();
        assert_eq!(chain, [5, 3, 2, 0]);
    }

    #[test]
    fn the_log_is_walked_a_chunk_at_a_time_every_leaf_once_in_order_below_the_size() {
        let store = MemStore::new(crate::Engine::columns());
        let case = CaseId([3; 16]);
        let mut log = LogState::default();
        log.start_group();
        let mut batch = WriteBatch::new();
        for at in 0..10 {
            log.append(&store, &mut batch, &leaf(&case, at));
        }
        log.finish_group(&mut batch);
        // A row that is not a leaf (none should be there) is skipped, not a stop.
        batch.put(
            keys::LOG_LEAVES,
            4u64.to_be_bytes().to_vec(),
            b"not a leaf".to_vec(),
        );
        store.write(batch, Durability::Sync).unwrap();
        let want: Vec<u64> = (0..10).filter(|i| *i != 4).collect();
        // Chunks smaller than the log, dividing it, the size of it, larger; sizes below it.
        for chunk in [1, 2, 3, 5, 9, 10, 11, 1024] {
            for size in [0, 1, 4, 5, 9, 10, u64::MAX] {
                let mut seen = Vec::new();
                for_each_leaf_in_chunks(&store, size, chunk, |i, l, text| {
                    assert_eq!(l.text(), text);
                    seen.push(i);
                })
                .unwrap();
                let expect: Vec<u64> = want.iter().copied().filter(|i| *i < size).collect();
                assert_eq!(seen, expect, "chunk {chunk}, size {size}");
            }
        }
        let all: Vec<u64> = leaves(&store, u64::MAX)
            .unwrap()
            .into_iter()
            .map(|(i, _, _)| i)
            .collect();
        assert_eq!(all, want);
    }

    fn envelope(case: &CaseId, at: u64) -> String {
        let c = case.to_string();
        let t = at.to_string();
        Leaf::new(
            "envelope_out",
            &["00", "01", "imi.request", "AT", "DE", &c, &t, "create"],
        )
        .text()
    }

    fn receipt(case: &CaseId, at: u64) -> String {
        let (c, t) = (case.to_string(), at.to_string());
        Leaf::new("receipt_in", &["00", "01", &c, "DE", "accepted", &t]).text()
    }

    fn read(case: &CaseId, at: u64) -> String {
        let (c, t) = (case.to_string(), at.to_string());
        Leaf::new("access", &["ab", "AT-NC", &c, "read_request", &t]).text()
    }

    fn indices(v: Vec<(u64, Leaf, String)>) -> Vec<u64> {
        v.into_iter().map(|(i, _, _)| i).collect()
    }

    /// A case page shows its steps' deliveries: the case's envelope and receipt leaves.
    /// Every read of the case is a leaf of its chain too, so walking the chain made each
    /// read cost one leaf read per earlier read (found measuring `GET /api/v1/requests/{id}`:
    /// 2.1 ms of CPU per read after 500 reads of one case, 4.9 ms after 2,000). The walk to
    /// the steps jumps over the reads, across groups and a restart, and still walks leaves
    /// written before the index existed.
    #[test]
    fn a_cases_steps_are_found_without_walking_its_reads() {
        let store = MemStore::new(crate::Engine::columns());
        let (a, b) = (CaseId([1; 16]), CaseId([2; 16]));
        let mut log = LogState::default();
        let group = |log: &mut LogState, leaves: &[String]| {
            log.start_group();
            let mut batch = WriteBatch::new();
            for l in leaves {
                log.append(&store, &mut batch, l);
            }
            log.finish_group(&mut batch);
            store.write(batch, Durability::Sync).unwrap();
            log.group_written();
        };
        // 0 envelope, 1–2 reads, 3 b, 4 receipt, 5–204 reads of a.
        let mut first = vec![envelope(&a, 0), read(&a, 1), read(&a, 2), leaf(&b, 3)];
        first.push(receipt(&a, 4));
        group(&mut log, &first);
        for at in 0..200 {
            group(&mut log, &[read(&a, 5 + at)]);
        }
        // A restart, then a read (205), a step received (206) and a read (207).
        let mut log = LogState::load(&store).unwrap();
        group(&mut log, &[read(&a, 205)]);
        group(&mut log, &[envelope(&a, 206), read(&a, 207)]);
        assert_eq!(indices(case_steps(&store, &a).unwrap()), [206, 4, 0]);
        // The same steps as the whole chain holds.
        let whole: Vec<u64> = case_chain(&store, &a, u64::MAX)
            .unwrap()
            .into_iter()
            .filter(|(_, l, _)| is_step_kind(&l.kind))
            .map(|(i, _, _)| i)
            .collect();
        assert_eq!(whole, [206, 4, 0]);
        assert_eq!(case_chain(&store, &a, u64::MAX).unwrap().len(), 207);
        // A case without a step yet: its reads lead nowhere.
        group(&mut log, &[read(&b, 208)]);
        assert_eq!(indices(case_steps(&store, &b).unwrap()), Vec::<u64>::new());

        // Case c's leaves from before the index: the reads have no row and are walked.
        let c = CaseId([3; 16]);
        group(&mut log, &[envelope(&c, 209), read(&c, 210), read(&c, 211)]);
        let mut old = WriteBatch::new();
        old.delete(keys::LOG_SKIP, 210u64.to_be_bytes().to_vec());
        old.delete(keys::LOG_SKIP, 211u64.to_be_bytes().to_vec());
        store.write(old, Durability::Sync).unwrap();
        let mut log = LogState::load(&store).unwrap();
        group(&mut log, &[read(&c, 212), receipt(&c, 213), read(&c, 214)]);
        let steps = case_steps(&store, &c).unwrap();
        let found: Vec<u64> = steps
            .iter()
            .filter(|(_, l, _)| is_step_kind(&l.kind))
            .map(|(i, _, _)| *i)
            .collect();
        assert_eq!(found, [213, 209]);
        assert_eq!(indices(steps), [213, 211, 210, 209]);
    }
}
