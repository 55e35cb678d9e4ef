//! The `imi-node` command line.
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use imi_node::config::NodeConfig;
use imi_node::diag::DiagRequest;
use imi_protocol::NodeId;
use std::path::PathBuf;

/// A national node of the federated Internal Market Information System.
#[derive(Parser)]
#[command(name = "imi-node", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Federation set-up.
    Federation {
        #[command(subcommand)]
        command: FederationCommand,
    },
    /// Runs a node until SIGTERM or SIGINT.
    Run {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// JSON logs (also IMI_LOG_JSON=1).
        #[arg(long)]
        json_logs: bool,
    },
    /// Key inspection.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The IMI scoreboard: compute it offline from a facts file, or export a node's facts.
    Scoreboard {
        #[command(subcommand)]
        command: ScoreboardCommand,
    },
    /// Audit: checkpoints, evidence bundles, the offline verifier.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// API users and their tokens (through the running node's operator API).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Operator diagnostics against a running node.
    Diag {
        #[command(subcommand)]
        command: DiagCommand,
    },
}

#[derive(Subcommand)]
enum FederationCommand {
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

#[derive(Subcommand)]
enum ScoreboardCommand {
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

#[derive(Subcommand)]
enum AuditCommand {
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
        /// The governance public key to trust (hex file, e.g. fed/governance.pub); default:
        /// the key in the bundle.
        #[arg(long)]
        governance_key: Option<PathBuf>,
        /// Witness cosignatures required on the last checkpoint.
        #[arg(long, default_value_t = 0)]
        witnesses: usize,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Adds a user of an authority of this node's country and prints its bearer token
    /// (shown once; the node stores only its SHA-256).
    Add {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// Login id.
        #[arg(long)]
        id: String,
        /// The user's authority.
        #[arg(long)]
        authority: String,
        /// authority_user, coordinator, auditor or operator.
        #[arg(long)]
        role: String,
        /// For a delegated coordinator: comma-separated legal areas (none: national).
        #[arg(long, value_delimiter = ',')]
        areas: Vec<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Lists the users.
    List {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Revokes a user's token.
    Revoke {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// Login id.
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Shows the node's public keys, key ids and libp2p peer id.
    Show {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum DiagCommand {
    /// Sends signed diagnostic envelopes through the running node and prints the receipts
    /// and round-trip times.
    Send {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// Destination node.
        #[arg(long)]
        to: NodeId,
        /// Number of envelopes.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Body size in bytes.
        #[arg(long, default_value_t = 0)]
        body_bytes: usize,
        /// Return once enqueued, without waiting for receipts.
        #[arg(long)]
        no_wait: bool,
        /// Offered load in messages per second (default: as fast as possible).
        #[arg(long)]
        rate: Option<f64>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("imi-node: {e:#}");
        std::process::exit(1);
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    // A small blocking pool: fewer threads, fewer malloc arenas, less resident memory.
    Ok(tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(16)
        .enable_all()
        .build()?)
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    imi_node::install_crypto_provider();
    match cli.command {
        Command::Federation {
            command:
                FederationCommand::Init {
                    out,
                    members,
                    all,
                    base_port,
                    host,
                    catalogue,
                    directory,
                },
        } => {
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
        Command::Run { config, json_logs } => {
            let cfg = NodeConfig::load(&config)?;
            imi_node::run::init_logging(json_logs || cfg.log.json, cfg.log.level.as_deref());
            runtime()?.block_on(async move {
                let shutdown = imi_node::run::signal_token()?;
                imi_node::run::run(cfg, imi_node::run::system_clock(), shutdown).await
            })
        }
        Command::Keys {
            command: KeysCommand::Show { config },
        } => {
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
            let trust =
                imi_node::init::load_trust_list(&cfg.trust_list, &cfg.governance_public_key)?;
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
        Command::Scoreboard { command } => match command {
            ScoreboardCommand::Compute {
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
                let threads = threads
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
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
                    Some(p) => std::fs::write(&p, text)
                        .with_context(|| format!("writing {}", p.display()))?,
                    None => {
                        use std::io::Write;
                        std::io::stdout().write_all(text.as_bytes())?;
                    }
                }
                Ok(())
            }
            ScoreboardCommand::Export {
                config,
                period,
                out,
            } => {
                let cfg = NodeConfig::load(&config)?;
                let path = match &period {
                    Some(p) => format!("/api/v1/scoreboard/facts?period={p}"),
                    None => "/api/v1/scoreboard/facts".to_owned(),
                };
                let text = runtime()?.block_on(imi_node::diag::public_get(&cfg, &path))?;
                match out {
                    Some(p) => std::fs::write(&p, text)?,
                    None => print!("{text}"),
                }
                Ok(())
            }
        },
        Command::Audit { command } => match command {
            AuditCommand::Checkpoint { config } => {
                let cfg = NodeConfig::load(&config)?;
                let v = runtime()?.block_on(imi_node::diag::operator_call(
                    &cfg,
                    reqwest::Method::POST,
                    "/operator/audit/checkpoint",
                    None,
                ))?;
                print!("{}", v["checkpoint"].as_str().unwrap_or(""));
                Ok(())
            }
            AuditCommand::Export {
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
                let v = runtime()?.block_on(imi_node::diag::operator_call(
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
            AuditCommand::Verify {
                file,
                governance_key,
                witnesses,
                json,
            } => {
                let bytes =
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                let governance_key = match governance_key {
                    Some(p) => Some(imi_node::keyfile::read_public32(&p)?),
                    None => None,
                };
                let checks = imi_audit::bundle::verify(
                    &bytes,
                    &imi_audit::bundle::Options {
                        governance_key,
                        min_witnesses: witnesses,
                    },
                );
                let failed: Vec<&imi_audit::bundle::Check> =
                    checks.iter().filter(|c| !c.ok).collect();
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
        },
        Command::Users { command } => {
            let rt = runtime()?;
            match command {
                UsersCommand::Add {
                    config,
                    id,
                    authority,
                    role,
                    areas,
                    json,
                } => {
                    let cfg = NodeConfig::load(&config)?;
                    let body = serde_json::json!({
                        "id": id, "authority": authority, "role": role, "areas": areas,
                    });
                    let v = rt.block_on(imi_node::diag::operator_call(
                        &cfg,
                        reqwest::Method::POST,
                        "/operator/users",
                        Some(body),
                    ))?;
                    if json {
                        println!("{v}");
                    } else {
                        println!(
                            "user {} ({} of {}) added; token (shown once):",
                            v["id"].as_str().unwrap_or(""),
                            v["role"].as_str().unwrap_or(""),
                            v["authority"].as_str().unwrap_or("")
                        );
                        println!("{}", v["token"].as_str().unwrap_or(""));
                    }
                }
                UsersCommand::List { config, json } => {
                    let cfg = NodeConfig::load(&config)?;
                    let v = rt.block_on(imi_node::diag::operator_call(
                        &cfg,
                        reqwest::Method::GET,
                        "/operator/users",
                        None,
                    ))?;
                    if json {
                        println!("{v}");
                    } else {
                        for u in v["items"].as_array().into_iter().flatten() {
                            println!(
                                "{:<24} {:<16} {:<14} {:<12} {}",
                                u["id"].as_str().unwrap_or(""),
                                u["authority"].as_str().unwrap_or(""),
                                u["role"].as_str().unwrap_or(""),
                                if u["revoked"].as_bool() == Some(true) {
                                    "revoked"
                                } else {
                                    "active"
                                },
                                u["created"].as_str().unwrap_or("")
                            );
                        }
                    }
                }
                UsersCommand::Revoke { config, id } => {
                    let cfg = NodeConfig::load(&config)?;
                    rt.block_on(imi_node::diag::operator_call(
                        &cfg,
                        reqwest::Method::POST,
                        &format!("/operator/users/{id}/revoke"),
                        None,
                    ))?;
                    println!("user {id} revoked");
                }
            }
            Ok(())
        }
        Command::Diag {
            command:
                DiagCommand::Send {
                    config,
                    to,
                    count,
                    body_bytes,
                    no_wait,
                    rate,
                    json,
                },
        } => {
            let cfg = NodeConfig::load(&config)?;
            let req = DiagRequest {
                to,
                count,
                wait: !no_wait,
                body_bytes,
                rate_per_s: rate,
            };
            let result = runtime()?
                .block_on(imi_node::diag::request(&cfg, &req))
                .context("diagnostic send")?;
            if json {
                println!("{}", serde_json::to_string(&result)?);
            } else {
                imi_node::diag::print_human(&result);
            }
            if result.rejected > 0 || result.unanswered > 0 {
                std::process::exit(2);
            }
            Ok(())
        }
    }
}
