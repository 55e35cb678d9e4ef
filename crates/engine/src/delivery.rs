//! Delivery: one task per destination node drains that node's persistent FIFO outbox.
//!
//! The task dispatches the oldest entries first, up to `delivery_window` in flight, in
//! chunks of up to `delivery_batch`: a chunk goes as one request where the destination
//! speaks the network's batch protocol (`imi_network::NetworkClient::request_many`), one
//! request per envelope otherwise. Each answer is a signed receipt, verified against the
//! destination's key and matched to the envelope hash; then the chunk's receipts are stored
//! and their entries removed in one batch. On a
//! failure (network error, bad receipt, transient rejection) the task stops dispatching,
//! lets in-flight attempts finish, waits a capped exponential backoff with jitter, and
//! starts again from the head of the outbox. A resent envelope that had in fact arrived is
//! answered `duplicate`, which counts as delivered: the receiver applied it exactly once.
//!
//! Envelopes of one case are delivered one after the other, in outbox order: the receiver
//! handles the requests in flight concurrently, so two steps of a case in flight at once
//! could be applied in the wrong order (an `answer` before its `accept`, refused as an
//! invalid transition). An envelope whose case already has one in flight waits, with every
//! entry after it, until that one is receipted.
use crate::commit::Job;
use crate::error::EngineError;
use crate::keys;
use crate::metrics::{Metrics, PeerCodeLabel};
use crate::shared::{DeliveryReport, Shared};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use imi_protocol::{CaseId, MessageId, NodeId, Outcome, Receipt, sha256};
use imi_store::{Durability, WriteBatch};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How one in-flight envelope ended.
enum Attempt {
    /// Receipted, and the receipt stored.
    Settled,
    Failed {
        error: String,
    },
}

/// Sends a chunk of entries (one request, or one batch where the network can) and stores
/// the receipts of those receipted in one commit, all inside the in-flight future: the
/// delivery loop never waits for one chunk's bookkeeping before handling the next. Returns
/// each entry's case with its outcome.
async fn attempt_and_settle(
    shared: Arc<Shared>,
    node: NodeId,
    entries: Vec<Entry>,
    failures: u32,
) -> Vec<(Option<CaseId>, Attempt)> {
    let sent = Instant::now();
    let mut results = Vec::with_capacity(entries.len());
    let Some(peer) = shared.peer_id(node, failures) else {
        for e in entries {
            results.push((
                e.case,
                Attempt::Failed {
                    error: "destination has no valid key".into(),
                },
            ));
        }
        return results;
    };
    let mut sending = Vec::with_capacity(entries.len());
    let mut meta = Vec::with_capacity(entries.len());
    for Entry {
        key,
        id,
        bytes,
        logged,
        case,
    } in entries
    {
        meta.push(Sent {
            key,
            id,
            hash: sha256(&bytes),
            logged,
            case,
        });
        sending.push(bytes);
    }
    let responses = if sending.len() == 1 {
        let mut responses = Vec::with_capacity(1);
        for bytes in sending {
            responses.push(shared.network.request(peer, bytes).await);
        }
        responses
    } else {
        shared.network.request_many(peer, sending).await
    };
    let trust = shared.trust();
    let latency = shared
        .metrics
        .receipt_latency
        .0
        .get_or_create(&Metrics::peer(node))
        .clone();
    let mut receipted = Vec::with_capacity(meta.len());
    // The receipts of a batch mostly share a group signature: checked once.
    let mut groups = imi_protocol::GroupCache::default();
    for (sent_entry, response) in meta.into_iter().zip(responses) {
        match check_receipt(&shared, &trust, node, &sent_entry, response, &mut groups) {
            Ok(receipt) => {
                latency.observe(sent.elapsed().as_secs_f64());
                receipted.push((sent_entry, receipt));
            }
            Err(error) => results.push((sent_entry.case, Attempt::Failed { error })),
        }
    }
    if receipted.is_empty() {
        return results;
    }
    let cases: Vec<Option<CaseId>> = receipted.iter().map(|(e, _)| e.case).collect();
    let stored = settle(&shared, node, receipted).await;
    for case in cases {
        let outcome = match &stored {
            Ok(()) => Attempt::Settled,
            Err(e) => Attempt::Failed {
                error: format!("could not store receipt: {e}"),
            },
        };
        results.push((case, outcome));
    }
    results
}

/// What is kept of an entry while it is on the wire.
struct Sent {
    key: Vec<u8>,
    id: MessageId,
    /// The envelope's hash, which its receipt must name.
    hash: [u8; 32],
    logged: bool,
    case: Option<CaseId>,
}

