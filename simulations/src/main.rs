//! `imi-sim`: the command line of the simulator library (see `imi_sim`).
// A harness fails loudly on purpose: unwrap, expect, panic and indexing are allowed here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use imi_sim::{
    bench, bench_api, bench_audit, bench_directory, bench_flood, bench_notify, bench_scoreboard,
    demo, directory_gen, scenario, torture,
};

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Runs real imi-node federations on loopback: the demo and the benchmarks.
#[derive(Parser)]
#[command(name = "imi-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// All 31 nodes on loopback; every node sends diagnostics to every other; prints the
    /// table of receipts and round-trip times; stops every node with SIGTERM.
    Demo(demo::DemoArgs),
    /// A scenario of simulations/scenarios/ on real nodes and a simulated clock: a reporting
    /// year of requests through the API, faults, the Commission's scoreboard against the
    /// expected map, every envelope accounted for. Exits non-zero if an invariant failed.
    Run(scenario::RunArgs),
    /// Five nodes under steady request traffic, a random node killed with SIGKILL every few
    /// seconds and restarted; at the end every message accounted for per node and kind,
    /// every checkpoint consistent and cosigned. Exits non-zero if an invariant failed.
    Torture(torture::TortureArgs),
    /// Benchmarks against real node processes.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// The authority directory of the benchmarks and simulations.
    Directory {
        #[command(subcommand)]
        command: DirectoryCommand,
    },
}

#[derive(Subcommand)]
enum DirectoryCommand {
    /// A realistic directory of competent authorities (12,500 by default) across the 30
    /// countries, deterministic for a seed, in the format of configs/directory/authorities.toml;
    /// a line per country on stderr.
    Generate(directory_gen::GenerateArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Two nodes (AT → DE): throughput, latency, messages per fsync, memory; JSON on stdout.
    Exchange(bench::ExchangeArgs),
    /// Two nodes (DE → HU): API create-and-send until the responder has it durably;
    /// requests per second and p50/p99 at a fixed rate; JSON on stdout.
    Api(bench_api::ApiArgs),
    /// `imi-node scoreboard compute` over 10 million generated facts: time and peak memory.
    Scoreboard(bench_scoreboard::ScoreboardArgs),
    /// One peer floods a node: the p99 round trip of another peer's steady load, alone and
    /// under the flood (target: within 2×); JSON on stdout.
    Flood(bench_flood::FloodArgs),
    /// The transparency log: proof generation on a 1M-leaf RocksDB log, `audit verify` of a
    /// bundle of 10,000 envelopes.
    Audit(bench_audit::AuditArgs),
    /// The directory at 12,500 authorities: index build and size, search p50/p99 at 32
    /// clients through the API, replication from scratch to 30 nodes; JSON on stdout.
    Directory(bench_directory::DirectoryArgs),
    /// One notification at a time from DE to 29 countries and the Commission (31 nodes):
    /// time to all receipts and to all acknowledgements, p50/p99; JSON on stdout.
    Notify(bench_notify::NotifyArgs),
}

fn main() -> ExitCode {
    match real_main() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("imi-sim: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> Result<bool> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Demo(args) => demo::run(&args).await,
            Command::Torture(args) => torture::run_cli(&args).await,
            Command::Run(args) => scenario::run_cli(&args).await,
            Command::Bench {
                command: BenchCommand::Exchange(args),
            } => bench::exchange(&args).await,
            Command::Bench {
                command: BenchCommand::Api(args),
            } => bench_api::run(&args).await,
            Command::Bench {
                command: BenchCommand::Scoreboard(args),
            } => bench_scoreboard::run(&args).await,
            Command::Bench {
                command: BenchCommand::Audit(args),
            } => bench_audit::run(&args).await,
            Command::Bench {
                command: BenchCommand::Directory(args),
            } => bench_directory::run(&args).await,
            Command::Bench {
                command: BenchCommand::Flood(args),
            } => bench_flood::run(&args).await,
            Command::Bench {
                command: BenchCommand::Notify(args),
            } => bench_notify::run(&args).await,
            Command::Directory {
                command: DirectoryCommand::Generate(args),
            } => directory_gen::run(&args),
        }
    })
}
