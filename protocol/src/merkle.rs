//! RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and consistency proofs.
//!
//! Leaf hash `SHA-256(0x00 ‖ data)`, interior node `SHA-256(0x01 ‖ left ‖ right)`; the tree
//! of `n` leaves splits at the largest power of two smaller than `n`. Proofs are generated
//! from a [`Nodes`] source that knows the hash of every *perfect* subtree (2^level leaves
//! starting at a multiple of 2^level), which an append-only log can store as it grows, so
//! any proof costs O(log² n) lookups. Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2.
use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The hash of a leaf.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// The hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The hashes of perfect subtrees: `node(level, index)` covers leaves
/// `[index·2^level, (index+1)·2^level)`; level 0 are the leaf hashes.
pub trait Nodes {
    /// The hash, if that subtree is complete in the source.
    fn node(&self, level: u32, index: u64) -> Option<Hash>;
}

fn largest_pow2_below(n: u64) -> u64 {
    // n >= 2
    1 << (63 - (n - 1).leading_zeros())
}

/// MTH of the `n` leaves starting at `start` (a subtree of the RFC 6962 recursion).
pub fn subtree(src: &impl Nodes, start: u64, n: u64) -> Option<Hash> {
    match n {
        0 => Some(empty_root()),
        n if n.is_power_of_two() && start.is_multiple_of(n) => {
            src.node(n.trailing_zeros(), start / n)
        }
        1 => src.node(0, start),
        n => {
            let k = largest_pow2_below(n);
            Some(node_hash(
                &subtree(src, start, k)?,
                &subtree(src, start + k, n - k)?,
            ))
        }
    }
}

/// The root of the first `size` leaves.
pub fn root(src: &impl Nodes, size: u64) -> Option<Hash> {
    subtree(src, 0, size)
}

/// The audit path of leaf `index` in the tree of the first `size` leaves (RFC 6962 PATH).
pub fn inclusion_proof(src: &impl Nodes, index: u64, size: u64) -> Option<Vec<Hash>> {
    if index >= size {
        return None;
    }
    let mut out = Vec::new();
    path(src, index, 0, size, &mut out)?;
    Some(out)
}

fn path(src: &impl Nodes, m: u64, start: u64, n: u64, out: &mut Vec<Hash>) -> Option<()> {
    if n <= 1 {
        return Some(());
    }
    let k = largest_pow2_below(n);
    if m < k {
        path(src, m, start, k, out)?;
        out.push(subtree(src, start + k, n - k)?);
    } else {
        path(src, m - k, start + k, n - k, out)?;
        out.push(subtree(src, start, k)?);
    }
    Some(())
}

/// The consistency proof from the tree of `m` leaves to the tree of `n` leaves (RFC 6962
/// PROOF).
pub fn consistency_proof(src: &impl Nodes, m: u64, n: u64) -> Option<Vec<Hash>> {
    if m > n || m == 0 {
        return if m == 0 && n >= m {
            Some(Vec::new())
        } else {
            None
        };
    }
    let mut out = Vec::new();
    subproof(src, m, 0, n, true, &mut out)?;
    Some(out)
}

fn subproof(
    src: &impl Nodes,
    m: u64,
    start: u64,
    n: u64,
    b: bool,
    out: &mut Vec<Hash>,
) -> Option<()> {
    if m == n {
        if !b {
            out.push(subtree(src, start, n)?);
        }
        return Some(());
    }
    let k = largest_pow2_below(n);
    if m <= k {
        subproof(src, m, start, k, b, out)?;
        out.push(subtree(src, start + k, n - k)?);
    } else {
        subproof(src, m - k, start + k, n - k, false, out)?;
        out.push(subtree(src, start, k)?);
    }
    Some(())
}

/// Verifies that `leaf` is leaf `index` of the tree of `size` leaves with root `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && r == *root
}

/// Verifies a consistency proof between the tree of `m` leaves with root `root_m` and the
/// tree of `n` leaves with root `root_n` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(m: u64, n: u64, proof: &[Hash], root_m: &Hash, root_n: &Hash) -> bool {
    if m > n || m == 0 {
        return m == 0 && proof.is_empty();
    }
    if m == n {
        return proof.is_empty() && root_m == root_n;
    }
    if proof.is_empty() {
        return false;
    }
    let mut proof: Vec<Hash> = proof.to_vec();
    if m.is_power_of_two() {
        proof.insert(0, *root_m);
    }
    let Some((first, rest)) = proof.split_first() else {
        return false;
    };
    let (mut f_n, mut s_n) = (m - 1, n - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    fr == *root_m && sr == *root_n && s_n == 0
}

/// An in-memory tree that keeps every perfect subtree hash (for tests, bundles and the
/// verifier).
#[derive(Debug, Clone, Default)]
pub struct MemTree {
    levels: Vec<Vec<Hash>>,
}

impl MemTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a leaf hash; returns its index.
    pub fn push(&mut self, leaf: Hash) -> u64 {
        let index = self.size();
        let mut h = leaf;
        let mut level = 0usize;
        // Store the leaf, then every perfect subtree it completes.
        loop {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            let Some(row) = self.levels.get_mut(level) else {
                break;
            };
            row.push(h);
            let len = row.len();
            if len % 2 == 1 {
                break;
            }
            let Some(left) = row.get(len - 2).copied() else {
                break;
            };
            h = node_hash(&left, &h);
            level += 1;
        }
        index
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        root(self, self.size()).unwrap_or_else(empty_root)
    }
}

impl Nodes for MemTree {
    fn node(&self, level: u32, index: u64) -> Option<Hash> {
        self.levels
            .get(level as usize)?
            .get(usize::try_from(index).ok()?)
            .copied()
    }
}
