//! One test suite run against every [`Store`] engine, plus RocksDB persistence and crash tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use imi_store::{
    Column, Durability, MIN_BLOB_BYTES, MemStore, Op, ReadStore, RocksConfig, RocksStore, Store,
    StoreError, WriteBatch,
};

const A: Column = "a";
const B: Column = "b";
const C: Column = "c";
const COLS: &[Column] = &[A, B];

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

fn put(s: &dyn Store, col: Column, key: &[u8], value: &[u8]) {
    let mut b = WriteBatch::new();
    b.put(col, key, value);
    s.write(b, Durability::Buffered).unwrap();
}

fn entries(pairs: &[(&[u8], &[u8])]) -> Entries {
    pairs
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

fn keys(e: &Entries) -> Vec<Vec<u8>> {
    e.iter().map(|(k, _)| k.clone()).collect()
}

/// Runs `suite` on a fresh `MemStore` and a fresh `RocksStore` in a tempdir.
fn on_every_engine(suite: fn(&dyn Store)) {
    suite(&MemStore::new(COLS));
    let dir = tempfile::tempdir().unwrap();
    let rocks = RocksStore::open(dir.path(), COLS, &RocksConfig::default()).unwrap();
    suite(&rocks);
}

// ---------------------------------------------------------------- generic suite

fn suite_put_get_delete(s: &dyn Store) {
    assert_eq!(s.get(A, b"k").unwrap(), None);
    put(s, A, b"k", b"v1");
    assert_eq!(s.get(A, b"k").unwrap(), Some(b"v1".to_vec()));
    // Columns are separate key spaces.
    assert_eq!(s.get(B, b"k").unwrap(), None);
    put(s, A, b"k", b"v2");
    assert_eq!(s.get(A, b"k").unwrap(), Some(b"v2".to_vec()));
    // Empty key and empty value are allowed.
    put(s, B, b"", b"");
    assert_eq!(s.get(B, b"").unwrap(), Some(Vec::new()));

    let mut b = WriteBatch::new();
    b.delete(A, b"k".to_vec());
    b.delete(A, b"absent".to_vec());
    s.write(b, Durability::Sync).unwrap();
    assert_eq!(s.get(A, b"k").unwrap(), None);
    // An empty batch is fine.
    s.write(WriteBatch::new(), Durability::Buffered).unwrap();
}

fn suite_unknown_column(s: &dyn Store) {
    assert!(matches!(s.get("nope", b"k"), Err(StoreError::UnknownColumn(c)) if c == "nope"));
    assert!(matches!(
        s.range("nope", b"", None, 10),
        Err(StoreError::UnknownColumn(_))
    ));
    assert!(matches!(
        s.range("nope", b"", None, 0),
        Err(StoreError::UnknownColumn(_))
    ));
    assert!(matches!(
        s.scan_prefix("nope", b"", 10),
        Err(StoreError::UnknownColumn(_))
    ));
    assert!(matches!(
        s.last_with_prefix("nope", b""),
        Err(StoreError::UnknownColumn(_))
    ));
}

fn suite_batch_atomic_across_columns(s: &dyn Store) {
    put(s, A, b"existing", b"old");
    let syncs = s.sync_count();

    // A batch whose last op names an unknown column changes nothing.
    let mut b = WriteBatch::new();
    b.put(A, b"x", b"1");
    b.put(B, b"y", b"2");
    b.delete(A, b"existing");
    b.put("nope", b"z", b"3");
    let err = s.write(b, Durability::Sync).unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownColumn(ref c) if c == "nope"),
        "{err}"
    );
    assert_eq!(s.get(A, b"x").unwrap(), None);
    assert_eq!(s.get(B, b"y").unwrap(), None);
    assert_eq!(s.get(A, b"existing").unwrap(), Some(b"old".to_vec()));
    assert_eq!(s.sync_count(), syncs, "a failed write is not a sync");

    // The same batch without the bad op applies to both columns.
    let mut b = WriteBatch::new();
    b.put(A, b"x", b"1");
    b.put(B, b"y", b"2");
    b.delete(A, b"existing");
    assert_eq!(b.len(), 3);
    s.write(b, Durability::Sync).unwrap();
    assert_eq!(s.get(A, b"x").unwrap(), Some(b"1".to_vec()));
    assert_eq!(s.get(B, b"y").unwrap(), Some(b"2".to_vec()));
    assert_eq!(s.get(A, b"existing").unwrap(), None);
}

