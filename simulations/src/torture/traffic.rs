//! The torture's client: steady request traffic through the authorities' API and
//! diagnostics through the operator API, written so that it can count exactly what it asked
//! for while nodes die under it.
//!
//! Every request step is a POST with its own `Idempotency-Key`: an attempt whose answer is
//! lost (the node was killed before it replied, or the connection broke) is sent again with
//! the same key and body, and the node either commits it now or replays the answer of the
//! commit that happened before the kill. A step is counted once, when an answer arrives; its
//! `message_id` is the envelope the node committed with it. Each case runs one lifecycle,
//! `create` (requester) → `accept` → `answer` (responder) → `close` (requester); a step that
//! waits for the previous one to arrive polls (`404` until the case reaches the responder,
//! `409 invalid_transition` until the answer reaches the requester).
//!
//! Diagnostics are not idempotent: one send whose answer is lost may or may not have been
//! enqueued. They are counted as acknowledged (answer received), refused before sending
//! (the connection was refused: nothing reached the node) and ambiguous.
use anyhow::{Result, anyhow, bail};
use imi_protocol::{MessageId, NodeId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Poll interval of a step that waits for the previous step to arrive, or for a node to
/// come back.
const POLL: Duration = Duration::from_millis(50);
/// Failure guard of one step, retries included (not an expected duration).
const STEP_GUARD: Duration = Duration::from_secs(300);
/// Timeout of one HTTP attempt (its outcome is then unknown and the step is sent again).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// One node as the client sees it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The node.
    pub id: NodeId,
    /// `https://127.0.0.1:PORT`.
    pub base: String,
    /// Bearer token of the torture's authority user on `<ID>-NC`.
    pub user: String,
    /// The node's operator token.
    pub operator: String,
}

/// The steps of one case, in order: (step, node that committed it, its envelope).
#[derive(Debug, Clone)]
pub struct CaseLog {
    /// Sequence number (the seed of its pair and its idempotency keys).
    pub seq: u64,
    /// Requester node.
    pub requester: NodeId,
    /// Responder node.
    pub responder: NodeId,
    /// Case id (after `create`).
    pub id: Option<String>,
    /// (step, node, message id) of each acknowledged step.
    pub steps: Vec<(&'static str, NodeId, MessageId)>,
}

/// Diagnostics from one node to another.
#[derive(Debug, Clone, Default)]
pub struct DiagLog {
    /// Sends acknowledged with a message id.
    pub acked: Vec<MessageId>,
    /// Sends whose connection was refused (nothing reached the node).
    pub refused: u64,
    /// Sends whose outcome is unknown (the node died with the request in flight).
    pub ambiguous: u64,
}

/// What the client did and saw.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Every case started, finished or not.
    pub cases: Vec<CaseLog>,
    /// Diagnostics per (from, to).
    pub diagnostics: BTreeMap<(NodeId, NodeId), DiagLog>,
    /// Attempts that got no answer (node down, connection broken, timeout).
    pub unanswered_attempts: u64,
    /// Attempts answered "not yet" (the previous step had not arrived).
    pub waits: u64,
    /// Answers that are neither success nor a documented "not yet": each is a failure.
    pub errors: Vec<String>,
    /// Per step: from its first attempt to its answer, ms.
    pub step_ms: Vec<f64>,
}

impl Ledger {
    /// Opens the log of case `seq` between `requester` and `responder`; its slot.
    pub fn open_case(&mut self, seq: u64, requester: NodeId, responder: NodeId) -> usize {
        self.cases.push(CaseLog {
            seq,
            requester,
            responder,
            id: None,
            steps: Vec::new(),
        });
        self.cases.len() - 1
    }

    /// Records step `step` of the case in `slot`, committed by `node`, from the API's
    /// answer (its `message_id`; a `create` answer also gives the case id).
    pub fn record_step(
        &mut self,
        slot: usize,
        step: &'static str,
        node: NodeId,
        answer: &Value,
    ) -> Result<()> {
        let mid = message_id(answer)?;
        if let Some(c) = self.cases.get_mut(slot) {
            if step == "create" {
                c.id = answer["id"].as_str().map(str::to_owned);
            }
            c.steps.push((step, node, mid));
        }
        Ok(())
    }
}

