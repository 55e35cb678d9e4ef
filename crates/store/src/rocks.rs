//! RocksDB engine: one column family per [`Column`], WAL always on, small memory footprint.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB,
    DBCompressionType, DEFAULT_COLUMN_FAMILY_NAME, Options, ReadOptions, WriteOptions,
};

use crate::{
    Column, Durability, Entry, Op, ReadStore, Store, StoreError, WriteBatch, prefix_successor,
};

/// Cap on the total size of live WAL files; past it, RocksDB flushes the column families that
/// hold the oldest WAL alive.
const MAX_TOTAL_WAL_BYTES: u64 = 64 * 1024 * 1024;
/// Flush and compaction threads (the target machines have few cores).
const MAX_BACKGROUND_JOBS: i32 = 2;
/// Values at least this large (envelopes with sizeable bodies, documents) are written to blob
/// files at flush instead of into the table files: compactions then move a reference, not the
/// value. Without it, a peer sending 16 KiB envelopes at 10 MB/s kept the small memtables
/// flushing and the level-0 compactions rewriting its bytes, and another peer's synced commit
/// waited behind that IO (`imi-sim bench flood`, BENCHMARKS.md).
pub const MIN_BLOB_BYTES: u64 = 4096;
/// Blob garbage collection is off in normal operation and on only for `purge`'s compaction.
///
/// With it on (RocksDB's default age cutoff, 0.25), every compaction that reaches the oldest
/// quarter of a column's blob files rewrites their *live* values into new files, garbage or
/// not. Received and sent envelopes are kept until retention erases them, so that rewrote
/// envelopes nobody had deleted, and another peer's synced commit waited behind the IO: with
/// one peer sending 16 KiB envelopes at 1 MiB/s, the other peer's p99 round trip was 5.7 and
/// 6.9 ms with it, 3.5 and 3.9 ms without (`imi-sim bench flood`, 30 s runs, BENCHMARKS.md).
/// A blob file whose values are all deleted is still removed as compactions drop their keys;
/// one partly deleted keeps its deleted values until the next `purge` of its column, which
/// turns collection on with the cutoff at 1.0, so that every blob file its compaction reaches
/// is rewritten without them.
const PURGE_BLOB_GC: [(&str, &str); 2] = [
    ("enable_blob_garbage_collection", "true"),
    ("blob_garbage_collection_age_cutoff", "1.0"),
];
/// The blob garbage-collection settings restored after `purge` (see [`PURGE_BLOB_GC`]).
const NORMAL_BLOB_GC: [(&str, &str); 1] = [("enable_blob_garbage_collection", "false")];

/// The size of one partition of a table's index (and of a filtered column's filter).
const METADATA_BLOCK_BYTES: usize = 4096;

/// Bits per key of a filtered column's bloom filter ([`RocksConfig::filtered_columns`]).
const BLOOM_BITS_PER_KEY: f64 = 10.0;

/// A filtered column's memtable filter, as a share of its write buffer.
const MEMTABLE_BLOOM_RATIO: f64 = 0.05;

/// Memory and file limits for [`RocksStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RocksConfig {
    /// Size of one memtable per column family (default 2 MiB).
    pub write_buffer_bytes: usize,
    /// Memtables per column family, active + immutable (default 2).
    pub max_write_buffers: i32,
    /// Capacity of the LRU block cache shared by all column families (default 8 MiB). Index and
    /// filter blocks are kept in it too, so it bounds read memory.
    pub block_cache_bytes: usize,
    /// Maximum open SST files (default 256).
    pub max_open_files: i32,
    /// Column families whose tables carry a bloom filter (10 bits per key, ≈ 1 % false
    /// positives; default none). For columns read mostly by point lookups of keys that are
    /// often absent (a received envelope's duplicate check, an idempotency key): such a
    /// lookup then costs one filter probe per table instead of an index and a data block.
    /// Not for columns read by ranges: a filter only answers point lookups, and its blocks
    /// share the block cache.
    pub filtered_columns: Vec<Column>,
    /// Column families whose values all go to blob files at flush, whatever their size
    /// (others only from [`MIN_BLOB_BYTES`]; default none). For columns of values written
    /// once, read rarely and not compressible (sealed envelopes): their tables then hold
    /// keys and references only, so compactions neither rewrite nor compress the values.
    pub blob_columns: Vec<Column>,
}

