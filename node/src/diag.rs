//! Operator diagnostics: `imi-node diag send` asks the running node (over its HTTPS
//! operator API) to send signed diagnostic envelopes through the real path and reports the
//! receipts and round-trip times.
use anyhow::{Context, Result, bail};

pub use imi_api::operator::{
    DIAG_WAIT, DiagRequest, DiagResult, MAX_DIAG_BODY, MAX_DIAG_COUNT, ReceiptView, Rtt,
};

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
    operator_send(cfg, path, |client, url| {
        let req = client.request(method, url);
        match body {
            Some(b) => req.json(&b),
            None => req,
        }
    })
    .await
}

/// Client side: `POST path` with raw bytes and the operator token; returns the JSON answer.
pub async fn operator_post_bytes(
    cfg: &crate::config::NodeConfig,
    path: &str,
    bytes: Vec<u8>,
) -> Result<serde_json::Value> {
    operator_send(cfg, path, |client, url| {
        client
            .post(url)
            .header("content-type", "application/octet-stream")
            .body(bytes)
    })
    .await
}

/// Sends the request `build` makes for `path` on the node of `cfg`, with the operator
/// token; a non-2xx answer is an error naming the URL, status and body.
async fn operator_send(
    cfg: &crate::config::NodeConfig,
    path: &str,
    build: impl FnOnce(&reqwest::Client, &str) -> reqwest::RequestBuilder,
) -> Result<serde_json::Value> {
    let client = crate::tls::http_client(&cfg.http.ca_cert)?;
    let token = crate::keyfile::read_secret(&cfg.http.operator_token)?;
    let url = format!("https://{}{path}", connect_host(cfg));
    let resp = build(&client, &url)
        .bearer_auth(token)
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
