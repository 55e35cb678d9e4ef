//! Evidence bundles ([`imi_audit::bundle`]): the envelopes and receipts of a case (or a time
//! range) as exact bytes, each with its inclusion proof in the node's log, the latest
//! checkpoints with their cosignatures and the consistency proofs between them, and the
//! trust list in force. Reads the kernel's log and message columns; owns nothing.
use crate::AppError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use imi_audit::bundle::{Bundle, Consistency, Entry, FORMAT, LogPart};
use imi_audit::leaf::Leaf;
use imi_audit::merkle;
use imi_audit::note::{CaseHead, Checkpoint, SignedNote, head_origin_of, origin_of};
use imi_engine::log::{self, StoreNodes};
use imi_engine::{Engine, InboxRecord, TRUST_LIST_KEY, keys};
use imi_protocol::{CaseId, MessageId, NodeId};
use std::collections::BTreeSet;

/// What a bundle covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// One case: its envelopes, their receipts, the reads of its data, its retention.
    Case(CaseId),
    /// Everything logged with a time (creation, receipt, read, retention) in `[from, to)`,
    /// ms.
    Range {
        /// From, inclusive.
        from: u64,
        /// To, exclusive.
        to: u64,
    },
}

/// Where one signed envelope of a case stands, as this node's log records it: for a step
/// this node sent, whether the other node's signed receipt came back (and its outcome);
/// for a step it received, when it signed its own receipt. Read from the case's chain of
/// log leaves ([`log::case_steps`]: its envelope and receipt leaves, without walking its
/// reads); no personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepDelivery {
    /// The envelope's kind (`imi.request`, ...).
    pub kind: String,
    /// The signed header's step (`create`, `accept`, ...).
    pub step: String,
    /// The envelope's signed creation time, ms.
    pub created: u64,
    /// The message id, hex.
    pub message: String,
    /// Whether this node sent it (else it received it).
    pub outgoing: bool,
    /// The receipts: (node that signed, outcome, receive time ms). For an envelope sent,
    /// those received; for one received, the one this node signed.
    pub receipts: Vec<(String, String, u64)>,
}

