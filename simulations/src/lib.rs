//! `imi-sim`: drives real `imi-node` processes on loopback.
//!
//! The simulator never links a node into its own process for the traffic it measures: it
//! runs `imi-node federation init`, starts one `imi-node run` process per member, talks to
//! each node only through its HTTPS listener (`/health/live`, `/health/ready`, `/metrics`,
//! the operator API with the bearer token from the node's `operator.token`, and the
//! authorities' API with users made by `imi-node users add`) and stops the nodes with
//! SIGTERM, as an operator would (the torture also SIGKILLs them, and reads their
//! RocksDB once they have stopped).
//!
//! Subcommands:
//!
//! * `imi-sim demo [--dir data/demo] [--base-port 17000] [--count 1]` (what `make demo`
//!   runs): all 31 members (30 EEA states and `EU`), every node sends diagnostics to every
//!   other node, a 31×31 table of round-trip medians, a summary; the 30 national directory
//!   replicas converge and three cross-language searches run on HU; a clean stop. Exits
//!   non-zero if a pair failed, the directory did not converge or a search found nothing, or
//!   a node did not stop cleanly.
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
//! * `imi-sim torture [--nodes 5] [--kills 1000] [--interval-ms 3000] [--seed S]
//!   [--json-out FILE]` ([`torture`]): five nodes under steady request traffic, a random
//!   node killed with SIGKILL every few seconds and restarted; at the end, per node and
//!   message kind, sent = receipted = applied, nothing lost or duplicated, every checkpoint
//!   consistent and cosigned. `make test` runs 20 kills (the end-to-end test
//!   `tests/tests/e2e/torture.rs`, through this library).
//!
//! * `imi-sim directory generate [--count 12500] [--seed 1] --out FILE` ([`directory_gen`]):
//!   a realistic, deterministic directory of competent authorities (IMI's real size by
//!   default) across the 30 EEA countries: real regions and cities, names in each country's
//!   languages and English, professions and competences from `configs/vocabularies/`, areas
//!   and procedures from `configs/catalogue/`; written in the `[[authorities]]` format of
//!   `configs/directory/authorities.toml`, with a line per country on stderr. Runs no node.
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

pub mod bench;
pub mod bench_api;
pub mod bench_audit;
pub mod bench_directory;
pub mod bench_flood;
pub mod bench_notify;
pub mod bench_scoreboard;
pub mod demo;
pub mod directory_gen;
pub mod federation;
pub mod model;
pub mod scenario;
pub mod torture;
pub mod ui;
