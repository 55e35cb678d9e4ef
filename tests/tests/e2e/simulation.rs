//! `imi-sim run` in `make test` (its library, real `imi-node` processes on a simulated
//! clock): the three fault scenarios at a fifth of their traffic (a node down for a simulated
//! week, a partition that heals, a node SIGKILLed three times; 30 wall seconds each), each
//! ending with lost = duplicated = 0 and consistent, cosigned checkpoints; and the
//! calibration scenario at scale 0.02 (2,251 cases) on all 31 nodes with the simulated
//! 16 months in 150 wall seconds, whose scoreboard must equal the 2021 map in all 30
//! countries.
//!
//! The assertions wait on events (answers, empty outboxes, the Commission's facts,
//! cosignatures), never on time: on a slow machine the simulated clock simply runs ahead of
//! the plan, and the runner moves a late case as a whole (see `imi_sim::scenario::exec`).

use imi_e2e::{HEAVY, lock, node_bin};
use imi_sim::model::Scenario;
use imi_sim::scenario::{self, RunArgs, Summary};

/// Runs scenario `name`; `set` are `--set` overrides (`key.path=value`, an integer value),
/// each then checked in every member's node.toml, as is the runner's own setting of the
/// nodes' async workers (the machine's cores shared among them) where `set` has none.
fn run(name: &str, scale: f64, wall_s: Option<f64>, set: &[&str]) -> Summary {
    let scenario = Scenario::load(name).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let dir = tempfile::tempdir().unwrap();
    let args = RunArgs {
        scenario: name.into(),
        scale,
        wall_s,
        set: set.iter().map(|s| (*s).to_owned()).collect(),
        ..RunArgs::default()
    };
    let summary = scenario::run_blocking(&scenario, &args, &node_bin(), dir.path())
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let configs: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path().join("node.toml"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(configs.len(), summary.nodes, "{name}: node.toml files");
    let workers = imi_sim::federation::shared_cores_setting(summary.nodes);
    let mut expected: Vec<&str> = set.to_vec();
    if !set.iter().any(|s| s.starts_with("runtime.worker_threads=")) {
        expected.push(&workers);
    }
    for (key, value) in expected.iter().map(|s| s.split_once('=').unwrap()) {
        for path in &configs {
            let doc: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
            let mut at = &toml::Value::Table(doc);
            for part in key.split('.') {
                at = at
                    .get(part)
                    .unwrap_or_else(|| panic!("{}: no {key}", path.display()));
            }
            assert_eq!(
                at.as_integer(),
                value.parse().ok(),
                "{}: {key}",
                path.display()
            );
        }
    }
    let failed: Vec<_> = summary.checks.iter().filter(|c| !c.ok).collect();
    assert!(failed.is_empty(), "{name}: {failed:#?}");
    assert_eq!(summary.lost, 0, "{name}");
    assert_eq!(summary.duplicated, 0, "{name}");
    assert_eq!(summary.cases_finished as usize, summary.cases, "{name}");
    assert!(summary.cases > 0, "{name}: no traffic");
    let count = |kind: &str| summary.envelopes_by_kind.get(kind).copied().unwrap_or(0);
    for kind in ["imi.request", "imi.checkpoint", "imi.cosignature"] {
        assert!(
            count(kind) > 0,
            "{name}: no {kind} envelopes: {:?}",
            summary.envelopes_by_kind
        );
    }
    // Fact reports go alone (`imi.fact`) or, pending together, several to an envelope.
    assert!(
        count("imi.fact") + count("imi.facts") > 0,
        "{name}: no fact reports: {:?}",
        summary.envelopes_by_kind
    );
    let names: Vec<&str> = summary.checks.iter().map(|c| c.name.as_str()).collect();
    for n in [
        "messages.exactly_once",
        "checkpoints.consistent",
        "checkpoints.cosigned",
    ] {
        assert!(names.contains(&n), "{name}: no {n} check: {names:?}");
    }
    summary
}

#[test]
fn a_node_down_for_a_simulated_week_loses_nothing() {
    let _g = lock(&HEAVY);
    let s = run("node-down", 0.2, None, &[]);
    assert_eq!(s.faults.len(), 1, "{:?}", s.faults);
    assert!(s.faults[0].recovery_s.is_some(), "{:?}", s.faults);
}

#[test]
fn a_partition_that_heals_loses_nothing() {
    let _g = lock(&HEAVY);
    let s = run("partition", 0.2, None, &[]);
    assert_eq!(s.faults.len(), 1, "{:?}", s.faults);
    assert!(s.faults[0].fault.starts_with("partition"), "{:?}", s.faults);
}

#[test]
fn three_sigkills_mid_traffic_lose_nothing() {
    let _g = lock(&HEAVY);
    // With a setting of `--set` for every node (the default on two cores, so the run is
    // the same).
    let s = run("kills", 0.2, None, &["runtime.blocking_threads=4"]);
    assert_eq!(s.faults.len(), 3, "{:?}", s.faults);
}

#[test]
fn the_2021_scoreboard_is_reproduced_by_31_nodes() {
    let _g = lock(&HEAVY);
    let s = run("scoreboard-2021", 0.02, Some(150.0), &[]);
    assert_eq!(s.nodes, 31);
    assert_eq!(s.countries, 30);
    // Each member reports its facts every `FACT_REPORT_MS` (5 wall seconds), whatever is
    // pending in one envelope: at most one report envelope per member per run of the job
    // (there were about six times as many with the job every 0.5 s).
    let reports: u64 = ["imi.fact", "imi.facts"]
        .iter()
        .map(|k| s.envelopes_by_kind.get(*k).copied().unwrap_or(0))
        .sum();
    let runs = (s.wall_s * 1000.0 / scenario::FACT_REPORT_MS as f64).ceil() as u64 + 2;
    assert!(
        reports > 0 && reports <= 30 * runs,
        "{reports} fact report envelopes in {} s",
        s.wall_s
    );
    // Usage facts (one per notification, alert and register entry sent) leave the same
    // way: those pending together in one `imi.usages` envelope, so fewer envelopes than
    // facts and at most one per member per run of the job.
    let usage: u64 = ["imi.usage", "imi.usages"]
        .iter()
        .map(|k| s.envelopes_by_kind.get(*k).copied().unwrap_or(0))
        .sum();
    let facts = s.notifications + s.alerts + s.repository_entries;
    assert!(
        s.envelopes_by_kind
            .get("imi.usages")
            .is_some_and(|&n| n > 0)
            && usage <= 30 * runs
            && usage * 2 < facts,
        "{usage} usage envelopes for {facts} usage facts in {} s",
        s.wall_s
    );
    // Each node's own peak, by node: all 31, summing to the total, the largest the maximum.
    let by_node = &s.peak_rss_mib_by_node;
    let sum: f64 = by_node.values().sum();
    assert!(
        by_node.len() == 31
            && by_node.contains_key("EU")
            && (sum - s.peak_rss_mib_total).abs() < 1.0
            && by_node.values().copied().fold(0.0, f64::max) == s.peak_rss_mib_max,
        "{by_node:?}: sum {sum}, total {}, max {}",
        s.peak_rss_mib_total,
        s.peak_rss_mib_max
    );
    // Memory at one instant: no more than the nodes' own peaks summed, and less as PSS, since
    // the 31 processes share the binary's code pages.
    assert!(
        s.peak_pss_mib_together > 0.0
            && s.peak_pss_mib_together < s.peak_rss_mib_together
            && s.peak_rss_mib_together <= s.peak_rss_mib_total + 1.0,
        "PSS {} / RSS {} at one instant, peaks summed {}",
        s.peak_pss_mib_together,
        s.peak_rss_mib_together,
        s.peak_rss_mib_total
    );
    assert_eq!(
        s.map_matches,
        Some(30),
        "{}",
        s.scoreboard
            .iter()
            .map(|c| format!("{} {:?}/{:?}", c.country, c.computed, c.expected))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