/// The envelope a request step's answer names (`message_id`).
pub fn message_id(v: &Value) -> Result<MessageId> {
    v["message_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("answer without a message_id: {v}"))
}

/// The HTTPS client of every node.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    nodes: Arc<Vec<Endpoint>>,
    seed: u64,
    ledger: Arc<Mutex<Ledger>>,
}

/// How an attempt ended.
enum Attempt {
    /// An HTTP answer.
    Answer(u16, Value),
    /// No answer; `refused`: the connection was refused (the request reached nobody).
    None { refused: bool },
}

/// What a step accepts as "not yet, ask again".
#[derive(Clone, Copy, PartialEq, Eq)]
enum NotYet {
    /// Nothing: any other answer is a failure.
    Never,
    /// `404`: the case has not reached this node yet.
    NotFound,
    /// `409 invalid_transition`: the step it follows has not reached this node yet.
    Conflict,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The deterministic random source of item `seq` of stream `stream`.
pub fn rng_for(seed: u64, stream: u64, seq: u64) -> StdRng {
    StdRng::seed_from_u64(
        seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seq.wrapping_mul(0xbf58_476d_1ce4_e5b9),
    )
}

/// Two different indices below `n` (n ≥ 2).
fn pair(rng: &mut StdRng, n: usize) -> (usize, usize) {
    let a = rng.random_range(0..n);
    let b = (a + rng.random_range(1..n)) % n;
    (a, b)
}

impl Client {
    /// A client of `nodes` trusting the federation CA `ca`.
    pub fn new(ca: &std::path::Path, nodes: Vec<Endpoint>, seed: u64) -> Result<Client> {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(imi_node::tls::client_config(ca)?)
            .connect_timeout(Duration::from_secs(2))
            .timeout(ATTEMPT_TIMEOUT)
            .build()?;
        Ok(Client {
            http,
            nodes: Arc::new(nodes),
            seed,
            ledger: Arc::new(Mutex::new(Ledger::default())),
        })
    }

    /// The nodes.
    pub fn nodes(&self) -> &[Endpoint] {
        &self.nodes
    }

    /// The ledger so far.
    pub fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        lock(&self.ledger)
    }

    fn node(&self, i: usize) -> Result<&Endpoint> {
        self.nodes
            .get(i)
            .ok_or_else(|| anyhow!("no node at index {i}"))
    }