/// The envelopes of case `case` in this node's log, oldest first, each with its receipts.
pub fn step_deliveries(
    store: &dyn imi_store::ReadStore,
    case: &CaseId,
) -> Result<Vec<StepDelivery>, AppError> {
    let mut chain = log::case_steps(store, case)?;
    chain.reverse();
    let mut out: Vec<StepDelivery> = Vec::new();
    for (_, leaf, _) in &chain {
        let field = |k: &str| leaf.get(k).unwrap_or("").to_owned();
        match leaf.kind.as_str() {
            "envelope_out" | "envelope_in" => out.push(StepDelivery {
                kind: field("kind"),
                step: field("step"),
                created: field("created").parse().unwrap_or(0),
                message: field("id"),
                outgoing: leaf.kind == "envelope_out",
                receipts: Vec::new(),
            }),
            "receipt_in" | "receipt_out" => {
                let id = field("id");
                if let Some(d) = out.iter_mut().rev().find(|d| d.message == id) {
                    d.receipts.push((
                        field("receiver"),
                        field("outcome"),
                        field("received").parse().unwrap_or(0),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Checkpoints included in a bundle (the latest and those before it).
pub const BUNDLE_CHECKPOINTS: usize = 3;

/// The evidence bundle of a case (or a time range): every envelope of the case this node sent or
/// accepted and every receipt of those envelopes, as exact bytes, each with its
/// inclusion proof in a fresh checkpoint; the latest checkpoints with their
/// cosignatures and the consistency proofs between them; the trust list in force.
pub async fn evidence_bundle(
    engine: &Engine,
    selection: Selection,
    governance_public: &[u8; 32],
) -> Result<Bundle, AppError> {
    let latest = engine.checkpoint().await?;
    let store = engine.reader();
    let nodes = StoreNodes(store.as_ref());
    let last = SignedNote::parse(&latest)
        .ok()
        .and_then(|n| Checkpoint::parse(&n.body).ok())
        .ok_or_else(|| AppError::Internal("own checkpoint does not parse".into()))?;
    let n = last.size;
    let cps = imi_engine::checkpoint::latest(store.as_ref(), n, BUNDLE_CHECKPOINTS)?;
    let mut consistency = Vec::new();
    for w in cps.windows(2) {
        if let [(a, _), (b, _)] = w {
            let proof = merkle::consistency_proof(&nodes, *a, *b)
                .ok_or_else(|| AppError::Internal("consistency proof".into()))?;
            consistency.push(Consistency {
                from: *a,
                to: *b,
                proof: proof.iter().map(hex::encode).collect(),
            });
        }
    }
    let case_hex = match selection {
        Selection::Case(case) => Some(case.to_string()),
        Selection::Range { .. } => None,
    };
    // A case: its chain of leaves from its head below `n` (every leaf of the case the log
    // holds, receipts included), and the node's signed statement of that head. A range:
    // every leaf with a time in it, then the receipts of its envelopes.
    let mut chosen: Vec<(u64, Leaf, String)> = Vec::new();
    let mut head = None;
    match selection {
        Selection::Case(case) => {
            chosen = log::case_chain(store.as_ref(), &case, n)?;
            let statement = CaseHead {
                origin: head_origin_of(engine.node().as_str()),
                case: case.to_string(),
                size: n,
                head: chosen.first().map(|(i, _, _)| *i),
            };
            head = Some(engine.sign_note(&statement.body(), &statement.origin));
        }
        Selection::Range { from, to } => {
            // One walk over the log, a chunk at a time: what is held is what is chosen, not
            // the log. A receipt's leaf comes after its envelope's in the same log (the
            // receipt this node signs is logged in the envelope's own commit, after it; a
            // receipt it receives answers an envelope whose leaf was committed with its
            // outbox entry), so its envelope's id is known when the walk reaches it.
            let mut ids: BTreeSet<String> = BTreeSet::new();
            log::for_each_leaf(store.as_ref(), n, |i, leaf, text| {
                let keep = if leaf.kind.starts_with("receipt_") {
                    leaf.get("id").is_some_and(|id| ids.contains(id))
                } else if leaf.time().is_some_and(|t| t >= from && t < to) {
                    if let Some(id) = leaf.get("id") {
                        ids.insert(id.to_owned());
                    }
                    true
                } else {
                    false
                };
                if keep {
                    chosen.push((i, leaf, text));
                }
            })?;
        }
    }
    chosen.sort_by_key(|(i, _, _)| *i);
    // The sender of each envelope received, to find the receipts this node signed for them.
    let senders: Vec<(String, String)> = chosen
        .iter()
        .filter(|(_, l, _)| l.kind == "envelope_in")
        .filter_map(|(_, l, _)| Some((l.get("id")?.to_owned(), l.get("from")?.to_owned())))
        .collect();
    let mut entries = Vec::with_capacity(chosen.len());
    for (i, leaf, text) in chosen {
        let proof = merkle::inclusion_proof(&nodes, i, n)
            .ok_or_else(|| AppError::Internal("inclusion proof".into()))?;
        let id = leaf.get("id").and_then(|s| s.parse::<MessageId>().ok());
        let node_of = |name: &str| leaf.get(name).and_then(|s| s.parse::<NodeId>().ok());
        let bytes = match (leaf.kind.as_str(), id) {
            ("envelope_out", Some(id)) => store.get(keys::ENV_OUT, id.as_bytes())?,
            ("envelope_in", Some(id)) => match node_of("from") {
                Some(from) => store.get(keys::ENV_IN, &keys::node_msg_key(from, &id))?,
                None => None,
            },
            ("receipt_in", Some(id)) => match node_of("receiver") {
                Some(r) => store.get(keys::RECEIPTS_OUT, &keys::node_msg_key(r, &id))?,
                None => None,
            },
            ("receipt_out", Some(id)) => {
                let from = senders
                    .iter()
                    .find(|(m, _)| *m == id.to_string())
                    .and_then(|(_, f)| f.parse::<NodeId>().ok());
                match from {
                    Some(f) => store
                        .get(keys::INBOX, &keys::node_msg_key(f, &id))?
                        .and_then(|v| InboxRecord::decode(&v))
                        .map(|r| r.receipt),
                    None => None,
                }
            }
            _ => None,
        };
        entries.push(Entry {
            index: i,
            leaf: text,
            proof: proof.iter().map(hex::encode).collect(),
            bytes: bytes.map(|b| B64.encode(b)),
        });
    }
    let trust = store
        .get(keys::META, TRUST_LIST_KEY)?
        .ok_or_else(|| AppError::Internal("no trust list stored".into()))?;
    Ok(Bundle {
        format: FORMAT.to_owned(),
        case: case_hex,
        governance_public_key: hex::encode(governance_public),
        trust_list: B64.encode(trust),
        log: LogPart {
            node: engine.node().to_string(),
            origin: origin_of(engine.node().as_str()),
            checkpoints: cps.into_iter().map(|(_, t)| t).collect(),
            consistency,
        },
        head,
        entries,
    })
}