/// One outbox entry ready to send.
struct Entry {
    key: Vec<u8>,
    id: MessageId,
    bytes: Vec<u8>,
    /// Whether its receipt gets a log leaf.
    logged: bool,
    /// The case its envelope belongs to (from the signed header).
    case: Option<CaseId>,
}

/// The entries that follow the one numbered `after`, as the committer handed them over with
/// their envelopes (see `tail` and `fresh`), without a store read, and whether they are all
/// the tail gave; `None` if they do not continue from `after` or none are there. Stops at the
/// first envelope not in memory (a large backlog, or a large envelope): the caller reads
/// that one and what follows from the store at once (the tail has a gap after them then).
fn from_tail(
    shared: &Shared,
    node: NodeId,
    after: u64,
    limit: usize,
) -> Option<(Vec<Entry>, bool)> {
    let tail = shared.tails.take_after(node, after, limit)?;
    let given = tail.len();
    let mut out = Vec::with_capacity(given);
    for e in tail {
        let Some((bytes, case)) = shared.fresh.take(&e.id) else {
            break;
        };
        shared.metrics.delivery_loads.memory.inc();
        out.push(Entry {
            key: keys::outbox_key(node, e.seq),
            id: e.id,
            bytes,
            logged: e.logged,
            case,
        });
    }
    let all = out.len() == given;
    (!out.is_empty()).then_some((out, all))
}

