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
//! * [`plan`]: every case of the run, decided in advance and deterministic for (scenario,
//!   scale, seed, directory, catalogue). Fractions are **stratified**, not drawn: of the `n`
//!   requests a country receives, exactly `round(f × n)` get a behaviour of fraction `f`,
//!   one in each of as many equal slices of its (time-ordered) requests; the mean time to
//!   answer is met exactly. So the indicators come out as the profiles say at any scale.
//! * **Margins**: the runner executes a step when the shared simulated clock reaches its
//!   `at_ms`, so a step may happen later than planned (never earlier). Every step that an
//!   indicator looks at is planned at least `time.margin_hours` away from the threshold it
//!   must not cross, and consecutive steps are at least twice the margin apart, so being up
//!   to the margin late changes no indicator (see `scenarios/README.md`).
//! * [`expected_fact`]: the indicator facts of a case if every step happens at its `at_ms`,
//!   exactly as a node derives them (`imi_apps::facts::fact_of`).
mod broadcasts;
mod planner;
mod scenario;

pub use broadcasts::{BroadcastKind, PlannedBroadcast, plan_broadcasts};
pub use planner::{
    Action, Plan, PlannedCase, PlannedQuestion, PlannedStep, expected_fact, expected_scoreboard,
    plan, plan_with_catalogue,
};
pub use scenario::{
    Fault, Profile, Scenario, ScoreboardCheck, Time, Traffic, expected_map, load_authorities,
    load_map, repo_root, scenarios_dir,
};

#[cfg(test)]
mod tests;