fn suite_later_op_wins(s: &dyn Store) {
    let mut b = WriteBatch::new();
    b.put(A, b"k", b"1");
    b.put(A, b"k", b"2");
    b.put(A, b"d", b"1");
    b.delete(A, b"d");
    b.delete(A, b"r");
    b.put(A, b"r", b"back");
    s.write(b, Durability::Buffered).unwrap();
    assert_eq!(s.get(A, b"k").unwrap(), Some(b"2".to_vec()));
    assert_eq!(s.get(A, b"d").unwrap(), None);
    assert_eq!(s.get(A, b"r").unwrap(), Some(b"back".to_vec()));

    // append: the appended batch's ops come later, so they win.
    let mut first = WriteBatch::new();
    first.put(A, b"k", b"first");
    let mut second = WriteBatch::new();
    second.put(A, b"k", b"second");
    first.append(second);
    assert_eq!(
        first.ops().last(),
        Some(&Op::Put {
            col: A,
            key: b"k".to_vec(),
            value: b"second".to_vec()
        })
    );
    s.write(first, Durability::Buffered).unwrap();
    assert_eq!(s.get(A, b"k").unwrap(), Some(b"second".to_vec()));
}

fn fill_ordering_fixture(s: &dyn Store) {
    let mut b = WriteBatch::new();
    // Inserted out of order; bytewise order is what counts (0xff sorts after ASCII).
    for k in [
        &b"b2"[..],
        b"a",
        b"b",
        b"b1",
        b"ba",
        b"c",
        &[b'b', 0xff],
        &[b'b', 0xff, 0x01],
        &[0xff],
        &[0xff, 0xff],
        b"b10",
    ] {
        b.put(A, k, [b"v-", k].concat());
    }
    // Same keys in another column must never leak into column A's results.
    b.put(B, b"b0", b"other");
    s.write(b, Durability::Buffered).unwrap();
}

fn suite_range(s: &dyn Store) {
    fill_ordering_fixture(s);
    let all = s.range(A, b"", None, usize::MAX).unwrap();
    let expected: Vec<Vec<u8>> = vec![
        b"a".to_vec(),
        b"b".to_vec(),
        b"b1".to_vec(),
        b"b10".to_vec(),
        b"b2".to_vec(),
        b"ba".to_vec(),
        vec![b'b', 0xff],
        vec![b'b', 0xff, 0x01],
        b"c".to_vec(),
        vec![0xff],
        vec![0xff, 0xff],
    ];
    assert_eq!(keys(&all), expected);
    assert_eq!(all[0].1, b"v-a".to_vec());

    // Start inclusive, end exclusive.
    let r = s.range(A, b"b1", Some(b"ba"), 100).unwrap();
    assert_eq!(
        r,
        entries(&[(b"b1", b"v-b1"), (b"b10", b"v-b10"), (b"b2", b"v-b2")])
    );
    // Start between keys.
    let r = s.range(A, b"b11", Some(b"c"), 100).unwrap();
    assert_eq!(keys(&r), expected[4..8].to_vec());
    // Limit.
    let r = s.range(A, b"b", None, 2).unwrap();
    assert_eq!(keys(&r), vec![b"b".to_vec(), b"b1".to_vec()]);
    assert!(s.range(A, b"", None, 0).unwrap().is_empty());
    // Unbounded end reaches the 0xff keys.
    let r = s.range(A, b"c", None, 100).unwrap();
    assert_eq!(keys(&r), expected[8..].to_vec());
    // Empty and inverted ranges.
    assert!(s.range(A, b"b", Some(b"b"), 100).unwrap().is_empty());
    assert!(s.range(A, b"c", Some(b"a"), 100).unwrap().is_empty());
    assert!(
        s.range(A, &[0xff, 0xff, 0x00], None, 100)
            .unwrap()
            .is_empty()
    );
    // Other column.
    assert_eq!(
        s.range(B, b"", None, 100).unwrap(),
        entries(&[(b"b0", b"other")])
    );
}

fn suite_scan_prefix(s: &dyn Store) {
    fill_ordering_fixture(s);
    let r = s.scan_prefix(A, b"b1", 100).unwrap();
    assert_eq!(keys(&r), vec![b"b1".to_vec(), b"b10".to_vec()]);
    assert_eq!(r[1].1, b"v-b10".to_vec());

    let r = s.scan_prefix(A, b"b", 100).unwrap();
    assert_eq!(
        keys(&r),
        vec![
            b"b".to_vec(),
            b"b1".to_vec(),
            b"b10".to_vec(),
            b"b2".to_vec(),
            b"ba".to_vec(),
            vec![b'b', 0xff],
            vec![b'b', 0xff, 0x01],
        ]
    );
    let r = s.scan_prefix(A, b"b", 3).unwrap();
    assert_eq!(
        keys(&r),
        vec![b"b".to_vec(), b"b1".to_vec(), b"b10".to_vec()]
    );
    assert!(s.scan_prefix(A, b"b", 0).unwrap().is_empty());
    // Prefix ending in 0xff (successor needs a carry).
    let r = s.scan_prefix(A, &[b'b', 0xff], 100).unwrap();
    assert_eq!(keys(&r), vec![vec![b'b', 0xff], vec![b'b', 0xff, 0x01]]);
    // All-0xff prefix has no successor: unbounded.
    let r = s.scan_prefix(A, &[0xff], 100).unwrap();
    assert_eq!(keys(&r), vec![vec![0xff], vec![0xff, 0xff]]);
    // Empty prefix: whole column.
    assert_eq!(s.scan_prefix(A, b"", 100).unwrap().len(), 11);
    // No match.
    assert!(s.scan_prefix(A, b"bb", 100).unwrap().is_empty());
    assert!(s.scan_prefix(A, b"d", 100).unwrap().is_empty());
    assert!(s.scan_prefix(B, b"b1", 100).unwrap().is_empty());
}

