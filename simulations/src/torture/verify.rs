//! After the nodes stopped cleanly: every node's RocksDB read back and cross-checked against
//! the others and against the client's ledger.
//!
//! Per sending node and message kind, every (envelope, recipient) pair in the sender's
//! `env_out` must have a stored receipt (`receipts_out`, signature verified) and an inbox
//! record at the recipient with the same envelope hash; no inbox holds an envelope its
//! sender did not sign; nothing is left in an outbox or in a dead-letter column. Request
//! envelopes must be exactly the steps the client was answered for (so a step retried after
//! a kill was committed once), diagnostics between what was acknowledged and what was
//! asked. The transparency log holds one leaf per logged event; every stored checkpoint is
//! signed, and its root is the root of the log's prefix of its size (so all checkpoints of
//! a node, signed across a thousand restarts, are one append-only history); every
//! cosignature verifies; what each witness last cosigned of each log is that log's root; no
//! witness raised an alarm.
use super::traffic::Ledger;
use super::{Check, KindRow, check};
use anyhow::{Context, Result};
use imi_audit::bundle::witness_name;
use imi_audit::leaf::Leaf;
use imi_audit::merkle;
use imi_audit::note::{Checkpoint, SignedNote, origin_of};
use imi_engine::log::StoreNodes;
use imi_engine::{InboxRecord, keys};
use imi_protocol::{Envelope, Kind, MessageId, NodeId, Receipt, TrustList};
use imi_store::{ReadStore, RocksStore};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

/// The kinds the torture accounts for, in table order.
pub const KINDS: &[&str] = &[
    Kind::REQUEST,
    Kind::DIAGNOSTIC,
    Kind::CHECKPOINT,
    Kind::COSIGNATURE,
];

/// One envelope for one recipient, as the sender stored it.
struct Sent {
    id: MessageId,
    created: u64,
    kind: String,
    to: NodeId,
    hash: [u8; 32],
}

/// What one node's store holds.
struct NodeData {
    id: NodeId,
    sent: Vec<Sent>,
    /// (recipient, id) → receipt outcome label.
    receipts: HashMap<(NodeId, MessageId), String>,
    /// (recipient, id) → when the recipient decided (its receipt's `received`).
    received: HashMap<(NodeId, MessageId), u64>,
    bad_receipts: Vec<String>,
    /// (recipient, id) of rejected envelopes.
    dead: HashSet<(NodeId, MessageId)>,
    /// (recipient, id) of witness envelopes refused `stale`.
    stale: HashSet<(NodeId, MessageId)>,
    outbox: usize,
    /// (sender, id) → (kind, envelope hash).
    inbox: HashMap<(NodeId, MessageId), (String, [u8; 32])>,
    /// Persistent applied-diagnostic counter per sender.
    diag_applied: BTreeMap<NodeId, u64>,
    log_size: u64,
    leaves: Vec<Leaf>,
    /// Stored checkpoints: size → note.
    checkpoints: Vec<(u64, String)>,
    /// What this node, as a witness, last cosigned of each log.
    witness_seen: BTreeMap<NodeId, (u64, [u8; 32])>,
    alarms: usize,
}

/// Per node: the checkpoints it stored.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointSummary {
    /// Checkpoints signed over the run (one per log size).
    pub stored: usize,
    /// Of those, how many carry the cosignatures of exactly this node's witnesses.
    pub fully_cosigned: usize,
    /// The log's final size.
    pub log_size: u64,
    /// The size of the last checkpoint.
    pub final_size: u64,
    /// Valid witness cosignatures on the last checkpoint.
    pub final_cosignatures: usize,
}

/// The findings from the stores.
pub struct Findings {
    /// Per node and kind.
    pub rows: Vec<KindRow>,
    /// Named checks.
    pub checks: Vec<Check>,
    /// Per node.
    pub checkpoints: BTreeMap<String, CheckpointSummary>,
    /// Per node: the diagnostics in its inbox.
    pub diagnostics_in: BTreeMap<NodeId, u64>,
    /// Per kind: for every receipted envelope, its receipt's `received` minus its
    /// `created` (node clock ms; on a simulated clock, divide by the speed for wall ms).
    pub delivery_ms: BTreeMap<String, Vec<u64>>,
}

