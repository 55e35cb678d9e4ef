//! `imi-node backup create|list|verify|restore`: backups of a node's database with its
//! erased-case file, a signed manifest, and a restore that never overwrites
//! ([`imi_node::backup`]).
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use imi_node::backup;
use imi_node::config::NodeConfig;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Command {
    /// Makes a backup now. A running node makes it itself (its operator API), while it
    /// keeps serving and exchanging; a stopped node's database is opened by this command.
    Create {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Lists the backups: id, time, log size, erased cases, size.
    List {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// The backup directory (default: `backup.dir` of the config).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Verifies a backup: every file against the manifest, the manifest's signature by this
    /// node's key on the trust list, the data key, and the log (the root recomputed from the
    /// leaves, every signed checkpoint in it). Exits non-zero if any check fails.
    Verify {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// The backup directory (default: `backup.dir` of the config).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The backup (default: the newest).
        #[arg(long)]
        id: Option<u32>,
    },
    /// Restores a backup into the node's data directory, which must be empty or missing
    /// (the node stopped). Verifies first; merges the erased case ids of every backup in the
    /// directory into the node's file, so that no erased case comes back.
    Restore {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// The backup directory (default: `backup.dir` of the config).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The backup (default: the newest).
        #[arg(long)]
        id: Option<u32>,
    },
}

fn pick(dir: &std::path::Path, id: Option<u32>) -> Result<u32> {
    match id {
        Some(id) => Ok(id),
        None => backup::ids(dir)?
            .last()
            .copied()
            .with_context(|| format!("no backup in {}", dir.display())),
    }
}

fn summary(m: &backup::Manifest) -> String {
    format!(
        "backup {} of {}: {} ({} ms), log {} leaves, {} erased cases, {} files, {} bytes",
        m.id,
        m.node,
        imi_protocol::dates::rfc3339(m.created_ms),
        m.created_ms,
        m.log_size,
        m.erased_cases,
        m.files.len(),
        m.bytes()
    )
}

/// Runs the subcommand.
pub fn exec(command: Command) -> Result<()> {
    match command {
        Command::Create { config } => {
            let cfg = NodeConfig::load(&config)?;
            let m = create(&cfg)?;
            println!("{}", summary(&m));
            println!(
                "in {}",
                backup::backup_dir(&cfg)
                    .join(backup::dir_name(m.id))
                    .display()
            );
            Ok(())
        }
        Command::List { config, dir } => {
            let cfg = NodeConfig::load(&config)?;
            let dir = dir.unwrap_or_else(|| backup::backup_dir(&cfg));
            let ids = backup::ids(&dir)?;
            if ids.is_empty() {
                println!("no backup in {}", dir.display());
            }
            for id in ids {
                match backup::manifest(&dir, id) {
                    Ok(m) => println!("{}", summary(&m)),
                    Err(e) => println!("backup {id}: unreadable manifest: {e:#}"),
                }
            }
            Ok(())
        }
        Command::Verify { config, dir, id } => {
            let cfg = NodeConfig::load(&config)?;
            let dir = dir.unwrap_or_else(|| backup::backup_dir(&cfg));
            let id = pick(&dir, id)?;
            let checks = backup::verify(&cfg, &dir, id);
            for c in &checks {
                println!(
                    "{} {} ({})",
                    if c.ok { "PASS" } else { "FAIL" },
                    c.name,
                    c.detail
                );
            }
            let failed: Vec<&str> = checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| c.name.as_str())
                .collect();
            if !failed.is_empty() {
                bail!("backup {id}: {}", failed.join(", "));
            }
            println!("backup {id} verifies");
            Ok(())
        }
        Command::Restore { config, dir, id } => {
            let cfg = NodeConfig::load(&config)?;
            let dir = dir.unwrap_or_else(|| backup::backup_dir(&cfg));
            let id = pick(&dir, id)?;
            let r = backup::restore(&cfg, &dir, id)?;
            println!("restored {}", summary(&r.manifest));
            println!(
                "{} files into {}; {} erased case ids in {}",
                r.files,
                cfg.data_dir.display(),
                r.erased_cases,
                imi_node::run::tombstone_file(&cfg).display()
            );
            println!(
                "start the node: it erases listed cases again before serving and resumes its outbox (members answer `duplicate` for what they hold)"
            );
            Ok(())
        }
    }
}

/// A backup by the running node, or, when none answers, by this process on the stopped
/// node's database (RocksDB's lock keeps the two from meeting).
fn create(cfg: &NodeConfig) -> Result<backup::Manifest> {
    let rt = super::runtime()?;
    match rt.block_on(imi_node::diag::operator_call(
        cfg,
        reqwest::Method::POST,
        "/operator/backups",
        None,
    )) {
        Ok(v) => Ok(serde_json::from_value(v)?),
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<reqwest::Error>()
                    .is_some_and(reqwest::Error::is_connect)
            }) =>
        {
            eprintln!(
                "no node answers at {}: backing up the stopped node's database",
                cfg.http.listen
            );
            let store = imi_store::RocksStore::open(
                &cfg.data_dir,
                &imi_apps::columns(),
                &cfg.store.rocks(),
            )
            .with_context(|| format!("opening {}", cfg.data_dir.display()))?;
            let identity = imi_node::init::load_identity(cfg)?;
            backup::create(
                &store,
                cfg,
                &backup::backup_dir(cfg),
                imi_node::run::system_clock().now_ms(),
                &|body, name| {
                    imi_audit::note::SignedNote::sign(body, name, &identity.signer).text()
                },
            )
        }
        Err(e) => Err(e),
    }
}
