//! `imi-node federation`: set-up of a federation.
use anyhow::{Result, bail};
use clap::Subcommand;
use imi_protocol::NodeId;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Command {
    /// Writes the governance key, every node's keys, the signed trust list, certificates and
    /// one node.toml per node (loopback addresses).
    Init {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Comma-separated node ids, e.g. AT,DE,EU.
        #[arg(long, value_delimiter = ',', required_unless_present = "all")]
        members: Vec<NodeId>,
        /// All 30 EEA states and EU.
        #[arg(long, conflicts_with = "members")]
        all: bool,
        /// First port: member i listens for libp2p on base+2i and HTTPS on base+2i+1.
        #[arg(long, default_value_t = 47000)]
        base_port: u16,
        /// Host address to bind and advertise.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Catalogue directory to copy (default: the repository's configs/catalogue).
        #[arg(long)]
        catalogue: Option<PathBuf>,
        /// Authority directory file to copy (default: configs/directory/authorities.toml).
        #[arg(long)]
        directory: Option<PathBuf>,
    },
}

/// Runs the subcommand.
pub fn exec(command: Command) -> Result<()> {
    let Command::Init {
        out,
        members,
        all,
        base_port,
        host,
        catalogue,
        directory,
    } = command;
    let members = if all { NodeId::ALL.to_vec() } else { members };
    if members.is_empty() {
        bail!("give --members or --all");
    }
    let configs = imi_node::init::init(&imi_node::init::InitOptions {
        out: out.clone(),
        members,
        base_port,
        host,
        catalogue,
        directory,
    })?;
    println!(
        "federation of {} nodes written to {}",
        configs.len(),
        out.display()
    );
    for c in configs {
        println!("  {}", c.display());
    }
    Ok(())
}