fn suite_last_with_prefix(s: &dyn Store) {
    assert_eq!(s.last_with_prefix(A, b"").unwrap(), None);
    fill_ordering_fixture(s);
    let last = |p: &[u8]| s.last_with_prefix(A, p).unwrap().map(|(k, _)| k);
    assert_eq!(last(b"b1"), Some(b"b10".to_vec()));
    assert_eq!(last(b"b"), Some(vec![b'b', 0xff, 0x01]));
    assert_eq!(last(b"a"), Some(b"a".to_vec()));
    assert_eq!(last(&[0xff]), Some(vec![0xff, 0xff]));
    assert_eq!(last(b""), Some(vec![0xff, 0xff]));
    assert_eq!(last(b"bb"), None);
    assert_eq!(last(b"0"), None);
    assert_eq!(last(b"d"), None);
    assert_eq!(
        s.last_with_prefix(A, b"c").unwrap(),
        Some((b"c".to_vec(), b"v-c".to_vec()))
    );
    assert_eq!(
        s.last_with_prefix(B, b"b").unwrap(),
        Some((b"b0".to_vec(), b"other".to_vec()))
    );

    // Typical use: the highest sequence number under a big-endian prefix.
    for seq in [3u64, 17, 256, 9] {
        let mut key = b"log/".to_vec();
        key.extend_from_slice(&seq.to_be_bytes());
        put(s, B, &key, b"");
    }
    let (k, _) = s.last_with_prefix(B, b"log/").unwrap().unwrap();
    assert_eq!(k[4..], 256u64.to_be_bytes());
}

fn suite_last_before(s: &dyn Store) {
    assert!(s.last_before(A, None, 3).unwrap().is_empty());
    for seq in [3u64, 17, 256, 9, 1] {
        put(s, A, &seq.to_be_bytes(), &seq.to_string().into_bytes());
    }
    put(s, B, &100u64.to_be_bytes(), b"other column");
    let keys = |end: Option<u64>, limit: usize| -> Vec<u64> {
        let end = end.map(u64::to_be_bytes);
        s.last_before(A, end.as_ref().map(|e| e.as_slice()), limit)
            .unwrap()
            .into_iter()
            .map(|(k, _)| u64::from_be_bytes(k.as_slice().try_into().unwrap()))
            .collect()
    };
    // Greatest first, below the end (excluded), at most the limit.
    assert_eq!(keys(None, 3), [256, 17, 9]);
    assert_eq!(keys(None, 10), [256, 17, 9, 3, 1]);
    assert_eq!(keys(Some(256), 2), [17, 9]);
    assert_eq!(keys(Some(257), 1), [256]);
    assert_eq!(keys(Some(10), 10), [9, 3, 1]);
    assert_eq!(keys(Some(1), 10), Vec::<u64>::new());
    assert_eq!(keys(None, 0), Vec::<u64>::new());
    assert_eq!(
        s.last_before(A, Some(&4u64.to_be_bytes()), 1).unwrap(),
        vec![(3u64.to_be_bytes().to_vec(), b"3".to_vec())]
    );
    assert!(s.last_before(A, Some(b""), 5).unwrap().is_empty());
    assert!(matches!(
        s.last_before("nope", None, 1),
        Err(StoreError::UnknownColumn(_))
    ));
}

fn suite_for_each_entry(s: &dyn Store) {
    for i in 0u8..10 {
        put(s, A, &[b'k', i], &[i]);
    }
    put(s, B, b"k", b"other column");
    let walk = |start: &[u8], end: Option<&[u8]>, chunk: usize, stop_after: usize| {
        let mut seen = Vec::new();
        imi_store::for_each_entry(s, A, start, end, chunk, |k, v| {
            assert_eq!(k[1], v[0]);
            seen.push(v[0]);
            seen.len() < stop_after
        })
        .unwrap();
        seen
    };
    let all: Vec<u8> = (0..10).collect();
    // Every chunk size sees every entry once, in order, across chunk boundaries.
    for chunk in [0, 1, 2, 3, 5, 9, 10, 11, 100] {
        assert_eq!(walk(b"", None, chunk, usize::MAX), all, "chunk {chunk}");
        assert_eq!(
            walk(&[b'k', 3], Some(&[b'k', 7]), chunk, usize::MAX),
            [3, 4, 5, 6]
        );
        // `f` returning false stops the walk there.
        assert_eq!(walk(b"", None, chunk, 4), [0, 1, 2, 3], "chunk {chunk}");
    }
    assert!(walk(b"l", None, 3, usize::MAX).is_empty());
}