    async fn attempt(&self, rb: reqwest::RequestBuilder) -> Attempt {
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => {
                return Attempt::None {
                    refused: e.is_connect(),
                };
            }
        };
        let status = resp.status().as_u16();
        match resp.bytes().await {
            Ok(b) => Attempt::Answer(
                status,
                serde_json::from_slice(&b)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&b).into_owned())),
            ),
            Err(_) => Attempt::None { refused: false },
        }
    }

    /// GET `path` on node `i` with `token`: status and JSON body (`Err` if unreachable).
    pub async fn get(&self, i: usize, path: &str, token: &str) -> Result<(u16, Value)> {
        let n = self.node(i)?;
        let rb = self
            .http
            .get(format!("{}{path}", n.base))
            .bearer_auth(token);
        match self.attempt(rb).await {
            Attempt::Answer(s, v) => Ok((s, v)),
            Attempt::None { .. } => bail!("GET {path} on {}: no answer", n.id),
        }
    }

    /// POST `body` to `path` on node `i` with `token`: status and JSON body.
    pub async fn post(
        &self,
        i: usize,
        path: &str,
        token: &str,
        body: &Value,
    ) -> Result<(u16, Value)> {
        let n = self.node(i)?;
        let rb = self
            .http
            .post(format!("{}{path}", n.base))
            .bearer_auth(token)
            .json(body);
        match self.attempt(rb).await {
            Attempt::Answer(s, v) => Ok((s, v)),
            Attempt::None { .. } => bail!("POST {path} on {}: no answer", n.id),
        }
    }

    /// One request step on node `i`, sent until it is answered `want` (the same key and body
    /// each time); "not yet" answers of `not_yet` are polled.
    async fn step(
        &self,
        i: usize,
        path: &str,
        key: &str,
        body: &Value,
        want: u16,
        not_yet: NotYet,
    ) -> Result<Value> {
        let n = self.node(i)?;
        let url = format!("{}{path}", n.base);
        let started = Instant::now();
        loop {
            if started.elapsed() > STEP_GUARD {
                bail!(
                    "POST {path} on {}: no success within {} s",
                    n.id,
                    STEP_GUARD.as_secs()
                );
            }
            let rb = self
                .http
                .post(&url)
                .bearer_auth(&n.user)
                .header("Idempotency-Key", key)
                .json(body);
            match self.attempt(rb).await {
                Attempt::Answer(s, v) if s == want => {
                    lock(&self.ledger)
                        .step_ms
                        .push(started.elapsed().as_secs_f64() * 1000.0);
                    return Ok(v);
                }
                Attempt::Answer(404, _) if not_yet == NotYet::NotFound => {
                    lock(&self.ledger).waits += 1;
                }
                Attempt::Answer(409, v)
                    if not_yet == NotYet::Conflict && v["code"] == "invalid_transition" =>
                {
                    lock(&self.ledger).waits += 1;
                }
                // The node is shutting down or not serving yet.
                Attempt::Answer(503, _) | Attempt::None { .. } => {
                    lock(&self.ledger).unanswered_attempts += 1;
                }
                Attempt::Answer(s, v) => {
                    bail!("POST {path} on {}: HTTP {s} (wanted {want}): {v}", n.id)
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Case `seq`: its whole lifecycle between two nodes chosen by the seed.
    async fn run_case(&self, seq: u64) -> Result<()> {
        let mut rng = rng_for(self.seed, 1, seq);
        let (a, b) = pair(&mut rng, self.nodes.len());
        let (ra, rb) = (self.node(a)?.id, self.node(b)?.id);
        let slot = lock(&self.ledger).open_case(seq, ra, rb);
        let record = |step: &'static str, node: NodeId, v: &Value| {
            lock(&self.ledger).record_step(slot, step, node, v)
        };
        let key = |step: &str| format!("torture-{}-{seq}-{step}", self.seed);
        let created = self
            .step(
                a,
                "/api/v1/requests",
                &key("create"),
                &json!({
                    "responder": format!("{rb}-NC"),
                    "area": "PQ",
                    "procedure": "PQ-P01",
                    "questions": ["PQ-Q01"],
                    "free_text": format!("Torture request {seq}"),
                    "subject": {"name": format!("Torture Subject {seq}")},
                    "answer_by": "2099-12-31",
                }),
                201,
                NotYet::Never,
            )
            .await?;
        record("create", ra, &created)?;
        let id = created["id"]
            .as_str()
            .ok_or_else(|| anyhow!("create answered without an id: {created}"))?
            .to_owned();
        let path = |step: &str| format!("/api/v1/requests/{id}/{step}");
        let v = self
            .step(
                b,
                &path("accept"),
                &key("accept"),
                &json!({}),
                200,
                NotYet::NotFound,
            )
            .await?;
        record("accept", rb, &v)?;
        let v = self
            .step(
                b,
                &path("answer"),
                &key("answer"),
                &json!({"answers": [{"question": "PQ-Q01", "type": "bool", "value": true}]}),
                200,
                NotYet::Never,
            )
            .await?;
        record("answer", rb, &v)?;
        let v = self
            .step(
                a,
                &path("close"),
                &key("close"),
                &json!({"timeliness": 5}),
                200,
                NotYet::Conflict,
            )
            .await?;
        record("close", ra, &v)?;
        Ok(())
    }

    /// Diagnostic `seq`: one envelope between two nodes chosen by the seed, sent once.
    async fn send_diagnostic(&self, seq: u64) -> Result<()> {
        let mut rng = rng_for(self.seed, 2, seq);
        let (a, b) = pair(&mut rng, self.nodes.len());
        let (na, nb) = (self.node(a)?, self.node(b)?);
        let rb = self
            .http
            .post(format!("{}/operator/diag/send", na.base))
            .bearer_auth(&na.operator)
            .json(&json!({"to": nb.id, "count": 1, "wait": false}));
        let outcome = self.attempt(rb).await;
        let mut l = lock(&self.ledger);
        let entry = l.diagnostics.entry((na.id, nb.id)).or_default();
        match outcome {
            Attempt::Answer(200, v) => {
                let ids = v["message_ids"].as_array().cloned().unwrap_or_default();
                if ids.len() != 1 {
                    bail!("diag/send on {} answered {v}", na.id);
                }
                for id in ids {
                    let id = id
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| anyhow!("bad message id in {v}"))?;
                    entry.acked.push(id);
                }
            }
            Attempt::None { refused: true } => entry.refused += 1,
            // 503: shutting down (it refuses before sending); anything else is ambiguous.
            Attempt::Answer(503, _) => entry.refused += 1,
            Attempt::None { refused: false } => entry.ambiguous += 1,
            Attempt::Answer(s, v) => bail!("diag/send on {}: HTTP {s}: {v}", na.id),
        }
        Ok(())
    }
}

/// Runs `work(seq)` for seq = 0, 1, 2, … at `rate` per second (open loop: item `seq` is due
/// at `seq / rate` seconds), at most `concurrency` at a time, until `stop` turns true; items
/// already started finish. Failures go to the ledger's errors.
pub async fn open_loop<F, Fut>(
    client: Client,
    rate: f64,
    concurrency: usize,
    mut stop: watch::Receiver<bool>,
    work: F,
) where
    F: Fn(Client, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let next = Arc::new(AtomicU64::new(0));
    let work = Arc::new(work);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        let (client, next, work) = (client.clone(), next.clone(), work.clone());
        let mut stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                if *stop.borrow() {
                    break;
                }
                let seq = next.fetch_add(1, Ordering::Relaxed);
                let due = start + Duration::from_secs_f64(seq as f64 / rate);
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                if let Err(e) = work(client.clone(), seq).await {
                    lock(&client.ledger).errors.push(format!("{e:#}"));
                }
            }
        }));
    }
    let _ = stop.wait_for(|s| *s).await;
    for t in tasks {
        if let Err(e) = t.await {
            lock(&client.ledger)
                .errors
                .push(format!("a client task failed: {e}"));
        }
    }
}

/// The request traffic: cases at `rate` per second, `concurrency` at most in flight.
pub async fn requests(client: Client, rate: f64, concurrency: usize, stop: watch::Receiver<bool>) {
    open_loop(client, rate, concurrency, stop, |c, seq| async move {
        c.run_case(seq).await
    })
    .await;
}

/// The diagnostic traffic: `rate` per second, one at a time per slot.
pub async fn diagnostics(client: Client, rate: f64, stop: watch::Receiver<bool>) {
    open_loop(client, rate, 4, stop, |c, seq| async move {
        c.send_diagnostic(seq).await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_distinct_and_cover_every_ordered_pair() {
        let mut seen = std::collections::BTreeSet::new();
        for seq in 0..2000 {
            let (a, b) = pair(&mut rng_for(7, 1, seq), 5);
            assert_ne!(a, b);
            assert!(a < 5 && b < 5);
            seen.insert((a, b));
        }
        assert_eq!(seen.len(), 20);
        // The same seed gives the same pairs.
        assert_eq!(
            pair(&mut rng_for(7, 1, 42), 5),
            pair(&mut rng_for(7, 1, 42), 5)
        );
    }
}
