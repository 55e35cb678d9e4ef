//! Witnessing: nodes cosign each other's checkpoints, so that no node can show two
//! different histories (a split view) or take back what it logged (a rollback) unseen.
//!
//! * The **log node** sends its newest checkpoint to each of its witnesses
//!   ([`distribute_checkpoint`], the `checkpoint` job) as an envelope of kind
//!   [`KIND_CHECKPOINT`]: the signed note, the size of the last checkpoint that witness saw
//!   of this log, and a consistency proof from there. Its witnesses are the
//!   `engine.witnesses` (8) members after it in the ring of member ids
//!   ([`Engine::witnesses`]): every other member in a federation of nine or fewer.
//! * The **witness** ([`WitnessApp`]) checks the log node's signature, and that the new
//!   checkpoint extends the last one it saw of that log (same size: same root; larger: a valid
//!   consistency proof from exactly that size). If so it remembers the new one and queues its
//!   cosignature (`cosignature/v1`, timestamped); if not — a **split view** (same size, other
//!   root), a **rollback** (smaller, in an envelope created after the one that showed the
//!   larger checkpoint) or a proof that does not verify — it refuses, raises an alarm
//!   (metric `imi_witness_alarms_total`, a log line, a record in `alarms` that auditors
//!   export) and cosigns nothing. A smaller checkpoint in an envelope created before that
//!   one is an old message delivered late (a backlog is delivered concurrently): not
//!   cosigned, no alarm. The witness answers with an envelope of kind
//!   [`KIND_COSIGNATURE`] carrying the cosignature (or none) and the size it knows.
//! * The log node ([`CosignatureApp`]) checks the cosignature and adds it to its stored
//!   checkpoint, so bundles carry it.
use crate::AppError;
use imi_audit::bundle::witness_name;
use imi_audit::merkle::{self, Hash};
use imi_audit::note::{Checkpoint, SignedNote, origin_of};
use imi_engine::keys;
use imi_engine::log::StoreNodes;
use imi_engine::metrics::PeerCodeLabel;
use imi_engine::{Application, Engine, Inbound, PeriodicJob, Txn};
use imi_protocol::{Draft, Kind, NodeId, NodeSigner, RejectCode};
use imi_store::Column;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Envelope kind: a checkpoint to witness.
pub const KIND_CHECKPOINT: &str = Kind::CHECKPOINT;
/// Envelope kind: a witness's answer.
pub const KIND_COSIGNATURE: &str = Kind::COSIGNATURE;

/// What this node, as a witness, saw last of each log: node → size and root.
pub const WITNESS: Column = "witness";
/// Witness answers waiting to be sent: node → answer.
pub const WITNESS_OUT: Column = "witness_out";
/// Witness alarms: seq → JSON record.
pub const ALARMS: Column = "alarms";

/// Most alarm records kept per log node (the metric counts every alarm).
pub const MAX_ALARMS_PER_NODE: u64 = 100;
/// Largest offending note kept in an alarm record; a larger one is kept as its SHA-256.
pub const MAX_ALARM_NOTE_BYTES: usize = 16 * 1024;
/// `alarms` keys of the bookkeeping rows (after every record key, a sequence number).
const ALARM_DEDUP_PREFIX: &[u8] = b"\xffdedup/";
const ALARM_COUNT_PREFIX: &[u8] = b"\xffcount/";

/// How often the node signs a checkpoint of its log (when it grew) and sends it to the
/// witnesses (the `checkpoint` job).
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);

/// How soon a witness sends the answers to checkpoints it has just applied (the
/// `witness-answers` job checks this often whether one arrived). Without it the answers would
/// wait for this node's own next checkpoint, up to [`CHECKPOINT_INTERVAL`].
pub const ANSWER_INTERVAL: Duration = Duration::from_millis(250);

/// Body of a checkpoint envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointMessage {
    /// The signed note.
    pub note: String,
    /// The size of the checkpoint of this log the witness saw last (0: none).
    pub base: u64,
    /// Consistency proof from `base` to the note's size.
    pub proof: Vec<[u8; 32]>,
}

