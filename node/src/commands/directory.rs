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
    /// Creates or updates this node's country's authorities from a file, as one signed change
    /// published to every member: TOML in the seed's format (`[[authorities]]`), or CSV when
    /// the name ends in `.csv` (columns `id`, `country`, `level`, `city`, `region`, `areas`,
    /// `procedures`, `professions`, `competences`, `name_<lang>`; lists separated by `|`).
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
    /// Writes the replica's active authorities (of one country with --country) in the seed's
    /// TOML format, or as CSV with --format csv.
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
        /// `toml` (the seed's format) or `csv`.
        #[arg(long, default_value = "toml")]
        format: String,
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
            let csv = file
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
            let authorities: Vec<imi_domain::Authority> = if csv {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                imi_directory::csv::parse(&text).with_context(|| format!("{}", file.display()))?
            } else {
                imi_node::config::load_directory(&file)?
                    .iter()
                    .cloned()
                    .collect()
            };
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
            format,
        } => {
            if format != "toml" && format != "csv" {
                anyhow::bail!("--format must be toml or csv, not {format:?}");
            }
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
            let text = if format == "csv" {
                imi_directory::csv::render(&authorities)
            } else {
                format!(
                    "# Exported from {}'s directory replica.\n\n{}",
                    cfg.node,
                    toml::to_string(&SeedFile { authorities })?
                )
            };
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