fn suite_sync_count(s: &dyn Store) {
    assert_eq!(s.sync_count(), 0);
    put(s, A, b"k", b"v");
    assert_eq!(s.sync_count(), 0);
    for i in 0..3u8 {
        let mut b = WriteBatch::new();
        b.put(A, vec![i], vec![i]);
        b.put(B, vec![i], vec![i]);
        s.write(b, Durability::Sync).unwrap();
    }
    assert_eq!(s.sync_count(), 3);
    put(s, A, b"k2", b"v");
    assert_eq!(s.sync_count(), 3);
}

fn suite_flush_and_memory(s: &dyn Store) {
    for i in 0..200u32 {
        put(s, A, &i.to_be_bytes(), &[7u8; 100]);
    }
    assert!(s.memory_usage_bytes() > 0);
    s.flush().unwrap();
    // Data remains readable after a flush, cached or not.
    assert_eq!(s.get(A, &5u32.to_be_bytes()).unwrap(), Some(vec![7u8; 100]));
    assert_eq!(
        s.get_uncached(A, &6u32.to_be_bytes()).unwrap(),
        Some(vec![7u8; 100])
    );
    assert_eq!(s.get_uncached(A, b"absent").unwrap(), None);
    assert_eq!(s.range(A, b"", None, usize::MAX).unwrap().len(), 200);
    put(s, A, &5u32.to_be_bytes(), b"after flush");
    assert_eq!(
        s.get(A, &5u32.to_be_bytes()).unwrap(),
        Some(b"after flush".to_vec())
    );
}

fn suite_concurrent_writers(s: &dyn Store) {
    std::thread::scope(|scope| {
        for t in 0..4u8 {
            scope.spawn(move || {
                for i in 0..50u8 {
                    let mut b = WriteBatch::new();
                    b.put(A, vec![t, i], vec![i]);
                    b.put(B, vec![t, i], vec![i]);
                    let d = if i % 10 == 0 {
                        Durability::Sync
                    } else {
                        Durability::Buffered
                    };
                    s.write(b, d).unwrap();
                }
            });
        }
    });
    assert_eq!(s.range(A, b"", None, usize::MAX).unwrap().len(), 200);
    assert_eq!(s.scan_prefix(B, &[3], usize::MAX).unwrap().len(), 50);
    assert_eq!(s.sync_count(), 4 * 5);
}

macro_rules! engine_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                on_every_engine(super::$name);
            }
        )*
    };
}

mod both_engines {
    use super::on_every_engine;
    engine_tests!(
        suite_put_get_delete,
        suite_unknown_column,
        suite_batch_atomic_across_columns,
        suite_later_op_wins,
        suite_range,
        suite_scan_prefix,
        suite_last_with_prefix,
        suite_last_before,
        suite_for_each_entry,
        suite_sync_count,
        suite_flush_and_memory,
        suite_concurrent_writers,
    );
}

#[test]
fn stores_are_send_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<MemStore>();
    check::<RocksStore>();
    let _: Box<dyn Store> = Box::new(MemStore::new(COLS));
}

// ---------------------------------------------------------------- RocksDB persistence

fn open(path: &Path, cols: &[Column]) -> RocksStore {
    RocksStore::open(path, cols, &RocksConfig::default()).unwrap()
}

#[test]
fn rocks_survives_reopen_with_all_columns() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path(), COLS);
        let mut b = WriteBatch::new();
        b.put(A, b"ka", b"va");
        b.put(B, b"kb", b"vb");
        b.put(A, b"gone", b"x");
        s.write(b, Durability::Sync).unwrap();
        let mut b = WriteBatch::new();
        b.delete(A, b"gone");
        b.put(B, b"buffered", b"yes");
        s.write(b, Durability::Buffered).unwrap();
        // No flush: recovery replays the WAL.
    }
    {
        let s = open(dir.path(), COLS);
        assert_eq!(s.get(A, b"ka").unwrap(), Some(b"va".to_vec()));
        assert_eq!(s.get(B, b"kb").unwrap(), Some(b"vb".to_vec()));
        assert_eq!(s.get(B, b"buffered").unwrap(), Some(b"yes".to_vec()));
        assert_eq!(s.get(A, b"gone").unwrap(), None);
        assert_eq!(s.get(A, b"kb").unwrap(), None);
        assert_eq!(s.sync_count(), 0, "the counter is per process");
        s.flush().unwrap();
    }
    // After a flush the data lives in SST files.
    let s = open(dir.path(), COLS);
    assert_eq!(s.get(A, b"ka").unwrap(), Some(b"va".to_vec()));
    assert_eq!(s.get(B, b"kb").unwrap(), Some(b"vb".to_vec()));
}

