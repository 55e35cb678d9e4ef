//! `imi-node run`: runs a node until SIGTERM or SIGINT.
use anyhow::Result;
use imi_node::config::NodeConfig;
use std::path::Path;

/// The allocators' settings the node runs with, each unless the operator set it already:
///
/// * `MALLOC_ARENA_MAX=2`: glibc's malloc serves RocksDB's C++ allocations. It creates up
///   to eight arenas per core, one per thread that meets contention, and each keeps freed
///   memory for itself: `imi-sim bench exchange` peaked at 100–103 MiB per node with the
///   default and 77 MiB with 2, at the same throughput (BENCHMARKS.md).
/// * `MALLOC_MMAP_THRESHOLD_=131072`: glibc's malloc maps blocks of 128 KiB and more on
///   their own and unmaps them when freed, but by default raises that threshold to the
///   largest such block freed so far, after which RocksDB's memtable blocks (256 KiB each)
///   come from the heap, and the heap keeps the most the memtables ever held. Fixed, each
///   block goes back to the system with its flushed memtable: the simulator's 31 nodes took
///   150 MiB less together at scale 0.05 (CPU within the runs' noise) and about 200 MiB
///   less over the full year (BENCHMARKS.md).
/// * `MIMALLOC_PURGE_DELAY=0` and `MIMALLOC_ARENA_EAGER_COMMIT=0`: mimalloc (the Rust side's
///   allocator) returns freed pages at once and commits its arenas as they are used. With its
///   defaults a node started at 116–125 MiB RSS instead of 51 (BENCHMARKS.md, "Allocator").
pub const ALLOCATOR_ENV: &[(&str, &str)] = &[
    ("MALLOC_ARENA_MAX", "2"),
    ("MALLOC_MMAP_THRESHOLD_", "131072"),
    ("MIMALLOC_PURGE_DELAY", "0"),
    ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
];

/// Re-executes this process with the [`ALLOCATOR_ENV`] settings it lacks (the allocators
/// read them only at start, and setting them from inside would need unsafe code). `exec`
/// keeps the process id, so a service manager sees no difference. Returns when nothing is
/// missing, or if the exec failed (the node then runs with the allocators' defaults).
fn with_allocator_settings() {
    let missing: Vec<(&str, &str)> = ALLOCATOR_ENV
        .iter()
        .filter(|(name, _)| std::env::var_os(name).is_none())
        .copied()
        .collect();
    if missing.is_empty() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .envs(missing.iter().copied())
        .exec();
    eprintln!("imi-node: could not re-execute with the allocator settings {missing:?}: {err}");
}

/// Runs the node of `config`.
pub fn exec(config: &Path, json_logs: bool) -> Result<()> {
    with_allocator_settings();
    let cfg = NodeConfig::load(config)?;
    imi_node::run::init_logging(json_logs || cfg.log.json, cfg.log.level.as_deref());
    cfg.runtime.runtime()?.block_on(async move {
        let shutdown = imi_node::run::signal_token()?;
        let clock = imi_node::run::clock_of(&cfg)?;
        imi_node::run::run(cfg, clock, shutdown).await
    })
}
