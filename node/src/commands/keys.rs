//! `imi-node keys`: key inspection.
use anyhow::Result;
use clap::Subcommand;
use imi_node::config::NodeConfig;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Command {
    /// Shows the node's public keys, key ids and libp2p peer id.
    Show {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
    },
}

/// Runs the subcommand.
pub fn exec(command: Command) -> Result<()> {
    let Command::Show { config } = command;
    let cfg = NodeConfig::load(&config)?;
    let identity = imi_node::init::load_identity(&cfg)?;
    let peer = imi_engine::peer_id_of(&identity.signer.public())?;
    println!("node            {}", cfg.node);
    println!("peer id         {peer}");
    println!(
        "signing key     {} (kid {})",
        hex::encode(identity.signer.public()),
        hex::encode(identity.signer.key_id())
    );
    for k in &identity.hpke {
        println!(
            "hpke key        {} (kid {})",
            hex::encode(k.public()),
            hex::encode(k.key_id())
        );
    }
    let trust = imi_node::init::load_trust_list(&cfg.trust_list, &cfg.governance_public_key)?;
    let listed = trust.member(cfg.node).is_some_and(|m| {
        m.signing_keys
            .iter()
            .any(|k| k.public == identity.signer.public())
    });
    println!(
        "trust list      version {} ({} members), this key {}",
        trust.version,
        trust.members.len(),
        if listed { "listed" } else { "NOT LISTED" }
    );
    Ok(())
}