impl Default for RocksConfig {
    fn default() -> Self {
        Self {
            write_buffer_bytes: 2 * 1024 * 1024,
            max_write_buffers: 2,
            block_cache_bytes: 8 * 1024 * 1024,
            max_open_files: 256,
            filtered_columns: Vec::new(),
            blob_columns: Vec::new(),
        }
    }
}

/// A [`Store`] on RocksDB.
///
/// Opening creates the database and any missing column family; column families already in the
/// database but not asked for are opened too (and usable by name). Dropping the store closes
/// the database.
pub struct RocksStore {
    db: DB,
    cache: Cache,
    cf_names: Vec<String>,
    syncs: AtomicU64,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.db.path())
            .field("columns", &self.cf_names)
            .field("syncs", &self.syncs)
            .finish_non_exhaustive()
    }
}

fn rocks(e: rocksdb::Error) -> StoreError {
    StoreError::Rocks(e.into_string())
}

fn cf_options(config: &RocksConfig, cache: &Cache, name: &str) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    // Each table's index in partitions of 4 KiB under a small top level that stays pinned
    // (and a filtered column's filter likewise): a point read then loads one partition, not
    // the table's whole index. With one index block per table, a read whose index block had
    // left the shared cache read all of it again (an entry per 4 KiB data block: ~700 KiB
    // for a 64 MiB table), allocated and checksummed it, and let it go: in the second half of a
    // full simulated year the Commission node spent 72 % of its CPU re-reading the index
    // blocks of its `facts` column, two per fact report (BENCHMARKS.md, *Partitioned
    // indexes*).
    table.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
    table.set_metadata_block_size(METADATA_BLOCK_BYTES);
    table.set_pin_top_level_index_and_filter(true);
    let filtered = config.filtered_columns.contains(&name);
    if filtered {
        table.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
        table.set_partition_filters(true);
    }

    let mut opts = Options::default();
    opts.set_block_based_table_factory(&table);
    opts.set_write_buffer_size(config.write_buffer_bytes);
    opts.set_max_write_buffer_number(config.max_write_buffers.max(2));
    if filtered {
        // The memtables get a filter too: a filtered column is read mostly for keys it does
        // not hold (is this envelope new?), and a miss then costs a few hashes instead of a
        // walk of two skip lists. 5 % of the write buffer (100 KiB of 2 MiB).
        opts.set_memtable_prefix_bloom_ratio(MEMTABLE_BLOOM_RATIO);
        opts.set_memtable_whole_key_filtering(true);
    }
    // Flushes write level-0 files uncompressed: they are rewritten by the first compaction
    // soon after, which compresses (LZ4) everything below. Compressing at the flush cost
    // about 1 % of the message path's CPU for files that live minutes. With dynamic level
    // sizes, entry 1 is the level level 0 is compacted into, and the last entry holds for
    // every level below.
    opts.set_compression_per_level(&[DBCompressionType::None, DBCompressionType::Lz4]);
    opts.set_enable_blob_files(true);
    opts.set_min_blob_size(if config.blob_columns.contains(&name) {
        0
    } else {
        MIN_BLOB_BYTES
    });
    // Large values are mostly sealed envelopes: ciphertext does not compress.
    opts.set_blob_compression_type(DBCompressionType::None);
    // See `PURGE_BLOB_GC`: collection runs only in `purge`, and then over every file.
    opts.set_enable_blob_gc(false);
    opts.set_blob_gc_age_cutoff(1.0);
    opts
}

/// RocksDB is compiled for SSE 4.2 and PCLMULQDQ (the workspace's `.cargo/config.toml`: its
/// CRC32C has no run-time choice), so on a CPU without them its first checksum would end
/// the process with an illegal instruction. Refused here with a message instead.
fn cpu_supported() -> Result<(), StoreError> {
    #[cfg(target_arch = "x86_64")]
    if !(std::arch::is_x86_feature_detected!("sse4.2")
        && std::arch::is_x86_feature_detected!("pclmulqdq"))
    {
        return Err(StoreError::Rocks(
            "this CPU lacks SSE 4.2 or PCLMULQDQ, which this build of RocksDB uses for its \
             checksums (every x86-64 server since 2010 has both)"
                .to_owned(),
        ));
    }
    Ok(())
}

