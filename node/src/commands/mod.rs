//! One module per subcommand of `imi-node`; `main.rs` only parses and dispatches.
pub mod audit;
pub mod backup;
pub mod config;
pub mod diag;
pub mod directory;
pub mod federation;
pub mod keys;
pub mod maintenance;
pub mod run;
pub mod scoreboard;
pub mod users;

/// The tokio runtime of a subcommand. A small blocking pool: fewer threads, fewer malloc
/// arenas, less resident memory.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(16)
        .enable_all()
        .build()?)
}
