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

/// The tokio runtime of a subcommand: the defaults of `[runtime]` (one worker per core, a
/// small blocking pool).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(imi_node::config::RuntimeSection::default().runtime()?)
}
