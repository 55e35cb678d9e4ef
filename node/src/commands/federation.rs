//! `imi-node federation`: set-up of a federation.
use anyhow::{Context, Result, bail};
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
        /// The default lies below Linux's ephemeral port range (32768–60999), where no outgoing
        /// connection can hold a node's port while the node is down or restarting.
        #[arg(long, default_value_t = 17000)]
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
        /// The day the nodes' keys become valid, YYYY-MM-DD (default: yesterday): a
        /// simulation of a past year (`[simulation]`) needs keys valid from before it.
        #[arg(long)]
        keys_valid_from: Option<String>,
    },
    /// Prints a signed trust list (verified under the governance public key) as the TOML
    /// file `federation sign` takes: edit it, raise `version`, sign it.
    Show {
        /// The signed trust list (e.g. fed/trust-list.cbor).
        #[arg(long)]
        trust_list: PathBuf,
        /// The governance public key (hex file, e.g. fed/governance.pub).
        #[arg(long)]
        governance_public_key: PathBuf,
    },
    /// Signs a trust-list TOML file (see `federation show`) with the governance key as a new
    /// version: refused unless it is valid and, with `--previous`, newer than that list.
    /// Nodes take it at their next start (the file their config names), and keep refusing
    /// an older one they see afterwards.
    Sign {
        /// The trust-list TOML file.
        #[arg(long)]
        members: PathBuf,
        /// The governance secret key (hex, 0600, e.g. fed/governance.key).
        #[arg(long)]
        governance_key: PathBuf,
        /// The list in force: the new version must be above its version.
        #[arg(long)]
        previous: Option<PathBuf>,
        /// Where to write the signed list (COSE_Sign1 bytes).
        #[arg(long)]
        out: PathBuf,
    },
    /// Hands a signed trust list to a running node (operator API): it takes it only if it
    /// is validly signed and newer than the one it holds, keeps it across restarts, and
    /// passes it on to every other member (push to one node).
    Push {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// The signed trust list.
        #[arg(long)]
        trust_list: PathBuf,
    },
}

/// Runs the subcommand.
pub fn exec(command: Command) -> Result<()> {
    let (out, members, all, base_port, host, catalogue, directory, keys_valid_from) = match command
    {
        Command::Init {
            out,
            members,
            all,
            base_port,
            host,
            catalogue,
            directory,
            keys_valid_from,
        } => (
            out,
            members,
            all,
            base_port,
            host,
            catalogue,
            directory,
            keys_valid_from,
        ),
        Command::Show {
            trust_list,
            governance_public_key,
        } => return show(&trust_list, &governance_public_key),
        Command::Sign {
            members,
            governance_key,
            previous,
            out,
        } => return sign(&members, &governance_key, previous.as_deref(), &out),
        Command::Push { config, trust_list } => {
            let cfg = imi_node::config::NodeConfig::load(&config)?;
            let bytes = std::fs::read(&trust_list)?;
            let v = super::runtime()?.block_on(imi_node::diag::operator_post_bytes(
                &cfg,
                "/operator/trust-list",
                bytes,
            ))?;
            println!(
                "{} holds trust list version {}; sent on to {} members",
                cfg.node,
                v.get("trust_list_version")
                    .unwrap_or(&serde_json::Value::Null),
                v.get("sent_to").unwrap_or(&serde_json::Value::Null)
            );
            return Ok(());
        }
    };
    let members = if all { NodeId::ALL.to_vec() } else { members };
    if members.is_empty() {
        bail!("give --members or --all");
    }
    let keys_valid_from = keys_valid_from
        .map(|d| {
            imi_protocol::dates::Date::parse(&d)
                .map(|d| d.start_ms())
                .with_context(|| format!("--keys-valid-from {d:?}: not a YYYY-MM-DD date"))
        })
        .transpose()?;
    let configs = imi_node::init::init(&imi_node::init::InitOptions {
        out: out.clone(),
        members,
        base_port,
        host,
        catalogue,
        directory,
        keys_valid_from,
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

/// `federation show`.
fn show(trust_list: &std::path::Path, governance_public_key: &std::path::Path) -> Result<()> {
    let list = imi_node::init::load_trust_list(trust_list, governance_public_key)?;
    println!(
        "# trust list version {}, issued {} (ms since the epoch), {} members; raise `version`\n# to sign an edited copy with `imi-node federation sign`.",
        list.version,
        list.issued,
        list.members.len()
    );
    print!(
        "{}",
        toml::to_string(&imi_node::trustfile::TrustListFile::of(&list))?
    );
    Ok(())
}

/// `federation sign`.
fn sign(
    members: &std::path::Path,
    governance_key: &std::path::Path,
    previous: Option<&std::path::Path>,
    out: &std::path::Path,
) -> Result<()> {
    use anyhow::Context;
    let text = std::fs::read_to_string(members)
        .with_context(|| format!("reading {}", members.display()))?;
    let file: imi_node::trustfile::TrustListFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", members.display()))?;
    let seed = imi_node::keyfile::read_secret32(governance_key)?;
    let governance = imi_protocol::NodeSigner::from_seed(NodeId::EU, &seed);
    use imi_protocol::Clock as _;
    let list = file
        .to_trust_list(imi_protocol::SystemClock.now_ms())
        .with_context(|| members.display().to_string())?;
    if let Some(p) = previous {
        let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        let old = imi_protocol::TrustList::verify(&bytes, &governance.public()).map_err(|e| {
            anyhow::anyhow!("{}: not signed by this governance key: {e}", p.display())
        })?;
        old.check_update(&list)
            .map_err(|e| anyhow::anyhow!("{e} (raise `version` in {})", members.display()))?;
    }
    let bytes = list.sign(&governance)?;
    // What a node will do with it: it must verify.
    imi_protocol::TrustList::verify(&bytes, &governance.public())
        .map_err(|e| anyhow::anyhow!("the signed list does not verify: {e}"))?;
    std::fs::write(out, &bytes).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "trust list version {} ({} members) signed to {}",
        list.version,
        list.members.len(),
        out.display()
    );
    Ok(())
}
