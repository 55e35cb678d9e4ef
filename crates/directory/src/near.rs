//! The terms at most one edit from a word, found without scanning every term.
//!
//! Each term is filed under a hash of itself and of each of its one-letter deletions (a
//! deletion neighbourhood, as SymSpell does). Two words are at most one edit apart
//! (insertion, deletion, substitution, or transposition of neighbours) only if one of them,
//! or one of its deletions, equals the other or one of its deletions:
//!
//! * equal words share themselves;
//! * a substitution at `i`: both without their letter `i`;
//! * an insertion: the longer one without the inserted letter is the shorter one;
//! * `…ab…` and `…ba…` at `i`: the first without `a` (at `i`) is the second without `a`
//!   (at `i + 1`).
//!
//! So looking up the word's own hash and its deletions' hashes yields every term within one
//! edit, plus hash collisions and words two edits apart that share a deletion; each
//! candidate is then checked with [`within_one_edit`]. The answer is exactly the set of
//! terms within one edit (the test below compares it with a scan).
//!
//! Memory: 8 bytes per (term, deletion) pair and the terms themselves, about 3 MiB for the
//! folded terms of 12,500 authorities.

use std::collections::HashSet;

fn rest(x: &[char], i: usize) -> &[char] {
    x.get(i..).unwrap_or_default()
}

/// Whether two words are at most one edit apart (insertion, deletion, substitution, or a
/// transposition of neighbours).
pub(crate) fn within_one_edit(a: &[char], b: &[char]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let start = short.iter().zip(long).take_while(|(x, y)| x == y).count();
    if start == long.len() {
        return true;
    }
    if short.len() == long.len() {
        // substitution, or transposition of start and start+1
        rest(short, start + 1) == rest(long, start + 1)
            || (short.get(start) == long.get(start + 1)
                && short.get(start + 1) == long.get(start)
                && rest(short, start + 2) == rest(long, start + 2))
    } else {
        rest(short, start) == rest(long, start + 1)
    }
}

/// FNV-1a over the characters, skipping the one at `skip`.
fn hash(chars: &[char], skip: Option<usize>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, c) in chars.iter().enumerate() {
        if Some(i) == skip {
            continue;
        }
        for b in u32::from(*c).to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The hashes a word is filed and looked up under: itself, then each deletion.
fn keys(chars: &[char]) -> impl Iterator<Item = u32> + '_ {
    std::iter::once(None)
        .chain((0..chars.len()).map(Some))
        .map(|skip| (hash(chars, skip) >> 32) as u32)
}

/// Terms, filed under their deletion neighbourhoods.
#[derive(Debug, Default)]
pub(crate) struct OneEdit {
    terms: Vec<Box<str>>,
    /// Hashes of the terms held, so that a term is filed once.
    known: HashSet<u64>,
    /// `key << 32 | term index`, sorted.
    filed: Vec<u64>,
    /// Where the keys starting with each prefix (the top `64 - shift` bits) start in
    /// `filed`, one more entry than prefixes: a lookup reads two offsets and a few
    /// neighbouring entries instead of binary-searching the whole list. About eight entries
    /// per prefix, at most 2^16 prefixes.
    starts: Vec<u32>,
    shift: u32,
}

