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
//!
//! The stores are read one at a time, each column in chunks, and what is kept of a node is
//! what the cross-checks need: per envelope and recipient its id, kind, time and hash (not
//! its bytes), per logged event its type, id and peer (not the leaf). A full simulated year
//! (1.2 million envelopes over 31 nodes) is accounted in a few hundred MiB.
use super::traffic::Ledger;
use super::{Check, KindRow, check};
use anyhow::{Context, Result};
use imi_audit::bundle::witness_name;
use imi_audit::merkle;
use imi_audit::note::{Checkpoint, SignedNote, origin_of};
use imi_engine::log::StoreNodes;
use imi_engine::{InboxRecord, keys};
use imi_protocol::{Envelope, Kind, MessageId, NodeId, Outcome, Receipt, TrustList};
use imi_store::{Column, RocksStore};
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

/// Entries read from a column at a time.
const CHUNK: usize = 4096;

/// Names (message kinds, leaf types) as small numbers: a run has a few dozen of them and
/// millions of rows naming one.
#[derive(Default)]
struct Names {
    names: Vec<String>,
    index: HashMap<String, u16>,
}

impl Names {
    /// A table whose first entries are `first`, in order.
    fn with(first: &[&str]) -> Self {
        let mut t = Self::default();
        for n in first {
            t.intern(n);
        }
        t
    }

    fn intern(&mut self, name: &str) -> u16 {
        if let Some(i) = self.index.get(name) {
            return *i;
        }
        let i = u16::try_from(self.names.len()).unwrap_or(u16::MAX);
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), i);
        i
    }

    fn get(&self, name: &str) -> Option<u16> {
        self.index.get(name).copied()
    }
}

/// A witness's view of a log: its size and root.
type View = (u64, [u8; 32]);

/// One envelope for one recipient, as the sender stored it.
struct Sent {
    id: MessageId,
    created: u64,
    kind: u16,
    to: NodeId,
    hash: [u8; 32],
}

/// A stored receipt's outcome, as far as the accounting needs it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Receipted {
    Accepted,
    Duplicate,
    Other,
}

