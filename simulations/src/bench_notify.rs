//! `imi-sim bench notify`: the fan-out of one notification to 30 nodes. 31 real nodes on
//! loopback (the 30 EEA countries and the Commission); a German authority sends a
//! notification naming the national coordinator of each of the 29 other countries and the
//! Commission, one notification at a time, through `POST /api/v1/notifications?wait=
//! delivered`, which answers once every recipient node's signed receipt is back (each has
//! stored it durably): that is the time to all receipts. Then a user at each of the 30
//! recipients acknowledges (`POST .../read`, a signed envelope back to Germany) and the
//! German node's count of applied acknowledgements (`imi_inbound_accepted_total{kind=
//! "imi.notification"}`, which counts nothing else there) is polled until all 30 are in:
//! the time to all acknowledgements, from the send. See `BENCHMARKS.md`.
use crate::bench::round;
use crate::bench_api::add_user;
use crate::federation::{self, Federation};
use crate::ui;
use anyhow::{Context, Result, bail};
use imi_protocol::NodeId;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Options of `imi-sim bench notify`.
#[derive(Debug, Clone, clap::Args)]
pub struct NotifyArgs {
    /// Notifications measured (one at a time).
    #[arg(long, default_value_t = 1000)]
    pub notifications: u32,
    /// Notifications of the warm-up.
    #[arg(long, default_value_t = 20)]
    pub warmup: u32,
    /// Also write the JSON result to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

const SENDER: NodeId = NodeId::DE;

/// The Commission's services, as a recipient (`imi_domain::notification::COMMISSION_AUTHORITY`).
const COMMISSION: &str = "EU-COMMISSION";

fn recipient_authority(n: NodeId) -> String {
    if n == NodeId::EU {
        COMMISSION.to_owned()
    } else {
        format!("{n}-NC")
    }
}

fn body(recipients: &[NodeId], seq: u32) -> Value {
    json!({
        "type": "SD-P03",
        "recipients": recipients.iter().map(|n| json!({"country": n.as_str(), "authorities": [recipient_authority(*n)]})).collect::<Vec<_>>(),
        "fields": [
            {"question": "SD-Q12", "type": "choice", "value": "SD-Q12-TARIFFS"},
            {"question": "SD-Q13", "type": "text", "value": format!("Benchmark measure {seq}")},
            {"question": "SD-Q14", "type": "text", "value": "Minimum fees for architects' services."},
            {"question": "SD-Q15", "type": "text", "value": "Consumer protection; necessary and proportionate."},
            {"question": "SD-Q16", "type": "date", "value": "2026-11-30"},
        ],
    })
}

struct Clients {
    http: reqwest::Client,
    send_url: String,
    sender_token: String,
    /// Per recipient: its base URL and its user's token.
    readers: Vec<(NodeId, String, String)>,
    metrics_url: String,
}

impl Clients {
    async fn acks_applied(&self) -> Result<f64> {
        let text = self
            .http
            .get(&self.metrics_url)
            .send()
            .await?
            .text()
            .await?;
        Ok(federation::parse_metrics(&text)
            .get("imi_inbound_accepted_total{kind=\"imi.notification\"}")
            .copied()
            .unwrap_or(0.0))
    }