impl RocksStore {
    /// Opens (creating if needed) the database at `path` with at least `columns`.
    pub fn open(path: &Path, columns: &[Column], config: &RocksConfig) -> Result<Self, StoreError> {
        cpu_supported()?;
        std::fs::create_dir_all(path)?;
        let cache = Cache::new_lru_cache(config.block_cache_bytes);

        let mut db_opts = cf_options(config, &cache, DEFAULT_COLUMN_FAMILY_NAME);
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_open_files(config.max_open_files);
        db_opts.set_max_background_jobs(MAX_BACKGROUND_JOBS);
        db_opts.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES);
        // Bound memtable memory across all column families, not just per family.
        let per_cf = config
            .write_buffer_bytes
            .saturating_mul(usize::try_from(config.max_write_buffers.max(2)).unwrap_or(2));
        db_opts.set_db_write_buffer_size(per_cf.saturating_mul(2));

        let mut cf_names: Vec<String> = if path.join("CURRENT").exists() {
            DB::list_cf(&db_opts, path).map_err(rocks)?
        } else {
            Vec::new()
        };
        for name in std::iter::once(DEFAULT_COLUMN_FAMILY_NAME).chain(columns.iter().copied()) {
            if !cf_names.iter().any(|n| n == name) {
                cf_names.push(name.to_owned());
            }
        }