fn id_of(key: &[u8]) -> Option<(NodeId, MessageId)> {
    Some((
        NodeId::from_bytes(key.get(..2)?)?,
        MessageId::from_slice(key.get(2..)?)?,
    ))
}

fn read_node(id: NodeId, store: &RocksStore, trust: &TrustList) -> Result<NodeData> {
    let all = |col| store.range(col, &[], None, usize::MAX);
    let mut sent = Vec::new();
    for (k, v) in all(keys::ENV_OUT)? {
        let env = Envelope::parse(v, usize::MAX).map_err(|c| {
            anyhow::anyhow!("{id}: env_out {} does not parse: {c}", hex::encode(&k))
        })?;
        let h = env.header();
        for to in &h.to {
            sent.push(Sent {
                id: h.id,
                created: h.created,
                kind: h.kind.as_str().to_owned(),
                to: *to,
                hash: env.hash(),
            });
        }
    }
    let mut receipts = HashMap::new();
    let mut received = HashMap::new();
    let mut bad_receipts = Vec::new();
    for (k, v) in all(keys::RECEIPTS_OUT)? {
        let Some((to, mid)) = id_of(&k) else {
            bad_receipts.push(format!("{id}: receipts_out key {}", hex::encode(&k)));
            continue;
        };
        match Receipt::verify(v, trust, to) {
            Ok(r) if r.body.message_id == Some(mid) => {
                receipts.insert((to, mid), r.body.outcome.label().to_owned());
                received.insert((to, mid), r.body.received);
            }
            Ok(_) => bad_receipts.push(format!("{id}: the receipt of {mid} names another id")),
            Err(c) => bad_receipts.push(format!("{id}: the receipt of {mid} from {to}: {c}")),
        }
    }
    let mut dead = HashSet::new();
    let mut stale = HashSet::new();
    for (k, v) in all(keys::DEAD)? {
        let Some(key) = id_of(&k) else { continue };
        // A witness envelope refused `stale` (signed more than half the pruning age before
        // it arrived, e.g. across a partition): the witness protocol's next checkpoint
        // supersedes it. Anything else refused is a dead letter.
        let is_stale = Receipt::verify(v, trust, key.0).is_ok_and(|r| {
            matches!(&r.body.outcome, imi_protocol::Outcome::Rejected(c) if c.label() == "stale")
        });
        if is_stale {
            stale.insert(key);
        } else {
            dead.insert(key);
        }
    }
    let outbox = all(keys::OUTBOX)?.len();
    let mut inbox = HashMap::new();
    for (k, v) in all(keys::INBOX)? {
        let key = id_of(&k).with_context(|| format!("{id}: inbox key {}", hex::encode(&k)))?;
        let rec = InboxRecord::decode(&v).with_context(|| format!("{id}: inbox record"))?;
        inbox.insert(key, (rec.kind, rec.envelope_hash));
    }
    let mut diag_applied = BTreeMap::new();
    for (k, v) in store.scan_prefix(imi_apps::diagnostics::APP, b"diag/applied/", usize::MAX)? {
        let node = k
            .strip_prefix(b"diag/applied/".as_slice())
            .and_then(NodeId::from_bytes);
        let n = <[u8; 8]>::try_from(v.as_slice()).map(u64::from_be_bytes);
        if let (Some(node), Ok(n)) = (node, n) {
            diag_applied.insert(node, n);
        }
    }
    let log_size = imi_engine::log::size(store)?;
    let leaves = imi_engine::log::leaves(store, log_size)?
        .into_iter()
        .map(|(_, l, _)| l)
        .collect::<Vec<_>>();
    if leaves.len() as u64 != log_size {
        anyhow::bail!(
            "{id}: the log has size {log_size} but {} leaves parse",
            leaves.len()
        );
    }
    let checkpoints = imi_engine::checkpoint::stored(store)?;
    let mut witness_seen = BTreeMap::new();
    for (k, v) in all(imi_apps::witness::WITNESS)? {
        let node = NodeId::from_bytes(&k).with_context(|| format!("{id}: witness key"))?;
        let seen: imi_apps::witness::Seen = ciborium::from_reader(v.as_slice())
            .with_context(|| format!("{id}: witness record of {node}"))?;
        witness_seen.insert(node, (seen.size, seen.root));
    }
    let alarms = all(imi_apps::witness::ALARMS)?.len();
    Ok(NodeData {
        id,
        sent,
        receipts,
        received,
        bad_receipts,
        dead,
        stale,
        outbox,
        inbox,
        diag_applied,
        log_size,
        leaves,
        checkpoints,
        witness_seen,
        alarms,
    })
}