/// What one node's store holds, as far as the cross-checks need it.
struct NodeData {
    id: NodeId,
    sent: Vec<Sent>,
    /// (recipient, id) → receipt outcome and when the recipient decided (its `received`).
    receipts: HashMap<(NodeId, MessageId), (Receipted, u64)>,
    bad_receipts: Vec<String>,
    /// (recipient, id) of rejected envelopes.
    dead: HashSet<(NodeId, MessageId)>,
    /// (recipient, id) of witness envelopes refused `stale`.
    stale: HashSet<(NodeId, MessageId)>,
    outbox: usize,
    /// (sender, id) → (kind, envelope hash).
    inbox: HashMap<(NodeId, MessageId), (u16, [u8; 32])>,
    /// Persistent applied-diagnostic counter per sender.
    diag_applied: BTreeMap<NodeId, u64>,
    log_size: u64,
    /// Logged message events (leaf types `envelope_*` and `receipt_*`): (type, id, the
    /// peer named) → how many leaves say it.
    events: HashMap<(u16, MessageId, Option<NodeId>), u32>,
    /// Leaves of those types whose id or peer does not parse.
    bad_leaves: Vec<String>,
    /// What this node, as a witness, last cosigned of each log.
    witness_seen: BTreeMap<NodeId, View>,
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

/// Calls `f` with every entry of `col`, a chunk at a time; stops at `f`'s first error.
fn each(
    store: &RocksStore,
    col: Column,
    mut f: impl FnMut(Vec<u8>, Vec<u8>) -> Result<()>,
) -> Result<()> {
    let mut failed = None;
    imi_store::for_each_entry(store, col, &[], None, CHUNK, |k, v| match f(k, v) {
        Ok(()) => true,
        Err(e) => {
            failed = Some(e);
            false
        }
    })?;
    failed.map_or(Ok(()), Err)
}

fn read_node(
    id: NodeId,
    store: &RocksStore,
    trust: &TrustList,
    kinds: &mut Names,
    leaf_types: &mut Names,
) -> Result<NodeData> {
    let mut sent = Vec::new();
    each(store, keys::ENV_OUT, |k, v| {
        let env = Envelope::parse(v, usize::MAX).map_err(|c| {
            anyhow::anyhow!("{id}: env_out {} does not parse: {c}", hex::encode(&k))
        })?;
        let h = env.header();
        let kind = kinds.intern(h.kind.as_str());
        let hash = env.hash();
        for to in &h.to {
            sent.push(Sent {
                id: h.id,
                created: h.created,
                kind,
                to: *to,
                hash,
            });
        }
        Ok(())
    })?;
    let mut receipts = HashMap::new();
    let mut bad_receipts = Vec::new();
    each(store, keys::RECEIPTS_OUT, |k, v| {
        let Some((to, mid)) = id_of(&k) else {
            bad_receipts.push(format!("{id}: receipts_out key {}", hex::encode(&k)));
            return Ok(());
        };
        match Receipt::verify(v, trust, to) {
            Ok(r) if r.body.message_id == Some(mid) => {
                let outcome = match r.body.outcome.label() {
                    "accepted" => Receipted::Accepted,
                    "duplicate" => Receipted::Duplicate,
                    _ => Receipted::Other,
                };
                receipts.insert((to, mid), (outcome, r.body.received));
            }
            Ok(_) => bad_receipts.push(format!("{id}: the receipt of {mid} names another id")),
            Err(c) => bad_receipts.push(format!("{id}: the receipt of {mid} from {to}: {c}")),
        }
        Ok(())
    })?;
    let mut dead = HashSet::new();
    let mut stale = HashSet::new();
    each(store, keys::DEAD, |k, v| {
        let Some(key) = id_of(&k) else { return Ok(()) };
        // A witness envelope refused `stale` (signed more than half the pruning age before
        // it arrived, e.g. across a partition): the witness protocol's next checkpoint
        // supersedes it. Anything else refused is a dead letter.
        let is_stale = Receipt::verify(v, trust, key.0)
            .is_ok_and(|r| matches!(&r.body.outcome, Outcome::Rejected(c) if c.label() == "stale"));
        if is_stale {
            stale.insert(key);
        } else {
            dead.insert(key);
        }
        Ok(())
    })?;
    let mut outbox = 0;
    each(store, keys::OUTBOX, |_, _| {
        outbox += 1;
        Ok(())
    })?;
    let mut inbox = HashMap::new();
    each(store, keys::INBOX, |k, v| {
        let key = id_of(&k).with_context(|| format!("{id}: inbox key {}", hex::encode(&k)))?;
        let rec = InboxRecord::decode(&v).with_context(|| format!("{id}: inbox record"))?;
        inbox.insert(key, (kinds.intern(&rec.kind), rec.envelope_hash));
        Ok(())
    })?;
    let mut diag_applied = BTreeMap::new();
    for (k, v) in imi_store::ReadStore::scan_prefix(
        store,
        imi_apps::diagnostics::APP,
        b"diag/applied/",
        usize::MAX,
    )? {
        let node = k
            .strip_prefix(b"diag/applied/".as_slice())
            .and_then(NodeId::from_bytes);
        let n = <[u8; 8]>::try_from(v.as_slice()).map(u64::from_be_bytes);
        if let (Some(node), Ok(n)) = (node, n) {
            diag_applied.insert(node, n);
        }
    }
    let log_size = imi_engine::log::size(store)?;
    let mut events: HashMap<(u16, MessageId, Option<NodeId>), u32> = HashMap::new();
    let mut bad_leaves = Vec::new();
    let mut parsed = 0u64;
    imi_engine::log::for_each_leaf(store, log_size, |i, l, _| {
        parsed += 1;
        if !(l.kind.starts_with("envelope_") || l.kind.starts_with("receipt_")) {
            return;
        }
        let mid = l.get("id").and_then(|s| s.parse::<MessageId>().ok());
        let who = l.get("receiver").or(l.get("from"));
        let peer = who.map(|w| w.parse::<NodeId>().ok());
        match (mid, peer) {
            (Some(mid), None) => {
                let t = leaf_types.intern(&l.kind);
                *events.entry((t, mid, None)).or_default() += 1;
            }
            (Some(mid), Some(Some(p))) => {
                let t = leaf_types.intern(&l.kind);
                *events.entry((t, mid, Some(p))).or_default() += 1;
            }
            _ => bad_leaves.push(format!(
                "{id}: leaf {i} ({}) names no readable id or peer",
                l.kind
            )),
        }
    })?;
    if parsed != log_size {
        anyhow::bail!("{id}: the log has size {log_size} but {parsed} leaves parse");
    }
    let mut witness_seen = BTreeMap::new();
    each(store, imi_apps::witness::WITNESS, |k, v| {
        let node = NodeId::from_bytes(&k).with_context(|| format!("{id}: witness key"))?;
        let seen: imi_apps::witness::Seen = ciborium::from_reader(v.as_slice())
            .with_context(|| format!("{id}: witness record of {node}"))?;
        witness_seen.insert(node, (seen.size, seen.root));
        Ok(())
    })?;
    let mut alarms = 0;
    each(store, imi_apps::witness::ALARMS, |_, _| {
        alarms += 1;
        Ok(())
    })?;
    Ok(NodeData {
        id,
        sent,
        receipts,
        bad_receipts,
        dead,
        stale,
        outbox,
        inbox,
        diag_applied,
        log_size,
        events,
        bad_leaves,
        witness_seen,
        alarms,
    })
}

/// Opens the store of `id` under `dir` (its node must be stopped).
fn open(dir: &Path, id: NodeId) -> Result<RocksStore> {
    let path = dir.join(id.as_str()).join("data");
    RocksStore::open(&path, &imi_apps::columns(), &Default::default())
        .with_context(|| format!("opening {}", path.display()))
}

/// What the checkpoint checks found.
#[derive(Default)]
struct CheckpointProblems {
    signed: Vec<String>,
    cosigned: Vec<String>,
}

/// Checks every checkpoint `id` stored: signed by it, the root of a prefix of its log,
/// cosigned only by its witnesses (`expected`); and that the last covers the whole log with
/// every witness's cosignature.
fn check_checkpoints(
    id: NodeId,
    store: &RocksStore,
    log_size: u64,
    trust: &TrustList,
    members: &BTreeSet<NodeId>,
    expected: &BTreeSet<NodeId>,
    problems: &mut CheckpointProblems,
) -> Result<CheckpointSummary> {
    let nodes = StoreNodes(store);
    let origin = origin_of(id.as_str());
    let keys_of = |n: NodeId| -> Vec<[u8; 32]> {
        trust
            .member(n)
            .map(|m| m.signing_keys.iter().map(|k| k.public).collect())
            .unwrap_or_default()
    };
    let own = keys_of(id);
    let mut summary = CheckpointSummary {
        stored: 0,
        fully_cosigned: 0,
        log_size,
        final_size: 0,
        final_cosignatures: 0,
    };
    each(store, keys::CHECKPOINTS, |k, v| {
        // As `imi_engine::checkpoint::stored` reads them: a row that is not one is skipped.
        let (Ok(size), Ok(text)) = (<[u8; 8]>::try_from(k.as_slice()), String::from_utf8(v)) else {
            return Ok(());
        };
        let size = u64::from_be_bytes(size);
        summary.stored += 1;
        let Ok(note) = SignedNote::parse(&text) else {
            problems
                .signed
                .push(format!("{id}: checkpoint {size} does not parse"));
            return Ok(());
        };
        if !own.iter().any(|k| note.verify(&origin, k)) {
            problems
                .signed
                .push(format!("{id}: checkpoint {size} is not signed by {id}"));
        }
        let Ok(cp) = Checkpoint::parse(&note.body) else {
            problems
                .signed
                .push(format!("{id}: checkpoint {size} body does not parse"));
            return Ok(());
        };
        if cp.size != size || cp.origin != origin {
            problems.signed.push(format!(
                "{id}: checkpoint stored at {size} says size {} origin {}",
                cp.size, cp.origin
            ));
        }
        if cp.size > log_size || merkle::root(&nodes, cp.size) != Some(cp.root) {
            problems.signed.push(format!(
                "{id}: checkpoint {size} is not a prefix of the log (size {log_size})"
            ));
        }
        let mut witnesses = BTreeSet::new();
        for s in note.signatures.iter().filter(|s| s.name != origin) {
            let w = members
                .iter()
                .find(|w| **w != id && witness_name(w.as_str()) == s.name);
            let valid = w.is_some_and(|w| {
                keys_of(*w)
                    .iter()
                    .any(|k| note.verify_cosignature(&s.name, k).is_some())
            });
            match (w, valid) {
                (Some(w), true) => {
                    witnesses.insert(*w);
                }
                _ => problems.cosigned.push(format!(
                    "{id}: checkpoint {size} carries an invalid cosignature {}",
                    s.name
                )),
            }
        }
        if let Some(w) = witnesses.difference(expected).next() {
            problems.cosigned.push(format!(
                "{id}: checkpoint {size} is cosigned by {w}, not one of its witnesses"
            ));
        }
        if witnesses == *expected {
            summary.fully_cosigned += 1;
        }
        summary.final_size = size;
        summary.final_cosignatures = witnesses.len();
        Ok(())
    })?;
    if summary.final_size != log_size {
        problems.cosigned.push(format!(
            "{id}: the last checkpoint has size {}, the log {log_size}",
            summary.final_size
        ));
    }
    if summary.final_cosignatures != expected.len() {
        problems.cosigned.push(format!(
            "{id}: the last checkpoint has {} of {} cosignatures",
            summary.final_cosignatures,
            expected.len()
        ));
    }
    Ok(summary)
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
    // Each log's witnesses are the members after it in the ring of member ids
    // (`engine.witnesses`, at its default in these runs).
    let members_set: BTreeSet<NodeId> = members.iter().copied().collect();
    let ring = |n: NodeId| -> BTreeSet<NodeId> {
        imi_engine::witness_ring(n, members, imi_engine::DEFAULT_WITNESSES)
            .into_iter()
            .collect()
    };
    // The accounted kinds are the table's first entries: kind `kinds[i]` is number `i`.
    let mut kind_names = Names::with(kinds);
    let mut leaf_types = Names::default();
    let mut data = BTreeMap::new();
    let mut cp_problems = CheckpointProblems::default();
    let mut summaries = BTreeMap::new();
    let mut stored_total = 0;
    for id in members {
        let store = open(dir, *id)?;
        let d = read_node(*id, &store, &trust, &mut kind_names, &mut leaf_types)?;
        let summary = check_checkpoints(
            *id,
            &store,
            d.log_size,
            &trust,
            &members_set,
            &ring(*id),
            &mut cp_problems,
        )?;
        stored_total += summary.stored;
        summaries.insert(id.to_string(), summary);
        data.insert(*id, d);
    }
    let mut checks = Vec::new();

    // The client's ledger per node: request envelopes acknowledged, diagnostics.
    let mut asked_requests: BTreeMap<NodeId, BTreeSet<MessageId>> = BTreeMap::new();
    for c in &ledger.cases {
        for (_, node, mid) in &c.steps {
            asked_requests.entry(*node).or_default().insert(*mid);
        }
    }

    // Per sender and accounted kind, the ids it signed; then, in one pass over every inbox,
    // the envelopes applied somewhere that their sender never signed.
    let mut sent_ids: HashMap<(NodeId, u16), HashSet<MessageId>> = HashMap::new();
    for (id, d) in &data {
        for s in &d.sent {
            sent_ids.entry((*id, s.kind)).or_default().insert(s.id);
        }
    }
    let mut unsigned: HashMap<(NodeId, u16), u64> = HashMap::new();
    for r in data.values() {
        for ((from, mid), (k, _)) in &r.inbox {
            let signed = sent_ids
                .get(&(*from, *k))
                .is_some_and(|ids| ids.contains(mid));
            if !signed {
                *unsigned.entry((*from, *k)).or_default() += 1;
            }
        }
    }

    // Messages, per sender and kind.
    let mut rows = Vec::new();
    let mut delivery_ms: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut ledger_problems = Vec::new();
    let mut diag_problems = Vec::new();
    let no_ids = HashSet::new();
    for (id, d) in &data {
        for (ki, kind) in kinds.iter().enumerate() {
            let ki = u16::try_from(ki).unwrap_or(u16::MAX);
            let mut row = KindRow {
                node: id.to_string(),
                kind: (*kind).to_owned(),
                ..KindRow::default()
            };
            for s in d.sent.iter().filter(|s| s.kind == ki) {
                row.sent += 1;
                let receipt = d.receipts.get(&(s.to, s.id));
                if let Some((_, at)) = receipt {
                    delivery_ms
                        .entry((*kind).to_owned())
                        .or_default()
                        .push(at.saturating_sub(s.created));
                }
                match receipt.map(|(o, _)| *o) {
                    Some(Receipted::Accepted) => row.receipted += 1,
                    Some(Receipted::Duplicate) => {
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
                    Some((k, h)) if *k == ki && *h == s.hash => row.applied += 1,
                    _ => row.lost += 1,
                }
            }
            row.duplicated += unsigned.get(&(*id, ki)).copied().unwrap_or(0);
            let sent_ids = sent_ids.get(&(*id, ki)).unwrap_or(&no_ids);
            if *kind == Kind::REQUEST {
                let asked = asked_requests.get(id).cloned().unwrap_or_default();
                row.asked = Some(asked.len() as u64);
                let extra = sent_ids.iter().filter(|m| !asked.contains(m)).count();
                let missing = asked.iter().filter(|m| !sent_ids.contains(m)).count();
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
                let missing = acked.iter().filter(|m| !sent_ids.contains(m)).count() as u64;
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
                        .filter(|((from, _), (k, _))| from == id && *k == ki)
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
    let logged: HashSet<u16> = logged.iter().filter_map(|k| kind_names.get(k)).collect();
    let mut log_problems = Vec::new();
    let mut leaves_total = 0;
    for d in data.values() {
        leaves_total += d.log_size;
        log_problems.extend(d.bad_leaves.iter().cloned());
        let twice = d.events.values().filter(|n| **n > 1).count();
        if twice > 0 {
            log_problems.push(format!("{}: {twice} events logged more than once", d.id));
        }
        let mut by_type: HashMap<u16, HashSet<MessageId>> = HashMap::new();
        for (t, mid, _) in d.events.keys() {
            by_type.entry(*t).or_default().insert(*mid);
        }
        let expect = |t: &str, ids: HashSet<MessageId>, problems: &mut Vec<String>| {
            let got = leaf_types.get(t).and_then(|t| by_type.get(&t));
            if got.map_or(!ids.is_empty(), |got| *got != ids) {
                problems.push(format!(
                    "{}: {} {t} leaves for {} events",
                    d.id,
                    got.map_or(0, HashSet::len),
                    ids.len()
                ));
            }
        };
        let out: HashSet<MessageId> = d
            .sent
            .iter()
            .filter(|s| logged.contains(&s.kind))
            .map(|s| s.id)
            .collect();
        expect("envelope_out", out, &mut log_problems);
        let receipts_in: HashSet<MessageId> = d
            .sent
            .iter()
            .filter(|s| logged.contains(&s.kind) && d.receipts.contains_key(&(s.to, s.id)))
            .map(|s| s.id)
            .collect();
        expect("receipt_in", receipts_in, &mut log_problems);
        let inbound: HashSet<MessageId> = d
            .inbox
            .iter()
            .filter(|(_, (k, _))| logged.contains(k))
            .map(|((_, mid), _)| *mid)
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

    check(
        &mut checks,
        "checkpoints.consistent",
        cp_problems.signed,
        format!(
            "{stored_total} checkpoints, each signed and each the root of a prefix of its node's one log"
        ),
    );
    check(
        &mut checks,
        "checkpoints.cosigned",
        cp_problems.cosigned,
        format!(
            "every cosignature valid and a witness's; each node's last checkpoint covers its whole log with its {} witnesses' cosignatures",
            super::witness_count(members)
        ),
    );

    // What each witness last cosigned of each log, against that log: each store opened
    // once more, for the roots at the sizes its witnesses saw.
    let mut witness_problems = Vec::new();
    for x in members {
        let witnesses: Vec<(NodeId, Option<View>)> = data
            .iter()
            .filter(|(w, _)| *w != x && ring(*x).contains(w))
            .map(|(w, d)| (*w, d.witness_seen.get(x).copied()))
            .collect();
        if witnesses.is_empty() {
            continue;
        }
        let log = data.get(x).map_or(0, |x| x.log_size);
        let store = open(dir, *x)?;
        let nodes = StoreNodes(&store);
        for (w, seen) in witnesses {
            let Some((size, root)) = seen else {
                witness_problems.push(format!("{w} never cosigned {x}"));
                continue;
            };
            let actual = merkle::root(&nodes, size);
            if size > log || actual != Some(root) {
                witness_problems.push(format!(
                    "{w} cosigned {x} at size {size} with a root that is not {x}'s log"
                ));
            } else if size != log {
                witness_problems.push(format!("{w} last cosigned {x} at size {size} of {log}"));
            }
        }
    }
    for (w, d) in &data {
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
    let diagnostic = kind_names.get(Kind::DIAGNOSTIC);
    let diagnostics_in = data
        .iter()
        .map(|(id, d)| {
            let n = d
                .inbox
                .values()
                .filter(|(k, _)| Some(*k) == diagnostic)
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
