//! `imi-node run`: runs a node until SIGTERM or SIGINT.
use anyhow::Result;
use imi_node::config::NodeConfig;
use std::path::Path;

/// glibc's malloc arenas for the node's process, unless the operator set
/// `MALLOC_ARENA_MAX` already. glibc creates up to eight arenas per core, one per thread that
/// meets contention (tokio workers, the blocking pool, RocksDB's threads), and each keeps
/// freed memory for itself: `imi-sim bench exchange` peaked at 100–103 MiB per node with
/// the default and 77 MiB with 2, at the same throughput (BENCHMARKS.md).
pub const MALLOC_ARENAS: &str = "2";

/// Re-executes this process with `MALLOC_ARENA_MAX` set when it is not (glibc reads it only
/// at start, and setting it from inside would need unsafe code). `exec` keeps the process
/// id, so a service manager sees no difference. Returns only if the exec failed (the node
/// then runs with glibc's default).
fn with_bounded_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("MALLOC_ARENA_MAX", MALLOC_ARENAS)
        .exec();
    eprintln!("imi-node: could not re-execute with MALLOC_ARENA_MAX={MALLOC_ARENAS}: {err}");
}

/// Runs the node of `config`.
pub fn exec(config: &Path, json_logs: bool) -> Result<()> {
    with_bounded_malloc_arenas();
    let cfg = NodeConfig::load(config)?;
    imi_node::run::init_logging(json_logs || cfg.log.json, cfg.log.level.as_deref());
    super::runtime()?.block_on(async move {
        let shutdown = imi_node::run::signal_token()?;
        let clock = imi_node::run::clock_of(&cfg)?;
        imi_node::run::run(cfg, clock, shutdown).await
    })
}
