//! The `imi-node` command line: parses and dispatches to [`commands`].
use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

mod commands;

/// mimalloc instead of glibc's malloc for everything Rust allocates (RocksDB's C++ keeps
/// glibc's): 15-30 % less CPU per directory search through the API and 13 MiB less memory
/// at start, with the settings `imi-node run` gives it (`commands::run::ALLOCATOR_ENV`;
/// BENCHMARKS.md, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        command: commands::federation::Command,
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
    /// The node's config file: `config check` validates it without starting.
    Config {
        #[command(subcommand)]
        command: commands::config::Command,
    },
    /// Key inspection.
    Keys {
        #[command(subcommand)]
        command: commands::keys::Command,
    },
    /// The IMI scoreboard: compute it offline from a facts file, or export a node's facts.
    Scoreboard {
        #[command(subcommand)]
        command: commands::scoreboard::Command,
    },
    /// Audit: checkpoints, evidence bundles, the offline verifier.
    Audit {
        #[command(subcommand)]
        command: commands::audit::Command,
    },
    /// API users and their tokens (through the running node's operator API).
    Users {
        #[command(subcommand)]
        command: commands::users::Command,
    },
    /// The replicated authority directory of a running node: status, import, export.
    Directory {
        #[command(subcommand)]
        command: commands::directory::Command,
    },
    /// Operator diagnostics against a running node.
    Diag {
        #[command(subcommand)]
        command: commands::diag::Command,
    },
    /// Maintenance mode of a running node: on (not-ready, with a reason), off, status.
    Maintenance {
        #[command(subcommand)]
        command: commands::maintenance::Command,
    },
    /// Backups: create (online), list, verify, restore (into an empty data directory).
    Backup {
        #[command(subcommand)]
        command: commands::backup::Command,
    },
}

fn main() {
    if let Err(e) = dispatch() {
        eprintln!("imi-node: {e:#}");
        std::process::exit(1);
    }
}

fn dispatch() -> Result<()> {
    let cli = Cli::parse();
    imi_node::install_crypto_provider();
    match cli.command {
        Command::Federation { command } => commands::federation::exec(command),
        Command::Run { config, json_logs } => commands::run::exec(&config, json_logs),
        Command::Config { command } => commands::config::exec(command),
        Command::Keys { command } => commands::keys::exec(command),
        Command::Scoreboard { command } => commands::scoreboard::exec(command),
        Command::Audit { command } => commands::audit::exec(command),
        Command::Users { command } => commands::users::exec(command),
        Command::Directory { command } => commands::directory::exec(command),
        Command::Diag { command } => commands::diag::exec(command),
        Command::Maintenance { command } => commands::maintenance::exec(command),
        Command::Backup { command } => commands::backup::exec(command),
    }
}