/// Body of a cosignature envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosignatureMessage {
    /// The checkpoint size answered.
    pub size: u64,
    /// The cosignature line's name and bytes, if the witness cosigned.
    pub cosignature: Option<(String, Vec<u8>)>,
    /// The size of this log the witness knows now.
    pub known: u64,
}

/// What a witness remembers of a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// Size.
    pub size: u64,
    /// Root.
    pub root: Hash,
    /// The signed creation time of the newest checkpoint envelope that showed it, ms (0 in
    /// records written before it was kept).
    #[serde(default)]
    pub created: u64,
}

/// An alarm raised by the witness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    /// When, ms.
    pub at: u64,
    /// The log's node.
    pub node: String,
    /// `split_view`, `rollback`, `inconsistent`.
    pub kind: String,
    /// The size and root (hex) the log showed now.
    pub claimed: (u64, String),
    /// The size and root (hex) this witness had seen.
    pub known: (u64, String),
    /// The offending signed note.
    pub note: String,
}

fn cbor<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = ciborium::into_writer(v, &mut out);
    out
}

fn node_key(n: NodeId) -> Vec<u8> {
    n.as_str().as_bytes().to_vec()
}

/// `meta` key prefix of the sizes each witness cosigned of this node's log.
const COSIGNED_PREFIX: &[u8] = b"witness/cosigned/";

/// The witness application.
pub struct WitnessApp {
    signer: NodeSigner,
    alarms: Family<PeerCodeLabel, Counter>,
    /// A checkpoint was applied (or the node started) and its answer may be waiting in
    /// [`WITNESS_OUT`]: the `witness-answers` job sends it.
    answers_due: Arc<AtomicBool>,
}

impl WitnessApp {
    /// A witness cosigning with `signer`; alarms are counted in `alarms` (the node
    /// registers it as `imi_witness_alarms`).
    pub fn new(signer: NodeSigner) -> Self {
        Self {
            signer,
            alarms: Family::default(),
            answers_due: Arc::new(AtomicBool::new(true)),
        }
    }

    /// The alarm counter (`imi_witness_alarms`).
    pub fn alarm_counter(&self) -> &Family<PeerCodeLabel, Counter> {
        &self.alarms
    }

    fn alarm(&self, txn: &mut Txn<'_>, mut alarm: Alarm) -> Result<(), RejectCode> {
        tracing::error!(log = %alarm.node, kind = %alarm.kind, claimed_size = alarm.claimed.0, known_size = alarm.known.0, "WITNESS ALARM: a log showed a checkpoint inconsistent with one it showed before");
        self.alarms
            .get_or_create(&PeerCodeLabel {
                peer: alarm.node.clone(),
                code: alarm.kind.clone(),
            })
            .inc();
        // One record per distinct claim: a log that repeats the same bad checkpoint is
        // counted (the metric), not stored again.
        let mut dedup = ALARM_DEDUP_PREFIX.to_vec();
        dedup.extend_from_slice(&imi_protocol::sha256(
            format!(
                "{}\n{}\n{}\n{}",
                alarm.node, alarm.kind, alarm.claimed.0, alarm.claimed.1
            )
            .as_bytes(),
        ));
        if txn.get(ALARMS, &dedup)?.is_some() {
            return Ok(());
        }
        // At most MAX_ALARMS_PER_NODE records per log node; the metric keeps counting.
        let mut count_key = ALARM_COUNT_PREFIX.to_vec();
        count_key.extend_from_slice(alarm.node.as_bytes());
        if txn.counter(ALARMS, &count_key)? >= MAX_ALARMS_PER_NODE {
            tracing::warn!(log = %alarm.node, "witness alarm not stored: this log's alarm records are at their cap");
            return Ok(());
        }
        txn.add(ALARMS, &count_key, 1)?;
        txn.put(ALARMS, dedup, Vec::new());
        // The offending note is kept when it is the size of a checkpoint; a padded one is
        // kept as its hash.
        if alarm.note.len() > MAX_ALARM_NOTE_BYTES {
            alarm.note = format!(
                "sha256:{} ({} bytes, not kept)",
                hex::encode(imi_protocol::sha256(alarm.note.as_bytes())),
                alarm.note.len()
            );
        }
        let seq = txn.add(keys::META, b"witness/alarm-seq", 1)?;
        txn.put(
            ALARMS,
            seq.to_be_bytes().to_vec(),
            serde_json::to_vec(&alarm).unwrap_or_default(),
        );
        Ok(())
    }
}

