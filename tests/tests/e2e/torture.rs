//! The short torture of `make test`: `imi-sim torture` itself (its library), five real
//! `imi-node` processes under request and diagnostic traffic, 20 SIGKILLs and restarts on
//! the same data directories and ports. Every invariant must hold: per node and message kind
//! sent = receipted = applied, nothing lost or duplicated, every request step the API
//! answered stored exactly once, every case closed on both its nodes, one log leaf per
//! event, every checkpoint a prefix of its node's log, the last ones cosigned by every other
//! node, no witness alarm, evidence bundles verifying offline, a clean SIGTERM at the end.
//!
//! The kill schedule is the seed's (`IMI_TORTURE_SEED` to try another); the assertions do
//! not depend on when the kills land: the client waits on answers and the final phase on
//! empty outboxes and cosignatures, never on time.

use imi_e2e::{HEAVY, lock, node_bin};
use imi_sim::torture::{self, TortureArgs};
use imi_sim::ui::Style;

/// The seed of `make test`: its 20 kills hit every one of the five nodes.
const SEED: u64 = 20;

#[test]
fn twenty_kills_lose_nothing_and_duplicate_nothing() {
    let _g = lock(&HEAVY);
    let seed = std::env::var("IMI_TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    let args = TortureArgs {
        nodes: 5,
        kills: 20,
        interval_ms: 1000,
        seed: Some(seed),
        rate: 4.0,
        diag_rate: 4.0,
        timeout_s: 300,
        ..TortureArgs::default()
    };
    let report =
        torture::run_blocking(&args, &node_bin()).unwrap_or_else(|e| panic!("torture: {e:#}"));
    let table = report.table(&Style::detect(false));
    eprintln!("{table}");
    assert!(
        report.held(),
        "invariants failed: {:#?}\n{table}",
        report.failures()
    );
    assert_eq!(report.kills, 20, "{table}");
    if seed == SEED {
        assert_eq!(report.kills_by_node.len(), 5, "every node killed: {table}");
    }
    // The traffic ran: every kind; requests and witness traffic from every node.
    for kind in torture::verify::KINDS {
        let rows: Vec<_> = report.messages.iter().filter(|r| r.kind == *kind).collect();
        assert_eq!(rows.len(), 5, "{kind}: {table}");
        if *kind == "diagnostic" {
            assert!(rows.iter().map(|r| r.sent).sum::<u64>() > 0, "{table}");
        } else {
            assert!(rows.iter().all(|r| r.sent > 0), "{kind}: {table}");
        }
    }
    assert!(
        report.client.cases >= 20 && report.client.cases == report.client.cases_completed,
        "{table}"
    );
    assert_eq!(report.client.steps, 4 * report.client.cases, "{table}");
    for (node, cp) in &report.checkpoints {
        assert!(cp.stored >= 2, "{node}: {cp:?}");
        assert_eq!(cp.final_size, cp.log_size, "{node}: {cp:?}");
        assert_eq!(cp.final_cosignatures, 4, "{node}: {cp:?}");
    }
}