    /// One notification: (ms to all receipts, ms to all acknowledgements).
    async fn one(&self, recipients: &[NodeId], seq: u32) -> Result<(f64, f64)> {
        let before = self.acks_applied().await?;
        let t = Instant::now();
        let resp = self
            .http
            .post(&self.send_url)
            .bearer_auth(&self.sender_token)
            .json(&body(recipients, seq))
            .send()
            .await?;
        let status = resp.status();
        let v: Value = resp.json().await?;
        let receipted = t.elapsed().as_secs_f64() * 1000.0;
        if status.as_u16() != 201 {
            bail!("notification {seq}: HTTP {status}: {v}");
        }
        let delivery = v["delivery"].as_array().context("delivery")?;
        if delivery.len() != recipients.len() || delivery.iter().any(|d| d["outcome"] != "accepted")
        {
            bail!("notification {seq}: not delivered to all: {v}");
        }
        let id = v["id"].as_str().context("id")?.to_owned();
        let reads = self.readers.iter().map(|(n, base, token)| {
            let url = format!("{base}/api/v1/notifications/{id}/read");
            let http = self.http.clone();
            let (n, token) = (*n, token.clone());
            async move {
                let r = http
                    .post(url)
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body("{}")
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!("{n}: acknowledge: HTTP {}", r.status());
                }
                Ok::<_, anyhow::Error>(())
            }
        });
        for r in futures::future::join_all(reads).await {
            r?;
        }
        let want = before + recipients.len() as f64;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.acks_applied().await? < want {
            if Instant::now() > deadline {
                bail!("notification {seq}: acknowledgements missing after 60 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok((receipted, t.elapsed().as_secs_f64() * 1000.0))
    }
}

/// Runs the benchmark; prints one JSON object on stdout.
pub async fn run(args: &NotifyArgs) -> Result<bool> {
    let bin = federation::node_binary()?;
    let tmp = tempfile::Builder::new()
        .prefix("imi-bench-notify-")
        .tempdir()?;
    let dir = tmp.path().to_path_buf();
    let members: Vec<NodeId> = NodeId::ALL.to_vec();
    let base = federation::free_base_port(members.len())?;
    federation::init_federation(&bin, &dir, &members, base)?;
    let mut fed = Federation::start(&bin, &dir, &members, base)?;
    let result = measure(&mut fed, &bin, &dir, &members, args).await;
    let reports = fed.stop(Duration::from_secs(30)).await;
    let clean = reports.iter().all(|r| r.clean());
    let mut out = result?;
    out["nodes_stopped_cleanly"] = json!(clean);
    let text = serde_json::to_string_pretty(&out)?;
    println!("{text}");
    if let Some(p) = &args.json_out {
        std::fs::write(p, &text)?;
    }
    Ok(clean)
}

async fn measure(
    fed: &mut Federation,
    bin: &Path,
    dir: &Path,
    members: &[NodeId],
    args: &NotifyArgs,
) -> Result<Value> {
    fed.wait_live(Duration::from_secs(120)).await?;
    fed.wait_ready(Duration::from_secs(120)).await?;
    let recipients: Vec<NodeId> = members.iter().copied().filter(|n| *n != SENDER).collect();
    let mut readers = Vec::new();
    for n in &recipients {
        let token = add_user(bin, dir, *n, &recipient_authority(*n))?;
        readers.push((*n, fed.url(*n, "")?.trim_end_matches('/').to_owned(), token));
    }
    let clients = Clients {
        http: fed.client().clone(),
        send_url: fed.url(SENDER, "/api/v1/notifications?wait=delivered")?,
        sender_token: add_user(bin, dir, SENDER, "DE-NC")?,
        readers,
        metrics_url: fed.url(SENDER, "/metrics")?,
    };
    eprintln!(
        "imi-sim bench notify: DE → {} nodes, warm-up {}",
        recipients.len(),
        args.warmup
    );
    for i in 0..args.warmup {
        clients.one(&recipients, i).await?;
    }
    let (mut receipts, mut acks) = (Vec::new(), Vec::new());
    let t = Instant::now();
    for i in 0..args.notifications {
        let (r, a) = clients.one(&recipients, args.warmup + i).await?;
        receipts.push(r);
        acks.push(a);
    }
    let wall = t.elapsed().as_secs_f64();
    let (r50, r99) = ui::p50_p99(&mut receipts);
    let (a50, a99) = ui::p50_p99(&mut acks);
    eprintln!(
        "  {} notifications in {wall:.1} s: all receipts p50 {r50:.1} ms, p99 {r99:.1} ms; all acknowledgements p50 {a50:.1} ms, p99 {a99:.1} ms",
        args.notifications
    );
    Ok(json!({
        "recipients": recipients.len(),
        "notifications": args.notifications,
        "p50_ms_all_receipts": round(r50, 2),
        "p99_ms_all_receipts": round(r99, 2),
        "p50_ms_all_acknowledged": round(a50, 2),
        "p99_ms_all_acknowledged": round(a99, 2),
        "wall_s": round(wall, 1),
        "measures": "POST /api/v1/notifications?wait=delivered on DE until every recipient node's signed receipt is back; then each recipient's user acknowledges and DE's applied acknowledgements are counted until all are in (from the send)",
    }))
}