impl Application for WitnessApp {
    fn name(&self) -> &'static str {
        "witness"
    }

    fn kinds(&self) -> &'static [&'static str] {
        &[KIND_CHECKPOINT]
    }

    fn sends(&self) -> &'static [&'static str] {
        &[KIND_COSIGNATURE]
    }

    /// Witness traffic is the audit of the log itself: logging it would make every
    /// checkpoint grow the log that the next one covers, for ever.
    fn logged(&self) -> bool {
        false
    }

    fn columns(&self) -> &'static [Column] {
        &[WITNESS, WITNESS_OUT, ALARMS]
    }

    fn jobs(&self) -> Vec<PeriodicJob> {
        let due = self.answers_due.clone();
        vec![
            PeriodicJob::new(
                "checkpoint",
                CHECKPOINT_INTERVAL,
                false,
                |engine: Engine| async move { distribute_checkpoint(&engine).await.map(|_| ()) },
            ),
            PeriodicJob::new(
                "witness-answers",
                ANSWER_INTERVAL,
                false,
                move |engine: Engine| {
                    let due = due.clone();
                    async move {
                        if !due.swap(false, Ordering::AcqRel) {
                            return Ok(());
                        }
                        let _one_at_a_time = DISTRIBUTING.lock().await;
                        let sent = send_witness_answers(&engine).await;
                        if sent.is_err() {
                            due.store(true, Ordering::Release);
                        }
                        sent.map(|_| ())
                    }
                },
            ),
        ]
    }

    fn committed(&self, header: &imi_protocol::Header) {
        if header.kind.as_str() == KIND_CHECKPOINT {
            self.answers_due.store(true, Ordering::Release);
        }
    }

    fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "imi_witness_alarms",
            "Checkpoints this node refused to cosign as a witness (split view, rollback, inconsistent), by log node and kind",
            self.alarms.clone(),
        );
    }

    fn apply(&self, msg: &Inbound<'_>, txn: &mut Txn<'_>) -> Result<(), RejectCode> {
        refuse_stale(msg)?;
        let bad = |c: &str| RejectCode::Application(c.to_owned());
        let m: CheckpointMessage =
            ciborium::from_reader(msg.body).map_err(|_| bad("malformed_checkpoint"))?;
        let from = msg.header.from;
        let origin = origin_of(from.as_str());
        let note = SignedNote::parse(&m.note).map_err(|_| bad("malformed_checkpoint"))?;
        let cp = Checkpoint::parse(&note.body).map_err(|_| bad("malformed_checkpoint"))?;
        if cp.origin != origin {
            return Err(bad("wrong_origin"));
        }
        let signed = msg.trust.member(from).is_some_and(|m| {
            m.signing_keys
                .iter()
                .any(|k| note.verify(&origin, &k.public))
        });
        if !signed {
            return Err(bad("bad_checkpoint_signature"));
        }
        let key = node_key(from);
        let known: Option<Seen> = txn
            .get(WITNESS, &key)?
            .and_then(|v| ciborium::from_reader(v.as_slice()).ok());
        let alarm = |kind: &str, known: &Seen, txn: &mut Txn<'_>| {
            self.alarm(
                txn,
                Alarm {
                    at: msg.received,
                    node: from.to_string(),
                    kind: kind.to_owned(),
                    claimed: (cp.size, hex::encode(cp.root)),
                    known: (known.size, hex::encode(known.root)),
                    note: m.note.clone(),
                },
            )
        };
        let ok = match &known {
            // The first checkpoint of a log this witness sees: trust on first use.
            None => true,
            // Smaller, but sent before the one this witness holds: an old message delivered
            // late (a backlog is delivered concurrently), not a log taking back its history.
            Some(k) if cp.size < k.size && msg.header.created <= k.created => false,
            Some(k) if cp.size < k.size => {
                alarm("rollback", k, txn)?;
                false
            }
            Some(k) if cp.size == k.size && cp.root != k.root => {
                alarm("split_view", k, txn)?;
                false
            }
            Some(k) if cp.size == k.size => true,
            Some(k) if m.base != k.size => false,
            Some(k) => {
                let consistent =
                    merkle::verify_consistency(k.size, cp.size, &m.proof, &k.root, &cp.root);
                if !consistent {
                    alarm("inconsistent", k, txn)?;
                }
                consistent
            }
        };
        let known_now = if ok {
            let seen = Seen {
                size: cp.size,
                root: cp.root,
                created: known
                    .as_ref()
                    .map_or(0, |k| k.created)
                    .max(msg.header.created),
            };
            txn.put(WITNESS, key.clone(), cbor(&seen));
            cp.size
        } else {
            known.as_ref().map_or(0, |k| k.size)
        };
        let cosignature = ok.then(|| {
            let mut n = note.clone();
            let name = witness_name(self.signer.node.as_str());
            n.cosign(&name, &self.signer, msg.received / 1000);
            n.signatures
                .last()
                .map(|s| (s.name.clone(), s.bytes.clone()))
        });
        txn.put(
            WITNESS_OUT,
            key,
            cbor(&CosignatureMessage {
                size: cp.size,
                cosignature: cosignature.flatten(),
                known: known_now,
            }),
        );
        // Refusing to cosign is the answer (kept with the alarm); the envelope itself is
        // received, so that the alarm record and the answer are committed.
        Ok(())
    }
}

