//! `imi-node scoreboard`: compute the scoreboard offline, or export a node's facts.
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use imi_node::config::NodeConfig;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Command {
    /// Computes the scoreboard from indicator facts (JSON Lines), offline: no node, no
    /// network, no database.
    Compute {
        /// The facts file (`-` for standard input).
        #[arg(long)]
        facts: PathBuf,
        /// A year (2021) or a quarter (2021-Q2).
        #[arg(long, conflicts_with_all = ["from", "to"], required_unless_present_all = ["from", "to"])]
        period: Option<String>,
        /// First day, YYYY-MM-DD (inclusive; with --to).
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// First day after the period, YYYY-MM-DD (exclusive; with --from).
        #[arg(long, requires = "from")]
        to: Option<String>,
        /// json, csv or html.
        #[arg(long, default_value = "json")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Worker threads (default: the machine's cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Exports the facts a running node holds (its own reports; on EU, the cross-checked
    /// facts of every case) as JSON Lines.
    Export {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// Only requests sent within this year or quarter.
        #[arg(long)]
        period: Option<String>,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs the subcommand.
pub fn exec(command: Command) -> Result<()> {
    match command {
        Command::Compute {
            facts,
            period,
            from,
            to,
            format,
            out,
            threads,
        } => {
            let period = match (period, from, to) {
                (Some(p), _, _) => imi_scoreboard::Period::parse(&p).with_context(|| {
                    format!("--period {p}: a year (2021) or a quarter (2021-Q2)")
                })?,
                (None, Some(f), Some(t)) => {
                    let date = |s: &str| {
                        imi_protocol::dates::Date::parse(s)
                            .with_context(|| format!("{s} is not a YYYY-MM-DD date"))
                    };
                    imi_scoreboard::Period::between(date(&f)?, date(&t)?)
                        .context("--from must be before --to")?
                }
                _ => bail!("give --period, or --from and --to"),
            };
            let threads = threads.unwrap_or_else(imi_node::config::cores);
            let board = if facts.as_os_str() == "-" {
                imi_scoreboard::read_facts(std::io::stdin().lock(), period, threads)
            } else {
                let f = std::fs::File::open(&facts)
                    .with_context(|| format!("opening {}", facts.display()))?;
                imi_scoreboard::read_facts(f, period, threads)
            }
            .with_context(|| format!("facts {}", facts.display()))?;
            let text = match format.as_str() {
                "json" => board.scoreboard().to_json() + "\n",
                "csv" => board.scoreboard().to_csv(),
                "html" => imi_scoreboard::html::page(&board),
                other => bail!("--format {other}: json, csv or html"),
            };
            match out {
                Some(p) => {
                    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?
                }
                None => {
                    use std::io::Write;
                    std::io::stdout().write_all(text.as_bytes())?;
                }
            }
            Ok(())
        }
        Command::Export {
            config,
            period,
            out,
        } => {
            let cfg = NodeConfig::load(&config)?;
            let path = match &period {
                Some(p) => format!("/api/v1/scoreboard/facts?period={p}"),
                None => "/api/v1/scoreboard/facts".to_owned(),
            };
            let text = super::runtime()?.block_on(imi_node::diag::public_get(&cfg, &path))?;
            match out {
                Some(p) => std::fs::write(&p, text)?,
                None => print!("{text}"),
            }
            Ok(())
        }
    }
}