impl OneEdit {
    /// Files the terms not held yet.
    pub(crate) fn insert<'a>(&mut self, terms: impl IntoIterator<Item = &'a str>) {
        let mut fresh: Vec<u64> = Vec::new();
        for term in terms {
            let chars: Vec<char> = term.chars().collect();
            if !self.known.insert(hash(&chars, None)) {
                continue;
            }
            let Ok(ix) = u32::try_from(self.terms.len()) else {
                return;
            };
            self.terms.push(term.into());
            fresh.extend(keys(&chars).map(|k| (u64::from(k) << 32) | u64::from(ix)));
        }
        if fresh.is_empty() {
            return;
        }
        fresh.sort_unstable();
        fresh.dedup();
        // Merge two sorted runs: O(n), not a sort of everything held.
        let old = std::mem::take(&mut self.filed);
        let mut merged = Vec::with_capacity(old.len() + fresh.len());
        let (mut a, mut b) = (old.into_iter().peekable(), fresh.into_iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x <= y => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            merged.extend(next);
        }
        self.filed = merged;
        let bits = (self.filed.len() / 8).max(1).ilog2().clamp(1, 16);
        self.shift = 64 - bits;
        self.starts = vec![0; (1 << bits) + 1];
        let mut i = 0;
        for (prefix, start) in self.starts.iter_mut().enumerate() {
            while self
                .filed
                .get(i)
                .is_some_and(|f| ((f >> self.shift) as usize) < prefix)
            {
                i += 1;
            }
            *start = u32::try_from(i).unwrap_or(u32::MAX);
        }
    }

    /// Every term held that is at most one edit from `word` (`word` itself included when
    /// held), in no particular order.
    pub(crate) fn near(&self, word: &str) -> Vec<&str> {
        let w: Vec<char> = word.chars().collect();
        let mut ids: Vec<u32> = Vec::new();
        for key in keys(&w) {
            let prefix = ((u64::from(key) << 32) >> self.shift) as usize;
            let (Some(lo), Some(hi)) = (self.starts.get(prefix), self.starts.get(prefix + 1))
            else {
                continue;
            };
            let bucket = self
                .filed
                .get(*lo as usize..*hi as usize)
                .unwrap_or_default();
            let start = bucket.partition_point(|f| ((f >> 32) as u32) < key);
            ids.extend(
                bucket
                    .get(start..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|f| (*f >> 32) as u32 == key)
                    .map(|f| (*f & 0xffff_ffff) as u32),
            );
        }
        ids.sort_unstable();
        ids.dedup();
        let mut chars: Vec<char> = Vec::with_capacity(w.len() + 1);
        ids.into_iter()
            .filter_map(|i| self.terms.get(i as usize))
            .map(|t| &**t)
            .filter(|t| {
                chars.clear();
                chars.extend(t.chars());
                within_one_edit(&w, &chars)
            })
            .collect()
    }

    /// Terms held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.terms.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(a: &str, b: &str) -> bool {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        within_one_edit(&a, &b)
    }

    #[test]
    fn one_edit_apart() {
        assert!(one("zahnarzt", "zahnarzt"));
        assert!(one("zahnartz", "zahnarzt"), "transposition");
        assert!(one("zahnrzt", "zahnarzt"), "deletion");
        assert!(one("zahnarzzt", "zahnarzt"), "insertion");
        assert!(one("zahnarxt", "zahnarzt"), "substitution");
        assert!(one("οδοντιατροσ", "οδοντιατρος"));
        assert!(!one("zxhnartz", "zahnarzt"));
        assert!(!one("zahn", "zahnarzt"));
        assert!(!one("abcd", "badc"));
    }

    /// Every word within one edit of each probe, by scanning all of them.
    fn scan<'a>(terms: &[&'a str], word: &str) -> Vec<&'a str> {
        let w: Vec<char> = word.chars().collect();
        let mut v: Vec<&str> = terms
            .iter()
            .copied()
            .filter(|t| within_one_edit(&w, &t.chars().collect::<Vec<_>>()))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    #[test]
    fn finds_exactly_what_a_scan_finds() {
        // Words and their one- and two-edit neighbours, Latin, Greek, Cyrillic, short ones.
        let mut terms: Vec<String> = Vec::new();
        let bases = [
            "zahnarzt",
            "zahnarzte",
            "zahnartz",
            "wien",
            "wein",
            "wiener",
            "medecin",
            "medicin",
            "medicine",
            "οδοντιατρος",
            "οδοντιατροι",
            "лекар",
            "лекари",
            "ab",
            "ba",
            "a",
            "aa",
            "aaa",
            "kammer",
            "kammern",
            "kamer",
        ];
        for b in bases {
            terms.push(b.into());
            let c: Vec<char> = b.chars().collect();
            for i in 0..c.len() {
                let mut d = c.clone();
                d.remove(i);
                terms.push(d.iter().collect());
                let mut s = c.clone();
                s[i] = 'x';
                terms.push(s.iter().collect());
                if i + 1 < c.len() {
                    let mut t = c.clone();
                    t.swap(i, i + 1);
                    terms.push(t.iter().collect());
                }
            }
        }
        let all: Vec<&str> = terms.iter().map(String::as_str).collect();
        let mut near = OneEdit::default();
        // Filed in two batches, with repeats: the merge and the dedup are exercised.
        let (first, second) = all.split_at(all.len() / 2);
        near.insert(first.iter().copied());
        near.insert(all.iter().copied());
        near.insert(second.iter().copied());
        let mut distinct = all.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(near.len(), distinct.len());
        let probes = distinct.iter().copied().chain([
            "zahnaarzt",
            "xyz",
            "",
            "οδοντίατρος",
            "лекарр",
            "wine",
        ]);
        for p in probes {
            let mut got = near.near(p);
            got.sort_unstable();
            assert_eq!(got, scan(&distinct, p), "neighbours of {p:?}");
        }
    }
}