/// Loads up to `limit` entries after `cursor` (or from the head).
fn load(
    shared: &Shared,
    node: NodeId,
    cursor: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<Entry>, EngineError> {
    let rows = crate::outbox::entries(shared.store.as_ref(), node, cursor, limit)?;
    let mut out = Vec::with_capacity(rows.len());
    for (key, value) in rows {
        let Some(value) = value else {
            tracing::error!(peer = %node, "corrupt outbox entry skipped");
            continue;
        };
        let id = value.id;
        // Just committed: the bytes and case are in memory (see `fresh`).
        let (bytes, case) = match shared.fresh.take(&id) {
            Some(found) => {
                shared.metrics.delivery_loads.memory.inc();
                found
            }
            None => match shared.store.get_uncached(keys::ENV_OUT, id.as_bytes())? {
                Some(bytes) => {
                    shared.metrics.delivery_loads.store.inc();
                    // This node signed the bytes; the header gives the case (for the order
                    // of delivery).
                    let case = imi_protocol::Envelope::parse(bytes.clone(), usize::MAX)
                        .ok()
                        .and_then(|e| e.header().case);
                    (bytes, case)
                }
                None => {
                    tracing::error!(peer = %node, msg = %id, "outbox entry without envelope");
                    continue;
                }
            },
        };
        let logged = value
            .logged
            .unwrap_or_else(|| logged_by_header(shared, &bytes));
        out.push(Entry {
            key,
            id,
            bytes,
            logged,
            case,
        });
    }
    Ok(out)
}

/// Whether an envelope's receipt gets a log leaf, from its kind (for outbox entries written
/// before the flag existed; an envelope that does not parse is logged).
fn logged_by_header(shared: &Shared, bytes: &[u8]) -> bool {
    imi_protocol::Envelope::parse(bytes.to_vec(), usize::MAX)
        .ok()
        .is_none_or(|e| shared.routes.logged(e.header().kind.as_str()))
}

/// Checks the answer to one envelope: a receipt from the destination for exactly that
/// envelope, and no transient rejection; an error for anything to retry.
fn check_receipt(
    shared: &Shared,
    trust: &imi_protocol::TrustList,
    node: NodeId,
    sent: &Sent,
    response: Result<Vec<u8>, imi_network::NetworkError>,
    groups: &mut imi_protocol::GroupCache,
) -> Result<Receipt, String> {
    let response = response.map_err(|e| e.to_string())?;
    let r = Receipt::verify_cached(response, trust, node, groups)
        .map_err(|code| format!("invalid receipt: {code}"))?;
    if r.body.message_id != Some(sent.id) || r.body.envelope_hash != sent.hash {
        return Err("receipt does not match the envelope".into());
    }
    match &r.body.outcome {
        Outcome::Rejected(code) if code.is_transient() => Err(format!(
            "transient rejection: {}",
            shared.metrics.peer_codes.label(node.as_str(), code)
        )),
        _ => Ok(r),
    }
}

fn backoff(shared: &Shared, failures: u32) -> Duration {
    let base = shared.config.backoff_initial_ms.max(1);
    let exp = base.saturating_mul(1u64 << failures.min(20).saturating_sub(1));
    let capped = exp.min(shared.config.backoff_max_ms.max(base));
    // Full jitter in [capped/2, capped].
    let jitter = rand::random_range(0..=capped / 2);
    Duration::from_millis(capped - capped / 2 + jitter)
}

/// The next whole second of the system clock, as a runtime instant.
fn next_whole_second() -> Instant {
    let into = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    Instant::now() + Duration::from_nanos(u64::from(1_000_000_000u32.saturating_sub(into)))
}

/// Runs the delivery task for `node` until cancelled.
pub(crate) async fn run(shared: Arc<Shared>, node: NodeId, cancel: CancellationToken) {
    let label = Metrics::peer(node);
    let Some(wake) = shared.wake.get(&node).cloned() else {
        return;
    };
    // Make the per-peer series visible from the start (at their current values).
    let _ = shared.metrics.queue_depth.get_or_create(&label);
    let _ = shared.metrics.retries.get_or_create(&label);
    let _ = shared.metrics.delivered.get_or_create(&label);
    let _ = shared.metrics.backoff_seconds.get_or_create(&label);
    let _ = shared
        .metrics
        .oldest_queued_age_seconds
        .get_or_create(&label);
    let window = shared.config.delivery_window.max(1);
    let chunk = shared.config.delivery_batch.clamp(1, window);
    let mut inflight = FuturesUnordered::new();
    // Envelopes in flight (`inflight` holds chunks of them).
    let mut inflight_count: usize = 0;
    // The cases with an envelope in flight, and the case whose next envelope waits for it.
    let mut inflight_cases: std::collections::HashSet<CaseId> = std::collections::HashSet::new();
    let mut waiting_for: Option<CaseId> = None;
    let mut cursor: Option<Vec<u8>> = None;
    let mut failures: u32 = 0;
    let mut paused = false;
    let mut resume_at: Option<Instant> = None;
    let mut maybe_more = true;
    // The gauge's tick, on whole seconds of the system clock: the delivery tasks of all peers
    // tick together, one wake-up of the runtime for all of them instead of one each.
    let mut tick = tokio::time::interval_at(next_whole_second(), Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if paused && inflight.is_empty() && resume_at.is_some_and(|t| Instant::now() >= t) {
            paused = false;
            resume_at = None;
            cursor = None;
            maybe_more = true;
            waiting_for = None;
        }
        // Refill in bulk (when half the window is free) and only while the outbox may hold
        // more than was loaded: one store read serves many envelopes.
        if !paused
            && maybe_more
            && waiting_for.is_none()
            && (inflight_count == 0 || inflight_count <= window / 2)
        {
            let need = window.saturating_sub(inflight_count).max(1);
            let handed = cursor
                .as_deref()
                .and_then(keys::outbox_seq)
                .and_then(|after| from_tail(&shared, node, after, need));
            // Entries the tail gave up but could not return (an envelope no longer in memory)
            // are read from the store at once: the tail has a gap after them now.
            let mut partial = false;
            let loaded = match handed {
                Some((entries, all)) => {
                    shared.metrics.delivery_refills.memory.inc();
                    partial = !all;
                    Ok(Ok(entries))
                }
                None => {
                    shared.metrics.delivery_refills.store.inc();
                    let s = shared.clone();
                    let c = cursor.clone();
                    tokio::task::spawn_blocking(move || load(&s, node, c.as_deref(), need)).await
                }
            };
            match loaded {
                Ok(Ok(entries)) => {
                    maybe_more = partial || entries.len() >= need;
                    let mut next: Vec<Entry> = Vec::with_capacity(chunk.min(entries.len()));
                    for e in entries {
                        if let Some(case) = e.case {
                            // Its case has an envelope in flight: in order, after it.
                            if !inflight_cases.insert(case) {
                                waiting_for = Some(case);
                                maybe_more = true;
                                break;
                            }
                        }
                        cursor = Some(e.key.clone());
                        next.push(e);
                        if next.len() == chunk {
                            inflight_count += next.len();
                            let sending = std::mem::replace(&mut next, Vec::with_capacity(chunk));
                            inflight.push(attempt_and_settle(
                                shared.clone(),
                                node,
                                sending,
                                failures,
                            ));
                        }
                    }
                    if !next.is_empty() {
                        inflight_count += next.len();
                        inflight.push(attempt_and_settle(shared.clone(), node, next, failures));
                    }
                }
                Ok(Err(e)) => tracing::error!(peer = %node, error = %e, "outbox read failed"),
                Err(e) => tracing::error!(peer = %node, error = %e, "outbox read task failed"),
            }
        }
        let sleep_until = resume_at.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(results) = inflight.next(), if !inflight.is_empty() => {
              inflight_count = inflight_count.saturating_sub(results.len());
              for (case, result) in results {
                if let Some(case) = case {
                    inflight_cases.remove(&case);
                    if waiting_for == Some(case) {
                        waiting_for = None;
                    }
                }
                match result {
                    Attempt::Settled => {
                        if !paused {
                            failures = 0;
                            shared.metrics.backoff_seconds.get_or_create(&label).set(0.0);
                        }
                    }
                    Attempt::Failed { error } => {
                        shared.metrics.retries.get_or_create(&label).inc();
                        if !paused {
                            failures = failures.saturating_add(1);
                            let wait = backoff(&shared, failures);
                            shared.metrics.backoff_seconds.get_or_create(&label).set(wait.as_secs_f64());
                            tracing::warn!(peer = %node, error = %error, failures, backoff_ms = wait.as_millis() as u64, "delivery failed; backing off");
                            paused = true;
                            resume_at = Some(Instant::now() + wait);
                        }
                    }
                }
              }
            }
            _ = wake.notified(), if !paused => maybe_more = true,
            _ = tokio::time::sleep_until(sleep_until), if paused && inflight.is_empty() => {}
            _ = tick.tick() => {
                // An empty queue (the committer keeps its depth exact) has no oldest entry:
                // no store read, no blocking thread, for the peers with nothing queued.
                let age = if shared.metrics.queue_depth.get_or_create(&label).get() <= 0 {
                    Some(0.0)
                } else {
                    let s = shared.clone();
                    match tokio::task::spawn_blocking(move || crate::outbox::oldest_enqueued(s.store.as_ref(), node)).await {
                        Ok(Ok(oldest)) => Some(oldest.map_or(0.0, |t| shared.clock.now_ms().saturating_sub(t) as f64 / 1000.0)),
                        _ => None,
                    }
                };
                if let Some(age) = age {
                    shared.metrics.oldest_queued_age_seconds.get_or_create(&label).set(age);
                }
            }
        }
    }
    tracing::debug!(peer = %node, "delivery task stopped");
}