        let descriptors = cf_names.iter().map(|name| {
            ColumnFamilyDescriptor::new(name.as_str(), cf_options(config, &cache, name))
        });
        let db = DB::open_cf_descriptors(&db_opts, path, descriptors).map_err(rocks)?;
        tracing::info!(
            path = %path.display(),
            columns = ?cf_names,
            block_cache_bytes = config.block_cache_bytes,
            write_buffer_bytes = config.write_buffer_bytes,
            "opened rocksdb store"
        );
        Ok(Self {
            db,
            cache,
            cf_names,
            syncs: AtomicU64::new(0),
        })
    }

    /// The bytes of live blob files of `col` (values moved out of its tables at flush: see
    /// [`MIN_BLOB_BYTES`] and [`RocksConfig::blob_columns`]).
    pub fn blob_file_bytes(&self, col: Column) -> Result<u64, StoreError> {
        Ok(self
            .db
            .property_int_value_cf(self.cf(col)?, "rocksdb.live-blob-file-size")
            .map_err(rocks)?
            .unwrap_or(0))
    }

    /// The bytes of bloom filter in `col`'s table files (0 for a column without a filter,
    /// see [`RocksConfig::filtered_columns`], or whose data is all still in memtables).
    pub fn table_filter_bytes(&self, col: Column) -> Result<u64, StoreError> {
        self.table_property(col, "filter block size")
    }

    /// The partitions of the indexes of `col`'s table files, summed (each table's index is
    /// cut into partitions of about 4 KiB once it outgrows one).
    pub fn table_index_partitions(&self, col: Column) -> Result<u64, StoreError> {
        self.table_property(col, "# index partitions")
    }

    /// The bytes of data blocks in `col`'s table files, as written (compressed or not).
    pub fn table_data_bytes(&self, col: Column) -> Result<u64, StoreError> {
        self.table_property(col, "data block size")
    }

    /// One of RocksDB's table properties of `col`, summed over its table files.
    fn table_property(&self, col: Column, name: &str) -> Result<u64, StoreError> {
        let props = self
            .db
            .property_value_cf(self.cf(col)?, "rocksdb.aggregated-table-properties")
            .map_err(rocks)?
            .unwrap_or_default();
        // `…; filter block size=N; …` (RocksDB's TableProperties::ToString).
        Ok(props
            .split(';')
            .filter_map(|p| p.trim().strip_prefix(name)?.strip_prefix('='))
            .filter_map(|n| n.trim().parse::<u64>().ok())
            .sum())
    }

    /// The bytes `col`'s memtables take (their data and, for a filtered column, its filter).
    pub fn memtable_bytes(&self, col: Column) -> Result<u64, StoreError> {
        Ok(self
            .db
            .property_int_value_cf(self.cf(col)?, "rocksdb.cur-size-all-mem-tables")
            .map_err(rocks)?
            .unwrap_or(0))
    }

    /// Opens the database at `path` for reading only (a backup being verified): nothing is
    /// written, not even a missing column family; every column family in it is opened.
    pub fn open_read_only(path: &Path, config: &RocksConfig) -> Result<Self, StoreError> {
        cpu_supported()?;
        if !path.join("CURRENT").exists() {
            return Err(StoreError::Rocks(format!(
                "{} holds no database",
                path.display()
            )));
        }
        let cache = Cache::new_lru_cache(config.block_cache_bytes);
        let mut db_opts = cf_options(config, &cache, DEFAULT_COLUMN_FAMILY_NAME);
        db_opts.set_max_open_files(config.max_open_files);
        let cf_names = DB::list_cf(&db_opts, path).map_err(rocks)?;
        let descriptors = cf_names.iter().map(|name| {
            ColumnFamilyDescriptor::new(name.as_str(), cf_options(config, &cache, name))
        });
        let db =
            DB::open_cf_descriptors_read_only(&db_opts, path, descriptors, false).map_err(rocks)?;
        Ok(Self {
            db,
            cache,
            cf_names,
            syncs: AtomicU64::new(0),
        })
    }

    /// Writes a copy of the database as of one instant into `path`, which must not exist (a
    /// RocksDB checkpoint): memtables are flushed first, table files are hard-linked when
    /// `path` is on the same filesystem (they never change once written) and copied
    /// otherwise. Safe while writes continue; the copy opens as a database of its own.
    pub fn checkpoint(&self, path: &Path) -> Result<(), StoreError> {
        let cp = rocksdb::checkpoint::Checkpoint::new(&self.db).map_err(rocks)?;
        cp.create_checkpoint(path).map_err(rocks)?;
        tracing::info!(path = %path.display(), "rocksdb checkpoint written");
        Ok(())
    }

    /// Compacts `col` down to its last level, as RocksDB's background compactions eventually
    /// would (a maintenance step; `purge` does this and also collects blob garbage). Live
    /// values in blob files stay where they are: only their references move.
    pub fn compact(&self, col: Column) -> Result<(), StoreError> {
        self.compact_cf(self.cf(col)?);
        Ok(())
    }

    /// A full, exclusive manual compaction of one column family, bottommost level included.
    fn compact_cf(&self, cf: &ColumnFamily) {
        let mut opts = rocksdb::CompactOptions::default();
        opts.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        opts.set_exclusive_manual_compaction(true);
        self.db
            .compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &opts);
    }

    fn cf(&self, col: &str) -> Result<&ColumnFamily, StoreError> {
        self.db
            .cf_handle(col)
            .ok_or_else(|| StoreError::UnknownColumn(col.to_owned()))
    }

    /// Collects entries of `col` in `[lower, upper)` (upper `None` = unbounded), at most `limit`.
    fn collect(
        &self,
        col: Column,
        lower: &[u8],
        upper: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let cf = self.cf(col)?;
        if limit == 0 || upper.is_some_and(|u| u <= lower) {
            return Ok(Vec::new());
        }
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(lower);
        if let Some(upper) = upper {
            opts.set_iterate_upper_bound(upper);
        }
        let mut it = self.db.raw_iterator_cf_opt(cf, opts);
        it.seek(lower);
        let mut out = Vec::new();
        while out.len() < limit {
            match it.item() {
                Some((k, v)) => out.push((k.to_vec(), v.to_vec())),
                None => break,
            }
            it.next();
        }
        it.status().map_err(rocks)?;
        Ok(out)
    }
}

impl ReadStore for RocksStore {
    fn get(&self, col: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let cf = self.cf(col)?;
        self.db.get_cf(cf, key).map_err(rocks)
    }

    fn get_uncached(&self, col: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let cf = self.cf(col)?;
        let mut opts = ReadOptions::default();
        opts.fill_cache(false);
        self.db.get_cf_opt(cf, key, &opts).map_err(rocks)
    }

