//! `imi-node config check`: validates a node's config file without starting the node.
use anyhow::{Result, bail};
use clap::Subcommand;
use std::path::PathBuf;

/// `imi-node config …`
#[derive(Subcommand)]
pub enum Command {
    /// Checks a config file without starting the node: the file and its keys, every key
    /// file and its mode, the trust list and this node on it, TLS, the catalogue, the
    /// directory, the data directory, the listen ports and the engine settings. Prints every
    /// check; exits non-zero if any failed, naming them.
    Check {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the subcommand.
pub fn exec(command: Command) -> Result<()> {
    match command {
        Command::Check { config, json } => {
            use imi_protocol::Clock as _;
            let findings = imi_node::check::check(&config, imi_protocol::SystemClock.now_ms());
            let failed: Vec<&str> = findings
                .iter()
                .filter(|f| !f.ok)
                .map(|f| f.name.as_str())
                .collect();
            if json {
                println!("{}", serde_json::to_string(&findings)?);
            } else {
                for f in &findings {
                    println!(
                        "{} {} ({})",
                        if f.ok { "PASS" } else { "FAIL" },
                        f.name,
                        f.detail
                    );
                }
                println!("{} checks, {} failed", findings.len(), failed.len());
            }
            if !failed.is_empty() {
                bail!("{}: {}", config.display(), failed.join(", "));
            }
            Ok(())
        }
    }
}