/// Stores the receipts and removes their outbox entries, in one commit (a `rejected`
/// receipt moves its envelope to the dead-letter column). Transient rejections never get
/// here: they stay queued.
async fn settle(
    shared: &Arc<Shared>,
    node: NodeId,
    receipted: Vec<(Sent, Receipt)>,
) -> Result<(), EngineError> {
    let label = Metrics::peer(node);
    let mut batch = WriteBatch::new();
    let mut leaves = Vec::new();
    for (sent, receipt) in receipted {
        let Sent {
            key,
            id,
            logged,
            case,
            ..
        } = sent;
        // The receipt is verified: report it now; storing it is this node's bookkeeping.
        let waiter = shared
            .watchers
            .lock()
            .ok()
            .and_then(|mut w| w.remove(&(node, id)));
        if let Some((started, tx)) = waiter {
            let report = DeliveryReport {
                to: node,
                receipt: receipt.body.clone(),
                round_trip: started.elapsed(),
            };
            let _ = tx.send(report);
        }
        match &receipt.body.outcome {
            Outcome::Accepted | Outcome::Duplicate => {
                batch.put(
                    keys::RECEIPTS_OUT,
                    keys::node_msg_key(node, &id),
                    receipt.bytes.clone(),
                );
                shared.metrics.delivered.get_or_create(&label).inc();
            }
            Outcome::Rejected(code) => {
                let code = shared.metrics.peer_codes.label(node.as_str(), code);
                shared
                    .metrics
                    .rejected_by_peer
                    .get_or_create(&PeerCodeLabel {
                        peer: node.to_string(),
                        code: code.clone(),
                    })
                    .inc();
                tracing::warn!(peer = %node, msg = %id, code = %code, "destination rejected an envelope");
                batch.put(
                    keys::DEAD,
                    keys::node_msg_key(node, &id),
                    receipt.bytes.clone(),
                );
            }
        }
        batch.delete(keys::OUTBOX, key);
        if logged {
            leaves.push(crate::log::receipt_leaf(
                true,
                &receipt.bytes,
                &receipt.body,
                case.as_ref(),
            ));
        }
    }
    shared
        .commit(|reply| Job::Write {
            batch,
            durability: Durability::Buffered,
            leaves,
            reply,
        })
        .await
}