/// The log node's application for witnesses' answers.
#[derive(Debug, Default)]
pub struct CosignatureApp;

/// Writes into the kernel's `checkpoints` (the cosignatures collected) and `meta` (the
/// size each witness knows).
impl Application for CosignatureApp {
    fn name(&self) -> &'static str {
        "cosignatures"
    }

    fn kinds(&self) -> &'static [&'static str] {
        &[KIND_COSIGNATURE]
    }

    fn sends(&self) -> &'static [&'static str] {
        &[KIND_CHECKPOINT]
    }

    fn logged(&self) -> bool {
        false
    }

    fn apply(&self, msg: &Inbound<'_>, txn: &mut Txn<'_>) -> Result<(), RejectCode> {
        refuse_stale(msg)?;
        let bad = |c: &str| RejectCode::Application(c.to_owned());
        let m: CosignatureMessage =
            ciborium::from_reader(msg.body).map_err(|_| bad("malformed_cosignature"))?;
        let w = msg.header.from;
        let mut k = COSIGNED_PREFIX.to_vec();
        k.extend_from_slice(w.as_str().as_bytes());
        txn.put(keys::META, k, m.known.to_be_bytes().to_vec());
        let Some((name, bytes)) = m.cosignature else {
            return Ok(());
        };
        if name != witness_name(w.as_str()) {
            return Err(bad("wrong_witness_name"));
        }
        let Some(stored) = txn.get(keys::CHECKPOINTS, &m.size.to_be_bytes())? else {
            return Err(bad("unknown_checkpoint"));
        };
        let text = String::from_utf8(stored).map_err(|_| RejectCode::Internal)?;
        let mut note = SignedNote::parse(&text).map_err(|_| RejectCode::Internal)?;
        if note.signatures.iter().any(|s| s.name == name) {
            return Ok(());
        }
        note.signatures.push(imi_audit::note::NoteSignature {
            name: name.clone(),
            bytes,
        });
        let valid = msg.trust.member(w).is_some_and(|m| {
            m.signing_keys
                .iter()
                .any(|key| note.verify_cosignature(&name, &key.public).is_some())
        });
        if !valid {
            return Err(bad("bad_cosignature"));
        }
        txn.put(
            keys::CHECKPOINTS,
            m.size.to_be_bytes().to_vec(),
            note.text().into_bytes(),
        );
        Ok(())
    }
}