#[test]
fn rocks_reopen_with_extra_and_fewer_columns() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path(), COLS);
        put(&s, A, b"k", b"a");
        put(&s, B, b"k", b"b");
    }
    {
        // A column added in a later version is created; old data stays.
        let s = open(dir.path(), &[A, B, C]);
        put(&s, C, b"k", b"c");
        assert_eq!(s.get(A, b"k").unwrap(), Some(b"a".to_vec()));
        assert_eq!(s.get(C, b"k").unwrap(), Some(b"c".to_vec()));
    }
    // Opening with fewer columns still opens (and serves) the ones on disk.
    let s = open(dir.path(), &[A]);
    assert_eq!(s.get(A, b"k").unwrap(), Some(b"a".to_vec()));
    assert_eq!(s.get(B, b"k").unwrap(), Some(b"b".to_vec()));
    assert_eq!(s.get(C, b"k").unwrap(), Some(b"c".to_vec()));
    assert!(matches!(
        s.get("d", b"k"),
        Err(StoreError::UnknownColumn(_))
    ));
}

/// A checkpoint taken while a writer runs is the database at one instant: every batch is in
/// it whole or not at all; it opens read-only while the source stays open, and writing to
/// the read-only copy fails without changing it.
#[test]
fn rocks_checkpoint_while_writing_is_consistent_and_opens_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = std::sync::Arc::new(open(&dir.path().join("db"), COLS));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || i < 200 {
                // Each batch writes the same key in two columns: a torn copy would differ.
                let mut b = WriteBatch::new();
                b.put(A, i.to_be_bytes(), b"x");
                b.put(B, i.to_be_bytes(), b"x");
                b.put(A, b"last", i.to_be_bytes());
                s.write(b, Durability::Buffered).unwrap();
                i += 1;
            }
            i
        })
    };
    // Wait until the writer is under way (an event, not a delay).
    while s.get(A, b"last").unwrap().is_none() {
        std::thread::yield_now();
    }
    let copy = dir.path().join("copy");
    s.checkpoint(&copy).unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(
        s.checkpoint(&copy).is_err(),
        "a checkpoint never overwrites"
    );

    let ro = RocksStore::open_read_only(&copy, &RocksConfig::default()).unwrap();
    let last = u32::from_be_bytes(
        ro.get(A, b"last")
            .unwrap()
            .expect("the writer had started")
            .try_into()
            .unwrap(),
    );
    assert!(last < written);
    let a = ro.range(A, &[], Some(b"last"), usize::MAX).unwrap();
    let b = ro.range(B, &[], None, usize::MAX).unwrap();
    assert_eq!(a.len(), b.len(), "no batch is torn");
    assert_eq!(a.len() as u32, last + 1, "every batch up to the last one");
    let mut batch = WriteBatch::new();
    batch.put(A, b"new", b"x");
    assert!(ro.write(batch, Durability::Sync).is_err());
    assert_eq!(ro.get(A, b"new").unwrap(), None);
    assert!(RocksStore::open_read_only(&dir.path().join("none"), &RocksConfig::default()).is_err());
}

/// A value made of `marker` (unique, incompressible text) padded with varied bytes to `len`.
fn marked(marker: &str, len: usize) -> Vec<u8> {
    let mut v = marker.as_bytes().to_vec();
    let mut x = 0x9e37_79b9_u32;
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push(b'a' + (x % 26) as u8);
    }
    v
}

/// Whether any file under `dir` contains `needle`.
fn on_disk(dir: &Path, needle: &str) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let path = e.unwrap().path();
        path.is_file()
            && std::fs::read(&path)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
    })
}

/// Large values live in blob files; erasure (`purge`) must remove a deleted value's bytes
/// from those files as from the table files, keep the live ones, and checkpoints (backups)
/// must carry them.
#[test]
fn rocks_large_values_are_purged_from_blob_files_and_kept_in_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let s = open(&db, COLS);
    let big = usize::try_from(MIN_BLOB_BYTES).unwrap() * 4;
    let erased_big = "ERASED-BIG-4c1f8e0a9b7d6e52";
    let erased_small = "ERASED-SMALL-0f3e9d8c7b6a";
    let live_big = "LIVE-BIG-7a6b5c4d3e2f1a0b";
    let mut b = WriteBatch::new();
    b.put(A, b"erased-big", marked(erased_big, big));
    b.put(A, b"erased-small", marked(erased_small, 100));
    b.put(A, b"live-big", marked(live_big, big));
    s.write(b, Durability::Sync).unwrap();
    s.flush().unwrap();
    // All three are in files now (the test could see them if they stayed).
    for m in [erased_big, erased_small, live_big] {
        assert!(on_disk(&db, m), "{m} written to a file");
    }
    let blob_files = || {
        std::fs::read_dir(&db)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "blob")
            })
            .count()
    };
    assert!(blob_files() > 0, "large values go to blob files");

    let copy = dir.path().join("copy");
    s.checkpoint(&copy).unwrap();

    let mut b = WriteBatch::new();
    b.delete(A, b"erased-big");
    b.delete(A, b"erased-small");
    s.write(b, Durability::Sync).unwrap();
    s.purge(&[A]).unwrap();
    assert!(
        !on_disk(&db, erased_big),
        "a deleted large value is gone from disk"
    );
    assert!(
        !on_disk(&db, erased_small),
        "a deleted small value is gone from disk"
    );
    assert!(on_disk(&db, live_big), "the live value was kept");
    assert_eq!(s.get(A, b"live-big").unwrap(), Some(marked(live_big, big)));
    drop(s);
    let s = open(&db, COLS);
    assert_eq!(s.get(A, b"live-big").unwrap(), Some(marked(live_big, big)));
    assert_eq!(s.get(A, b"erased-big").unwrap(), None);

    // The checkpoint taken before the deletion has every value, blobs included.
    let ro = RocksStore::open_read_only(&copy, &RocksConfig::default()).unwrap();
    assert_eq!(
        ro.get(A, b"erased-big").unwrap(),
        Some(marked(erased_big, big))
    );
    assert_eq!(ro.get(A, b"live-big").unwrap(), Some(marked(live_big, big)));
}

