//! The short torture of `make test`: `imi-sim torture` itself (its library), five real
//! `imi-node` processes under request and diagnostic traffic, 20 SIGKILLs and restarts on
//! the same data directories and ports. Every invariant must hold: per node and message kind
//! sent = receipted = applied, nothing lost or duplicated, every request step the API
//! answered stored exactly once, every case closed on both its nodes, one log leaf per
//! event, every checkpoint a prefix of its node's log, the last ones cosigned by every other
//! node, no witness alarm, evidence bundles verifying offline, a clean SIGTERM at the end.
//!
//! Then the accounting itself is put to the test: one receiver's inbox loses a checkpoint
//! and gains one its sender never signed, and the same stores read again must show exactly
//! that (lost 1, duplicated 1).
//!
//! The kill schedule is the seed's (`IMI_TORTURE_SEED` to try another); the assertions do
//! not depend on when the kills land: the client waits on answers and the final phase on
//! empty outboxes and cosignatures, never on time.

use imi_e2e::{HEAVY, lock, node_bin};
use imi_engine::{InboxRecord, keys};
use imi_protocol::{Kind, NodeId};
use imi_sim::torture::traffic::Ledger;
use imi_sim::torture::verify::Findings;
use imi_sim::torture::{self, KindRow, TortureArgs};
use imi_sim::ui::Style;
use imi_store::{Durability, ReadStore, RocksStore, Store, WriteBatch};
use std::path::{Path, PathBuf};

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
        // Kept for the accounting's own test below, then removed.
        keep: true,
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
    let dir = PathBuf::from(report.dir.as_deref().expect("the directory was kept"));
    accounting_finds_a_lost_and_a_duplicated_envelope(&dir, &report.nodes);
    std::fs::remove_dir_all(&dir).expect("removing the federation directory");
}

/// In the stopped federation under `dir`: the second node's inbox loses one checkpoint of
/// the first and gains one the first never signed; [`torture::verify::analyse`] must count
/// exactly one lost and one duplicated for the first node's checkpoints.
fn accounting_finds_a_lost_and_a_duplicated_envelope(dir: &Path, nodes: &[String]) {
    let members: Vec<NodeId> = nodes.iter().map(|n| n.parse().expect("node id")).collect();
    let (a, b) = (members[0], members[1]);
    // No client ledger: the checkpoint rows do not depend on it.
    let ledger = Ledger::default();
    let row = |f: &Findings| -> KindRow {
        f.rows
            .iter()
            .find(|r| r.node == a.as_str() && r.kind == Kind::CHECKPOINT)
            .cloned()
            .expect("a row for the first node's checkpoints")
    };
    let before = torture::verify::analyse(dir, &members, &ledger).expect("analyse");
    let r0 = row(&before);
    assert!(r0.holds() && r0.applied > 0, "{r0:?}");

    let store = RocksStore::open(
        &dir.join(b.as_str()).join("data"),
        &imi_apps::columns(),
        &Default::default(),
    )
    .expect("open");
    let (key, record) = store
        .scan_prefix(keys::INBOX, a.as_str().as_bytes(), usize::MAX)
        .expect("scan")
        .into_iter()
        .map(|(k, v)| (k, InboxRecord::decode(&v).expect("record")))
        .find(|(_, r)| r.kind == Kind::CHECKPOINT)
        .expect("a checkpoint of the first node in the second's inbox");
    let mut batch = WriteBatch::new();
    batch.delete(keys::INBOX, key);
    let mut forged = a.as_str().as_bytes().to_vec();
    forged.extend_from_slice(&[0x5a; 16]);
    batch.put(keys::INBOX, forged, record.encode().expect("encode"));
    store.write(batch, Durability::Sync).expect("write");
    drop(store);

    let after = torture::verify::analyse(dir, &members, &ledger).expect("analyse");
    let r1 = row(&after);
    assert_eq!(r1.sent, r0.sent, "{r1:?}");
    assert_eq!(r1.applied, r0.applied - 1, "{r1:?}");
    assert_eq!(r1.lost, 1, "{r1:?}");
    assert_eq!(r1.duplicated, 1, "{r1:?}");
    assert!(!r1.holds(), "{r1:?}");
}
