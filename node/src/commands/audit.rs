//! `imi-node audit`: checkpoints, evidence bundles, the offline verifier.
// `serde_json::Value[&str]` yields `Null` for a missing key and cannot panic.
#![allow(clippy::indexing_slicing)]
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use imi_node::config::NodeConfig;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Command {
    /// Signs a checkpoint of the running node's log now and prints it.
    Checkpoint {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Exports the evidence bundle of a case (or of a time range) from the running node.
    Export {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// The case id (32 hex digits).
        #[arg(long, required_unless_present_all = ["from", "to"], conflicts_with_all = ["from", "to"])]
        case: Option<String>,
        /// From (RFC 3339 UTC, inclusive), with --to.
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// To (RFC 3339 UTC, exclusive), with --from.
        #[arg(long, requires = "from")]
        to: Option<String>,
        /// The bundle file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Verifies an evidence bundle offline (no node, no network, no database). Exits
    /// non-zero if any check fails, naming it.
    Verify {
        /// The bundle file.
        file: PathBuf,
        /// The governance public key to trust (hex file, e.g. fed/governance.pub). Required:
        /// a bundle's own key proves nothing about who exported it.
        #[arg(long)]
        governance_key: PathBuf,
        /// Witness cosignations (by members other than the log's node) required on the last
        /// checkpoint; 0 accepts an unwitnessed log and says so in the report.
        #[arg(long, default_value_t = 1)]
        witnesses: usize,
        /// The same case's bundle exported by the other party's node: it is verified too
        /// (its checks prefixed `counterpart.`), then both are cross-checked (`cross.*`: what
        /// one node's signed records say the other received or sent is in the other's
        /// bundle; docs/evidence-bundle.md §8).
        #[arg(long)]
        counterpart: Option<PathBuf>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the subcommand.
pub fn exec(command: Command) -> Result<()> {
    match command {
        Command::Checkpoint { config } => {
            let cfg = NodeConfig::load(&config)?;
            let v = super::runtime()?.block_on(imi_node::diag::operator_call(
                &cfg,
                reqwest::Method::POST,
                "/operator/audit/checkpoint",
                None,
            ))?;
            print!("{}", v["checkpoint"].as_str().unwrap_or(""));
            Ok(())
        }
        Command::Export {
            config,
            case,
            from,
            to,
            out,
        } => {
            let cfg = NodeConfig::load(&config)?;
            let query = match (&case, &from, &to) {
                (Some(c), _, _) => format!("case={c}"),
                (None, Some(f), Some(t)) => format!("from={f}&to={t}"),
                _ => bail!("give --case, or --from and --to"),
            };
            let v = super::runtime()?.block_on(imi_node::diag::operator_call(
                &cfg,
                reqwest::Method::GET,
                &format!("/operator/audit/bundle?{query}"),
                None,
            ))?;
            let case = case.unwrap_or_else(|| {
                format!("{} to {}", from.unwrap_or_default(), to.unwrap_or_default())
            });
            std::fs::write(&out, serde_json::to_vec_pretty(&v)?)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "bundle of case {case}: {} entries written to {}",
                v["entries"].as_array().map_or(0, Vec::len),
                out.display()
            );
            Ok(())
        }
        Command::Verify {
            file,
            governance_key,
            witnesses,
            counterpart,
            json,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let pinned = imi_node::keyfile::read_public32(&governance_key)
                .with_context(|| format!("governance key {}", governance_key.display()))?;
            // What the verdict rests on comes first in the report.
            let mut checks = vec![
                imi_audit::bundle::Check {
                    name: "trust.governance_key".into(),
                    ok: true,
                    detail: format!(
                        "pinned {} from {}",
                        hex::encode(pinned),
                        governance_key.display()
                    ),
                },
                imi_audit::bundle::Check {
                    name: "trust.witnesses_required".into(),
                    ok: true,
                    detail: if witnesses == 0 {
                        "0: an unwitnessed log is accepted".into()
                    } else {
                        witnesses.to_string()
                    },
                },
            ];
            let options = imi_audit::bundle::Options {
                governance_key: Some(pinned),
                min_witnesses: witnesses,
            };
            checks.extend(imi_audit::bundle::verify(&bytes, &options));
            if let Some(other) = counterpart {
                let other_bytes = std::fs::read(&other)
                    .with_context(|| format!("reading {}", other.display()))?;
                checks.extend(
                    imi_audit::bundle::verify(&other_bytes, &options)
                        .into_iter()
                        .map(|mut c| {
                            c.name = format!("counterpart.{}", c.name);
                            c
                        }),
                );
                checks.extend(imi_audit::bundle::cross_check(
                    &bytes,
                    &other_bytes,
                    &options,
                ));
            }
            let failed: Vec<&imi_audit::bundle::Check> = checks.iter().filter(|c| !c.ok).collect();
            if json {
                println!("{}", serde_json::to_string(&checks)?);
            } else {
                for c in &checks {
                    println!(
                        "{} {}{}",
                        if c.ok { "PASS" } else { "FAIL" },
                        c.name,
                        if c.detail.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", c.detail)
                        }
                    );
                }
                println!("{} checks, {} failed", checks.len(), failed.len());
            }
            if !failed.is_empty() {
                bail!(
                    "bundle does not verify: {}",
                    failed
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            Ok(())
        }
    }
}
