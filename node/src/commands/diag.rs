//! `imi-node diag`: operator diagnostics against a running node.
use anyhow::{Context, Result};
use clap::Subcommand;
use imi_node::config::NodeConfig;
use imi_node::diag::DiagRequest;
use imi_protocol::NodeId;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Command {
    /// Sends signed diagnostic envelopes through the running node and prints the receipts
    /// and round-trip times.
    Send {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// Destination node.
        #[arg(long)]
        to: NodeId,
        /// Number of envelopes.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Body size in bytes.
        #[arg(long, default_value_t = 0)]
        body_bytes: usize,
        /// Return once enqueued, without waiting for receipts.
        #[arg(long)]
        no_wait: bool,
        /// Offered load in messages per second (default: as fast as possible).
        #[arg(long)]
        rate: Option<f64>,
        /// End to end: at most this many envelopes sent and not yet receipted (needs the
        /// receipts waited for; not with --rate).
        #[arg(long)]
        in_flight: Option<u32>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the subcommand.
pub fn exec(command: Command) -> Result<()> {
    let Command::Send {
        config,
        to,
        count,
        body_bytes,
        no_wait,
        rate,
        in_flight,
        json,
    } = command;
    let cfg = NodeConfig::load(&config)?;
    let req = DiagRequest {
        to,
        count,
        wait: !no_wait,
        body_bytes,
        rate_per_s: rate,
        in_flight,
    };
    let result = super::runtime()?
        .block_on(imi_node::diag::request(&cfg, &req))
        .context("diagnostic send")?;
    if json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        imi_node::diag::print_human(&result);
    }
    if result.rejected > 0 || result.unanswered > 0 {
        std::process::exit(2);
    }
    Ok(())
}
