//! `imi-node run`: runs a node until SIGTERM or SIGINT.
use anyhow::Result;
use imi_node::config::NodeConfig;
use std::path::Path;

/// Runs the node of `config`.
pub fn exec(config: &Path, json_logs: bool) -> Result<()> {
    let cfg = NodeConfig::load(config)?;
    imi_node::run::init_logging(json_logs || cfg.log.json, cfg.log.level.as_deref());
    super::runtime()?.block_on(async move {
        let shutdown = imi_node::run::signal_token()?;
        let clock = imi_node::run::clock_of(&cfg)?;
        imi_node::run::run(cfg, clock, shutdown).await
    })
}