/// Opens every node's store (the nodes must be stopped) and checks it.
pub fn analyse(dir: &Path, members: &[NodeId], ledger: &Ledger) -> Result<Findings> {
    analyse_kinds(
        dir,
        members,
        ledger,
        KINDS,
        &[Kind::REQUEST, Kind::DIAGNOSTIC],
    )
}

/// [`analyse`] accounting for the envelope kinds `kinds`, of which `logged` go into the
/// transparency log.
pub fn analyse_kinds(
    dir: &Path,
    members: &[NodeId],
    ledger: &Ledger,
    kinds: &[&str],
    logged: &[&str],
) -> Result<Findings> {
    let governance = imi_node::keyfile::read_public32(&dir.join("governance.pub"))?;
    let trust = TrustList::verify(&std::fs::read(dir.join("trust-list.cbor"))?, &governance)?;
    let mut stores = Vec::new();
    for id in members {
        let path = dir.join(id.as_str()).join("data");
        let store = RocksStore::open(&path, &imi_apps::columns(), &Default::default())
            .with_context(|| format!("opening {}", path.display()))?;
        stores.push((*id, store));
    }
    let mut data = BTreeMap::new();
    for (id, store) in &stores {
        data.insert(*id, read_node(*id, store, &trust)?);
    }
    let store_of = |id: NodeId| stores.iter().find(|(n, _)| *n == id).map(|(_, s)| s);
    let mut checks = Vec::new();

    // The client's ledger per node: request envelopes acknowledged, diagnostics.
    let mut asked_requests: BTreeMap<NodeId, BTreeSet<MessageId>> = BTreeMap::new();
    for c in &ledger.cases {
        for (_, node, mid) in &c.steps {
            asked_requests.entry(*node).or_default().insert(*mid);
        }
    }

    // Messages, per sender and kind.
    let mut rows = Vec::new();
    let mut delivery_ms: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut ledger_problems = Vec::new();
    let mut diag_problems = Vec::new();
    for (id, d) in &data {
        for kind in kinds {
            let mut row = KindRow {
                node: id.to_string(),
                kind: (*kind).to_owned(),
                ..KindRow::default()
            };
            let mut sent_ids = BTreeSet::new();
            for s in d.sent.iter().filter(|s| s.kind == *kind) {
                row.sent += 1;
                sent_ids.insert(s.id);
                if let Some(at) = d.received.get(&(s.to, s.id)) {
                    delivery_ms
                        .entry((*kind).to_owned())
                        .or_default()
                        .push(at.saturating_sub(s.created));
                }
                match d.receipts.get(&(s.to, s.id)).map(String::as_str) {
                    Some("accepted") => row.receipted += 1,
                    Some("duplicate") => {
                        row.receipted += 1;
                        row.resent += 1;
                    }
                    _ => {}
                }
                if d.dead.contains(&(s.to, s.id)) {
                    row.rejected += 1;
                }
                if d.stale.contains(&(s.to, s.id)) {
                    row.stale += 1;
                    continue;
                }
                let at_receiver = data.get(&s.to).and_then(|r| r.inbox.get(&(*id, s.id)));
                match at_receiver {
                    Some((k, h)) if k == kind && *h == s.hash => row.applied += 1,
                    _ => row.lost += 1,
                }
            }
            // Envelopes applied somewhere that this node never signed.
            for r in data.values() {
                row.duplicated += r
                    .inbox
                    .iter()
                    .filter(|((from, mid), (k, _))| {
                        from == id && k == kind && !sent_ids.contains(mid)
                    })
                    .count() as u64;
            }
            if *kind == Kind::REQUEST {
                let asked = asked_requests.get(id).cloned().unwrap_or_default();
                row.asked = Some(asked.len() as u64);
                let extra = sent_ids.difference(&asked).count();
                let missing = asked.difference(&sent_ids).count();
                row.duplicated += extra as u64;
                row.lost += missing as u64;
                if extra > 0 || missing > 0 {
                    ledger_problems.push(format!(
                        "{id}: {extra} request envelopes the client was never answered for, {missing} steps answered but not stored"
                    ));
                }
            }
            if *kind == Kind::DIAGNOSTIC {
                let mut acked = BTreeSet::new();
                let mut ambiguous = 0;
                for ((from, _), l) in &ledger.diagnostics {
                    if from == id {
                        acked.extend(l.acked.iter().copied());
                        ambiguous += l.ambiguous;
                    }
                }
                let upper = acked.len() as u64 + ambiguous;
                row.asked = Some(upper);
                let missing = acked.difference(&sent_ids).count() as u64;
                row.lost += missing;
                let over = (sent_ids.len() as u64).saturating_sub(upper);
                row.duplicated += over;
                if missing > 0 || over > 0 {
                    diag_problems.push(format!(
                        "{id}: {missing} acknowledged diagnostics not stored; {} stored of at most {upper} asked",
                        sent_ids.len()
                    ));
                }
                // The receivers' persistent effect counters against their inboxes.
                for r in data.values().filter(|r| r.id != *id) {
                    let inbox = r
                        .inbox
                        .iter()
                        .filter(|((from, _), (k, _))| from == id && k == Kind::DIAGNOSTIC)
                        .count() as u64;
                    let counted = r.diag_applied.get(id).copied().unwrap_or(0);
                    if counted != inbox {
                        diag_problems.push(format!(
                            "{}: applied-diagnostics counter for {id} is {counted}, its inbox holds {inbox}",
                            r.id
                        ));
                        if counted > inbox {
                            row.duplicated += counted - inbox;
                        } else {
                            row.lost += inbox - counted;
                        }
                    }
                }
            }
            rows.push(row);
        }
    }
    let bad_rows: Vec<String> = rows
        .iter()
        .filter(|r| !r.holds())
        .map(|r| {
            format!(
                "{} {}: sent {} receipted {} applied {} lost {} duplicated {} rejected {}",
                r.node, r.kind, r.sent, r.receipted, r.applied, r.lost, r.duplicated, r.rejected
            )
        })
        .collect();
    let total: u64 = rows.iter().map(|r| r.sent).sum();
    check(
        &mut checks,
        "messages.exactly_once",
        bad_rows,
        format!("{total} envelopes: each receipted by its sender and applied once by its receiver"),
    );
    let steps: usize = asked_requests.values().map(BTreeSet::len).sum();
    check(
        &mut checks,
        "requests.ledger",
        ledger_problems,
        format!(
            "the {steps} request envelopes stored are exactly the {steps} steps the API answered"
        ),
    );
    check(
        &mut checks,
        "diagnostics.ledger",
        diag_problems,
        "acknowledged ⊆ stored ⊆ asked; every receiver's applied counter equals its inbox".into(),
    );
    let mut store_problems: Vec<String> = data
        .values()
        .flat_map(|d| d.bad_receipts.iter().cloned())
        .collect();
    for d in data.values() {
        if d.outbox > 0 {
            store_problems.push(format!("{}: {} outbox entries left", d.id, d.outbox));
        }
        if !d.dead.is_empty() {
            store_problems.push(format!("{}: {} envelopes rejected", d.id, d.dead.len()));
        }
    }
    check(
        &mut checks,
        "store.outboxes",
        store_problems,
        "every outbox empty, no dead letters, every stored receipt signed by its receiver".into(),
    );

    // The log: one leaf per logged event (request and diagnostic traffic is logged, witness
    // traffic is not).
    let logged = |k: &str| logged.contains(&k);
    let mut log_problems = Vec::new();
    let mut leaves_total = 0;
    for d in data.values() {
        leaves_total += d.log_size;
        let mut seen: HashMap<(String, String, String), usize> = HashMap::new();
        let mut by_type: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for l in &d.leaves {
            let id = l.get("id").unwrap_or("").to_owned();
            let who = l.get("receiver").or(l.get("from")).unwrap_or("").to_owned();
            *seen.entry((l.kind.clone(), id.clone(), who)).or_default() += 1;
            by_type.entry(l.kind.clone()).or_default().insert(id);
        }
        let twice = seen
            .iter()
            .filter(|((t, _, _), n)| {
                **n > 1 && (t.starts_with("envelope_") || t.starts_with("receipt_"))
            })
            .count();
        if twice > 0 {
            log_problems.push(format!("{}: {twice} events logged more than once", d.id));
        }
        let expect = |t: &str, ids: BTreeSet<String>, problems: &mut Vec<String>| {
            let got = by_type.get(t).cloned().unwrap_or_default();
            if got != ids {
                problems.push(format!(
                    "{}: {} {t} leaves for {} events",
                    d.id,
                    got.len(),
                    ids.len()
                ));
            }
        };
        let out: BTreeSet<String> = d
            .sent
            .iter()
            .filter(|s| logged(&s.kind))
            .map(|s| s.id.to_string())
            .collect();
        expect("envelope_out", out, &mut log_problems);
        let receipts_in: BTreeSet<String> = d
            .sent
            .iter()
            .filter(|s| logged(&s.kind) && d.receipts.contains_key(&(s.to, s.id)))
            .map(|s| s.id.to_string())
            .collect();
        expect("receipt_in", receipts_in, &mut log_problems);
        let inbound: BTreeSet<String> = d
            .inbox
            .iter()
            .filter(|(_, (k, _))| logged(k))
            .map(|((_, mid), _)| mid.to_string())
            .collect();
        expect("envelope_in", inbound.clone(), &mut log_problems);
        expect("receipt_out", inbound, &mut log_problems);
    }
    check(
        &mut checks,
        "log.one_leaf_per_event",
        log_problems,
        format!(
            "{leaves_total} leaves: one per envelope sent or accepted and per receipt stored or signed"
        ),
    );

    // Checkpoints and witnesses: each log's witnesses are the members after it in the ring
    // of member ids (`engine.witnesses`, at its default in these runs).
    let members_set: BTreeSet<NodeId> = members.iter().copied().collect();
    let ring = |n: NodeId| -> BTreeSet<NodeId> {
        imi_engine::witness_ring(n, members, imi_engine::DEFAULT_WITNESSES)
            .into_iter()
            .collect()
    };
    let mut cp_problems = Vec::new();
    let mut cosign_problems = Vec::new();
    let mut summaries = BTreeMap::new();
    let mut stored_total = 0;
    for (id, d) in &data {
        let store = store_of(*id).context("store")?;
        let nodes = StoreNodes(store);
        let origin = origin_of(id.as_str());
        let keys_of = |n: NodeId| -> Vec<[u8; 32]> {
            trust
                .member(n)
                .map(|m| m.signing_keys.iter().map(|k| k.public).collect())
                .unwrap_or_default()
        };
        let own = keys_of(*id);
        let expected = ring(*id);
        let mut summary = CheckpointSummary {
            stored: d.checkpoints.len(),
            fully_cosigned: 0,
            log_size: d.log_size,
            final_size: 0,
            final_cosignatures: 0,
        };
        stored_total += d.checkpoints.len();
        for (size, text) in &d.checkpoints {
            let Ok(note) = SignedNote::parse(text) else {
                cp_problems.push(format!("{id}: checkpoint {size} does not parse"));
                continue;
            };
            if !own.iter().any(|k| note.verify(&origin, k)) {
                cp_problems.push(format!("{id}: checkpoint {size} is not signed by {id}"));
            }
            let Ok(cp) = Checkpoint::parse(&note.body) else {
                cp_problems.push(format!("{id}: checkpoint {size} body does not parse"));
                continue;
            };
            if cp.size != *size || cp.origin != origin {
                cp_problems.push(format!(
                    "{id}: checkpoint stored at {size} says size {} origin {}",
                    cp.size, cp.origin
                ));
            }
            if cp.size > d.log_size || merkle::root(&nodes, cp.size) != Some(cp.root) {
                cp_problems.push(format!(
                    "{id}: checkpoint {size} is not a prefix of the log (size {})",
                    d.log_size
                ));
            }
            let mut witnesses = BTreeSet::new();
            for s in note.signatures.iter().filter(|s| s.name != origin) {
                let w = members_set
                    .iter()
                    .find(|w| **w != *id && witness_name(w.as_str()) == s.name);
                let valid = w.is_some_and(|w| {
                    keys_of(*w)
                        .iter()
                        .any(|k| note.verify_cosignature(&s.name, k).is_some())
                });
                match (w, valid) {
                    (Some(w), true) => {
                        witnesses.insert(*w);
                    }
                    _ => cosign_problems.push(format!(
                        "{id}: checkpoint {size} carries an invalid cosignature {}",
                        s.name
                    )),
                }
            }
            if let Some(w) = witnesses.difference(&expected).next() {
                cosign_problems.push(format!(
                    "{id}: checkpoint {size} is cosigned by {w}, not one of its witnesses"
                ));
            }
            if witnesses == expected {
                summary.fully_cosigned += 1;
            }
            summary.final_size = *size;
            summary.final_cosignatures = witnesses.len();
        }
        if summary.final_size != d.log_size {
            cosign_problems.push(format!(
                "{id}: the last checkpoint has size {}, the log {}",
                summary.final_size, d.log_size
            ));
        }
        if summary.final_cosignatures != expected.len() {
            cosign_problems.push(format!(
                "{id}: the last checkpoint has {} of {} cosignatures",
                summary.final_cosignatures,
                expected.len()
            ));
        }
        summaries.insert(id.to_string(), summary);
    }
    check(
        &mut checks,
        "checkpoints.consistent",
        cp_problems,
        format!(
            "{stored_total} checkpoints, each signed and each the root of a prefix of its node's one log"
        ),
    );
    check(
        &mut checks,
        "checkpoints.cosigned",
        cosign_problems,
        format!(
            "every cosignature valid and a witness's; each node's last checkpoint covers its whole log with its {} witnesses' cosignatures",
            super::witness_count(members)
        ),
    );
    let mut witness_problems = Vec::new();
    for (w, d) in &data {
        for x in members.iter().filter(|x| *x != w && ring(**x).contains(w)) {
            let Some((size, root)) = d.witness_seen.get(x) else {
                witness_problems.push(format!("{w} never cosigned {x}"));
                continue;
            };
            let log = data.get(x).map_or(0, |x| x.log_size);
            let actual = store_of(*x).and_then(|s| merkle::root(&StoreNodes(s), *size));
            if *size > log || actual != Some(*root) {
                witness_problems.push(format!(
                    "{w} cosigned {x} at size {size} with a root that is not {x}'s log"
                ));
            } else if *size != log {
                witness_problems.push(format!("{w} last cosigned {x} at size {size} of {log}"));
            }
        }
        if d.alarms > 0 {
            witness_problems.push(format!("{w}: {} witness alarm records", d.alarms));
        }
    }
    check(
        &mut checks,
        "witness.views",
        witness_problems,
        "what every witness last cosigned of each log it witnesses is that log's final root; no alarm".into(),
    );
    let diagnostics_in = data
        .iter()
        .map(|(id, d)| {
            let n = d
                .inbox
                .values()
                .filter(|(k, _)| k == Kind::DIAGNOSTIC)
                .count();
            (*id, n as u64)
        })
        .collect();
    Ok(Findings {
        rows,
        checks,
        checkpoints: summaries,
        diagnostics_in,
        delivery_ms,
    })
}
