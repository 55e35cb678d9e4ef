//! `imi-node directory`: the replicated authority directory of a running node (through its
//! operator API): its state, an import of this country's authorities, an export.
use anyhow::{Context, Result};
use clap::Subcommand;
use imi_node::config::NodeConfig;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Command {
    /// The replica's state: this node's sequence number, what it has of every country's,
    /// counts, and a digest (equal on nodes that hold the same updates).
    Status {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Creates or updates this node's country's authorities from a TOML file in the seed's
    /// format (`[[authorities]]`), as one signed change published to every member.
    Import {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// Also retire this country's authorities the file leaves out.
        #[arg(long)]
        retire_missing: bool,
        /// The file.
        file: PathBuf,
    },
    /// Writes the replica's active authorities (of one country with --country) as a TOML
    /// file in the seed's format.
    Export {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// Only this country's.
        #[arg(long)]
        country: Option<imi_protocol::NodeId>,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(serde::Serialize)]
struct SeedFile {
    authorities: Vec<imi_domain::Authority>,
}

pub fn exec(command: Command) -> Result<()> {
    let rt = super::runtime()?;
    match command {
        Command::Status { config } => {
            let cfg = NodeConfig::load(&config)?;
            let v = rt.block_on(imi_node::diag::operator_call(
                &cfg,
                reqwest::Method::GET,
                "/operator/directory",
                None,
            ))?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Command::Import {
            config,
            retire_missing,
            file,
        } => {
            let cfg = NodeConfig::load(&config)?;
            let directory = imi_node::config::load_directory(&file)?;
            let authorities: Vec<&imi_domain::Authority> = directory.iter().collect();
            let body = serde_json::json!({
                "authorities": authorities,
                "retire_missing": retire_missing,
            });
            let v = rt.block_on(imi_node::diag::operator_call(
                &cfg,
                reqwest::Method::POST,
                "/operator/directory/import",
                Some(body),
            ))?;
            let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
            println!(
                "{} created or updated, {} retired, {} unchanged",
                n("applied"),
                n("retired"),
                n("unchanged")
            );
        }
        Command::Export {
            config,
            country,
            out,
        } => {
            let cfg = NodeConfig::load(&config)?;
            let path = match country {
                Some(c) => format!("/operator/directory/export?country={c}"),
                None => "/operator/directory/export".to_owned(),
            };
            let v = rt.block_on(imi_node::diag::operator_call(
                &cfg,
                reqwest::Method::GET,
                &path,
                None,
            ))?;
            let authorities: Vec<imi_domain::Authority> =
                serde_json::from_value(v.get("authorities").cloned().unwrap_or_default())
                    .context("the node's export")?;
            let text = format!(
                "# Exported from {}'s directory replica.\n\n{}",
                cfg.node,
                toml::to_string(&SeedFile { authorities })?
            );
            match out {
                Some(p) => {
                    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?
                }
                None => print!("{text}"),
            }
        }
    }
    Ok(())
}