/// A compaction moves a large value's reference, never the value: blob files holding live
/// values are neither rewritten nor replaced (with RocksDB's default garbage collection, a
/// full compaction rewrote the oldest quarter of them, deleted values or not). Only `purge`
/// collects.
#[test]
fn rocks_compactions_leave_live_blob_files_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let s = open(&db, COLS);
    let big = usize::try_from(MIN_BLOB_BYTES).unwrap() * 4;
    let blob_files = || {
        let mut names: Vec<String> = std::fs::read_dir(&db)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".blob"))
            .collect();
        names.sort();
        names
    };
    for round in 0..4u32 {
        let mut b = WriteBatch::new();
        for i in 0..8u32 {
            let key = [round.to_be_bytes(), i.to_be_bytes()].concat();
            b.put(A, key, marked(&format!("LIVE-{round}-{i}"), big));
        }
        s.write(b, Durability::Sync).unwrap();
        s.flush().unwrap();
    }
    let before = blob_files();
    assert_eq!(before.len(), 4, "one blob file per flush: {before:?}");
    s.compact(A).unwrap();
    assert_eq!(
        blob_files(),
        before,
        "no blob file rewritten by a compaction"
    );
    for round in 0..4u32 {
        for i in 0..8u32 {
            let key = [round.to_be_bytes(), i.to_be_bytes()].concat();
            assert_eq!(
                s.get(A, &key).unwrap(),
                Some(marked(&format!("LIVE-{round}-{i}"), big))
            );
        }
    }
    // A purge still collects: with one value of the first file deleted, that file is
    // rewritten without it.
    let mut b = WriteBatch::new();
    b.delete(A, [0u32.to_be_bytes(), 0u32.to_be_bytes()].concat());
    s.write(b, Durability::Sync).unwrap();
    s.purge(&[A]).unwrap();
    assert!(!on_disk(&db, "LIVE-0-0"), "the deleted value is gone");
    assert!(on_disk(&db, "LIVE-0-1"), "its live neighbours are kept");
    assert_ne!(
        blob_files(),
        before,
        "purge rewrote the blob files it reached"
    );
}

#[test]
fn rocks_open_twice_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(dir.path(), COLS);
    let second = RocksStore::open(dir.path(), COLS, &RocksConfig::default());
    assert!(matches!(second, Err(StoreError::Rocks(_))));
}

#[test]
fn rocks_filtered_columns_get_bloom_filters_and_others_none() {
    let dir = tempfile::tempdir().unwrap();
    let config = RocksConfig {
        filtered_columns: vec![A],
        ..RocksConfig::default()
    };
    let s = RocksStore::open(dir.path(), COLS, &config).unwrap();
    for i in 0..2_000u32 {
        put(&s, A, &i.to_be_bytes(), b"v");
        put(&s, B, &i.to_be_bytes(), b"v");
    }
    // The memtables of a filtered column carry a filter too (5 % of a 2 MiB write buffer),
    // and answer the same through it.
    let (a, b) = (s.memtable_bytes(A).unwrap(), s.memtable_bytes(B).unwrap());
    assert!(
        a >= b + 64 * 1024,
        "no memtable filter in A: {a} against {b}"
    );
    for i in (0..2_000u32).step_by(97) {
        assert_eq!(s.get(A, &i.to_be_bytes()).unwrap(), Some(b"v".to_vec()));
        assert_eq!(s.get(A, &(i + 1_000_000).to_be_bytes()).unwrap(), None);
    }
    s.flush().unwrap();
    assert!(
        s.table_filter_bytes(A).unwrap() > 0,
        "no filter in A's tables"
    );
    assert_eq!(
        s.table_filter_bytes(B).unwrap(),
        0,
        "a filter in B's tables"
    );
    // Point lookups answer the same with a filter: present keys found, absent ones not.
    for i in (0..2_000u32).step_by(97) {
        assert_eq!(s.get(A, &i.to_be_bytes()).unwrap(), Some(b"v".to_vec()));
        assert_eq!(s.get(A, &(i + 1_000_000).to_be_bytes()).unwrap(), None);
    }
    assert!(matches!(
        s.table_filter_bytes("nope"),
        Err(StoreError::UnknownColumn(_))
    ));
}

