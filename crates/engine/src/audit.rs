//! Checkpoints of the node's log and evidence bundles ([`imi_audit`]).
use crate::log::{self, StoreNodes};
use crate::{Engine, EngineError, InboxRecord, TRUST_LIST_KEY, commit, keys};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use imi_audit::bundle::{Bundle, Consistency, Entry, FORMAT, LogPart};
use imi_audit::leaf::Leaf;
use imi_audit::merkle;
use imi_audit::note::{Checkpoint, SignedNote, origin_of};
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

fn leaf_time(leaf: &Leaf) -> Option<u64> {
    ["created", "received", "at"]
        .iter()
        .find_map(|f| leaf.get(f))
        .and_then(|t| t.parse().ok())
}

/// Checkpoints included in a bundle (the latest and those before it).
pub const BUNDLE_CHECKPOINTS: usize = 3;

fn stored_checkpoints(engine: &Engine) -> Result<Vec<(u64, String)>, EngineError> {
    Ok(engine
        .store()
        .range(keys::CHECKPOINTS, &[], None, usize::MAX)?
        .into_iter()
        .filter_map(|(k, v)| {
            let size = u64::from_be_bytes(k.as_slice().try_into().ok()?);
            Some((size, String::from_utf8(v).ok()?))
        })
        .collect())
}

impl Engine {
    /// Signs a checkpoint of the log as it is now (C2SP signed note, origin
    /// `imi-federation.invalid/log/<node>`) and stores it; returns the note. If the log has
    /// not grown since the last checkpoint, returns that one.
    pub async fn checkpoint(&self) -> Result<String, EngineError> {
        let store = self.store().clone();
        let size = log::size(store.as_ref())?;
        if let Some(v) = store.get(keys::CHECKPOINTS, &size.to_be_bytes())?
            && let Ok(text) = String::from_utf8(v)
        {
            return Ok(text);
        }
        let root = merkle::root(&StoreNodes(store.as_ref()), size)
            .ok_or_else(|| EngineError::Internal(format!("log nodes missing below size {size}")))?;
        let cp = Checkpoint {
            origin: origin_of(self.node().as_str()),
            size,
            root,
        };
        let note = SignedNote::sign(&cp.body(), &cp.origin, &self.shared.identity.signer).text();
        let mut batch = imi_store::WriteBatch::new();
        batch.put(
            keys::CHECKPOINTS,
            size.to_be_bytes().to_vec(),
            note.clone().into_bytes(),
        );
        self.shared
            .commit(|reply| commit::Job::Write {
                batch,
                durability: imi_store::Durability::Sync,
                leaves: Vec::new(),
                reply,
            })
            .await?;
        tracing::info!(size, "log checkpoint signed");
        Ok(note)
    }

    /// The evidence bundle of a case (or a time range): every envelope of the case this node sent or
    /// accepted and every receipt of those envelopes, as exact bytes, each with its
    /// inclusion proof in a fresh checkpoint; the latest checkpoints with their
    /// cosignatures and the consistency proofs between them; the trust list in force.
    pub async fn evidence_bundle(
        &self,
        selection: Selection,
        governance_public: &[u8; 32],
    ) -> Result<Bundle, EngineError> {
        let latest = self.checkpoint().await?;
        let store = self.store().clone();
        let nodes = StoreNodes(store.as_ref());
        let last = SignedNote::parse(&latest)
            .ok()
            .and_then(|n| Checkpoint::parse(&n.body).ok())
            .ok_or_else(|| EngineError::Internal("own checkpoint does not parse".into()))?;
        let n = last.size;
        let mut cps: Vec<(u64, String)> = stored_checkpoints(self)?
            .into_iter()
            .filter(|(s, _)| *s <= n)
            .collect();
        let keep = cps.len().saturating_sub(BUNDLE_CHECKPOINTS);
        cps.drain(..keep);
        let mut consistency = Vec::new();
        for w in cps.windows(2) {
            if let [(a, _), (b, _)] = w {
                let proof = merkle::consistency_proof(&nodes, *a, *b)
                    .ok_or_else(|| EngineError::Internal("consistency proof".into()))?;
                consistency.push(Consistency {
                    from: *a,
                    to: *b,
                    proof: proof.iter().map(hex::encode).collect(),
                });
            }
        }
        // The selected leaves, then the receipts of their envelopes.
        let case_hex = match selection {
            Selection::Case(case) => Some(case.to_string()),
            Selection::Range { .. } => None,
        };
        let selected = |leaf: &Leaf| match selection {
            Selection::Case(_) => leaf.get("case") == case_hex.as_deref(),
            Selection::Range { from, to } => {
                !leaf.kind.starts_with("receipt_")
                    && leaf_time(leaf).is_some_and(|t| t >= from && t < to)
            }
        };
        let mut chosen: Vec<(u64, Leaf, String)> = Vec::new();
        let mut ids: BTreeSet<String> = BTreeSet::new();
        let mut senders: Vec<(String, String)> = Vec::new();
        let parsed = log::leaves(store.as_ref(), n)?;
        for (i, leaf, text) in &parsed {
            if selected(leaf) {
                if let Some(id) = leaf.get("id") {
                    ids.insert(id.to_owned());
                    if leaf.kind == "envelope_in"
                        && let Some(from) = leaf.get("from")
                    {
                        senders.push((id.to_owned(), from.to_owned()));
                    }
                }
                chosen.push((*i, leaf.clone(), text.clone()));
            }
        }
        for (i, leaf, text) in &parsed {
            if leaf.kind.starts_with("receipt_")
                && leaf.get("id").is_some_and(|id| ids.contains(id))
            {
                chosen.push((*i, leaf.clone(), text.clone()));
            }
        }
        chosen.sort_by_key(|(i, _, _)| *i);
        let mut entries = Vec::with_capacity(chosen.len());
        for (i, leaf, text) in chosen {
            let proof = merkle::inclusion_proof(&nodes, i, n)
                .ok_or_else(|| EngineError::Internal("inclusion proof".into()))?;
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
            .ok_or_else(|| EngineError::Internal("no trust list stored".into()))?;
        Ok(Bundle {
            format: FORMAT.to_owned(),
            case: case_hex,
            governance_public_key: hex::encode(governance_public),
            trust_list: B64.encode(trust),
            log: LogPart {
                node: self.node().to_string(),
                origin: origin_of(self.node().as_str()),
                checkpoints: cps.into_iter().map(|(_, t)| t).collect(),
                consistency,
            },
            entries,
        })
    }
}
