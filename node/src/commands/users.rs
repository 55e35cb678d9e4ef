//! `imi-node users`: API users and their tokens, through the running node's operator API.
// `serde_json::Value[&str]` yields `Null` for a missing key and cannot panic.
#![allow(clippy::indexing_slicing)]
use anyhow::Result;
use clap::Subcommand;
use imi_node::config::NodeConfig;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Command {
    /// Adds a user of an authority of this node's country and prints its bearer token
    /// (shown once; the node stores only its SHA-256).
    Add {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// Login id.
        #[arg(long)]
        id: String,
        /// The user's authority.
        #[arg(long)]
        authority: String,
        /// authority_user, coordinator, auditor or operator.
        #[arg(long)]
        role: String,
        /// For a delegated coordinator: comma-separated legal areas (none: national).
        #[arg(long, value_delimiter = ',')]
        areas: Vec<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Lists the users.
    List {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Revokes a user's token.
    Revoke {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// Login id.
        #[arg(long)]
        id: String,
    },
}

/// Runs the subcommand.
pub fn exec(command: Command) -> Result<()> {
    let rt = super::runtime()?;
    match command {
        Command::Add {
            config,
            id,
            authority,
            role,
            areas,
            json,
        } => {
            let cfg = NodeConfig::load(&config)?;
            let body = serde_json::json!({
                "id": id, "authority": authority, "role": role, "areas": areas,
            });
            let v = rt.block_on(imi_node::diag::operator_call(
                &cfg,
                reqwest::Method::POST,
                "/operator/users",
                Some(body),
            ))?;
            if json {
                println!("{v}");
            } else {
                println!(
                    "user {} ({} of {}) added; token (shown once):",
                    v["id"].as_str().unwrap_or(""),
                    v["role"].as_str().unwrap_or(""),
                    v["authority"].as_str().unwrap_or("")
                );
                println!("{}", v["token"].as_str().unwrap_or(""));
            }
        }
        Command::List { config, json } => {
            let cfg = NodeConfig::load(&config)?;
            let v = rt.block_on(imi_node::diag::operator_call(
                &cfg,
                reqwest::Method::GET,
                "/operator/users",
                None,
            ))?;
            if json {
                println!("{v}");
            } else {
                for u in v["items"].as_array().into_iter().flatten() {
                    println!(
                        "{:<24} {:<16} {:<14} {:<12} {}",
                        u["id"].as_str().unwrap_or(""),
                        u["authority"].as_str().unwrap_or(""),
                        u["role"].as_str().unwrap_or(""),
                        if u["revoked"].as_bool() == Some(true) {
                            "revoked"
                        } else {
                            "active"
                        },
                        u["created"].as_str().unwrap_or("")
                    );
                }
            }
        }
        Command::Revoke { config, id } => {
            let cfg = NodeConfig::load(&config)?;
            rt.block_on(imi_node::diag::operator_call(
                &cfg,
                reqwest::Method::POST,
                &format!("/operator/users/{id}/revoke"),
                None,
            ))?;
            println!("user {id} revoked");
        }
    }
    Ok(())
}