/// One distribution at a time in a process: two at once (the job and `imi-node audit
/// checkpoint`) could seal a smaller checkpoint after a larger one, which its witness would
/// take for a rollback.
static DISTRIBUTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Sends the newest checkpoint to each of this node's witnesses ([`Engine::witnesses`])
/// that has not cosigned it, with a consistency proof from the size that witness knows;
/// then sends queued witness answers.
pub async fn distribute_checkpoint(engine: &Engine) -> Result<usize, AppError> {
    let _one_at_a_time = DISTRIBUTING.lock().await;
    let note = engine.checkpoint().await?;
    let store = engine.reader();
    // The note's own size: the log may have grown since it was signed, and a proof up to
    // the log's size now would not match the note (the witness would see an inconsistent
    // extension).
    let size = SignedNote::parse(&note)
        .ok()
        .and_then(|n| Checkpoint::parse(&n.body).ok())
        .ok_or_else(|| AppError::Internal("own checkpoint does not parse".into()))?
        .size;
    let authority = engine.operations_authority()?;
    let mut sent = 0;
    for peer in engine.witnesses() {
        let mut k = COSIGNED_PREFIX.to_vec();
        k.extend_from_slice(peer.as_str().as_bytes());
        let base = store
            .get(keys::META, &k)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, u64::from_be_bytes);
        if base >= size {
            continue;
        }
        let proof = merkle::consistency_proof(&StoreNodes(store.as_ref()), base, size)
            .ok_or_else(|| AppError::Internal("consistency proof".into()))?;
        let body = cbor(&CheckpointMessage {
            note: note.clone(),
            base,
            proof,
        });
        let draft = Draft {
            kind: Kind::new(KIND_CHECKPOINT).map_err(|e| AppError::Internal(e.to_string()))?,
            step: None,
            authority: authority.clone(),
            to: vec![peer],
            case: None,
            prev: Vec::new(),
            body,
        };
        // In the envelope's commit: until the answer comes, do not resend this size.
        engine
            .local_step(
                Some(draft),
                Box::new(move |txn, _| {
                    txn.put(keys::META, k, size.to_be_bytes().to_vec());
                    Ok(imi_engine::LocalOutcome {
                        write: true,
                        result: Vec::new(),
                    })
                }),
            )
            .await?;
        sent += 1;
    }
    send_witness_answers(engine).await?;
    Ok(sent)
}

/// Sends the queued witness answers.
pub async fn send_witness_answers(engine: &Engine) -> Result<usize, AppError> {
    Ok(engine
        .send_pending(WITNESS_OUT, KIND_COSIGNATURE, |key| {
            let to = std::str::from_utf8(key).ok()?.parse::<NodeId>().ok()?;
            Some((to, None))
        })
        .await?)
}

/// Checkpoint and cosignature envelopes are pruned after a week ([`imi_engine::prune`]):
/// one signed more than half of that before its receipt is refused (`stale`), so that a
/// resend whose inbox record is gone can never be applied again. A newer checkpoint
/// supersedes it anyway.
fn refuse_stale(msg: &Inbound<'_>) -> Result<(), RejectCode> {
    if msg.received.saturating_sub(msg.header.created) > imi_engine::prune::STALE_UNLOGGED_MS {
        return Err(RejectCode::Application("stale".into()));
    }
    Ok(())
}

/// Up to `limit` witness alarms this node raised with a sequence number of at least `from`,
/// oldest first, each with its sequence number.
pub fn alarms(engine: &Engine, from: u64, limit: usize) -> Result<Vec<(u64, Alarm)>, AppError> {
    Ok(engine
        .reader()
        .range(ALARMS, &from.to_be_bytes(), Some(b"\xff"), limit)?
        .into_iter()
        .filter_map(|(k, v)| {
            let seq = u64::from_be_bytes(k.as_slice().try_into().ok()?);
            Some((seq, serde_json::from_slice(&v).ok()?))
        })
        .collect())
}