#[test]
fn rocks_indexes_are_partitioned_so_a_read_loads_one_partition() {
    let dir = tempfile::tempdir().unwrap();
    let config = RocksConfig {
        filtered_columns: vec![B],
        ..RocksConfig::default()
    };
    let s = RocksStore::open(dir.path(), COLS, &config).unwrap();
    // 40,000 keys of 32 bytes: one index entry per 4 KiB data block, about 1,000 blocks and
    // 30 KiB of index per column, several partitions of 4 KiB.
    for i in 0..40_000u32 {
        let key = format!("{i:032}");
        put(&s, A, key.as_bytes(), &[7; 100]);
        put(&s, B, key.as_bytes(), &[7; 100]);
    }
    s.compact(A).unwrap();
    s.compact(B).unwrap();
    for col in [A, B] {
        let partitions = s.table_index_partitions(col).unwrap();
        assert!(partitions >= 4, "{col}: {partitions} index partitions");
    }
    // Reads answer the same, the filtered column's absent keys included.
    for i in (0..40_000u32).step_by(997) {
        let key = format!("{i:032}");
        assert_eq!(s.get(A, key.as_bytes()).unwrap(), Some(vec![7; 100]));
        assert_eq!(s.get(B, key.as_bytes()).unwrap(), Some(vec![7; 100]));
        assert_eq!(s.get(B, format!("{i:031}x").as_bytes()).unwrap(), None);
    }
}

#[test]
fn rocks_flushes_write_level_0_uncompressed_and_compactions_compress() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), COLS);
    let value = vec![b'a'; 200];
    for i in 0..2_000u32 {
        put(&s, A, &i.to_be_bytes(), &value);
    }
    s.flush().unwrap();
    let flushed = s.table_data_bytes(A).unwrap();
    assert!(
        flushed >= 2_000 * 200,
        "level 0 compressed: {flushed} bytes of data blocks for 400,000 bytes of values"
    );
    s.compact(A).unwrap();
    let compacted = s.table_data_bytes(A).unwrap();
    assert!(
        compacted < flushed / 4,
        "not compressed below level 0: {compacted} bytes against {flushed}"
    );
    for i in (0..2_000u32).step_by(97) {
        assert_eq!(s.get(A, &i.to_be_bytes()).unwrap(), Some(value.clone()));
    }
}

#[test]
fn rocks_blob_columns_keep_even_small_values_out_of_their_tables() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let config = RocksConfig {
        blob_columns: vec![A],
        ..RocksConfig::default()
    };
    let s = RocksStore::open(&db, COLS, &config).unwrap();
    // Envelope-sized values, far under MIN_BLOB_BYTES, in both columns.
    for i in 0..500u32 {
        put(
            &s,
            A,
            &i.to_be_bytes(),
            &marked(&format!("A-{i:04}"), 1_400),
        );
        put(
            &s,
            B,
            &i.to_be_bytes(),
            &marked(&format!("B-{i:04}"), 1_400),
        );
    }
    s.flush().unwrap();
    let a = s.blob_file_bytes(A).unwrap();
    assert!(a > 500 * 1_400, "A's values in blob files: {a} bytes");
    assert_eq!(s.blob_file_bytes(B).unwrap(), 0, "B's values in its tables");
    for i in (0..500u32).step_by(37) {
        assert_eq!(
            s.get(A, &i.to_be_bytes()).unwrap(),
            Some(marked(&format!("A-{i:04}"), 1_400))
        );
        assert_eq!(
            s.get_uncached(A, &i.to_be_bytes()).unwrap(),
            Some(marked(&format!("A-{i:04}"), 1_400))
        );
    }
    assert_eq!(s.range(A, b"", None, usize::MAX).unwrap().len(), 500);

    // Erasure still removes them from disk.
    let mut b = WriteBatch::new();
    b.delete(A, 7u32.to_be_bytes());
    s.write(b, Durability::Sync).unwrap();
    s.purge(&[A]).unwrap();
    assert!(!on_disk(&db, "A-0007"), "a deleted value is gone from disk");
    assert!(on_disk(&db, "A-0008"), "the others are kept");
    assert_eq!(s.get(A, &7u32.to_be_bytes()).unwrap(), None);
    drop(s);
    // Reopened with the setting, and without it (a store written by an older build, or
    // read by one): the same values either way.
    for cfg in [config, RocksConfig::default()] {
        let s = RocksStore::open(&db, COLS, &cfg).unwrap();
        assert_eq!(
            s.get(A, &8u32.to_be_bytes()).unwrap(),
            Some(marked("A-0008", 1_400))
        );
    }
}

