//! `imi-node keys`: key inspection, new keys for a rotation, the public half for governance.
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
    /// Writes a new signing key (`identity.key`) and HPKE key (`hpke.key`), mode 0600, into a
    /// directory (never over existing files), and prints their public halves as trust-list
    /// entries: add them to the node's member in the trust-list file, sign it, then point
    /// the node's config at the new files once the list is in force (the old keys stay
    /// listed until their validity ends: that is the overlap).
    Generate {
        /// The node the keys are for.
        #[arg(long)]
        node: imi_protocol::NodeId,
        /// The directory to write them in.
        #[arg(long)]
        out: PathBuf,
        /// Valid from (ms since the epoch; default now).
        #[arg(long)]
        valid_from: Option<u64>,
        /// Valid for this many days.
        #[arg(long, default_value_t = 730)]
        days: u64,
    },
    /// A key rotation, step one: new signing and HPKE keys for the node of `--config`,
    /// written into `--out` (never over existing files), printed as trust-list entries to
    /// add under the node's member, with the config lines that switch the node to them
    /// once the new list is in force everywhere. See docs/operations.md, "Rotating keys".
    Rotate {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// The directory to write the new keys in.
        #[arg(long)]
        out: PathBuf,
        /// When the new keys become valid (ms since the epoch; default: a day from now, so
        /// that every member holds the new list before anyone uses them).
        #[arg(long)]
        valid_from: Option<u64>,
        /// Valid for this many days.
        #[arg(long, default_value_t = 730)]
        days: u64,
    },
    /// Prints the node's public keys as trust-list entries (for the governance's file).
    ExportPublic {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// Valid from (ms since the epoch; default now).
        #[arg(long)]
        valid_from: Option<u64>,
        /// Valid for this many days.
        #[arg(long, default_value_t = 730)]
        days: u64,
    },
}

fn now_ms() -> u64 {
    use imi_protocol::Clock as _;
    imi_protocol::SystemClock.now_ms()
}

/// The trust-list entries of a node's public keys.
fn entries(node: imi_protocol::NodeId, signing: &[u8; 32], hpke: &[u8; 32], from: u64, days: u64) {
    let until = from.saturating_add(days.saturating_mul(86_400_000));
    println!(
        "# {node}: add to its member in the trust-list file (imi-node federation show), then sign"
    );
    println!(
        "signing_keys = [{{ public = \"{}\", valid_from = {from}, valid_until = {until} }}]",
        hex::encode(signing)
    );
    println!(
        "hpke_keys = [{{ public = \"{}\", valid_from = {from}, valid_until = {until} }}]",
        hex::encode(hpke)
    );
}

/// Writes a new signing key and HPKE key into `out` (0600; refused over existing files).
fn write_new_keys(
    node: imi_protocol::NodeId,
    out: &std::path::Path,
) -> Result<(
    PathBuf,
    PathBuf,
    imi_protocol::NodeSigner,
    imi_protocol::HpkeKeyPair,
)> {
    std::fs::create_dir_all(out)?;
    let (id, hp) = (out.join("identity.key"), out.join("hpke.key"));
    for p in [&id, &hp] {
        if p.exists() {
            anyhow::bail!("{} exists: keys are never overwritten", p.display());
        }
    }
    let signer = imi_protocol::NodeSigner::generate(node);
    let hpke = imi_protocol::HpkeKeyPair::generate();
    imi_node::keyfile::write_secret(&id, &hex::encode(signer.seed()))?;
    imi_node::keyfile::write_secret(&hp, &hex::encode(hpke.secret_bytes()))?;
    eprintln!("wrote {} and {} (0600)", id.display(), hp.display());
    Ok((id, hp, signer, hpke))
}

/// Runs the subcommand.
pub fn exec(command: Command) -> Result<()> {
    let config = match command {
        Command::Show { config } => config,
        Command::Rotate {
            config,
            out,
            valid_from,
            days,
        } => {
            let cfg = NodeConfig::load(&config)?;
            let out = std::path::absolute(&out)?;
            let (id, hp, signer, hpke) = write_new_keys(cfg.node, &out)?;
            let from = valid_from.unwrap_or_else(|| now_ms().saturating_add(86_400_000));
            let until = from.saturating_add(days.saturating_mul(86_400_000));
            let quoted = |paths: &[String]| {
                paths
                    .iter()
                    .map(|p| format!("\"{p}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let old_hpke: Vec<String> = std::iter::once(&cfg.hpke_key)
                .chain(&cfg.hpke_extra_keys)
                .map(|p| p.display().to_string())
                .collect();
            let mut with_new = cfg
                .hpke_extra_keys
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>();
            with_new.push(hp.display().to_string());
            println!(
                "# 1. Now, in {}: let the node open envelopes sealed to its new HPKE key too, and restart it:",
                config.display()
            );
            println!("#    hpke_extra_keys = [{}]", quoted(&with_new));
            println!(
                "# 2. Add under [[members]] node = \"{}\" of the trust-list file (imi-node federation show),",
                cfg.node
            );
            println!(
                "#    raise `version`, sign it and push it to one node (it reaches every member):"
            );
            for (table, public) in [
                ("signing_keys", signer.public()),
                ("hpke_keys", hpke.public()),
            ] {
                println!();
                println!("[[members.{table}]]");
                println!("public = \"{}\"", hex::encode(public));
                println!("valid_from = {from}");
                println!("valid_until = {until}");
            }
            println!();
            println!(
                "# 3. Once every member holds that version and valid_from ({from}) has passed, switch the node and restart it:"
            );
            println!("#    identity_key = \"{}\"", id.display());
            println!("#    hpke_key = \"{}\"", hp.display());
            println!("#    hpke_extra_keys = [{}]", quoted(&old_hpke));
            println!(
                "# 4. Later, end the old keys' validity (valid_until = now) in the next version: messages signed with the old key after that are refused (key_not_valid)."
            );
            return Ok(());
        }
        Command::Generate {
            node,
            out,
            valid_from,
            days,
        } => {
            let (_, _, signer, hpke) = write_new_keys(node, &out)?;
            entries(
                node,
                &signer.public(),
                &hpke.public(),
                valid_from.unwrap_or_else(now_ms),
                days,
            );
            return Ok(());
        }
        Command::ExportPublic {
            config,
            valid_from,
            days,
        } => {
            let cfg = NodeConfig::load(&config)?;
            let identity = imi_node::init::load_identity(&cfg)?;
            let hpke = identity
                .hpke
                .first()
                .map(imi_protocol::HpkeKeyPair::public)
                .ok_or_else(|| anyhow::anyhow!("no HPKE key"))?;
            entries(
                cfg.node,
                &identity.signer.public(),
                &hpke,
                valid_from.unwrap_or_else(now_ms),
                days,
            );
            return Ok(());
        }
    };
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
    let file = imi_node::init::load_trust_list(&cfg.trust_list, &cfg.governance_public_key)?;
    // The list in force is the newer of the file and the one the node adopted from its peers.
    let (trust, source) = match imi_node::init::stored_trust_list(&cfg) {
        Ok(Some(stored)) if stored.version > file.version => {
            let source = format!(
                "in force, from the node's database; the file {} holds version {}",
                cfg.trust_list.display(),
                file.version
            );
            (stored, source)
        }
        Ok(_) => (file, format!("{}", cfg.trust_list.display())),
        Err(e) => (
            file,
            format!(
                "{}; the node's database was not read: {e:#}",
                cfg.trust_list.display()
            ),
        ),
    };
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
    println!("                ({source})");
    Ok(())
}
