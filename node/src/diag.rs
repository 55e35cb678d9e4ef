//! Operator diagnostics: `imi-node diag send` asks the running node (over its HTTPS
//! operator API) to send signed diagnostic envelopes through the real path and reports the
//! receipts and round-trip times.
use anyhow::{Context, Result, bail};
use imi_engine::Engine;
use imi_protocol::{AuthorityId, Draft, Kind, NodeId, Outcome};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Most diagnostics per operator request.
pub const MAX_DIAG_COUNT: u32 = 100_000;
/// Largest diagnostic body.
pub const MAX_DIAG_BODY: usize = 1024 * 1024;
/// How long a waiting request waits for receipts.
pub const DIAG_WAIT: Duration = Duration::from_secs(600);

fn default_count() -> u32 {
    1
}
fn default_wait() -> bool {
    true
}

/// Body of `POST /operator/diag/send`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagRequest {
    /// Destination node.
    pub to: NodeId,
    /// Number of envelopes (a JSON number with a zero fraction, like `2.0`, counts).
    #[serde(
        default = "default_count",
        deserialize_with = "imi_api::numbers::deserialize"
    )]
    pub count: u32,
    /// Wait for the receipts.
    #[serde(default = "default_wait")]
    pub wait: bool,
    /// Body size in bytes (padding).
    #[serde(default, deserialize_with = "imi_api::numbers::deserialize")]
    pub body_bytes: usize,
    /// Offered load: send at this many messages per second instead of as fast as possible.
    #[serde(default)]
    pub rate_per_s: Option<f64>,
}

/// Round-trip times in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rtt {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

/// One receipt, for display.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceiptView {
    /// Message id.
    pub message_id: String,
    /// Receiver.
    pub receiver: String,
    /// Outcome label.
    pub outcome: String,
    /// Rejection code, if rejected.
    pub code: Option<String>,
    /// Receive time (ms since epoch).
    pub received: u64,
    /// SHA-256 of the envelope (hex).
    pub envelope_hash: String,
    /// Round trip, ms.
    pub rtt_ms: f64,
}

/// Result of a diagnostic send.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiagResult {
    /// Sending node.
    pub node: NodeId,
    /// Destination.
    pub to: NodeId,
    /// Envelopes durably enqueued.
    pub sent: u64,
    /// Receipted accepted.
    pub accepted: u64,
    /// Receipted duplicate.
    pub duplicate: u64,
    /// Receipted rejected.
    pub rejected: u64,
    /// Rejections by code.
    pub rejected_codes: BTreeMap<String, u64>,
    /// No receipt within the wait.
    pub unanswered: u64,
    /// Round-trip times.
    pub rtt_ms: Option<Rtt>,
    /// The first receipt.
    pub first_receipt: Option<ReceiptView>,
    /// Message ids (when not waiting).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub message_ids: Vec<String>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted
        .get(idx.min(sorted.len() - 1))
        .copied()
        .unwrap_or(0.0)
}

