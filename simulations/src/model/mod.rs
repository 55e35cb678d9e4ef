//! The traffic model of `imi-sim run`: what a scenario says, every case the run will drive,
//! and what the Commission node should learn from them. Pure: no clock, no network, no
//! process; it only reads files (the scenario, its expected map, the catalogue).
//!
//! ```text
//!  scenarios/NAME.toml ──Scenario::load──▶ Scenario ──plan(scale, seed, directory, catalogue)──▶ Plan
//!                                             │                                                   │
//!                                  members, faults, speed                           PlannedCase: create + steps
//!                                             ▼                                                   ▼
//!                                    the runner (processes,          the runner POSTs each step when the
//!                                    clock, faults)                  simulated clock reaches its at_ms
//!                                                                                                  │
//!  scenarios/maps/2021.toml ──expected_map──▶ country → colour  ◀── compare ──  expected_fact(c) → Board
//! ```
//!
//! * [`Scenario`]: the scenario file, validated on load (every error names its key).
//!   Behaviour is **data**: one [`Profile`] per country (shares of requests sent and
//!   received, how fast it accepts and answers, how often on time, how its counterparts
//!   rate it). The code knows no expected colour; the 2021 calibration lives in
//!   `scenarios/scoreboard-2021.toml`.
mod scenario;

pub use scenario::{
    Fault, Profile, Scenario, ScoreboardCheck, Time, Traffic, expected_map, load_authorities,
    load_map, repo_root, scenarios_dir,
};

#[cfg(test)]
mod tests;
