//! `imi-node maintenance`: maintenance mode of a running node (not-ready while on), through
//! its operator API.
// `serde_json::Value[&str]` yields `Null` for a missing key and cannot panic.
#![allow(clippy::indexing_slicing)]
use anyhow::Result;
use clap::Subcommand;
use imi_node::config::NodeConfig;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Command {
    /// Maintenance mode on: `/health/ready` answers 503 with the reason, so that a load
    /// balancer or monitor takes the node out of service; it keeps serving and exchanging.
    /// A restart ends it.
    On {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// Why (shown in readiness; at most 200 characters).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Maintenance mode off.
    Off {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Whether maintenance mode is on, and why.
    Status {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
    },
}

/// Runs the subcommand.
pub fn exec(command: Command) -> Result<()> {
    let rt = super::runtime()?;
    let (config, body) = match command {
        Command::On { config, reason } => (
            config,
            Some(serde_json::json!({"on": true, "reason": reason})),
        ),
        Command::Off { config } => (config, Some(serde_json::json!({"on": false}))),
        Command::Status { config } => (config, None),
    };
    let cfg = NodeConfig::load(&config)?;
    let method = if body.is_some() {
        reqwest::Method::POST
    } else {
        reqwest::Method::GET
    };
    let v = rt.block_on(imi_node::diag::operator_call(
        &cfg,
        method,
        "/operator/maintenance",
        body,
    ))?;
    match v["reason"].as_str() {
        Some(r) if v["maintenance"] == true => println!("maintenance mode on: {r}"),
        _ => println!("maintenance mode off"),
    }
    Ok(())
}