    fn range(
        &self,
        col: Column,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        self.collect(col, start, end, limit)
    }

    fn scan_prefix(
        &self,
        col: Column,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let end = prefix_successor(prefix);
        self.collect(col, prefix, end.as_deref(), limit)
    }

    fn last_with_prefix(&self, col: Column, prefix: &[u8]) -> Result<Option<Entry>, StoreError> {
        let cf = self.cf(col)?;
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(prefix);
        if let Some(end) = prefix_successor(prefix) {
            opts.set_iterate_upper_bound(end);
        }
        let mut it = self.db.raw_iterator_cf_opt(cf, opts);
        it.seek_to_last();
        let last = it.item().map(|(k, v)| (k.to_vec(), v.to_vec()));
        it.status().map_err(rocks)?;
        // Bounds are hints for some iterator paths; check the prefix explicitly.
        Ok(last.filter(|(k, _)| k.starts_with(prefix)))
    }

    fn last_before(
        &self,
        col: Column,
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let cf = self.cf(col)?;
        let mut opts = ReadOptions::default();
        if let Some(end) = end {
            opts.set_iterate_upper_bound(end);
        }
        let mut it = self.db.raw_iterator_cf_opt(cf, opts);
        it.seek_to_last();
        let mut out = Vec::new();
        while out.len() < limit {
            let Some((k, v)) = it.item() else { break };
            // The bound is a hint for some iterator paths; check it explicitly.
            if end.is_none_or(|e| k < e) {
                out.push((k.to_vec(), v.to_vec()));
            }
            it.prev();
        }
        it.status().map_err(rocks)?;
        Ok(out)
    }
}

impl Store for RocksStore {
    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), StoreError> {
        // Resolve every column first: an unknown one fails the batch before anything is written.
        let handles = batch
            .ops()
            .iter()
            .map(|op| self.cf(op.column()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut rb = rocksdb::WriteBatch::default();
        for (op, cf) in batch.ops().iter().zip(handles) {
            match op {
                Op::Put { key, value, .. } => rb.put_cf(cf, key, value),
                Op::Delete { key, .. } => rb.delete_cf(cf, key),
            }
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(durability == Durability::Sync);
        opts.disable_wal(false);
        self.db.write_opt(rb, &opts).map_err(rocks)?;
        if durability == Durability::Sync {
            self.syncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn sync_count(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    fn flush(&self) -> Result<(), StoreError> {
        for name in &self.cf_names {
            let cf = self.cf(name)?;
            self.db.flush_cf(cf).map_err(rocks)?;
        }
        tracing::debug!(path = %self.db.path().display(), "flushed rocksdb memtables");
        Ok(())
    }

    fn purge(&self, cols: &[Column]) -> Result<(), StoreError> {
        self.flush()?;
        self.db.flush_wal(true).map_err(rocks)?;
        for col in cols {
            let cf = self.cf(col)?;
            // A compaction keeps a live value's blob file unless garbage collection relocates
            // it; a deleted value's bytes would stay in that file. With collection on and the
            // age cutoff at 1.0 every blob file the compaction reaches is rewritten without
            // the deleted values and then removed (see `PURGE_BLOB_GC`).
            self.db.set_options_cf(cf, &PURGE_BLOB_GC).map_err(rocks)?;
            self.compact_cf(cf);
            self.db.set_options_cf(cf, &NORMAL_BLOB_GC).map_err(rocks)?;
        }
        tracing::info!(
            columns = cols.len(),
            "purged deleted data from rocksdb files"
        );
        Ok(())
    }

    fn memory_usage_bytes(&self) -> u64 {
        let memtables: u64 = self
            .cf_names
            .iter()
            .filter_map(|name| self.db.cf_handle(name))
            .map(|cf| {
                self.db
                    .property_int_value_cf(cf, "rocksdb.cur-size-all-mem-tables")
                    .ok()
                    .flatten()
                    .unwrap_or(0)
            })
            .sum();
        memtables.saturating_add(u64::try_from(self.cache.get_usage()).unwrap_or(u64::MAX))
    }
}