/// Sends diagnostics through the engine (server side of the operator API).
pub async fn run_diag(engine: &Engine, req: DiagRequest) -> Result<DiagResult> {
    use futures::StreamExt;
    if req.count == 0 || req.count > MAX_DIAG_COUNT {
        bail!("count must be 1..={MAX_DIAG_COUNT}");
    }
    if req.body_bytes > MAX_DIAG_BODY {
        bail!("body_bytes must be at most {MAX_DIAG_BODY}");
    }
    if let Some(rate) = req.rate_per_s
        && !(rate > 0.0 && rate <= 1_000_000.0)
    {
        bail!("rate_per_s must be in (0, 1000000]");
    }
    let me = engine.node();
    let authority = AuthorityId::new(&format!("{me}-OPERATOR"))?;
    let kind = Kind::new(Kind::DIAGNOSTIC)?;
    let period = req.rate_per_s.map(|r| Duration::from_secs_f64(1.0 / r));
    let start = tokio::time::Instant::now();
    let concurrency = if period.is_some() { 4096 } else { 64 };
    let results: Vec<_> = futures::stream::iter(0..req.count)
        .then(|i| async move {
            if let Some(p) = period {
                tokio::time::sleep_until(start + p * i).await;
            }
            i
        })
        .map(|i| {
            let engine = engine.clone();
            let mut body = format!("{{\"seq\":{i}}}").into_bytes();
            body.resize(body.len().max(req.body_bytes), b' ');
            let draft = Draft {
                kind: kind.clone(),
                authority: authority.clone(),
                to: vec![req.to],
                case: None,
                prev: vec![],
                body,
            };
            let wait = req.wait;
            async move {
                if wait {
                    engine
                        .send_watched(draft)
                        .await
                        .map(|(id, rx)| (id, rx.into_iter().next()))
                } else {
                    engine.send(draft).await.map(|id| (id, None))
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut out = DiagResult {
        node: me,
        to: req.to,
        sent: 0,
        accepted: 0,
        duplicate: 0,
        rejected: 0,
        rejected_codes: BTreeMap::new(),
        unanswered: 0,
        rtt_ms: None,
        first_receipt: None,
        message_ids: vec![],
    };
    let mut waiting = Vec::new();
    let mut first_error = None;
    for r in results {
        match r {
            Ok((id, rx)) => {
                out.sent += 1;
                match rx {
                    Some(rx) => waiting.push(rx),
                    None => out.message_ids.push(id.to_string()),
                }
            }
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    if out.sent == 0
        && let Some(e) = first_error
    {
        return Err(e.into());
    }
    if !req.wait {
        return Ok(out);
    }
    let deadline = tokio::time::Instant::now() + DIAG_WAIT;
    let mut rtts = Vec::with_capacity(waiting.len());
    for rx in waiting {
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(report)) => {
                let rtt = report.round_trip.as_secs_f64() * 1000.0;
                rtts.push(rtt);
                let code = match &report.receipt.outcome {
                    Outcome::Accepted => {
                        out.accepted += 1;
                        None
                    }
                    Outcome::Duplicate => {
                        out.duplicate += 1;
                        None
                    }
                    Outcome::Rejected(c) => {
                        out.rejected += 1;
                        *out.rejected_codes.entry(c.label().to_owned()).or_default() += 1;
                        Some(c.label().to_owned())
                    }
                };
                if out.first_receipt.is_none() {
                    out.first_receipt = Some(ReceiptView {
                        message_id: report
                            .receipt
                            .message_id
                            .map(|m| m.to_string())
                            .unwrap_or_default(),
                        receiver: report.receipt.receiver.to_string(),
                        outcome: report.receipt.outcome.label().to_owned(),
                        code,
                        received: report.receipt.received,
                        envelope_hash: hex::encode(report.receipt.envelope_hash),
                        rtt_ms: rtt,
                    });
                }
            }
            _ => out.unanswered += 1,
        }
    }
    rtts.sort_by(|a, b| a.total_cmp(b));
    if !rtts.is_empty() {
        out.rtt_ms = Some(Rtt {
            p50: percentile(&rtts, 0.5),
            p99: percentile(&rtts, 0.99),
            max: rtts.last().copied().unwrap_or(0.0),
        });
    }
    Ok(out)
}

/// Client side: asks the node of `cfg` to send diagnostics.
pub async fn request(cfg: &crate::config::NodeConfig, req: &DiagRequest) -> Result<DiagResult> {
    let client = crate::tls::http_client(&cfg.http.ca_cert)?;
    let token = crate::keyfile::read_secret(&cfg.http.operator_token)?;
    let url = format!("https://{}/operator/diag/send", connect_host(cfg));
    let resp = client
        .post(&url)
        .bearer_auth(token)
        .json(req)
        .send()
        .await
        .with_context(|| format!("is the node running? POST {url}"))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        bail!("{url}: {status}: {body}");
    }
    Ok(resp.json().await?)
}

/// Client side: calls an operator route of the node of `cfg` and returns its JSON.
pub async fn operator_call(
    cfg: &crate::config::NodeConfig,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value> {
    let client = crate::tls::http_client(&cfg.http.ca_cert)?;
    let token = crate::keyfile::read_secret(&cfg.http.operator_token)?;
    let url = format!("https://{}{path}", connect_host(cfg));
    let mut req = client.request(method, &url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("is the node running? {url}"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{url}: {status}: {text}");
    }
    Ok(serde_json::from_str(&text)?)
}

/// Client side: `GET path` on the node of `cfg` without a token; returns the body.
pub async fn public_get(cfg: &crate::config::NodeConfig, path: &str) -> Result<String> {
    let client = crate::tls::http_client(&cfg.http.ca_cert)?;
    let url = format!("https://{}{path}", connect_host(cfg));
    let resp = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("is the node running? {url}"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{url}: {status}: {text}");
    }
    Ok(text)
}

/// The host:port to reach a node's HTTPS listener (its certificate names the listen IP).
pub fn connect_host(cfg: &crate::config::NodeConfig) -> String {
    let a = cfg.http.listen;
    if a.ip().is_unspecified() {
        format!("127.0.0.1:{}", a.port())
    } else {
        a.to_string()
    }
}

/// Human-readable output.
pub fn print_human(r: &DiagResult) {
    println!(
        "{} -> {}: {} sent, {} accepted, {} duplicate, {} rejected{}",
        r.node,
        r.to,
        r.sent,
        r.accepted,
        r.duplicate,
        r.rejected,
        if r.unanswered > 0 {
            format!(", {} unanswered", r.unanswered)
        } else {
            String::new()
        }
    );
    for (code, n) in &r.rejected_codes {
        println!("  rejected {code}: {n}");
    }
    if let Some(rtt) = &r.rtt_ms {
        println!(
            "  round trip: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            rtt.p50, rtt.p99, rtt.max
        );
    }
    if let Some(f) = &r.first_receipt {
        println!(
            "  receipt: message {} outcome {}{} receiver {} received {} envelope sha256 {} ({:.2} ms)",
            f.message_id,
            f.outcome,
            f.code
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default(),
            f.receiver,
            f.received,
            f.envelope_hash,
            f.rtt_ms
        );
    }
}
