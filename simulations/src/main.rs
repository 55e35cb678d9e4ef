//! `imi-sim`: drives real `imi-node` processes on loopback.
//!
//! The simulator never links a node into its own process for the traffic it measures: it
//! runs `imi-node federation init`, starts one `imi-node run` process per member, talks to
//! each node only through its HTTPS listener (`/health/live`, `/health/ready`, `/metrics`
//! and the operator API `POST /operator/diag/send`, bearer token from the node's
//! `operator.token`) and stops the nodes with SIGTERM, as an operator would.
//!
//! Subcommands:
//!
//! * `imi-sim demo [--dir data/demo] [--base-port 47000] [--count 1]` (what `make demo`
//!   runs): all 31 members (30 EEA states and `EU`), every node sends diagnostics to every
//!   other node, a 31×31 table of round-trip medians, a summary, a clean stop. Exits
//!   non-zero if a pair failed or a node did not stop cleanly.
//! * `imi-sim bench exchange [--messages 20000] [--body 1024] [--json-out FILE]` (what
//!   `make bench` runs, in release): two nodes, AT → DE; throughput and latency at
//!   saturation and at an offered 50 msg/s, messages per fsync, peak memory and CPU per
//!   message, next to the in-process cost of the per-message cryptography and the disk's
//!   fsync latency. Prints one JSON object on stdout (progress goes to stderr). The
//!   figures and targets are explained in `BENCHMARKS.md`.
//!
//! * `imi-sim bench api [--requests 2000] [--concurrency 32] [--rate 50]`: two nodes,
//!   DE → HU; an authority user creates requests through the HTTP API, each answered once
//!   HU holds it durably (`wait=delivered`); requests per second and p50/p99 at 50 req/s.
//!
//! * `imi-sim bench scoreboard [--facts 10000000]`: `imi-node scoreboard compute` over a
//!   generated facts file and one a tenth its size: wall time and peak memory.
//!
//! The node binary is `$IMI_NODE_BIN`, else the `imi-node` next to this executable (so
//! `cargo build -p imi-node -p imi-sim` in the same profile is all the set-up needed).
//! Ports: member i of the federation listens for libp2p on base+2i and HTTPS on base+2i+1
//! (`imi_node::init::ports`); the benchmark picks free ports itself.
// A harness fails loudly on purpose: unwrap, expect, panic and indexing are allowed here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod bench;
mod bench_api;
mod bench_audit;
mod bench_flood;
mod bench_scoreboard;
mod demo;
mod federation;
mod ui;

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
    /// Benchmarks against real node processes.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
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
                command: BenchCommand::Flood(args),
            } => bench_flood::run(&args).await,
        }
    })
}