#[test]
fn rocks_small_config_and_memory_usage() {
    let dir = tempfile::tempdir().unwrap();
    let config = RocksConfig {
        write_buffer_bytes: 64 * 1024,
        max_write_buffers: 2,
        block_cache_bytes: 1024 * 1024,
        max_open_files: 64,
        filtered_columns: Vec::new(),
        blob_columns: Vec::new(),
    };
    let s = RocksStore::open(dir.path(), COLS, &config).unwrap();
    // Enough data to force memtable flushes to SST files.
    for i in 0..2_000u32 {
        put(&s, A, &i.to_be_bytes(), &[i as u8; 200]);
    }
    assert!(s.memory_usage_bytes() > 0);
    s.flush().unwrap();
    for i in (0..2_000u32).step_by(97) {
        assert_eq!(
            s.get(A, &i.to_be_bytes()).unwrap(),
            Some(vec![i as u8; 200])
        );
    }
    assert_eq!(s.range(A, b"", None, usize::MAX).unwrap().len(), 2_000);
    // The block cache is capped near its capacity.
    assert!(
        s.memory_usage_bytes() < 8 * 1024 * 1024,
        "{}",
        s.memory_usage_bytes()
    );
}

#[test]
fn rocks_uncached_reads_leave_the_block_cache_alone() {
    let dir = tempfile::tempdir().unwrap();
    let config = RocksConfig {
        block_cache_bytes: 4 * 1024 * 1024,
        ..RocksConfig::default()
    };
    let s = RocksStore::open(dir.path(), COLS, &config).unwrap();
    for i in 0..2_000u32 {
        put(&s, A, &i.to_be_bytes(), &[i as u8; 1_500]);
    }
    // In a table file now, as an envelope read back after a backlog is.
    s.flush().unwrap();
    let before = s.memory_usage_bytes();
    for i in 0..2_000u32 {
        let v = s.get_uncached(A, &i.to_be_bytes()).unwrap();
        assert_eq!(v, Some(vec![i as u8; 1_500]));
    }
    assert_eq!(
        s.memory_usage_bytes(),
        before,
        "uncached reads filled the cache"
    );
    // The same reads through `get` keep the data blocks: 3 MB of them, capped at 4 MiB.
    for i in 0..2_000u32 {
        assert!(s.get(A, &i.to_be_bytes()).unwrap().is_some());
    }
    let cached = s.memory_usage_bytes() - before;
    assert!(cached > 1024 * 1024, "{cached} bytes cached by get");
}

// ---------------------------------------------------------------- crash test

const CRASH_DIR_ENV: &str = "IMI_STORE_CRASH_DIR";
const CRASH_WRITES: u64 = 100_000;
const KILL_AFTER: usize = 200;

fn crash_key(i: u64) -> Vec<u8> {
    i.to_be_bytes().to_vec()
}

/// Child half of `rocks_sync_writes_survive_sigkill`: a no-op unless `IMI_STORE_CRASH_DIR` is
/// set. Writes Sync batches (two columns each), printing each index once its write returned,
/// then waits to be killed.
#[test]
fn crash_writer() {
    use std::io::Write;
    let Some(dir) = std::env::var_os(CRASH_DIR_ENV) else {
        return;
    };
    let s = open(Path::new(&dir), COLS);
    let mut out = std::io::stdout().lock();
    for i in 0..CRASH_WRITES {
        let mut b = WriteBatch::new();
        b.put(A, crash_key(i), b"a".to_vec());
        b.put(B, crash_key(i), b"b".to_vec());
        s.write(b, Durability::Sync).unwrap();
        writeln!(out, "written {i}").unwrap();
        out.flush().unwrap();
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// Never leaves the looping child behind, even if the parent test panics.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn rocks_sync_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args(["crash_writer", "--exact", "--nocapture", "--test-threads=1"])
            .env(CRASH_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let child = &mut child.0;
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut written = Vec::new();
    let mut killed = false;
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(i) = line.strip_prefix("written ") {
            written.push(i.trim().parse::<u64>().unwrap());
        }
        // Kill mid-stream, while the child is still writing; then drain what it printed.
        if !killed && written.len() >= KILL_AFTER {
            child.kill().unwrap();
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    assert!(
        killed,
        "child exited early ({status}) after {} writes",
        written.len()
    );
    assert!(!status.success());

    let s = open(dir.path(), COLS);
    for &i in &written {
        assert_eq!(
            s.get(A, &crash_key(i)).unwrap(),
            Some(b"a".to_vec()),
            "lost {i}"
        );
        assert_eq!(
            s.get(B, &crash_key(i)).unwrap(),
            Some(b"b".to_vec()),
            "lost {i}"
        );
    }
    // Every batch is all-or-nothing, even the one in flight at the kill.
    let a = s.range(A, b"", None, usize::MAX).unwrap();
    let b = s.range(B, b"", None, usize::MAX).unwrap();
    assert_eq!(keys(&a), keys(&b));
    assert!(a.len() >= written.len());
}
